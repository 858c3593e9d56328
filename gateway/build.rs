//! Embeds the sample rules (`rules/examples/*.rules`) so that `jingzhi demo`
//! runs from any directory with no files around, and the commit the binary
//! is built from (`JINGZHI_BUILD_COMMIT`, for `jingzhi_build_info`).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    commit();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/examples");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "rules"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = String::from("/// The sample rules, as (file name, text).\npub const EXAMPLE_RULES: &[(&str, &str)] = &[\n");
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    ({:?}, include_str!({:?})),",
            format!("rules/examples/{name}"),
            f.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("examples.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// Sets `JINGZHI_BUILD_COMMIT`: the environment variable of that name if given
/// (a container build has no `.git`), else `git rev-parse --short HEAD`,
/// else `unknown`. Reruns only when HEAD or the branch it names moves, not
/// on every build.
fn commit() {
    println!("cargo:rerun-if-env-changed=JINGZHI_BUILD_COMMIT");
    let given = std::env::var("JINGZHI_BUILD_COMMIT")
        .ok()
        .filter(|c| is_commit_name(c));
    let commit = given.or_else(|| {
        let hash = git(&["rev-parse", "--short", "HEAD"]).filter(|c| is_commit_name(c))?;
        watch_git_head();
        Some(hash)
    });
    println!(
        "cargo:rustc-env=JINGZHI_BUILD_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}

fn is_commit_name(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string())
}

/// Asks Cargo to rerun this script when HEAD moves: `HEAD` itself (a
/// checkout), the folder of the branch it names (a commit rewrites or
/// creates the branch's file there) and `packed-refs`. Only paths that
/// exist are named: Cargo reruns a script every time for a named path that
/// is missing.
fn watch_git_head() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        paths.push(root.join(dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        let common = root.join(common);
        paths.push(common.join("packed-refs"));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(folder) = common.join(branch).parent() {
                paths.push(folder.to_path_buf());
            }
        }
    }
    let mut paths: Vec<PathBuf> = paths
        .into_iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    paths.sort();
    paths.dedup();
    for p in paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

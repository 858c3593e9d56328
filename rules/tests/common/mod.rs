//! Helpers shared by the integration tests.

#![allow(dead_code)]

use jingzhi_rules::lang::SourceFile;
use std::path::{Path, PathBuf};

/// The files with extension `ext` in `dir` (relative to the crate), sorted.
pub fn files_in(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// A source file named by its file name only, so output does not depend on
/// where the repository is checked out.
pub fn source(path: &Path) -> SourceFile {
    SourceFile {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        text: std::fs::read_to_string(path).unwrap(),
    }
}

/// The sample rules that ship in `rules/examples/`.
pub fn examples() -> Vec<SourceFile> {
    files_in("examples", "rules")
        .iter()
        .map(|p| source(p))
        .collect()
}

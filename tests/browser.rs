//! The dashboard and the rule page in a real browser: headless Chromium
//! (Debian's `chromium` package at /usr/bin/chromium, or `JINGZHI_CHROMIUM`;
//! never a downloaded browser) driven by playwright-core
//! (`tests/browser/`, pinned by its package-lock.json) against the real
//! `jingzhi` binary.
//!
//! The server runs on the event clock with the sample rules and access
//! control on (a token per role); the script `tests/browser/dashboard.test.mjs`
//! posts events and checks what the pages show. Screenshots of the main
//! views are kept in `target/screenshots/`; with
//! `JINGZHI_UPDATE_SCREENSHOTS=1` they also replace the README's in
//! `docs/images/`.
//!
//! Without Node.js, npm or Chromium this test fails and says what to
//! install: it never passes without having run.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{binary, listening_address};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// A secret for a test token: not guessable from outside the test run.
fn secret(role: &str) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write(role.as_bytes());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("test-{role}-{:016x}{:08x}", h.finish(), std::process::id())
}

/// Installs playwright-core (as pinned) into a directory under `target/`,
/// so that the working tree gets no `node_modules`; reinstalls when the
/// lock file changes.
fn node_modules() -> PathBuf {
    let source = repo().join("tests/browser");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-node");
    std::fs::create_dir_all(&dir).expect("create the npm directory");
    let lock =
        std::fs::read(source.join("package-lock.json")).expect("tests/browser/package-lock.json");
    let installed = dir.join("node_modules/playwright-core/index.mjs").exists()
        && std::fs::read(dir.join("package-lock.json")).ok().as_deref() == Some(&lock[..]);
    if !installed {
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(source.join(f), dir.join(f)).expect("copy the npm manifest");
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            // playwright-core downloads nothing at install; make sure no
            // browser is fetched whatever the version does.
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .status()
            .expect(
                "npm is needed for the browser tests: install `npm` (Debian: apt-get install npm)",
            );
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir.join("node_modules")
}

#[test]
fn the_dashboard_and_the_rule_page_work_in_a_real_browser() {
    let chromium = std::env::var_os("JINGZHI_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "the browser tests need Chromium at {}: install Debian's `chromium` package \
         (apt-get install chromium) or set JINGZHI_CHROMIUM; they never download a browser",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the browser tests need Node.js 20 or newer on the path: install `nodejs`"
    );
    let modules = node_modules();

    // Access control on: one token per role, as a deployment has them.
    let dir = tempfile::tempdir().expect("temp dir");
    let roles = [
        ("operator", "值班员 王明", "[\"operator\"]"),
        ("author", "规则编写 李华", "[\"author\"]"),
        ("ingest", "接入服务", "[\"ingest\"]"),
        ("admin", "值班长", "[\"admin\"]"),
    ];
    let mut config = String::new();
    let mut tokens = serde_json::Map::new();
    for (role, name, list) in roles {
        let token = secret(role);
        config.push_str(&format!(
            "[[auth.tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nroles = {list}\n\n",
            jingzhi_gateway::auth::hash_token(&token)
        ));
        tokens.insert(role.into(), token.into());
        tokens.insert(format!("{role}_name"), name.into());
    }
    let config_path = dir.path().join("jingzhi.toml");
    std::fs::write(&config_path, config).expect("write the config");

    let mut server = Command::new(binary())
        .arg("serve")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--clock",
            "event",
            "--workers",
            "2",
        ])
        .arg("--rules")
        .arg(repo().join("rules/examples"))
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start jingzhi");
    let addr = listening_address(&mut server);

    let screenshots = repo().join("target/screenshots");
    let mut script = Command::new("node");
    script
        .arg(repo().join("tests/browser/dashboard.test.mjs"))
        .args(["--base", &format!("http://{addr}")])
        .arg("--screenshots")
        .arg(&screenshots)
        .arg("--node-modules")
        .arg(&modules)
        .arg("--chromium")
        .arg(&chromium)
        .env(
            "JINGZHI_TEST_TOKENS",
            serde_json::Value::Object(tokens).to_string(),
        );
    if std::env::var_os("JINGZHI_UPDATE_SCREENSHOTS").is_some() {
        script.arg("--docs-images").arg(repo().join("docs/images"));
    }
    let (status, stdout, stderr) = run_with_deadline(script, std::time::Duration::from_secs(600));
    let _ = server.kill();
    let _ = server.wait();
    println!("{stdout}");
    assert!(
        status.is_some_and(|s| s.success()),
        "the browser tests failed (screenshots in {}):\n{stdout}\n{stderr}",
        screenshots.display()
    );
    assert!(
        stdout.contains("browser tests:") && !stdout.contains("skip the role checks"),
        "the browser tests did not run to the end:\n{stdout}\n{stderr}"
    );
}

/// Runs a command, killing it after `deadline`; its exit status (`None`
/// when killed), stdout and stderr.
fn run_with_deadline(
    mut command: Command,
    deadline: std::time::Duration,
) -> (Option<std::process::ExitStatus>, String, String) {
    use std::io::Read;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = r.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let stdout = out.join().unwrap_or_default();
    let mut stderr = err.join().unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\nkilled after {deadline:?}"));
    }
    (status, stdout, stderr)
}

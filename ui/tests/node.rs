//! Runs the dashboard's JavaScript unit tests (`ui/tests/app.test.mjs`) with
//! the machine's Node.js, so that `cargo test` covers the page's logic too.

use std::process::Command;

#[test]
fn dashboard_state_logic_passes_its_node_tests() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/app.test.mjs");
    let output = Command::new("node")
        .arg(script)
        .output()
        .expect("Node.js is needed for the dashboard tests: install `nodejs`");
    assert!(
        output.status.success(),
        "node {script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

//! The `jingzhi` command line, run as a user would.

mod support;

use std::process::Command;

#[test]
fn rules_check_accepts_the_examples_and_rejects_errors_with_positions() {
    let examples: Vec<_> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rules"))
            .collect();
    let ok = Command::new(support::binary())
        .args(["rules", "check"])
        .args(&examples)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let n = examples.len();
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains(&format!("{n} rules in {n} files: ok")),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.rules");
    std::fs::write(
        &bad,
        "rule slow \"慢行\" {\n  severity yellow\n  group by cell\n  when avg(traffic.speed) over 5m < 20\n}\n",
    )
    .unwrap();
    let out = Command::new(support::binary())
        .args(["rules", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap();
    assert!(
        first.ends_with("bad.rules:4:20: error[E011]: unknown field `speed` on stream `traffic`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  when avg(traffic.speed) over 5m < 20"),
        "{stderr}"
    );
    assert!(stderr.contains("^^^^^"), "{stderr}");
    assert!(stderr.contains("did you mean `speed_kmh`?"), "{stderr}");

    let missing = Command::new(support::binary())
        .args(["rules", "check", "/no/such/file.rules"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

#[test]
fn simulate_writes_events_that_parse_and_their_reference_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("city.ndjson");
    let run = Command::new(support::binary())
        .args(["simulate", "--seed", "3", "--events", "5000", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let reference =
        jingzhi_rules::space::Reference::load(&dir.path().join("city.reference.json")).unwrap();
    let text = std::fs::read(&out).unwrap();
    let ctx = jingzhi_rules::event::ParseContext::new(reference.grid.clone(), u64::MAX / 2, 0);
    let parsed = jingzhi_rules::event::parse_ndjson(&text, &ctx);
    assert_eq!(parsed.events.len(), 5000);
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected.first());
    // The same seed writes the same bytes.
    let again = dir.path().join("again.ndjson");
    Command::new(support::binary())
        .args(["simulate", "--seed", "3", "--events", "5000", "--out"])
        .arg(&again)
        .status()
        .unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), text);
}

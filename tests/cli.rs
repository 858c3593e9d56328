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

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(support::binary())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run jingzhi");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_names_the_bad_setting() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("flood.rules"),
        "rule flood \"积水\" {\n  severity red\n  group by cell\n  when max(sensor.value where kind == \"water_level\") over 5m > 0.3\n}\n",
    )
    .unwrap();
    let (ok, token_out, _) = run(
        &[
            "token",
            "new",
            "--name",
            "张工",
            "--role",
            "operator",
            "--district",
            "110105",
        ],
        &[],
    );
    assert!(ok);
    let entry = token_out
        .split("[[auth.tokens]]")
        .nth(1)
        .expect("the printed config entry");
    let file = dir.path().join("jingzhi.toml");
    std::fs::write(
        &file,
        format!(
            "rules = \"rules\"\ndata_dir = \"data\"\nsync = \"always\"\n[[auth.tokens]]{entry}"
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = run(&["config", "check", path], &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(": ok"), "{out}");
    assert!(out.contains("1 rules"), "{out}");
    assert!(out.contains("张工 (operator)"), "{out}");

    // The environment overrides the file, and is checked too.
    let (ok, _, err) = run(&["config", "check", path], &[("JINGZHI_SYNC", "sometimes")]);
    assert!(!ok);
    assert!(err.contains("`sync`"), "{err}");
    let (ok, _, err) = run(&["config", "check", path], &[("JINGZHI_WORKERS", "many")]);
    assert!(!ok);
    assert!(err.contains("JINGZHI_WORKERS"), "{err}");

    for (text, wanted) in [
        ("lateness = \"soon\"\n", "`lateness`"),
        ("colour = \"red\"\n", "colour"),
        ("workers = \"two\"\n", "workers"),
        ("rules = \"nowhere\"\n", "`rules`"),
        (
            "[[auth.tokens]]\nname = \"x\"\nsha256 = \"abc\"\nroles = [\"operator\"]\n",
            "auth.tokens[0].sha256",
        ),
        (
            "[[auth.tokens]]\nname = \"x\"\nsha256 = \"abc\"\nroles = [\"king\"]\n",
            "king",
        ),
        (
            "[[masking.patterns]]\nname = \"x\"\nregex = \"(\"\nkeep_prefix = 0\nkeep_suffix = 0\n",
            "masking",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let (ok, out, err) = run(&["config", "check", path], &[]);
        assert!(!ok, "{text} was accepted: {out}");
        assert!(err.contains(wanted), "{text}: wanted {wanted:?} in {err}");
    }
    // A server refuses to start on the same file, with the same message.
    let (ok, _, err) = run(&["serve", "--config", path, "--listen", "127.0.0.1:0"], &[]);
    assert!(!ok);
    assert!(err.contains("masking"), "{err}");
}

#[test]
fn simulate_names_a_bad_city_or_rate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.ndjson");
    let out = out.to_str().unwrap();
    let (ok, _, stderr) = run(&["simulate", "--city", "atlantis", "--out", out], &[]);
    assert!(!ok);
    assert!(stderr.contains("unknown city `atlantis`"), "{stderr}");
    assert!(
        stderr.contains("`default`") && stderr.contains("`beijing`"),
        "{stderr}"
    );
    for rate in ["0", "-5", "fast"] {
        let flag = format!("--rate={rate}");
        let (ok, _, stderr) = run(&["simulate", &flag, "--out", out], &[]);
        assert!(!ok, "--rate {rate}");
        assert!(
            stderr.contains("give a positive number of events per second"),
            "{stderr}"
        );
    }
    let (ok, _, stderr) = run(&["simulate", "--rate", "1e9", "--out", out], &[]);
    assert!(!ok);
    assert!(stderr.contains("this city can make at most"), "{stderr}");
    assert!(!std::path::Path::new(out).exists());
}

#[test]
fn bench_replay_takes_the_simulated_citys_reference_data() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("beijing.ndjson");
    let (ok, stdout, stderr) = run(
        &[
            "simulate",
            "--city",
            "beijing",
            "--rate",
            "2000",
            "--events",
            "2000",
            "--out",
            events.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("2000 events of the beijing city"),
        "{stdout}"
    );
    assert!(
        stdout.contains("events/s of event time (--rate 2000)"),
        "{stdout}"
    );
    let reference = dir.path().join("beijing.reference.json");
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/examples");
    let replay = |events: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["bench", "replay", "--events", events.to_str().unwrap()];
        args.extend(["--rules", rules]);
        args.extend(extra);
        let (ok, stdout, stderr) = run(&args, &[]);
        assert!(ok, "{stderr}");
        stdout
    };

    // Beside the events, the reference file is found by itself.
    let found = replay(&events, &[]);
    assert!(
        found.contains(&format!("reference data: {}", reference.display())),
        "{found}"
    );
    assert!(found.contains("2000 events (0 rejected"), "{found}");

    // Elsewhere, without it, the default grid cannot place the full-scale
    // city's cells; with --reference it can.
    let alone = tempfile::tempdir().unwrap();
    let moved = alone.path().join("beijing.ndjson");
    std::fs::copy(&events, &moved).unwrap();
    let without = replay(&moved, &[]);
    assert!(
        without.contains("reference data: built-in districts on the default grid"),
        "{without}"
    );
    assert!(!without.contains("(0 rejected"), "{without}");
    let given = replay(&moved, &["--reference", reference.to_str().unwrap()]);
    assert!(given.contains("2000 events (0 rejected"), "{given}");
}

#[test]
fn bench_rules_writes_a_hundred_rules_that_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("generated");
    let out_arg = out.to_str().unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "bench", "rules", "--count", "100", "--seed", "1", "--out", out_arg,
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("wrote 100 rules to "), "{stdout}");
    assert!(stdout.contains("group by: cell "), "{stdout}");
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 100);

    // Checked as a user would: no error and no warning.
    let check = Command::new(support::binary())
        .args(["rules", "check"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        check.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("100 rules in 100 files: ok"));

    // The same seed writes the same bytes, over the earlier set.
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let (ok, _, stderr) = run(&["bench", "rules", "--out", out_arg], &[]);
    assert!(ok, "{stderr}");
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after);

    // The engine takes them all (a short recording: this is a debug build).
    let events = dir.path().join("city.ndjson");
    let (ok, _, stderr) = run(
        &[
            "simulate",
            "--seed",
            "3",
            "--events",
            "2000",
            "--out",
            events.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(
        &[
            "bench",
            "replay",
            "--events",
            events.to_str().unwrap(),
            "--rules",
            out_arg,
            "--no-history",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2000 events (0 rejected"), "{stdout}");
    assert!(stdout.contains("with 100 rule(s)"), "{stdout}");

    // Clear refusals.
    let (ok, _, stderr) = run(&["bench", "rules", "--count", "0", "--out", out_arg], &[]);
    assert!(!ok);
    assert!(stderr.contains("--count must be at least 1"), "{stderr}");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let (ok, _, stderr) = run(
        &[
            "bench",
            "rules",
            "--out",
            blocker.join("rules").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("cannot create"), "{stderr}");
}

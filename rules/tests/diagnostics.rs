//! Golden diagnostics: each `tests/diagnostics/NAME.rules` is compiled on
//! its own and its rendered diagnostics compared with `NAME.out`.
//!
//! `JINGZHI_BLESS=1 cargo test -p jingzhi-rules --test diagnostics`
//! rewrites the `.out` files from the current output; review the diff.

mod common;

use jingzhi_rules::lang::{compile, diagnostics_json, render_diagnostics, CheckOptions};

#[test]
fn golden_diagnostics() {
    let bless = std::env::var_os("JINGZHI_BLESS").is_some_and(|v| v == "1");
    let inputs = common::files_in("tests/diagnostics", "rules");
    assert!(!inputs.is_empty());
    let mut failures = Vec::new();
    for input in &inputs {
        let files = [common::source(input)];
        let compiled = compile(&files, &CheckOptions::default());
        let rendered = render_diagnostics(&compiled.diagnostics, &files);
        let golden = input.with_extension("out");
        if bless {
            std::fs::write(&golden, &rendered).unwrap();
            continue;
        }
        if compiled.diagnostics.is_empty() {
            failures.push(format!(
                "{}: no diagnostics; a golden input must show some",
                files[0].name
            ));
        }
        // The JSON form is derived from the same diagnostics; it must agree
        // on where each one starts.
        for (json, diag) in diagnostics_json(&compiled.diagnostics, &files)
            .iter()
            .zip(&compiled.diagnostics)
        {
            let header = format!("{}:{}:{}: ", json.file, json.line, json.column);
            assert!(rendered.contains(&header), "{header} missing for {diag:?}");
            assert!((json.end_line, json.end_column) >= (json.line, json.column));
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == rendered => {}
            Ok(expected) => failures.push(format!(
                "{} differs from {}\n--- expected\n{expected}\n--- actual\n{rendered}",
                files[0].name,
                golden.display()
            )),
            Err(e) => failures.push(format!(
                "{}: {e} (run with JINGZHI_BLESS=1)",
                golden.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every code in the table of `docs/rules.md` that a rule file can produce
/// has at least one golden file showing it.
#[test]
fn every_code_has_a_golden() {
    if std::env::var_os("JINGZHI_BLESS").is_some() {
        return; // the goldens are being rewritten by the other test
    }
    let all: String = common::files_in("tests/diagnostics", "out")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    // The codes are read from the documentation's table, so a new code
    // cannot be documented without a golden (E000 is about unreadable
    // files, which a golden cannot show).
    let docs = std::fs::read_to_string("../docs/rules.md").unwrap();
    let codes: Vec<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|c| {
            c.len() == 4
                && (c.starts_with('E') || c.starts_with('W'))
                && c[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .filter(|c| *c != "E000")
        .collect();
    assert!(
        codes.len() > 25,
        "the table of codes in docs/rules.md was not found"
    );
    let missing: Vec<&str> = codes
        .iter()
        .copied()
        .filter(|c| !all.contains(&format!("[{c}]")))
        .collect();
    assert!(missing.is_empty(), "no golden shows {missing:?}");
}

//! The sample rules in `rules/examples/` ship with the product and run in
//! its demo: together they must compile with no diagnostic at all. They are
//! checked together because a rule may be inhibited by a rule of another
//! file (`traffic_congestion` by `underpass_flooding`).

mod common;

use jingzhi_rules::lang::{check_files, compile, render_diagnostics, CheckOptions};

#[test]
fn every_example_compiles_cleanly() {
    let files = common::examples();
    assert!(
        files.len() >= 11,
        "expected the eleven sample rules, found {}",
        files.len()
    );
    let all = compile(&files, &CheckOptions::default());
    assert!(
        all.diagnostics.is_empty(),
        "{}",
        render_diagnostics(&all.diagnostics, &files)
    );
    assert_eq!(all.plans.len(), files.len(), "one rule per file");
    for (file, plan) in files.iter().zip(&all.plans) {
        assert_eq!(
            format!("{}.rules", plan.name),
            file.name,
            "a file is named after its rule"
        );
        assert!(plan.origin.starts_with(&file.name));
        assert!(
            file.text.starts_with('#'),
            "{}: a comment on top explains the rule",
            file.name
        );
    }
}

/// A file whose rule inhibits nothing outside it also compiles on its own.
#[test]
fn self_contained_examples_compile_alone() {
    for file in common::examples() {
        let compiled = compile(std::slice::from_ref(&file), &CheckOptions::default());
        if compiled.plans.iter().any(|p| !p.inhibited_by.is_empty())
            || compiled.diagnostics.iter().any(|d| d.code == "E028")
        {
            continue;
        }
        assert!(
            compiled.diagnostics.is_empty(),
            "{}",
            render_diagnostics(&compiled.diagnostics, std::slice::from_ref(&file))
        );
        assert_eq!(compiled.plans.len(), 1, "{}", file.name);
    }
}

#[test]
fn examples_check_from_disk() {
    let paths = common::files_in("examples", "rules");
    let (compiled, sources) = check_files(&paths, &CheckOptions::default());
    assert!(
        !compiled.has_errors(),
        "{}",
        render_diagnostics(&compiled.diagnostics, &sources)
    );
    assert_eq!(sources.len(), paths.len());
}

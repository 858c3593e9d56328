//! The sample rules in `rules/examples/` ship with the product and run in
//! its demo: they must compile with no diagnostic at all.

mod common;

use jingzhi_rules::lang::{check_files, compile, render_diagnostics, CheckOptions};

#[test]
fn every_example_compiles_cleanly() {
    let files = common::examples();
    assert!(
        files.len() >= 7,
        "expected the seven sample rules, found {}",
        files.len()
    );
    for file in &files {
        let compiled = compile(std::slice::from_ref(file), &CheckOptions::default());
        assert!(
            compiled.diagnostics.is_empty(),
            "{}",
            render_diagnostics(&compiled.diagnostics, std::slice::from_ref(file))
        );
        assert_eq!(compiled.plans.len(), 1, "{}: one rule per file", file.name);
        let plan = &compiled.plans[0];
        assert_eq!(
            format!("{}.rules", plan.name),
            file.name,
            "a file is named after its rule"
        );
        assert!(plan.origin.starts_with(&file.name));
    }
    // Together too: names are unique across files.
    let all = compile(&files, &CheckOptions::default());
    assert!(
        all.diagnostics.is_empty(),
        "{}",
        render_diagnostics(&all.diagnostics, &files)
    );
    assert_eq!(all.plans.len(), files.len());
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

//! `jingzhi rules …` commands: `check`, `test` (see [`crate::rules_test`])
//! and `backtest` (see [`crate::backtest`]).

use jingzhi_rules::lang::{check_files, render_diagnostics, CheckOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// `jingzhi rules check FILE...`: prints every diagnostic; fails on errors.
pub fn check(files: &[PathBuf]) -> ExitCode {
    let (compiled, sources) = check_files(files, &CheckOptions::default());
    if !compiled.diagnostics.is_empty() {
        eprint!("{}", render_diagnostics(&compiled.diagnostics, &sources));
    }
    if compiled.has_errors() {
        ExitCode::FAILURE
    } else {
        println!(
            "{} rule{} in {} file{}: ok",
            compiled.plans.len(),
            if compiled.plans.len() == 1 { "" } else { "s" },
            sources.len(),
            if sources.len() == 1 { "" } else { "s" }
        );
        ExitCode::SUCCESS
    }
}

/// `jingzhi rules test FILE...`: runs rule tests; fails on any failure.
pub fn test(files: &[PathBuf], workers: usize) -> ExitCode {
    crate::rules_test::run(files, workers)
}

/// `jingzhi rules backtest RULES EVENTS`: replays a recording through rules.
pub fn backtest(opts: &crate::backtest::BacktestOptions) -> ExitCode {
    crate::backtest::run(opts)
}

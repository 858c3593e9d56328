//! Reading rule files at start.

use crate::config::ServerConfig;
use jingzhi_rules::lang::{compile, render_diagnostics, CheckOptions, SourceFile};
use jingzhi_rules::plan::RulePlan;
use std::path::{Path, PathBuf};

/// The `*.rules` files of a directory, sorted by name.
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read the rules directory: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rules") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Compiles the configured rules; on any error, the rendered diagnostics.
pub fn load(config: &ServerConfig) -> Result<Vec<RulePlan>, String> {
    let mut sources: Vec<SourceFile> = config
        .builtin_rules
        .iter()
        .map(|(name, text)| SourceFile {
            name: name.clone(),
            text: text.clone(),
        })
        .collect();
    if let Some(dir) = &config.rules_dir {
        for path in rule_files(dir)? {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            sources.push(SourceFile {
                name: path.display().to_string(),
                text,
            });
        }
    }
    let options = CheckOptions {
        min_window_ms: config.resolution_ms.max(1),
    };
    let compiled = compile(&sources, &options);
    if compiled.has_errors() {
        return Err(render_diagnostics(&compiled.diagnostics, &sources));
    }
    Ok(compiled.plans)
}

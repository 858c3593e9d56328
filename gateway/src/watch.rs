//! Watching the rules directory (`serve --rules DIR`): every second the
//! `*.rules` files are compared with the last applied state (modification
//! time and size first, then contents); a changed, added or removed file is
//! recompiled together with the other files and the installed rules, and
//! its rules are published or removed as through the API.
//!
//! A set of files that does not check changes nothing: the rendered
//! diagnostics go to stderr and `jingzhi_rule_reload_errors_total` counts
//! the refusal (once per distinct state of the directory).

use crate::app::{rule_names, App, RuleEdit, RuleEditError};
use jingzhi_rules::lang::{render_diagnostics, SourceFile};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the directory is read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One rule file as last read.
#[derive(Clone, Debug, PartialEq)]
struct FileState {
    modified: Option<SystemTime>,
    len: u64,
    /// The text, or why it could not be read as UTF-8 text.
    text: Result<String, String>,
}

/// The `*.rules` files of a directory and their contents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    files: BTreeMap<PathBuf, FileState>,
    /// Why the directory itself could not be listed.
    error: Option<String>,
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: not valid UTF-8 (byte {}); save the file as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

impl Snapshot {
    /// Reads every `*.rules` file of `dir`.
    pub fn take(dir: &Path) -> Snapshot {
        Snapshot::default().refresh(dir)
    }

    /// Reads `dir` again, re-reading only files whose modification time or
    /// size differ from this snapshot.
    fn refresh(&self, dir: &Path) -> Snapshot {
        let paths = match crate::rules_load::rule_files(dir) {
            Ok(p) => p,
            Err(e) => {
                return Snapshot {
                    files: BTreeMap::new(),
                    error: Some(e),
                }
            }
        };
        let mut files = BTreeMap::new();
        for path in paths {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.as_ref().map_or(0, |m| m.len());
            let state = match self.files.get(&path) {
                Some(old) if old.modified == modified && old.len == len && modified.is_some() => {
                    old.clone()
                }
                _ => FileState {
                    modified,
                    len,
                    text: read_text(&path),
                },
            };
            files.insert(path, state);
        }
        Snapshot { files, error: None }
    }

    /// Whether both hold the same files with the same contents.
    fn same_contents(&self, other: &Snapshot) -> bool {
        self.error == other.error
            && self.files.len() == other.files.len()
            && self
                .files
                .iter()
                .zip(&other.files)
                .all(|((p, a), (q, b))| p == q && a.text == b.text)
    }

    /// Files added, removed or with other contents in `next`.
    fn changed_files(&self, next: &Snapshot) -> BTreeSet<PathBuf> {
        let mut changed = BTreeSet::new();
        for (path, state) in &next.files {
            if self
                .files
                .get(path)
                .is_none_or(|old| old.text != state.text)
            {
                changed.insert(path.clone());
            }
        }
        for path in self.files.keys() {
            if !next.files.contains_key(path) {
                changed.insert(path.clone());
            }
        }
        changed
    }

    fn names_in(&self, path: &Path) -> Vec<String> {
        match self.files.get(path).map(|f| &f.text) {
            Some(Ok(text)) => rule_names(text, 0),
            _ => Vec::new(),
        }
    }
}

/// Polls `dir` until the service shuts down; `applied` is the state the
/// running rules were loaded from.
pub async fn run(app: Arc<App>, dir: PathBuf, mut applied: Snapshot) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut shutdown = app.shutdown.subscribe();
    let mut seen = applied.clone();
    let mut refused: Option<Snapshot> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (previous, d) = (seen.clone(), dir.clone());
        let Ok(next) = tokio::task::spawn_blocking(move || previous.refresh(&d)).await else {
            continue;
        };
        seen = next.clone();
        if next.same_contents(&applied) {
            refused = None;
            continue;
        }
        if refused.as_ref().is_some_and(|r| r.same_contents(&next)) {
            continue;
        }
        match reload(&app, &applied, &next).await {
            Ok(summary) => {
                if !summary.is_empty() {
                    tracing::info!("rules reloaded from {}: {summary}", dir.display());
                }
                applied = next;
                refused = None;
            }
            Err(message) => {
                app.rule_reload_errors.inc();
                tracing::warn!(
                    "rules in {} not reloaded; the running rules are unchanged:\n{message}",
                    dir.display()
                );
                refused = Some(next);
            }
        }
    }
}

/// Applies the difference between `applied` and `next`; returns what
/// changed, or the rendered reason nothing did.
async fn reload(app: &App, applied: &Snapshot, next: &Snapshot) -> Result<String, String> {
    if let Some(e) = &next.error {
        return Err(e.clone());
    }
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for (path, state) in &next.files {
        match &state.text {
            Ok(text) => files.push(SourceFile {
                name: path.display().to_string(),
                text: text.clone(),
            }),
            Err(e) => unreadable.push(e.clone()),
        }
    }
    if !unreadable.is_empty() {
        return Err(unreadable.join("\n"));
    }
    let changed = applied.changed_files(next);
    let defined_now: BTreeSet<String> = next.files.keys().flat_map(|p| next.names_in(p)).collect();
    let publish: BTreeSet<String> = changed.iter().flat_map(|p| next.names_in(p)).collect();
    let remove: BTreeSet<String> = changed
        .iter()
        .flat_map(|p| applied.names_in(p))
        .filter(|n| !defined_now.contains(n))
        .collect();
    let edit = RuleEdit {
        files,
        publish_only: Some(publish),
        remove,
        origin: "file".into(),
        cite_place: true,
        whole_file_source: false,
    };
    match app.edit_rules(edit).await {
        Ok(outcome) => {
            if !outcome.diagnostics.is_empty() {
                eprint!(
                    "{}",
                    render_diagnostics(&outcome.diagnostics, &outcome.sources)
                );
            }
            let mut parts = Vec::new();
            if !outcome.published.is_empty() {
                let list: Vec<String> = outcome
                    .published
                    .iter()
                    .map(|(n, v, _)| format!("{n} (version {v})"))
                    .collect();
                parts.push(format!("published {}", list.join(", ")));
            }
            if !outcome.removed.is_empty() {
                parts.push(format!("removed {}", outcome.removed.join(", ")));
            }
            Ok(parts.join("; "))
        }
        Err(RuleEditError::Invalid {
            diagnostics,
            sources,
        }) => Err(render_diagnostics(&diagnostics, &sources)),
        Err(RuleEditError::Engine(e)) => Err(e.to_string()),
    }
}

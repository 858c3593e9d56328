//! The rule language's front door: files in, plans and diagnostics out.
//!
//! ```text
//! compile(files) ── per file: lexer → parser ── all files: checker ──▶ Compiled { plans, diagnostics }
//! ```
//!
//! Everything is reported in one run: lexical, syntax and semantic problems
//! of every file, sorted by file and position. A rule with an error yields
//! no plan; the others still do, but callers should treat the set as usable
//! only when [`Compiled::has_errors`] is false. Nothing here panics on any
//! input, and unreadable files are diagnostics, not failures.

use crate::check::check;
use crate::diag::render_all;
pub use crate::diag::{Diagnostic, DiagnosticJson, Level};
use crate::parser::parse;
use crate::plan::RulePlan;
use crate::span::Span;
use std::path::PathBuf;

/// A rule file: a name for people (usually its path) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The engine's time resolution: shorter windows are an error (E014).
    pub min_window_ms: u64,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            min_window_ms: 1000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Compiled {
    /// The rules without errors, in file order.
    pub plans: Vec<RulePlan>,
    /// Errors and warnings, by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Compiles rule files together (rule names must be unique across them).
pub fn compile(files: &[SourceFile], opts: &CheckOptions) -> Compiled {
    compile_readable(files, &vec![true; files.len()], opts)
}

/// Compiles the files marked readable; the others already have their
/// diagnostic and are only there so indices line up.
fn compile_readable(files: &[SourceFile], readable: &[bool], opts: &CheckOptions) -> Compiled {
    let mut diagnostics = Vec::new();
    let mut asts = Vec::new();
    for (index, file) in files.iter().enumerate() {
        if !readable.get(index).copied().unwrap_or(false) {
            continue;
        }
        if u32::try_from(file.text.len()).is_err() {
            diagnostics.push(Diagnostic::error(
                "E000",
                index,
                Span::at(0),
                "file is too large (over 4 GiB)",
            ));
            continue;
        }
        let (ast, diags) = parse(&file.text, index);
        diagnostics.extend(diags);
        asts.push((index, ast));
    }
    let checked = check(files, &asts, opts, &mut diagnostics);
    // A rule is only as good as its text: an error anywhere inside it (a bad
    // escape, a duplicate name) withholds its plan.
    let plans = checked
        .into_iter()
        .filter(|c| {
            !diagnostics
                .iter()
                .any(|d| d.is_error() && d.file == c.file && c.span.contains(d.span))
        })
        .map(|c| c.plan)
        .collect();
    diagnostics.sort_by_key(|d| (d.file, d.span.start, d.span.end));
    Compiled { plans, diagnostics }
}

/// Reads and compiles rule files. A file that cannot be read, or is not
/// UTF-8, gets an E000 diagnostic; the others are compiled regardless.
/// Returns the sources too, for rendering the diagnostics.
pub fn check_files(paths: &[PathBuf], opts: &CheckOptions) -> (Compiled, Vec<SourceFile>) {
    let mut sources = Vec::with_capacity(paths.len());
    let mut readable = Vec::with_capacity(paths.len());
    let mut read_errors = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => {
                    sources.push(SourceFile { name, text });
                    readable.push(true);
                }
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    // The lossy text equals the file up to `at`, where a
                    // replacement character stands for the bad bytes.
                    let end = text
                        .get(at..)
                        .and_then(|t| t.chars().next())
                        .map_or(at, |c| at + c.len_utf8());
                    read_errors.push(
                        Diagnostic::error(
                            "E000",
                            index,
                            Span::new(at, end),
                            "file is not valid UTF-8",
                        )
                        .with_label("invalid byte")
                        .with_help("save the file as UTF-8"),
                    );
                    sources.push(SourceFile { name, text });
                    readable.push(false);
                }
            },
            Err(e) => {
                read_errors.push(Diagnostic::error(
                    "E000",
                    index,
                    Span::at(0),
                    format!("cannot read `{name}`: {e}"),
                ));
                sources.push(SourceFile {
                    name,
                    text: String::new(),
                });
                readable.push(false);
            }
        }
    }
    let mut compiled = compile_readable(&sources, &readable, opts);
    compiled.diagnostics.extend(read_errors);
    compiled
        .diagnostics
        .sort_by_key(|d| (d.file, d.span.start, d.span.end));
    (compiled, sources)
}

/// Renders diagnostics for a terminal: `file:line:col: error[CODE]: …`
/// with the line, a caret and any help, separated by blank lines.
pub fn render_diagnostics(diags: &[Diagnostic], files: &[SourceFile]) -> String {
    render_all(diags, files)
}

/// Diagnostics with lines and columns, for the HTTP API.
pub fn diagnostics_json(diags: &[Diagnostic], files: &[SourceFile]) -> Vec<DiagnosticJson> {
    diags
        .iter()
        .map(|d| DiagnosticJson::new(d, files))
        .collect()
}

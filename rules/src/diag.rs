//! Diagnostics: what went wrong, where, and what probably fixes it.
//!
//! A [`Diagnostic`] carries a byte span; lines and columns are computed only
//! when it is shown, either rendered for a terminal in the style of rustc and
//! VRL —
//!
//! ```text
//! flood.rules:4:20: error[E011]: unknown field `speed` on stream `traffic`
//!    |
//!  4 |    and avg(traffic.speed) over 10m < 15
//!    |                    ^^^^^ not a field of `traffic`
//!    = help: did you mean `speed_kmh`?
//!    = note: traffic has: speed_kmh, flow, occupancy, segment_id
//! ```
//!
//! — or as [`DiagnosticJson`] for the HTTP API. Codes are listed in
//! `docs/rules.md` and never reused for a different problem.

use crate::lang::SourceFile;
use crate::span::{line_col, line_range, Span};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use unicode_width::UnicodeWidthChar;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One problem found in a rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// `E001`…, `W001`…: see the table in `docs/rules.md`.
    pub code: &'static str,
    pub level: Level,
    pub message: String,
    /// Index of the file in the slice given to [`crate::lang::compile`].
    pub file: usize,
    pub span: Span,
    /// Shown next to the caret.
    pub label: Option<String>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        file: usize,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            code,
            level: Level::Error,
            message: message.into(),
            file,
            span,
            label: None,
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn warning(
        code: &'static str,
        file: usize,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::error(code, file, span, message)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets the help only when there is one (a suggestion may not exist).
    pub fn with_help_opt(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// A diagnostic as the HTTP API returns it. Lines and columns are 1-based;
/// columns count characters; `end_*` is the position just after the span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticJson {
    pub code: String,
    pub level: Level,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub label: Option<String>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

fn file_of(files: &[SourceFile], index: usize) -> (&str, &str) {
    files
        .get(index)
        .map_or(("<unknown>", ""), |f| (f.name.as_str(), f.text.as_str()))
}

impl DiagnosticJson {
    pub fn new(diag: &Diagnostic, files: &[SourceFile]) -> DiagnosticJson {
        let (name, text) = file_of(files, diag.file);
        let start = line_col(text, diag.span.start as usize);
        let end = line_col(text, diag.span.end as usize);
        DiagnosticJson {
            code: diag.code.to_string(),
            level: diag.level,
            message: diag.message.clone(),
            file: name.to_string(),
            line: start.line,
            column: start.column,
            end_line: end.line,
            end_column: end.column,
            label: diag.label.clone(),
            help: diag.help.clone(),
            notes: diag.notes.clone(),
        }
    }
}

/// `file:line:col` of a byte offset, for notes that point somewhere else.
pub fn place(files: &[SourceFile], file: usize, offset: u32) -> String {
    let (name, text) = file_of(files, file);
    let at = line_col(text, offset as usize);
    format!("{name}:{}:{}", at.line, at.column)
}

/// Renders one diagnostic for a terminal (no colour), ending in a newline.
pub fn render(diag: &Diagnostic, files: &[SourceFile]) -> String {
    let (name, text) = file_of(files, diag.file);
    let mut out = String::new();
    let level = diag.level.name();
    if text.is_empty() {
        // Nothing to show (an unreadable file): no position, no snippet.
        let _ = writeln!(out, "{name}: {level}[{}]: {}", diag.code, diag.message);
        let gutter = " ".repeat(2);
        append_help_and_notes(&mut out, diag, &gutter);
        return out;
    }
    let start = diag.span.start as usize;
    let at = line_col(text, start);
    let _ = writeln!(
        out,
        "{name}:{}:{}: {level}[{}]: {}",
        at.line, at.column, diag.code, diag.message
    );

    let width = at.line.to_string().len();
    let gutter = " ".repeat(width + 2);
    let line = line_range(text, start);
    let line_text = &text[line.clone()];
    // The caret may start at the very end of the line (something missing
    // there); it underlines to the span's end or the end of the line.
    let caret_start = start.clamp(line.start, line.end);
    let caret_end = (diag.span.end as usize).clamp(caret_start, line.end);

    let mut shown = String::new();
    let mut pad = String::new();
    let mut carets = 0usize;
    for (i, c) in line_text.char_indices() {
        let offset = line.start + i;
        let (display, w) = display_char(c);
        shown.push(display);
        if offset < caret_start {
            if c == '\t' {
                pad.push('\t');
            } else {
                pad.push_str(&" ".repeat(w));
            }
        } else if offset < caret_end {
            carets += w.max(usize::from(c == '\t'));
        }
    }
    let carets = "^".repeat(carets.max(1));
    let _ = writeln!(out, "{gutter}|");
    let _ = writeln!(out, " {:>width$} | {shown}", at.line);
    match &diag.label {
        Some(label) => {
            let _ = writeln!(out, "{gutter}| {pad}{carets} {label}");
        }
        None => {
            let _ = writeln!(out, "{gutter}| {pad}{carets}");
        }
    }
    append_help_and_notes(&mut out, diag, &gutter);
    out
}

/// How a source character is shown, and its display width. Tabs stay tabs
/// (the caret line copies them, so alignment holds at any tab width);
/// other control characters become spaces so they cannot garble a terminal.
fn display_char(c: char) -> (char, usize) {
    match c {
        '\t' => ('\t', 0),
        c if c.is_control() => (' ', 1),
        c => (c, c.width().unwrap_or(0)),
    }
}

fn append_help_and_notes(out: &mut String, diag: &Diagnostic, gutter: &str) {
    if let Some(help) = &diag.help {
        let _ = writeln!(out, "{gutter}= help: {help}");
    }
    for note in &diag.notes {
        let _ = writeln!(out, "{gutter}= note: {note}");
    }
}

/// Renders all diagnostics, separated by blank lines.
pub fn render_all(diags: &[Diagnostic], files: &[SourceFile]) -> String {
    let rendered: Vec<String> = diags.iter().map(|d| render(d, files)).collect();
    rendered.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Vec<SourceFile> {
        vec![SourceFile {
            name: "t.rules".into(),
            text: text.into(),
        }]
    }

    #[test]
    fn caret_after_wide_characters_and_tabs() {
        let files = file("rule 下穿桥 {\n\tlet x\n");
        let at = files[0].text.find('{').unwrap();
        let d = Diagnostic::error("E001", 0, Span::new(at, at + 1), "m").with_label("here");
        assert_eq!(
            render(&d, &files),
            "t.rules:1:10: error[E001]: m\n   |\n 1 | rule 下穿桥 {\n   |             ^ here\n"
        );
        let at = files[0].text.find('x').unwrap();
        let d = Diagnostic::error("E001", 0, Span::new(at, at + 1), "m");
        assert!(render(&d, &files).ends_with("\n 2 | \tlet x\n   | \t    ^\n"));
    }

    #[test]
    fn unreadable_file_has_no_snippet() {
        let files = file("");
        let d = Diagnostic::error("E000", 0, Span::at(0), "cannot read").with_note("n");
        assert_eq!(
            render(&d, &files),
            "t.rules: error[E000]: cannot read\n  = note: n\n"
        );
    }
}

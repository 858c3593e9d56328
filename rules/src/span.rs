//! Byte spans into a rule file, and turning them into lines and columns.
//!
//! Everything the front end produces points into the source by byte offset;
//! lines and columns are computed only when something is shown to a person
//! (the rendered diagnostic, its JSON form, a note naming another place).
//! Columns are 1-based and count Unicode scalar values, so a caret after
//! `下穿桥` sits at column 4, not 10.

use serde::{Deserialize, Serialize};

/// A half-open byte range `start..end` into one file's text.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// A span from byte offsets; offsets beyond `u32::MAX` saturate (files
    /// that large are refused before lexing, so this never loses a place).
    pub fn new(start: usize, end: usize) -> Span {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let (start, end) = (clamp(start), clamp(end));
        Span {
            start,
            end: end.max(start),
        }
    }

    /// An empty span at `offset`, for "something is missing here".
    pub fn at(offset: usize) -> Span {
        Span::new(offset, offset)
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn contains(self, other: Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// A position for people: 1-based line and column (in characters).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// Clamps `offset` into `text` and back to the start of the character it
/// falls in, so slicing with it can never panic.
pub fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut i = offset.min(text.len());
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> LineCol {
    let offset = floor_char_boundary(text, offset);
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    LineCol {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// The byte range of the line containing `offset`, without its line break
/// (`\n` or `\r\n`).
pub fn line_range(text: &str, offset: usize) -> std::ops::Range<usize> {
    let offset = floor_char_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let mut end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    if end > start && text.as_bytes().get(end - 1) == Some(&b'\r') {
        end -= 1;
    }
    start..end.max(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters() {
        let text = "rule 下穿桥 {\n  when x\n";
        assert_eq!(line_col(text, 0), LineCol { line: 1, column: 1 });
        let brace = text.find('{').unwrap();
        assert_eq!(
            line_col(text, brace),
            LineCol {
                line: 1,
                column: 10
            }
        );
        let x = text.find('x').unwrap();
        assert_eq!(line_col(text, x), LineCol { line: 2, column: 8 });
        assert_eq!(line_col(text, text.len() + 10).line, 3);
        // Inside a multi-byte character: snaps to its start.
        assert_eq!(line_col(text, 6), LineCol { line: 1, column: 6 });
    }

    #[test]
    fn line_ranges_drop_the_break() {
        let text = "ab\r\ncd\n";
        assert_eq!(&text[line_range(text, 1)], "ab");
        assert_eq!(&text[line_range(text, 4)], "cd");
        assert_eq!(&text[line_range(text, text.len())], "");
    }
}

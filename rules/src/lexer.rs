//! The lexer: rule text → tokens with byte spans.
//!
//! It never stops at a problem. A bad character is reported (E005) and
//! skipped; a bad string escape (E003), an unterminated string (E002) or a
//! malformed number or duration (E004) is reported and still yields a token,
//! so the parser sees the rule's shape and can report what else is wrong.
//!
//! Names are Unicode (`char::is_alphabetic`, so `水位` is a name). A number
//! immediately followed by letters is a duration (`10m`, `1h30m`); strings
//! end on the line they start on.

use crate::diag::Diagnostic;
use crate::span::Span;
use crate::time::parse_duration;
use std::fmt;

/// Reserved words (`docs/rules.md`, "Grammar"). A field spelled like one is
/// still readable after its stream (`incident.severity`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Keyword {
    Rule,
    Severity,
    Group,
    By,
    Let,
    When,
    Message,
    Where,
    Over,
    Tumbling,
    Every,
    And,
    Or,
    Not,
    In,
    True,
    False,
    For,
    Clear,
    After,
    Within,
    Absent,
    Labels,
    Inhibited,
    Ring,
    Rings,
}

impl Keyword {
    pub const ALL: [Keyword; 26] = [
        Keyword::Rule,
        Keyword::Severity,
        Keyword::Group,
        Keyword::By,
        Keyword::Let,
        Keyword::When,
        Keyword::Message,
        Keyword::Where,
        Keyword::Over,
        Keyword::Tumbling,
        Keyword::Every,
        Keyword::And,
        Keyword::Or,
        Keyword::Not,
        Keyword::In,
        Keyword::True,
        Keyword::False,
        Keyword::For,
        Keyword::Clear,
        Keyword::After,
        Keyword::Within,
        Keyword::Absent,
        Keyword::Labels,
        Keyword::Inhibited,
        Keyword::Ring,
        Keyword::Rings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Rule => "rule",
            Keyword::Severity => "severity",
            Keyword::Group => "group",
            Keyword::By => "by",
            Keyword::Let => "let",
            Keyword::When => "when",
            Keyword::Message => "message",
            Keyword::Where => "where",
            Keyword::Over => "over",
            Keyword::Tumbling => "tumbling",
            Keyword::Every => "every",
            Keyword::And => "and",
            Keyword::Or => "or",
            Keyword::Not => "not",
            Keyword::In => "in",
            Keyword::True => "true",
            Keyword::False => "false",
            Keyword::For => "for",
            Keyword::Clear => "clear",
            Keyword::After => "after",
            Keyword::Within => "within",
            Keyword::Absent => "absent",
            Keyword::Labels => "labels",
            Keyword::Inhibited => "inhibited",
            Keyword::Ring => "ring",
            Keyword::Rings => "rings",
        }
    }

    pub fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| k.as_str() == word)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum TokenKind {
    Name(String),
    Keyword(Keyword),
    /// A finite number (a malformed one, already reported, reads as 0).
    Number(f64),
    /// Milliseconds; `None` when malformed (already reported).
    Duration(Option<u64>),
    /// The decoded text.
    String(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Dot,
    Assign,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Eof,
}

impl fmt::Display for TokenKind {
    /// How a token is named in "expected …, found …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let punct = |f: &mut fmt::Formatter<'_>, s: &str| write!(f, "`{s}`");
        match self {
            TokenKind::Name(n) => write!(f, "name `{n}`"),
            TokenKind::Keyword(k) => write!(f, "`{}`", k.as_str()),
            TokenKind::Number(_) => f.write_str("a number"),
            TokenKind::Duration(_) => f.write_str("a duration"),
            TokenKind::String(_) => f.write_str("a string"),
            TokenKind::LBrace => punct(f, "{"),
            TokenKind::RBrace => punct(f, "}"),
            TokenKind::LParen => punct(f, "("),
            TokenKind::RParen => punct(f, ")"),
            TokenKind::LBracket => punct(f, "["),
            TokenKind::RBracket => punct(f, "]"),
            TokenKind::Comma => punct(f, ","),
            TokenKind::Colon => punct(f, ":"),
            TokenKind::Dot => punct(f, "."),
            TokenKind::Assign => punct(f, "="),
            TokenKind::EqEq => punct(f, "=="),
            TokenKind::NotEq => punct(f, "!="),
            TokenKind::Lt => punct(f, "<"),
            TokenKind::Le => punct(f, "<="),
            TokenKind::Gt => punct(f, ">"),
            TokenKind::Ge => punct(f, ">="),
            TokenKind::Plus => punct(f, "+"),
            TokenKind::Minus => punct(f, "-"),
            TokenKind::Star => punct(f, "*"),
            TokenKind::Slash => punct(f, "/"),
            TokenKind::Eof => f.write_str("end of file"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// A string literal read from source, with where each byte of its value
/// came from — so a problem inside a message template can be pointed at
/// exactly, escapes and all.
#[derive(Clone, Debug, PartialEq)]
pub struct ScannedString {
    pub value: String,
    /// `offsets[i]` is the source offset of the character (or escape) that
    /// produced byte `i` of `value`; one extra entry marks the end.
    pub offsets: Vec<u32>,
    /// Source offset just after the literal (after the closing quote, or
    /// where it stopped when unterminated).
    pub end: usize,
    pub terminated: bool,
    /// Bad escapes: where, and what to say.
    pub bad_escapes: Vec<(Span, String)>,
}

/// Reads the string literal whose opening quote is at `start`.
pub fn scan_string(text: &str, start: usize) -> ScannedString {
    let mut value = String::new();
    let mut offsets = Vec::new();
    let mut bad_escapes = Vec::new();
    let push = |value: &mut String, offsets: &mut Vec<u32>, c: char, at: usize| {
        value.push(c);
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        offsets.extend(std::iter::repeat_n(at, c.len_utf8()));
    };
    let mut chars = text
        .get(start + 1..)
        .unwrap_or("")
        .char_indices()
        .peekable();
    let base = start + 1;
    let mut end = text.len();
    let mut terminated = false;
    while let Some((i, c)) = chars.next() {
        let at = base + i;
        match c {
            '"' => {
                end = at + 1;
                terminated = true;
                break;
            }
            '\n' => {
                end = at;
                break;
            }
            '\\' => {
                let Some(&(_, e)) = chars.peek() else {
                    end = text.len();
                    break;
                };
                match e {
                    '"' | '\\' | 'n' | 't' => {
                        chars.next();
                        let decoded = match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        };
                        push(&mut value, &mut offsets, decoded, at);
                    }
                    'u' => {
                        chars.next();
                        match scan_unicode_escape(&mut chars) {
                            Ok(c) => push(&mut value, &mut offsets, c, at),
                            Err(why) => {
                                let stop = chars.peek().map_or(text.len(), |&(j, _)| base + j);
                                bad_escapes.push((Span::new(at, stop), why));
                            }
                        }
                    }
                    // A backslash at the end of a line: the string is
                    // unterminated, which is reported on its own.
                    '\n' | '\r' => {}
                    other => {
                        chars.next();
                        bad_escapes.push((
                            Span::new(at, at + 1 + other.len_utf8()),
                            format!("invalid escape `\\{}` in a string", other.escape_debug()),
                        ));
                    }
                }
            }
            '\r' if matches!(chars.peek(), Some((_, '\n'))) => {
                end = at;
                break;
            }
            c => push(&mut value, &mut offsets, c, at),
        }
    }
    let closing = if terminated { end - 1 } else { end };
    offsets.push(u32::try_from(closing).unwrap_or(u32::MAX));
    ScannedString {
        value,
        offsets,
        end,
        terminated,
        bad_escapes,
    }
}

/// After `\u`: `{` 1–6 hex digits `}` naming a Unicode scalar value.
fn scan_unicode_escape(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<char, String> {
    const SHAPE: &str = "a Unicode escape is written `\\u{6C34}` (1 to 6 hex digits in braces)";
    if !matches!(chars.peek(), Some((_, '{'))) {
        return Err(format!("invalid escape: {SHAPE}"));
    }
    chars.next();
    let mut digits = String::new();
    while let Some(&(_, c)) = chars.peek() {
        if c == '}' || c == '"' || c == '\n' || digits.len() > 6 {
            break;
        }
        digits.push(c);
        chars.next();
    }
    if !matches!(chars.peek(), Some((_, '}'))) {
        return Err(format!("invalid escape: {SHAPE}"));
    }
    chars.next();
    if digits.is_empty() || digits.len() > 6 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("invalid escape: {SHAPE}"));
    }
    let n = u32::from_str_radix(&digits, 16).map_err(|_| format!("invalid escape: {SHAPE}"))?;
    char::from_u32(n)
        .ok_or_else(|| format!("invalid escape: `\\u{{{digits}}}` is not a Unicode character"))
}

/// Whether `c` may start a name.
pub fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Whether `c` may continue a name.
pub fn is_name_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `word` is a name that is not a reserved word.
pub fn is_plain_name(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(is_name_start)
        && chars.all(is_name_continue)
        && Keyword::from_word(word).is_none()
}

/// Splits `text` into tokens, ending with [`TokenKind::Eof`]. Problems go to
/// `diags` (tagged with `file`).
pub fn tokenize(text: &str, file: usize, diags: &mut Vec<Diagnostic>) -> Vec<Token> {
    let mut lexer = Lexer {
        text,
        pos: 0,
        file,
        diags,
        tokens: Vec::new(),
    };
    lexer.run();
    lexer.tokens
}

struct Lexer<'a, 'd> {
    text: &'a str,
    pos: usize,
    file: usize,
    diags: &'d mut Vec<Diagnostic>,
    tokens: Vec<Token>,
}

impl Lexer<'_, '_> {
    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.text.get(self.pos..).and_then(|s| s.chars().nth(n))
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            span: Span::new(start, self.pos),
        });
    }

    fn run(&mut self) {
        // A byte-order mark from a Windows editor is not a character of the rule.
        if self.text.starts_with('\u{feff}') {
            self.pos = '\u{feff}'.len_utf8();
        }
        while let Some(c) = self.peek() {
            let start = self.pos;
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '#' {
                self.pos = self.text[start..]
                    .find('\n')
                    .map_or(self.text.len(), |i| start + i);
            } else if c.is_ascii_digit() {
                self.number(start);
            } else if is_name_start(c) {
                self.name(start);
            } else if c == '"' {
                self.string(start);
            } else if c == '“' {
                self.curly_string(start);
            } else {
                self.punct(start, c);
            }
        }
        // "Missing something at the end" points just after the last token,
        // not at trailing blank lines.
        let end = self.tokens.last().map_or(0, |t| t.span.end as usize);
        self.tokens.push(Token {
            kind: TokenKind::Eof,
            span: Span::at(end),
        });
    }

    fn eat_while(&mut self, pred: impl Fn(char) -> bool) {
        while let Some(c) = self.peek() {
            if !pred(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn name(&mut self, start: usize) {
        self.eat_while(is_name_continue);
        let word = &self.text[start..self.pos];
        let kind = match Keyword::from_word(word) {
            Some(k) => TokenKind::Keyword(k),
            None => TokenKind::Name(word.to_string()),
        };
        self.push(kind, start);
    }

    fn number(&mut self, start: usize) {
        self.eat_while(|c| c.is_ascii_digit());
        let mut fractional = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            fractional = true;
            self.pos += 1;
            self.eat_while(|c| c.is_ascii_digit());
        }
        let exponent = matches!(self.peek(), Some('e' | 'E'))
            && match self.peek_at(1) {
                Some(d) if d.is_ascii_digit() => true,
                Some('+' | '-') => self.peek_at(2).is_some_and(|d| d.is_ascii_digit()),
                _ => false,
            };
        if exponent {
            fractional = true;
            self.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            self.eat_while(|c| c.is_ascii_digit());
        }
        if self.peek().is_some_and(is_name_continue) {
            // Digits run into letters: a duration such as `10m` or `1h30m`.
            self.eat_while(is_name_continue);
            let text = &self.text[start..self.pos];
            let ms = if fractional {
                self.error(
                    "E004",
                    start,
                    format!("`{text}` is not a valid duration"),
                    "durations are whole numbers of units, like `90s` or `1h30m`",
                );
                None
            } else {
                match parse_duration(text) {
                    Ok(ms) => Some(ms),
                    Err(why) => {
                        self.error(
                            "E004",
                            start,
                            why,
                            "units are ms, s, m, h and d, as in `500ms`, `10m` or `1h30m`",
                        );
                        None
                    }
                }
            };
            self.push(TokenKind::Duration(ms), start);
            return;
        }
        let text = &self.text[start..self.pos];
        let value = match text.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                self.error(
                    "E004",
                    start,
                    format!("number `{text}` is too large"),
                    "numbers must fit a 64-bit float",
                );
                0.0
            }
        };
        self.push(TokenKind::Number(value), start);
    }

    fn error(&mut self, code: &'static str, start: usize, message: String, help: &str) {
        self.diags.push(
            Diagnostic::error(code, self.file, Span::new(start, self.pos), message)
                .with_label("invalid")
                .with_help(help),
        );
    }

    fn string(&mut self, start: usize) {
        let scanned = scan_string(self.text, start);
        self.pos = scanned.end.max(start + 1);
        for (span, why) in scanned.bad_escapes {
            self.diags.push(
                Diagnostic::error("E003", self.file, span, why)
                    .with_label("invalid escape")
                    .with_help(r#"the escapes are \" \\ \n \t and \u{XXXX}"#),
            );
        }
        if !scanned.terminated {
            self.diags.push(
                Diagnostic::error(
                    "E002",
                    self.file,
                    Span::new(start, self.pos),
                    "unterminated string",
                )
                .with_label("this string has no closing `\"`")
                .with_help("a string ends on the line it starts on; write `\\n` for a line break"),
            );
        }
        self.push(TokenKind::String(scanned.value), start);
    }

    /// `“…”`: Chinese quotation marks, as an input method types them.
    /// Reported, then read as the string that was meant (up to `”` or `"`
    /// on the same line), so the rest of the rule is still checked.
    fn curly_string(&mut self, start: usize) {
        let open = '“'.len_utf8();
        let rest = &self.text[start + open..];
        let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
        let Some(close) = line.find(['”', '"']) else {
            self.punct(start, '“');
            return;
        };
        let closing_len = line[close..].chars().next().map_or(1, char::len_utf8);
        self.pos = start + open + close + closing_len;
        self.diags.push(
            Diagnostic::error(
                "E005",
                self.file,
                Span::new(start, start + open),
                "unexpected character `“`",
            )
            .with_label("not part of the rule language")
            .with_help(
                "`“ ”` are Chinese quotation marks; strings are written in ASCII quotes `\"…\"`",
            ),
        );
        self.push(TokenKind::String(line[..close].to_string()), start);
    }

    fn punct(&mut self, start: usize, c: char) {
        let next = self.peek_at(1);
        let (kind, len) = match (c, next) {
            ('=', Some('=')) => (Some(TokenKind::EqEq), 2),
            ('!', Some('=')) => (Some(TokenKind::NotEq), 2),
            ('<', Some('=')) => (Some(TokenKind::Le), 2),
            ('>', Some('=')) => (Some(TokenKind::Ge), 2),
            ('=', _) => (Some(TokenKind::Assign), 1),
            ('<', _) => (Some(TokenKind::Lt), 1),
            ('>', _) => (Some(TokenKind::Gt), 1),
            ('{', _) => (Some(TokenKind::LBrace), 1),
            ('}', _) => (Some(TokenKind::RBrace), 1),
            ('(', _) => (Some(TokenKind::LParen), 1),
            (')', _) => (Some(TokenKind::RParen), 1),
            ('[', _) => (Some(TokenKind::LBracket), 1),
            (']', _) => (Some(TokenKind::RBracket), 1),
            (',', _) => (Some(TokenKind::Comma), 1),
            (':', _) => (Some(TokenKind::Colon), 1),
            ('.', _) => (Some(TokenKind::Dot), 1),
            ('+', _) => (Some(TokenKind::Plus), 1),
            ('-', _) => (Some(TokenKind::Minus), 1),
            ('*', _) => (Some(TokenKind::Star), 1),
            ('/', _) => (Some(TokenKind::Slash), 1),
            _ => (None, c.len_utf8()),
        };
        self.pos += len;
        if let Some(kind) = kind {
            self.push(kind, start);
            return;
        }
        // Not part of the language. Full-width punctuation from a Chinese
        // input method, `&&` and the like have an obvious meaning: report
        // them, then carry on as if the intended token had been written,
        // so one slip gives one error rather than a cascade.
        let guess = likely_meant(c, next);
        if let Some(guess) = &guess {
            self.pos = start + guess.len;
        }
        let written = &self.text[start..self.pos];
        let what = if written.chars().count() == 1 {
            "unexpected character"
        } else {
            "unexpected"
        };
        let mut d = Diagnostic::error(
            "E005",
            self.file,
            Span::new(start, self.pos),
            format!("{what} `{}`", written.escape_debug()),
        )
        .with_label("not part of the rule language");
        if let Some(guess) = guess {
            d = d.with_help(guess.help);
            self.diags.push(d);
            if let Some(kind) = guess.token {
                self.push(kind, start);
            }
        } else {
            self.diags.push(d);
        }
    }
}

/// What the author probably meant by a character the language lacks.
struct Guess {
    help: String,
    /// The token to carry on with, when the intent is unambiguous.
    token: Option<TokenKind>,
    /// Bytes the guess covers (`&&` is two characters).
    len: usize,
}

fn likely_meant(c: char, next: Option<char>) -> Option<Guess> {
    let full_width = |ascii: &str, token: Option<TokenKind>| Guess {
        help: format!("`{c}` is full-width; write the ASCII `{ascii}`"),
        token,
        len: c.len_utf8(),
    };
    let word = |help: &str, token: Option<TokenKind>, len: usize| Guess {
        help: help.to_string(),
        token,
        len,
    };
    Some(match (c, next) {
        ('，', _) => full_width(",", Some(TokenKind::Comma)),
        ('（', _) => full_width("(", Some(TokenKind::LParen)),
        ('）', _) => full_width(")", Some(TokenKind::RParen)),
        ('【' | '［', _) => full_width("[", Some(TokenKind::LBracket)),
        ('】' | '］', _) => full_width("]", Some(TokenKind::RBracket)),
        ('｛', _) => full_width("{", Some(TokenKind::LBrace)),
        ('｝', _) => full_width("}", Some(TokenKind::RBrace)),
        ('＝', _) => full_width("=", Some(TokenKind::Assign)),
        ('＜', _) => full_width("<", Some(TokenKind::Lt)),
        ('＞', _) => full_width(">", Some(TokenKind::Gt)),
        ('＋', _) => full_width("+", Some(TokenKind::Plus)),
        ('－', _) => full_width("-", Some(TokenKind::Minus)),
        ('＊', _) => full_width("*", Some(TokenKind::Star)),
        ('／', _) => full_width("/", Some(TokenKind::Slash)),
        ('．', _) => full_width(".", Some(TokenKind::Dot)),
        ('：', _) => full_width(":", Some(TokenKind::Colon)),
        ('“' | '”' | '＂', _) => full_width("\"", None),
        ('、', _) => full_width(",", None),
        ('＃', _) => full_width("#", None),
        ('&', Some('&')) => word("write `and`", Some(TokenKind::Keyword(Keyword::And)), 2),
        ('|', Some('|')) => word("write `or`", Some(TokenKind::Keyword(Keyword::Or)), 2),
        ('！', _) => word(
            "write `not` to negate",
            Some(TokenKind::Keyword(Keyword::Not)),
            c.len_utf8(),
        ),
        ('!', _) => word(
            "write `not` to negate, or `!=` for \"not equal\"",
            Some(TokenKind::Keyword(Keyword::Not)),
            1,
        ),
        ('\'', _) => word("strings are written in double quotes: \"flood\"", None, 1),
        (';', _) => word(
            "clauses need no separator; start each on its own line",
            None,
            1,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> (Vec<TokenKind>, Vec<&'static str>) {
        let mut diags = Vec::new();
        let tokens = tokenize(text, 0, &mut diags);
        (
            tokens.into_iter().map(|t| t.kind).collect(),
            diags.iter().map(|d| d.code).collect(),
        )
    }

    #[test]
    fn names_numbers_durations() {
        let (k, errors) = kinds("水位_2 0.3 1.5e3 10m 1h30m 500ms >= != rule");
        assert!(errors.is_empty());
        assert_eq!(
            k,
            vec![
                TokenKind::Name("水位_2".into()),
                TokenKind::Number(0.3),
                TokenKind::Number(1500.0),
                TokenKind::Duration(Some(600_000)),
                TokenKind::Duration(Some(5_400_000)),
                TokenKind::Duration(Some(500)),
                TokenKind::Ge,
                TokenKind::NotEq,
                TokenKind::Keyword(Keyword::Rule),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn bad_durations_and_characters() {
        let (k, errors) = kinds("10w 1.5h ；x");
        assert_eq!(errors, vec!["E004", "E004", "E005"]);
        assert_eq!(k[0], TokenKind::Duration(None));
        assert_eq!(k[2], TokenKind::Name("x".into()));
    }

    #[test]
    fn strings_and_escapes() {
        let (k, errors) = kinds(r#""a\"b\\\n\t\u{6C34}" "bad\q" "open"#);
        assert_eq!(k[0], TokenKind::String("a\"b\\\n\t水".into()));
        assert_eq!(k[1], TokenKind::String("bad".into()));
        assert_eq!(errors, vec!["E003", "E002"]);
        let s = scan_string(r#""a\u{6C34}b""#, 0);
        assert_eq!(s.value, "a水b");
        assert_eq!(s.offsets, vec![1, 2, 2, 2, 10, 11]);
    }

    #[test]
    fn string_stops_at_line_end() {
        let (k, errors) = kinds("\"abc\nrule");
        assert_eq!(errors, vec!["E002"]);
        assert_eq!(k[1], TokenKind::Keyword(Keyword::Rule));
    }

    #[test]
    fn comments_and_eof_position() {
        let mut diags = Vec::new();
        let tokens = tokenize("x # note\n\n", 0, &mut diags);
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[1].span, Span::at(1));
    }
}

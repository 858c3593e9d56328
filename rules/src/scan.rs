//! A fast scanner for the common shape of an event line: one flat JSON
//! object whose values are plain strings, numbers, booleans or null.
//!
//! It produces the same raw form as the serde_json path and gives up
//! (returns `None`) on anything else — escapes, nested values, duplicate
//! keys, unusual numbers, malformed input — so that serde_json reads those
//! lines and words any error. Equivalence with serde_json is tested on
//! generated and mutated lines.

use crate::event::{RawEvent, Scalar};
use std::borrow::Cow;

struct Cursor<'a> {
    /// The line as text (validated once), and as bytes for scanning.
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// A string without escapes or control characters, after its opening quote.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        let start = self.i;
        loop {
            let c = *self.b.get(self.i)?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return None;
            }
            self.i += 1;
        }
        // Both ends are at ASCII quotes, so they are character boundaries.
        let s = self.text.get(start..self.i)?;
        self.i += 1;
        Some(s)
    }

    #[inline]
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.i;
        // JSON: int part 0 or [1-9][0-9]*, optional fraction, optional exponent.
        let first = *self.b.get(self.i)?;
        if first == b'0' {
            self.i += 1;
        } else if first.is_ascii_digit() {
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        } else {
            return None;
        }
        let int_end = self.i;
        let mut is_float = false;
        if self.b.get(self.i) == Some(&b'.') {
            is_float = true;
            self.i += 1;
            let f = self.i;
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            if self.i == f {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            is_float = true;
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let e = self.i;
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            if self.i == e {
                return None;
            }
        }
        if !is_float {
            let text = &self.b[start..self.i];
            if int_end - start > 19 {
                return None;
            }
            let mut n: u64 = 0;
            for &d in text {
                n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            }
            return Some(Scalar::Int(n));
        }
        let v: f64 = self.text.get(start..self.i)?.parse().ok()?;
        if !v.is_finite() {
            return None;
        }
        Some(Scalar::Float(v))
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self) -> Option<Scalar<'a>> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                self.string().map(|s| Scalar::Str(Cow::Borrowed(s)))
            }
            b't' => self.literal(b"true").map(|_| Scalar::Bool),
            b'f' => self.literal(b"false").map(|_| Scalar::Bool),
            b'n' => self.literal(b"null").map(|_| Scalar::Null),
            _ => self.number(),
        }
    }
}

fn set<'a>(slot: &mut Option<Scalar<'a>>, v: Scalar<'a>) -> Option<()> {
    if slot.is_some() {
        // serde_json refuses duplicate fields; let it say so.
        return None;
    }
    *slot = Some(v);
    Some(())
}

/// Reads a flat event object, or `None` to leave the line to serde_json.
pub(crate) fn scan_flat(line: &[u8]) -> Option<RawEvent<'_>> {
    // serde_json only checks UTF-8 inside strings, but anything non-ASCII
    // outside a string is a syntax error there anyway.
    let text = std::str::from_utf8(line).ok()?;
    let mut c = Cursor {
        text,
        b: line,
        i: 0,
    };
    let mut raw = RawEvent::default();
    c.ws();
    c.eat(b'{')?;
    c.ws();
    if c.eat(b'}').is_none() {
        loop {
            c.ws();
            c.eat(b'"')?;
            let key = c.string()?;
            c.ws();
            c.eat(b':')?;
            c.ws();
            let v = c.value()?;
            let slot = match key {
                "stream" => &mut raw.stream,
                "ts" => &mut raw.ts,
                "cell" => &mut raw.cell,
                "lon" => &mut raw.lon,
                "lat" => &mut raw.lat,
                "incident_id" => &mut raw.incident_id,
                "kind" => &mut raw.kind,
                "severity" => &mut raw.severity,
                "description" => &mut raw.description,
                "segment_id" => &mut raw.segment_id,
                "speed_kmh" => &mut raw.speed_kmh,
                "flow" => &mut raw.flow,
                "occupancy" => &mut raw.occupancy,
                "sensor_id" => &mut raw.sensor_id,
                "value" => &mut raw.value,
                "unit" => &mut raw.unit,
                _ => {
                    c.ws();
                    if c.eat(b',').is_some() {
                        continue;
                    }
                    c.eat(b'}')?;
                    break;
                }
            };
            set(slot, v)?;
            c.ws();
            if c.eat(b',').is_some() {
                continue;
            }
            c.eat(b'}')?;
            break;
        }
    }
    c.ws();
    if c.i != line.len() {
        return None;
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(line: &str) -> Option<RawEvent<'_>> {
        serde_json::from_str(line).ok()
    }

    #[test]
    fn agrees_with_serde_json_where_it_answers() {
        let lines = [
            r#"{"stream":"sensor","ts":1767225600000,"sensor_id":"s1-0","kind":"water_level","cell":42,"value":0.313}"#,
            r#" { "stream" : "traffic" , "ts" : "2026-01-01T00:00:00Z", "segment_id":"g", "speed_kmh": 12.25, "extra": 3 } "#,
            r#"{"stream":"incident","ts":1767225600000,"incident_id":"i","kind":"flood","cell":1,"severity":2,"description":"积水 30 厘米","x":null,"y":true}"#,
            r#"{"value":1e3,"lat":39.9,"lon":116.4,"flow":0,"occupancy":0.5}"#,
            r#"{"value":1.7976931348623157e308}"#,
            r#"{"value":0.1000000000000000055511151231257827}"#,
            r#"{}"#,
        ];
        for line in lines {
            let fast =
                scan_flat(line.as_bytes()).unwrap_or_else(|| panic!("scanner gave up on {line}"));
            assert_eq!(Some(fast), serde(line), "{line}");
        }
    }

    #[test]
    fn gives_up_on_what_it_does_not_handle() {
        for line in [
            r#"{"kind":"a\"b"}"#,
            r#"{"value":-1}"#,
            r#"{"value":01}"#,
            r#"{"value":1.}"#,
            r#"{"value":1e999}"#,
            r#"{"value":18446744073709551616}"#,
            r#"{"kind":"x","kind":"y"}"#,
            r#"{"nested":{"a":1}}"#,
            r#"{"list":[1]}"#,
            r#"{"kind":"x"} trailing"#,
            r#"{"kind":"x",}"#,
            r#"{"kind" "x"}"#,
            r#"[1]"#,
            "{\"kind\":\"tab\there\"}",
        ] {
            assert!(scan_flat(line.as_bytes()).is_none(), "{line}");
        }
    }

    /// Random flat-ish lines, and random corruptions of real ones: where the
    /// scanner answers, serde_json must answer the same.
    #[test]
    fn never_disagrees_on_generated_and_mutated_lines() {
        let base = br#"{"stream":"sensor","ts":1767225600000,"sensor_id":"s1-0","kind":"water_level","cell":42,"value":0.313,"unit":"m"}"#;
        let alphabet = b"{}[]\":,.-+eE0123456789 abc\\\tnultrsf";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let mut line = base.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let pos = (next() as usize) % (line.len() + 1);
                match next() % 3 {
                    0 if pos < line.len() => {
                        line.remove(pos);
                    }
                    1 => line.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                    _ if pos < line.len() => {
                        line[pos] = alphabet[(next() as usize) % alphabet.len()]
                    }
                    _ => {}
                }
            }
            if let Some(fast) = scan_flat(&line) {
                let text = String::from_utf8_lossy(&line);
                let slow: Option<RawEvent> = serde_json::from_slice(&line).ok();
                assert_eq!(Some(fast), slow, "{text}");
            }
        }
    }
}

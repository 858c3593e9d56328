//! Event times: milliseconds since the Unix epoch, read from integers or
//! RFC 3339 text, and written back as RFC 3339 for people.

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = u64;

/// Parses an RFC 3339 timestamp (`2026-07-01T08:30:00Z`,
/// `2026-07-01T16:30:00.250+08:00`) into epoch milliseconds.
/// Fractions finer than a millisecond are truncated.
pub fn parse_rfc3339(text: &str) -> Result<Millis, &'static str> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        let part = b.get(range).ok_or("is too short for RFC 3339")?;
        let mut n: i64 = 0;
        for &c in part {
            if !c.is_ascii_digit() {
                return Err("is not an RFC 3339 date-time (expected digits)");
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Ok(n)
    };
    let expect = |i: usize, allowed: &[u8]| -> Result<(), &'static str> {
        match b.get(i) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err("is not an RFC 3339 date-time (like 2026-07-01T08:30:00Z)"),
        }
    };
    let year = digits(0..4)?;
    expect(4, b"-")?;
    let month = digits(5..7)?;
    expect(7, b"-")?;
    let day = digits(8..10)?;
    expect(10, b"Tt ")?;
    let hour = digits(11..13)?;
    expect(13, b":")?;
    let minute = digits(14..16)?;
    expect(16, b":")?;
    let second = digits(17..19)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("has an invalid calendar date");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("has an invalid time of day");
    }
    let mut i = 19;
    let mut millis: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err("has an empty fraction of a second");
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z') | Some(b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(i + 1..i + 3)?;
            expect(i + 3, b":")?;
            let om = digits(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return Err("has an invalid UTC offset");
            }
            i += 6;
            let m = oh * 60 + om;
            if sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return Err("has no time zone (end it with Z or an offset like +08:00)"),
    };
    if i != b.len() {
        return Err("has trailing characters after the time zone");
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    let ms = secs * 1000 + millis;
    if ms < 0 {
        return Err("is before 1970");
    }
    Ok(ms as Millis)
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision.
pub fn format_rfc3339(ms: Millis) -> String {
    let secs = (ms / 1000) as i64;
    let millis = ms % 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats a duration in milliseconds the way rules write it: `90s`, `10m`, `1h30m`.
pub fn format_duration(ms: Millis) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

/// Parses a duration such as `500ms`, `30s`, `10m`, `1h30m` or `1d`.
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    let b = text.as_bytes();
    if b.is_empty() {
        return Err("empty duration".into());
    }
    let mut i = 0;
    let mut total: u64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(format!("`{text}` is not a duration (like 30s, 10m, 1h30m)"));
        }
        let n: u64 = text[start..i]
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &text[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{text}` needs a unit (ms, s, m, h or d)")),
            other => {
                return Err(format!(
                    "unknown time unit `{other}` (use ms, s, m, h or d)"
                ))
            }
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}` is too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z"), Ok(1_767_225_600_000));
        assert_eq!(
            parse_rfc3339("2026-01-01T08:00:00.250+08:00"),
            Ok(1_767_225_600_250)
        );
        assert_eq!(
            format_rfc3339(1_767_225_600_250),
            "2026-01-01T00:00:00.250Z"
        );
        assert!(parse_rfc3339("2026-02-30T00:00:00Z").is_err());
        assert!(parse_rfc3339("2026-01-01T00:00:00").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10w").is_err());
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(1500), "1s500ms");
    }
}

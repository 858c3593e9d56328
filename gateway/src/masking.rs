//! 数据脱敏: masking personal data in free text before it leaves the ingest
//! layer for dashboards, logs or exports.
//!
//! A [`Masker`] holds an ordered list of [`MaskPattern`]s (the defaults
//! cover Chinese mobile numbers, resident ID numbers and vehicle licence
//! plates) and replaces the middle of every match with `*`, keeping a few
//! leading and trailing characters so that an operator can still tell two
//! reports apart (`138****5678`). It knows nothing of events beyond the one
//! free-text field it masks ([`Masker::mask_event`]), nor of where the text
//! goes afterwards.
//!
//! Two rules make the patterns safe next to Chinese text, where `\b` is
//! useless (a CJK character is a word character, so `京A12345追尾` has no
//! word boundary after the plate):
//!
//! * a match is accepted only if it does not continue a longer token: a
//!   match that begins or ends with a digit must not touch another digit,
//!   and one that begins or ends with a Latin letter must not touch a letter
//!   or digit. `1767225600000` (a timestamp) therefore contains no phone
//!   number, but `电话13812345678，` and `TEL13812345678` do;
//! * when a candidate is refused, the search resumes one character later,
//!   not after the candidate, so a real match overlapping a refused one is
//!   still found.

use jingzhi_rules::event::{Body, Event};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One kind of personal data to mask.
///
/// `regex` uses the syntax of the `regex` crate. If it has a capture group
/// named `value`, only that group is masked and the rest of the match is
/// kept as written (the default phone pattern keeps a `+86 ` prefix this
/// way). Within the masked text, separators (anything that is not a letter
/// or digit, such as `-`, spaces or `·`) are dropped, the first
/// `keep_prefix` and last `keep_suffix` letters or digits are kept, and each
/// other letter or digit becomes one `*`. When there are no more letters or
/// digits than the two counts together, all of them are masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskPattern {
    /// Names the pattern in errors and configuration.
    pub name: String,
    pub regex: String,
    pub keep_prefix: usize,
    pub keep_suffix: usize,
}

/// Why a set of patterns was refused.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("a masking pattern has an empty name")]
    EmptyName,
    #[error("masking pattern `{name}`: invalid regular expression: {source}")]
    BadRegex {
        name: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("masking pattern `{name}` matches the empty string; it would mask nothing useful")]
    MatchesEmpty { name: String },
}

/// The province abbreviations that open a mainland licence plate.
pub const PLATE_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

// Hotline transcripts are typed on Chinese keyboards, which often produce
// full-width digits; the default patterns accept both widths.
const DIGIT: &str = "[0-9０-９]";

impl MaskPattern {
    /// A pattern from its parts.
    pub fn new(name: &str, regex: &str, keep_prefix: usize, keep_suffix: usize) -> MaskPattern {
        MaskPattern {
            name: name.to_string(),
            regex: regex.to_string(),
            keep_prefix,
            keep_suffix,
        }
    }

    /// Mainland resident ID numbers: 18 digits (the last may be `X`) with a
    /// plausible birth date, or the legacy 15 digits. Keeps the six-digit
    /// region code and the last four: `110105********1234`.
    pub fn resident_id() -> MaskPattern {
        // The birth date is checked loosely (month 01–12, day 01–31) so that
        // order numbers and other long digit runs are not taken for IDs.
        let month = "(?:[0０][1-9１-９]|[1１][0-2０-２])";
        let day = "(?:[0０][1-9１-９]|[12１２][0-9０-９]|[3３][01０１])";
        let century = "(?:[1１][89８９]|[2２][0０])";
        let regex = format!(
            "[1-9１-９]{DIGIT}{{5}}(?:{century}{DIGIT}{{2}}{month}{day}{DIGIT}{{3}}[0-9０-９XxＸｘ]\
             |{DIGIT}{{2}}{month}{day}{DIGIT}{{3}})"
        );
        MaskPattern::new("resident_id", &regex, 6, 4)
    }

    /// Mainland mobile numbers: 11 digits starting `1[3-9]`, optionally
    /// after `+86`/`86` and grouped 3-4-4 with `-` or spaces. Keeps the
    /// first three and last four digits: `138****5678`.
    pub fn mobile_phone() -> MaskPattern {
        let sep = "[-\\x20\\u{3000}]?";
        let regex = format!(
            "(?:[+＋]?86{sep})?(?P<value>[1１][3-9３-９]{DIGIT}(?:{sep}{DIGIT}{{4}}){{2}})"
        );
        MaskPattern::new("mobile_phone", &regex, 3, 4)
    }

    /// Vehicle licence plates: province, issuing-authority letter, optional
    /// `·`, `-` or space, then five letters or digits (the last may be 挂, 学,
    /// 警, 港 or 澳) or a six-character new-energy number (`D`/`F` first or
    /// last). Keeps province, letter and the last two: `京A***45`.
    pub fn licence_plate() -> MaskPattern {
        let regex = format!(
            "[{PLATE_PROVINCES}][A-Z][-·•・\\x20]?\
             (?:[DF][A-Z0-9][0-9]{{4}}|[0-9]{{5}}[DF]|[A-Z0-9]{{4}}[A-Z0-9挂学警港澳])"
        );
        MaskPattern::new("licence_plate", &regex, 2, 2)
    }

    /// The default patterns, in the order they are applied: ID numbers
    /// first, because an 18-digit ID contains runs that look like a phone
    /// number to a pattern that does not see the whole ID.
    pub fn china_defaults() -> Vec<MaskPattern> {
        vec![
            MaskPattern::resident_id(),
            MaskPattern::mobile_phone(),
            MaskPattern::licence_plate(),
        ]
    }
}

#[derive(Clone, Debug)]
struct CompiledPattern {
    regex: Regex,
    value_group: Option<usize>,
    keep_prefix: usize,
    keep_suffix: usize,
}

/// Masks personal data in text. Cheap to clone and shareable across
/// threads (compiled regular expressions are immutable).
#[derive(Clone, Debug)]
pub struct Masker {
    patterns: Vec<CompiledPattern>,
}

impl Masker {
    /// Compiles `patterns`; they are applied in the given order, each to the
    /// output of the previous one.
    pub fn new(patterns: &[MaskPattern]) -> Result<Masker, MaskError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for p in patterns {
            if p.name.trim().is_empty() {
                return Err(MaskError::EmptyName);
            }
            let regex = Regex::new(&p.regex).map_err(|source| MaskError::BadRegex {
                name: p.name.clone(),
                source: Box::new(source),
            })?;
            if regex.is_match("") {
                return Err(MaskError::MatchesEmpty {
                    name: p.name.clone(),
                });
            }
            let value_group = regex.capture_names().position(|name| name == Some("value"));
            compiled.push(CompiledPattern {
                regex,
                value_group,
                keep_prefix: p.keep_prefix,
                keep_suffix: p.keep_suffix,
            });
        }
        Ok(Masker { patterns: compiled })
    }

    /// The masker with [`MaskPattern::china_defaults`].
    pub fn default_china() -> Masker {
        // The default patterns are fixed text tested below; failing to
        // compile them is a programming error, not a runtime condition.
        Masker::new(&MaskPattern::china_defaults()).expect("the default masking patterns compile")
    }

    /// `text` with every match masked; borrowed when nothing matched.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut current = Cow::Borrowed(text);
        for pattern in &self.patterns {
            if let Some(masked) = pattern.apply(&current) {
                current = Cow::Owned(masked);
            }
        }
        current
    }

    /// Masks an incident's free-text description in place (the only event
    /// field that carries free text). Returns whether anything changed.
    pub fn mask_event(&self, event: &mut Event) -> bool {
        let Body::Incident(incident) = &mut event.body else {
            return false;
        };
        let Some(description) = &incident.description else {
            return false;
        };
        match self.mask(description) {
            Cow::Borrowed(_) => false,
            Cow::Owned(masked) => {
                incident.description = Some(masked.into_boxed_str());
                true
            }
        }
    }
}

impl CompiledPattern {
    /// The masked text, or `None` when nothing matched.
    fn apply(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut pos = 0;
        while pos < text.len() {
            let Some(caps) = self.regex.captures_at(text, pos) else {
                break;
            };
            let Some(whole) = caps.get(0) else {
                break;
            };
            if whole.is_empty() || !stands_alone(text, whole.start(), whole.end()) {
                // A genuine match may begin inside a refused one (`+86`
                // glued to a digit, say), so look again one character on.
                pos = next_char(text, whole.start());
                continue;
            }
            let value = self.value_group.and_then(|i| caps.get(i)).unwrap_or(whole);
            let buffer = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buffer.push_str(&text[copied..value.start()]);
            self.mask_into(buffer, value.as_str());
            copied = value.end();
            pos = whole.end();
        }
        let mut buffer = out?;
        buffer.push_str(&text[copied..]);
        Some(buffer)
    }

    fn mask_into(&self, out: &mut String, value: &str) {
        let significant: Vec<char> = value.chars().filter(|c| c.is_alphanumeric()).collect();
        let n = significant.len();
        let (keep_prefix, keep_suffix) = if self.keep_prefix + self.keep_suffix >= n {
            (0, 0)
        } else {
            (self.keep_prefix, self.keep_suffix)
        };
        for (i, c) in significant.iter().enumerate() {
            if i < keep_prefix || i >= n - keep_suffix {
                out.push(*c);
            } else {
                out.push('*');
            }
        }
    }
}

fn next_char(text: &str, at: usize) -> usize {
    text[at..]
        .chars()
        .next()
        .map_or(text.len(), |c| at + c.len_utf8())
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || ('Ａ'..='Ｚ').contains(&c) || ('ａ'..='ｚ').contains(&c)
}

/// Whether `neighbour` would continue the token that `edge` (the match's
/// first or last character) belongs to.
fn continues(edge: char, neighbour: char) -> bool {
    if is_digit(edge) {
        is_digit(neighbour)
    } else if is_latin_letter(edge) {
        is_digit(neighbour) || is_latin_letter(neighbour)
    } else {
        false
    }
}

/// The match `text[start..end]` is a whole token, not part of a longer one.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let matched = &text[start..end];
    let (Some(first), Some(last)) = (matched.chars().next(), matched.chars().next_back()) else {
        return false;
    };
    let before_ok = text[..start]
        .chars()
        .next_back()
        .is_none_or(|b| !continues(first, b));
    let after_ok = text[end..]
        .chars()
        .next()
        .is_none_or(|a| !continues(last, a));
    before_ok && after_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        Masker::default_china().mask(text).into_owned()
    }

    fn untouched(text: &str) {
        let m = Masker::default_china();
        assert!(
            matches!(m.mask(text), Cow::Borrowed(_)),
            "`{text}` should not be masked, got `{}`",
            m.mask(text)
        );
    }

    #[test]
    fn hotline_report_masks_plate_phone_and_id() {
        assert_eq!(
            masked("京A12345追尾，司机电话13812345678，身份证110105199001011234"),
            "京A***45追尾，司机电话138****5678，身份证110105********1234"
        );
    }

    #[test]
    fn mobile_numbers_in_their_written_forms() {
        for (text, want) in [
            ("报警人电话13812345678。", "报警人电话138****5678。"),
            ("联系138-1234-5678", "联系138****5678"),
            ("联系 138 1234 5678 谢谢", "联系 138****5678 谢谢"),
            ("+8613912345678", "+86139****5678"),
            ("+86 139 1234 5678", "+86 139****5678"),
            ("8615012345678回拨", "86150****5678回拨"),
            ("TEL13812345678", "TEL138****5678"),
            ("市民（手机19912345678）反映", "市民（手机199****5678）反映"),
            ("电话１３８１２３４５６７８", "电话１３８****５６７８"),
        ] {
            assert_eq!(masked(text), want, "for `{text}`");
        }
    }

    #[test]
    fn ordinary_numbers_are_not_phones() {
        for text in [
            "12345热线转来：朝阳路k12+300处积水约30厘米",
            "ts 1767225600000 共1234辆",
            "2026-01-01 08:00:05 接报",
            "工单号110-20260101-0001",
            "号码138123456789有误", // 12 digits: not a mobile number
            "座机010-12345678",
            "12812345678", // 12x is not a mobile prefix
            "距离12公里，车速12.5 km/h",
        ] {
            untouched(text);
        }
    }

    #[test]
    fn resident_ids_18_and_15_digits() {
        for (text, want) in [
            ("身份证110105199001011234", "身份证110105********1234"),
            (
                "身份证号：11010519900101123X，",
                "身份证号：110105********123X，",
            ),
            ("证件11010519900101123x", "证件110105********123x"),
            ("老身份证110105900101123登记", "老身份证110105*****1123登记"),
        ] {
            assert_eq!(masked(text), want, "for `{text}`");
        }
    }

    #[test]
    fn long_digit_runs_are_not_ids() {
        for text in [
            "订单号123456789012345678",    // no plausible birth date
            "流水号1101051990010112345",   // 19 digits
            "设备编号 110105199013011234", // month 13
        ] {
            untouched(text);
        }
    }

    #[test]
    fn licence_plates() {
        for (text, want) in [
            ("京A12345追尾", "京A***45追尾"),
            ("一辆京N·8B8Q2与行人相撞", "一辆京N***Q2与行人相撞"),
            ("沪C 5Z123违停", "沪C***23违停"),
            ("肇事车辆京Q-7X2K1逃逸", "肇事车辆京Q***K1逃逸"),
            ("新能源车京AD12345自燃", "新能源车京A****45自燃"),
            ("粤B12345D", "粤B****5D"),
            ("京A1234警到场", "京A***4警到场"),
            ("车牌号码冀F88888，", "车牌号码冀F***88，"),
        ] {
            assert_eq!(masked(text), want, "for `{text}`");
        }
    }

    #[test]
    fn plate_like_text_that_is_not_a_plate() {
        for text in [
            "京港澳高速南向北方向",
            "京藏高速k12处",
            "网站备案京ICP备12345678号",
            "北京APEC会议",
            "京A",       // too short
            "京A123456", // seven characters after the letter that are not a new-energy number
        ] {
            untouched(text);
        }
    }

    #[test]
    fn custom_patterns_and_value_groups() {
        let m = Masker::new(&[MaskPattern::new(
            "work_order",
            "工单(?P<value>[A-Z]{2}[0-9]{6})",
            2,
            1,
        )])
        .unwrap();
        assert_eq!(m.mask("见工单AB123456处理"), "见工单AB*****6处理");
        // A value shorter than what is kept is masked entirely.
        let short = Masker::new(&[MaskPattern::new("pin", "PIN[0-9]{4}", 4, 4)]).unwrap();
        assert_eq!(short.mask("PIN1234"), "*******");
    }

    #[test]
    fn bad_patterns_are_refused_by_name() {
        let err = Masker::new(&[MaskPattern::new("broken", "([0-9]", 1, 1)]).unwrap_err();
        assert!(err.to_string().contains("`broken`"), "{err}");
        let err = Masker::new(&[MaskPattern::new("empty", "[0-9]*", 1, 1)]).unwrap_err();
        assert!(matches!(err, MaskError::MatchesEmpty { .. }), "{err}");
        let err = Masker::new(&[MaskPattern::new(" ", "x", 0, 0)]).unwrap_err();
        assert!(matches!(err, MaskError::EmptyName));
    }

    #[test]
    fn untouched_text_is_borrowed() {
        untouched("东三环北路积水约30厘米，车辆缓行");
        untouched("");
    }

    #[test]
    fn mask_event_masks_the_description_only() {
        use jingzhi_rules::event::{parse_line, ParseContext};
        use jingzhi_rules::space::Grid;
        let ctx = ParseContext::new(Grid::default(), u64::MAX / 2, 0);
        let line = r#"{"stream":"incident","ts":1767225600000,"cell":5050,"incident_id":"110-1","kind":"accident","description":"京A12345追尾，电话13812345678"}"#;
        let mut event = parse_line(line.as_bytes(), &ctx).unwrap();
        assert!(Masker::default_china().mask_event(&mut event));
        let Body::Incident(incident) = &event.body else {
            panic!("not an incident")
        };
        assert_eq!(
            incident.description.as_deref(),
            Some("京A***45追尾，电话138****5678")
        );
        assert_eq!(&*incident.incident_id, "110-1");
        assert!(!Masker::default_china().mask_event(&mut event));
    }
}

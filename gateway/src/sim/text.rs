//! Incident report texts as a 110/119 dispatcher would type them, including
//! the personal data real reports carry — mobile numbers, resident ID
//! numbers (with a valid check digit) and licence plates — so that masking
//! can be tested on realistic input.

use super::rng::Rng;

/// Beijing mobile prefixes in common use.
const MOBILE_PREFIXES: [&str; 24] = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "158", "159", "177", "180", "185", "186", "187", "188", "189",
];

/// Region codes of ID numbers: Beijing's districts and a few provinces'
/// capitals (many residents were registered elsewhere).
const ID_REGIONS: [&str; 20] = [
    "110101", "110102", "110105", "110106", "110107", "110108", "110109", "110111", "110112",
    "110113", "110114", "110115", "110116", "110117", "110118", "110119", "130102", "370102",
    "410102", "510104",
];

/// Letters after 京 on Beijing plates.
const PLATE_SERIES: &[u8] = b"ABCEFGHJKLMNPQ";
/// Letters allowed among a plate's last five characters (no I or O).
const PLATE_LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";

const SURNAMES: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙",
];

/// A mobile number such as 13812345678.
pub(crate) fn mobile_number(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(11);
    s.push_str(rng.pick(&MOBILE_PREFIXES).copied().unwrap_or("138"));
    for _ in 0..8 {
        s.push(digit(rng.below(10)));
    }
    s
}

/// An 18-digit resident ID number with a correct GB 11643 check character.
pub(crate) fn id_number(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(18);
    s.push_str(rng.pick(&ID_REGIONS).copied().unwrap_or("110101"));
    let year = rng.between(1950, 2006);
    let month = rng.between(1, 13);
    let day = rng.between(1, 29);
    s.push_str(&format!("{year:04}{month:02}{day:02}"));
    for _ in 0..3 {
        s.push(digit(rng.below(10)));
    }
    s.push(id_check_char(&s));
    s
}

/// The check character of the first 17 digits of an ID number
/// (ISO 7064 MOD 11-2).
pub(crate) fn id_check_char(first17: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let sum: u32 = first17
        .chars()
        .filter_map(|c| c.to_digit(10))
        .zip(WEIGHTS)
        .map(|(d, w)| d * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// A Beijing plate: 京A12345, sometimes with a letter among the last five,
/// sometimes a new-energy plate such as 京AD12345.
pub(crate) fn licence_plate(rng: &mut Rng) -> String {
    let mut s = String::from("京");
    s.push(char::from(PLATE_SERIES[rng.index(PLATE_SERIES.len())]));
    if rng.chance(0.12) {
        s.push(if rng.chance(0.7) { 'D' } else { 'F' });
        for _ in 0..5 {
            s.push(digit(rng.below(10)));
        }
        return s;
    }
    let letter_at = if rng.chance(0.25) {
        Some(rng.index(5))
    } else {
        None
    };
    for i in 0..5 {
        if Some(i) == letter_at {
            s.push(char::from(PLATE_LETTERS[rng.index(PLATE_LETTERS.len())]));
        } else {
            s.push(digit(rng.below(10)));
        }
    }
    s
}

fn digit(d: u64) -> char {
    char::from(b'0' + (d % 10) as u8)
}

/// Where an incident was reported, in words.
pub(crate) struct Whereabouts<'a> {
    /// A road near the spot ("京开高速k12处", "长安街").
    pub road: &'a str,
    /// A landmark: an underpass, a venue or the road again.
    pub place: &'a str,
    /// District name (朝阳区).
    pub district: &'a str,
}

/// A report text for an incident of `kind`; about a third of them carry
/// personal data.
pub(crate) fn incident_description(rng: &mut Rng, kind: &str, at: &Whereabouts) -> String {
    let road = at.road;
    let place = at.place;
    let district = at.district;
    let mut text = match kind {
        "accident" => match rng.below(4) {
            0 => format!("{road}发生两车追尾事故,占用一条车道"),
            1 => format!("{road}一辆货车侧翻,现场车辆缓行"),
            2 => format!("{road}发生多车剐蹭,暂无人员受伤"),
            _ => format!("{road}电动自行车与小客车相撞,一人受伤"),
        },
        "fire" => match rng.below(3) {
            0 => format!(
                "{district}一居民楼{}层厨房起火,有浓烟冒出",
                rng.between(2, 25)
            ),
            1 => format!("{road}附近一商铺起火,消防车已出动"),
            _ => format!("{road}一辆小客车自燃"),
        },
        "flood" => match rng.below(3) {
            0 => format!("{place}积水约{}厘米,有车辆涉水熄火", rng.between(30, 70)),
            1 => format!("{place}路面积水严重,行人无法通行"),
            _ => format!("{place}下凹处积水上涨,请求排水抢险"),
        },
        "gas_leak" => match rng.below(3) {
            0 => format!("{place}闻到明显燃气味,疑似燃气泄漏"),
            1 => format!("{district}一小区燃气管道破损泄漏,正在疏散居民"),
            _ => format!("{place}燃气探测器报警,燃气公司已派员"),
        },
        "crowd" => match rng.below(3) {
            0 => format!("{place}入口人员聚集,排队人数持续增加"),
            1 => format!("{place}散场人流密集,周边道路拥堵"),
            _ => format!("{place}周边人员大量聚集,请求增派警力疏导"),
        },
        "collapse" => format!("{road}路面塌陷,面积约{}平方米", rng.between(1, 12)),
        "tree_fall" => format!("{road}一棵大树倒伏,阻断一条车道"),
        other => format!("{district}{road}报告{other}事件"),
    };
    let vehicle = matches!(kind, "accident" | "flood" | "fire");
    if vehicle && rng.chance(0.2) {
        if kind == "accident" && rng.chance(0.5) {
            let (a, b) = (licence_plate(rng), licence_plate(rng));
            text.push_str(&format!(",{a}与{b}发生碰撞"));
        } else {
            let role = match kind {
                "flood" => "被困车辆",
                "fire" => "现场车辆",
                _ => "涉事车辆",
            };
            text.push_str(&format!(",{role}{}", licence_plate(rng)));
        }
    }
    if rng.chance(0.25) {
        let phone = mobile_number(rng);
        match rng.below(3) {
            0 => text.push_str(&format!(",报警人电话{phone}")),
            1 => text.push_str(&format!(",联系人手机{phone}")),
            _ => {
                let surname = rng.pick(&SURNAMES).copied().unwrap_or("王");
                let title = if rng.chance(0.5) { "先生" } else { "女士" };
                text.push_str(&format!(",报警人{surname}{title}({phone})"));
            }
        }
    }
    if matches!(kind, "accident" | "fire" | "gas_leak") && rng.chance(0.08) {
        text.push_str(&format!(",当事人身份证号{}", id_number(rng)));
    }
    text.push('。');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_carry_a_valid_check_character() {
        // The worked example of GB 11643.
        assert_eq!(id_check_char("11010519491231002"), 'X');
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let id = id_number(&mut rng);
            assert_eq!(id.chars().count(), 18, "{id}");
            let (head, tail) = id.split_at(17);
            assert!(head.bytes().all(|b| b.is_ascii_digit()), "{id}");
            assert_eq!(tail.chars().next(), Some(id_check_char(head)), "{id}");
        }
    }

    #[test]
    fn phones_and_plates_look_right() {
        let mut rng = Rng::new(4);
        for _ in 0..200 {
            let phone = mobile_number(&mut rng);
            assert_eq!(phone.len(), 11);
            assert!(phone.starts_with('1') && phone.bytes().all(|b| b.is_ascii_digit()));
            let plate = licence_plate(&mut rng);
            assert!(plate.starts_with('京'), "{plate}");
            let n = plate.chars().count();
            assert!(n == 7 || n == 8, "{plate}");
            assert!(!plate.contains('I') && !plate.contains('O'), "{plate}");
        }
    }

    #[test]
    fn some_descriptions_carry_personal_data() {
        let mut rng = Rng::new(5);
        let at = Whereabouts {
            road: "长安街",
            place: "广渠门桥",
            district: "东城区",
        };
        let texts: Vec<String> = (0..600)
            .map(|i| {
                let kind = ["accident", "fire", "flood", "gas_leak", "crowd", "collapse"][i % 6];
                incident_description(&mut rng, kind, &at)
            })
            .collect();
        let with_phone = texts
            .iter()
            .filter(|t| t.contains("1") && has_digit_run(t, 11))
            .count();
        let with_id = texts.iter().filter(|t| t.contains("身份证号")).count();
        let with_plate = texts
            .iter()
            .filter(|t| t.matches('京').count() >= 1)
            .count();
        assert!((100..250).contains(&with_phone), "{with_phone}");
        assert!(with_id > 3, "{with_id}");
        assert!(with_plate > 10, "{with_plate}");
        assert!(texts.iter().all(|t| t.ends_with('。')));
    }

    fn has_digit_run(text: &str, n: usize) -> bool {
        let mut run = 0;
        for c in text.chars() {
            if c.is_ascii_digit() {
                run += 1;
                if run == n {
                    return true;
                }
            } else {
                run = 0;
            }
        }
        false
    }
}

//! The subscribe-message value rules (WECHAT.md §3.1 table). A template key's type is its
//! name without the trailing digits (`thing1` → `thing`), as on the real platform.
//! Lengths count Unicode scalar values, since WeChat does not say bytes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Thing,
    Number,
    Letter,
    Symbol,
    CharacterString,
    Time,
    Date,
    Amount,
    PhoneNumber,
    CarNumber,
    Name,
    Phrase,
    Enum,
}

impl ValueType {
    /// `thing1` → `Thing`; `None` for a prefix WeChat does not have.
    pub fn of_key(key: &str) -> Option<Self> {
        let prefix = key.trim_end_matches(|c: char| c.is_ascii_digit());
        Some(match prefix {
            "thing" => Self::Thing,
            "number" => Self::Number,
            "letter" => Self::Letter,
            "symbol" => Self::Symbol,
            "character_string" => Self::CharacterString,
            "time" => Self::Time,
            "date" => Self::Date,
            "amount" => Self::Amount,
            "phone_number" => Self::PhoneNumber,
            "car_number" => Self::CarNumber,
            "name" => Self::Name,
            "phrase" => Self::Phrase,
            "enum" => Self::Enum,
            _ => return None,
        })
    }

    /// Whether a non-empty `value` obeys the rule. `enum_values` only matters for `Enum`.
    pub fn accepts(self, value: &str, enum_values: &[String]) -> bool {
        let len = value.chars().count();
        let all = |pred: fn(char) -> bool| value.chars().all(pred);
        match self {
            Self::Thing => len <= 20 && all(|c| !c.is_control()),
            Self::Number => digit_count(value) <= 32 && is_decimal(value),
            Self::Letter => len <= 32 && all(|c| c.is_ascii_alphabetic()),
            Self::Symbol => len <= 5 && all(is_symbol),
            Self::CharacterString => len <= 32 && all(|c| c.is_ascii_graphic()),
            Self::Time => is_range(value, |part| is_datetime(part, true)),
            Self::Date => is_range(value, |part| is_datetime(part, false)),
            Self::Amount => is_amount(value),
            Self::PhoneNumber => {
                len <= 17
                    && all(|c| c.is_ascii_digit() || is_symbol(c))
                    && value.chars().any(|c| c.is_ascii_digit())
            }
            Self::CarNumber => is_car_number(value),
            Self::Name => {
                let fits = if all(|c| !is_chinese(c)) { 20 } else { 10 };
                len <= fits && all(|c| !c.is_ascii_digit() && !c.is_control())
            }
            Self::Phrase => len <= 5 && all(is_chinese),
            Self::Enum => enum_values.iter().any(|v| v == value),
        }
    }
}

pub fn is_chinese(c: char) -> bool {
    matches!(c,
        '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{f900}'..='\u{faff}'
        | '\u{20000}'..='\u{2ebef}')
}

/// A "symbol": printable, not a letter or digit of any script, not a space.
fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

fn digit_count(value: &str) -> usize {
    value.chars().filter(char::is_ascii_digit).count()
}

/// `123` or `12.5`.
fn is_decimal(value: &str) -> bool {
    let mut parts = value.split('.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_none() && digits(int) && frac.is_none_or(digits)
}

/// A value or a `~`-joined range of two values.
fn is_range(value: &str, part_ok: impl Fn(&str) -> bool) -> bool {
    let parts: Vec<&str> = value.split('~').map(str::trim).collect();
    parts.len() <= 2 && parts.iter().all(|p| part_ok(p))
}

/// `time` parts need a clock time and may have a date before it; `date` parts need a date
/// and may have a time after it.
fn is_datetime(part: &str, time_required: bool) -> bool {
    match part.split_once(' ').map(|(d, t)| (d, t.trim())) {
        Some((date, time)) => is_date(date) && is_clock(time),
        None if time_required => is_clock(part),
        None => is_date(part),
    }
}

/// `2019年10月1日`, `10月1日`, `2019-10-01` or `2019/10/01`. The hyphenated form is not
/// documented, but was seen accepted in posted `time` values (WECHAT.md §3.1 notes).
fn is_date(s: &str) -> bool {
    let numbers: Option<Vec<u32>> = if let Some(rest) = s.strip_suffix('日') {
        rest.split(['年', '月'])
            .map(|n| n.parse().ok())
            .collect::<Option<Vec<u32>>>()
            .filter(|ns| s.contains('月') && (ns.len() == 2 || s.contains('年')))
    } else {
        s.split(['-', '/']).map(|n| n.parse().ok()).collect()
    };
    match numbers.as_deref() {
        Some([y, m, d]) => (1000..=9999).contains(y) && valid_month_day(*m, *d),
        Some([m, d]) if s.ends_with('日') => valid_month_day(*m, *d),
        _ => false,
    }
}

fn valid_month_day(m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// 24-hour `15:01` or `15:01:30`.
fn is_clock(s: &str) -> bool {
    let parts: Option<Vec<u32>> = s
        .split(':')
        .map(|n| (n.len() <= 2).then(|| n.parse().ok()).flatten())
        .collect();
    match parts.as_deref() {
        Some([h, m]) => *h < 24 && *m < 60,
        Some([h, m, s]) => *h < 24 && *m < 60 && *s < 60,
        _ => false,
    }
}

/// One optional currency symbol, a number of at most 10 digits, an optional `元`.
fn is_amount(value: &str) -> bool {
    let rest = value.strip_suffix('元').unwrap_or(value);
    let mut chars = rest.chars();
    let number = match chars.next() {
        Some(c) if is_symbol(c) && c != '.' => chars.as_str(),
        _ => rest,
    };
    digit_count(number) <= 10 && is_decimal(number)
}

/// At most 8 letters/digits; the first and last may be Chinese (`粤A12345`, `粤B1234学`).
fn is_car_number(value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    let last = chars.len().saturating_sub(1);
    chars.len() <= 8
        && chars
            .iter()
            .enumerate()
            .all(|(i, &c)| c.is_ascii_alphanumeric() || (is_chinese(c) && (i == 0 || i == last)))
}

#[cfg(test)]
mod tests {
    use super::ValueType::{self, *};

    fn ok(t: ValueType, v: &str) -> bool {
        t.accepts(v, &[])
    }

    #[test]
    fn key_prefix_gives_the_type() {
        assert_eq!(ValueType::of_key("thing1"), Some(Thing));
        assert_eq!(
            ValueType::of_key("character_string12"),
            Some(CharacterString)
        );
        assert_eq!(ValueType::of_key("phone_number3"), Some(PhoneNumber));
        assert_eq!(ValueType::of_key("title1"), None);
    }

    #[test]
    fn thing_counts_characters_not_bytes() {
        assert!(ok(Thing, &"走".repeat(20)));
        assert!(!ok(Thing, &"走".repeat(21)));
        assert!(!ok(Thing, "a\nb"));
    }

    #[test]
    fn numbers_letters_symbols_strings() {
        assert!(ok(Number, "12.5") && ok(Number, "0"));
        assert!(!ok(Number, "1.2.3") && !ok(Number, "12a") && !ok(Number, &"1".repeat(33)));
        assert!(ok(Letter, "abcXYZ") && !ok(Letter, "abc1"));
        assert!(ok(Symbol, "!?-") && !ok(Symbol, "!!!!!!") && !ok(Symbol, "a"));
        assert!(ok(CharacterString, "ORD-2025-0001") && !ok(CharacterString, "编号1"));
    }

    #[test]
    fn time_and_date() {
        assert!(ok(Time, "15:01"));
        assert!(ok(Time, "2019年10月1日 15:01"));
        assert!(ok(Time, "2022-12-08 16:13:16"));
        assert!(ok(Time, "15:01~16:30"));
        assert!(!ok(Time, "2019年10月1日"));
        assert!(!ok(Time, "25:00") && !ok(Time, "明天下午"));
        assert!(ok(Date, "2019年10月1日") && ok(Date, "10月1日") && ok(Date, "2019-10-01"));
        assert!(ok(Date, "2019年10月1日 15:01") && ok(Date, "2019年10月1日~2019年10月3日"));
        assert!(!ok(Date, "15:01") && !ok(Date, "2019年13月1日"));
    }

    #[test]
    fn amount_phone_car() {
        assert!(ok(Amount, "¥100.50") && ok(Amount, "100元") && ok(Amount, "$12"));
        assert!(!ok(Amount, "¥12345678901") && !ok(Amount, "一百元"));
        assert!(ok(PhoneNumber, "+86-0766-66888866") && !ok(PhoneNumber, "+86-0766-668888661"));
        assert!(!ok(PhoneNumber, "call me"));
        assert!(ok(CarNumber, "粤A12345") && ok(CarNumber, "粤B1234学"));
        assert!(!ok(CarNumber, "粤A学12345") && !ok(CarNumber, "粤A1234567"));
    }

    #[test]
    fn name_and_phrase() {
        assert!(ok(Name, "王*") && ok(Name, "张三丰"));
        assert!(ok(Name, &"a".repeat(20)) && !ok(Name, &"a".repeat(21)));
        assert!(
            !ok(Name, &format!("王{}", "a".repeat(10))),
            "mixed counts as Chinese"
        );
        assert!(!ok(Name, "王2"));
        assert!(ok(Phrase, "待出发") && !ok(Phrase, "待出发了吗呢") && !ok(Phrase, "ok"));
    }

    #[test]
    fn enum_only_takes_listed_values() {
        let values = vec!["已完成".to_owned(), "未完成".to_owned()];
        assert!(Enum.accepts("已完成", &values));
        assert!(!Enum.accepts("进行中", &values));
    }
}

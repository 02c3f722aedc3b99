//! The check every text bound for the wish wall passes: a hook ([`ContentCheck`]) so that
//! a deployment can put a platform's moderation service behind it, and a plain local
//! implementation ([`LocalCheck`]): a length limit, forbidden words refused, and phone and
//! ID numbers taken out (the wall needs none: minimum necessary).

use serde::Deserialize;

/// `[wishes]`: what a wish may say.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WishesConfig {
    /// Longest wish or public answer, in characters.
    pub max_chars: usize,
    /// Words a wish may not contain (advertising, scams, abuse); matched ignoring case.
    pub forbidden_words: Vec<String>,
}

impl Default for WishesConfig {
    fn default() -> Self {
        Self {
            max_chars: 500,
            forbidden_words: ["代开发票", "刷单", "赌博", "贷款广告"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// A text that passed, as it may be stored and shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub text: String,
    /// Numbers were taken out.
    pub redacted: bool,
}

/// Why a text was refused, for the person who wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

pub trait ContentCheck: Send + Sync {
    fn check(&self, text: &str) -> Result<Checked, Refused>;
}

/// The local check: see the module docs.
pub struct LocalCheck<'a> {
    pub config: &'a WishesConfig,
}

/// What takes the place of a number taken out.
pub const REDACTED: &str = "［号码已隐去］";

impl ContentCheck for LocalCheck<'_> {
    fn check(&self, text: &str) -> Result<Checked, Refused> {
        let text = text.trim();
        let n = text.chars().count();
        if n == 0 {
            return Err(Refused("内容不能为空".into()));
        }
        if n > self.config.max_chars {
            return Err(Refused(format!(
                "内容不能超过 {} 个字",
                self.config.max_chars
            )));
        }
        let lower = text.to_lowercase();
        if let Some(w) = self
            .config
            .forbidden_words
            .iter()
            .find(|w| !w.trim().is_empty() && lower.contains(&w.trim().to_lowercase()))
        {
            return Err(Refused(format!("内容含有不允许发布的词语：{w}")));
        }
        let (text, redacted) = strip_numbers(text);
        Ok(Checked { text, redacted })
    }
}

/// Full-width digits read as ASCII ones.
fn digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
        _ => None,
    }
}

/// Takes out every run of seven or more digits (separators `-`, space allowed between
/// them, an `X` ending an ID number): mobile and landline numbers, ID numbers. Shorter
/// numbers (ages, dates, amounts) stay.
pub fn strip_numbers(text: &str) -> (String, bool) {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut redacted = false;
    let mut i = 0;
    while i < chars.len() {
        if digit(chars[i]).is_none() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run: digits with single separators between them.
        let mut j = i;
        let mut digits = 0;
        let mut end = i;
        while j < chars.len() {
            if digit(chars[j]).is_some() {
                digits += 1;
                j += 1;
                end = j;
            } else if matches!(chars[j], '-' | ' ' | '－')
                && j + 1 < chars.len()
                && digit(chars[j + 1]).is_some()
            {
                j += 1;
            } else {
                break;
            }
        }
        if digits >= 17 && end < chars.len() && matches!(chars[end], 'X' | 'x') {
            end += 1;
        }
        if digits >= 7 {
            out.push_str(REDACTED);
            redacted = true;
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    (out, redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Checked, Refused> {
        LocalCheck {
            config: &WishesConfig::default(),
        }
        .check(text)
    }

    #[test]
    fn phone_and_id_numbers_are_taken_out_short_numbers_stay() {
        let c = check("想请人帮忙修水管，电话13912345678，座机0551-6512345。").unwrap();
        assert_eq!(
            c.text,
            format!("想请人帮忙修水管，电话{REDACTED}，座机{REDACTED}。")
        );
        assert!(c.redacted);
        let c = check("身份证34010219550101123X办低保").unwrap();
        assert_eq!(c.text, format!("身份证{REDACTED}办低保"));
        let c = check("手机１３９ １２３４ ５６７８").unwrap();
        assert_eq!(c.text, format!("手机{REDACTED}"));
        let c = check("今年72岁，想在3月8日去医院，200元").unwrap();
        assert_eq!(c.text, "今年72岁，想在3月8日去医院，200元");
        assert!(!c.redacted);
    }

    #[test]
    fn too_long_empty_and_forbidden_words_are_refused() {
        assert!(check("  ").is_err());
        assert!(check(&"字".repeat(501)).is_err());
        assert!(check(&"字".repeat(500)).is_ok());
        let refused = check("有人找我刷单赚钱").unwrap_err();
        assert!(refused.0.contains("刷单"), "{refused:?}");
    }
}

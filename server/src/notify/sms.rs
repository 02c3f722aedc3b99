//! SMS, the second channel (WECHAT.md §7): a thin client of a provider's `SendSms`, shaped
//! like Aliyun's (a JSON body with the numbers, an approved sign name, an approved
//! template code and its parameters as a JSON string; `{"Code": "OK", "BizId": …}` back),
//! and our own per-number limits, checked before every send (§7.3).
//!
//! The text is the provider's approved template with our parameters: a short heading, a
//! day and a note, masked like the WeChat values (no name, category or illness), because
//! anyone holding the phone can read the preview.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::crypto::sha256_hex;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// Send SMS at all (off until a provider is configured).
    pub enabled: bool,
    /// The provider's base URL; messages go to `{api_base}/sms/send`.
    pub api_base: String,
    pub access_key_id: String,
    /// Signs each request; from the environment (`NUANXIN_SMS_ACCESS_KEY_SECRET`).
    pub access_key_secret: String,
    /// The approved signature (签名), shown as 【…】 before the text.
    pub sign_name: String,
    /// The approved template for notices: `${title}：${date}，${note}`.
    pub template_code: String,
    /// The approved template for messages a family can answer:
    /// `${title}：${date}，${note}。回复1确认，2不便接待，3改期`.
    pub reply_template_code: String,
    pub timeout_ms: u64,
    /// Per number (rolling windows), before any send.
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
    /// A message held back by the minute or hour limit waits at most this long (minutes);
    /// past that (the day's limit) it goes to the next channel.
    pub max_wait_minutes: i64,
    /// The provider's inbound-message webhook (`POST /api/sms/inbound`) must present this
    /// in `X-Sms-Secret`; empty: the webhook accepts nothing.
    pub inbound_secret: String,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_base: "https://dysmsapi.aliyuncs.com".into(),
            access_key_id: String::new(),
            access_key_secret: String::new(),
            sign_name: "暖心计生协".into(),
            template_code: "SMS_NOTICE".into(),
            reply_template_code: "SMS_REPLY".into(),
            timeout_ms: 5000,
            per_minute: 1,
            per_hour: 5,
            per_day: 10,
            max_wait_minutes: 60,
            inbound_secret: String::new(),
        }
    }
}

impl SmsConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        anyhow::ensure!(
            !self.sign_name.trim().is_empty()
                && !self.template_code.trim().is_empty()
                && !self.reply_template_code.trim().is_empty(),
            "notify.sms: sign_name, template_code and reply_template_code are needed"
        );
        anyhow::ensure!(
            self.per_minute > 0 && self.per_hour > 0 && self.per_day > 0,
            "notify.sms: per_minute, per_hour and per_day must be positive"
        );
        Ok(())
    }
}

/// A number as the provider and our limits know it: digits only, without +86/0086/86.
/// None for anything that is not a mainland mobile number.
pub fn normalise_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let local = if digits.len() > 11 {
        digits
            .strip_prefix("0086")
            .or_else(|| digits.strip_prefix("86"))
            .unwrap_or(&digits)
    } else {
        &digits
    };
    (local.len() == 11 && local.starts_with('1')).then(|| local.to_string())
}

/// Whether another SMS may go to a number that was sent SMS at `sent` (any order), now.
/// Err: the earliest moment it may.
pub fn limit_allows(
    sent: &[DateTime<Utc>],
    now: DateTime<Utc>,
    c: &SmsConfig,
) -> Result<(), DateTime<Utc>> {
    let mut wait_until: Option<DateTime<Utc>> = None;
    for (window, max) in [
        (Duration::minutes(1), c.per_minute),
        (Duration::hours(1), c.per_hour),
        (Duration::days(1), c.per_day),
    ] {
        let mut inside: Vec<DateTime<Utc>> = sent
            .iter()
            .copied()
            .filter(|t| *t > now - window && *t <= now)
            .collect();
        if inside.len() < max.max(1) as usize {
            continue;
        }
        // Free again when enough of them have left the window.
        inside.sort();
        let free_at = inside[inside.len() - max.max(1) as usize] + window;
        wait_until = Some(wait_until.map_or(free_at, |w| w.max(free_at)));
    }
    match wait_until {
        None => Ok(()),
        Some(t) => Err(t),
    }
}

/// One SMS: a template and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Sms {
    pub phone: String,
    pub template_code: String,
    /// title (≤ 10 characters), date ("11月26日"), note (≤ 20 characters).
    pub params: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// Busy, a timeout, a 5xx: try again later.
    #[error("SMS provider unavailable: {0}")]
    Transient(String),
    /// The provider's own flow control for this number.
    #[error("SMS provider limited this number: {0}")]
    Limited(String),
    /// Never for this message or number (bad number, blacklist, template or signature):
    /// the next channel.
    #[error("SMS refused: {0}")]
    Refused(String),
}

#[derive(Deserialize)]
struct SendBody {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "BizId")]
    biz_id: Option<String>,
}

pub struct SmsClient {
    http: reqwest::Client,
    config: SmsConfig,
}

impl SmsClient {
    pub fn new(config: SmsConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(StdDuration::from_millis(config.timeout_ms))
            .build()?;
        Ok(Self { http, config })
    }

    /// Sends one SMS; Ok: the provider's id of it.
    pub async fn send(&self, sms: &Sms) -> Result<String, SmsError> {
        let body = json!({
            "PhoneNumbers": sms.phone,
            "SignName": self.config.sign_name,
            "TemplateCode": sms.template_code,
            // A JSON string inside the JSON, as the provider wants it.
            "TemplateParam": sms.params.to_string(),
        })
        .to_string();
        let timestamp = Utc::now().timestamp().to_string();
        let signature = sha256_hex(&format!(
            "{}\n{timestamp}\n{body}",
            self.config.access_key_secret
        ));
        let response = self
            .http
            .post(format!(
                "{}/sms/send",
                self.config.api_base.trim_end_matches('/')
            ))
            .header("content-type", "application/json")
            .header("x-sms-key-id", &self.config.access_key_id)
            .header("x-sms-timestamp", timestamp)
            .header("x-sms-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| SmsError::Transient(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(SmsError::Transient(format!("HTTP {status}")));
        }
        let text = response
            .text()
            .await
            .map_err(|e| SmsError::Transient(e.to_string()))?;
        let answer: SendBody = serde_json::from_str(&text)
            .map_err(|_| SmsError::Transient(format!("HTTP {status}, not JSON")))?;
        classify(&answer.code, &answer.message, answer.biz_id)
    }
}

/// What a provider's answer code means (Aliyun's codes; WECHAT.md §7.1).
fn classify(code: &str, message: &str, id: Option<String>) -> Result<String, SmsError> {
    let what = format!("{code} {message}");
    match code {
        "OK" => Ok(id.unwrap_or_default()),
        "isv.BUSINESS_LIMIT_CONTROL" | "isv.DAY_LIMIT_CONTROL" | "isv.MONTH_LIMIT_CONTROL" => {
            Err(SmsError::Limited(what))
        }
        "isp.SYSTEM_ERROR"
        | "isp.RAM_PERMISSION_DENY"
        | "isv.OUT_OF_SERVICE"
        | "isv.AMOUNT_NOT_ENOUGH"
        | "Throttling.User" => Err(SmsError::Transient(what)),
        _ => Err(SmsError::Refused(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_digits_without_the_country_prefix() {
        assert_eq!(
            normalise_phone("13800138000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalise_phone("+86 138-0013-8000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalise_phone("008613800138000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalise_phone("8613800138000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(normalise_phone("010-66888866"), None);
        assert_eq!(normalise_phone(""), None);
    }

    #[test]
    fn limits_per_minute_hour_and_day_say_when_the_next_may_go() {
        let c = SmsConfig::default();
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ago = |s: i64| now - Duration::seconds(s);
        assert_eq!(limit_allows(&[], now, &c), Ok(()));
        // One a minute.
        assert_eq!(
            limit_allows(&[ago(30)], now, &c),
            Err(ago(30) + Duration::minutes(1))
        );
        assert_eq!(limit_allows(&[ago(61)], now, &c), Ok(()));
        // Five an hour: the oldest of the five must leave the hour.
        let five: Vec<_> = [3000, 2400, 1800, 1200, 600].map(ago).to_vec();
        assert_eq!(
            limit_allows(&five, now, &c),
            Err(ago(3000) + Duration::hours(1))
        );
        // Ten a day.
        let ten: Vec<_> = (0..10).map(|i| ago(3700 + i * 3600)).collect();
        let oldest = ago(3700 + 9 * 3600);
        assert_eq!(limit_allows(&ten, now, &c), Err(oldest + Duration::days(1)));
        // Sends in the future of `now` (clock skew) do not count.
        assert_eq!(limit_allows(&[now + Duration::seconds(5)], now, &c), Ok(()));
    }

    #[test]
    fn provider_codes_are_sent_limited_passing_or_refused() {
        assert_eq!(classify("OK", "OK", Some("1^0".into())).unwrap(), "1^0");
        assert!(matches!(
            classify(
                "isv.BUSINESS_LIMIT_CONTROL",
                "触发分钟级流控Permits:1",
                None
            ),
            Err(SmsError::Limited(_))
        ));
        assert!(matches!(
            classify("isp.SYSTEM_ERROR", "", None),
            Err(SmsError::Transient(_))
        ));
        for code in [
            "isv.MOBILE_NUMBER_ILLEGAL",
            "isv.SMS_TEMPLATE_ILLEGAL",
            "isv.NEW",
        ] {
            assert!(matches!(
                classify(code, "", None),
                Err(SmsError::Refused(_))
            ));
        }
    }
}

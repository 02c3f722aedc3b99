//! Sending the outbox: every `notification` row reaches its person through the in-app
//! inbox, and through a WeChat subscribe message when they granted one for its template.
//!
//! - `templates`: what each message says, and fitting values to WeChat's field rules.
//! - `policy`: which WeChat answers are retried, fatal or a missing grant; backoff; whether
//!   a message is still true when its time comes.
//! - `ledger`: the one-time subscription grants each person gave, per WeChat template.
//! - `sms`: the SMS provider and the per-number limits.
//! - `timing`: quiet hours, the daily cap and its digest, reminders too late, sensitive days.
//! - `emergency`: help requests' alerts, sent by the request itself, and their escalation.
//! - `dispatch`: the job that takes due messages in batches and sends them, down the
//!   chain WeChat → SMS → a phone call by the family's cadre, the inbox always.

use std::collections::BTreeMap;

use serde::Deserialize;

pub mod dispatch;
pub mod emergency;
pub mod ledger;
pub mod policy;
pub mod produce;
pub mod remind;
pub mod sms;
pub mod templates;
pub mod timing;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Send the outbox wherever the scheduled jobs run (`serve` with `jobs.enabled`, and
    /// `nuanxin jobs`).
    pub enabled: bool,
    /// How long the dispatcher rests when nothing is due, in milliseconds.
    pub interval_ms: u64,
    /// Messages taken at once.
    pub batch: u64,
    /// People sent to at once (one message at a time per person).
    pub concurrency: usize,
    /// WeChat tries per message before it goes to the fallback channel.
    pub max_attempts: i32,
    /// Retry delays double from this (seconds), up to `retry_max_secs`, with jitter.
    pub retry_base_secs: i64,
    pub retry_max_secs: i64,
    /// Messages taken by a dispatcher that died are taken again after this (seconds).
    pub claim_secs: i64,
    /// `developer`, `trial` or `formal`: which version of the mini-program messages open.
    pub miniprogram_state: String,
    /// Our templates (visit_cancelled, claim_released, visit_declined,
    /// visit_move_requested) → the WeChat template that carries them. A template not
    /// listed reaches people through the inbox only.
    pub templates: BTreeMap<String, WeChatTemplate>,
    /// Local quiet hours ("21:00" to "08:00"): nothing but emergencies is pushed then;
    /// the rest waits for their end. Equal: none.
    pub quiet_start: String,
    pub quiet_end: String,
    /// Messages pushed (WeChat, SMS, a cadre's call) to one person in one local day at
    /// most; the rest of the day's go to the inbox and one digest follows the next
    /// morning. 0: no cap. Emergencies are not counted or held.
    pub daily_cap: u32,
    /// Reminders (by template) and how many minutes after their moment they are still
    /// worth sending; a later one is dropped with the reason. Templates not listed are
    /// news, true whenever they come.
    pub tolerance_minutes: BTreeMap<String, i64>,
    /// Templates of good wishes (festivals, birthdays, events): never sent to a bereaved
    /// family on its sensitive days. A payload can also say `"festive": true`.
    pub festive_templates: Vec<String>,
    pub sms: sms::SmsConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 2000,
            batch: 100,
            concurrency: 8,
            max_attempts: 8,
            retry_base_secs: 30,
            retry_max_secs: 3600,
            claim_secs: 120,
            miniprogram_state: "formal".into(),
            templates: BTreeMap::new(),
            quiet_start: "21:00".into(),
            quiet_end: "08:00".into(),
            daily_cap: 3,
            tolerance_minutes: [
                // The reminders' names (see the reminders' producers).
                ("visit_evening_before", 180),
                ("visit_hours_before", 60),
                ("visit_day_before", 240),
                ("visit_please_confirm", 24 * 60),
            ]
            .into_iter()
            .map(|(t, m)| (t.to_string(), m))
            .collect(),
            festive_templates: [
                templates::FESTIVAL_GREETING,
                templates::BIRTHDAY_GREETING,
                templates::EVENT_INVITATION,
            ]
            .map(String::from)
            .to_vec(),
            sms: Default::default(),
        }
    }
}

/// A WeChat subscribe-message template chosen in the mini-program's console.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WeChatTemplate {
    pub template_id: String,
    /// The page a message opens (the visit's id is added as `?id=`); empty: none.
    pub page: String,
    /// Which of the template's keys carries what we say: `title`, `date`, `note`,
    /// `status` → e.g. `thing1`, `date2`, `thing3`, `phrase4`. What is not listed is not
    /// sent; each value is fitted to its key's type.
    pub keys: BTreeMap<String, String>,
}

impl Default for WeChatTemplate {
    fn default() -> Self {
        Self {
            template_id: String::new(),
            page: "pages/visit/detail".into(),
            keys: [
                ("title", "thing1"),
                ("date", "date2"),
                ("note", "thing3"),
                ("status", "phrase4"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        }
    }
}

impl NotifyConfig {
    /// Refuses a configuration that would send WeChat what it rejects (47003): unknown
    /// templates or slots, key types we cannot fill.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            ["developer", "trial", "formal"].contains(&self.miniprogram_state.as_str()),
            "notify.miniprogram_state must be developer, trial or formal"
        );
        anyhow::ensure!(
            self.batch > 0 && self.concurrency > 0 && self.max_attempts > 0,
            "notify.batch, notify.concurrency and notify.max_attempts must be positive"
        );
        self.quiet_hours()?;
        self.sms.check()?;
        for (name, minutes) in &self.tolerance_minutes {
            anyhow::ensure!(
                *minutes > 0,
                "notify.tolerance_minutes.{name} must be positive"
            );
        }
        for (name, t) in &self.templates {
            anyhow::ensure!(
                templates::KNOWN.contains(&name.as_str()),
                "notify.templates.{name}: no such template (known: {})",
                templates::KNOWN.join(", ")
            );
            anyhow::ensure!(
                !t.template_id.trim().is_empty(),
                "notify.templates.{name}.template_id is empty"
            );
            for (slot, key) in &t.keys {
                anyhow::ensure!(
                    templates::SLOTS.contains(&slot.as_str()),
                    "notify.templates.{name}.keys.{slot}: no such slot (known: {})",
                    templates::SLOTS.join(", ")
                );
                anyhow::ensure!(
                    templates::key_kind(key).is_some_and(|k| templates::slot_fits(slot, k)),
                    "notify.templates.{name}.keys.{slot}: cannot fill a key like {key:?}"
                );
            }
        }
        Ok(())
    }

    /// The quiet hours, parsed.
    pub fn quiet_hours(&self) -> anyhow::Result<timing::QuietHours> {
        let parse = |name: &str, v: &str| {
            timing::parse_hm(v).ok_or_else(|| {
                anyhow::anyhow!("notify.{name} must be a time like \"21:00\", not {v:?}")
            })
        };
        Ok(timing::QuietHours {
            start: parse("quiet_start", &self.quiet_start)?,
            end: parse("quiet_end", &self.quiet_end)?,
        })
    }

    /// How late a reminder of this template may still go.
    pub fn tolerance(&self, template: &str) -> Option<chrono::Duration> {
        self.tolerance_minutes
            .get(template)
            .map(|m| chrono::Duration::minutes(*m))
    }

    pub fn is_festive(&self, template: &str, payload: &serde_json::Value) -> bool {
        self.festive_templates.iter().any(|t| t == template)
            || payload.get("festive").and_then(serde_json::Value::as_bool) == Some(true)
    }

    /// The WeChat template of one of our templates, if configured.
    pub fn wechat_template(&self, template: &str) -> Option<&WeChatTemplate> {
        self.templates
            .get(template)
            .filter(|t| !t.template_id.is_empty())
    }

    /// Every WeChat template id in use, once each: what the mini-program may ask for.
    pub fn wechat_template_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .templates
            .values()
            .map(|t| t.template_id.clone())
            .filter(|id| !id.is_empty())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_checked_by_name_slot_and_key_type() {
        let mut c = NotifyConfig::default();
        c.check().unwrap();
        c.templates.insert(
            "visit_cancelled".into(),
            WeChatTemplate {
                template_id: "T1".into(),
                ..Default::default()
            },
        );
        c.check().unwrap();
        assert_eq!(c.wechat_template_ids(), ["T1"]);

        let mut typo = c.clone();
        typo.templates.insert(
            "visit_canceled".into(),
            c.templates["visit_cancelled"].clone(),
        );
        assert!(
            typo.check()
                .unwrap_err()
                .to_string()
                .contains("visit_canceled")
        );

        let mut amount = c.clone();
        let t = amount.templates.get_mut("visit_cancelled").unwrap();
        t.keys.insert("note".into(), "amount5".into());
        assert!(amount.check().unwrap_err().to_string().contains("amount5"));

        let mut text_in_date = c.clone();
        let t = text_in_date.templates.get_mut("visit_cancelled").unwrap();
        t.keys.insert("note".into(), "date5".into());
        assert!(text_in_date.check().is_err());

        let mut empty = c;
        empty
            .templates
            .get_mut("visit_cancelled")
            .unwrap()
            .template_id = " ".into();
        assert!(empty.check().is_err());
    }
}

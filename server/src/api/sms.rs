//! Replies by SMS: a family without WeChat answers the SMS about a visit with 1, 2 or 3
//! (confirm, not this time, another day). The provider posts each inbound message to
//! `POST /api/sms/inbound` with our shared secret; the reply is matched to the last SMS
//! about a visit sent to that number, and does exactly what the app's buttons do.
//!
//! Providers retry anything that is not a 2xx, so every authenticated message is answered
//! 200, also when nothing can be done (an unknown number, a reply we do not understand, a
//! visit that no longer allows it); what happened is in the audit log.

use std::sync::Arc;

use chrono::{Duration, Utc};
use entity::{sms_message, visit_task};
use poem_openapi::{Object, OpenApi, param::Header, payload::Json};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use super::{
    Tag,
    reports::{self, FamilyAnswer},
};
use crate::{
    app::AppState,
    audit,
    crypto::mask_phone,
    error::{ApiError, ApiResult},
    notify::sms::normalise_phone,
};

pub struct Api(pub Arc<AppState>);

/// A reply matches an SMS sent at most this long ago.
const REPLY_DAYS: i64 = 14;

/// An inbound SMS as the providers post it (Tencent: `mobile`, `text`; Aliyun:
/// `phone_number`, `content`). Other fields are ignored.
#[derive(Object, Debug)]
pub struct InboundSms {
    pub mobile: Option<String>,
    pub text: Option<String>,
    pub phone_number: Option<String>,
    pub content: Option<String>,
}

/// The answer providers expect.
#[derive(Object)]
pub struct InboundAck {
    pub result: i32,
    pub errmsg: String,
}

/// What a family's reply asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 1: yes (the visit happened, or: fine, come).
    Yes,
    /// 2: not this time.
    Decline,
    /// 3: another day.
    Move,
}

/// "1", "１", " 2。", "3 谢谢" → the reply; anything else (two digits, words only) → None.
pub fn parse_reply(text: &str) -> Option<Reply> {
    let mut chars = text.trim().chars().map(|c| match c {
        // Full-width digits, as Chinese keyboards type them.
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
        c => c,
    });
    let first = chars.next()?;
    if chars.next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    match first {
        '1' => Some(Reply::Yes),
        '2' => Some(Reply::Decline),
        '3' => Some(Reply::Move),
        _ => None,
    }
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[OpenApi(tag = "Tag::Inbox")]
impl Api {
    /// The SMS provider's inbound-message webhook: a family's reply 1/2/3 to the SMS about
    /// a visit confirms it, declines it or asks to move it, as the app's buttons do.
    /// Requires the shared secret in `X-Sms-Secret`. Always 200 once authenticated.
    #[oai(path = "/sms/inbound", method = "post")]
    async fn inbound(
        &self,
        #[oai(name = "X-Sms-Secret")] secret: Header<Option<String>>,
        body: Json<InboundSms>,
    ) -> ApiResult<Json<InboundAck>> {
        let state = &self.0;
        let expected = &state.config.notify.sms.inbound_secret;
        if expected.is_empty() || !same_secret(secret.0.as_deref().unwrap_or(""), expected) {
            return Err(ApiError::Unauthorized);
        }
        let raw_phone = body.0.mobile.or(body.0.phone_number).unwrap_or_default();
        let text: String = body
            .0
            .text
            .or(body.0.content)
            .unwrap_or_default()
            .chars()
            .take(20)
            .collect();
        let outcome = self.act(&raw_phone, &text).await;
        let (action, visit, result) = match outcome {
            Ok((visit, result)) => ("sms_reply", Some(visit), result),
            Err(why) => ("sms_reply_ignored", None, why),
        };
        tracing::info!(action, %result, "inbound SMS");
        audit::record(
            &state.db,
            None,
            action,
            "visit_task",
            visit,
            json!({
                "phone": mask_phone(&normalise_phone(&raw_phone).unwrap_or(raw_phone)),
                "reply": text,
                "result": result,
            }),
        )
        .await?;
        Ok(Json(InboundAck {
            result: 0,
            errmsg: "OK".into(),
        }))
    }
}

impl Api {
    /// Performs the reply. Ok: the visit and what was done; Err: why nothing was.
    async fn act(&self, raw_phone: &str, text: &str) -> Result<(uuid::Uuid, String), String> {
        let state = &self.0;
        let phone = normalise_phone(raw_phone).ok_or("not a mobile number")?;
        let reply = parse_reply(text).ok_or("not a reply 1, 2 or 3")?;
        let db_err = |e: sea_orm::DbErr| e.to_string();
        let last = sms_message::Entity::find()
            .filter(sms_message::Column::Phone.eq(&phone))
            .filter(sms_message::Column::TaskId.is_not_null())
            .filter(sms_message::Column::SentAt.gt(Utc::now() - Duration::days(REPLY_DAYS)))
            .order_by_desc(sms_message::Column::SentAt)
            .one(&state.db)
            .await
            .map_err(db_err)?
            .ok_or("no recent SMS about a visit to this number")?;
        let visit = last.task_id.ok_or("no visit")?;
        let task = visit_task::Entity::find_by_id(visit)
            .one(&state.db)
            .await
            .map_err(db_err)?
            .ok_or("the visit is gone")?;
        let answer = match reply {
            Reply::Yes if task.status == visit_task::status::REPORTED => FamilyAnswer::Confirm,
            // A coming visit: "fine, come" needs nothing done.
            Reply::Yes => return Ok((visit, "acknowledged".into())),
            Reply::Decline => FamilyAnswer::Decline,
            Reply::Move => FamilyAnswer::Move,
        };
        let reason = match answer {
            FamilyAnswer::Decline => "短信回复：这次不便接待",
            _ => "短信回复：希望改期",
        };
        match reports::family_answer(state, last.recipient_id, visit, answer, reason).await {
            Ok(status) => Ok((visit, format!("{answer:?} → {status}").to_lowercase())),
            Err(e) => Err(format!("{answer:?} not possible: {e}").to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_one_digit_in_any_width() {
        assert_eq!(parse_reply("1"), Some(Reply::Yes));
        assert_eq!(parse_reply(" 2 "), Some(Reply::Decline));
        assert_eq!(parse_reply("３"), Some(Reply::Move));
        assert_eq!(parse_reply("1。谢谢"), Some(Reply::Yes));
        for bad in ["", "12", "4", "好的", "ok", "0"] {
            assert_eq!(parse_reply(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("ab", "abc"));
    }
}

//! The outbox, and the in-app inbox.
//!
//! A message's life (`status`): `pending` (due at `next_attempt_at`) → `sending` (taken by
//! a dispatcher until `next_attempt_at`; a dispatcher that died leaves it to be taken
//! again) → `sent` (`channel` says what reached the person), or `dead` (WeChat refused it
//! for good: our bug, `last_error` says why), or `dropped` (no longer true when its time
//! came, e.g. the visit was cancelled meanwhile, or a reminder far too late: `last_error`
//! says why). `trail` lists every channel tried on the way.

use sea_orm::entity::prelude::*;

/// Queued, not yet delivered.
pub const PENDING: &str = "pending";
/// Taken by a dispatcher.
pub const SENDING: &str = "sending";
/// Delivered; `channel` says how.
pub const SENT: &str = "sent";
/// Refused for good by the push channel; still in the inbox.
pub const DEAD: &str = "dead";
/// Out of date when it came to be sent: not sent, not in the inbox.
pub const DROPPED: &str = "dropped";

/// The channels that can reach a person (`channel`).
pub mod channel {
    /// A WeChat subscribe message (the message is in the inbox too).
    pub const WECHAT: &str = "wechat";
    /// Only the in-app inbox.
    pub const INBOX: &str = "inbox";
    /// An SMS (the message is in the inbox too).
    pub const SMS: &str = "sms";
    /// A phone-call visit for the family's paired cadre (一帮一), who tells them.
    pub const CALL: &str = "call";
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notification")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub recipient_id: Uuid,
    pub template: String,
    #[sea_orm(column_type = "Json")]
    pub payload: Json,
    pub dedupe_key: String,
    pub status: String,
    pub channel: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub read_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// When it became due and entered the inbox (set when a dispatcher first takes it).
    pub inbox_at: Option<DateTimeUtc>,
    /// The moment it was meant for: `next_attempt_at` when a dispatcher first took it.
    pub due_at: Option<DateTimeUtc>,
    /// Each channel tried and what came of it: `[{"channel": "wechat", "result": "…"}]`.
    #[sea_orm(column_type = "Json", nullable)]
    pub trail: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl ActiveModel {
    /// A message queued for `recipient`, due at `at`: what every producer writes. Unique by
    /// `dedupe_key`, so producers insert with `ON CONFLICT (dedupe_key) DO NOTHING`.
    pub fn pending(
        recipient: Uuid,
        template: &str,
        payload: Json,
        dedupe_key: String,
        at: DateTimeUtc,
        now: DateTimeUtc,
    ) -> Self {
        use sea_orm::ActiveValue::Set;
        Self {
            id: Set(Uuid::now_v7()),
            recipient_id: Set(recipient),
            template: Set(template.into()),
            payload: Set(payload),
            dedupe_key: Set(dedupe_key),
            status: Set(PENDING.into()),
            channel: Set(None),
            attempts: Set(0),
            next_attempt_at: Set(at),
            sent_at: Set(None),
            last_error: Set(None),
            read_at: Set(None),
            inbox_at: Set(None),
            due_at: Set(None),
            trail: Set(None),
            created_at: Set(now),
        }
    }
}

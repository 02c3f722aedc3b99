//! The outbox, and the in-app inbox.

use sea_orm::entity::prelude::*;

/// Queued, not yet delivered.
pub const PENDING: &str = "pending";

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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

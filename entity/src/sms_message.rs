//! An SMS sent to a number: counted by the per-number limits, and the message a reply
//! from that number answers.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sms_message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Digits only, without a country prefix.
    pub phone: String,
    pub notification_id: Uuid,
    pub recipient_id: Uuid,
    /// The visit it is about, for replies 1/2/3.
    pub task_id: Option<Uuid>,
    pub template: String,
    pub provider_id: Option<String>,
    pub sent_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

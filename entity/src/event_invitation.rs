//! A family invited to an event, its reply and whether it came.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event_invitation")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: Uuid,
    pub family_id: Uuid,
    /// `invited`, `accepted` or `declined`.
    pub status: String,
    pub invited_by: Uuid,
    pub replied_at: Option<DateTimeUtc>,
    pub replied_by: Option<Uuid>,
    /// Recorded by the coordinator after the event.
    pub attended: Option<bool>,
    pub attendance_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

pub const INVITED: &str = "invited";
pub const ACCEPTED: &str = "accepted";
pub const DECLINED: &str = "declined";

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! An activity: collective birthday, festival gathering, training.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub region_id: Uuid,
    pub kind: String,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub location: String,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    /// Places for families (accepted invitations).
    pub capacity: i32,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    /// Volunteers wanted; sign-ups stop there.
    pub volunteer_slots: i32,
    /// Volunteers signed up: raised only while below `volunteer_slots`.
    pub volunteers_count: i32,
    /// Families who accepted: raised only while below `capacity`.
    pub accepted_count: i32,
    /// `planned` or `cancelled`.
    pub status: String,
    /// For a collective birthday (集体庆生): the month whose birthdays it celebrates.
    pub birthday_month: Option<i32>,
}

pub const PLANNED: &str = "planned";
pub const CANCELLED: &str = "cancelled";

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

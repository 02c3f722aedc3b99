//! A volunteer's leave, or their leaving.

use sea_orm::entity::prelude::*;

/// Away for the dates given.
pub const LEAVE: &str = "leave";
/// Left for good (no end date).
pub const LEFT: &str = "left";

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "volunteer_leave")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The volunteer profile.
    pub volunteer_id: Uuid,
    pub kind: String,
    pub start_date: Date,
    /// Included; none when they left.
    pub end_date: Option<Date>,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

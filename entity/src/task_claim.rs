//! A volunteer's claim on a visit.

use sea_orm::entity::prelude::*;

/// A claim that holds its visit.
pub const ACTIVE: &str = "active";
/// A claim given up by the volunteer, released by a coordinator, or ended by a life event.
pub const RELEASED: &str = "released";

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "task_claim")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub task_id: Uuid,
    pub volunteer_id: Uuid,
    pub status: String,
    pub claimed_at: DateTimeUtc,
    pub released_at: Option<DateTimeUtc>,
    pub released_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

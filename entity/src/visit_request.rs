//! A family declining a visit, or asking to move it, before it happens.

use crate::enums::StringList;
use sea_orm::entity::prelude::*;

pub const DECLINE: &str = "decline";
pub const MOVE: &str = "move";

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "visit_request")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub task_id: Uuid,
    pub family_id: Uuid,
    pub requested_by: Uuid,
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    /// For a move: the dates the family would prefer ("2026-12-03").
    #[sea_orm(column_type = "Json", nullable)]
    pub preferred_dates: Option<StringList>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

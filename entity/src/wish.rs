//! A wish on the wish wall (心愿墙).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "wish")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub family_id: Uuid,
    pub posted_by: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    pub status: String,
    pub resolved_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// `daily_life`, `health`, `emotional`, `legal`, `other`.
    pub kind: String,
    /// The family agreed to show it, anonymised, on the wall.
    pub public: bool,
    /// Who was asked to see it through.
    pub assignee_id: Option<Uuid>,
    pub assigned_at: Option<DateTimeUtc>,
    /// The first answer's time: time to first answer is measured from `created_at`.
    pub first_answered_at: Option<DateTimeUtc>,
    pub done_note: Option<String>,
}

/// Statuses: posted, someone is on it, fulfilled.
pub const OPEN: &str = "open";
pub const IN_PROGRESS: &str = "in_progress";
pub const DONE: &str = "done";

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

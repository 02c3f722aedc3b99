//! One 慰问金 gift to a family out of a budget, delivered on a visit.

use sea_orm::entity::prelude::*;

/// The life of a gift (`status`): `awaiting_approval` (above the amount a second
/// coordinator must approve) → `approved` → received when the family confirms the visit
/// it was delivered on; any → `cancelled`.
pub mod status {
    pub const AWAITING_APPROVAL: &str = "awaiting_approval";
    pub const APPROVED: &str = "approved";
    pub const CANCELLED: &str = "cancelled";
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "gift")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub budget_id: Uuid,
    pub family_id: Uuid,
    /// The visit that delivers it; the family's confirmation of that visit is the receipt.
    pub task_id: Option<Uuid>,
    pub amount_fen: i64,
    #[sea_orm(column_type = "Text")]
    pub goods: String,
    pub status: String,
    /// Unique: `festival:family` for a family's first gift of a festival; an override's
    /// key carries its own id.
    pub once_key: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub override_reason: Option<String>,
    pub created_by: Uuid,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

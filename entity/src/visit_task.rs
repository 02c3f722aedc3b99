//! One occurrence of a care rule.

use crate::enums::StringList;
use sea_orm::entity::prelude::*;

/// The kind of a cadre's phone call passing a message on to a family that could not be
/// reached otherwise: the cadre's errand, not a visit the family's care counts.
pub const MESSAGE_CALL: &str = "message_call";

/// Visits of the family's care: everything but a cadre's call passing a message on
/// ([`MESSAGE_CALL`]). The one rule for every count of visits (the family's list,
/// coverage, filings, workload) and for marking visits missed.
pub fn care_visits() -> sea_orm::sea_query::SimpleExpr {
    Column::Kind.ne(MESSAGE_CALL)
}

/// The life of a visit (`status`): `open` (claims still wanted; partly claimed while
/// `claims_count < volunteers_needed`) → `claimed` (every volunteer it needs holds it; a
/// cadre's pre-assigned visit stays `open` with `assigned_cadre_id`) → `in_progress`
/// (checked in at the door) → `reported` → `confirmed` (by the family); `open` or `claimed`
/// → `missed` when the window passes (not a message call); any → `cancelled`.
pub mod status {
    pub const OPEN: &str = "open";
    pub const CLAIMED: &str = "claimed";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const REPORTED: &str = "reported";
    pub const CONFIRMED: &str = "confirmed";
    pub const MISSED: &str = "missed";
    pub const CANCELLED: &str = "cancelled";
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "visit_task")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub family_id: Uuid,
    pub rule_id: Option<Uuid>,
    pub kind: String,
    pub channel: String,
    pub unique_key: String,
    pub window_start: DateTimeUtc,
    pub window_end: DateTimeUtc,
    pub status: String,
    pub volunteers_needed: i32,
    pub claims_count: i32,
    #[sea_orm(column_type = "Json")]
    pub required_skills: StringList,
    pub assigned_cadre_id: Option<Uuid>,
    pub planned_date: Option<Date>,
    #[sea_orm(column_type = "Json", nullable)]
    pub kinds: Option<StringList>,
    #[sea_orm(column_type = "Json", nullable)]
    pub reasons: Option<StringList>,
    #[sea_orm(column_type = "Json", nullable)]
    pub components: Option<StringList>,
    pub gentle: bool,
    pub first_visit: bool,
    pub assign_to_cadre: bool,
    pub preferred_time: Option<String>,
    pub visitor_gender: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub status_reason: Option<String>,
    pub needs_attention: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// A coordinator set the time by hand: the planner keeps it.
    pub rescheduled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! A volunteer proposed for a visit nobody claimed in time.

use sea_orm::entity::prelude::*;

/// Waiting for a coordinator (or for the region's automatic apply).
pub const PROPOSED: &str = "proposed";
/// Applied: the volunteer holds the visit (a claim) and has not answered yet.
pub const APPLIED: &str = "applied";
pub const ACCEPTED: &str = "accepted";
pub const DECLINED: &str = "declined";
/// Moot: the place was filled otherwise, the visit closed, or the volunteer went on leave.
pub const WITHDRAWN: &str = "withdrawn";

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "assignment_proposal")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub task_id: Uuid,
    /// The volunteer's account.
    pub volunteer_id: Uuid,
    pub region_id: Uuid,
    pub status: String,
    /// Why them, in words ("走访过该家庭3次；1.2公里；当周2/4").
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub distance_km: f64,
    pub past_visits: i32,
    pub week_load: i32,
    pub week_capacity: i32,
    pub claim_id: Option<Uuid>,
    pub applied_by: Option<Uuid>,
    pub applied_at: Option<DateTimeUtc>,
    pub answered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

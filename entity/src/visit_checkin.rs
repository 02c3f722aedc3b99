//! One holder's check-in (and check-out) on a visit.

use sea_orm::entity::prelude::*;

/// Checked in at the door, the position within the radius of the family's home.
pub const BY_POSITION: &str = "position";
/// Checked in with the one-time code the family showed.
pub const BY_CODE: &str = "code";
/// A phone-call visit: nobody goes to the door.
pub const BY_PHONE: &str = "phone";

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "visit_checkin")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub task_id: Uuid,
    pub user_id: Uuid,
    pub checkin_at: DateTimeUtc,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub method: String,
    pub distance_m: Option<f64>,
    pub checkout_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! A volunteer's profile; the person is in `app_user`.

use crate::enums::{StringList, VolunteerStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "volunteer")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub team_id: Option<Uuid>,
    pub region_id: Uuid,
    #[sea_orm(column_type = "Json")]
    pub skills: StringList,
    pub home_lat: Option<f64>,
    pub home_lng: Option<f64>,
    pub max_distance_km: f64,
    pub weekly_capacity: i32,
    #[sea_orm(column_type = "Json")]
    pub availability: Json,
    pub status: VolunteerStatus,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

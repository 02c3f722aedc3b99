//! A household in the register (台账).

use crate::enums::{FamilyCategory, FamilyStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "family")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub region_id: Uuid,
    pub register_no: String,
    pub category: FamilyCategory,
    pub head_name: String,
    pub phone: Option<String>,
    pub address: String,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub care_level: i32,
    pub status: FamilyStatus,
    pub consent_data: bool,
    pub consent_sms: bool,
    pub consent_wechat: bool,
    pub consent_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Json")]
    pub do_not_disturb: Json,
    #[sea_orm(column_type = "Text")]
    pub visitor_notes: String,
    #[sea_orm(column_type = "Text")]
    pub counsel_notes: String,
    pub created_at: DateTimeUtc,
    /// Per-family rule overrides (scheduler::rules::RuleOverride, as JSON).
    #[sea_orm(column_type = "Json", nullable)]
    pub care_overrides: Option<Json>,
    /// What the family was last planned with (`scheduler::generate`); None: plan it.
    pub plan_stamp: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

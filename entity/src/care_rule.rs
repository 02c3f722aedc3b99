//! What a family is owed; `family_id` None is the default for a category.

use crate::enums::{FamilyCategory, StringList};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "care_rule")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub family_id: Option<Uuid>,
    pub category: Option<FamilyCategory>,
    pub kind: String,
    pub channel: Option<String>,
    pub every_n: Option<i32>,
    pub every_unit: Option<String>,
    pub festival: Option<String>,
    pub lead_days: i32,
    pub window_days: i32,
    pub preferred_time: Option<String>,
    #[sea_orm(column_type = "Json")]
    pub required_skills: StringList,
    pub volunteers_needed: i32,
    pub assign_to_cadre: bool,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

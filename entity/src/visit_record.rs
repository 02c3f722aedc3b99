//! What happened on a visit, and the family's confirmation.

use crate::enums::StringList;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "visit_record")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub task_id: Uuid,
    pub reporter_id: Uuid,
    pub checkin_at: Option<DateTimeUtc>,
    pub checkin_lat: Option<f64>,
    pub checkin_lng: Option<f64>,
    pub checkin_method: Option<String>,
    pub checkout_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Json")]
    pub services: StringList,
    pub cash_fen: i64,
    #[sea_orm(column_type = "Text")]
    pub goods: String,
    pub bp_systolic: Option<i32>,
    pub bp_diastolic: Option<i32>,
    /// Whose blood pressure it is (a member of the visited family), when the report says.
    pub bp_member_id: Option<Uuid>,
    pub mood: Option<String>,
    #[sea_orm(column_type = "Json")]
    pub risk_signs: StringList,
    #[sea_orm(column_type = "Json")]
    pub needs: StringList,
    #[sea_orm(column_type = "Text")]
    pub notes: String,
    pub submitted_at: Option<DateTimeUtc>,
    pub confirmed_at: Option<DateTimeUtc>,
    pub confirm_method: Option<String>,
    pub rating: Option<i32>,
    pub comment: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

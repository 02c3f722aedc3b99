//! A one-time code with which a person binds their WeChat to a family member or a staff account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "invite_code")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// "family_member" or "staff".
    pub purpose: String,
    pub family_id: Option<Uuid>,
    pub member_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub code_hash: String,
    pub created_by: Uuid,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

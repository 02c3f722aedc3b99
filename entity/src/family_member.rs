//! A member of a family, living or deceased.

use crate::enums::{BirthCalendar, MemberRelation};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "family_member")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub family_id: Uuid,
    pub name: String,
    pub relation: MemberRelation,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub id_number_enc: Option<String>,
    pub id_number_masked: Option<String>,
    pub birth_calendar: BirthCalendar,
    pub birth_year: Option<i32>,
    pub birth_month: Option<i32>,
    pub birth_day: Option<i32>,
    pub birth_leap_month: bool,
    pub deceased: bool,
    pub death_date: Option<Date>,
    pub primary_contact: bool,
    pub user_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

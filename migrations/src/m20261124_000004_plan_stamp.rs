//! `family.plan_stamp`: the horizon and settings a family was last planned with. A run with
//! the same stamp skips the family, so re-running the nightly planning rewrites nothing and
//! reads little; whatever changes what the planner reads re-plans the family or clears it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("family")
                .add_column(string_len_null("plan_stamp", 64))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("family")
                .drop_column("plan_stamp")
                .take(),
        )
        .await
    }
}

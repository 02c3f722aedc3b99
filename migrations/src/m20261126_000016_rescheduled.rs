//! `visit_task.rescheduled_at`: when a coordinator set the visit's time by hand. The
//! planner keeps such a time instead of moving the visit back to the one its rules give.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("visit_task")
                .add_column(timestamp_with_time_zone_null("rescheduled_at"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("visit_task")
                .drop_column("rescheduled_at")
                .take(),
        )
        .await
    }
}

//! Longer `job_run.period`: a coordinator's planning run of one region is keyed
//! "<region id>@2026-11-24T03:15" (53 characters), beyond the 32 of the first schema.
//! SQLite does not enforce VARCHAR lengths (and cannot alter a column), so only
//! PostgreSQL changes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DatabaseBackend::Postgres {
            m.get_connection()
                .execute_unprepared("ALTER TABLE job_run ALTER COLUMN period TYPE varchar(80)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DatabaseBackend::Postgres {
            // Region runs do not fit the old width: they go with it.
            m.get_connection()
                .execute_unprepared(
                    "DELETE FROM job_run WHERE length(period) > 32;
                     ALTER TABLE job_run ALTER COLUMN period TYPE varchar(32)",
                )
                .await?;
        }
        Ok(())
    }
}

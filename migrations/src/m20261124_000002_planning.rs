//! What planning needs beyond the core model: a visit's reasons and the parts it merges,
//! per-family rule overrides, the ledger of job runs (one per job and period), and a lease
//! row per job for deployments without Redis.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn add(table: &'static str, col: ColumnDef) -> TableAlterStatement {
    Table::alter().table(table).add_column(col).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement, and a NOT NULL one needs a default.
        for col in [
            date_null("planned_date"),
            json_null("kinds"),
            json_null("reasons"),
            json_null("components"),
            boolean("gentle").default(false).take(),
            boolean("first_visit").default(false).take(),
            boolean("assign_to_cadre").default(false).take(),
            string_len_null("preferred_time", 16),
            string_len_null("visitor_gender", 8),
            // Why a visit was cancelled, skipped or flagged, for coordinators.
            text_null("status_reason"),
            // A claimed visit the plan no longer wants: a coordinator decides.
            boolean("needs_attention").default(false).take(),
        ] {
            m.alter_table(add("visit_task", col)).await?;
        }
        // JSON list of scheduler::rules::RuleOverride, applied to the category defaults.
        m.alter_table(add("family", json_null("care_overrides")))
            .await?;

        m.create_table(
            Table::create()
                .table("job_run")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(string_len("job", 32))
                // The period the run is for ("2026-11-24" for a nightly job); with `job`
                // unique, so a second fire of the same period does nothing.
                .col(string_len("period", 32))
                .col(string_len("status", 16))
                .col(string_len("holder", 64))
                .col(timestamp_with_time_zone("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .col(json_null("stats"))
                .col(text_null("error"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_job_run_job_period")
                .table("job_run")
                .col("job")
                .col("period")
                .unique()
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_job_run_started_at")
                .table("job_run")
                .col("started_at")
                .take(),
        )
        .await?;

        // Leader lease when Redis is absent: one row per lease, taken by a conditional
        // update; `token` grows with every new holder (a fencing token).
        m.create_table(
            Table::create()
                .table("job_lease")
                .if_not_exists()
                .col(string_len("name", 64).primary_key().take())
                .col(string_len("holder", 64))
                .col(big_integer("token"))
                .col(timestamp_with_time_zone("expires_at"))
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("job_lease").if_exists().take())
            .await?;
        m.drop_table(Table::drop().table("job_run").if_exists().take())
            .await?;
        m.alter_table(
            Table::alter()
                .table("family")
                .drop_column("care_overrides")
                .take(),
        )
        .await?;
        for col in [
            "planned_date",
            "kinds",
            "reasons",
            "components",
            "gentle",
            "first_visit",
            "assign_to_cadre",
            "preferred_time",
            "visitor_gender",
            "status_reason",
            "needs_attention",
        ] {
            m.alter_table(Table::alter().table("visit_task").drop_column(col).take())
                .await?;
        }
        Ok(())
    }
}

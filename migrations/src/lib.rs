//! The database schema, one migration per change. Migrations are frozen once they have
//! shipped: later changes add a new file instead of editing an old one.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_core;
mod m20261124_000002_planning;
mod m20261124_000003_job_run_period;
mod m20261124_000004_plan_stamp;
mod m20261124_000005_feed;
mod m20261124_000006_visit_codes;
mod m20261124_000007_calendar_link;
mod m20261124_000008_outbox;
mod m20261124_000009_delivery;
mod m20261125_000010_assignment;
mod m20261125_000011_gifts_health;
mod m20261125_000012_community;
mod m20261125_000013_visit_changes;
mod m20261125_000014_household;
mod m20261125_000015_outbox_due;
mod m20261126_000016_rescheduled;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_core::Migration),
            Box::new(m20261124_000002_planning::Migration),
            Box::new(m20261124_000003_job_run_period::Migration),
            Box::new(m20261124_000004_plan_stamp::Migration),
            Box::new(m20261124_000005_feed::Migration),
            Box::new(m20261124_000006_visit_codes::Migration),
            Box::new(m20261124_000007_calendar_link::Migration),
            Box::new(m20261124_000008_outbox::Migration),
            Box::new(m20261124_000009_delivery::Migration),
            Box::new(m20261125_000010_assignment::Migration),
            Box::new(m20261125_000011_gifts_health::Migration),
            Box::new(m20261125_000012_community::Migration),
            Box::new(m20261125_000013_visit_changes::Migration),
            Box::new(m20261125_000014_household::Migration),
            Box::new(m20261125_000015_outbox_due::Migration),
            Box::new(m20261126_000016_rescheduled::Migration),
        ]
    }
}

//! What lets an API instance keep its in-memory index of open visits (the volunteers'
//! feed) up to date from the database: every write to a visit moves its `updated_at`, by
//! the database's own clock, whoever writes it (the API, the planner, a raw UPDATE of
//! `claims_count`), and an index on it lets an instance read only the rows changed since
//! it last looked. A family's category or village is shown on its open visits in the
//! feed: changing either moves their `updated_at` too (a change of location already
//! rewrites their copy of it, migration m20261124_000005_feed).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES: &[&str] = &[
    // clock_timestamp, not now(): now() is when the transaction began.
    "CREATE OR REPLACE FUNCTION visit_task_touch() RETURNS trigger AS $$
     BEGIN
         NEW.updated_at := clock_timestamp();
         RETURN NEW;
     END $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS tr_visit_task_touch ON visit_task",
    "CREATE TRIGGER tr_visit_task_touch BEFORE INSERT OR UPDATE ON visit_task \
     FOR EACH ROW EXECUTE FUNCTION visit_task_touch()",
    "CREATE OR REPLACE FUNCTION family_touch_visits() RETURNS trigger AS $$
     BEGIN
         UPDATE visit_task SET updated_at = clock_timestamp()
         WHERE family_id = NEW.id AND status = 'open';
         RETURN NULL;
     END $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS tr_family_touch_visits ON family",
    "CREATE TRIGGER tr_family_touch_visits \
     AFTER UPDATE OF category, region_id ON family FOR EACH ROW \
     WHEN (OLD.category IS DISTINCT FROM NEW.category \
           OR OLD.region_id IS DISTINCT FROM NEW.region_id) \
     EXECUTE FUNCTION family_touch_visits()",
];

/// sqlx writes instants to SQLite as RFC 3339 text; the triggers write the same shape, so
/// that text comparison orders them.
const SQLITE: &[&str] = &[
    // Recursive triggers are off: the trigger's own UPDATE does not fire it again.
    "CREATE TRIGGER IF NOT EXISTS tr_visit_task_touch AFTER UPDATE ON visit_task \
     FOR EACH ROW BEGIN
         UPDATE visit_task SET updated_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
         WHERE id = NEW.id;
     END",
    "CREATE TRIGGER IF NOT EXISTS tr_family_touch_visits \
     AFTER UPDATE OF category, region_id ON family FOR EACH ROW \
     WHEN OLD.category IS NOT NEW.category OR OLD.region_id IS NOT NEW.region_id BEGIN
         UPDATE visit_task SET updated_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
         WHERE family_id = NEW.id AND status = 'open';
     END",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let postgres = m.get_database_backend() == DatabaseBackend::Postgres;
        for sql in if postgres { POSTGRES } else { SQLITE } {
            db.execute_unprepared(sql).await?;
        }
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_visit_task_updated_at ON visit_task (updated_at)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let postgres = m.get_database_backend() == DatabaseBackend::Postgres;
        let statements: &[&str] = if postgres {
            &[
                "DROP INDEX IF EXISTS ix_visit_task_updated_at",
                "DROP TRIGGER IF EXISTS tr_family_touch_visits ON family",
                "DROP TRIGGER IF EXISTS tr_visit_task_touch ON visit_task",
                "DROP FUNCTION IF EXISTS family_touch_visits()",
                "DROP FUNCTION IF EXISTS visit_task_touch()",
            ]
        } else {
            &[
                "DROP INDEX IF EXISTS ix_visit_task_updated_at",
                "DROP TRIGGER IF EXISTS tr_family_touch_visits",
                "DROP TRIGGER IF EXISTS tr_visit_task_touch",
            ]
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

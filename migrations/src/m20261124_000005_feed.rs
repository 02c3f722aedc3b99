//! What the volunteers' visit feed and their list of held visits need.
//!
//! The feed looks for open volunteer visits inside a box around the volunteer, then
//! computes exact distances in the application. To make the box one index range, each
//! volunteer visit carries its family's location (`visit_task.lat`, `visit_task.lng`; the
//! cadres' visits, most of them, do not need it), kept by the database itself: a trigger
//! copies it from the family when a visit is written, another copies a family's new
//! location to its visits. No application code has to remember.
//!
//! The index on the location is partial — open visits for volunteers only (not the cadres'
//! calls and check-ins, which are most visits, nor history) — and on PostgreSQL it carries
//! the columns the feed filters on, so the search reads the index alone. The feed repeats
//! the index's condition literally so that every plan can use it. A cadre's held visits are
//! found by `assigned_cadre_id`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The partial index's condition; `server::api::visits` repeats it.
const OPEN_FOR_VOLUNTEERS: &str =
    "status = 'open' AND NOT assign_to_cadre AND assigned_cadre_id IS NULL";

const POSTGRES: &[&str] = &[
    "ALTER TABLE visit_task ADD COLUMN IF NOT EXISTS lat double precision, \
     ADD COLUMN IF NOT EXISTS lng double precision",
    "CREATE OR REPLACE FUNCTION visit_task_family_location() RETURNS trigger AS $$
     BEGIN
         SELECT f.lat, f.lng INTO NEW.lat, NEW.lng FROM family f WHERE f.id = NEW.family_id;
         RETURN NEW;
     END $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS tr_visit_task_family_location ON visit_task",
    "CREATE TRIGGER tr_visit_task_family_location \
     BEFORE INSERT OR UPDATE OF family_id, assign_to_cadre ON visit_task \
     FOR EACH ROW WHEN (NOT NEW.assign_to_cadre) \
     EXECUTE FUNCTION visit_task_family_location()",
    "CREATE OR REPLACE FUNCTION family_location_to_visits() RETURNS trigger AS $$
     BEGIN
         UPDATE visit_task SET lat = NEW.lat, lng = NEW.lng
         WHERE family_id = NEW.id AND NOT assign_to_cadre;
         RETURN NULL;
     END $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS tr_family_location_to_visits ON family",
    "CREATE TRIGGER tr_family_location_to_visits \
     AFTER UPDATE OF lat, lng ON family FOR EACH ROW \
     WHEN (OLD.lat IS DISTINCT FROM NEW.lat OR OLD.lng IS DISTINCT FROM NEW.lng) \
     EXECUTE FUNCTION family_location_to_visits()",
    "UPDATE visit_task t SET lat = f.lat, lng = f.lng FROM family f \
     WHERE f.id = t.family_id AND f.lat IS NOT NULL AND NOT t.assign_to_cadre",
];

const SQLITE: &[&str] = &[
    "ALTER TABLE visit_task ADD COLUMN lat double NULL",
    "ALTER TABLE visit_task ADD COLUMN lng double NULL",
    "CREATE TRIGGER IF NOT EXISTS tr_visit_task_family_location \
     AFTER INSERT ON visit_task FOR EACH ROW WHEN NOT NEW.assign_to_cadre BEGIN
         UPDATE visit_task SET
             lat = (SELECT lat FROM family WHERE id = NEW.family_id),
             lng = (SELECT lng FROM family WHERE id = NEW.family_id)
         WHERE id = NEW.id;
     END",
    "CREATE TRIGGER IF NOT EXISTS tr_visit_task_family_moved \
     AFTER UPDATE OF family_id, assign_to_cadre ON visit_task FOR EACH ROW \
     WHEN NOT NEW.assign_to_cadre BEGIN
         UPDATE visit_task SET
             lat = (SELECT lat FROM family WHERE id = NEW.family_id),
             lng = (SELECT lng FROM family WHERE id = NEW.family_id)
         WHERE id = NEW.id;
     END",
    "CREATE TRIGGER IF NOT EXISTS tr_family_location_to_visits \
     AFTER UPDATE OF lat, lng ON family FOR EACH ROW \
     WHEN OLD.lat IS NOT NEW.lat OR OLD.lng IS NOT NEW.lng BEGIN
         UPDATE visit_task SET lat = NEW.lat, lng = NEW.lng
         WHERE family_id = NEW.id AND NOT assign_to_cadre;
     END",
    "UPDATE visit_task SET
         lat = (SELECT lat FROM family WHERE family.id = visit_task.family_id),
         lng = (SELECT lng FROM family WHERE family.id = visit_task.family_id)
     WHERE NOT assign_to_cadre",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let postgres = m.get_database_backend() == DatabaseBackend::Postgres;
        for sql in if postgres { POSTGRES } else { SQLITE } {
            db.execute_unprepared(sql).await?;
        }
        // The box: a range on lat, lng checked in the index.
        let geo = if postgres {
            format!(
                "CREATE INDEX IF NOT EXISTS ix_visit_task_open_geo ON visit_task (lat, lng) \
                 INCLUDE (id, window_start, window_end, claims_count, volunteers_needed, \
                 required_skills) WHERE {OPEN_FOR_VOLUNTEERS}"
            )
        } else {
            format!(
                "CREATE INDEX IF NOT EXISTS ix_visit_task_open_geo ON visit_task (lat, lng) \
                 WHERE {OPEN_FOR_VOLUNTEERS}"
            )
        };
        db.execute_unprepared(&geo).await?;
        // The visits pre-assigned to a cadre, by time (my visits).
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_visit_task_cadre_window ON visit_task \
             (assigned_cadre_id, window_start) WHERE assigned_cadre_id IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let postgres = m.get_database_backend() == DatabaseBackend::Postgres;
        let mut statements = vec![
            "DROP INDEX IF EXISTS ix_visit_task_cadre_window",
            "DROP INDEX IF EXISTS ix_visit_task_open_geo",
        ];
        if postgres {
            statements.extend([
                "DROP TRIGGER IF EXISTS tr_family_location_to_visits ON family",
                "DROP TRIGGER IF EXISTS tr_visit_task_family_location ON visit_task",
                "DROP FUNCTION IF EXISTS family_location_to_visits()",
                "DROP FUNCTION IF EXISTS visit_task_family_location()",
                "ALTER TABLE visit_task DROP COLUMN IF EXISTS lat, DROP COLUMN IF EXISTS lng",
            ]);
        } else {
            statements.extend([
                "DROP TRIGGER IF EXISTS tr_family_location_to_visits",
                "DROP TRIGGER IF EXISTS tr_visit_task_family_moved",
                "DROP TRIGGER IF EXISTS tr_visit_task_family_location",
                "ALTER TABLE visit_task DROP COLUMN lat",
                "ALTER TABLE visit_task DROP COLUMN lng",
            ]);
        }
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

//! What doing a visit needs beyond the core model:
//!
//! - `visit_code`: the short one-time codes a family shows in its app, with which a
//!   volunteer checks in where there is no GPS or confirms the visit for the family. Only
//!   a hash is kept; a code expires, works once, and is spent after a few wrong tries.
//! - `visit_checkin`: each holder's own check-in and check-out (a visit may need two
//!   volunteers, and `visit_record` has one row per visit); service hours are credited
//!   from these rows, one per volunteer and visit.
//! - `visit_request`: a family declining a visit or asking to move it, one of each kind
//!   per visit, for coordinators to act on.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(from: &'static str, col: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from}_{col}"))
        .from(from, col)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

fn index(table: &'static str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let prefix = if unique { "ux" } else { "ix" };
    let mut stmt = Index::create()
        .name(format!("{prefix}_{table}_{}", cols.join("_")))
        .table(table)
        .if_not_exists()
        .take();
    for c in cols {
        stmt.col(*c);
    }
    if unique {
        stmt.unique();
    }
    stmt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("visit_code")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("task_id"))
                // sha256 of the visit and the code: a code works for its own visit only.
                .col(string_len("code_hash", 64))
                // The family member who asked for it.
                .col(uuid("issued_to"))
                .col(timestamp_with_time_zone("expires_at"))
                // Set when used, replaced by a newer code, or spent by wrong tries.
                .col(timestamp_with_time_zone_null("used_at"))
                .col(integer("attempts").default(0))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("visit_code", "task_id", "visit_task"))
                .foreign_key(&mut fk("visit_code", "issued_to", "app_user"))
                .take(),
        )
        .await?;
        m.create_index(index("visit_code", &["task_id", "created_at"], false))
            .await?;

        m.create_table(
            Table::create()
                .table("visit_checkin")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("task_id"))
                // The holder's account (a volunteer's or a cadre's app_user id).
                .col(uuid("user_id"))
                .col(timestamp_with_time_zone("checkin_at"))
                .col(double_null("lat"))
                .col(double_null("lng"))
                // "position", "code" or "phone" (a phone-call visit).
                .col(string_len("method", 16))
                // From the family's home, for a check-in by position.
                .col(double_null("distance_m"))
                .col(timestamp_with_time_zone_null("checkout_at"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("visit_checkin", "task_id", "visit_task"))
                .foreign_key(&mut fk("visit_checkin", "user_id", "app_user"))
                .take(),
        )
        .await?;
        m.create_index(index("visit_checkin", &["task_id", "user_id"], true))
            .await?;

        m.create_table(
            Table::create()
                .table("visit_request")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("task_id"))
                .col(uuid("family_id"))
                .col(uuid("requested_by"))
                // "decline" or "move".
                .col(string_len("kind", 16))
                .col(text("reason"))
                // For a move: the dates the family would prefer (JSON list of dates).
                .col(json_null("preferred_dates"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("visit_request", "task_id", "visit_task"))
                .foreign_key(&mut fk("visit_request", "family_id", "family"))
                .foreign_key(&mut fk("visit_request", "requested_by", "app_user"))
                .take(),
        )
        .await?;
        m.create_index(index("visit_request", &["task_id", "kind"], true))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in ["visit_request", "visit_checkin", "visit_code"] {
            m.drop_table(Table::drop().table(t).if_exists().take())
                .await?;
        }
        Ok(())
    }
}

//! Events, the wish wall and emergency help, beyond the core model's tables (which stay
//! as they were: columns are only added).
//!
//! - `event`: a limit on volunteer sign-ups (`capacity` is the places for families), the
//!   counts the limits are enforced with (one conditional update each, so two sign-ups
//!   racing for the last place cannot both win), whether it was cancelled, and for a
//!   collective birthday (集体庆生) the month whose birthdays it celebrates.
//! - `event_signup`: attendance of a volunteer who signed up.
//! - `event_invitation`: a family invited to an event, its reply and its attendance.
//! - `wish`: its kind, whether the family agreed to show it (anonymised) on the wall, who
//!   was assigned to it, when it was first answered (time to first answer) and closed.
//! - `wish_answer`: whether the answer shows on the wall or only to the family.
//! - `help_request`: how far it has escalated and when; who resolved it and how.

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

/// The columns added to existing tables, one statement each (SQLite adds one at a time).
fn added() -> Vec<(&'static str, ColumnDef)> {
    vec![
        ("event", integer("volunteer_slots").default(0).take()),
        ("event", integer("volunteers_count").default(0).take()),
        ("event", integer("accepted_count").default(0).take()),
        ("event", string_len("status", 16).default("planned").take()),
        ("event", integer_null("birthday_month")),
        ("event_signup", boolean_null("attended")),
        ("event_signup", uuid_null("attendance_by")),
        ("wish", string_len("kind", 16).default("other").take()),
        ("wish", boolean("public").default(false).take()),
        ("wish", uuid_null("assignee_id")),
        ("wish", timestamp_with_time_zone_null("assigned_at")),
        ("wish", timestamp_with_time_zone_null("first_answered_at")),
        ("wish", string_len_null("done_note", 500)),
        ("wish_answer", boolean("public").default(false).take()),
        (
            "help_request",
            integer("escalation_level").default(0).take(),
        ),
        (
            "help_request",
            timestamp_with_time_zone_null("escalated_at"),
        ),
        ("help_request", uuid_null("resolved_by")),
        ("help_request", string_len_null("resolution", 500)),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, mut col) in added() {
            m.alter_table(Table::alter().table(table).add_column(&mut col).take())
                .await?;
        }
        m.create_table(
            Table::create()
                .table("event_invitation")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("event_id"))
                .col(uuid("family_id"))
                // invited → accepted / declined
                .col(string_len("status", 16))
                .col(uuid("invited_by"))
                .col(timestamp_with_time_zone_null("replied_at"))
                .col(uuid_null("replied_by"))
                .col(boolean_null("attended"))
                .col(uuid_null("attendance_by"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("event_invitation", "event_id", "event"))
                .foreign_key(&mut fk("event_invitation", "family_id", "family"))
                .take(),
        )
        .await?;
        m.create_index(index("event_invitation", &["event_id", "family_id"], true))
            .await?;
        m.create_index(index("event_invitation", &["family_id"], false))
            .await?;
        m.create_index(index("event", &["region_id", "starts_at"], false))
            .await?;
        m.create_index(index("wish", &["status", "created_at"], false))
            .await?;
        m.create_index(index("wish_answer", &["wish_id"], false))
            .await?;
        m.create_index(index("help_request", &["family_id"], false))
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("event_invitation").if_exists().take())
            .await?;
        for (table, idx) in [
            ("event", "ix_event_region_id_starts_at"),
            ("wish", "ix_wish_status_created_at"),
            ("wish_answer", "ix_wish_answer_wish_id"),
            ("help_request", "ix_help_request_family_id"),
        ] {
            m.drop_index(Index::drop().name(idx).table(table).if_exists().to_owned())
                .await?;
        }
        for (table, col) in added().into_iter().rev() {
            let name = col.get_column_name();
            m.alter_table(Table::alter().table(table).drop_column(name).take())
                .await?;
        }
        Ok(())
    }
}

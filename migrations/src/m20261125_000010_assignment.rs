//! Balanced assignment:
//!
//! - `assignment_proposal`: a volunteer proposed for a visit nobody claimed in time, with
//!   the reason in words; applied, it is a claim (`claim_id`) the volunteer accepts or
//!   declines. One row per visit and volunteer: who declined is not proposed again.
//! - `assignment_setting`: regions whose proposals are applied without review (the nearest
//!   region up the tree with a row decides).
//! - `volunteer_leave`: a volunteer's declared leave (dates), or their leaving for good
//!   (`kind = left`, no end).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(
    table: &'static str,
    col: &'static str,
    to: &'static str,
    cascade: bool,
) -> ForeignKeyCreateStatement {
    let mut f = ForeignKey::create()
        .name(format!("fk_{table}_{col}"))
        .from(table, col)
        .to(to, "id")
        .take();
    if cascade {
        f.on_delete(ForeignKeyAction::Cascade);
    }
    f
}

fn index(table: &'static str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut i = Index::create()
        .name(format!(
            "{}_{table}_{}",
            if unique { "ux" } else { "ix" },
            cols.join("_")
        ))
        .table(table)
        .if_not_exists()
        .take();
    for c in cols {
        i.col(*c);
    }
    if unique {
        i.unique();
    }
    i
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("assignment_proposal")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("task_id"))
                // The volunteer's account, as in `task_claim`.
                .col(uuid("volunteer_id"))
                // The family's region, for coordinators' scopes.
                .col(uuid("region_id"))
                // proposed → applied → accepted | declined; withdrawn when the place went
                // otherwise (claimed, cancelled, the volunteer on leave).
                .col(string_len("status", 16))
                .col(text("reason"))
                .col(double("distance_km"))
                .col(integer("past_visits"))
                .col(integer("week_load"))
                .col(integer("week_capacity"))
                .col(uuid_null("claim_id"))
                .col(uuid_null("applied_by"))
                .col(timestamp_with_time_zone_null("applied_at"))
                .col(timestamp_with_time_zone_null("answered_at"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk(
                    "assignment_proposal",
                    "task_id",
                    "visit_task",
                    true,
                ))
                .foreign_key(&mut fk(
                    "assignment_proposal",
                    "volunteer_id",
                    "app_user",
                    false,
                ))
                .foreign_key(&mut fk("assignment_proposal", "region_id", "region", false))
                .take(),
        )
        .await?;
        m.create_index(index(
            "assignment_proposal",
            &["task_id", "volunteer_id"],
            true,
        ))
        .await?;
        m.create_index(index(
            "assignment_proposal",
            &["region_id", "status"],
            false,
        ))
        .await?;
        m.create_index(index(
            "assignment_proposal",
            &["volunteer_id", "status"],
            false,
        ))
        .await?;
        m.create_table(
            Table::create()
                .table("assignment_setting")
                .if_not_exists()
                .col(pk_uuid("region_id"))
                .col(boolean("auto_apply"))
                .col(uuid("updated_by"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("assignment_setting", "region_id", "region", true))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("volunteer_leave")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("volunteer_id"))
                // leave | left
                .col(string_len("kind", 8))
                .col(date("start_date"))
                .col(date_null("end_date"))
                .col(text("reason"))
                .col(uuid("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk(
                    "volunteer_leave",
                    "volunteer_id",
                    "volunteer",
                    true,
                ))
                .take(),
        )
        .await?;
        m.create_index(index("volunteer_leave", &["volunteer_id"], false))
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "volunteer_leave",
            "assignment_setting",
            "assignment_proposal",
        ] {
            m.drop_table(Table::drop().table(t).if_exists().take())
                .await?;
        }
        Ok(())
    }
}

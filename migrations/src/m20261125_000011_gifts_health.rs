//! What seeing the work needs beyond the visit records:
//!
//! - `gift_budget`: a programme's budget for one festival (两节慰问 for 2027春节) in a
//!   region, in fen.
//! - `gift`: one 慰问金 gift to a family out of a budget, delivered on a visit (whose
//!   confirmation by the family is the receipt). `once_key` is unique: the first gift of a
//!   family for a festival holds `festival:family`, so a second one can only exist as a
//!   coordinator's override (its key carries its own id) — the database decides, not a
//!   check that two requests could both pass.
//! - `visit_record.bp_member_id`: whose blood pressure the report gives, for readings over
//!   time per family member.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("gift_budget")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("region_id"))
                .col(string_len("programme", 50))
                .col(string_len("festival", 50))
                .col(big_integer("budget_fen"))
                .col(uuid("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_gift_budget_region_id")
                        .from("gift_budget", "region_id")
                        .to("region", "id")
                        .take(),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_gift_budget_region_programme_festival")
                .table("gift_budget")
                .col("region_id")
                .col("programme")
                .col("festival")
                .unique()
                .if_not_exists()
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("gift")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("budget_id"))
                .col(uuid("family_id"))
                .col(uuid_null("task_id"))
                .col(big_integer("amount_fen"))
                .col(text("goods"))
                .col(string_len("status", 20))
                .col(string_len("once_key", 200))
                .col(text_null("override_reason"))
                .col(uuid("created_by"))
                .col(uuid_null("approved_by"))
                .col(timestamp_with_time_zone_null("approved_at"))
                .col(timestamp_with_time_zone_null("cancelled_at"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_gift_budget_id")
                        .from("gift", "budget_id")
                        .to("gift_budget", "id")
                        .take(),
                )
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_gift_family_id")
                        .from("gift", "family_id")
                        .to("family", "id")
                        .take(),
                )
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_gift_task_id")
                        .from("gift", "task_id")
                        .to("visit_task", "id")
                        // A visit the planner removes leaves the gift to be delivered on
                        // another.
                        .on_delete(ForeignKeyAction::SetNull)
                        .take(),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_gift_once_key")
                .table("gift")
                .col("once_key")
                .unique()
                .if_not_exists()
                .take(),
        )
        .await?;
        for col in ["budget_id", "family_id", "task_id"] {
            m.create_index(
                Index::create()
                    .name(format!("ix_gift_{col}"))
                    .table("gift")
                    .col(col)
                    .if_not_exists()
                    .take(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table("visit_record")
                .add_column(uuid_null("bp_member_id"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("visit_record")
                .drop_column("bp_member_id")
                .take(),
        )
        .await?;
        m.drop_table(Table::drop().table("gift").if_exists().take())
            .await?;
        m.drop_table(Table::drop().table("gift_budget").if_exists().take())
            .await
    }
}

//! What delivering beyond WeChat needs:
//!
//! - `notification.due_at`: the moment a message was meant for, kept when the dispatcher
//!   first takes it (retries and quiet hours move `next_attempt_at`), so that a reminder
//!   sent too late after downtime can be recognised and dropped.
//! - `notification.trail`: every channel tried for the message and what it answered
//!   (JSON list), so a coordinator can see why a family was or was not reached.
//! - `sms_message`: each SMS sent, by number: the per-number limits count these rows (the
//!   database decides, not a cache), and a family's reply by SMS is matched to the last
//!   message sent to its number.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        m.alter_table(
            Table::alter()
                .table("notification")
                .add_column(timestamp_with_time_zone_null("due_at"))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("notification")
                .add_column(json_null("trail"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sms_message")
                .if_not_exists()
                .col(pk_uuid("id"))
                // Digits only, without a country prefix.
                .col(string_len("phone", 20))
                .col(uuid("notification_id"))
                .col(uuid("recipient_id"))
                // The visit the message is about, for replies 1/2/3.
                .col(uuid_null("task_id"))
                .col(string_len("template", 32))
                // The provider's id of the send (BizId / SerialNo).
                .col(string_len_null("provider_id", 64))
                .col(timestamp_with_time_zone("sent_at"))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_sms_message_notification_id")
                        .from("sms_message", "notification_id")
                        .to("notification", "id")
                        .on_delete(ForeignKeyAction::Cascade)
                        .take(),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_sms_message_phone_sent_at")
                .table("sms_message")
                .col("phone")
                .col("sent_at")
                .if_not_exists()
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("sms_message").if_exists().take())
            .await?;
        for col in ["trail", "due_at"] {
            m.alter_table(Table::alter().table("notification").drop_column(col).take())
                .await?;
        }
        Ok(())
    }
}

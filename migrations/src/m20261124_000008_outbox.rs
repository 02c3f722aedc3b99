//! What sending the outbox needs: `notification.inbox_at`, the moment a message became
//! due and entered the person's in-app inbox (set by the dispatcher when it first takes
//! the message, so a reminder queued for later does not show before its time), and an
//! index to read one person's inbox newest first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("notification")
                .add_column(timestamp_with_time_zone_null("inbox_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_notification_recipient_id_inbox_at")
                .table("notification")
                .col("recipient_id")
                .col("inbox_at")
                .if_not_exists()
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_notification_recipient_id_inbox_at")
                .table("notification")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("notification")
                .drop_column("inbox_at")
                .take(),
        )
        .await
    }
}

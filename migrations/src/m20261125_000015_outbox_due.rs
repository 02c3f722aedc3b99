//! The dispatcher takes the oldest due messages in batches: an index of only the waiting
//! ones (`pending`, `sending`) in the order it takes them. Without it every batch read and
//! sorted every waiting row, so a large outbox drained ever slower (57 ms a batch at 50 000
//! waiting, against 8 ms with it). The dispatcher's query repeats this predicate word for
//! word, so that both databases know the index applies.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS ix_notification_due ON notification (next_attempt_at) \
                 WHERE status IN ('pending', 'sending')",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_notification_due")
            .await?;
        Ok(())
    }
}

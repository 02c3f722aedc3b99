//! `family_household`: the account through which a family nobody of which uses the app
//! is reached. Messages for the family are addressed to it; having no WeChat, they go by
//! SMS when the family agreed to SMS, or become a call by the family's cadre, and wait in
//! its inbox. One per family, made when the first message needs it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("family_household")
                .if_not_exists()
                .col(pk_uuid("family_id"))
                .col(uuid_uniq("user_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_family_household_family_id")
                        .from("family_household", "family_id")
                        .to("family", "id")
                        .on_delete(ForeignKeyAction::Cascade)
                        .take(),
                )
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_family_household_user_id")
                        .from("family_household", "user_id")
                        .to("app_user", "id")
                        .on_delete(ForeignKeyAction::Cascade)
                        .take(),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("family_household").to_owned())
            .await
    }
}

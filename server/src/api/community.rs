//! What events, the wish wall and emergency help share: the caller as a member of a
//! family, a region's name as the wall may show it, and transactions that commit only
//! when every step succeeded.

use std::collections::HashMap;

use entity::{family, family_member, region};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

use crate::{
    auth::{Ctx, Scope},
    error::{ApiError, ApiResult},
};

/// The family the caller belongs to (as a bound member); `chosen` picks one when they
/// belong to several. 403 for someone who is no family's member.
pub async fn my_family(
    db: &impl ConnectionTrait,
    ctx: &Ctx,
    chosen: Option<Uuid>,
) -> ApiResult<family::Model> {
    let mut ids: Vec<Uuid> = family_member::Entity::find()
        .select_only()
        .column(family_member::Column::FamilyId)
        .filter(family_member::Column::UserId.eq(ctx.user_id))
        .filter(family_member::Column::Deceased.eq(false))
        .into_tuple()
        .all(db)
        .await?;
    ids.sort();
    ids.dedup();
    let id = match (chosen, ids.as_slice()) {
        (_, []) => return Err(ApiError::Forbidden("仅家庭成员可以使用".into())),
        (Some(c), _) if ids.contains(&c) => c,
        (Some(_), _) => return Err(ApiError::field("family_id", "您不是该家庭的成员")),
        (None, [one]) => *one,
        (None, _) => return Err(ApiError::field("family_id", "您属于多个家庭，请选择一个")),
    };
    family::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("家庭"))
}

/// Every family the caller is a living, bound member of.
pub async fn my_families(db: &impl ConnectionTrait, ctx: &Ctx) -> ApiResult<Vec<Uuid>> {
    let mut ids: Vec<Uuid> = family_member::Entity::find()
        .select_only()
        .column(family_member::Column::FamilyId)
        .filter(family_member::Column::UserId.eq(ctx.user_id))
        .filter(family_member::Column::Deceased.eq(false))
        .into_tuple()
        .all(db)
        .await?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Whether a family lies in a coordinator's scope.
pub async fn family_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    family: &family::Model,
) -> ApiResult<bool> {
    if *scope == Scope::All {
        return Ok(true);
    }
    let path: Option<String> = region::Entity::find_by_id(family.region_id)
        .select_only()
        .column(region::Column::Path)
        .into_tuple()
        .one(db)
        .await?;
    Ok(path.is_some_and(|p| scope.contains(&p)))
}

/// Region names by id (villages, for the wall and lists).
pub async fn region_names(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    let mut ids: Vec<Uuid> = ids.into_iter().collect();
    ids.sort();
    ids.dedup();
    let rows: Vec<(Uuid, String)> = region::Entity::find()
        .select_only()
        .columns([region::Column::Id, region::Column::Name])
        .filter(region::Column::Id.is_in(ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// A transaction that takes SQLite's write lock at once (no upgrade deadlocks).
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Commits on success, rolls back on failure: no partial writes.
pub async fn finish<T>(txn: DatabaseTransaction, out: ApiResult<T>) -> ApiResult<T> {
    match out {
        Ok(v) => {
            txn.commit().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

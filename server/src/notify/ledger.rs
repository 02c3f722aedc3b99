//! One-time subscription grants (WECHAT.md §3.2): each time a person accepts a template
//! in `wx.requestSubscribeMessage`, WeChat allows one more message of it, for ever. We
//! count them per person and WeChat template: +1 per reported acceptance, −1 per message
//! WeChat took, 0 when WeChat says none is left (43101).

use std::collections::HashMap;

use chrono::Utc;
use entity::subscription_quota::{self, Column as Q};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

/// Adds one grant for each template id.
pub async fn add(
    db: &impl ConnectionTrait,
    user: Uuid,
    template_ids: &[String],
) -> Result<(), DbErr> {
    if template_ids.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows = template_ids
        .iter()
        .map(|t| subscription_quota::ActiveModel {
            id: sea_orm::Set(Uuid::now_v7()),
            user_id: sea_orm::Set(user),
            template_id: sea_orm::Set(t.clone()),
            balance: sea_orm::Set(1),
            updated_at: sea_orm::Set(now),
        });
    subscription_quota::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([Q::UserId, Q::TemplateId])
                .value(
                    Q::Balance,
                    Expr::col((subscription_quota::Entity, Q::Balance)).add(1),
                )
                .value(Q::UpdatedAt, Expr::value(now))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The grants of these people: (person, WeChat template id) → balance.
pub async fn balances(
    db: &impl ConnectionTrait,
    users: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<(Uuid, String), i32>, DbErr> {
    let rows = subscription_quota::Entity::find()
        .filter(Q::UserId.is_in(users))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.user_id, r.template_id), r.balance))
        .collect())
}

/// One grant used by a message WeChat took.
pub async fn spend(db: &impl ConnectionTrait, user: Uuid, template_id: &str) -> Result<(), DbErr> {
    subscription_quota::Entity::update_many()
        .col_expr(Q::Balance, Expr::col(Q::Balance).sub(1))
        .col_expr(Q::UpdatedAt, Expr::value(Utc::now()))
        .filter(Q::UserId.eq(user))
        .filter(Q::TemplateId.eq(template_id))
        .filter(Q::Balance.gt(0))
        .exec(db)
        .await?;
    Ok(())
}

/// WeChat says no grant is left (43101): it knows better than our count.
pub async fn zero(db: &impl ConnectionTrait, user: Uuid, template_id: &str) -> Result<(), DbErr> {
    subscription_quota::Entity::update_many()
        .col_expr(Q::Balance, Expr::value(0))
        .col_expr(Q::UpdatedAt, Expr::value(Utc::now()))
        .filter(Q::UserId.eq(user))
        .filter(Q::TemplateId.eq(template_id))
        .exec(db)
        .await?;
    Ok(())
}

//! 一帮一: every special family has one responsible cadre (and a township leader). Their
//! visits arrive pre-assigned rather than open for claiming.

use std::sync::Arc;

use chrono::Utc;
use entity::{Role, family, pairing, role_grant};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
    sea_query::{Expr, Query as SqlQuery},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Page, Tag, families, in_scope, page_of};
use crate::{
    app::AppState,
    audit,
    auth::{Manager, Scope},
    error::{ApiError, ApiResult},
    input::{Input, Validate},
};

pub struct Api(pub Arc<AppState>);

#[derive(Object)]
pub struct PairingView {
    pub id: Uuid,
    pub family_id: Uuid,
    pub cadre_id: Uuid,
    pub leader_id: Option<Uuid>,
    pub started_on: chrono::NaiveDate,
    pub ended_on: Option<chrono::NaiveDate>,
}

impl From<pairing::Model> for PairingView {
    fn from(p: pairing::Model) -> Self {
        Self {
            id: p.id,
            family_id: p.family_id,
            cadre_id: p.cadre_id,
            leader_id: p.leader_id,
            started_on: p.started_on,
            ended_on: p.ended_on,
        }
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPairing {
    pub family_id: Uuid,
    /// A person holding the cadre role in my scope.
    pub cadre_id: Uuid,
    /// The township leader (挂钩领导), also a cadre or coordinator in my scope.
    pub leader_id: Option<Uuid>,
}

impl Validate for NewPairing {}

/// The person must hold one of `roles` in a region inside `scope`.
async fn staff_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    field: &str,
    user_id: Uuid,
    roles: &[Role],
) -> ApiResult<()> {
    let found = role_grant::Entity::find()
        .filter(role_grant::Column::UserId.eq(user_id))
        .filter(role_grant::Column::Role.is_in(roles.to_vec()))
        .filter(in_scope(scope, role_grant::Column::RegionId))
        .one(db)
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::field(field, "该人员不是您管辖范围内的责任干部"))
}

#[OpenApi(prefix_path = "/pairings", tag = "Tag::Pairings")]
impl Api {
    /// Pairings of families in my scope; current ones unless `include_ended`.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        family_id: Query<Option<Uuid>>,
        cadre_id: Query<Option<Uuid>>,
        include_ended: Query<Option<bool>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<PairingView>>> {
        let scope = auth.0.manager_scope()?;
        let families_in_scope = SqlQuery::select()
            .column(family::Column::Id)
            .from(family::Entity)
            .cond_where(in_scope(&scope, family::Column::RegionId))
            .to_owned();
        let mut select = pairing::Entity::find()
            .filter(pairing::Column::FamilyId.in_subquery(families_in_scope))
            .order_by_desc(pairing::Column::CreatedAt);
        if let Some(f) = family_id.0 {
            select = select.filter(pairing::Column::FamilyId.eq(f));
        }
        if let Some(c) = cadre_id.0 {
            select = select.filter(pairing::Column::CadreId.eq(c));
        }
        if !include_ended.0.unwrap_or(false) {
            select = select.filter(pairing::Column::EndedOn.is_null());
        }
        Ok(Json(
            page_of(&self.0.db, select, page.0, per_page.0, PairingView::from).await?,
        ))
    }

    /// Pair a family with a cadre; a current pairing of the family ends today.
    #[oai(path = "/", method = "post")]
    async fn create(&self, auth: Manager, body: Input<NewPairing>) -> ApiResult<Json<PairingView>> {
        let scope = auth.0.manager_scope()?;
        let b = body.0;
        let db = &self.0.db;
        families::find_in_scope(db, &scope, b.family_id)
            .await
            .map_err(|_| ApiError::field("family_id", "家庭不存在或不在您的管辖范围内"))?;
        staff_in_scope(db, &scope, "cadre_id", b.cadre_id, &[Role::Cadre]).await?;
        if let Some(l) = b.leader_id {
            staff_in_scope(
                db,
                &scope,
                "leader_id",
                l,
                &[Role::Cadre, Role::Coordinator],
            )
            .await?;
        }
        let today = Utc::now().with_timezone(&self.0.tz).date_naive();
        let txn = db.begin().await?;
        pairing::Entity::update_many()
            .col_expr(pairing::Column::EndedOn, Expr::value(today))
            .filter(pairing::Column::FamilyId.eq(b.family_id))
            .filter(pairing::Column::EndedOn.is_null())
            .exec(&txn)
            .await?;
        let p = pairing::ActiveModel {
            id: Set(Uuid::now_v7()),
            family_id: Set(b.family_id),
            cadre_id: Set(b.cadre_id),
            leader_id: Set(b.leader_id),
            started_on: Set(today),
            ended_on: Set(None),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "pair_family",
            "family",
            Some(b.family_id),
            json!({"cadre": b.cadre_id}),
        )
        .await?;
        txn.commit().await?;
        crate::jobs::replan(&self.0, p.family_id).await;
        Ok(Json(p.into()))
    }

    /// End a pairing today.
    #[oai(path = "/:id/end", method = "post")]
    async fn end(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<PairingView>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let p = pairing::Entity::find_by_id(id.0)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("结对"))?;
        families::find_in_scope(db, &scope, p.family_id)
            .await
            .map_err(|_| ApiError::NotFound("结对"))?;
        if p.ended_on.is_some() {
            return Err(ApiError::conflict("already_ended", "该结对已结束"));
        }
        let mut row: pairing::ActiveModel = p.into();
        row.ended_on = Set(Some(Utc::now().with_timezone(&self.0.tz).date_naive()));
        let p = row.update(db).await?;
        audit::record(
            db,
            Some(auth.0.user_id),
            "end_pairing",
            "family",
            Some(p.family_id),
            json!({}),
        )
        .await?;
        crate::jobs::replan(&self.0, p.family_id).await;
        Ok(Json(p.into()))
    }
}

//! The region tree (市/县/乡/村). A coordinator manages their own subtree.

use std::sync::Arc;

use chrono::Utc;
use entity::{RegionLevel, region};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{Page, Tag, contains, in_scope, page_of, search_term};
use crate::{
    app::AppState,
    auth::{Manager, Scope},
    error::{ApiError, ApiResult},
    input::{Input, Validate, location, text},
};

pub struct Api(pub Arc<AppState>);

#[derive(Object)]
pub struct RegionView {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub level: RegionLevel,
    pub name: String,
    /// The administrative division code (行政区划代码) or the association's own code.
    pub code: String,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
}

impl From<region::Model> for RegionView {
    fn from(r: region::Model) -> Self {
        Self {
            id: r.id,
            parent_id: r.parent_id,
            level: r.level,
            name: r.name,
            code: r.code,
            lat: r.lat,
            lng: r.lng,
        }
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRegion {
    /// The parent region; only an administrator may create a city (no parent).
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub code: String,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
}

impl Validate for NewRegion {
    fn validate(&self) -> ApiResult<()> {
        text("name", &self.name, 1, 64)?;
        text("code", &self.code, 1, 32)?;
        location("location", self.lat, self.lng)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionChange {
    pub name: Option<String>,
    pub code: Option<String>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
}

impl Validate for RegionChange {
    fn validate(&self) -> ApiResult<()> {
        if let Some(name) = &self.name {
            text("name", name, 1, 64)?;
        }
        if let Some(code) = &self.code {
            text("code", code, 1, 32)?;
        }
        location("location", self.lat, self.lng)
    }
}

/// A region the caller may manage, or 404 (existence outside one's scope is not revealed).
pub async fn find_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> ApiResult<region::Model> {
    region::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|r| scope.contains(&r.path))
        .ok_or(ApiError::NotFound("地区"))
}

/// A region named in a request body: it must exist and lie in the caller's scope.
pub async fn referenced(
    db: &impl ConnectionTrait,
    scope: &Scope,
    field: &str,
    id: Uuid,
) -> ApiResult<region::Model> {
    find_in_scope(db, scope, id)
        .await
        .map_err(|_| ApiError::field(field, "地区不存在或不在您的管辖范围内"))
}

#[OpenApi(prefix_path = "/regions", tag = "Tag::Regions")]
impl Api {
    /// Regions in my scope, searchable by name or code.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        parent_id: Query<Option<Uuid>>,
        level: Query<Option<RegionLevel>>,
        q: Query<Option<String>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<RegionView>>> {
        let scope = auth.0.manager_scope()?;
        let mut select = region::Entity::find()
            .filter(in_scope(&scope, region::Column::Id))
            .order_by_asc(region::Column::Path);
        if let Some(p) = parent_id.0 {
            select = select.filter(region::Column::ParentId.eq(p));
        }
        if let Some(l) = level.0 {
            select = select.filter(region::Column::Level.eq(l));
        }
        if let Some(q) = search_term(q.0.as_deref()) {
            select = select
                .filter(contains(region::Column::Name, q).or(contains(region::Column::Code, q)));
        }
        Ok(Json(
            page_of(&self.0.db, select, page.0, per_page.0, RegionView::from).await?,
        ))
    }

    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<RegionView>> {
        let scope = auth.0.manager_scope()?;
        Ok(Json(find_in_scope(&self.0.db, &scope, id.0).await?.into()))
    }

    /// Add a region under one in my scope; its level follows from the parent's.
    #[oai(path = "/", method = "post")]
    async fn create(&self, auth: Manager, body: Input<NewRegion>) -> ApiResult<Json<RegionView>> {
        let scope = auth.0.manager_scope()?;
        let body = body.0;
        let db = &self.0.db;
        let id = Uuid::now_v7();
        let (level, path) = match body.parent_id {
            None if scope == Scope::All => (RegionLevel::City, format!("/{id}/")),
            None => return Err(ApiError::field("parent_id", "请选择上级地区")),
            Some(pid) => {
                let parent = referenced(db, &scope, "parent_id", pid).await?;
                let level = parent
                    .level
                    .child()
                    .ok_or_else(|| ApiError::field("parent_id", "村/社区下不能再设地区"))?;
                (level, format!("{}{id}/", parent.path))
            }
        };
        let row = region::ActiveModel {
            id: Set(id),
            parent_id: Set(body.parent_id),
            level: Set(level),
            name: Set(body.name.trim().into()),
            code: Set(body.code.trim().into()),
            path: Set(path),
            lat: Set(body.lat),
            lng: Set(body.lng),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict { .. } => ApiError::field("code", "地区代码已存在"),
            other => other,
        })?;
        Ok(Json(row.into()))
    }

    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<RegionChange>,
    ) -> ApiResult<Json<RegionView>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let body = body.0;
        let mut row: region::ActiveModel = find_in_scope(db, &scope, id.0).await?.into();
        if let Some(name) = body.name {
            row.name = Set(name.trim().into());
        }
        if let Some(code) = body.code {
            row.code = Set(code.trim().into());
        }
        if body.lat.is_some() {
            row.lat = Set(body.lat);
            row.lng = Set(body.lng);
        }
        let row = row.update(db).await.map_err(|e| match ApiError::from(e) {
            ApiError::Conflict { .. } => ApiError::field("code", "地区代码已存在"),
            other => other,
        })?;
        Ok(Json(row.into()))
    }
}

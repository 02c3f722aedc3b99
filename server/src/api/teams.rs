//! Volunteer teams (志愿服务队), each attached to a region.

use std::sync::Arc;

use chrono::Utc;
use entity::team;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Deserialize;
use uuid::Uuid;

use super::{Page, Tag, contains, in_scope, page_of, regions, search_term};
use crate::{
    app::AppState,
    auth::Manager,
    error::{ApiError, ApiResult},
    input::{Input, Validate, text},
};

pub struct Api(pub Arc<AppState>);

#[derive(Object)]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub region_id: Uuid,
}

impl From<team::Model> for TeamView {
    fn from(t: team::Model) -> Self {
        Self {
            id: t.id,
            name: t.name,
            region_id: t.region_id,
        }
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    pub region_id: Uuid,
}

impl Validate for NewTeam {
    fn validate(&self) -> ApiResult<()> {
        text("name", &self.name, 1, 64)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamChange {
    pub name: String,
}

impl Validate for TeamChange {
    fn validate(&self) -> ApiResult<()> {
        text("name", &self.name, 1, 64)
    }
}

#[OpenApi(prefix_path = "/teams", tag = "Tag::Teams")]
impl Api {
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        q: Query<Option<String>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<TeamView>>> {
        let scope = auth.0.manager_scope()?;
        let mut select = team::Entity::find()
            .filter(in_scope(&scope, team::Column::RegionId))
            .order_by_asc(team::Column::Name);
        if let Some(q) = search_term(q.0.as_deref()) {
            select = select.filter(contains(team::Column::Name, q));
        }
        Ok(Json(
            page_of(&self.0.db, select, page.0, per_page.0, TeamView::from).await?,
        ))
    }

    #[oai(path = "/", method = "post")]
    async fn create(&self, auth: Manager, body: Input<NewTeam>) -> ApiResult<Json<TeamView>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        regions::referenced(db, &scope, "region_id", body.0.region_id).await?;
        let t = team::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(body.0.name.trim().into()),
            region_id: Set(body.0.region_id),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
        Ok(Json(t.into()))
    }

    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<TeamChange>,
    ) -> ApiResult<Json<TeamView>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let t = team::Entity::find_by_id(id.0)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("志愿服务队"))?;
        regions::find_in_scope(db, &scope, t.region_id)
            .await
            .map_err(|_| ApiError::NotFound("志愿服务队"))?;
        let mut row: team::ActiveModel = t.into();
        row.name = Set(body.0.name.trim().into());
        Ok(Json(row.update(db).await?.into()))
    }
}

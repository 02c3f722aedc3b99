//! Coordinators and cadres. A coordinator appoints coordinators below their own tier and
//! cadres within their region; the new person binds their WeChat with a one-time code.

use std::sync::Arc;

use chrono::Utc;
use entity::{Role, UserStatus, app_user, invite_code, role_grant};
use poem_openapi::{Enum, Object, OpenApi, param::Query, payload::Json};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Page, Paging, Tag, auth::grant, contains, in_scope, regions, search_term};
use crate::{
    app::AppState,
    audit,
    auth::Manager,
    crypto::{human_code, mask_phone, normalise_code, sha256_hex},
    error::{ApiError, ApiResult},
    input::{Input, Validate, phone, text},
};

pub struct Api(pub Arc<AppState>);

#[derive(Enum, Deserialize, Clone, Copy, PartialEq, Debug)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    Coordinator,
    Cadre,
}

impl From<StaffRole> for Role {
    fn from(r: StaffRole) -> Self {
        match r {
            StaffRole::Coordinator => Role::Coordinator,
            StaffRole::Cadre => Role::Cadre,
        }
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    pub name: String,
    pub phone: String,
    pub role: StaffRole,
    /// The region they answer for.
    pub region_id: Uuid,
}

impl Validate for NewStaff {
    fn validate(&self) -> ApiResult<()> {
        text("name", &self.name, 1, 32)?;
        phone("phone", &self.phone)
    }
}

#[derive(Object)]
pub struct Appointment {
    pub user_id: Uuid,
    /// Give this to the person; they enter it once in the mini-program. Valid 7 days.
    pub invite_code: String,
    pub expires_at: chrono::DateTime<Utc>,
}

#[derive(Object)]
pub struct StaffView {
    pub user_id: Uuid,
    pub name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub region_id: Option<Uuid>,
    /// Whether they have bound their WeChat yet.
    pub bound: bool,
}

#[OpenApi(prefix_path = "/staff", tag = "Tag::Staff")]
impl Api {
    /// Appoint a coordinator (strictly below my tier) or a cadre (within my region).
    #[oai(path = "/", method = "post")]
    async fn create(&self, auth: Manager, body: Input<NewStaff>) -> ApiResult<Json<Appointment>> {
        let scope = auth.0.manager_scope()?;
        let b = body.0;
        let db = &self.0.db;
        let region = regions::referenced(db, &scope, "region_id", b.region_id).await?;
        if b.role == StaffRole::Coordinator && !scope.strictly_contains(&region.path) {
            return Err(ApiError::field("region_id", "只能任命下级地区的协会工作者"));
        }
        let now = Utc::now();
        let txn = db.begin().await?;
        let user_id = Uuid::now_v7();
        app_user::ActiveModel {
            id: Set(user_id),
            name: Set(b.name.trim().into()),
            phone: Set(Some(b.phone.trim().into())),
            openid: Set(None),
            unionid: Set(None),
            status: Set(UserStatus::Pending),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        grant(
            &txn,
            user_id,
            b.role.into(),
            Some(region.id),
            auth.0.user_id,
        )
        .await?;
        let code = human_code();
        let expires_at = now + chrono::Duration::days(7);
        invite_code::ActiveModel {
            id: Set(Uuid::now_v7()),
            purpose: Set("staff".into()),
            family_id: Set(None),
            member_id: Set(None),
            user_id: Set(Some(user_id)),
            code_hash: Set(sha256_hex(&normalise_code(&code))),
            created_by: Set(auth.0.user_id),
            expires_at: Set(expires_at),
            used_at: Set(None),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "appoint_staff",
            "app_user",
            Some(user_id),
            json!({"role": Role::from(b.role).code(), "region": region.id}),
        )
        .await?;
        txn.commit().await?;
        Ok(Json(Appointment {
            user_id,
            invite_code: code,
            expires_at,
        }))
    }

    /// Coordinators and cadres in my scope.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        role: Query<Option<StaffRole>>,
        q: Query<Option<String>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<StaffView>>> {
        let scope = auth.0.manager_scope()?;
        let paging = Paging::new(page.0, per_page.0)?;
        let db = &self.0.db;
        let roles: Vec<Role> = match role.0 {
            Some(r) => vec![r.into()],
            None => vec![Role::Coordinator, Role::Cadre],
        };
        let mut select = role_grant::Entity::find()
            .filter(role_grant::Column::Role.is_in(roles))
            .filter(in_scope(&scope, role_grant::Column::RegionId))
            .order_by_asc(role_grant::Column::CreatedAt);
        if let Some(q) = search_term(q.0.as_deref()) {
            let names = sea_orm::sea_query::Query::select()
                .column(app_user::Column::Id)
                .from(app_user::Entity)
                .and_where(contains(app_user::Column::Name, q))
                .to_owned();
            select = select.filter(role_grant::Column::UserId.in_subquery(names));
        }
        let (grants, total) = paging.fetch(db, select).await?;
        let users = app_user::Entity::find()
            .filter(app_user::Column::Id.is_in(grants.iter().map(|g| g.user_id)))
            .all(db)
            .await?;
        let items = grants
            .into_iter()
            .filter_map(|g| {
                let u = users.iter().find(|u| u.id == g.user_id)?;
                Some(StaffView {
                    user_id: u.id,
                    name: u.name.clone(),
                    phone: u.phone.as_deref().map(mask_phone),
                    role: g.role,
                    region_id: g.region_id,
                    bound: u.openid.is_some(),
                })
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }
}

//! Volunteers: registration on the phone, approval by a coordinator, and their profile.

use std::{collections::HashMap, sync::Arc};

use chrono::Utc;
use entity::{
    Role, Skill, StringList, UserStatus, VolunteerStatus, app_user, region, role_grant, team,
    volunteer,
};
use poem::Request;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use scheduler::assign;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionTrait,
    sea_query::{Expr, LikeExpr},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Page, Paging, Tag, auth::grant, contains, in_scope, regions, search_term};
use crate::{
    app::AppState,
    audit,
    auth::{Ctx, Manager, TokenPair, decode_ticket, issue_tokens},
    crypto::mask_phone,
    error::{ApiError, ApiResult},
    input::{Input, Validate, location, opt_text, phone, range, text},
};

pub struct Api(pub Arc<AppState>);

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// From /api/auth/wechat, for a WeChat account not yet bound.
    pub ticket: String,
    pub name: String,
    pub phone: String,
    #[serde(default)]
    pub skills: Vec<Skill>,
    /// The village or community the volunteer lives in.
    pub region_id: Uuid,
    pub home_lat: Option<f64>,
    pub home_lng: Option<f64>,
    pub team_id: Option<Uuid>,
}

impl Validate for Registration {
    fn validate(&self) -> ApiResult<()> {
        text("ticket", &self.ticket, 1, 2048)?;
        text("name", &self.name, 1, 32)?;
        phone("phone", &self.phone)?;
        location("home", self.home_lat, self.home_lng)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolunteerChange {
    pub team_id: Option<Uuid>,
    pub skills: Option<Vec<Skill>>,
    /// Visits a week at most.
    pub weekly_capacity: Option<i32>,
    /// How far from home they will go, in km.
    pub max_distance_km: Option<f64>,
    pub home_lat: Option<f64>,
    pub home_lng: Option<f64>,
    /// Suspend (`suspended`) or reinstate (`approved`).
    pub status: Option<VolunteerStatus>,
    /// The weekdays they can visit on, 1 (Monday) to 7 (Sunday); proposals keep to them.
    pub weekdays: Option<Vec<u8>>,
}

impl Validate for VolunteerChange {
    fn validate(&self) -> ApiResult<()> {
        if let Some(days) = &self.weekdays {
            check_weekdays(days)?;
        }
        if let Some(c) = self.weekly_capacity {
            check_capacity(c)?;
        }
        if let Some(d) = self.max_distance_km {
            range("max_distance_km", d, 0.5, 200.0)?;
        }
        if matches!(
            self.status,
            Some(VolunteerStatus::Pending | VolunteerStatus::Rejected)
        ) {
            return Err(ApiError::field(
                "status",
                "只能暂停(suspended)或恢复(approved)；审核请用 approve/reject",
            ));
        }
        location("home", self.home_lat, self.home_lng)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    pub reason: Option<String>,
}

impl Validate for Rejection {
    fn validate(&self) -> ApiResult<()> {
        opt_text("reason", self.reason.as_deref(), 200)
    }
}

#[derive(Object)]
pub struct VolunteerView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Masked in lists, full for a single volunteer.
    pub phone: Option<String>,
    pub team_id: Option<Uuid>,
    pub region_id: Uuid,
    pub skills: Vec<Skill>,
    pub home_lat: Option<f64>,
    pub home_lng: Option<f64>,
    pub max_distance_km: f64,
    pub weekly_capacity: i32,
    pub status: VolunteerStatus,
    pub approved_at: Option<chrono::DateTime<Utc>>,
    /// The weekdays they visit on (1 = Monday); absent: any day.
    #[oai(skip_serializing_if_is_none)]
    pub weekdays: Option<Vec<u8>>,
}

/// The weekdays a volunteer visits on: at least one, each 1 (Monday) to 7, none twice.
pub fn check_weekdays(days: &[u8]) -> ApiResult<()> {
    if days.is_empty() {
        return Err(ApiError::field("weekdays", "请至少选择一天"));
    }
    for (i, d) in days.iter().enumerate() {
        if !(1..=7).contains(d) || days[..i].contains(d) {
            return Err(ApiError::field(
                format!("weekdays[{i}]"),
                "星期应为 1（周一）到 7（周日），不能重复",
            ));
        }
    }
    Ok(())
}

pub fn check_capacity(visits_a_week: i32) -> ApiResult<()> {
    range("weekly_capacity", visits_a_week, 0, 50)
}

/// `volunteer.availability` holding these weekdays, in order.
pub fn availability(days: &[u8]) -> serde_json::Value {
    let mut days = days.to_vec();
    days.sort_unstable();
    json!({ "weekdays": days })
}

/// The weekdays in `volunteer.availability`, as the assignment reads them; None: any day.
pub fn weekdays_of(v: &volunteer::Model) -> Option<Vec<u8>> {
    let bits = assign::weekdays_of(&v.availability);
    (bits != assign::EVERY_DAY).then(|| assign::weekday_numbers(bits))
}

fn skills_of(list: &StringList) -> Vec<Skill> {
    list.0.iter().filter_map(|s| Skill::parse(s)).collect()
}

pub fn skill_list(skills: &[Skill]) -> StringList {
    let mut codes: Vec<String> = skills.iter().map(|s| s.code().to_string()).collect();
    codes.sort();
    codes.dedup();
    StringList(codes)
}

fn view(v: volunteer::Model, user: Option<&app_user::Model>, masked: bool) -> VolunteerView {
    let phone = user.and_then(|u| u.phone.clone());
    VolunteerView {
        skills: skills_of(&v.skills),
        id: v.id,
        user_id: v.user_id,
        name: user.map(|u| u.name.clone()).unwrap_or_default(),
        phone: if masked {
            phone.as_deref().map(mask_phone)
        } else {
            phone
        },
        team_id: v.team_id,
        region_id: v.region_id,
        home_lat: v.home_lat,
        home_lng: v.home_lng,
        max_distance_km: v.max_distance_km,
        weekly_capacity: v.weekly_capacity,
        status: v.status,
        approved_at: v.approved_at,
        weekdays: weekdays_of(&v),
    }
}

impl Api {
    async fn find_in_scope(&self, ctx: &Ctx, id: Uuid) -> ApiResult<volunteer::Model> {
        let scope = ctx.manager_scope()?;
        let db = &self.0.db;
        let v = volunteer::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("志愿者"))?;
        regions::find_in_scope(db, &scope, v.region_id)
            .await
            .map_err(|_| ApiError::NotFound("志愿者"))?;
        Ok(v)
    }

    async fn full_view(&self, v: volunteer::Model) -> ApiResult<VolunteerView> {
        let user = app_user::Entity::find_by_id(v.user_id)
            .one(&self.0.db)
            .await?;
        Ok(view(v, user.as_ref(), false))
    }
}

/// A place a volunteer can say they live in, for the registration form.
#[derive(Object)]
pub struct Area {
    pub id: Uuid,
    pub name: String,
    pub level: entity::RegionLevel,
}

#[derive(Object)]
pub struct Areas {
    /// The places directly under the one asked for, in the register's order.
    pub items: Vec<Area>,
}

/// More places than this under one region is not a deployment we know of.
const MAX_AREAS: u64 = 500;

#[OpenApi(prefix_path = "/volunteers", tag = "Tag::Volunteers")]
impl Api {
    /// The places under `parent_id` (the top tier without it), for the registration form
    /// of someone not logged in yet: a county, then its townships, then their villages.
    /// Names only; the administrative divisions are public.
    #[oai(path = "/areas", method = "get")]
    async fn areas(&self, parent_id: Query<Option<Uuid>>) -> ApiResult<Json<Areas>> {
        let db = &self.0.db;
        let mut select = region::Entity::find();
        select = match parent_id.0 {
            Some(parent) => {
                region::Entity::find_by_id(parent)
                    .one(db)
                    .await?
                    .ok_or_else(|| ApiError::field("parent_id", "地区不存在"))?;
                select.filter(region::Column::ParentId.eq(parent))
            }
            None => select.filter(region::Column::ParentId.is_null()),
        };
        let items = select
            .order_by_asc(region::Column::Code)
            .order_by_asc(region::Column::Name)
            .limit(MAX_AREAS)
            .all(db)
            .await?
            .into_iter()
            .map(|r| Area {
                id: r.id,
                name: r.name,
                level: r.level,
            })
            .collect();
        Ok(Json(Areas { items }))
    }

    /// Register as a volunteer; a coordinator of the home area approves.
    #[oai(path = "/register", method = "post")]
    async fn register(
        &self,
        _req: &Request,
        body: Input<Registration>,
    ) -> ApiResult<Json<TokenPair>> {
        let state = &self.0;
        let b = body.0;
        let who = decode_ticket(&state.secrets.jwt_key, &b.ticket)?;
        let db = &state.db;
        let home = region::Entity::find_by_id(b.region_id)
            .one(db)
            .await?
            .filter(|r| r.level == entity::RegionLevel::Village)
            .ok_or_else(|| ApiError::field("region_id", "请选择所在的村/社区"))?;
        if let Some(tid) = b.team_id
            && team::Entity::find_by_id(tid).one(db).await?.is_none()
        {
            return Err(ApiError::field("team_id", "志愿服务队不存在"));
        }
        let now = Utc::now();
        let txn = db.begin().await?;
        let user_id = Uuid::now_v7();
        app_user::ActiveModel {
            id: Set(user_id),
            name: Set(b.name.trim().into()),
            phone: Set(Some(b.phone.trim().into())),
            openid: Set(Some(who.openid)),
            unionid: Set(who.unionid),
            status: Set(UserStatus::Active),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict { .. } => ApiError::conflict("already_bound", "该微信已注册"),
            other => other,
        })?;
        volunteer::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            team_id: Set(b.team_id),
            region_id: Set(home.id),
            skills: Set(skill_list(&b.skills)),
            home_lat: Set(b.home_lat.or(home.lat)),
            home_lng: Set(b.home_lng.or(home.lng)),
            max_distance_km: Set(10.0),
            weekly_capacity: Set(3),
            availability: Set(json!({})),
            status: Set(VolunteerStatus::Pending),
            approved_by: Set(None),
            approved_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let tokens = issue_tokens(state, &txn, user_id, None).await?;
        txn.commit().await?;
        Ok(Json(tokens))
    }

    /// Volunteers whose home is in my scope.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        q: Query<Option<String>>,
        status: Query<Option<VolunteerStatus>>,
        team_id: Query<Option<Uuid>>,
        skill: Query<Option<Skill>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<VolunteerView>>> {
        let scope = auth.0.manager_scope()?;
        let paging = Paging::new(page.0, per_page.0)?;
        let db = &self.0.db;
        let mut select =
            volunteer::Entity::find().filter(in_scope(&scope, volunteer::Column::RegionId));
        if let Some(s) = status.0 {
            select = select.filter(volunteer::Column::Status.eq(s));
        }
        if let Some(t) = team_id.0 {
            select = select.filter(volunteer::Column::TeamId.eq(t));
        }
        if let Some(s) = skill.0 {
            select = select.filter(
                Expr::col(volunteer::Column::Skills)
                    .cast_as("text")
                    .like(LikeExpr::new(format!("%\"{}\"%", s.code()))),
            );
        }
        if let Some(q) = search_term(q.0.as_deref()) {
            let names = sea_orm::sea_query::Query::select()
                .column(app_user::Column::Id)
                .from(app_user::Entity)
                .and_where(contains(app_user::Column::Name, q))
                .to_owned();
            select = select.filter(volunteer::Column::UserId.in_subquery(names));
        }
        let select = select
            .order_by_asc(volunteer::Column::CreatedAt)
            .order_by_asc(volunteer::Column::Id);
        let (rows, total) = paging.fetch(db, select).await?;
        let users: HashMap<Uuid, app_user::Model> = app_user::Entity::find()
            .filter(app_user::Column::Id.is_in(rows.iter().map(|v| v.user_id)))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let items = rows
            .into_iter()
            .map(|v| {
                let u = users.get(&v.user_id);
                view(v, u, true)
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    #[oai(path = "/:id", method = "get")]
    async fn get(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<VolunteerView>> {
        let v = self.find_in_scope(&auth.0, id.0).await?;
        Ok(Json(self.full_view(v).await?))
    }

    /// Approve a registration: the person becomes a volunteer.
    #[oai(path = "/:id/approve", method = "post")]
    async fn approve(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<VolunteerView>> {
        let v = self.find_in_scope(&auth.0, id.0).await?;
        if v.status != VolunteerStatus::Pending {
            return Err(ApiError::conflict("not_pending", "该志愿者不在待审核状态"));
        }
        let txn = self.0.db.begin().await?;
        grant(
            &txn,
            v.user_id,
            Role::Volunteer,
            Some(v.region_id),
            auth.0.user_id,
        )
        .await?;
        let mut row: volunteer::ActiveModel = v.into();
        row.status = Set(VolunteerStatus::Approved);
        row.approved_by = Set(Some(auth.0.user_id));
        row.approved_at = Set(Some(Utc::now()));
        row.updated_at = Set(Utc::now());
        let v = row.update(&txn).await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "approve_volunteer",
            "volunteer",
            Some(v.id),
            json!({}),
        )
        .await?;
        txn.commit().await?;
        self.0.feed_takers.remove(&v.user_id.to_string());
        Ok(Json(self.full_view(v).await?))
    }

    /// Turn a registration down.
    #[oai(path = "/:id/reject", method = "post")]
    async fn reject(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<Rejection>,
    ) -> ApiResult<Json<VolunteerView>> {
        let v = self.find_in_scope(&auth.0, id.0).await?;
        if v.status != VolunteerStatus::Pending {
            return Err(ApiError::conflict("not_pending", "该志愿者不在待审核状态"));
        }
        let db = &self.0.db;
        let mut row: volunteer::ActiveModel = v.into();
        row.status = Set(VolunteerStatus::Rejected);
        row.updated_at = Set(Utc::now());
        let v = row.update(db).await?;
        self.0.feed_takers.remove(&v.user_id.to_string());
        audit::record(
            db,
            Some(auth.0.user_id),
            "reject_volunteer",
            "volunteer",
            Some(v.id),
            json!({"reason": body.0.reason}),
        )
        .await?;
        Ok(Json(self.full_view(v).await?))
    }

    /// Change team, skills, capacity or reach; suspend or reinstate.
    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<VolunteerChange>,
    ) -> ApiResult<Json<VolunteerView>> {
        let v = self.find_in_scope(&auth.0, id.0).await?;
        let b = body.0;
        let db = &self.0.db;
        if let Some(tid) = b.team_id {
            let scope = auth.0.manager_scope()?;
            let t = team::Entity::find_by_id(tid).one(db).await?;
            let ok = match t {
                Some(t) => regions::find_in_scope(db, &scope, t.region_id)
                    .await
                    .is_ok(),
                None => false,
            };
            if !ok {
                return Err(ApiError::field(
                    "team_id",
                    "志愿服务队不存在或不在您的管辖范围内",
                ));
            }
        }
        if let Some(s) = b.status
            && v.status == VolunteerStatus::Pending
        {
            return Err(ApiError::field(
                "status",
                format!("待审核的志愿者不能直接设为 {}", s.code()),
            ));
        }
        let txn = db.begin().await?;
        // The role follows the status: a suspended volunteer can take no visits.
        match (v.status, b.status) {
            (VolunteerStatus::Approved, Some(VolunteerStatus::Suspended)) => {
                role_grant::Entity::delete_many()
                    .filter(role_grant::Column::UserId.eq(v.user_id))
                    .filter(role_grant::Column::Role.eq(Role::Volunteer))
                    .exec(&txn)
                    .await?;
            }
            (VolunteerStatus::Suspended, Some(VolunteerStatus::Approved)) => {
                grant(
                    &txn,
                    v.user_id,
                    Role::Volunteer,
                    Some(v.region_id),
                    auth.0.user_id,
                )
                .await?;
            }
            _ => {}
        }
        let mut row: volunteer::ActiveModel = v.into();
        if let Some(t) = b.team_id {
            row.team_id = Set(Some(t));
        }
        if let Some(s) = &b.skills {
            row.skills = Set(skill_list(s));
        }
        if let Some(c) = b.weekly_capacity {
            row.weekly_capacity = Set(c);
        }
        if let Some(d) = b.max_distance_km {
            row.max_distance_km = Set(d);
        }
        if b.home_lat.is_some() {
            row.home_lat = Set(b.home_lat);
            row.home_lng = Set(b.home_lng);
        }
        if let Some(s) = b.status {
            row.status = Set(s);
        }
        if let Some(days) = &b.weekdays {
            row.availability = Set(availability(days));
        }
        row.updated_at = Set(Utc::now());
        let v = row.update(&txn).await?;
        let withdrawn = match &b.weekdays {
            Some(days) => {
                let days = assign::weekday_bits(days.iter().copied());
                let tz = self.0.tz;
                crate::assignments::withdraw_off_days(&txn, tz, v.user_id, days, Utc::now()).await?
            }
            None => Vec::new(),
        };
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "update_volunteer",
            "volunteer",
            Some(v.id),
            json!({}),
        )
        .await?;
        txn.commit().await?;
        self.0.feed_takers.remove(&v.user_id.to_string());
        super::assignments::repropose(&self.0, &withdrawn).await;
        Ok(Json(self.full_view(v).await?))
    }
}

//! The wish wall (心愿墙 / 回音壁): a family member posts a wish or a need; it passes the
//! content check ([`crate::content_check`]); a coordinator answers, on the wall or to the
//! family alone, asks someone to see it through, and closes it when it is done. Time to
//! first answer is kept per wish and shown as a median for a region and period. The wall
//! itself shows the wishes a family agreed to show, anonymised: kind, words, village.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, NaiveDate, Utc};
use entity::{Role, app_user, family, role_grant, volunteer, wish, wish_answer};
use poem_openapi::{
    Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, Set,
    sea_query::{Expr, Query as SqlQuery},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    Page, Paging, Tag,
    community::{begin, finish, my_families, my_family, region_names},
    families, in_scope, regions,
};
use crate::{
    app::AppState,
    audit,
    auth::{Auth, Ctx, Manager, Scope},
    content_check::{ContentCheck, LocalCheck},
    error::{ApiError, ApiResult},
    input::{Input, Validate, opt_text, text},
    notify::{produce, remind},
};

pub struct Api(pub Arc<AppState>);

#[derive(Enum, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum WishKind {
    /// 生活帮扶
    DailyLife,
    /// 医疗健康
    Health,
    /// 精神慰藉
    Emotional,
    /// 法律咨询
    Legal,
    /// 其他
    #[default]
    Other,
}

impl WishKind {
    fn code(self) -> &'static str {
        match self {
            Self::DailyLife => "daily_life",
            Self::Health => "health",
            Self::Emotional => "emotional",
            Self::Legal => "legal",
            Self::Other => "other",
        }
    }

    fn label(code: &str) -> &'static str {
        match code {
            "daily_life" => "生活帮扶",
            "health" => "医疗健康",
            "emotional" => "精神慰藉",
            "legal" => "法律咨询",
            _ => "其他",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [
            Self::DailyLife,
            Self::Health,
            Self::Emotional,
            Self::Legal,
            Self::Other,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

// ---------------------------------------------------------------------------------------
// Pure logic

/// The median of some durations in minutes; none for none.
pub fn median(values: &mut [i64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0
    })
}

/// The county a region path lies in ("/city/county/…" → "/city/county/"): the wall a
/// person sees is their county's.
pub fn county_prefix(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() < 2 {
        return path.to_string();
    }
    format!("/{}/{}/", parts[0], parts[1])
}

fn minutes_between(from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> Option<i64> {
    to.map(|t| (t - from).num_minutes().max(0))
}

// ---------------------------------------------------------------------------------------
// Requests and answers

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWish {
    /// What the family wishes for or needs.
    pub content: String,
    pub kind: Option<WishKind>,
    /// Show it on the wall, without names (default: only the association sees it).
    #[serde(default)]
    pub public: bool,
    /// Only for someone in several families.
    pub family_id: Option<Uuid>,
}

impl Validate for NewWish {
    fn validate(&self) -> ApiResult<()> {
        // The configured limit is the content check's; this only bounds the request.
        text("content", &self.content, 1, 5000)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAnswer {
    pub content: String,
    /// On the wall (anonymised, checked like a wish) or to the family alone.
    #[serde(default)]
    pub public: bool,
}

impl Validate for NewAnswer {
    fn validate(&self) -> ApiResult<()> {
        text("content", &self.content, 1, 1000)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// A volunteer, cadre or coordinator in my scope.
    pub user_id: Uuid,
}

impl Validate for Assignment {}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fulfilled {
    /// What was done.
    pub note: Option<String>,
}

impl Validate for Fulfilled {
    fn validate(&self) -> ApiResult<()> {
        opt_text("note", self.note.as_deref(), 500)
    }
}

#[derive(Object)]
pub struct AnswerView {
    pub id: Uuid,
    pub content: String,
    pub public: bool,
    pub created_at: DateTime<Utc>,
}

impl From<wish_answer::Model> for AnswerView {
    fn from(a: wish_answer::Model) -> Self {
        Self {
            id: a.id,
            content: a.content,
            public: a.public,
            created_at: a.created_at,
        }
    }
}

/// A wish as its family sees it.
#[derive(Object)]
pub struct MyWish {
    pub id: Uuid,
    pub kind: String,
    pub kind_label: String,
    pub content: String,
    pub public: bool,
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Minutes until the first answer.
    pub first_answer_minutes: Option<i64>,
    /// Every answer, public or private.
    pub answers: Vec<AnswerView>,
    /// Numbers were taken out of the words before they were kept.
    pub redacted: bool,
}

/// A wish on the wall: no name, no family, the village at most.
#[derive(Object)]
pub struct WallWish {
    pub id: Uuid,
    pub kind: String,
    pub kind_label: String,
    pub content: String,
    pub village: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub first_answer_minutes: Option<i64>,
    /// The public answers.
    pub answers: Vec<WallAnswer>,
}

#[derive(Object)]
pub struct WallAnswer {
    pub content: String,
    pub created_at: DateTime<Utc>,
}

/// A wish as coordinators work on it.
#[derive(Object)]
pub struct WishView {
    pub id: Uuid,
    pub family_id: Uuid,
    pub village: String,
    pub kind: String,
    pub kind_label: String,
    pub content: String,
    pub public: bool,
    pub status: String,
    pub assignee_id: Option<Uuid>,
    /// The assignee as a surname ("王*").
    pub assignee: Option<String>,
    pub created_at: DateTime<Utc>,
    pub first_answered_at: Option<DateTime<Utc>>,
    pub first_answer_minutes: Option<i64>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub done_note: Option<String>,
    pub answers: Vec<AnswerView>,
}

/// Wishes of a region over a period, and how fast they were answered.
#[derive(Object)]
pub struct WishStats {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub received: u64,
    /// With at least one answer (public or private).
    pub answered: u64,
    pub done: u64,
    pub unanswered: u64,
    /// Median minutes from posting to the first answer, over the answered ones.
    pub median_first_answer_minutes: Option<f64>,
}

// ---------------------------------------------------------------------------------------
// Queries

async fn answers_of(
    db: &impl ConnectionTrait,
    wishes: &[Uuid],
    public_only: bool,
) -> ApiResult<HashMap<Uuid, Vec<wish_answer::Model>>> {
    let mut q = wish_answer::Entity::find()
        .filter(wish_answer::Column::WishId.is_in(wishes.iter().copied()))
        .order_by_asc(wish_answer::Column::CreatedAt);
    if public_only {
        q = q.filter(wish_answer::Column::Public.eq(true));
    }
    let mut out: HashMap<Uuid, Vec<wish_answer::Model>> = HashMap::new();
    for a in q.all(db).await? {
        out.entry(a.wish_id).or_default().push(a);
    }
    Ok(out)
}

/// Wishes of families whose region is in `scope`.
fn wishes_in(scope: &Scope) -> Select<wish::Entity> {
    wish::Entity::find().filter(
        wish::Column::FamilyId.in_subquery(
            SqlQuery::select()
                .column(family::Column::Id)
                .from(family::Entity)
                .cond_where(in_scope(scope, family::Column::RegionId))
                .to_owned(),
        ),
    )
}

/// The villages of some wishes' families.
async fn villages(
    db: &impl ConnectionTrait,
    wishes: &[wish::Model],
) -> ApiResult<HashMap<Uuid, String>> {
    let regions: Vec<(Uuid, Uuid)> = family::Entity::find()
        .select_only()
        .columns([family::Column::Id, family::Column::RegionId])
        .filter(family::Column::Id.is_in(wishes.iter().map(|w| w.family_id)))
        .into_tuple()
        .all(db)
        .await?;
    let names = region_names(db, regions.iter().map(|r| r.1)).await?;
    Ok(regions
        .into_iter()
        .filter_map(|(f, r)| Some((f, names.get(&r)?.clone())))
        .collect())
}

async fn wish_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> ApiResult<wish::Model> {
    let w = wish::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("心愿"))?;
    families::find_in_scope(db, scope, w.family_id)
        .await
        .map_err(|_| ApiError::NotFound("心愿"))?;
    Ok(w)
}

async fn views(
    db: &impl ConnectionTrait,
    rows: Vec<wish::Model>,
    with_answers: bool,
) -> ApiResult<Vec<WishView>> {
    let ids: Vec<Uuid> = rows.iter().map(|w| w.id).collect();
    let mut answers = if with_answers {
        answers_of(db, &ids, false).await?
    } else {
        HashMap::new()
    };
    let villages = villages(db, &rows).await?;
    let names: HashMap<Uuid, String> = app_user::Entity::find()
        .select_only()
        .columns([app_user::Column::Id, app_user::Column::Name])
        .filter(app_user::Column::Id.is_in(rows.iter().filter_map(|w| w.assignee_id)))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|w| WishView {
            village: villages.get(&w.family_id).cloned().unwrap_or_default(),
            kind_label: WishKind::label(&w.kind).into(),
            assignee: w
                .assignee_id
                .and_then(|u| names.get(&u))
                .map(|n| remind::surname(n)),
            first_answer_minutes: minutes_between(w.created_at, w.first_answered_at),
            answers: answers
                .remove(&w.id)
                .unwrap_or_default()
                .into_iter()
                .map(AnswerView::from)
                .collect(),
            id: w.id,
            family_id: w.family_id,
            kind: w.kind,
            content: w.content,
            public: w.public,
            status: w.status,
            assignee_id: w.assignee_id,
            created_at: w.created_at,
            first_answered_at: w.first_answered_at,
            resolved_at: w.resolved_at,
            done_note: w.done_note,
        })
        .collect())
}

/// The region path the caller's wall is drawn from: their family's village, their
/// volunteer profile's region, or their staff grant's. None: an administrator (all).
async fn home_path(db: &impl ConnectionTrait, ctx: &Ctx) -> ApiResult<Option<String>> {
    if ctx.has(Role::Admin) {
        return Ok(None);
    }
    let mut region: Option<Uuid> = None;
    if let Some(f) = my_families(db, ctx).await?.first() {
        region = family::Entity::find_by_id(*f)
            .select_only()
            .column(family::Column::RegionId)
            .into_tuple()
            .one(db)
            .await?;
    }
    if region.is_none() {
        region = volunteer::Entity::find()
            .select_only()
            .column(volunteer::Column::RegionId)
            .filter(volunteer::Column::UserId.eq(ctx.user_id))
            .into_tuple()
            .one(db)
            .await?;
    }
    if region.is_none() {
        region = ctx.grants.iter().find_map(|g| g.region_id);
    }
    let Some(region) = region else {
        return Err(ApiError::Forbidden(
            "心愿墙仅对本地家庭、志愿者和工作人员开放".into(),
        ));
    };
    Ok(entity::region::Entity::find_by_id(region)
        .select_only()
        .column(entity::region::Column::Path)
        .into_tuple()
        .one(db)
        .await?)
}

// ---------------------------------------------------------------------------------------
// Endpoints

#[OpenApi(tag = "Tag::Wishes")]
impl Api {
    /// Post a wish or a need. Phone and ID numbers are taken out; words the association
    /// does not allow are refused.
    #[oai(path = "/family/wishes", method = "post")]
    async fn post(&self, auth: Auth, body: Input<NewWish>) -> ApiResult<Json<MyWish>> {
        let state = &self.0;
        let b = body.0;
        let checked = LocalCheck {
            config: &state.config.wishes,
        }
        .check(&b.content)
        .map_err(|r| ApiError::field("content", r.0))?;
        let txn = begin(&state.db).await?;
        let out = async {
            let f = my_family(&txn, &auth.0, b.family_id).await?;
            let w = wish::ActiveModel {
                id: Set(Uuid::now_v7()),
                family_id: Set(f.id),
                posted_by: Set(Some(auth.0.user_id)),
                content: Set(checked.text.clone()),
                status: Set(wish::OPEN.into()),
                resolved_at: Set(None),
                created_at: Set(Utc::now()),
                kind: Set(b.kind.unwrap_or_default().code().into()),
                public: Set(b.public),
                assignee_id: Set(None),
                assigned_at: Set(None),
                first_answered_at: Set(None),
                done_note: Set(None),
            }
            .insert(&txn)
            .await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "post_wish",
                "wish",
                Some(w.id),
                json!({"family": f.id, "redacted": checked.redacted}),
            )
            .await?;
            Ok(w)
        }
        .await;
        let w = finish(txn, out).await?;
        Ok(Json(MyWish {
            kind_label: WishKind::label(&w.kind).into(),
            id: w.id,
            kind: w.kind,
            content: w.content,
            public: w.public,
            status: w.status,
            created_at: w.created_at,
            first_answer_minutes: None,
            answers: Vec::new(),
            redacted: checked.redacted,
        }))
    }

    /// My family's wishes with every answer, newest first.
    #[oai(path = "/family/wishes", method = "get")]
    async fn mine(
        &self,
        auth: Auth,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<MyWish>>> {
        let db = &self.0.db;
        let families = my_families(db, &auth.0).await?;
        if families.is_empty() {
            return Err(ApiError::Forbidden("仅家庭成员可以使用".into()));
        }
        let paging = Paging::new(page.0, per_page.0)?;
        let select = wish::Entity::find()
            .filter(wish::Column::FamilyId.is_in(families))
            .order_by_desc(wish::Column::CreatedAt)
            .order_by_desc(wish::Column::Id);
        let (rows, total) = paging.fetch(db, select).await?;
        let ids: Vec<Uuid> = rows.iter().map(|w| w.id).collect();
        let mut answers = answers_of(db, &ids, false).await?;
        let items = rows
            .into_iter()
            .map(|w| MyWish {
                kind_label: WishKind::label(&w.kind).into(),
                first_answer_minutes: minutes_between(w.created_at, w.first_answered_at),
                answers: answers
                    .remove(&w.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(AnswerView::from)
                    .collect(),
                redacted: w.content.contains(crate::content_check::REDACTED),
                id: w.id,
                kind: w.kind,
                content: w.content,
                public: w.public,
                status: w.status,
                created_at: w.created_at,
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// The wall of my county: wishes families agreed to show, with the public answers,
    /// newest first. No names, no families: the kind, the words and the village.
    #[oai(path = "/wishes/wall", method = "get")]
    async fn wall(
        &self,
        auth: Auth,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<WallWish>>> {
        let db = &self.0.db;
        let paging = Paging::new(page.0, per_page.0)?;
        let scope = match home_path(db, &auth.0).await? {
            None => Scope::All,
            Some(path) => Scope::Subtrees(vec![county_prefix(&path)]),
        };
        let select = wishes_in(&scope)
            .filter(wish::Column::Public.eq(true))
            .order_by_desc(wish::Column::CreatedAt)
            .order_by_desc(wish::Column::Id);
        let (rows, total) = paging.fetch(db, select).await?;
        let ids: Vec<Uuid> = rows.iter().map(|w| w.id).collect();
        let mut answers = answers_of(db, &ids, true).await?;
        let villages = villages(db, &rows).await?;
        let items = rows
            .into_iter()
            .map(|w| WallWish {
                kind_label: WishKind::label(&w.kind).into(),
                village: villages.get(&w.family_id).cloned().unwrap_or_default(),
                first_answer_minutes: minutes_between(w.created_at, w.first_answered_at),
                answers: answers
                    .remove(&w.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| WallAnswer {
                        content: a.content,
                        created_at: a.created_at,
                    })
                    .collect(),
                id: w.id,
                kind: w.kind,
                content: w.content,
                status: w.status,
                created_at: w.created_at,
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// Wishes of families in my scope, oldest unanswered first by default; filters by
    /// status, kind and region.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/wishes", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        status: Query<Option<String>>,
        kind: Query<Option<String>>,
        region_id: Query<Option<Uuid>>,
        unanswered: Query<Option<bool>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<WishView>>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let scope = match region_id.0 {
            Some(rid) => Scope::Subtrees(vec![regions::find_in_scope(db, &scope, rid).await?.path]),
            None => scope,
        };
        let mut select = wishes_in(&scope);
        if let Some(s) = status.0.as_deref() {
            if ![wish::OPEN, wish::IN_PROGRESS, wish::DONE].contains(&s) {
                return Err(ApiError::field(
                    "status",
                    "status 应为 open、in_progress 或 done",
                ));
            }
            select = select.filter(wish::Column::Status.eq(s));
        }
        if let Some(k) = kind.0.as_deref() {
            let k = WishKind::parse(k).ok_or_else(|| {
                ApiError::field(
                    "kind",
                    "kind 应为 daily_life、health、emotional、legal 或 other",
                )
            })?;
            select = select.filter(wish::Column::Kind.eq(k.code()));
        }
        if unanswered.0 == Some(true) {
            select = select.filter(wish::Column::FirstAnsweredAt.is_null());
        }
        let paging = Paging::new(page.0, per_page.0)?;
        let (rows, total) = paging
            .fetch(
                db,
                select
                    .order_by_asc(wish::Column::CreatedAt)
                    .order_by_asc(wish::Column::Id),
            )
            .await?;
        Ok(Json(paging.wrap(views(db, rows, false).await?, total)))
    }

    /// One wish with every answer.
    #[oai(path = "/wishes/:id", method = "get")]
    async fn get(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<WishView>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let w = wish_in_scope(db, &scope, id.0).await?;
        Ok(Json(views(db, vec![w], true).await?.remove(0)))
    }

    /// Answer a wish: on the wall (anonymised, checked like a wish) or to the family alone.
    /// The family is told either way.
    #[oai(path = "/wishes/:id/answers", method = "post")]
    async fn answer(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<NewAnswer>,
    ) -> ApiResult<Json<WishView>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let b = body.0;
        let content = if b.public {
            LocalCheck {
                config: &state.config.wishes,
            }
            .check(&b.content)
            .map_err(|r| ApiError::field("content", r.0))?
            .text
        } else {
            b.content.trim().to_string()
        };
        let txn = begin(&state.db).await?;
        let out = async {
            let w = wish_in_scope(&txn, &scope, id.0).await?;
            let now = Utc::now();
            let a = wish_answer::ActiveModel {
                id: Set(Uuid::now_v7()),
                wish_id: Set(w.id),
                author_id: Set(auth.0.user_id),
                content: Set(content),
                created_at: Set(now),
                public: Set(b.public),
            }
            .insert(&txn)
            .await?;
            wish::Entity::update_many()
                .col_expr(wish::Column::FirstAnsweredAt, Expr::value(now))
                .filter(wish::Column::Id.eq(w.id))
                .filter(wish::Column::FirstAnsweredAt.is_null())
                .exec(&txn)
                .await?;
            produce::wish_answered(&txn, state.tz, &w, &a).await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "answer_wish",
                "wish",
                Some(w.id),
                json!({"answer": a.id, "public": b.public}),
            )
            .await?;
            let w = wish_in_scope(&txn, &scope, w.id).await?;
            Ok(views(&txn, vec![w], true).await?.remove(0))
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Ask a volunteer, cadre or coordinator of my scope to see a wish through.
    #[oai(path = "/wishes/:id/assign", method = "post")]
    async fn assign(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<Assignment>,
    ) -> ApiResult<Json<WishView>> {
        let scope = auth.0.manager_scope()?;
        let txn = begin(&self.0.db).await?;
        let out = async {
            let w = wish_in_scope(&txn, &scope, id.0).await?;
            if w.status == wish::DONE {
                return Err(ApiError::state("wish_done", w.status, "该心愿已完成"));
            }
            let staff = role_grant::Entity::find()
                .filter(role_grant::Column::UserId.eq(body.0.user_id))
                .filter(role_grant::Column::Role.is_in([
                    Role::Volunteer,
                    Role::Cadre,
                    Role::Coordinator,
                ]))
                .filter(in_scope(&scope, role_grant::Column::RegionId))
                .one(&txn)
                .await?;
            if staff.is_none() {
                return Err(ApiError::field(
                    "user_id",
                    "只能指派您辖区内的志愿者、责任干部或协会工作者",
                ));
            }
            let now = Utc::now();
            wish::Entity::update_many()
                .col_expr(wish::Column::AssigneeId, Expr::value(body.0.user_id))
                .col_expr(wish::Column::AssignedAt, Expr::value(now))
                .col_expr(wish::Column::Status, Expr::value(wish::IN_PROGRESS))
                .filter(wish::Column::Id.eq(w.id))
                .exec(&txn)
                .await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "assign_wish",
                "wish",
                Some(w.id),
                json!({"assignee": body.0.user_id}),
            )
            .await?;
            // The assignee hears (not when assigning it to oneself, nor when it was theirs
            // already).
            if body.0.user_id != auth.0.user_id && w.assignee_id != Some(body.0.user_id) {
                let to = body.0.user_id;
                let template = crate::notify::templates::WISH_ASSIGNED;
                let date = now.with_timezone(&self.0.tz).date_naive().to_string();
                let msg = crate::notify::produce::Msg {
                    to,
                    template,
                    payload: json!({"wish_id": w.id, "date": date}),
                    key: crate::notify::remind::key(template, w.id, to, now.timestamp_millis()),
                    at: now,
                };
                crate::notify::produce::queue(&txn, vec![msg], now).await?;
            }
            let w = wish_in_scope(&txn, &scope, w.id).await?;
            Ok(views(&txn, vec![w], true).await?.remove(0))
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// The wish is fulfilled.
    #[oai(path = "/wishes/:id/done", method = "post")]
    async fn done(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<Fulfilled>,
    ) -> ApiResult<Json<WishView>> {
        let scope = auth.0.manager_scope()?;
        let txn = begin(&self.0.db).await?;
        let out = async {
            let w = wish_in_scope(&txn, &scope, id.0).await?;
            let closed = wish::Entity::update_many()
                .col_expr(wish::Column::Status, Expr::value(wish::DONE))
                .col_expr(wish::Column::ResolvedAt, Expr::value(Utc::now()))
                .col_expr(
                    wish::Column::DoneNote,
                    Expr::value(body.0.note.as_deref().map(str::trim)),
                )
                .filter(wish::Column::Id.eq(w.id))
                .filter(wish::Column::Status.ne(wish::DONE))
                .exec(&txn)
                .await?;
            if closed.rows_affected != 1 {
                return Err(ApiError::state("wish_done", wish::DONE, "该心愿已完成"));
            }
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "close_wish",
                "wish",
                Some(w.id),
                json!({}),
            )
            .await?;
            let w = wish_in_scope(&txn, &scope, w.id).await?;
            Ok(views(&txn, vec![w], true).await?.remove(0))
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Wishes received in a period (local days `from`..=`to`, default the last 30) in my
    /// scope or a region of it: answered, done, and the median time to first answer.
    #[oai(path = "/wishes/stats", method = "get")]
    async fn stats(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
    ) -> ApiResult<Json<WishStats>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let db = &state.db;
        let today = state.today();
        let to = to.0.unwrap_or(today);
        let from = from.0.unwrap_or(to - chrono::Duration::days(29));
        if from > to {
            return Err(ApiError::field("from", "from 不能晚于 to"));
        }
        let scope = match region_id.0 {
            Some(rid) => Scope::Subtrees(vec![regions::find_in_scope(db, &scope, rid).await?.path]),
            None => scope,
        };
        let start = crate::eligibility::local_midnight(state.tz, from);
        let end = crate::eligibility::local_midnight(state.tz, to.succ_opt().unwrap_or(to));
        let rows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>, String)> = wishes_in(&scope)
            .select_only()
            .columns([
                wish::Column::CreatedAt,
                wish::Column::FirstAnsweredAt,
                wish::Column::Status,
            ])
            .filter(wish::Column::CreatedAt.gte(start))
            .filter(wish::Column::CreatedAt.lt(end))
            .into_tuple()
            .all(db)
            .await?;
        let mut minutes: Vec<i64> = rows
            .iter()
            .filter_map(|(c, a, _)| minutes_between(*c, *a))
            .collect();
        let answered = minutes.len() as u64;
        Ok(Json(WishStats {
            from,
            to,
            received: rows.len() as u64,
            answered,
            done: rows.iter().filter(|r| r.2 == wish::DONE).count() as u64,
            unanswered: rows.len() as u64 - answered,
            median_first_answer_minutes: median(&mut minutes),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [30]), Some(30.0));
        assert_eq!(median(&mut [90, 10, 30]), Some(30.0));
        assert_eq!(median(&mut [10, 60, 20, 600]), Some(40.0));
    }

    #[test]
    fn the_wall_is_the_county_of_where_one_lives() {
        assert_eq!(county_prefix("/c/k/t/v/"), "/c/k/");
        assert_eq!(county_prefix("/c/k/"), "/c/k/");
        assert_eq!(county_prefix("/c/"), "/c/");
    }
}

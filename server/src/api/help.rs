//! Emergency help (紧急求助): a family member presses help, with an optional kind and
//! message; the family's cadre, the nearest coordinators and the volunteer on duty are
//! alerted at once on every channel (see [`crate::notify::emergency`]); one of them
//! acknowledges, and someone closes it with what was done. Unacknowledged, it escalates.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use entity::{app_user, family, help_request, notification};
use poem_openapi::{
    Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, sea_query::Expr,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    Page, Paging, Tag,
    community::{begin, family_in_scope, finish, my_families, my_family, region_names},
    in_scope,
};
use crate::{
    app::AppState,
    audit,
    auth::{Auth, Ctx, Manager},
    error::{ApiError, ApiResult},
    input::{Input, Validate, opt_text, text},
    notify::{emergency, produce, remind},
};

pub struct Api(pub Arc<AppState>);

/// What the help is about, if the member says.
#[derive(Enum, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum HelpKind {
    /// 求助（未说明）
    #[default]
    General,
    /// 摔倒
    Fall,
    /// 身体不适
    Illness,
    /// 安全（火、水、电、陌生人）
    Safety,
    /// 心里难受
    Emotional,
    Other,
}

impl HelpKind {
    fn code(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Fall => "fall",
            Self::Illness => "illness",
            Self::Safety => "safety",
            Self::Emotional => "emotional",
            Self::Other => "other",
        }
    }

    fn label(code: &str) -> &'static str {
        match code {
            "fall" => "摔倒",
            "illness" => "身体不适",
            "safety" => "安全",
            "emotional" => "心里难受",
            "other" => "其他",
            _ => "求助",
        }
    }
}

/// One tap: everything is optional.
#[derive(Object, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HelpPress {
    pub kind: Option<HelpKind>,
    /// A few words, if the member can (at most 200 characters).
    pub message: Option<String>,
    /// Only for someone in several families.
    pub family_id: Option<Uuid>,
}

impl Validate for HelpPress {
    fn validate(&self) -> ApiResult<()> {
        opt_text("message", self.message.as_deref(), 200)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// What was done (至多 500 字).
    pub resolution: String,
}

impl Validate for Resolution {
    fn validate(&self) -> ApiResult<()> {
        text("resolution", &self.resolution, 1, 500)
    }
}

/// The family's view of its request.
#[derive(Object)]
pub struct HelpPressed {
    pub id: Uuid,
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// People alerted right now.
    pub alerted: u32,
    /// The same unanswered request as a moment ago: nobody is alerted twice.
    pub repeated: bool,
    /// What the app shows.
    pub message: String,
}

/// A request as its family sees it.
#[derive(Object)]
pub struct FamilyHelp {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who responded, as a surname ("王*").
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A row of the coordinators' list.
#[derive(Object)]
pub struct HelpSummary {
    pub id: Uuid,
    pub family_id: Uuid,
    pub village: String,
    pub kind: String,
    pub kind_label: String,
    pub status: String,
    pub escalation_level: i32,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Minutes from the press to the first acknowledgement.
    pub minutes_to_acknowledge: Option<i64>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// What a responder needs to act: who, where, how to call. Every read is audited.
#[derive(Object)]
pub struct HelpDetail {
    pub id: Uuid,
    pub family_id: Uuid,
    pub kind: String,
    pub kind_label: String,
    pub message: String,
    pub status: String,
    pub escalation_level: i32,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub village: String,
    pub head_name: String,
    pub address: String,
    pub phone: Option<String>,
    /// The member who pressed, and their number.
    pub requester_name: Option<String>,
    pub requester_phone: Option<String>,
}

fn summary(h: help_request::Model, village: String) -> HelpSummary {
    HelpSummary {
        kind_label: HelpKind::label(&h.kind).into(),
        minutes_to_acknowledge: h.acknowledged_at.map(|a| (a - h.created_at).num_minutes()),
        id: h.id,
        family_id: h.family_id,
        village,
        kind: h.kind,
        status: h.status,
        escalation_level: h.escalation_level,
        created_at: h.created_at,
        acknowledged_at: h.acknowledged_at,
        resolved_at: h.resolved_at,
    }
}

/// Whether `ctx` was alerted to this request (at any level).
async fn was_alerted(db: &impl ConnectionTrait, ctx: &Ctx, id: Uuid) -> ApiResult<bool> {
    let prefix = remind::key_prefix(remind::HELP_EMERGENCY, id, ctx.user_id);
    Ok(notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(ctx.user_id))
        .filter(notification::Column::DedupeKey.starts_with(prefix.as_str()))
        .count(db)
        .await?
        > 0)
}

/// The request, if `ctx` may act on it: a coordinator over the family, or someone alerted.
async fn responder_view(
    db: &impl ConnectionTrait,
    ctx: &Ctx,
    id: Uuid,
) -> ApiResult<(help_request::Model, family::Model)> {
    let h = help_request::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("求助"))?;
    let f = family::Entity::find_by_id(h.family_id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("求助"))?;
    let coordinator = match ctx.manager_scope() {
        Ok(scope) => family_in_scope(db, &scope, &f).await?,
        Err(_) => false,
    };
    if !coordinator && !was_alerted(db, ctx, id).await? {
        return Err(ApiError::NotFound("求助"));
    }
    Ok((h, f))
}

impl Api {
    async fn detail(
        &self,
        db: &impl ConnectionTrait,
        ctx: &Ctx,
        h: help_request::Model,
        f: family::Model,
    ) -> ApiResult<HelpDetail> {
        let village = region_names(db, [f.region_id])
            .await?
            .remove(&f.region_id)
            .unwrap_or_default();
        let requester = match h.requester_id {
            Some(id) => app_user::Entity::find_by_id(id).one(db).await?,
            None => None,
        };
        audit::record(
            db,
            Some(ctx.user_id),
            "read_help",
            "help_request",
            Some(h.id),
            json!({"family": f.id}),
        )
        .await?;
        Ok(HelpDetail {
            kind_label: HelpKind::label(&h.kind).into(),
            id: h.id,
            family_id: h.family_id,
            kind: h.kind,
            message: h.message,
            status: h.status,
            escalation_level: h.escalation_level,
            created_at: h.created_at,
            acknowledged_at: h.acknowledged_at,
            acknowledged_by: h.acknowledged_by,
            resolved_at: h.resolved_at,
            resolution: h.resolution,
            village,
            head_name: f.head_name,
            address: f.address,
            phone: f.phone,
            requester_name: requester.as_ref().map(|u| u.name.clone()),
            requester_phone: requester.and_then(|u| u.phone),
        })
    }
}

#[OpenApi(tag = "Tag::Help")]
impl Api {
    /// Press help. The family's cadre, the nearest coordinators and the volunteer on duty
    /// are alerted at once by WeChat, SMS and the inbox, at any hour. Pressing again while
    /// a recent request is unanswered returns that request.
    #[oai(path = "/family/help", method = "post")]
    async fn press(&self, auth: Auth, body: Input<HelpPress>) -> ApiResult<Json<HelpPressed>> {
        let state = &self.0;
        let b = body.0;
        let now = Utc::now();
        let claim = Duration::seconds(state.config.notify.claim_secs.max(1));
        let txn = begin(&state.db).await?;
        let out = async {
            let f = my_family(&txn, &auth.0, b.family_id).await?;
            let recent = help_request::Entity::find()
                .filter(help_request::Column::FamilyId.eq(f.id))
                .filter(help_request::Column::Status.eq(help_request::OPEN))
                .filter(
                    help_request::Column::CreatedAt
                        .gt(now - Duration::minutes(state.config.help.repeat_minutes)),
                )
                .order_by_desc(help_request::Column::CreatedAt)
                .one(&txn)
                .await?;
            if let Some(h) = recent {
                return Ok((h, Vec::new(), true));
            }
            let h = help_request::ActiveModel {
                id: Set(Uuid::now_v7()),
                family_id: Set(f.id),
                requester_id: Set(Some(auth.0.user_id)),
                kind: Set(b.kind.unwrap_or_default().code().into()),
                message: Set(b.message.as_deref().map(str::trim).unwrap_or("").into()),
                status: Set(help_request::OPEN.into()),
                acknowledged_at: Set(None),
                acknowledged_by: Set(None),
                resolved_at: Set(None),
                created_at: Set(now),
                escalation_level: Set(0),
                escalated_at: Set(None),
                resolved_by: Set(None),
                resolution: Set(None),
            }
            .insert(&txn)
            .await?;
            let alerts = produce::help_requested(&txn, state.tz, &h, claim).await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "request_help",
                "help_request",
                Some(h.id),
                json!({"family": f.id, "alerted": alerts.len()}),
            )
            .await?;
            Ok((h, alerts, false))
        }
        .await;
        let (h, alerts, repeated) = finish(txn, out).await?;
        if !repeated {
            // Sent by the request itself; followed for escalation from here.
            let sending = state.clone();
            let ids = alerts.clone();
            tokio::spawn(async move {
                if let Err(e) = emergency::send(&sending, &ids).await {
                    tracing::error!(error = %e, "sending help alerts failed; the sweep retries");
                }
            });
            emergency::follow(state.clone(), h.id);
        }
        Ok(Json(HelpPressed {
            id: h.id,
            status: h.status,
            created_at: h.created_at,
            alerted: alerts.len() as u32,
            repeated,
            message: "求助已发出，工作人员会尽快与您联系。情况危急请直接拨打120或110。".into(),
        }))
    }

    /// My family's requests, newest first.
    #[oai(path = "/family/help", method = "get")]
    async fn family_list(
        &self,
        auth: Auth,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<FamilyHelp>>> {
        let db = &self.0.db;
        let families = my_families(db, &auth.0).await?;
        if families.is_empty() {
            return Err(ApiError::Forbidden("仅家庭成员可以使用".into()));
        }
        let paging = Paging::new(page.0, per_page.0)?;
        let select = help_request::Entity::find()
            .filter(help_request::Column::FamilyId.is_in(families))
            .order_by_desc(help_request::Column::CreatedAt);
        let (rows, total) = paging.fetch(db, select).await?;
        let names: std::collections::HashMap<Uuid, String> = app_user::Entity::find()
            .select_only()
            .columns([app_user::Column::Id, app_user::Column::Name])
            .filter(app_user::Column::Id.is_in(rows.iter().filter_map(|h| h.acknowledged_by)))
            .into_tuple::<(Uuid, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let items = rows
            .into_iter()
            .map(|h| FamilyHelp {
                acknowledged_by: h
                    .acknowledged_by
                    .and_then(|u| names.get(&u))
                    .map(|n| remind::surname(n)),
                id: h.id,
                kind: h.kind,
                status: h.status,
                created_at: h.created_at,
                acknowledged_at: h.acknowledged_at,
                resolved_at: h.resolved_at,
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// Help requests of families in my scope, newest first; `status` filters.
    #[oai(path = "/help", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        status: Query<Option<String>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<HelpSummary>>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let mut select = help_request::Entity::find().filter(
            help_request::Column::FamilyId.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(family::Column::Id)
                    .from(family::Entity)
                    .cond_where(in_scope(&scope, family::Column::RegionId))
                    .to_owned(),
            ),
        );
        if let Some(s) = status.0.as_deref() {
            if ![
                help_request::OPEN,
                help_request::ACKNOWLEDGED,
                help_request::RESOLVED,
            ]
            .contains(&s)
            {
                return Err(ApiError::field(
                    "status",
                    "status 应为 open、acknowledged 或 resolved",
                ));
            }
            select = select.filter(help_request::Column::Status.eq(s));
        }
        let paging = Paging::new(page.0, per_page.0)?;
        let (rows, total) = paging
            .fetch(
                db,
                select
                    .order_by_desc(help_request::Column::CreatedAt)
                    .order_by_desc(help_request::Column::Id),
            )
            .await?;
        let regions: std::collections::HashMap<Uuid, Uuid> = family::Entity::find()
            .select_only()
            .columns([family::Column::Id, family::Column::RegionId])
            .filter(family::Column::Id.is_in(rows.iter().map(|h| h.family_id)))
            .into_tuple::<(Uuid, Uuid)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let names = region_names(db, regions.values().copied()).await?;
        let items = rows
            .into_iter()
            .map(|h| {
                let village = regions
                    .get(&h.family_id)
                    .and_then(|r| names.get(r))
                    .cloned()
                    .unwrap_or_default();
                summary(h, village)
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// A request with what a responder needs: the family's address and numbers. For the
    /// coordinators over the family and the people alerted. Audited.
    #[oai(path = "/help/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<HelpDetail>> {
        let db = &self.0.db;
        let (h, f) = responder_view(db, &auth.0, id.0).await?;
        Ok(Json(self.detail(db, &auth.0, h, f).await?))
    }

    /// I am on it: stops the escalation. The first acknowledgement counts; a later one is
    /// refused with the request's state.
    #[oai(path = "/help/:id/ack", method = "post")]
    async fn acknowledge(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<HelpDetail>> {
        let txn = begin(&self.0.db).await?;
        let out = async {
            let (h, f) = responder_view(&txn, &auth.0, id.0).await?;
            let now = Utc::now();
            let won = help_request::Entity::update_many()
                .col_expr(
                    help_request::Column::Status,
                    Expr::value(help_request::ACKNOWLEDGED),
                )
                .col_expr(help_request::Column::AcknowledgedAt, Expr::value(now))
                .col_expr(
                    help_request::Column::AcknowledgedBy,
                    Expr::value(auth.0.user_id),
                )
                .filter(help_request::Column::Id.eq(h.id))
                .filter(help_request::Column::Status.eq(help_request::OPEN))
                .exec(&txn)
                .await?;
            if won.rows_affected != 1 {
                return Err(ApiError::state(
                    "already_acknowledged",
                    h.status,
                    "已有人响应此求助",
                ));
            }
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "acknowledge_help",
                "help_request",
                Some(h.id),
                json!({"minutes": (now - h.created_at).num_minutes(), "level": h.escalation_level}),
            )
            .await?;
            let h = help_request::Entity::find_by_id(h.id)
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("求助"))?;
            self.detail(&txn, &auth.0, h, f).await
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Close a request with what was done. For the coordinators over the family and the
    /// people alerted.
    #[oai(path = "/help/:id/resolve", method = "post")]
    async fn resolve(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Input<Resolution>,
    ) -> ApiResult<Json<HelpDetail>> {
        let txn = begin(&self.0.db).await?;
        let out = async {
            let (h, f) = responder_view(&txn, &auth.0, id.0).await?;
            let now = Utc::now();
            let done = help_request::Entity::update_many()
                .col_expr(
                    help_request::Column::Status,
                    Expr::value(help_request::RESOLVED),
                )
                .col_expr(help_request::Column::ResolvedAt, Expr::value(now))
                .col_expr(
                    help_request::Column::ResolvedBy,
                    Expr::value(auth.0.user_id),
                )
                .col_expr(
                    help_request::Column::Resolution,
                    Expr::value(body.0.resolution.trim()),
                )
                // Closing an unanswered request answers it too.
                .col_expr(
                    help_request::Column::AcknowledgedAt,
                    Expr::value(h.acknowledged_at.unwrap_or(now)),
                )
                .col_expr(
                    help_request::Column::AcknowledgedBy,
                    Expr::value(h.acknowledged_by.unwrap_or(auth.0.user_id)),
                )
                .filter(help_request::Column::Id.eq(h.id))
                .filter(help_request::Column::Status.ne(help_request::RESOLVED))
                .exec(&txn)
                .await?;
            if done.rows_affected != 1 {
                return Err(ApiError::state(
                    "already_resolved",
                    help_request::RESOLVED,
                    "此求助已处理完毕",
                ));
            }
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "resolve_help",
                "help_request",
                Some(h.id),
                json!({}),
            )
            .await?;
            let h = help_request::Entity::find_by_id(h.id)
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("求助"))?;
            self.detail(&txn, &auth.0, h, f).await
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }
}

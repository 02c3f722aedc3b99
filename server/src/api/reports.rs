//! Doing a visit and the family's confirmation: check-in at the door (by position, by the
//! family's one-time code, or for a phone call), check-out, the report, a coordinator's
//! correction, the family's view of who is coming, confirmation (with a rating, or by the
//! volunteer with the family's code), declining or moving a visit, and the volunteer's
//! service hours.
//!
//! Who may act: the `/visits/{id}/…` steps belong to the visit's holders (a volunteer with
//! an active claim, or the cadre it was pre-assigned to). A coordinator or administrator
//! who can see the visit but does not hold it gets 403; anyone else gets 404, as if the
//! visit did not exist. The `/family/…` endpoints belong to people bound to a family as a
//! member: anyone else gets 403, and another family's visit is 404.
//!
//! Every step runs in one transaction that first locks the visit's row (`FOR UPDATE` on
//! PostgreSQL; an immediate transaction on SQLite), checks the state there
//! ([`crate::report`]), and moves it with a conditional update. A step the state does not
//! allow is 409 with the current state in the body; bad input is 422 naming the field;
//! neither writes anything.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{
    StringList, app_user, family, family_household, family_member, notification, region,
    service_hours, task_claim, team, visit_checkin, visit_code, visit_record, visit_request,
    visit_task, visit_task::status, volunteer, wish,
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::{Binary, Json},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sea_query::{Expr, ExprTrait, OnConflict, Query as SqlQuery},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Page, Paging, Tag};
use crate::{
    app::AppState,
    audit,
    auth::{Auth, Ctx, Manager, Scope},
    error::{ApiError, ApiResult},
    input::{Input, Validate, opt_text, range, text},
    notify, oversight,
    report::{self, ReportChange, ReportFields, ReportInput},
    visits,
};

pub struct Api(pub Arc<AppState>);

/// Templates of the outbox messages to a visit's holders.
pub const TEMPLATE_VISIT_DECLINED: &str = "visit_declined";
pub const TEMPLATE_VISIT_MOVE_REQUESTED: &str = "visit_move_requested";
/// How a visit the family asked to move is flagged for the coordinators (the reason and
/// the days it wished follow).
pub const MOVE_REQUESTED_FLAG: &str = "家庭希望改期";

/// `confirm_method` of a visit confirmed by the family in its app.
pub const CONFIRMED_BY_FAMILY: &str = "family";
/// `confirm_method` of a visit confirmed by the volunteer with the family's one-time code.
pub const CONFIRMED_BY_CODE: &str = "code";

// ---------------------------------------------------------------------------------------
// Shapes

/// Where the volunteer is, or the code the family shows. A phone-call visit needs neither.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// The phone's position (degrees), within the configured radius of the family's home.
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    /// Or the six digits the family shows in its app (for places without GPS).
    pub code: Option<String>,
}

impl Validate for CheckinRequest {
    fn validate(&self) -> ApiResult<()> {
        match (self.lat, self.lng) {
            (Some(lat), Some(lng)) => {
                range("lat", lat, -90.0, 90.0)?;
                range("lng", lng, -180.0, 180.0)?;
            }
            (Some(_), None) => return Err(ApiError::field("lng", "经纬度须同时提供")),
            (None, Some(_)) => return Err(ApiError::field("lat", "经纬度须同时提供")),
            (None, None) => {}
        }
        if let Some(code) = &self.code {
            if self.lat.is_some() {
                return Err(ApiError::field("code", "请只用一种方式签到：位置或验证码"));
            }
            if report::normalise_code(code).is_none() {
                return Err(ApiError::field("code", "验证码为 6 位数字"));
            }
        }
        Ok(())
    }
}

/// A holder's check-in on a visit.
#[derive(Object)]
pub struct VisitCheckin {
    pub visit_id: Uuid,
    /// The visit's state after the step.
    pub status: String,
    /// `position`, `code` or `phone`.
    pub method: String,
    pub checkin_at: DateTime<Utc>,
    /// From the family's home, for a check-in by position (metres).
    pub distance_m: Option<f64>,
    pub checkout_at: Option<DateTime<Utc>>,
    /// Check-out minus check-in, once checked out.
    pub duration_minutes: Option<i64>,
}

impl VisitCheckin {
    fn of(state: &str, c: &visit_checkin::Model) -> Self {
        Self {
            visit_id: c.task_id,
            status: state.to_string(),
            method: c.method.clone(),
            checkin_at: c.checkin_at,
            distance_m: c.distance_m.map(|d| d.round()),
            checkout_at: c.checkout_at,
            duration_minutes: c.checkout_at.map(|o| (o - c.checkin_at).num_minutes()),
        }
    }
}

/// The family's one-time code, entered by the volunteer.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The six digits the family shows in its app.
    pub code: String,
}

impl Validate for CodeRequest {
    fn validate(&self) -> ApiResult<()> {
        match report::normalise_code(&self.code) {
            Some(_) => Ok(()),
            None => Err(ApiError::field("code", "验证码为 6 位数字")),
        }
    }
}

/// A visit's report.
#[derive(Object)]
pub struct VisitReport {
    pub visit_id: Uuid,
    pub status: String,
    pub reporter_id: Uuid,
    pub checkin_at: Option<DateTime<Utc>>,
    pub checkout_at: Option<DateTime<Utc>>,
    /// Service codes (`condolence`, `health_check`…; `other:<what>` for another service).
    pub services: Vec<String>,
    /// The same, for people ("慰问", "其他：代缴电费").
    pub service_labels: Vec<String>,
    /// 慰问金, exact, in fen.
    pub cash_fen: i64,
    pub cash_yuan: f64,
    pub goods: String,
    pub bp_systolic: Option<i32>,
    pub bp_diastolic: Option<i32>,
    pub mood: Option<String>,
    pub risk_signs: Vec<String>,
    pub needs: Vec<String>,
    pub notes: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// `family` (in the family's app) or `code` (the volunteer entered the family's code).
    pub confirm_method: Option<String>,
    pub rating: Option<i32>,
    pub comment: Option<String>,
    /// The counsellor's follow-up visit the report's risk signs created.
    pub followup_visit_id: Option<Uuid>,
    /// Whose blood pressure it is (a member of the family).
    pub bp_member_id: Option<Uuid>,
    /// The health worker's follow-up a blood pressure beyond the thresholds created.
    pub health_followup_visit_id: Option<Uuid>,
    /// Wishes put on the wish wall from the needs found (this request).
    pub wishes_created: u32,
}

impl VisitReport {
    fn of(state: &str, r: visit_record::Model) -> Self {
        Self {
            visit_id: r.task_id,
            status: state.to_string(),
            reporter_id: r.reporter_id,
            checkin_at: r.checkin_at,
            checkout_at: r.checkout_at,
            service_labels: r
                .services
                .0
                .iter()
                .map(|s| report::service_label(s))
                .collect(),
            services: r.services.0,
            cash_fen: r.cash_fen,
            cash_yuan: report::fen_to_yuan(r.cash_fen),
            goods: r.goods,
            bp_systolic: r.bp_systolic,
            bp_diastolic: r.bp_diastolic,
            mood: r.mood,
            risk_signs: r.risk_signs.0,
            needs: r.needs.0,
            notes: r.notes,
            submitted_at: r.submitted_at,
            confirmed_at: r.confirmed_at,
            confirm_method: r.confirm_method,
            rating: r.rating,
            comment: r.comment,
            followup_visit_id: None,
            bp_member_id: r.bp_member_id,
            health_followup_visit_id: None,
            wishes_created: 0,
        }
    }
}

/// The family's confirmation.
#[derive(Object, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FamilyConfirm {
    /// How the visit was, 1 (poor) to 5 (very good).
    pub rating: Option<i32>,
    /// Up to 200 characters.
    pub comment: Option<String>,
}

impl Validate for FamilyConfirm {
    fn validate(&self) -> ApiResult<()> {
        if let Some(r) = self.rating {
            range("rating", r, 1, 5)?;
        }
        opt_text("comment", self.comment.as_deref(), 200)
    }
}

/// A visit confirmed.
#[derive(Object)]
pub struct VisitConfirmed {
    pub visit_id: Uuid,
    pub status: String,
    pub confirmed_at: DateTime<Utc>,
    pub confirm_method: String,
    pub rating: Option<i32>,
    /// Volunteers credited with service hours.
    pub volunteers_credited: u32,
    /// Minutes credited in all (each volunteer's capped at the configured maximum).
    pub minutes_credited: i64,
}

/// The family does not want this visit.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DeclineRequest {
    /// Why, in a few words (up to 200 characters); coordinators read it.
    pub reason: String,
}

impl Validate for DeclineRequest {
    fn validate(&self) -> ApiResult<()> {
        text("reason", &self.reason, 1, 200)
    }
}

/// The family would like the visit on another day.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub reason: String,
    /// One to five days that would suit, from today on.
    pub preferred_dates: Vec<NaiveDate>,
}

impl Validate for MoveRequest {
    fn validate(&self) -> ApiResult<()> {
        text("reason", &self.reason, 1, 200)?;
        if self.preferred_dates.is_empty() || self.preferred_dates.len() > 5 {
            return Err(ApiError::field(
                "preferred_dates",
                "请选择 1 到 5 个希望的日期",
            ));
        }
        Ok(())
    }
}

/// A decline or a move request, recorded.
#[derive(Object)]
pub struct VisitChangeRequested {
    pub visit_id: Uuid,
    /// `decline` or `move`.
    pub kind: String,
    pub status: String,
    /// The visit is flagged for a coordinator.
    pub needs_attention: bool,
    /// Holders told.
    pub holders_notified: u32,
}

/// Who is coming: a surname and a team, nothing more.
#[derive(Object, Clone)]
pub struct Visitor {
    /// "王*"
    pub name: String,
    /// `volunteer` or `cadre` (the family's 一帮一 cadre).
    pub role: String,
    pub team: Option<String>,
}

/// A visit as the family sees it.
#[derive(Object)]
pub struct FamilyVisit {
    pub id: Uuid,
    pub kind: String,
    /// For people ("定期走访", "节日慰问", "关怀走访").
    pub kind_label: String,
    /// `home_visit` or `phone_call`.
    pub channel: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub planned_date: Option<NaiveDate>,
    pub status: String,
    /// Empty while nobody has taken the visit yet.
    pub visitors: Vec<Visitor>,
    /// Reported and waiting for the family's confirmation.
    pub can_confirm: bool,
    /// Requests the family made (`decline`, `move`).
    pub requests: Vec<String>,
}

/// A one-time code to show the volunteer.
#[derive(Object)]
pub struct VisitCode {
    /// Six digits; works once, for this visit only.
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct MonthHours {
    /// "2026-11", in the deployment's time zone.
    pub month: String,
    pub minutes: i64,
    pub hours: f64,
    pub visits: u64,
}

#[derive(Object)]
pub struct KindHours {
    pub kind: String,
    pub label: String,
    pub minutes: i64,
    pub hours: f64,
    pub visits: u64,
}

/// A volunteer's service hours (志愿时长).
#[derive(Object)]
pub struct ServiceHours {
    pub total_minutes: i64,
    pub total_hours: f64,
    /// Visits credited.
    pub visits: u64,
    /// Newest month first.
    pub by_month: Vec<MonthHours>,
    /// Most minutes first.
    pub by_kind: Vec<KindHours>,
}

#[derive(ApiResponse)]
pub enum HoursCsv {
    /// The service record as a CSV file (UTF-8, Chinese headers; opens in Excel).
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Ok(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

// ---------------------------------------------------------------------------------------
// Transactions and who may act

/// A write transaction. On SQLite it takes the write lock at once, so that reading the
/// visit and changing it cannot be interleaved with another writer (a deferred one would
/// fail to upgrade its read); PostgreSQL locks the visit's row instead ([`lock_visit`]).
async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Commits on success, rolls back on failure.
async fn finish<T>(txn: DatabaseTransaction, out: ApiResult<T>) -> ApiResult<T> {
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

/// The visit, its row locked until the transaction ends.
async fn lock_visit(txn: &DatabaseTransaction, id: Uuid) -> ApiResult<visit_task::Model> {
    visit_task::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("走访"))
}

async fn family_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    family_id: Uuid,
) -> ApiResult<bool> {
    if *scope == Scope::All {
        return Ok(true);
    }
    let path: Option<String> = region::Entity::find()
        .select_only()
        .column(region::Column::Path)
        .filter(
            region::Column::Id.in_subquery(
                SqlQuery::select()
                    .column(family::Column::RegionId)
                    .from(family::Entity)
                    .and_where(family::Column::Id.eq(family_id))
                    .to_owned(),
            ),
        )
        .into_tuple()
        .one(db)
        .await?;
    Ok(path.is_some_and(|p| scope.contains(&p)))
}

/// A visit `ctx` holds. A manager who can see it but does not hold it gets 403; anyone
/// else 404.
async fn held_visit(
    txn: &DatabaseTransaction,
    ctx: &Ctx,
    id: Uuid,
) -> ApiResult<visit_task::Model> {
    let task = lock_visit(txn, id).await?;
    if visits::holds(txn, &task, ctx.user_id).await? {
        return Ok(task);
    }
    if let Ok(scope) = ctx.manager_scope()
        && family_in_scope(txn, &scope, task.family_id).await?
    {
        return Err(ApiError::Forbidden(
            "只有认领该走访的志愿者或责任干部可以操作".into(),
        ));
    }
    Err(ApiError::NotFound("走访"))
}

/// The families `user` is bound to as a member, or speaks for as a family's household
/// account (replies by SMS); someone bound to none is refused.
async fn member_families(db: &impl ConnectionTrait, user: Uuid) -> ApiResult<Vec<Uuid>> {
    let mut ids: Vec<Uuid> = family_member::Entity::find()
        .select_only()
        .column(family_member::Column::FamilyId)
        .filter(family_member::Column::UserId.eq(user))
        .into_tuple()
        .all(db)
        .await?;
    if let Some(h) = family_household::Entity::find()
        .filter(family_household::Column::UserId.eq(user))
        .one(db)
        .await?
    {
        ids.push(h.family_id);
    }
    if ids.is_empty() {
        return Err(ApiError::Forbidden("仅家庭成员可以使用".into()));
    }
    Ok(ids)
}

/// A visit of a family `ctx` belongs to, locked.
async fn family_visit(
    txn: &DatabaseTransaction,
    ctx: &Ctx,
    id: Uuid,
) -> ApiResult<visit_task::Model> {
    let families = member_families(txn, ctx.user_id).await?;
    let task = lock_visit(txn, id).await?;
    if !families.contains(&task.family_id) {
        return Err(ApiError::NotFound("走访"));
    }
    Ok(task)
}

async fn own_checkin(
    db: &impl ConnectionTrait,
    task: Uuid,
    user: Uuid,
) -> Result<Option<visit_checkin::Model>, DbErr> {
    visit_checkin::Entity::find()
        .filter(visit_checkin::Column::TaskId.eq(task))
        .filter(visit_checkin::Column::UserId.eq(user))
        .one(db)
        .await
}

/// Moves the visit from the state it was read in to `to`; the row is locked, so this only
/// fails if something bypassed the lock.
async fn advance(
    txn: &DatabaseTransaction,
    task: &visit_task::Model,
    to: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let moved = visit_task::Entity::update_many()
        .col_expr(visit_task::Column::Status, Expr::value(to))
        .col_expr(visit_task::Column::UpdatedAt, Expr::value(now))
        .filter(visit_task::Column::Id.eq(task.id))
        .filter(visit_task::Column::Status.eq(task.status.as_str()))
        .exec(txn)
        .await?;
    if moved.rows_affected != 1 {
        return Err(ApiError::state(
            "state_changed",
            task.status.as_str(),
            "走访状态刚刚发生了变化，请刷新后重试",
        ));
    }
    Ok(())
}

/// What happened to a one-time code presented for a visit.
enum CodeCheck {
    /// It matched and is now spent.
    Taken,
    /// It did not match the visit's current code (whose id is given).
    Wrong(Uuid),
    /// The visit has no usable code.
    Missing,
}

async fn take_code(
    txn: &DatabaseTransaction,
    task: Uuid,
    code: &str,
    now: DateTime<Utc>,
) -> Result<CodeCheck, DbErr> {
    let current = visit_code::Entity::find()
        .filter(visit_code::Column::TaskId.eq(task))
        .filter(visit_code::Column::UsedAt.is_null())
        .filter(visit_code::Column::ExpiresAt.gt(now))
        .order_by_desc(visit_code::Column::CreatedAt)
        .one(txn)
        .await?;
    let Some(current) = current else {
        return Ok(CodeCheck::Missing);
    };
    if current.code_hash != report::code_hash(task, code) {
        return Ok(CodeCheck::Wrong(current.id));
    }
    let taken = visit_code::Entity::update_many()
        .col_expr(visit_code::Column::UsedAt, Expr::value(now))
        .filter(visit_code::Column::Id.eq(current.id))
        .filter(visit_code::Column::UsedAt.is_null())
        .exec(txn)
        .await?;
    Ok(if taken.rows_affected == 1 {
        CodeCheck::Taken
    } else {
        CodeCheck::Missing
    })
}

/// Checks a code inside the step's transaction; a wrong one is remembered in `wrong` so
/// the caller can count the try after rolling back.
async fn require_code(
    txn: &DatabaseTransaction,
    task: Uuid,
    code: &str,
    now: DateTime<Utc>,
    wrong: &mut Option<Uuid>,
) -> ApiResult<()> {
    let code =
        report::normalise_code(code).ok_or_else(|| ApiError::field("code", "验证码为 6 位数字"))?;
    match take_code(txn, task, &code, now).await? {
        CodeCheck::Taken => Ok(()),
        CodeCheck::Wrong(id) => {
            *wrong = Some(id);
            Err(ApiError::field(
                "code",
                "验证码不正确，请核对家庭出示的验证码",
            ))
        }
        CodeCheck::Missing => Err(ApiError::field(
            "code",
            "验证码无效或已过期，请让家庭在小程序中重新获取",
        )),
    }
}

/// Counts a wrong try (outside the refused step's transaction); enough of them spend the
/// code, so six digits cannot be guessed.
async fn count_wrong_try(db: &DatabaseConnection, code: Option<Uuid>) -> Result<(), DbErr> {
    let Some(id) = code else {
        return Ok(());
    };
    let now = Utc::now();
    visit_code::Entity::update_many()
        .col_expr(
            visit_code::Column::Attempts,
            Expr::col(visit_code::Column::Attempts).add(1),
        )
        .filter(visit_code::Column::Id.eq(id))
        .exec(db)
        .await?;
    visit_code::Entity::update_many()
        .col_expr(visit_code::Column::UsedAt, Expr::value(now))
        .filter(visit_code::Column::Id.eq(id))
        .filter(visit_code::Column::UsedAt.is_null())
        .filter(visit_code::Column::Attempts.gte(visit_code::MAX_ATTEMPTS))
        .exec(db)
        .await?;
    Ok(())
}

fn fields_of(r: &visit_record::Model) -> ReportFields {
    ReportFields {
        services: r.services.0.clone(),
        cash_fen: r.cash_fen,
        goods: r.goods.clone(),
        bp_systolic: r.bp_systolic,
        bp_diastolic: r.bp_diastolic,
        mood: r.mood.clone(),
        risk_signs: r.risk_signs.0.clone(),
        needs: r.needs.0.clone(),
        notes: r.notes.clone(),
    }
}

async fn record_of(db: &impl ConnectionTrait, task: Uuid) -> ApiResult<visit_record::Model> {
    visit_record::Entity::find()
        .filter(visit_record::Column::TaskId.eq(task))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("走访记录"))
}

/// A follow-up a report calls for: a new visit in the next seven days, flagged for
/// coordinators with why.
struct Followup {
    key: String,
    kind: &'static str,
    skill: entity::Skill,
    label: &'static str,
    reason: String,
    /// Spoken of as a plain 关怀走访 to the family.
    gentle: bool,
}

impl Followup {
    /// A counsellor's, for low mood for weeks or thoughts of suicide.
    fn counsellor(task: &visit_task::Model, signs: &[String]) -> Self {
        Self {
            key: report::followup_key(task.family_id, task.id),
            kind: report::FOLLOWUP_KIND,
            skill: entity::Skill::Counselling,
            label: "心理回访",
            reason: report::followup_reason(signs),
            gentle: true,
        }
    }

    /// A health worker's, for a blood pressure beyond the thresholds (`[health]`).
    fn health(task: &visit_task::Model, reason: String) -> Self {
        Self {
            key: oversight::health_followup_key(task.family_id, task.id),
            kind: oversight::HEALTH_FOLLOWUP_KIND,
            skill: entity::Skill::Health,
            label: "健康随访",
            reason,
            gentle: false,
        }
    }
}

/// The follow-up visit, flagged for coordinators. Its key makes it one per visit however
/// often this runs. Returns its id.
async fn create_followup(
    txn: &DatabaseTransaction,
    task: &visit_task::Model,
    f: Followup,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> ApiResult<Uuid> {
    let key = f.key;
    let list = |v: &[&str]| StringList(v.iter().map(|s| s.to_string()).collect());
    let row = visit_task::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(task.family_id),
        rule_id: Set(None),
        kind: Set(f.kind.into()),
        channel: Set("home_visit".into()),
        unique_key: Set(key.clone()),
        window_start: Set(now),
        window_end: Set(now + Duration::days(report::FOLLOWUP_DAYS)),
        status: Set(status::OPEN.into()),
        volunteers_needed: Set(1),
        claims_count: Set(0),
        required_skills: Set(list(&[f.skill.code()])),
        assigned_cadre_id: Set(None),
        planned_date: Set(Some(now.with_timezone(&tz).date_naive())),
        kinds: Set(Some(list(&[f.kind]))),
        reasons: Set(Some(list(&[f.label]))),
        components: Set(Some(StringList(vec![key.clone()]))),
        gentle: Set(f.gentle),
        first_visit: Set(false),
        assign_to_cadre: Set(false),
        preferred_time: Set(None),
        visitor_gender: Set(None),
        status_reason: Set(Some(f.reason)),
        needs_attention: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        rescheduled_at: Set(None),
    };
    visit_task::Entity::insert(row)
        .on_conflict(
            OnConflict::column(visit_task::Column::UniqueKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    let id: Uuid = visit_task::Entity::find()
        .select_only()
        .column(visit_task::Column::Id)
        .filter(visit_task::Column::UniqueKey.eq(key))
        .into_tuple()
        .one(txn)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("follow-up visit missing")))?;
    Ok(id)
}

/// A blood pressure beyond the thresholds (`[health]`) calls for a health worker's
/// follow-up, flagged for coordinators, who are told as of risk signs (never the values:
/// the message may show on a locked screen). Returns the follow-up's id.
async fn health_followup(
    state: &AppState,
    txn: &DatabaseTransaction,
    task: &visit_task::Model,
    bp: (Option<i32>, Option<i32>),
    now: DateTime<Utc>,
) -> ApiResult<Option<Uuid>> {
    let (Some(sys), Some(dia)) = bp else {
        return Ok(None);
    };
    let Some(reason) = oversight::bp_followup_reason(sys, dia, &state.config.health) else {
        return Ok(None);
    };
    let id = create_followup(txn, task, Followup::health(task, reason), now, state.tz).await?;
    let date = task.window_start.with_timezone(&state.tz).date_naive();
    let msgs = notify::produce::coordinators_of(txn, task.family_id)
        .await?
        .into_iter()
        .map(|to| notify::produce::Msg {
            to,
            template: notify::remind::RISK_SIGNS,
            payload: json!({"task_id": task.id, "date": date.to_string(), "followup_id": id}),
            key: notify::remind::key(notify::remind::RISK_SIGNS, task.id, to, "bp"),
            at: now,
        })
        .collect();
    notify::produce::queue(txn, msgs, now).await?;
    Ok(Some(id))
}

/// Each need found becomes an open wish on the wall, for coordinators to answer.
async fn create_wishes(
    txn: &DatabaseTransaction,
    family_id: Uuid,
    by: Uuid,
    needs: &[String],
    now: DateTime<Utc>,
) -> ApiResult<u32> {
    if needs.is_empty() {
        return Ok(0);
    }
    let rows = needs.iter().map(|n| wish::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family_id),
        posted_by: Set(Some(by)),
        content: Set(n.clone()),
        status: Set(wish::OPEN.into()),
        resolved_at: Set(None),
        created_at: Set(now),
        kind: Set("other".into()),
        public: Set(false),
        assignee_id: Set(None),
        assigned_at: Set(None),
        first_answered_at: Set(None),
        done_note: Set(None),
    });
    wish::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(needs.len() as u32)
}

/// The visit confirmed, and each holder who checked in credited once: the conditional
/// update from `reported` lets exactly one confirmation through, however many race.
async fn confirm(
    state: &AppState,
    txn: &DatabaseTransaction,
    task: &visit_task::Model,
    method: &str,
    rating: Option<i32>,
    comment: Option<String>,
    now: DateTime<Utc>,
) -> ApiResult<VisitConfirmed> {
    report::may_confirm(&task.status)?;
    advance(txn, task, status::CONFIRMED, now).await?;
    // A flag for an unconfirmed visit is settled by the confirmation.
    visit_task::Entity::update_many()
        .col_expr(visit_task::Column::NeedsAttention, Expr::value(false))
        .filter(visit_task::Column::Id.eq(task.id))
        .filter(visit_task::Column::StatusReason.eq(report::REASON_UNCONFIRMED))
        .exec(txn)
        .await?;
    let record = record_of(txn, task.id).await?;
    let comment = comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    visit_record::Entity::update_many()
        .col_expr(visit_record::Column::ConfirmedAt, Expr::value(now))
        .col_expr(visit_record::Column::ConfirmMethod, Expr::value(method))
        .col_expr(visit_record::Column::Rating, Expr::value(rating))
        .col_expr(visit_record::Column::Comment, Expr::value(comment))
        .filter(visit_record::Column::Id.eq(record.id))
        .exec(txn)
        .await?;
    let checkins = visit_checkin::Entity::find()
        .filter(visit_checkin::Column::TaskId.eq(task.id))
        .order_by_asc(visit_checkin::Column::CheckinAt)
        .all(txn)
        .await?;
    let cap = state.config.visits.max_credit_minutes;
    let how = if method == CONFIRMED_BY_FAMILY {
        "家庭确认"
    } else {
        "验证码确认"
    };
    let note = format!("{}（{how}）", report::kind_label(&task.kind));
    let mut minutes = 0i64;
    let rows: Vec<service_hours::ActiveModel> = checkins
        .iter()
        .map(|c| {
            let m =
                report::credit_minutes(c.checkin_at, c.checkout_at.or(record.submitted_at), cap);
            minutes += i64::from(m);
            service_hours::ActiveModel {
                id: Set(Uuid::now_v7()),
                volunteer_id: Set(c.user_id),
                task_id: Set(Some(task.id)),
                minutes: Set(m),
                kind: Set(task.kind.clone()),
                note: Set(note.clone()),
                created_at: Set(now),
            }
        })
        .collect();
    let credited = rows.len() as u32;
    if !rows.is_empty() {
        service_hours::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    notify::produce::rated(txn, &state.config.reminders, state.tz, task, rating, now).await?;
    Ok(VisitConfirmed {
        visit_id: task.id,
        status: status::CONFIRMED.into(),
        confirmed_at: now,
        confirm_method: method.into(),
        rating,
        volunteers_credited: credited,
        minutes_credited: minutes,
    })
}

/// Who holds a visit: the volunteers with an active claim and the pre-assigned cadre.
async fn holders_of(
    db: &impl ConnectionTrait,
    task: &visit_task::Model,
) -> Result<Vec<Uuid>, DbErr> {
    let mut ids: Vec<Uuid> = task_claim::Entity::find()
        .select_only()
        .column(task_claim::Column::VolunteerId)
        .filter(task_claim::Column::TaskId.eq(task.id))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .into_tuple()
        .all(db)
        .await?;
    ids.extend(task.assigned_cadre_id);
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Flags reported visits the family has not confirmed within `within_hours` of the report
/// (`needs_attention`, [`report::REASON_UNCONFIRMED`]), each once, and tells the
/// coordinators of each in the same transaction: a visit flagged before is recognised by
/// its reason and left alone, even after a coordinator cleared the flag. The hourly
/// `unconfirmed` job.
pub async fn flag_unconfirmed(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    within_hours: i64,
    tz: chrono_tz::Tz,
) -> Result<u64, DbErr> {
    let cutoff = now - Duration::hours(within_hours);
    let late = SqlQuery::select()
        .column(visit_record::Column::TaskId)
        .from(visit_record::Entity)
        .and_where(visit_record::Column::SubmittedAt.lt(cutoff))
        .and_where(visit_record::Column::ConfirmedAt.is_null())
        .to_owned();
    let txn = db.begin().await?;
    let flagged = visit_task::Entity::update_many()
        .col_expr(visit_task::Column::NeedsAttention, Expr::value(true))
        .col_expr(
            visit_task::Column::StatusReason,
            Expr::value(report::REASON_UNCONFIRMED),
        )
        .col_expr(visit_task::Column::UpdatedAt, Expr::value(now))
        .filter(visit_task::Column::Status.eq(status::REPORTED))
        .filter(visit_task::Column::Id.in_subquery(late))
        .filter(
            Condition::any()
                .add(visit_task::Column::StatusReason.is_null())
                .add(visit_task::Column::StatusReason.ne(report::REASON_UNCONFIRMED)),
        )
        .exec_with_returning(&txn)
        .await?;
    notify::produce::unconfirmed(&txn, tz, &flagged, now).await?;
    txn.commit().await?;
    Ok(flagged.len() as u64)
}

// ---------------------------------------------------------------------------------------
// The steps

impl Api {
    async fn checkin_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
        body: &CheckinRequest,
        wrong: &mut Option<Uuid>,
    ) -> ApiResult<VisitCheckin> {
        let state = &self.0;
        let now = Utc::now();
        let user = ctx.user_id;
        let task = held_visit(txn, ctx, id).await?;
        // A check-in that went through and is sent again (a poor connection) is answered
        // as it was.
        if let Some(c) = own_checkin(txn, task.id, user).await? {
            return Ok(VisitCheckin::of(&task.status, &c));
        }
        let cadre_visit = task.assigned_cadre_id == Some(user);
        report::may_check_in(
            &task.status,
            cadre_visit,
            task.volunteers_needed - task.claims_count,
        )?;
        report::within_window(now, task.window_start, task.window_end, &task.status)?;
        let (method, lat, lng, distance) = if task.channel == "phone_call" {
            // Nobody goes to the door for a phone call.
            (visit_checkin::BY_PHONE, None, None, None)
        } else if let Some(code) = &body.code {
            require_code(txn, task.id, code, now, wrong).await?;
            (visit_checkin::BY_CODE, None, None, None)
        } else if let (Some(lat), Some(lng)) = (body.lat, body.lng) {
            let home: Option<(Option<f64>, Option<f64>)> =
                family::Entity::find_by_id(task.family_id)
                    .select_only()
                    .columns([family::Column::Lat, family::Column::Lng])
                    .into_tuple()
                    .one(txn)
                    .await?;
            let home = home.and_then(|(a, b)| a.zip(b));
            let d = report::check_position(home, (lat, lng), state.config.visits.checkin_radius_m)?;
            (visit_checkin::BY_POSITION, Some(lat), Some(lng), Some(d))
        } else {
            return Err(ApiError::field(
                "lat",
                "请提供当前位置，或输入家庭出示的验证码",
            ));
        };
        if task.status != status::IN_PROGRESS {
            advance(txn, &task, status::IN_PROGRESS, now).await?;
        }
        let c = visit_checkin::ActiveModel {
            id: Set(Uuid::now_v7()),
            task_id: Set(task.id),
            user_id: Set(user),
            checkin_at: Set(now),
            lat: Set(lat),
            lng: Set(lng),
            method: Set(method.into()),
            distance_m: Set(distance),
            checkout_at: Set(None),
            created_at: Set(now),
        }
        .insert(txn)
        .await?;
        // The visit's record starts with its first check-in.
        let exists = visit_record::Entity::find()
            .filter(visit_record::Column::TaskId.eq(task.id))
            .one(txn)
            .await?
            .is_some();
        if !exists {
            visit_record::ActiveModel {
                id: Set(Uuid::now_v7()),
                task_id: Set(task.id),
                reporter_id: Set(user),
                checkin_at: Set(Some(now)),
                checkin_lat: Set(lat),
                checkin_lng: Set(lng),
                checkin_method: Set(Some(method.into())),
                checkout_at: Set(None),
                services: Set(StringList::default()),
                cash_fen: Set(0),
                goods: Set(String::new()),
                bp_systolic: Set(None),
                bp_diastolic: Set(None),
                bp_member_id: Set(None),
                mood: Set(None),
                risk_signs: Set(StringList::default()),
                needs: Set(StringList::default()),
                notes: Set(String::new()),
                submitted_at: Set(None),
                confirmed_at: Set(None),
                confirm_method: Set(None),
                rating: Set(None),
                comment: Set(None),
                created_at: Set(now),
            }
            .insert(txn)
            .await?;
        }
        Ok(VisitCheckin::of(status::IN_PROGRESS, &c))
    }

    async fn checkout_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
    ) -> ApiResult<VisitCheckin> {
        let now = Utc::now();
        let task = held_visit(txn, ctx, id).await?;
        let Some(c) = own_checkin(txn, task.id, ctx.user_id).await? else {
            return Err(ApiError::state("not_checked_in", task.status, "请先签到"));
        };
        if c.checkout_at.is_some() {
            return Ok(VisitCheckin::of(&task.status, &c));
        }
        report::may_check_out(&task.status)?;
        visit_checkin::Entity::update_many()
            .col_expr(visit_checkin::Column::CheckoutAt, Expr::value(now))
            .filter(visit_checkin::Column::Id.eq(c.id))
            .filter(visit_checkin::Column::CheckoutAt.is_null())
            .exec(txn)
            .await?;
        // The record keeps the last check-out of the visit.
        visit_record::Entity::update_many()
            .col_expr(visit_record::Column::CheckoutAt, Expr::value(now))
            .filter(visit_record::Column::TaskId.eq(task.id))
            .exec(txn)
            .await?;
        let c = visit_checkin::Model {
            checkout_at: Some(now),
            ..c
        };
        Ok(VisitCheckin::of(&task.status, &c))
    }

    async fn report_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
        fields: ReportFields,
        bp_member: Option<Uuid>,
    ) -> ApiResult<VisitReport> {
        let now = Utc::now();
        let task = held_visit(txn, ctx, id).await?;
        report::may_report(&task.status)?;
        if let Some(m) = bp_member {
            let of_family = family_member::Entity::find_by_id(m)
                .filter(family_member::Column::FamilyId.eq(task.family_id))
                .one(txn)
                .await?
                .is_some();
            if !of_family {
                return Err(ApiError::field("bp_member_id", "不是该家庭的成员"));
            }
        }
        if own_checkin(txn, task.id, ctx.user_id).await?.is_none() {
            return Err(ApiError::state(
                "not_checked_in",
                task.status,
                "请先签到，再提交走访记录",
            ));
        }
        advance(txn, &task, status::REPORTED, now).await?;
        let record = record_of(txn, task.id).await?;
        let mut row: visit_record::ActiveModel = record.into();
        row.reporter_id = Set(ctx.user_id);
        row.services = Set(StringList(fields.services.clone()));
        row.cash_fen = Set(fields.cash_fen);
        row.goods = Set(fields.goods.clone());
        row.bp_systolic = Set(fields.bp_systolic);
        row.bp_diastolic = Set(fields.bp_diastolic);
        row.bp_member_id = Set(bp_member);
        row.mood = Set(fields.mood.clone());
        row.risk_signs = Set(StringList(fields.risk_signs.clone()));
        row.needs = Set(StringList(fields.needs.clone()));
        row.notes = Set(fields.notes.clone());
        row.submitted_at = Set(Some(now));
        let record = row.update(txn).await?;
        let followup = if report::needs_followup(&fields.risk_signs) {
            Some(
                create_followup(
                    txn,
                    &task,
                    Followup::counsellor(&task, &fields.risk_signs),
                    now,
                    self.0.tz,
                )
                .await?,
            )
        } else {
            None
        };
        let health = health_followup(
            &self.0,
            txn,
            &task,
            (fields.bp_systolic, fields.bp_diastolic),
            now,
        )
        .await?;
        let wishes = create_wishes(txn, task.family_id, ctx.user_id, &fields.needs, now).await?;
        // The family can confirm now; risk signs reach the coordinators.
        notify::produce::reported(txn, self.0.tz, &task, &fields.risk_signs, now).await?;
        let mut view = VisitReport::of(status::REPORTED, record);
        view.followup_visit_id = followup;
        view.health_followup_visit_id = health;
        view.wishes_created = wishes;
        Ok(view)
    }

    async fn correct_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
        change: &ReportChange,
    ) -> ApiResult<VisitReport> {
        let now = Utc::now();
        let scope = ctx.manager_scope()?;
        let task = lock_visit(txn, id).await?;
        if !family_in_scope(txn, &scope, task.family_id).await? {
            return Err(ApiError::NotFound("走访"));
        }
        report::may_correct(&task.status)?;
        let record = record_of(txn, task.id).await?;
        let before = fields_of(&record);
        let after = change.apply(&before)?;
        let changes = report::diff(&before, &after);
        if changes.is_empty() {
            return Ok(VisitReport::of(&task.status, record));
        }
        let mut row: visit_record::ActiveModel = record.into();
        row.services = Set(StringList(after.services.clone()));
        row.cash_fen = Set(after.cash_fen);
        row.goods = Set(after.goods.clone());
        row.bp_systolic = Set(after.bp_systolic);
        row.bp_diastolic = Set(after.bp_diastolic);
        row.mood = Set(after.mood.clone());
        row.risk_signs = Set(StringList(after.risk_signs.clone()));
        row.needs = Set(StringList(after.needs.clone()));
        row.notes = Set(after.notes.clone());
        let record = row.update(txn).await?;
        // What the correction adds follows as a report would: a risk sign calls the
        // counsellor (once per visit), a new need becomes a wish. Removing either leaves
        // the follow-up and the wish to the coordinators who handle them.
        let followup = if report::needs_followup(&after.risk_signs)
            && !report::needs_followup(&before.risk_signs)
        {
            Some(
                create_followup(
                    txn,
                    &task,
                    Followup::counsellor(&task, &after.risk_signs),
                    now,
                    self.0.tz,
                )
                .await?,
            )
        } else {
            None
        };
        let new_needs: Vec<String> = after
            .needs
            .iter()
            .filter(|n| !before.needs.contains(n))
            .cloned()
            .collect();
        let wishes = create_wishes(txn, task.family_id, ctx.user_id, &new_needs, now).await?;
        // A corrected blood pressure beyond the thresholds calls the health worker (once
        // per visit).
        let health = if (after.bp_systolic, after.bp_diastolic)
            != (before.bp_systolic, before.bp_diastolic)
        {
            health_followup(
                &self.0,
                txn,
                &task,
                (after.bp_systolic, after.bp_diastolic),
                now,
            )
            .await?
        } else {
            None
        };
        if after
            .risk_signs
            .iter()
            .any(|r| !before.risk_signs.contains(r))
        {
            notify::produce::reported(txn, self.0.tz, &task, &after.risk_signs, now).await?;
        }
        audit::record(
            txn,
            Some(ctx.user_id),
            "correct_report",
            "visit_task",
            Some(task.id),
            json!({
                "changes": changes,
                "reason": change.reason.as_deref().map(str::trim),
            }),
        )
        .await?;
        let mut view = VisitReport::of(&task.status, record);
        view.followup_visit_id = followup;
        view.health_followup_visit_id = health;
        view.wishes_created = wishes;
        Ok(view)
    }

    async fn code_confirm_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
        code: &str,
        wrong: &mut Option<Uuid>,
    ) -> ApiResult<VisitConfirmed> {
        let now = Utc::now();
        let task = held_visit(txn, ctx, id).await?;
        report::may_confirm(&task.status)?;
        require_code(txn, task.id, code, now, wrong).await?;
        confirm(&self.0, txn, &task, CONFIRMED_BY_CODE, None, None, now).await
    }

    async fn family_confirm_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
        body: FamilyConfirm,
    ) -> ApiResult<VisitConfirmed> {
        let now = Utc::now();
        let task = family_visit(txn, ctx, id).await?;
        confirm(
            &self.0,
            txn,
            &task,
            CONFIRMED_BY_FAMILY,
            body.rating,
            body.comment,
            now,
        )
        .await
    }

    async fn code_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
    ) -> ApiResult<VisitCode> {
        let now = Utc::now();
        let task = family_visit(txn, ctx, id).await?;
        if !matches!(
            task.status.as_str(),
            status::OPEN | status::CLAIMED | status::IN_PROGRESS | status::REPORTED
        ) {
            return Err(ApiError::state(
                "no_code_needed",
                task.status,
                "该走访无需验证码",
            ));
        }
        // The code on the screen is the one that works: earlier ones are retired.
        visit_code::Entity::update_many()
            .col_expr(visit_code::Column::UsedAt, Expr::value(now))
            .filter(visit_code::Column::TaskId.eq(task.id))
            .filter(visit_code::Column::UsedAt.is_null())
            .exec(txn)
            .await?;
        let code = report::new_code();
        let expires_at = now + Duration::minutes(report::CODE_MINUTES);
        visit_code::ActiveModel {
            id: Set(Uuid::now_v7()),
            task_id: Set(task.id),
            code_hash: Set(report::code_hash(task.id, &code)),
            issued_to: Set(ctx.user_id),
            expires_at: Set(expires_at),
            used_at: Set(None),
            attempts: Set(0),
            created_at: Set(now),
        }
        .insert(txn)
        .await?;
        Ok(VisitCode { code, expires_at })
    }

    async fn change_plans_step(
        &self,
        txn: &DatabaseTransaction,
        ctx: &Ctx,
        id: Uuid,
        kind: &'static str,
        reason: &str,
        dates: Option<&[NaiveDate]>,
    ) -> ApiResult<VisitChangeRequested> {
        let state = &self.0;
        let now = Utc::now();
        let task = family_visit(txn, ctx, id).await?;
        report::may_change_plans(&task.status, now, task.window_end)?;
        if let Some(dates) = dates {
            let today = state.today();
            for (i, d) in dates.iter().enumerate() {
                if *d < today {
                    return Err(ApiError::field(
                        format!("preferred_dates[{i}]"),
                        "希望的日期不能早于今天",
                    ));
                }
            }
        }
        let asked = visit_request::Entity::find()
            .filter(visit_request::Column::TaskId.eq(task.id))
            .filter(visit_request::Column::Kind.eq(kind))
            .one(txn)
            .await?;
        // A request answered by a coordinator moving the visit is done with: the family
        // may ask again about the new time (the request is then replaced).
        let answered =
            |r: &visit_request::Model| task.rescheduled_at.is_some_and(|m| r.created_at <= m);
        if asked.as_ref().is_some_and(|r| !answered(r)) {
            return Err(ApiError::state(
                "already_requested",
                task.status,
                "已经提交过该请求，工作人员会尽快联系您",
            ));
        }
        let reason = reason.trim().to_string();
        let mut dates: Vec<NaiveDate> = dates.map(<[NaiveDate]>::to_vec).unwrap_or_default();
        dates.sort();
        dates.dedup();
        let request = visit_request::ActiveModel {
            id: Set(asked.as_ref().map_or_else(Uuid::now_v7, |r| r.id)),
            task_id: Set(task.id),
            family_id: Set(task.family_id),
            requested_by: Set(ctx.user_id),
            kind: Set(kind.into()),
            reason: Set(reason.clone()),
            preferred_dates: Set((kind == visit_request::MOVE)
                .then(|| StringList(dates.iter().map(NaiveDate::to_string).collect()))),
            created_at: Set(now),
        };
        match asked {
            Some(_) => request.update(txn).await?,
            None => request.insert(txn).await?,
        };
        let (template, status_reason) = if kind == visit_request::DECLINE {
            (
                TEMPLATE_VISIT_DECLINED,
                format!("家庭婉拒本次走访：{reason}"),
            )
        } else {
            let days: Vec<String> = dates
                .iter()
                .map(|d| d.format("%-m月%-d日").to_string())
                .collect();
            let wished = if days.is_empty() {
                String::new()
            } else {
                format!("（希望：{}）", days.join("、"))
            };
            (
                TEMPLATE_VISIT_MOVE_REQUESTED,
                format!("{MOVE_REQUESTED_FLAG}：{reason}{wished}"),
            )
        };
        visit_task::Entity::update_many()
            .col_expr(visit_task::Column::NeedsAttention, Expr::value(true))
            .col_expr(visit_task::Column::StatusReason, Expr::value(status_reason))
            .col_expr(visit_task::Column::UpdatedAt, Expr::value(now))
            .filter(visit_task::Column::Id.eq(task.id))
            .exec(txn)
            .await?;
        // Each holder hears of it; the message names no family (it may show on a locked
        // screen) and not the reason, which the coordinator reads in the visit.
        let holders = holders_of(txn, &task).await?;
        let date = task.window_start.with_timezone(&state.tz).date_naive();
        let messages: Vec<notification::ActiveModel> = holders
            .iter()
            .map(|user| {
                notification::ActiveModel::pending(
                    *user,
                    template,
                    json!({"task_id": task.id, "date": date.to_string()}),
                    format!("{template}:{}:{user}", task.id),
                    now,
                    now,
                )
            })
            .collect();
        let mut notified = 0;
        if !messages.is_empty() {
            notified = notification::Entity::insert_many(messages)
                .on_conflict(
                    OnConflict::column(notification::Column::DedupeKey)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        Ok(VisitChangeRequested {
            visit_id: task.id,
            kind: kind.into(),
            status: task.status,
            needs_attention: true,
            holders_notified: notified as u32,
        })
    }

    async fn hours_entries(&self, user: Uuid) -> ApiResult<Vec<report::HoursEntry>> {
        let rows = service_hours::Entity::find()
            .filter(service_hours::Column::VolunteerId.eq(user))
            .order_by_asc(service_hours::Column::CreatedAt)
            .order_by_asc(service_hours::Column::Id)
            .all(&self.0.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| report::HoursEntry {
                at: r.created_at,
                minutes: r.minutes,
                kind: r.kind,
                note: r.note,
            })
            .collect())
    }
}

/// A family's answer given outside the app (a reply to an SMS), for a visit of its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyAnswer {
    /// The reported visit happened.
    Confirm,
    /// Not this visit.
    Decline,
    /// Another day, please (no days named: a coordinator calls).
    Move,
}

/// Does what the app's buttons do for `user`, a member of the visit's family: the same
/// steps, checks and messages. Returns the visit's status afterwards.
pub(crate) async fn family_answer(
    state: &Arc<AppState>,
    user: Uuid,
    visit: Uuid,
    answer: FamilyAnswer,
    reason: &str,
) -> ApiResult<String> {
    let api = Api(state.clone());
    let ctx = Ctx {
        user_id: user,
        grants: Vec::new(),
    };
    let txn = begin(&state.db).await?;
    let out = match answer {
        FamilyAnswer::Confirm => api
            .family_confirm_step(&txn, &ctx, visit, FamilyConfirm::default())
            .await
            .map(|c| c.status),
        FamilyAnswer::Decline => api
            .change_plans_step(&txn, &ctx, visit, visit_request::DECLINE, reason, None)
            .await
            .map(|c| c.status),
        FamilyAnswer::Move => api
            .change_plans_step(
                &txn,
                &ctx,
                visit,
                visit_request::MOVE,
                reason,
                Some(&[][..]),
            )
            .await
            .map(|c| c.status),
    };
    finish(txn, out).await
}

/// The visitors of some visits, for the family: surnames and teams.
async fn visitors(
    db: &impl ConnectionTrait,
    tasks: &[visit_task::Model],
) -> Result<HashMap<Uuid, Vec<Visitor>>, DbErr> {
    let claims: Vec<(Uuid, Uuid)> = task_claim::Entity::find()
        .select_only()
        .columns([task_claim::Column::TaskId, task_claim::Column::VolunteerId])
        .filter(task_claim::Column::TaskId.is_in(tasks.iter().map(|t| t.id)))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .order_by_asc(task_claim::Column::ClaimedAt)
        .into_tuple()
        .all(db)
        .await?;
    let mut people: Vec<Uuid> = claims.iter().map(|c| c.1).collect();
    people.extend(tasks.iter().filter_map(|t| t.assigned_cadre_id));
    people.sort();
    people.dedup();
    let names: HashMap<Uuid, String> = app_user::Entity::find()
        .select_only()
        .columns([app_user::Column::Id, app_user::Column::Name])
        .filter(app_user::Column::Id.is_in(people.iter().copied()))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let teams_of: Vec<(Uuid, Option<Uuid>)> = volunteer::Entity::find()
        .select_only()
        .columns([volunteer::Column::UserId, volunteer::Column::TeamId])
        .filter(volunteer::Column::UserId.is_in(people.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    let team_names: HashMap<Uuid, String> = team::Entity::find()
        .select_only()
        .columns([team::Column::Id, team::Column::Name])
        .filter(team::Column::Id.is_in(teams_of.iter().filter_map(|t| t.1)))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let team_of: HashMap<Uuid, String> = teams_of
        .into_iter()
        .filter_map(|(u, t)| t.and_then(|t| team_names.get(&t)).map(|n| (u, n.clone())))
        .collect();
    let person = |id: Uuid, role: &str| Visitor {
        name: report::surname_only(names.get(&id).map(String::as_str).unwrap_or_default()),
        role: role.into(),
        team: team_of.get(&id).cloned(),
    };
    let mut out: HashMap<Uuid, Vec<Visitor>> = HashMap::new();
    for t in tasks {
        if let Some(c) = t.assigned_cadre_id {
            out.entry(t.id).or_default().push(person(c, "cadre"));
        }
    }
    for (task, user) in claims {
        out.entry(task).or_default().push(person(user, "volunteer"));
    }
    Ok(out)
}

#[OpenApi(tag = "Tag::Reports")]
impl Api {
    /// Check in at the family's door: with the phone's position (within the configured
    /// radius of the family's home), or with the one-time code the family shows; a
    /// phone-call visit needs neither. The visit must be fully claimed (or pre-assigned
    /// to me as the family's cadre) and its window open, or opening within two hours. The
    /// first check-in starts the visit (`in_progress`); a second holder joins it. Sending
    /// the same check-in again answers the first.
    #[oai(path = "/visits/:id/checkin", method = "post")]
    async fn checkin(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Input<CheckinRequest>,
    ) -> ApiResult<Json<VisitCheckin>> {
        let txn = begin(&self.0.db).await?;
        let mut wrong = None;
        let out = self
            .checkin_step(&txn, &auth.0, id.0, &body.0, &mut wrong)
            .await;
        let out = finish(txn, out).await;
        count_wrong_try(&self.0.db, wrong).await?;
        let out = out?;
        crate::api::visits::feed_sees(&self.0, &[id.0], &[auth.0.user_id]).await;
        Ok(Json(out))
    }

    /// Check out when leaving; the duration is check-out minus check-in. Sending it again
    /// answers the first.
    #[oai(path = "/visits/:id/checkout", method = "post")]
    async fn checkout(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<VisitCheckin>> {
        let txn = begin(&self.0.db).await?;
        let out = self.checkout_step(&txn, &auth.0, id.0).await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Report the visit, once, after checking in: services, 慰问金 and goods, blood
    /// pressure, the family's mood, risk signs and needs found. Low mood for weeks or
    /// thoughts of suicide create a counsellor's follow-up visit within seven days,
    /// flagged for coordinators; each need becomes a wish on the wish wall.
    #[oai(path = "/visits/:id/report", method = "post")]
    async fn report(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Input<ReportInput>,
    ) -> ApiResult<Json<VisitReport>> {
        let fields = body.0.fields()?;
        let txn = begin(&self.0.db).await?;
        let out = self
            .report_step(&txn, &auth.0, id.0, fields, body.0.bp_member_id)
            .await;
        let report = finish(txn, out).await?;
        crate::api::visits::feed_sees(&self.0, &[id.0], &[auth.0.user_id]).await;
        // A family's first visit done changes its plan (a bereaved family's first visit
        // needs two volunteers; the later ones one).
        if let Some(task) = visit_task::Entity::find_by_id(id.0).one(&self.0.db).await? {
            crate::jobs::replan(&self.0, task.family_id).await;
        }
        Ok(Json(report))
    }

    /// Correct a submitted report (coordinators, in their region). Only the fields given
    /// change; the audit log keeps each change with its value before and after.
    #[oai(path = "/visits/:id/report", method = "patch")]
    async fn correct(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<ReportChange>,
    ) -> ApiResult<Json<VisitReport>> {
        let txn = begin(&self.0.db).await?;
        let out = self.correct_step(&txn, &auth.0, id.0, &body.0).await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Confirm the visit for the family with the one-time code the family reads out (for
    /// parents who do not use the app). Credits the service hours like the family's own
    /// confirmation.
    #[oai(path = "/visits/:id/confirm", method = "post")]
    async fn confirm_with_code(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Input<CodeRequest>,
    ) -> ApiResult<Json<VisitConfirmed>> {
        let txn = begin(&self.0.db).await?;
        let mut wrong = None;
        let out = self
            .code_confirm_step(&txn, &auth.0, id.0, &body.0.code, &mut wrong)
            .await;
        let out = finish(txn, out).await;
        count_wrong_try(&self.0.db, wrong).await?;
        Ok(Json(out?))
    }

    /// My family's visits: upcoming ones with who is coming (surname and team only) and
    /// when, and reported ones waiting for my confirmation. Soonest first.
    #[oai(path = "/family/visits", method = "get")]
    async fn family_visits(
        &self,
        auth: Auth,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<FamilyVisit>>> {
        let db = &self.0.db;
        let families = member_families(db, auth.0.user_id).await?;
        let paging = Paging::new(page.0, per_page.0)?;
        let now = Utc::now();
        use visit_task::Column as T;
        let select = visit_task::Entity::find()
            .filter(T::FamilyId.is_in(families))
            .filter(crate::visits::care_visits())
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(T::Status.is_in([
                                status::OPEN,
                                status::CLAIMED,
                                status::IN_PROGRESS,
                            ]))
                            .add(T::WindowEnd.gt(now)),
                    )
                    .add(T::Status.eq(status::REPORTED)),
            )
            .order_by_asc(T::WindowStart)
            .order_by_asc(T::Id);
        let (tasks, total) = paging.fetch(db, select).await?;
        let mut people = visitors(db, &tasks).await?;
        let requests: Vec<(Uuid, String)> = visit_request::Entity::find()
            .select_only()
            .columns([visit_request::Column::TaskId, visit_request::Column::Kind])
            .filter(visit_request::Column::TaskId.is_in(tasks.iter().map(|t| t.id)))
            .order_by_asc(visit_request::Column::CreatedAt)
            .into_tuple()
            .all(db)
            .await?;
        let items = tasks
            .into_iter()
            .map(|t| FamilyVisit {
                kind_label: if t.gentle {
                    "关怀走访"
                } else {
                    report::kind_label(&t.kind)
                }
                .into(),
                visitors: people.remove(&t.id).unwrap_or_default(),
                can_confirm: t.status == status::REPORTED,
                requests: requests
                    .iter()
                    .filter(|r| r.0 == t.id)
                    .map(|r| r.1.clone())
                    .collect(),
                id: t.id,
                kind: t.kind,
                channel: t.channel,
                window_start: t.window_start,
                window_end: t.window_end,
                planned_date: t.planned_date,
                status: t.status,
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// A one-time code for the volunteer at my door: six digits, good for 30 minutes and
    /// one use (check-in or confirmation). Asking again replaces the previous code.
    #[oai(path = "/family/visits/:id/code", method = "get")]
    async fn family_code(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<VisitCode>> {
        let txn = begin(&self.0.db).await?;
        let out = self.code_step(&txn, &auth.0, id.0).await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Confirm that a reported visit happened (入户随访须经随访对象签名确认), with an
    /// optional rating (1–5) and comment. The volunteers who checked in are credited their
    /// service hours, once.
    #[oai(path = "/family/visits/:id/confirm", method = "post")]
    async fn family_confirm(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Input<FamilyConfirm>,
    ) -> ApiResult<Json<VisitConfirmed>> {
        let txn = begin(&self.0.db).await?;
        let out = self.family_confirm_step(&txn, &auth.0, id.0, body.0).await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Decline a visit before it happens. Recorded; the visit is flagged for a
    /// coordinator and each holder gets a message.
    #[oai(path = "/family/visits/:id/decline", method = "post")]
    async fn family_decline(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Input<DeclineRequest>,
    ) -> ApiResult<Json<VisitChangeRequested>> {
        let txn = begin(&self.0.db).await?;
        let out = self
            .change_plans_step(
                &txn,
                &auth.0,
                id.0,
                visit_request::DECLINE,
                &body.0.reason,
                None,
            )
            .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Ask to move a visit to another day, before it happens, with the days that would
    /// suit. Recorded; the visit is flagged for a coordinator and each holder gets a
    /// message.
    #[oai(path = "/family/visits/:id/move", method = "post")]
    async fn family_move(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Input<MoveRequest>,
    ) -> ApiResult<Json<VisitChangeRequested>> {
        let txn = begin(&self.0.db).await?;
        let out = self
            .change_plans_step(
                &txn,
                &auth.0,
                id.0,
                visit_request::MOVE,
                &body.0.reason,
                Some(&body.0.preferred_dates),
            )
            .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// My service hours (志愿时长): credited when families confirm visits; totals by
    /// month and by kind of visit.
    #[oai(path = "/me/hours", method = "get")]
    async fn my_hours(&self, auth: Auth) -> ApiResult<Json<ServiceHours>> {
        let entries = self.hours_entries(auth.0.user_id).await?;
        let t = report::totals(&entries, self.0.tz);
        Ok(Json(ServiceHours {
            total_minutes: t.minutes,
            total_hours: report::hours(t.minutes),
            visits: t.entries,
            by_month: t
                .by_month
                .into_iter()
                .map(|(month, minutes, visits)| MonthHours {
                    month,
                    minutes,
                    hours: report::hours(minutes),
                    visits,
                })
                .collect(),
            by_kind: t
                .by_kind
                .into_iter()
                .map(|(kind, minutes, visits)| KindHours {
                    label: report::kind_label(&kind).into(),
                    kind,
                    minutes,
                    hours: report::hours(minutes),
                    visits,
                })
                .collect(),
        }))
    }

    /// My service record as a CSV file to download (Chinese headers; one row per visit
    /// credited, and the total).
    #[oai(path = "/me/hours/summary", method = "get")]
    async fn my_hours_csv(&self, auth: Auth) -> ApiResult<HoursCsv> {
        let entries = self.hours_entries(auth.0.user_id).await?;
        let name: Option<String> = app_user::Entity::find_by_id(auth.0.user_id)
            .select_only()
            .column(app_user::Column::Name)
            .into_tuple()
            .one(&self.0.db)
            .await?;
        let bytes = report::hours_csv(name.as_deref().unwrap_or_default(), &entries, self.0.tz);
        Ok(HoursCsv::Ok(
            Binary(bytes),
            "attachment; filename=\"service-hours.csv\"; filename*=UTF-8''%E5%BF%97%E6%84%BF%E6%97%B6%E9%95%BF.csv".into(),
        ))
    }
}

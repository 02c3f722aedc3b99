//! The coordinator's view of visit planning: a family's coming visits as the planner sees
//! them (nothing written), planning runs of a region started by hand, and the run ledger.
//!
//! A run of a region is kept in the job-run ledger as job [`REGION_JOB`], period
//! `<region id>@<local date>T<HH:MM>`: a second click within the same minute finds the
//! same row and gets the same run back. (Not job "plan": the nightly job's catch-up reads
//! its latest period by string order.)

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{Skill, job_run, region};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use scheduler::{
    generate::{generate, preview},
    jobs::{Begin, RunOptions, RunTicket, begin_run, finish_run},
    plan::{Gender, PlannedVisit, Skipped, VisitKind},
    rules::{Channel, TimeOfDay},
};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Tag, families, in_scope, regions};
use crate::{
    app::AppState,
    audit,
    auth::{Manager, Scope},
    error::{ApiError, ApiResult},
    input::{Input, Validate},
};

pub struct Api(pub Arc<AppState>);

/// The ledger's job name of a planning run of one region started by a coordinator.
pub const REGION_JOB: &str = "plan-region";
/// The deployment-wide scheduled jobs, which every coordinator may see in the history.
const SCHEDULED_JOBS: [&str; 2] = ["plan", "missed"];
/// A "running" region run older than this was left by a process that died.
const STALE_AFTER: Duration = Duration::from_secs(3600);
/// `job_run.period` up to the '@': the region id (36 characters).
const PERIOD_REGION: &str = r#"substr("period", 1, 36)"#;

/// Months of a family's plan shown by default, and at most.
const DEFAULT_MONTHS: u32 = 12;
const MAX_MONTHS: u32 = 24;
/// Runs in the history by default, and at most.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

/// This instance, as the holder of the runs it starts.
fn holder() -> &'static str {
    static HOLDER: OnceLock<String> = OnceLock::new();
    HOLDER.get_or_init(scheduler::lease::holder_id)
}

/// What a visit is for.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum PlanVisitKind {
    /// 例行走访或电话问候
    Checkin,
    /// 家庭成员生日
    Birthday,
    /// 节日慰问
    Festival,
    /// 已故子女的生日（关怀日）
    ChildBirthday,
    /// 子女忌日（关怀日）
    DeathAnniversary,
    /// 清明关怀
    Qingming,
}

impl From<VisitKind> for PlanVisitKind {
    fn from(k: VisitKind) -> Self {
        match k {
            VisitKind::Checkin => Self::Checkin,
            VisitKind::MemberBirthday => Self::Birthday,
            VisitKind::Festival(_) => Self::Festival,
            VisitKind::ChildBirthday => Self::ChildBirthday,
            VisitKind::DeathAnniversary => Self::DeathAnniversary,
            VisitKind::Qingming => Self::Qingming,
        }
    }
}

/// How the contact is made.
#[derive(Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PlanChannel {
    /// 入户走访
    HomeVisit,
    /// 电话问候
    PhoneCall,
}

impl From<Channel> for PlanChannel {
    fn from(c: Channel) -> Self {
        match c {
            Channel::HomeVisit => Self::HomeVisit,
            Channel::PhoneCall => Self::PhoneCall,
        }
    }
}

/// Part of the day the family prefers.
#[derive(Enum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PlanTimeOfDay {
    Morning,
    Afternoon,
    Evening,
}

impl From<TimeOfDay> for PlanTimeOfDay {
    fn from(t: TimeOfDay) -> Self {
        match t {
            TimeOfDay::Morning => Self::Morning,
            TimeOfDay::Afternoon => Self::Afternoon,
            TimeOfDay::Evening => Self::Evening,
        }
    }
}

/// The visitor the family would rather see.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum PlanVisitorGender {
    Male,
    Female,
}

impl From<Gender> for PlanVisitorGender {
    fn from(g: Gender) -> Self {
        match g {
            Gender::Male => Self::Male,
            Gender::Female => Self::Female,
        }
    }
}

/// One visit the planner would publish, as its task would be written.
#[derive(Object)]
pub struct PlannedVisitView {
    /// The task's idempotency key (`visit_task.unique_key`).
    pub key: String,
    /// The suggested local day inside the window.
    pub date: NaiveDate,
    /// The window, from local midnight of its first day...
    pub window_start: DateTime<Utc>,
    /// ...to local midnight after its last day (exclusive).
    pub window_end: DateTime<Utc>,
    /// What the visit is for, earliest occasion first (a merged visit has several).
    pub kinds: Vec<PlanVisitKind>,
    /// Why, in plain Chinese, one per occasion ("母亲 钱秀英 农历生日", "中秋节慰问").
    pub reasons: Vec<String>,
    pub channel: PlanChannel,
    /// A grief day: quiet, no gifts or greetings.
    pub gentle: bool,
    /// The first visit to a bereaved family (two volunteers).
    pub first_visit: bool,
    pub volunteers_needed: u32,
    pub required_skills: Vec<Skill>,
    /// Pre-assigned to the family's 一帮一 cadre instead of offered to volunteers.
    pub assign_to_cadre: bool,
    pub preferred_time: Option<PlanTimeOfDay>,
    pub visitor_gender: Option<PlanVisitorGender>,
}

impl From<PlannedVisit> for PlannedVisitView {
    fn from(v: PlannedVisit) -> Self {
        Self {
            key: v.unique_key,
            date: v.date,
            window_start: v.window_start,
            window_end: v.window_end,
            kinds: v.kinds.into_iter().map(PlanVisitKind::from).collect(),
            reasons: v.reasons,
            channel: v.channel.into(),
            gentle: v.gentle,
            first_visit: v.first_visit,
            volunteers_needed: u32::from(v.volunteers_needed),
            required_skills: v.required_skills,
            assign_to_cadre: v.assign_to_cadre,
            preferred_time: v.preferred_time.map(PlanTimeOfDay::from),
            visitor_gender: v.preferred_visitor_gender.map(PlanVisitorGender::from),
        }
    }
}

/// An occasion (or the whole family, or a rule) that gets no visit, and why.
#[derive(Object)]
pub struct SkippedView {
    /// The occasion's date (the first day of the plan for the family or a rule).
    pub date: NaiveDate,
    /// The occasion's key; the family id, or `<family id>:<rule>`.
    pub key: String,
    /// Why, in Chinese ("家庭已暂停", "窗口内没有可走访的日子").
    pub reason: String,
}

impl From<Skipped> for SkippedView {
    fn from(s: Skipped) -> Self {
        Self {
            date: s.date,
            key: s.key,
            reason: s.reason,
        }
    }
}

/// A family's coming visits, computed now and not written.
#[derive(Object)]
pub struct FamilyPlan {
    pub family_id: Uuid,
    /// The first day planned (today, local).
    pub from: NaiveDate,
    pub months: u32,
    /// By suggested date.
    pub visits: Vec<PlannedVisitView>,
    /// By date.
    pub skipped: Vec<SkippedView>,
}

#[derive(Object, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    /// The region whose families (the whole subtree) are planned; default: my own region.
    pub region_id: Option<Uuid>,
}

impl Validate for NewRun {}

/// A region a run is for.
#[derive(Object)]
pub struct RunRegion {
    pub id: Uuid,
    /// None when the region no longer exists.
    pub name: Option<String>,
}

/// One run in the ledger. The counts are those of the finished run (null before).
#[derive(Object)]
pub struct RunView {
    pub id: Uuid,
    /// `plan` (nightly, every family), `missed` (hourly), `plan-region` (started by hand).
    pub job: String,
    /// The region of a `plan-region` run; null for the deployment-wide jobs.
    pub region: Option<RunRegion>,
    /// What the run is for: "2026-11-24" (nightly), "2026-11-24T03" (hourly),
    /// "<region id>@2026-11-24T03:15" (by hand, the minute it was started).
    pub period: String,
    /// running, done, failed
    pub status: String,
    /// The instance that ran it.
    pub holder: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// Families planned.
    pub families: Option<u64>,
    /// Visits created.
    pub created: Option<u64>,
    /// Planned visits that already had their task.
    pub unchanged: Option<u64>,
    /// Visits rewritten (a changed window or cadre, reopened, unflagged).
    pub updated: Option<u64>,
    /// Open visits cancelled because the plan no longer has them.
    pub cancelled: Option<u64>,
    /// Claimed visits the plan no longer has, flagged for a coordinator.
    pub flagged: Option<u64>,
    /// Occasions the plan skipped, with a reason.
    pub skipped: Option<u64>,
    /// Visits marked missed (the hourly job).
    pub missed: Option<u64>,
    /// Visits cancelled because their occasion joined a merged visit.
    pub merged: Option<u64>,
    /// Data problems that did not stop the run.
    pub error_count: Option<u64>,
    /// The first of those problems ("family <id>: …").
    pub errors: Vec<String>,
    /// Why the run failed.
    pub error: Option<String>,
}

/// The ledger, newest first.
#[derive(Object)]
pub struct RunHistory {
    pub items: Vec<RunView>,
}

#[derive(ApiResponse)]
pub enum RunStarted {
    /// The run: started now, or the one started by the same request a moment ago (same
    /// region, same minute), in whatever state it is. Poll the history for its end.
    #[oai(status = 202)]
    Accepted(Json<RunView>),
}

/// The region id of a `plan-region` period.
fn region_of(job: &str, period: &str) -> Option<Uuid> {
    if job != REGION_JOB {
        return None;
    }
    period
        .split_once('@')
        .and_then(|(id, _)| Uuid::parse_str(id).ok())
}

fn view(row: job_run::Model, names: &HashMap<Uuid, String>) -> RunView {
    let stats = row.stats.as_ref();
    let count = |key: &str| stats.map(|s| s.get(key).and_then(Value::as_u64).unwrap_or(0));
    let errors = stats
        .and_then(|s| s.get("errors"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    RunView {
        region: region_of(&row.job, &row.period).map(|id| RunRegion {
            id,
            name: names.get(&id).cloned(),
        }),
        duration_ms: row
            .finished_at
            .map(|f| (f - row.started_at).num_milliseconds()),
        families: count("families"),
        created: count("created"),
        unchanged: count("unchanged"),
        updated: count("updated"),
        cancelled: count("cancelled"),
        flagged: count("flagged"),
        skipped: count("skipped"),
        missed: count("missed"),
        merged: count("merged"),
        error_count: count("error_count"),
        errors,
        id: row.id,
        job: row.job,
        period: row.period,
        status: row.status,
        holder: row.holder,
        started_at: row.started_at,
        finished_at: row.finished_at,
        error: row.error,
    }
}

/// The names of the regions of `rows`' region runs.
async fn region_names(
    db: &DatabaseConnection,
    rows: &[job_run::Model],
) -> ApiResult<HashMap<Uuid, String>> {
    let ids: Vec<Uuid> = rows
        .iter()
        .filter_map(|r| region_of(&r.job, &r.period))
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(region::Entity::find()
        .filter(region::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect())
}

/// The ids (as in the ledger's periods) of the regions in `scope` that have region runs.
async fn run_regions_in_scope(db: &DatabaseConnection, scope: &Scope) -> ApiResult<Vec<String>> {
    let prefixes: Vec<String> = job_run::Entity::find()
        .select_only()
        .column_as(Expr::cust(PERIOD_REGION), "region")
        .filter(job_run::Column::Job.eq(REGION_JOB))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let ids: Vec<Uuid> = prefixes
        .iter()
        .filter_map(|p| Uuid::parse_str(p).ok())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut visible = Vec::new();
    for chunk in ids.chunks(1000) {
        let rows = region::Entity::find()
            .filter(region::Column::Id.is_in(chunk.to_vec()))
            .filter(in_scope(scope, region::Column::Id))
            .all(db)
            .await?;
        visible.extend(rows.into_iter().map(|r| r.id.to_string()));
    }
    Ok(visible)
}

fn ticket_row(t: &RunTicket) -> job_run::Model {
    job_run::Model {
        id: t.id,
        job: t.job.clone(),
        period: t.period.clone(),
        status: "running".into(),
        holder: t.holder.clone(),
        started_at: t.started_at,
        finished_at: None,
        stats: None,
        error: None,
    }
}

#[OpenApi(tag = "Tag::Planning")]
impl Api {
    /// A family's visits of the coming months, exactly as the nightly planning would
    /// publish them (reasons, windows, who is needed), and the occasions it skips with
    /// the reason. Nothing is written. Reading it is audited like the family's record.
    #[oai(path = "/families/:id/plan", method = "get")]
    async fn family_plan(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        /// How many months from today: 1 to 24, default 12.
        months: Query<Option<u32>>,
    ) -> ApiResult<Json<FamilyPlan>> {
        let months = months.0.unwrap_or(DEFAULT_MONTHS);
        if !(1..=MAX_MONTHS).contains(&months) {
            return Err(ApiError::field(
                "months",
                format!("months 应在 1 到 {MAX_MONTHS} 之间"),
            ));
        }
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let f = families::find_in_scope(&state.db, &scope, id.0).await?;
        let from = state.today();
        let plan = preview(&state.db, f.id, months, &state.plan_options(from))
            .await
            .map_err(|e| match e {
                DbErr::RecordNotFound(_) => ApiError::NotFound("家庭"),
                other => other.into(),
            })?;
        audit::record(
            &state.db,
            Some(auth.0.user_id),
            "read_family",
            "family",
            Some(f.id),
            json!({"view": "plan", "months": months}),
        )
        .await?;
        Ok(Json(FamilyPlan {
            family_id: f.id,
            from,
            months,
            visits: plan
                .visits
                .into_iter()
                .map(PlannedVisitView::from)
                .collect(),
            skipped: plan.skipped.into_iter().map(SkippedView::from).collect(),
        }))
    }

    /// Plan the visits of a region's families now (the whole subtree: a township's
    /// villages), instead of waiting for the night. The run goes on in the background;
    /// its figures appear in the history when it ends. A second request within the same
    /// minute gets the same run; while a run of the region is going, another is refused
    /// (409).
    #[oai(path = "/planning/runs", method = "post")]
    async fn start_run(&self, auth: Manager, body: Input<NewRun>) -> ApiResult<RunStarted> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let db = &state.db;
        let region_id = body
            .0
            .region_id
            .or_else(|| auth.0.home_region())
            .ok_or_else(|| ApiError::field("region_id", "请选择要生成计划的地区"))?;
        let region = regions::referenced(db, &scope, "region_id", region_id).await?;
        let now = Utc::now();
        let local = now.with_timezone(&state.tz);
        let period = format!("{}@{}", region.id, local.format("%Y-%m-%dT%H:%M"));

        // Another run of this region (an earlier minute) still going?
        let stale_before = now - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
        let running = job_run::Entity::find()
            .filter(job_run::Column::Job.eq(REGION_JOB))
            .filter(Expr::cust(PERIOD_REGION).eq(region.id.to_string()))
            .filter(job_run::Column::Period.ne(period.as_str()))
            .filter(job_run::Column::Status.eq("running"))
            .filter(job_run::Column::StartedAt.gt(stale_before))
            .one(db)
            .await?;
        if running.is_some() {
            return Err(ApiError::conflict(
                "run_in_progress",
                format!("{}的走访计划正在生成中，请等它完成后再试", region.name),
            ));
        }

        let opts = RunOptions {
            stale_after: STALE_AFTER,
            retry_failed: true,
        };
        let names = HashMap::from([(region.id, region.name.clone())]);
        let ticket = match begin_run(db, REGION_JOB, &period, holder(), opts).await? {
            Begin::Started(ticket) => ticket,
            // The same request a moment ago: its run.
            Begin::Taken(Some(row)) => {
                return Ok(RunStarted::Accepted(Json(view(row, &names))));
            }
            Begin::Taken(None) => {
                return Err(ApiError::conflict(
                    "run_in_progress",
                    "该地区的走访计划正在生成中，请稍后再试",
                ));
            }
        };
        audit::record(
            db,
            Some(auth.0.user_id),
            "start_plan_run",
            "region",
            Some(region.id),
            json!({"run": ticket.id, "period": period}),
        )
        .await?;
        tracing::info!(region = %region.id, run = %ticket.id, "planning run of a region started");

        let mut plan = state.plan_options(local.date_naive());
        plan.region_path = Some(region.path.clone());
        let (db, run, feed) = (db.clone(), ticket.clone(), state.feed.clone());
        let started = chrono::Utc::now();
        tokio::spawn(async move {
            let work_db = db.clone();
            // A panic is recorded as a failure instead of leaving "running" behind.
            let result = match tokio::spawn(async move { generate(&work_db, &plan).await }).await {
                Ok(Ok(stats)) => serde_json::to_value(stats).map_err(|e| e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("planning panicked: {e}")),
            };
            if let Err(e) = &result {
                tracing::error!(run = %run.id, error = %e, "planning run of a region failed");
            }
            if let Err(e) = finish_run(&db, &run, &result).await {
                tracing::error!(run = %run.id, error = %e, "recording a planning run failed");
            }
            if let Err(e) = feed.catch_up(&db, started).await {
                tracing::warn!(error = %e, "the feed's index will see the new plan at its next refresh");
            }
        });
        Ok(RunStarted::Accepted(Json(view(
            ticket_row(&ticket),
            &names,
        ))))
    }

    /// The planning runs, newest first: the nightly planning (`plan`), the hourly marking
    /// of missed visits (`missed`), and the runs of regions in my scope started by hand
    /// (`plan-region`), with their figures.
    #[oai(path = "/planning/runs", method = "get")]
    async fn runs(
        &self,
        auth: Manager,
        /// How many: 1 to 200, default 50.
        limit: Query<Option<u64>>,
        /// Only this job: `plan`, `missed` or `plan-region`.
        job: Query<Option<String>>,
    ) -> ApiResult<Json<RunHistory>> {
        let limit = limit.0.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::field(
                "limit",
                format!("limit 应在 1 到 {MAX_LIMIT} 之间"),
            ));
        }
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let mut select = job_run::Entity::find();
        if let Some(job) = super::search_term(job.0.as_deref()) {
            select = select.filter(job_run::Column::Job.eq(job));
        }
        if let Scope::Subtrees(_) = scope {
            let mut visible = Condition::any().add(job_run::Column::Job.is_in(SCHEDULED_JOBS));
            let regions = run_regions_in_scope(db, &scope).await?;
            if !regions.is_empty() {
                visible = visible.add(
                    Condition::all()
                        .add(job_run::Column::Job.eq(REGION_JOB))
                        .add(Expr::cust(PERIOD_REGION).is_in(regions)),
                );
            }
            select = select.filter(visible);
        }
        let rows = select
            .order_by_desc(job_run::Column::StartedAt)
            .order_by_desc(job_run::Column::Id)
            .limit(limit)
            .all(db)
            .await?;
        let names = region_names(db, &rows).await?;
        Ok(Json(RunHistory {
            items: rows.into_iter().map(|r| view(r, &names)).collect(),
        }))
    }
}

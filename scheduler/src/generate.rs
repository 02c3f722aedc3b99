//! The database layer around [`plan_family`]: loads families, plans them, writes
//! `visit_task` rows. [`generate`] is the nightly job, [`mark_missed`] closes windows that
//! passed, [`preview`] shows one family's plan without writing.
//!
//! # What a run does
//!
//! Families are read in id order, `batch` at a time (keyset pagination, so memory stays
//! flat whatever the register's size). For each batch the members, current pairings and
//! the tasks whose window has not ended by `from` are loaded (a few columns each); then per
//! family:
//!
//! - **new visits**: a planned visit whose `unique_key` has no row is inserted, status
//!   `open`. A visit of a cadre rule (`assign_to_cadre`) is also `open`, but with
//!   `assigned_cadre_id` set to the family's current 一帮一 cadre: it is pre-assigned, not
//!   offered for claiming. Without a current pairing it is flagged (`needs_attention`,
//!   [`REASON_NO_CADRE`]) for a coordinator to assign. Inserts are multi-row
//!   `INSERT … ON CONFLICT (unique_key) DO NOTHING`, so runs that overlap (two instances,
//!   a retry after a crash) never duplicate a visit nor fail on one. A planned visit all of
//!   whose occasions (`components`) are already covered by a live task (for instance a
//!   claimed merged visit the plan now splits) is not inserted again;
//! - **unchanged visits** are not written at all: a re-run with nothing changed only reads;
//! - **changed visits** (same key, new window, day or cadre: a blackout date added, a new
//!   pairing) are rewritten in place while they are open and unclaimed;
//! - **visits no longer planned**: an `open`, unclaimed task whose window starts on or after
//!   `from` and whose key the plan no longer has (a birthday corrected, a rule disabled, an
//!   occasion now merged into a combined visit) is `cancelled`, with `status_reason`
//!   [`REASON_REPLANNED`] ("计划变更") or, when its occasion is now part of a merged
//!   visit, [`REASON_MERGED`] ("合并到新的走访"). A claimed one (claims, or status
//!   `claimed`) is kept and flagged `needs_attention` with the same reason: a coordinator
//!   decides. Tasks anchored outside the horizon (the plan of `[from, to]` does not hold
//!   them by design) are recognised by planning a wider range for the few families that
//!   have such candidates, so a shorter horizon never cancels anything;
//! - **paused and closed families** get no visits; all their open tasks whose window has
//!   not ended are cancelled with the plan's reason ("家庭已暂停", "家庭已销册"), claimed
//!   ones flagged. When the family becomes active again, tasks the generator cancelled
//!   (recognised by their reason) are reopened if the plan wants them again.
//!
//! A family planned successfully is stamped (`family.plan_stamp`, [`plan_stamp`]: the
//! horizon and the deployment's settings). A run with the same stamp skips it, so a second
//! run of the same day reads the families' stamps and nothing else. Whatever changes what
//! the planner reads about a family (its record, members, pairing, first visit) must
//! re-plan it ([`replan_family`]) or clear its stamp.
//!
//! All writes of a batch happen in one transaction, after its reads; guards in every
//! `UPDATE` (`status = 'open' AND claims_count = 0`…) make a claim that lands between the
//! read and the write win over the generator.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use std::time::Instant;
use tokio::task::JoinSet;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use entity::{
    BirthCalendar, FamilyCategory, FamilyStatus, MemberRelation, StringList, family, family_member,
    notification, pairing, region, visit_record, visit_task,
};

use crate::events::{TEMPLATE_VISIT_CANCELLED, TEMPLATE_VISIT_MOVED};
use sea_orm::sea_query::{ArrayType, Expr, ExprTrait, LikeExpr, Query, Value};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QueryResult, QuerySelect, SqlErr,
    Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::plan::{
    Birth, FamilyInput, Gender, MemberInput, Plan, PlannedVisit, Preferences, Skipped, VisitKind,
    plan_family,
};
use crate::rules::{
    FestivalSet, Rule, RuleOverride, TimeOfDay, default_rules_with, effective_rules,
};

/// The default horizon: visits are published at most two months ahead.
pub const DEFAULT_HORIZON_DAYS: u64 = 60;
/// The default number of families per batch (and per transaction).
pub const DEFAULT_BATCH: usize = 1000;

/// `status_reason` of a task the plan no longer has.
pub const REASON_REPLANNED: &str = "计划变更";
/// `status_reason` of a claimed task whose window or day the plan has moved.
pub const REASON_RESCHEDULED: &str = "计划变更：时间已调整";
/// A cadre's call passing a message on was not made in its days.
pub const REASON_CALL_OVERDUE: &str = "电话转告逾期未完成：请确认家庭已知悉";
/// `status_reason` of a task whose occasion is now part of a merged visit.
pub const REASON_MERGED: &str = "合并到新的走访";
/// `status_reason` of a cadre visit of a family without a current 一帮一 pairing.
pub const REASON_NO_CADRE: &str = "未配对责任干部，请指派";
/// The reasons [`plan_family`] gives for a family that gets no visits.
pub const REASON_PAUSED: &str = "家庭已暂停";
pub const REASON_CLOSED: &str = "家庭已销册";
/// Life events ([`crate::events`]): everything ahead is cancelled at once, and what the
/// family is still owed is planned afresh.
pub const REASON_DEATH: &str = "家庭成员离世，走访已重新安排";
pub const REASON_MOVED: &str = "家庭迁往其他地区，走访已重新安排";

/// The part of a `unique_key` that marks a visit made outside the plan: a counsellor's
/// follow-up created by a visit's report (`<family>:followup:<visit>`). The generator
/// neither cancels nor rewrites such visits; life events still cancel them.
pub const FOLLOWUP_KEY_MARK: &str = ":followup:";

/// Reasons written by the generator: a task cancelled or flagged with one of these may be
/// reopened or unflagged by a later run. Anything else is a person's decision and is left
/// alone.
const GENERATOR_REASONS: [&str; 8] = [
    REASON_REPLANNED,
    REASON_RESCHEDULED,
    REASON_MERGED,
    REASON_NO_CADRE,
    REASON_PAUSED,
    REASON_CLOSED,
    REASON_DEATH,
    REASON_MOVED,
];

/// Rows per INSERT: 26 columns × 1000 rows stays under SQLite's 32766 bound parameters
/// (PostgreSQL gets one JSON parameter).
const INSERT_CHUNK: usize = 1000;
/// Ids per `IN (…)` list of an UPDATE.
const UPDATE_CHUNK: usize = 10_000;
/// At most this many error messages are kept in [`RunStats::errors`].
const MAX_ERRORS: usize = 100;

use visit_task::status::{CANCELLED, CLAIMED, CONFIRMED, IN_PROGRESS, MISSED, OPEN, REPORTED};

/// What one run of [`generate`] covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// First day of the horizon (local date in `tz`), usually today.
    pub from: NaiveDate,
    /// Last day of the horizon, inclusive; [`GenerateOptions::new`] sets `from` + 60 days.
    pub to: NaiveDate,
    /// The deployment's time zone.
    pub tz: Tz,
    /// Only families whose region's materialised path starts with this (a subtree).
    pub region_path: Option<String>,
    /// Families per batch (and per transaction); at least 1.
    pub batch: usize,
    /// Stop after this many batches (a partial run; tests use it to simulate a crash).
    pub max_batches: Option<usize>,
    /// The deployment's festival visits.
    pub festivals: FestivalSet,
    /// Only this family (re-planning one family after a change).
    pub family: Option<Uuid>,
}

impl GenerateOptions {
    /// The default run starting `from`: 60 days, every region, batches of 1000.
    pub fn new(from: NaiveDate, tz: Tz) -> Self {
        GenerateOptions {
            from,
            to: from
                .checked_add_days(Days::new(DEFAULT_HORIZON_DAYS))
                .unwrap_or(from),
            tz,
            region_path: None,
            batch: DEFAULT_BATCH,
            max_batches: None,
            festivals: FestivalSet::default(),
            family: None,
        }
    }
}

/// Batches written at once on PostgreSQL. Each writer spends part of its time encoding,
/// sending and waiting for the commit, so even on two cores four of them keep the server
/// busy: 100k families took 55 s with one, 29 s with two, 17 s with four.
const PG_WRITERS: usize = 4;
/// Visits created by one run past which PostgreSQL is asked to sample the table again.
const ANALYZE_AFTER: u64 = 10_000;

/// Bumped whenever the planner's output for the same input changes, so that the next run
/// re-plans every family.
const PLANNER_VERSION: u32 = 1;

/// What a family planned by a run with `opts` is stamped with: the horizon, the time zone,
/// the festival set and the planner's version. The settings are hashed (FNV-1a, stable
/// across builds and processes).
pub fn plan_stamp(opts: &GenerateOptions) -> String {
    let settings = format!(
        "{PLANNER_VERSION}|{}|{}",
        opts.tz.name(),
        serde_json::to_string(&opts.festivals).unwrap_or_default()
    );
    let mut hash: u32 = 0x811c_9dc5;
    for b in settings.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{}..{}:{hash:08x}", opts.from, opts.to)
}

/// The figures of a run, for the job-run ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStats {
    /// Families planned.
    pub families: u64,
    /// Families skipped: already planned with this run's stamp.
    pub up_to_date: u64,
    /// Tasks inserted.
    pub created: u64,
    /// Planned visits that already had their task, untouched.
    pub unchanged: u64,
    /// Tasks rewritten: a changed window or cadre, reopened after a pause, unflagged.
    pub updated: u64,
    /// Open tasks cancelled because the plan no longer has them (including `merged`).
    pub cancelled: u64,
    /// Of `cancelled`: occasions now part of a combined visit.
    pub merged: u64,
    /// Claimed tasks the plan no longer has, flagged for a coordinator.
    pub flagged: u64,
    /// Occurrences (or families, or rules) the plan skipped, with a reason.
    pub skipped: u64,
    /// Not counted by [`generate`]: the job fills it from [`mark_missed`].
    pub missed: u64,
    /// Data problems that did not stop the run ("family <id>: …"), the first 100.
    pub errors: Vec<String>,
    /// All data problems, including those beyond the first 100.
    pub error_count: u64,
    /// Milliseconds spent reading, planning (and comparing), and writing.
    pub load_ms: u64,
    pub plan_ms: u64,
    pub write_ms: u64,
}

impl RunStats {
    fn error(&mut self, message: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(message);
        }
    }
}

/// Plans every family (of `opts.region_path`) over `[opts.from, opts.to]` and brings the
/// tasks in line with the plans; see the module docs. A database error stops the run:
/// batches already committed stay, and running again completes the work.
///
/// Batches are pipelined: while one batch is planned (on a blocking thread), the next is
/// read and earlier ones are written ([`PG_WRITERS`] transactions at a time on
/// PostgreSQL; one on SQLite, which has a single writer).
pub async fn generate(db: &DatabaseConnection, opts: &GenerateOptions) -> Result<RunStats, DbErr> {
    let started = Instant::now();
    let mut stats = RunStats::default();
    let from_midnight = local_midnight(opts.tz, opts.from);
    let shared = Arc::new(opts.clone());
    let writers = match db.get_database_backend() {
        DbBackend::Postgres => PG_WRITERS,
        _ => 1,
    };
    let mut writing: JoinSet<Result<(Applied, u64, u64), DbErr>> = JoinSet::new();
    let mut cache = RulesCache::new(opts.festivals.clone());
    if opts.family.is_none() {
        stats.up_to_date = count_up_to_date(db, opts).await?;
    }
    let mut batches = 0usize;
    let mut current = match opts.max_batches {
        Some(0) => None,
        _ => Some(fetch(db, None, opts, from_midnight).await?),
    };
    let result: Result<(), DbErr> = async {
        while let Some(mut fetched) = current.take() {
            if fetched.last.is_none() {
                break;
            }
            batches += 1;
            stats.load_ms += fetched.ms;
            for e in std::mem::take(&mut fetched.loaded.errors) {
                stats.error(e);
            }
            let more = fetched.full && opts.max_batches.is_none_or(|m| batches < m);
            let after = fetched.last;
            let next = async {
                match more {
                    true => fetch(db, after, opts, from_midnight).await.map(Some),
                    false => Ok(None),
                }
            };
            let opts = Arc::clone(&shared);
            let t = Instant::now();
            let plan = tokio::task::spawn_blocking(move || {
                let planned = plan_batch(&fetched.loaded, &mut cache, &opts, from_midnight);
                (planned, cache)
            });
            let (next, planned) = tokio::join!(next, plan);
            let (planned, back) =
                planned.map_err(|e| DbErr::Custom(format!("planning a batch failed: {e}")))?;
            cache = back;
            stats.plan_ms += t.elapsed().as_millis() as u64;
            stats.families += planned.families;
            stats.skipped += planned.skipped;
            while writing.len() >= writers {
                merge_applied(&mut stats, writing.join_next().await)?;
            }
            let (db, writes, count) = (db.clone(), planned.writes, planned.planned);
            writing.spawn(async move {
                let t = Instant::now();
                let applied = writes.apply(&db).await?;
                Ok((applied, count, t.elapsed().as_millis() as u64))
            });
            current = next?;
        }
        while let Some(done) = writing.join_next().await {
            merge_applied(&mut stats, Some(done))?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // The batches being written roll back; what was committed stays.
        writing.shutdown().await;
        return Err(e);
    }
    if opts.family.is_some() {
        tracing::debug!(?opts.family, ?stats, "family re-planned");
        return Ok(stats);
    }
    // A first plan fills the table at once. Until PostgreSQL samples it again, its planner
    // takes the feed's twice-a-second "changed since" read for a whole-table scan; where
    // autovacuum is slow or off that lasts. A sample now costs well under a second.
    if stats.created >= ANALYZE_AFTER
        && db.get_database_backend() == DbBackend::Postgres
        && let Err(e) = db.execute_unprepared("ANALYZE visit_task").await
    {
        tracing::warn!(error = %e, "sampling the visits table after the plan failed");
    }
    tracing::info!(
        families = stats.families,
        up_to_date = stats.up_to_date,
        created = stats.created,
        unchanged = stats.unchanged,
        updated = stats.updated,
        cancelled = stats.cancelled,
        flagged = stats.flagged,
        errors = stats.error_count,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "visit generation finished"
    );
    Ok(stats)
}

/// Families (of the run's region) already planned with the run's stamp.
async fn count_up_to_date(db: &DatabaseConnection, opts: &GenerateOptions) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    let mut q = family::Entity::find().filter(family::Column::PlanStamp.eq(plan_stamp(opts)));
    if let Some(path) = opts.region_path.as_deref() {
        q = q.filter(family::Column::RegionId.in_subquery(regions_under(path)));
    }
    q.count(db).await
}

type WriteOutcome = Result<Result<(Applied, u64, u64), DbErr>, tokio::task::JoinError>;

fn merge_applied(stats: &mut RunStats, done: Option<WriteOutcome>) -> Result<(), DbErr> {
    let Some(done) = done else { return Ok(()) };
    let (applied, planned, ms) =
        done.map_err(|e| DbErr::Custom(format!("writing a batch failed: {e}")))??;
    stats.created += applied.created;
    stats.updated += applied.updated;
    stats.cancelled += applied.cancelled;
    stats.merged += applied.merged;
    stats.flagged += applied.flagged;
    stats.unchanged += planned.saturating_sub(applied.created + applied.updated);
    stats.write_ms += ms;
    Ok(())
}

/// One batch as read from the database.
struct Fetched {
    loaded: Loaded,
    /// The last family id of the batch (None: no family left).
    last: Option<Uuid>,
    /// Whether the batch was full (there may be more).
    full: bool,
    ms: u64,
}

async fn fetch(
    db: &DatabaseConnection,
    after: Option<Uuid>,
    opts: &GenerateOptions,
    from_midnight: DateTime<Utc>,
) -> Result<Fetched, DbErr> {
    let t = Instant::now();
    let batch = opts.batch.max(1);
    let region = opts.region_path.as_deref();
    // One family is always planned; a run skips families planned with its stamp.
    let stamp = plan_stamp(opts);
    let skip = opts.family.is_none().then_some(stamp.as_str());
    let rows = load_families(db, after, batch, region, opts.family, skip).await?;
    let last = rows.last().map(|r| r.id);
    let full = rows.len() == batch;
    // The range of a batch holds only its own families unless the run skips some.
    let exact = region.is_some() || skip.is_some();
    let loaded = load_batch(db, rows, exact, opts.from, from_midnight).await?;
    Ok(Fetched {
        loaded,
        last,
        full,
        ms: t.elapsed().as_millis() as u64,
    })
}

/// The plans of a batch turned into writes.
struct Planned {
    writes: Writes,
    families: u64,
    skipped: u64,
    /// Visits planned.
    planned: u64,
}

fn plan_batch(
    loaded: &Loaded,
    cache: &mut RulesCache,
    opts: &GenerateOptions,
    from_midnight: DateTime<Utc>,
) -> Planned {
    let mut out = Planned {
        writes: Writes {
            stamp: plan_stamp(opts),
            ..Writes::default()
        },
        families: 0,
        skipped: 0,
        planned: 0,
    };
    for family in &loaded.families {
        if !loaded.flawed.contains(&family.input.id) {
            out.writes.stamped.push(family.input.id);
        }
        let existing = loaded
            .existing
            .get(&family.input.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let rules = cache.rules(family);
        let plan = plan_family(&family.input, rules, opts.from, opts.to, opts.tz);
        out.families += 1;
        out.skipped += plan.skipped.len() as u64;
        out.planned += plan.visits.len() as u64;
        let ctx = Reconcile {
            family,
            rules,
            opts,
            from_midnight,
        };
        ctx.reconcile(&plan, existing, &mut out.writes);
    }
    out
}

/// Re-plans one family at once (after a change to it, its members or its pairing), with
/// `opts` otherwise as the nightly run has them.
pub async fn replan_family(
    db: &DatabaseConnection,
    family: Uuid,
    opts: &GenerateOptions,
) -> Result<RunStats, DbErr> {
    let opts = GenerateOptions {
        family: Some(family),
        region_path: None,
        max_batches: None,
        ..opts.clone()
    };
    generate(db, &opts).await
}

/// Makes the next run plan these families again, whatever their stamp: for changes to
/// what the planner reads that do not re-plan at once (bulk imports, a first visit done).
pub async fn clear_plan_stamps<C: ConnectionTrait>(db: &C, families: &[Uuid]) -> Result<(), DbErr> {
    for chunk in families.chunks(UPDATE_CHUNK) {
        family::Entity::update_many()
            .col_expr(
                family::Column::PlanStamp,
                Expr::value(Option::<String>::None),
            )
            .filter(family::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Marks the tasks whose window ended before `now` and that nobody completed (`open` or
/// `claimed`) as `missed`, in one UPDATE, and returns them. A cadre's message call is not a
/// visit of the family's care ([`visit_task::care_visits`]): it is never missed.
pub async fn mark_missed<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<Vec<visit_task::Model>, DbErr> {
    visit_task::Entity::update_many()
        .col_expr(visit_task::Column::Status, Expr::value(MISSED))
        .col_expr(visit_task::Column::UpdatedAt, Expr::value(now))
        .filter(visit_task::Column::WindowEnd.lt(now))
        .filter(visit_task::Column::Status.is_in([OPEN, CLAIMED]))
        .filter(visit_task::care_visits())
        .exec_with_returning(db)
        .await
}

/// A cadre's call passing a message on, still not made when its days ran out: not a
/// missed visit, but a coordinator should see it, once. Returns how many were flagged.
pub async fn flag_overdue_calls<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let done = visit_task::Entity::update_many()
        .col_expr(visit_task::Column::NeedsAttention, Expr::value(true))
        .col_expr(
            visit_task::Column::StatusReason,
            Expr::value(REASON_CALL_OVERDUE),
        )
        .col_expr(visit_task::Column::UpdatedAt, Expr::value(now))
        .filter(visit_task::Column::Kind.eq(visit_task::MESSAGE_CALL))
        .filter(visit_task::Column::WindowEnd.lt(now))
        .filter(visit_task::Column::Status.is_in([OPEN, CLAIMED]))
        .filter(visit_task::Column::NeedsAttention.eq(false))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// The plan of one family for `months` months from `opts.from` (to the day before the
/// same date `months` later), exactly as [`generate`] with `opts` would make it, without
/// writing anything. A family's unreadable overrides or preferences show as a skipped
/// entry on the family.
pub async fn preview(
    db: &DatabaseConnection,
    family_id: Uuid,
    months: u32,
    opts: &GenerateOptions,
) -> Result<Plan, DbErr> {
    let (from, tz) = (opts.from, opts.tz);
    let row = family::Entity::find_by_id(family_id)
        .select_only()
        .columns(FAMILY_COLUMNS)
        .into_model::<FamilyRow>()
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("family {family_id}")))?;
    let loaded = load_batch(db, vec![row], false, from, local_midnight(tz, from)).await?;
    let errors = loaded.errors.clone();
    let Some(family) = loaded.families.first() else {
        // The family's row could not be read (an unknown category or status).
        return Ok(Plan {
            visits: Vec::new(),
            skipped: vec![Skipped {
                key: family_id.to_string(),
                date: from,
                reason: errors.join("; "),
            }],
        });
    };
    let rules = RulesCache::new(opts.festivals.clone())
        .rules(family)
        .to_vec();
    let to = from
        .checked_add_months(Months::new(months))
        .and_then(|d| d.pred_opt())
        .unwrap_or(from);
    let mut plan = plan_family(&family.input, &rules, from, to, tz);
    for error in errors {
        plan.skipped.insert(
            0,
            Skipped {
                key: family_id.to_string(),
                date: from,
                reason: error,
            },
        );
    }
    Ok(plan)
}

/// The visits every family under `opts.region_path` (all, when none) would get with its
/// anchor in `from..=to`, exactly as [`generate`] would plan them, without writing
/// anything: (family, its planned visits). For forecasts such as the festival surge.
pub async fn forecast(
    db: &DatabaseConnection,
    opts: &GenerateOptions,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(Uuid, Vec<PlannedVisit>)>, DbErr> {
    let batch = opts.batch.max(1);
    let region = opts.region_path.as_deref();
    let mut cache = RulesCache::new(opts.festivals.clone());
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let rows = load_families(db, after, batch, region, None, None).await?;
        let full = rows.len() == batch;
        after = rows.last().map(|r| r.id);
        if rows.is_empty() {
            break;
        }
        let loaded = load_batch(
            db,
            rows,
            region.is_some(),
            from,
            local_midnight(opts.tz, from),
        )
        .await?;
        for family in &loaded.families {
            let rules = cache.rules(family);
            let plan = plan_family(&family.input, rules, from, to, opts.tz);
            out.push((family.input.id, plan.visits));
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

/// The start of local day `d` in UTC (the first existing local time where midnight is
/// skipped), as the planner computes windows.
fn local_midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let midnight = d.and_time(NaiveTime::MIN);
    (0..=3)
        .filter_map(|h| {
            tz.from_local_datetime(&(midnight + chrono::TimeDelta::hours(h)))
                .earliest()
        })
        .next()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

// ---------------------------------------------------------------------------------------
// Loading

const FAMILY_COLUMNS: [family::Column; 5] = [
    family::Column::Id,
    family::Column::Category,
    family::Column::Status,
    family::Column::DoNotDisturb,
    family::Column::CareOverrides,
];

/// Category and status are read as text so that one bad row is an error in the stats, not
/// a failed run.
#[derive(Debug)]
struct FamilyRow {
    id: Uuid,
    category: String,
    status: String,
    do_not_disturb: serde_json::Value,
    care_overrides: Option<serde_json::Value>,
}

/// The rows of a batch are read by position (in the order of the selected columns): every
/// run reads every family, member and open task, and looking columns up by name costs
/// more than decoding them.
impl FromQueryResult for FamilyRow {
    fn from_query_result(res: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        Ok(FamilyRow {
            id: res.try_get_by_index(0)?,
            category: res.try_get_by_index(1)?,
            status: res.try_get_by_index(2)?,
            do_not_disturb: res.try_get_by_index(3)?,
            care_overrides: res.try_get_by_index(4)?,
        })
    }
}

#[derive(Debug)]
struct MemberRow {
    id: Uuid,
    family_id: Uuid,
    name: String,
    relation: String,
    birth_calendar: String,
    birth_year: Option<i32>,
    birth_month: Option<i32>,
    birth_day: Option<i32>,
    birth_leap_month: bool,
    deceased: bool,
    death_date: Option<NaiveDate>,
}

const MEMBER_COLUMNS: [family_member::Column; 11] = [
    family_member::Column::Id,
    family_member::Column::FamilyId,
    family_member::Column::Name,
    family_member::Column::Relation,
    family_member::Column::BirthCalendar,
    family_member::Column::BirthYear,
    family_member::Column::BirthMonth,
    family_member::Column::BirthDay,
    family_member::Column::BirthLeapMonth,
    family_member::Column::Deceased,
    family_member::Column::DeathDate,
];

impl FromQueryResult for MemberRow {
    fn from_query_result(res: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        Ok(MemberRow {
            id: res.try_get_by_index(0)?,
            family_id: res.try_get_by_index(1)?,
            name: res.try_get_by_index(2)?,
            relation: res.try_get_by_index(3)?,
            birth_calendar: res.try_get_by_index(4)?,
            birth_year: res.try_get_by_index(5)?,
            birth_month: res.try_get_by_index(6)?,
            birth_day: res.try_get_by_index(7)?,
            birth_leap_month: res.try_get_by_index(8)?,
            deceased: res.try_get_by_index(9)?,
            death_date: res.try_get_by_index(10)?,
        })
    }
}

#[derive(Debug)]
struct PairingRow {
    family_id: Uuid,
    cadre_id: Uuid,
}

impl FromQueryResult for PairingRow {
    fn from_query_result(res: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        Ok(PairingRow {
            family_id: res.try_get_by_index(0)?,
            cadre_id: res.try_get_by_index(1)?,
        })
    }
}

/// The columns of an existing task that reconciliation looks at.
#[derive(Debug, Clone)]
struct TaskRow {
    id: Uuid,
    family_id: Uuid,
    unique_key: String,
    status: String,
    claims_count: i32,
    needs_attention: bool,
    status_reason: Option<String>,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    planned_date: Option<NaiveDate>,
    assign_to_cadre: bool,
    assigned_cadre_id: Option<Uuid>,
    /// Set when a coordinator gave the visit its time by hand.
    rescheduled_at: Option<DateTime<Utc>>,
    /// Read for merged tasks only (NULL otherwise: the parts of a task that merges nothing
    /// are its own key).
    components: Option<StringList>,
}

/// The columns of [`TaskRow`] in order; `components` follows as an expression.
const TASK_COLUMNS: [visit_task::Column; 13] = [
    visit_task::Column::Id,
    visit_task::Column::FamilyId,
    visit_task::Column::UniqueKey,
    visit_task::Column::Status,
    visit_task::Column::ClaimsCount,
    visit_task::Column::NeedsAttention,
    visit_task::Column::StatusReason,
    visit_task::Column::WindowStart,
    visit_task::Column::WindowEnd,
    visit_task::Column::PlannedDate,
    visit_task::Column::AssignToCadre,
    visit_task::Column::AssignedCadreId,
    visit_task::Column::RescheduledAt,
];

impl FromQueryResult for TaskRow {
    fn from_query_result(res: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        Ok(TaskRow {
            id: res.try_get_by_index(0)?,
            family_id: res.try_get_by_index(1)?,
            unique_key: res.try_get_by_index(2)?,
            status: res.try_get_by_index(3)?,
            claims_count: res.try_get_by_index(4)?,
            needs_attention: res.try_get_by_index(5)?,
            status_reason: res.try_get_by_index(6)?,
            window_start: res.try_get_by_index(7)?,
            window_end: res.try_get_by_index(8)?,
            planned_date: res.try_get_by_index(9)?,
            assign_to_cadre: res.try_get_by_index(10)?,
            assigned_cadre_id: res.try_get_by_index(11)?,
            rescheduled_at: res.try_get_by_index(12)?,
            components: res.try_get_by_index(13)?,
        })
    }
}

impl TaskRow {
    fn claimed(&self) -> bool {
        self.claims_count > 0 || self.status == CLAIMED
    }

    /// Whether the flag fields were set by the generator (or are clear), so a run may change
    /// them.
    fn attention_is_ours(&self) -> bool {
        match self.status_reason.as_deref() {
            None => !self.needs_attention,
            Some(r) => GENERATOR_REASONS.contains(&r),
        }
    }

    fn components(&self) -> impl Iterator<Item = &str> {
        let list = self.components.as_ref().map(|c| c.0.as_slice());
        let own = match list {
            Some([_, ..]) => None,
            _ => Some(self.unique_key.as_str()),
        };
        list.into_iter().flatten().map(String::as_str).chain(own)
    }
}

/// A family ready to plan.
struct LoadedFamily {
    input: FamilyInput,
    elderly: bool,
    overrides: Option<Vec<RuleOverride>>,
    cadre: Option<Uuid>,
}

struct Loaded {
    families: Vec<LoadedFamily>,
    existing: HashMap<Uuid, Vec<TaskRow>>,
    /// Data problems met while reading ("family <id>: …").
    errors: Vec<String>,
    /// Families with such a problem: planned, but not stamped, so that every run reports
    /// the problem until it is fixed.
    flawed: HashSet<Uuid>,
}

async fn load_families(
    db: &DatabaseConnection,
    after: Option<Uuid>,
    limit: usize,
    region_path: Option<&str>,
    only: Option<Uuid>,
    skip_stamp: Option<&str>,
) -> Result<Vec<FamilyRow>, DbErr> {
    let mut q = family::Entity::find()
        .select_only()
        .columns(FAMILY_COLUMNS)
        .order_by_asc(family::Column::Id)
        .limit(limit as u64);
    if let Some(after) = after {
        q = q.filter(family::Column::Id.gt(after));
    }
    if let Some(path) = region_path {
        q = q.filter(family::Column::RegionId.in_subquery(regions_under(path)));
    }
    if let Some(id) = only {
        q = q.filter(family::Column::Id.eq(id));
    }
    if let Some(stamp) = skip_stamp {
        q = q.filter(needs_planning(stamp));
    }
    q.into_model::<FamilyRow>().all(db).await
}

/// `SELECT id FROM region WHERE path LIKE '<path>%'`.
fn regions_under(path: &str) -> sea_orm::sea_query::SelectStatement {
    let pattern = format!("{}%", escape_like(path));
    Query::select()
        .column(region::Column::Id)
        .from(region::Entity)
        .and_where(Expr::col(region::Column::Path).like(LikeExpr::new(pattern).escape('\\')))
        .to_owned()
}

/// Families not planned with `stamp`.
fn needs_planning(stamp: &str) -> Condition {
    Condition::any()
        .add(family::Column::PlanStamp.is_null())
        .add(family::Column::PlanStamp.ne(stamp))
}

/// The rows of a batch's families: `col` between the first and the last id of the batch
/// (an index range), and, when the range may hold families the batch skipped (other
/// regions, families already planned), those of the batch's own ids. The ids are the
/// families read, never a condition evaluated again: another run may stamp a family
/// between the two reads, and its members must not vanish from this run's plan.
fn in_batch<C: ColumnTrait>(
    col: C,
    first: Uuid,
    last: Uuid,
    ids: Option<&[Uuid]>,
    backend: DbBackend,
) -> Condition {
    let c = Condition::all().add(col.between(first, last));
    let Some(ids) = ids.filter(|ids| ids.len() > 1) else {
        return c;
    };
    if backend == DbBackend::Postgres {
        // One array parameter: a thousand-element `IN` list costs PostgreSQL a plan each time.
        let array = Value::Array(
            ArrayType::Uuid,
            Some(Box::new(ids.iter().map(|&id| Value::from(id)).collect())),
        );
        let sql = format!("\"{}\" = ANY($1)", col.as_str());
        return c.add(Expr::cust_with_values(sql, [array]));
    }
    c.add(col.is_in(ids.iter().copied()))
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Members, pairings, first-visit facts and open tasks of a batch of families, one query
/// each (the first three at once).
async fn load_batch(
    db: &DatabaseConnection,
    rows: Vec<FamilyRow>,
    exact: bool,
    from: NaiveDate,
    from_midnight: DateTime<Utc>,
) -> Result<Loaded, DbErr> {
    let mut errors = Vec::new();
    let (Some(first), Some(last)) = (rows.first().map(|r| r.id), rows.last().map(|r| r.id)) else {
        return Ok(Loaded {
            families: Vec::new(),
            existing: HashMap::new(),
            errors,
            flawed: HashSet::new(),
        });
    };

    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let only = exact.then_some(ids.as_slice());
    let backend = db.get_database_backend();

    // Three independent reads, on three connections at once.
    let members_q = family_member::Entity::find()
        .select_only()
        .columns(MEMBER_COLUMNS)
        .filter(in_batch(
            family_member::Column::FamilyId,
            first,
            last,
            only,
            backend,
        ))
        .into_model::<MemberRow>()
        .all(db);
    let pairings_q = pairing::Entity::find()
        .select_only()
        .columns([pairing::Column::FamilyId, pairing::Column::CadreId])
        .filter(in_batch(
            pairing::Column::FamilyId,
            first,
            last,
            only,
            backend,
        ))
        .filter(pairing::Column::EndedOn.is_null())
        // The latest current pairing wins.
        .order_by_asc(pairing::Column::StartedOn)
        .order_by_asc(pairing::Column::CreatedAt)
        .into_model::<PairingRow>()
        .all(db);
    let tasks_q = load_tasks(db, first, last, only, from_midnight);
    let (member_rows, pairings, tasks) = tokio::join!(members_q, pairings_q, tasks_q);

    let mut flawed = HashSet::new();
    let mut members: HashMap<Uuid, Vec<MemberInput>> = HashMap::with_capacity(rows.len());
    for m in member_rows? {
        // A family created inside the range since the batch was read is not planned here.
        if ids.binary_search(&m.family_id).is_err() {
            continue;
        }
        match member_input(&m) {
            Ok(input) => members.entry(m.family_id).or_default().push(input),
            Err(e) => {
                errors.push(format!("family {}: member {}: {e}", m.family_id, m.id));
                flawed.insert(m.family_id);
            }
        }
    }
    let mut cadres: HashMap<Uuid, Uuid> = HashMap::new();
    for p in pairings? {
        cadres.insert(p.family_id, p.cadre_id);
    }
    let existing = tasks?;

    let mut families = Vec::with_capacity(rows.len());
    for row in rows {
        let (Some(category), Some(status)) = (
            FamilyCategory::parse(&row.category),
            FamilyStatus::parse(&row.status),
        ) else {
            errors.push(format!(
                "family {}: unknown category {:?} or status {:?}; not planned",
                row.id, row.category, row.status
            ));
            continue;
        };
        let mut members = members.remove(&row.id).unwrap_or_default();
        // Deterministic input whatever order the database returns.
        members.sort_by_key(|m| m.id);
        let preferences = match preferences(&row.do_not_disturb) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("family {}: do_not_disturb: {e}", row.id));
                flawed.insert(row.id);
                Preferences::default()
            }
        };
        let overrides = match &row.care_overrides {
            None | Some(serde_json::Value::Null) => None,
            Some(json) => match Vec::<RuleOverride>::deserialize(json) {
                Ok(o) if o.is_empty() => None,
                Ok(o) => Some(o),
                Err(e) => {
                    errors.push(format!(
                        "family {}: care_overrides: {e}; category defaults used",
                        row.id
                    ));
                    flawed.insert(row.id);
                    None
                }
            },
        };
        let elderly = is_elderly(&members, from);
        families.push(LoadedFamily {
            input: FamilyInput {
                id: row.id,
                category,
                status,
                members,
                preferences,
                first_visit_done: true,
            },
            elderly,
            overrides,
            cadre: cadres.get(&row.id).copied(),
        });
    }

    // Whether anyone has visited yet only matters to a bereaved family (its first home
    // visit needs two volunteers).
    let bereaved: Vec<Uuid> = families
        .iter()
        .filter(|f| f.input.status == FamilyStatus::Active && f.input.is_bereaved())
        .map(|f| f.input.id)
        .collect();
    if !bereaved.is_empty() {
        let visited: HashSet<Uuid> = visited_families(db, first, last, &bereaved).await?;
        for f in &mut families {
            if bereaved.binary_search(&f.input.id).is_ok() {
                f.input.first_visit_done = visited.contains(&f.input.id);
            }
        }
    }

    Ok(Loaded {
        families,
        existing,
        errors,
        flawed,
    })
}

/// The tasks of a batch's families whose window ends after `from_midnight`, by family.
async fn load_tasks(
    db: &DatabaseConnection,
    first: Uuid,
    last: Uuid,
    only: Option<&[Uuid]>,
    from_midnight: DateTime<Utc>,
) -> Result<HashMap<Uuid, Vec<TaskRow>>, DbErr> {
    use visit_task::Column as T;
    // The parts of a merged task only: a single occasion's parts are its own key.
    let merged = || {
        Expr::col(T::UniqueKey)
            .like("%+%")
            .or(Expr::col(T::UniqueKey).like("%:merged-%"))
    };
    let tasks = visit_task::Entity::find()
        .select_only()
        .columns(TASK_COLUMNS)
        .expr_as(Expr::case(merged(), Expr::col(T::Components)), "components")
        .filter(in_batch(
            T::FamilyId,
            first,
            last,
            only,
            db.get_database_backend(),
        ))
        .filter(T::WindowEnd.gt(from_midnight))
        .filter(Expr::col(T::UniqueKey).not_like(format!("%{FOLLOWUP_KEY_MARK}%")))
        .into_model::<TaskRow>()
        .all(db)
        .await?;
    let mut existing: HashMap<Uuid, Vec<TaskRow>> = HashMap::new();
    for t in tasks {
        existing.entry(t.family_id).or_default().push(t);
    }
    Ok(existing)
}

/// Families (of `ids`, sorted, between `first` and `last`) with a visit record or a
/// done/confirmed task.
async fn visited_families(
    db: &DatabaseConnection,
    first: Uuid,
    last: Uuid,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let has_record = Query::select()
        .expr(Expr::val(1))
        .from(visit_record::Entity)
        .and_where(
            Expr::col((visit_record::Entity, visit_record::Column::TaskId))
                .equals((visit_task::Entity, visit_task::Column::Id)),
        )
        .to_owned();
    let rows: Vec<Uuid> = visit_task::Entity::find()
        .select_only()
        .column(visit_task::Column::FamilyId)
        .distinct()
        .filter(visit_task::Column::FamilyId.between(first, last))
        .filter(visit_task::Column::FamilyId.is_in(ids.iter().copied()))
        .filter(
            Condition::any()
                .add(visit_task::Column::Status.is_in([IN_PROGRESS, REPORTED, CONFIRMED]))
                .add(Expr::exists(has_record)),
        )
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

fn member_input(m: &MemberRow) -> Result<MemberInput, String> {
    let relation = MemberRelation::parse(&m.relation)
        .ok_or_else(|| format!("unknown relation {:?}", m.relation))?;
    let calendar = BirthCalendar::parse(&m.birth_calendar)
        .ok_or_else(|| format!("unknown birth calendar {:?}", m.birth_calendar))?;
    let birth = match (m.birth_month, m.birth_day) {
        (Some(month), Some(day)) => Some(Birth {
            calendar,
            year: m.birth_year,
            month: u32::try_from(month).map_err(|_| format!("birth month {month}"))?,
            day: u32::try_from(day).map_err(|_| format!("birth day {day}"))?,
            leap: m.birth_leap_month,
        }),
        _ => None,
    };
    Ok(MemberInput {
        id: m.id,
        name: m.name.clone(),
        relation,
        birth,
        deceased: m.deceased,
        death_date: m.death_date,
    })
}

/// `family.do_not_disturb` as the planner needs it. The API writes `quiet_from`/`quiet_to`
/// (times for messages, not the planner's business) and `no_festive_visits`; the other
/// fields of [`Preferences`] are read when present.
fn preferences(json: &serde_json::Value) -> Result<Preferences, serde_json::Error> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Stored {
        no_festive_visits: bool,
        preferred_time: Option<TimeOfDay>,
        preferred_visitor_gender: Option<Gender>,
        blackout_dates: Vec<NaiveDate>,
        blackout_weekdays: Vec<Weekday>,
    }
    if json.is_null() {
        return Ok(Preferences::default());
    }
    let s = Stored::deserialize(json)?;
    Ok(Preferences {
        preferred_time: s.preferred_time,
        preferred_visitor_gender: s.preferred_visitor_gender,
        blackout_dates: s.blackout_dates,
        blackout_weekdays: s.blackout_weekdays,
        no_festive_visits: s.no_festive_visits,
    })
}

/// A living father or mother born at least 60 years before `from`. The registered month
/// and day are compared as they are (a lunar birthday is off by a few weeks at most); a
/// parent with only a year of birth counts from 1 January.
fn is_elderly(members: &[MemberInput], from: NaiveDate) -> bool {
    members.iter().any(|m| {
        let birth = m.birth.and_then(|b| b.year.map(|y| (y, b.month, b.day)));
        elderly_parent(m.relation, m.deceased, birth, from)
    })
}

/// A living father or mother aged 60 or more on `on`; `birth` is (year, month, day) as
/// registered (a lunar month and day are compared as they are: off by weeks at most).
pub fn elderly_parent(
    relation: MemberRelation,
    deceased: bool,
    birth: Option<(i32, u32, u32)>,
    on: NaiveDate,
) -> bool {
    let parent = matches!(relation, MemberRelation::Father | MemberRelation::Mother);
    let Some((year, month, day)) = birth else {
        return false;
    };
    if !parent || deceased {
        return false;
    }
    let age = on.year() - year - i32::from((on.month(), on.day()) < (month, day));
    age >= 60
}

// ---------------------------------------------------------------------------------------
// Rules

/// Category defaults, built once per (category, elderly) and per run.
struct RulesCache {
    festivals: FestivalSet,
    defaults: HashMap<(FamilyCategory, bool), Vec<Rule>>,
    /// The effective rules of the last family with overrides.
    scratch: Vec<Rule>,
}

impl RulesCache {
    fn new(festivals: FestivalSet) -> Self {
        RulesCache {
            festivals,
            defaults: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    fn rules(&mut self, family: &LoadedFamily) -> &[Rule] {
        let key = (family.input.category, family.elderly);
        let defaults = self
            .defaults
            .entry(key)
            .or_insert_with(|| default_rules_with(key.0, key.1, &self.festivals));
        match &family.overrides {
            None => defaults,
            Some(o) => {
                self.scratch = effective_rules(defaults, o);
                &self.scratch
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reconciliation (pure)

/// The writes of a batch, applied in one transaction.
#[derive(Default)]
struct Writes {
    /// The run's stamp, and the families to stamp with it.
    stamp: String,
    stamped: Vec<Uuid>,
    inserts: Vec<NewTask>,
    /// (task, reason): open unclaimed tasks to cancel.
    cancels: Vec<(Uuid, String)>,
    /// (task, reason): claimed tasks to flag.
    flags: Vec<(Uuid, String)>,
    /// Single-row rewrites, rare.
    updates: Vec<RowUpdate>,
    /// Cadres to tell that a visit assigned to them was cancelled or moved.
    told: Vec<Told>,
}

/// A message to the cadre a task is assigned to, queued when the change it tells of was
/// written.
struct Told {
    task: Uuid,
    cadre: Uuid,
    /// `visit_cancelled` or `visit_moved`.
    template: &'static str,
    /// The window start after the change, and its local day.
    window_start: DateTime<Utc>,
    date: NaiveDate,
}

/// A rewrite of one task, applied only while the guard's condition still holds.
struct RowUpdate {
    id: Uuid,
    guard: Guard,
    model: visit_task::ActiveModel,
}

#[derive(Clone, Copy)]
enum Guard {
    /// Still cancelled (reopening).
    Cancelled,
    /// Still open and unclaimed (rewriting the content).
    OpenUnclaimed,
    /// Still open or claimed (the flag fields only).
    Live,
}

struct Reconcile<'a> {
    family: &'a LoadedFamily,
    rules: &'a [Rule],
    opts: &'a GenerateOptions,
    from_midnight: DateTime<Utc>,
}

impl Reconcile<'_> {
    fn told(
        &self,
        t: &TaskRow,
        cadre: Uuid,
        template: &'static str,
        window_start: DateTime<Utc>,
    ) -> Told {
        Told {
            task: t.id,
            cadre,
            template,
            window_start,
            date: window_start.with_timezone(&self.opts.tz).date_naive(),
        }
    }

    fn reconcile(&self, plan: &Plan, existing: &[TaskRow], w: &mut Writes) {
        let family = self.family;
        let cadre = family.cadre;
        if plan.visits.is_empty() && existing.is_empty() {
            return;
        }
        let now = Utc::now();
        let by_key: HashMap<&str, &TaskRow> = existing
            .iter()
            .map(|t| (t.unique_key.as_str(), t))
            .collect();
        let planned: HashSet<&str> = plan.visits.iter().map(|v| v.unique_key.as_str()).collect();

        // 1. Existing tasks the plan no longer has.
        let active = family.input.status == FamilyStatus::Active;
        let mut candidates: Vec<&TaskRow> = existing
            .iter()
            .filter(|t| !planned.contains(t.unique_key.as_str()))
            .filter(|t| t.status == OPEN || t.status == CLAIMED)
            .filter(|t| !active || t.window_start >= self.from_midnight)
            .collect();
        // Component keys of the visits planned now, to tell a merge from a change.
        let mut merged_into: HashSet<&str> = plan
            .visits
            .iter()
            .filter(|v| v.components.len() > 1)
            .flat_map(|v| v.components.iter().map(String::as_str))
            .collect();
        let wide;
        if active && !candidates.is_empty() {
            // A task anchored before `from` (its window trimmed by blackouts) or after `to`
            // (made by a longer horizon) is not in this plan by design: plan a range wide
            // enough to hold the anchor of every candidate. Window starts lie within
            // (anchor − 92 days, anchor + 60 days].
            let latest = candidates
                .iter()
                .map(|t| t.window_start.with_timezone(&self.opts.tz).date_naive())
                .fold(self.opts.to, Ord::max);
            let lo = self.opts.from - Days::new(100);
            let hi = latest + Days::new(70);
            wide = plan_family(&family.input, self.rules, lo, hi, self.opts.tz);
            let wanted: HashSet<&str> = wide.visits.iter().map(|v| v.unique_key.as_str()).collect();
            candidates.retain(|t| !wanted.contains(t.unique_key.as_str()));
            merged_into.extend(
                wide.visits
                    .iter()
                    .filter(|v| v.components.len() > 1)
                    .flat_map(|v| v.components.iter().map(String::as_str)),
            );
        }
        let family_reason = plan
            .skipped
            .iter()
            .find(|s| s.key == family.input.id.to_string())
            .map(|s| s.reason.as_str());
        let mut dropped: HashSet<Uuid> = HashSet::new();
        for t in candidates {
            let reason = match family_reason {
                Some(r) if !active => r,
                _ if merged_into.contains(t.unique_key.as_str()) => REASON_MERGED,
                _ => REASON_REPLANNED,
            };
            if !t.claimed() && t.status == OPEN {
                w.cancels.push((t.id, reason.to_string()));
                dropped.insert(t.id);
                if let Some(cadre) = t.assigned_cadre_id {
                    w.told
                        .push(self.told(t, cadre, TEMPLATE_VISIT_CANCELLED, t.window_start));
                }
            } else if !(t.needs_attention && t.status_reason.as_deref() == Some(reason)) {
                w.flags.push((t.id, reason.to_string()));
            }
        }

        // 2. Occasions covered by tasks that stay (a claimed merged visit the plan now
        //    splits still covers its parts).
        let covered: HashSet<&str> = existing
            .iter()
            .filter(|t| {
                matches!(
                    t.status.as_str(),
                    OPEN | CLAIMED | IN_PROGRESS | REPORTED | CONFIRMED
                )
            })
            .filter(|t| !dropped.contains(&t.id))
            .flat_map(|t| t.components())
            .collect();

        // 3. The planned visits.
        for v in &plan.visits {
            let assigned = if v.assign_to_cadre { cadre } else { None };
            let no_cadre = v.assign_to_cadre && cadre.is_none();
            let Some(t) = by_key.get(v.unique_key.as_str()) else {
                if v.components.iter().all(|c| covered.contains(c.as_str())) {
                    continue;
                }
                w.inserts
                    .push(NewTask::new(family.input.id, v, assigned, now));
                continue;
            };
            // A time a coordinator set by hand stands; the rest of the plan still applies.
            let hand_set;
            let v = match t.rescheduled_at {
                Some(_) => {
                    hand_set = PlannedVisit {
                        window_start: t.window_start,
                        window_end: t.window_end,
                        date: t.planned_date.unwrap_or(v.date),
                        ..v.clone()
                    };
                    &hand_set
                }
                None => v,
            };
            let ours = t.attention_is_ours();
            let set_attention = |m: &mut visit_task::ActiveModel| {
                if ours {
                    m.needs_attention = Set(no_cadre);
                    m.status_reason = Set(no_cadre.then(|| REASON_NO_CADRE.to_string()));
                }
            };
            if t.status == CANCELLED {
                // Cancelled by the generator (a pause, a change since undone): wanted again.
                if t.status_reason
                    .as_deref()
                    .is_some_and(|r| GENERATOR_REASONS.contains(&r))
                    && t.claims_count == 0
                {
                    let mut m = content(v, assigned, now);
                    m.status = Set(OPEN.to_string());
                    m.needs_attention = Set(no_cadre);
                    m.status_reason = Set(no_cadre.then(|| REASON_NO_CADRE.to_string()));
                    w.updates.push(RowUpdate {
                        id: t.id,
                        guard: Guard::Cancelled,
                        model: m,
                    });
                }
                continue;
            }
            if t.status == OPEN && !t.claimed() {
                let changed = t.window_start != v.window_start
                    || t.window_end != v.window_end
                    || t.planned_date != Some(v.date)
                    || t.assign_to_cadre != v.assign_to_cadre
                    || t.assigned_cadre_id != assigned;
                let attention_changed = ours
                    && (t.needs_attention != no_cadre
                        || (no_cadre && t.status_reason.as_deref() != Some(REASON_NO_CADRE)));
                if changed {
                    // The cadre it stays assigned to hears of the new time.
                    if let Some(cadre) = t.assigned_cadre_id.filter(|c| assigned == Some(*c))
                        && (t.window_start != v.window_start || t.window_end != v.window_end)
                    {
                        w.told
                            .push(self.told(t, cadre, TEMPLATE_VISIT_MOVED, v.window_start));
                    }
                    let mut m = content(v, assigned, now);
                    set_attention(&mut m);
                    w.updates.push(RowUpdate {
                        id: t.id,
                        guard: Guard::OpenUnclaimed,
                        model: m,
                    });
                } else if attention_changed {
                    let mut m = flag_model(now);
                    set_attention(&mut m);
                    w.updates.push(RowUpdate {
                        id: t.id,
                        guard: Guard::OpenUnclaimed,
                        model: m,
                    });
                }
            } else if t.status == OPEN || t.status == CLAIMED {
                // Claimed: the volunteers' arrangement stands, a coordinator is told when
                // the plan moved the visit, and the flag goes once it matches again.
                let moved = t.window_start != v.window_start
                    || t.window_end != v.window_end
                    || t.planned_date != Some(v.date);
                if moved {
                    if ours
                        && !(t.needs_attention
                            && t.status_reason.as_deref() == Some(REASON_RESCHEDULED))
                    {
                        w.flags.push((t.id, REASON_RESCHEDULED.to_string()));
                    }
                } else if t.needs_attention && ours && t.status_reason.is_some() {
                    let mut m = flag_model(now);
                    m.needs_attention = Set(false);
                    m.status_reason = Set(None);
                    w.updates.push(RowUpdate {
                        id: t.id,
                        guard: Guard::Live,
                        model: m,
                    });
                }
            }
        }
    }
}

/// An ActiveModel that sets nothing but `updated_at`.
fn flag_model(now: DateTime<Utc>) -> visit_task::ActiveModel {
    visit_task::ActiveModel {
        updated_at: Set(now),
        ..Default::default()
    }
}

/// The columns that come from the plan (and `updated_at`); identity, status and claims
/// stay unset.
fn content(
    v: &PlannedVisit,
    assigned: Option<Uuid>,
    now: DateTime<Utc>,
) -> visit_task::ActiveModel {
    let codes =
        |kinds: &[VisitKind]| StringList(kinds.iter().map(|k| k.code().to_string()).collect());
    visit_task::ActiveModel {
        id: NotSet,
        kind: Set(primary_kind(&v.kinds).to_string()),
        channel: Set(v.channel.code().to_string()),
        window_start: Set(v.window_start),
        window_end: Set(v.window_end),
        volunteers_needed: Set(i32::from(v.volunteers_needed)),
        required_skills: Set(StringList(
            v.required_skills
                .iter()
                .map(|s| s.code().to_string())
                .collect(),
        )),
        assigned_cadre_id: Set(assigned),
        planned_date: Set(Some(v.date)),
        kinds: Set(Some(codes(&v.kinds))),
        reasons: Set(Some(StringList(v.reasons.clone()))),
        components: Set(Some(StringList(v.components.clone()))),
        gentle: Set(v.gentle),
        first_visit: Set(v.first_visit),
        assign_to_cadre: Set(v.assign_to_cadre),
        preferred_time: Set(v.preferred_time.map(|t| time_code(t).to_string())),
        visitor_gender: Set(v
            .preferred_visitor_gender
            .map(|g| gender_code(g).to_string())),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// `visit_task.kind` of a visit: what it is mainly for. A check-in satisfied by a dated
/// occasion (a birthday visit that is also the month's visit) is of the occasion's kind.
fn primary_kind(kinds: &[VisitKind]) -> &'static str {
    kinds
        .iter()
        .find(|k| **k != VisitKind::Checkin)
        .or(kinds.first())
        .map_or(VisitKind::Checkin.code(), |k| k.code())
}

fn time_code(t: TimeOfDay) -> &'static str {
    match t {
        TimeOfDay::Morning => "morning",
        TimeOfDay::Afternoon => "afternoon",
        TimeOfDay::Evening => "evening",
    }
}

fn gender_code(g: Gender) -> &'static str {
    match g {
        Gender::Male => "male",
        Gender::Female => "female",
    }
}

// ---------------------------------------------------------------------------------------
// Writing

impl Writes {
    /// Applies the writes in one transaction (none at all when there is nothing to write).
    async fn apply(self, db: &DatabaseConnection) -> Result<Applied, DbErr> {
        let Writes {
            stamp,
            stamped,
            mut inserts,
            cancels,
            flags,
            updates,
            told,
        } = self;
        let mut applied = Applied::default();
        if !(stamped.is_empty()
            && inserts.is_empty()
            && cancels.is_empty()
            && flags.is_empty()
            && updates.is_empty())
        {
            let now = Utc::now();
            let txn = db.begin().await?;
            while !inserts.is_empty() {
                let rest = inserts.split_off(inserts.len().min(INSERT_CHUNK));
                let chunk = std::mem::replace(&mut inserts, rest);
                applied.created += insert_tasks(&txn, chunk).await?;
            }
            for (reason, ids) in group_by_reason(cancels) {
                for chunk in ids.chunks(UPDATE_CHUNK) {
                    let res = visit_task::Entity::update_many()
                        .col_expr(visit_task::Column::Status, Expr::value(CANCELLED))
                        .col_expr(
                            visit_task::Column::StatusReason,
                            Expr::value(reason.clone()),
                        )
                        .col_expr(visit_task::Column::UpdatedAt, Expr::value(now))
                        .filter(visit_task::Column::Id.is_in(chunk.iter().copied()))
                        .filter(visit_task::Column::Status.eq(OPEN))
                        .filter(visit_task::Column::ClaimsCount.eq(0))
                        .exec(&txn)
                        .await?;
                    applied.cancelled += res.rows_affected;
                    if reason == REASON_MERGED {
                        applied.merged += res.rows_affected;
                    }
                }
            }
            for (reason, ids) in group_by_reason(flags) {
                for chunk in ids.chunks(UPDATE_CHUNK) {
                    let res = visit_task::Entity::update_many()
                        .col_expr(visit_task::Column::NeedsAttention, Expr::value(true))
                        .col_expr(
                            visit_task::Column::StatusReason,
                            Expr::value(reason.clone()),
                        )
                        .col_expr(visit_task::Column::UpdatedAt, Expr::value(now))
                        .filter(visit_task::Column::Id.is_in(chunk.iter().copied()))
                        .filter(visit_task::Column::Status.is_in([OPEN, CLAIMED]))
                        .exec(&txn)
                        .await?;
                    applied.flagged += res.rows_affected;
                }
            }
            for u in updates {
                let guard = match u.guard {
                    Guard::Cancelled => {
                        Condition::all().add(visit_task::Column::Status.eq(CANCELLED))
                    }
                    Guard::OpenUnclaimed => Condition::all()
                        .add(visit_task::Column::Status.eq(OPEN))
                        .add(visit_task::Column::ClaimsCount.eq(0)),
                    Guard::Live => {
                        Condition::all().add(visit_task::Column::Status.is_in([OPEN, CLAIMED]))
                    }
                };
                let res = visit_task::Entity::update_many()
                    .set(u.model)
                    .filter(visit_task::Column::Id.eq(u.id))
                    .filter(guard)
                    .exec(&txn)
                    .await?;
                applied.updated += res.rows_affected;
            }
            tell_cadres(&txn, &told, now).await?;
            for chunk in stamped.chunks(UPDATE_CHUNK) {
                family::Entity::update_many()
                    .col_expr(family::Column::PlanStamp, Expr::value(stamp.clone()))
                    .filter(family::Column::Id.is_in(chunk.iter().copied()))
                    .exec(&txn)
                    .await?;
            }
            txn.commit().await?;
        }
        Ok(applied)
    }
}

/// Queues the cadres' messages of the changes that were written (a task claimed or
/// changed meanwhile was left alone by its guard, and is not told of).
async fn tell_cadres(
    txn: &DatabaseTransaction,
    told: &[Told],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use visit_task::Column as T;
    if told.is_empty() {
        return Ok(());
    }
    let rows: HashMap<Uuid, (String, DateTime<Utc>)> = visit_task::Entity::find()
        .select_only()
        .columns([T::Id, T::Status, T::WindowStart])
        .filter(T::Id.is_in(told.iter().map(|t| t.task)))
        .into_tuple::<(Uuid, String, DateTime<Utc>)>()
        .all(txn)
        .await?
        .into_iter()
        .map(|(id, status, start)| (id, (status, start)))
        .collect();
    let messages: Vec<notification::ActiveModel> = told
        .iter()
        .filter(|t| {
            rows.get(&t.task).is_some_and(|(status, start)| {
                if t.template == TEMPLATE_VISIT_CANCELLED {
                    status == CANCELLED
                } else {
                    status == OPEN && *start == t.window_start
                }
            })
        })
        .map(|t| {
            let (task, user) = (t.task, t.cadre);
            let key = if t.template == TEMPLATE_VISIT_CANCELLED {
                format!("{TEMPLATE_VISIT_CANCELLED}:{task}:{user}")
            } else {
                format!(
                    "{}:{task}:{user}:{}",
                    t.template,
                    t.window_start.timestamp()
                )
            };
            notification::ActiveModel::pending(
                user,
                t.template,
                serde_json::json!({
                    "task_id": task,
                    "date": t.date.to_string(),
                    "window_start": t.window_start.to_rfc3339(),
                }),
                key,
                now,
                now,
            )
        })
        .collect();
    if !messages.is_empty() {
        notification::Entity::insert_many(messages)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(notification::Column::DedupeKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Rows written by [`Writes::apply`].
#[derive(Debug, Default)]
struct Applied {
    created: u64,
    updated: u64,
    cancelled: u64,
    merged: u64,
    flagged: u64,
}

/// A task to insert, in the shape of its row.
#[derive(Debug)]
struct NewTask {
    id: Uuid,
    family_id: Uuid,
    kind: &'static str,
    channel: &'static str,
    unique_key: String,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    status: &'static str,
    volunteers_needed: i32,
    claims_count: i32,
    required_skills: Vec<&'static str>,
    assigned_cadre_id: Option<Uuid>,
    planned_date: NaiveDate,
    kinds: Vec<&'static str>,
    reasons: Vec<String>,
    components: Vec<String>,
    gentle: bool,
    first_visit: bool,
    assign_to_cadre: bool,
    preferred_time: Option<&'static str>,
    visitor_gender: Option<&'static str>,
    status_reason: Option<&'static str>,
    needs_attention: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The columns of [`NewTask`] with their PostgreSQL types, in the order of
/// [`column_arrays`]; `?` marks a nullable one, sent as text with '' for NULL (arrays of
/// bound values cannot hold NULLs).
const NEW_TASK_COLUMNS: [(&str, &str); 25] = [
    ("id", "uuid"),
    ("family_id", "uuid"),
    ("kind", "text"),
    ("channel", "text"),
    ("unique_key", "text"),
    ("window_start", "timestamptz"),
    ("window_end", "timestamptz"),
    ("status", "text"),
    ("volunteers_needed", "integer"),
    ("claims_count", "integer"),
    ("required_skills", "json"),
    ("assigned_cadre_id", "uuid?"),
    ("planned_date", "date"),
    ("kinds", "json"),
    ("reasons", "json"),
    ("components", "json"),
    ("gentle", "boolean"),
    ("first_visit", "boolean"),
    ("assign_to_cadre", "boolean"),
    ("preferred_time", "text?"),
    ("visitor_gender", "text?"),
    ("status_reason", "text?"),
    ("needs_attention", "boolean"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
];

impl NewTask {
    /// An open task for a planned visit; a cadre visit without a cadre is flagged.
    fn new(
        family_id: Uuid,
        v: &PlannedVisit,
        assigned: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> NewTask {
        let no_cadre = v.assign_to_cadre && assigned.is_none();
        NewTask {
            id: Uuid::now_v7(),
            family_id,
            kind: primary_kind(&v.kinds),
            channel: v.channel.code(),
            unique_key: v.unique_key.clone(),
            window_start: v.window_start,
            window_end: v.window_end,
            status: OPEN,
            volunteers_needed: i32::from(v.volunteers_needed),
            claims_count: 0,
            required_skills: v.required_skills.iter().map(|s| s.code()).collect(),
            assigned_cadre_id: assigned,
            planned_date: v.date,
            kinds: v.kinds.iter().map(|k| k.code()).collect(),
            reasons: v.reasons.clone(),
            components: v.components.clone(),
            gentle: v.gentle,
            first_visit: v.first_visit,
            assign_to_cadre: v.assign_to_cadre,
            preferred_time: v.preferred_time.map(time_code),
            visitor_gender: v.preferred_visitor_gender.map(gender_code),
            status_reason: no_cadre.then_some(REASON_NO_CADRE),
            needs_attention: no_cadre,
            created_at: now,
            updated_at: now,
        }
    }

    fn into_active_model(self) -> visit_task::ActiveModel {
        let list = |v: Vec<&str>| StringList(v.into_iter().map(str::to_string).collect());
        visit_task::ActiveModel {
            id: Set(self.id),
            family_id: Set(self.family_id),
            rule_id: Set(None),
            kind: Set(self.kind.to_string()),
            channel: Set(self.channel.to_string()),
            unique_key: Set(self.unique_key),
            window_start: Set(self.window_start),
            window_end: Set(self.window_end),
            status: Set(self.status.to_string()),
            volunteers_needed: Set(self.volunteers_needed),
            claims_count: Set(self.claims_count),
            required_skills: Set(list(self.required_skills)),
            assigned_cadre_id: Set(self.assigned_cadre_id),
            planned_date: Set(Some(self.planned_date)),
            kinds: Set(Some(list(self.kinds))),
            reasons: Set(Some(StringList(self.reasons))),
            components: Set(Some(StringList(self.components))),
            gentle: Set(self.gentle),
            first_visit: Set(self.first_visit),
            assign_to_cadre: Set(self.assign_to_cadre),
            preferred_time: Set(self.preferred_time.map(str::to_string)),
            visitor_gender: Set(self.visitor_gender.map(str::to_string)),
            status_reason: Set(self.status_reason.map(str::to_string)),
            needs_attention: Set(self.needs_attention),
            created_at: Set(self.created_at),
            updated_at: Set(self.updated_at),
            rescheduled_at: Set(None),
        }
    }
}

/// Inserts the tasks whose key is new, skipping (not failing on) keys that exist; returns
/// how many were inserted. PostgreSQL gets one binary array per column, expanded by
/// `unnest`: a multi-row VALUES list of 25,000 parameters (or one JSON document) costs it
/// more to bind, plan or parse than the insert itself. SQLite, in process, takes a
/// multi-row VALUES list.
async fn insert_tasks(txn: &DatabaseTransaction, rows: Vec<NewTask>) -> Result<u64, DbErr> {
    if rows.is_empty() {
        return Ok(0);
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let names: Vec<&str> = NEW_TASK_COLUMNS.iter().map(|c| c.0).collect();
            // JSON and nullable columns travel as text and are cast per row.
            let exprs: Vec<String> = NEW_TASK_COLUMNS
                .iter()
                .map(|(n, t)| match t.strip_suffix('?') {
                    Some(t) => format!("NULLIF({n}, '')::{t}"),
                    None if *t == "json" => format!("{n}::json"),
                    None => n.to_string(),
                })
                .collect();
            let params: Vec<String> = NEW_TASK_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, (_, t))| match *t {
                    "json" => format!("${}::text[]", i + 1),
                    t if t.ends_with('?') => format!("${}::text[]", i + 1),
                    t => format!("${}::{t}[]", i + 1),
                })
                .collect();
            format!(
                "INSERT INTO visit_task ({cols}) SELECT {exprs} FROM unnest({params}) \
                 AS r({cols})",
                cols = names.join(", "),
                exprs = exprs.join(", "),
                params = params.join(", "),
            )
        });
        let statement = |sql: String| {
            Statement::from_sql_and_values(DbBackend::Postgres, sql, column_arrays(&rows))
        };
        // The batch's existing tasks were read, so a conflict means another run inserted
        // the same visit meanwhile: rare. A plain INSERT costs about two thirds of one with
        // ON CONFLICT (which inserts speculatively), so try it first, in a savepoint.
        let savepoint = txn.begin().await?;
        match savepoint.execute_raw(statement(sql.clone())).await {
            Ok(res) => {
                savepoint.commit().await?;
                return Ok(res.rows_affected());
            }
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                savepoint.rollback().await?;
            }
            Err(e) => return Err(e),
        }
        let res = txn
            .execute_raw(statement(format!(
                "{sql} ON CONFLICT (unique_key) DO NOTHING"
            )))
            .await?;
        return Ok(res.rows_affected());
    }
    let res = visit_task::Entity::insert_many(rows.into_iter().map(NewTask::into_active_model))
        .on_conflict_do_nothing_on([visit_task::Column::UniqueKey])
        .exec_without_returning(txn)
        .await?;
    Ok(match res {
        sea_orm::TryInsertResult::Inserted(n) => n,
        _ => 0,
    })
}

/// The values of [`NEW_TASK_COLUMNS`], one array each.
fn column_arrays(rows: &[NewTask]) -> Vec<Value> {
    fn array(ty: ArrayType, rows: &[NewTask], f: impl Fn(&NewTask) -> Value) -> Value {
        Value::Array(ty, Some(Box::new(rows.iter().map(f).collect())))
    }
    fn json<T: Serialize + ?Sized>(v: &T) -> Value {
        // A list of strings always serialises.
        Value::String(Some(
            serde_json::to_string(v).unwrap_or_else(|_| "[]".into()),
        ))
    }
    let text = |s: &str| Value::String(Some(s.to_string()));
    let opt_text = |s: Option<&str>| text(s.unwrap_or_default());
    vec![
        array(ArrayType::Uuid, rows, |r| Value::Uuid(Some(r.id))),
        array(ArrayType::Uuid, rows, |r| Value::Uuid(Some(r.family_id))),
        array(ArrayType::String, rows, |r| text(r.kind)),
        array(ArrayType::String, rows, |r| text(r.channel)),
        array(ArrayType::String, rows, |r| text(&r.unique_key)),
        array(ArrayType::ChronoDateTimeUtc, rows, |r| {
            Value::ChronoDateTimeUtc(Some(r.window_start))
        }),
        array(ArrayType::ChronoDateTimeUtc, rows, |r| {
            Value::ChronoDateTimeUtc(Some(r.window_end))
        }),
        array(ArrayType::String, rows, |r| text(r.status)),
        array(ArrayType::Int, rows, |r| {
            Value::Int(Some(r.volunteers_needed))
        }),
        array(ArrayType::Int, rows, |r| Value::Int(Some(r.claims_count))),
        array(ArrayType::String, rows, |r| json(&r.required_skills)),
        array(ArrayType::String, rows, |r| {
            text(
                &r.assigned_cadre_id
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
            )
        }),
        array(ArrayType::ChronoDate, rows, |r| {
            Value::ChronoDate(Some(r.planned_date))
        }),
        array(ArrayType::String, rows, |r| json(&r.kinds)),
        array(ArrayType::String, rows, |r| json(&r.reasons)),
        array(ArrayType::String, rows, |r| json(&r.components)),
        array(ArrayType::Bool, rows, |r| Value::Bool(Some(r.gentle))),
        array(ArrayType::Bool, rows, |r| Value::Bool(Some(r.first_visit))),
        array(ArrayType::Bool, rows, |r| {
            Value::Bool(Some(r.assign_to_cadre))
        }),
        array(ArrayType::String, rows, |r| opt_text(r.preferred_time)),
        array(ArrayType::String, rows, |r| opt_text(r.visitor_gender)),
        array(ArrayType::String, rows, |r| opt_text(r.status_reason)),
        array(ArrayType::Bool, rows, |r| {
            Value::Bool(Some(r.needs_attention))
        }),
        array(ArrayType::ChronoDateTimeUtc, rows, |r| {
            Value::ChronoDateTimeUtc(Some(r.created_at))
        }),
        array(ArrayType::ChronoDateTimeUtc, rows, |r| {
            Value::ChronoDateTimeUtc(Some(r.updated_at))
        }),
    ]
}

fn group_by_reason(items: Vec<(Uuid, String)>) -> Vec<(String, Vec<Uuid>)> {
    let mut groups: Vec<(String, Vec<Uuid>)> = Vec::new();
    for (id, reason) in items {
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((reason, vec![id])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::default_rules;
    use chrono_tz::Asia::Shanghai;

    #[test]
    fn family_reasons_are_the_planners() {
        let input = |status| FamilyInput {
            id: Uuid::nil(),
            category: FamilyCategory::Hardship,
            status,
            members: Vec::new(),
            preferences: Preferences::default(),
            first_visit_done: true,
        };
        let d = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let rules = default_rules(FamilyCategory::Hardship, false);
        for (status, reason) in [
            (FamilyStatus::Paused, REASON_PAUSED),
            (FamilyStatus::Closed, REASON_CLOSED),
        ] {
            let plan = plan_family(&input(status), &rules, d, d, Shanghai);
            assert_eq!(plan.skipped[0].reason, reason);
        }
    }

    #[test]
    fn elderly_counts_full_years() {
        let from = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap();
        let parent = |year, month, day, relation| MemberInput {
            id: Uuid::nil(),
            name: String::new(),
            relation,
            birth: Some(Birth {
                calendar: BirthCalendar::Solar,
                year: Some(year),
                month,
                day,
                leap: false,
            }),
            deceased: false,
            death_date: None,
        };
        assert!(is_elderly(
            &[parent(1966, 6, 15, MemberRelation::Mother)],
            from
        ));
        assert!(!is_elderly(
            &[parent(1966, 6, 16, MemberRelation::Father)],
            from
        ));
        assert!(!is_elderly(
            &[parent(1950, 1, 1, MemberRelation::Child)],
            from
        ));
        let mut dead = parent(1950, 1, 1, MemberRelation::Father);
        dead.deceased = true;
        assert!(!is_elderly(&[dead], from));
    }

    #[test]
    fn preferences_read_the_stored_shape() {
        let p = preferences(&serde_json::json!({
            "quiet_from": "20:30", "quiet_to": "08:30", "no_festive_visits": true
        }))
        .unwrap();
        assert!(p.no_festive_visits);
        assert!(preferences(&serde_json::json!({})).is_ok());
        assert!(preferences(&serde_json::json!({"no_festive_visits": "yes"})).is_err());
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("/a_b%/"), "/a\\_b\\%/");
    }

    #[test]
    fn primary_kind_prefers_the_occasion() {
        assert_eq!(
            primary_kind(&[VisitKind::Checkin, VisitKind::MemberBirthday]),
            "birthday"
        );
        assert_eq!(primary_kind(&[VisitKind::Checkin]), "checkin");
    }
}

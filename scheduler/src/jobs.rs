//! Cron jobs that are harmless when fired twice, late, or by several instances at once.
//!
//! - tokio-cron-scheduler is only the tick source: every instance fires every job.
//! - On each fire the instance asks the leader [`Lease`]; only the holder goes on.
//! - The run ledger `job_run` has one row per (job, period), unique, so a period runs once
//!   however often it is fired: [`run_once`] inserts the row first and runs the work only
//!   if it won the insert (or took over a stale or failed run).
//! - Periods are computed from the scheduled fire time in the deployment's time zone
//!   ("2026-11-24" for a daily job), so a late fire still counts for its own slot.
//! - When an instance becomes leader (at start, or when taking over from a dead one) it
//!   catches up each job's most recent slot if that never completed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use entity::job_run;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::lease::Lease;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a job's work returns: statistics to keep in `job_run.stats`, or an error message.
pub type JobResult = Result<Value, String>;

pub type JobFn = Arc<dyn Fn(JobContext) -> BoxFuture<'static, JobResult> + Send + Sync>;

/// How a job's runs are keyed in the ledger: one run per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// "2026-11-24" (local date).
    Daily,
    /// "2026-11-24T03" (local hour).
    Hourly,
    /// "2026-11-24T03:15": minutes since local midnight rounded down to a multiple of n.
    EveryMinutes(u32),
    /// "2026-11-24T03:15:20": seconds since local midnight rounded down to a multiple of n.
    EverySeconds(u32),
}

/// The period `now` falls in, in time zone `tz`.
pub fn period_for(schedule: Period, now: DateTime<Utc>, tz: Tz) -> String {
    let local = now.with_timezone(&tz);
    let date = local.format("%Y-%m-%d");
    match schedule {
        Period::Daily => date.to_string(),
        Period::Hourly => format!("{date}T{:02}", local.hour()),
        Period::EveryMinutes(n) => {
            let n = std::cmp::max(n, 1);
            let m = (local.hour() * 60 + local.minute()) / n * n;
            format!("{date}T{:02}:{:02}", m / 60, m % 60)
        }
        Period::EverySeconds(n) => {
            let n = std::cmp::max(n, 1);
            let s = local.num_seconds_from_midnight() / n * n;
            format!("{date}T{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        }
    }
}

/// Parses a 6-field cron expression (seconds first) the way tokio-cron-scheduler does:
/// day-of-month AND day-of-week must both match.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("bad cron expression {expr:?}: {e}"))
}

/// The latest time at or before `now` that `cron` (in `tz`) fires.
pub fn last_fire(cron: &str, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let cron = parse_cron(cron).ok()?;
    cron.find_previous_occurrence(&now.with_timezone(&tz), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Catch-up on start-up: the period of the latest scheduled fire at or before `now`, if the
/// job's last completed period (`last_done`) is older than it (or there is none). E.g. a
/// daily job at 02:00 started at 09:00 whose last done period is yesterday's gets today's;
/// started at 01:00 it gets nothing (yesterday's is done, today's time has not come).
pub fn missed_period(
    cron: &str,
    schedule: Period,
    last_done: Option<&str>,
    now: DateTime<Utc>,
    tz: Tz,
) -> Option<String> {
    let fired = last_fire(cron, now, tz)?;
    let period = period_for(schedule, fired, tz);
    match last_done {
        Some(done) if done >= period.as_str() => None,
        _ => Some(period),
    }
}

/// What [`run_once`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// The work ran and succeeded; `took_over` if it re-ran a stale or failed run.
    Done {
        id: Uuid,
        stats: Value,
        took_over: bool,
    },
    /// The work ran and failed; the row says "failed" and a later call may retry it.
    Failed {
        id: Uuid,
        error: String,
        took_over: bool,
    },
    /// Someone already ran (status "done") or is running (status "running") this period:
    /// nothing was done.
    AlreadyRan { status: String, holder: String },
}

impl RunOutcome {
    /// Whether this call ran the work.
    pub fn ran(&self) -> bool {
        !matches!(self, RunOutcome::AlreadyRan { .. })
    }
}

/// How [`run_once_with`] treats existing rows.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// A "running" row older than this was left by a process that died: take it over.
    pub stale_after: Duration,
    /// Run a period again whose last run failed.
    pub retry_failed: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            stale_after: Duration::from_secs(3600),
            retry_failed: true,
        }
    }
}

/// Runs `work` for (`job`, `period`) unless that period has already run, with the default
/// [`RunOptions`] (stale after an hour, failed runs retried).
pub async fn run_once<F, Fut>(
    db: &DatabaseConnection,
    job: &str,
    period: &str,
    holder: &str,
    work: F,
) -> Result<RunOutcome, DbErr>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = JobResult>,
{
    run_once_with(db, job, period, holder, RunOptions::default(), work).await
}

/// Timestamps with microsecond precision, so they compare equal after a round trip
/// through PostgreSQL.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    now.with_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

/// [`run_once`] with explicit options: [`begin_run`], the work, [`finish_run`].
pub async fn run_once_with<F, Fut>(
    db: &DatabaseConnection,
    job: &str,
    period: &str,
    holder: &str,
    opts: RunOptions,
    work: F,
) -> Result<RunOutcome, DbErr>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = JobResult>,
{
    let ticket = match begin_run(db, job, period, holder, opts).await? {
        Begin::Started(ticket) => ticket,
        Begin::Taken(row) => {
            return Ok(match row {
                Some(r) => RunOutcome::AlreadyRan {
                    status: r.status,
                    holder: r.holder,
                },
                // Deleted in between: treat as taken, the next fire will see.
                None => RunOutcome::AlreadyRan {
                    status: "unknown".into(),
                    holder: String::new(),
                },
            });
        }
    };
    let result = work().await;
    finish_run(db, &ticket, &result).await?;
    let (id, took_over) = (ticket.id, ticket.took_over);
    Ok(match result {
        Ok(stats) => RunOutcome::Done {
            id,
            stats,
            took_over,
        },
        Err(error) => RunOutcome::Failed {
            id,
            error,
            took_over,
        },
    })
}

/// A run this caller holds in the ledger (its row says "running"): do the work, then
/// record the result with [`finish_run`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunTicket {
    /// The `job_run` row.
    pub id: Uuid,
    pub job: String,
    pub period: String,
    pub holder: String,
    pub started_at: DateTime<Utc>,
    /// Whether a stale or failed run of the period was taken over.
    pub took_over: bool,
}

/// What [`begin_run`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Begin {
    /// The period is this caller's to run.
    Started(RunTicket),
    /// Someone already ran (status "done") or is running (status "running") this period,
    /// or it failed and failed runs are not retried: its row (None if it vanished in
    /// between).
    Taken(Option<job_run::Model>),
}

/// The first half of [`run_once_with`]: claims (`job`, `period`) in the ledger by inserting
/// its "running" row, or by taking over a row whose runner died (`opts.stale_after`) or
/// that failed (`opts.retry_failed`).
pub async fn begin_run(
    db: &DatabaseConnection,
    job: &str,
    period: &str,
    holder: &str,
    opts: RunOptions,
) -> Result<Begin, DbErr> {
    use job_run::Column as C;
    let started = now_micros();
    let id = Uuid::now_v7();
    let insert = Query::insert()
        .into_table(job_run::Entity)
        .columns([C::Id, C::Job, C::Period, C::Status, C::Holder, C::StartedAt])
        .values_panic([
            id.into(),
            job.into(),
            period.into(),
            "running".into(),
            holder.into(),
            started.into(),
        ])
        .on_conflict(
            OnConflict::columns([C::Job, C::Period])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    let (id, took_over) = if db.execute(&insert).await?.rows_affected() == 1 {
        (id, false)
    } else {
        // The period has a row: take it over if its runner died or it failed.
        let stale_before =
            started - chrono::Duration::from_std(opts.stale_after).unwrap_or_default();
        let mut retriable = Expr::col(C::Status)
            .eq("running")
            .and(Expr::col(C::StartedAt).lt(stale_before));
        if opts.retry_failed {
            retriable = retriable.or(Expr::col(C::Status).eq("failed"));
        }
        let take = Query::update()
            .table(job_run::Entity)
            .value(C::Status, "running")
            .value(C::Holder, holder)
            .value(C::StartedAt, started)
            .value(C::FinishedAt, Option::<DateTime<Utc>>::None)
            .value(C::Stats, Option::<Value>::None)
            .value(C::Error, Option::<String>::None)
            .and_where(Expr::col(C::Job).eq(job))
            .and_where(Expr::col(C::Period).eq(period))
            .and_where(retriable)
            .to_owned();
        if db.execute(&take).await?.rows_affected() != 1 {
            let row = job_run::Entity::find()
                .filter(C::Job.eq(job))
                .filter(C::Period.eq(period))
                .one(db)
                .await?;
            return Ok(Begin::Taken(row));
        }
        let row = job_run::Entity::find()
            .filter(C::Job.eq(job))
            .filter(C::Period.eq(period))
            .one(db)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("job_run {job} {period}")))?;
        tracing::info!(job, period, previous = %row.id, "taking over a stale or failed run");
        (row.id, true)
    };
    Ok(Begin::Started(RunTicket {
        id,
        job: job.to_owned(),
        period: period.to_owned(),
        holder: holder.to_owned(),
        started_at: started,
        took_over,
    }))
}

/// The second half of [`run_once_with`]: records the work's result ("done" with its stats,
/// or "failed" with the message) on the ticket's row. Returns false, and records nothing,
/// when the run was taken over meanwhile (it ran past `stale_after`).
pub async fn finish_run(
    db: &DatabaseConnection,
    ticket: &RunTicket,
    result: &JobResult,
) -> Result<bool, DbErr> {
    use job_run::Column as C;
    let finished = now_micros();
    let (status, stats, error) = match result {
        Ok(stats) => ("done", Some(stats.clone()), None),
        Err(e) => ("failed", None, Some(e.clone())),
    };
    let finish = Query::update()
        .table(job_run::Entity)
        .value(C::Status, status)
        .value(C::FinishedAt, finished)
        .value(C::Stats, stats)
        .value(C::Error, error)
        .and_where(Expr::col(C::Id).eq(ticket.id))
        .and_where(Expr::col(C::Holder).eq(ticket.holder.as_str()))
        .and_where(Expr::col(C::StartedAt).eq(ticket.started_at))
        .and_where(Expr::col(C::Status).eq("running"))
        .to_owned();
    if db.execute(&finish).await?.rows_affected() != 1 {
        tracing::warn!(
            job = %ticket.job,
            period = %ticket.period,
            "run was taken over while running; its result is not recorded"
        );
        return Ok(false);
    }
    Ok(true)
}

/// The ledger, newest first; `job` narrows to one job.
pub async fn history(
    db: &DatabaseConnection,
    job: Option<&str>,
    limit: u64,
) -> Result<Vec<job_run::Model>, DbErr> {
    let mut q = job_run::Entity::find();
    if let Some(job) = job {
        q = q.filter(job_run::Column::Job.eq(job));
    }
    q.order_by_desc(job_run::Column::StartedAt)
        .order_by_desc(job_run::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// The last period of `job` that completed.
pub async fn last_done_period(db: &DatabaseConnection, job: &str) -> Result<Option<String>, DbErr> {
    let row = job_run::Entity::find()
        .filter(job_run::Column::Job.eq(job))
        .filter(job_run::Column::Status.eq("done"))
        .order_by_desc(job_run::Column::Period)
        .one(db)
        .await?;
    Ok(row.map(|r| r.period))
}

/// What a job's work gets.
#[derive(Clone)]
pub struct JobContext {
    pub db: DatabaseConnection,
    pub job: &'static str,
    /// The period this run is for, e.g. "2026-11-24".
    pub period: String,
    /// The leader lease's fencing token this run was started under.
    pub token: u64,
    pub holder: String,
    pub lease: Arc<Lease>,
    pub lease_name: String,
}

impl JobContext {
    /// Whether this instance still holds the lease it started under; check right before
    /// committing work whose duplication would matter.
    pub async fn still_leader(&self) -> bool {
        self.lease.is_current(&self.lease_name, self.token).await
    }
}

/// One scheduled job.
#[derive(Clone)]
pub struct JobSpec {
    /// At most 32 characters (the ledger's column).
    pub name: &'static str,
    /// 6-field cron expression, seconds first, in the deployment's time zone.
    pub cron: String,
    pub period: Period,
    pub work: JobFn,
}

impl JobSpec {
    pub fn new<F, Fut>(name: &'static str, cron: impl Into<String>, period: Period, work: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        JobSpec {
            name,
            cron: cron.into(),
            period,
            work: Arc::new(move |ctx| Box::pin(work(ctx))),
        }
    }
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSpec")
            .field("name", &self.name)
            .field("cron", &self.cron)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// Timings of [`start_with`].
#[derive(Clone, Debug)]
pub struct StartOptions {
    pub lease_name: String,
    /// How long the lease lasts without renewal: a dead leader is replaced within this.
    pub lease_ttl: Duration,
    /// How often the lease is renewed (well under `lease_ttl`).
    pub renew_every: Duration,
    pub run: RunOptions,
    /// How long `shutdown` waits for running jobs before giving up the lease anyway.
    pub shutdown_grace: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            lease_name: "scheduler".into(),
            lease_ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(20),
            run: RunOptions::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

struct Shared {
    db: DatabaseConnection,
    lease: Arc<Lease>,
    tz: Tz,
    specs: Vec<JobSpec>,
    holder: String,
    opts: StartOptions,
    /// The fencing token while this instance is the leader, else 0.
    token: AtomicU64,
    stopping: AtomicBool,
    /// Each running fire holds a read guard; shutdown waits for the write guard.
    inflight: Arc<RwLock<()>>,
    catch_up_lock: Mutex<()>,
}

impl Shared {
    /// Acquires or renews the lease; the token if this instance is the leader. Becoming
    /// leader (or getting a new token) starts a catch-up.
    async fn ensure_leader(self: &Arc<Self>) -> Option<u64> {
        let got = self
            .lease
            .acquire_or_renew(&self.opts.lease_name, &self.holder, self.opts.lease_ttl)
            .await;
        match got {
            Ok(Some(token)) => {
                let before = self.token.swap(token, Ordering::SeqCst);
                if before != token && !self.stopping.load(Ordering::SeqCst) {
                    tracing::info!(holder = %self.holder, token, "became scheduler leader");
                    let me = Arc::clone(self);
                    tokio::spawn(async move { me.catch_up().await });
                }
                Some(token)
            }
            Ok(None) => {
                if self.token.swap(0, Ordering::SeqCst) != 0 {
                    tracing::warn!(holder = %self.holder, "lost scheduler leadership");
                }
                None
            }
            Err(e) => {
                tracing::warn!(holder = %self.holder, error = %e, "scheduler lease unavailable; not acting");
                self.token.store(0, Ordering::SeqCst);
                None
            }
        }
    }

    async fn catch_up(self: Arc<Self>) {
        let _one_at_a_time = self.catch_up_lock.lock().await;
        let Ok(_running) = self.inflight.clone().try_read_owned() else {
            return; // shutting down
        };
        for spec in &self.specs {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let token = self.token.load(Ordering::SeqCst);
            if token == 0 {
                return;
            }
            let last = match last_done_period(&self.db, spec.name).await {
                Ok(last) => last,
                Err(e) => {
                    tracing::warn!(job = spec.name, error = %e, "catch-up: reading the ledger failed");
                    continue;
                }
            };
            if let Some(period) = missed_period(
                &spec.cron,
                spec.period,
                last.as_deref(),
                Utc::now(),
                self.tz,
            ) {
                tracing::info!(job = spec.name, period, "catching up a missed run");
                self.run(spec, period, token).await;
            }
        }
    }

    async fn fire(self: Arc<Self>, index: usize) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(_running) = self.inflight.clone().try_read_owned() else {
            return;
        };
        let Some(token) = self.ensure_leader().await else {
            return;
        };
        let spec = &self.specs[index];
        let now = Utc::now();
        // The slot this fire is for, even if it comes a little late.
        let slot = last_fire(&spec.cron, now, self.tz).unwrap_or(now);
        let period = period_for(spec.period, slot, self.tz);
        self.run(spec, period, token).await;
    }

    async fn run(&self, spec: &JobSpec, period: String, token: u64) {
        let ctx = JobContext {
            db: self.db.clone(),
            job: spec.name,
            period: period.clone(),
            token,
            holder: self.holder.clone(),
            lease: Arc::clone(&self.lease),
            lease_name: self.opts.lease_name.clone(),
        };
        let work = Arc::clone(&spec.work);
        let outcome = run_once_with(
            &self.db,
            spec.name,
            &period,
            &self.holder,
            self.opts.run,
            || async move {
                // A panicking job is recorded as failed instead of leaving "running" behind.
                match tokio::spawn(work(ctx)).await {
                    Ok(result) => result,
                    Err(e) => Err(format!("job panicked: {e}")),
                }
            },
        )
        .await;
        match outcome {
            Ok(RunOutcome::Done { stats, .. }) => {
                tracing::info!(job = spec.name, period, %stats, "job done");
            }
            Ok(RunOutcome::Failed { error, .. }) => {
                tracing::error!(job = spec.name, period, error, "job failed");
            }
            Ok(RunOutcome::AlreadyRan { status, .. }) => {
                tracing::debug!(job = spec.name, period, status, "already ran");
            }
            Err(e) => tracing::error!(job = spec.name, period, error = %e, "job ledger error"),
        }
    }
}

/// The running scheduler of one instance.
pub struct JobsHandle {
    shared: Arc<Shared>,
    scheduler: tokio_cron_scheduler::JobScheduler,
    renewer: tokio::task::JoinHandle<()>,
}

impl JobsHandle {
    pub fn holder(&self) -> &str {
        &self.shared.holder
    }

    /// Whether this instance was the leader at its last lease check.
    pub fn is_leader(&self) -> bool {
        self.token() != 0
    }

    /// The fencing token while leader, else 0.
    pub fn token(&self) -> u64 {
        self.shared.token.load(Ordering::SeqCst)
    }

    async fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.renewer.abort();
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = ?e, "stopping the cron scheduler");
        }
    }

    /// Stops firing, waits (up to the grace period) for running jobs, and releases the
    /// lease so that another instance takes over at once.
    pub async fn shutdown(mut self) {
        self.stop().await;
        let grace = self.shared.opts.shutdown_grace;
        if tokio::time::timeout(grace, self.shared.inflight.write())
            .await
            .is_err()
        {
            tracing::warn!("jobs still running at shutdown; releasing the lease anyway");
        }
        self.shared.token.store(0, Ordering::SeqCst);
        let s = &self.shared;
        if let Err(e) = s.lease.release(&s.opts.lease_name, &s.holder).await {
            tracing::warn!(error = %e, "releasing the scheduler lease");
        }
    }

    /// Stops firing without waiting or releasing the lease, as if the process had died:
    /// another instance takes over only when the lease expires. For tests.
    pub async fn abandon(mut self) {
        self.stop().await;
        self.shared.token.store(0, Ordering::SeqCst);
    }
}

/// Starts the cron jobs with the default timings (lease "scheduler", 60 s, renewed every
/// 20 s). `holder` identifies this instance (see [`crate::lease::holder_id`]).
pub async fn start(
    db: DatabaseConnection,
    lease: Arc<Lease>,
    tz: Tz,
    specs: Vec<JobSpec>,
    holder: String,
) -> anyhow::Result<JobsHandle> {
    start_with(db, lease, tz, specs, holder, StartOptions::default()).await
}

/// [`start`] with explicit timings.
pub async fn start_with(
    db: DatabaseConnection,
    lease: Arc<Lease>,
    tz: Tz,
    specs: Vec<JobSpec>,
    holder: String,
    opts: StartOptions,
) -> anyhow::Result<JobsHandle> {
    for spec in &specs {
        parse_cron(&spec.cron).map_err(|e| anyhow::anyhow!("job {}: {e}", spec.name))?;
        anyhow::ensure!(
            spec.name.len() <= 32,
            "job name {:?} is longer than 32",
            spec.name
        );
    }
    anyhow::ensure!(holder.len() <= 64, "holder id is longer than 64");
    let shared = Arc::new(Shared {
        db,
        lease,
        tz,
        specs,
        holder,
        opts,
        token: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        inflight: Arc::new(RwLock::new(())),
        catch_up_lock: Mutex::new(()),
    });

    let scheduler = tokio_cron_scheduler::JobScheduler::new().await?;
    for (index, spec) in shared.specs.iter().enumerate() {
        let s = Arc::clone(&shared);
        let job = tokio_cron_scheduler::Job::new_async_tz(spec.cron.as_str(), tz, move |_, _| {
            let s = Arc::clone(&s);
            Box::pin(async move { s.fire(index).await })
        })?;
        scheduler.add(job).await?;
    }

    // Take the lease now if free (which also catches up), then keep renewing it.
    shared.ensure_leader().await;
    let s = Arc::clone(&shared);
    let renewer = tokio::spawn(async move {
        let mut every = tokio::time::interval(s.opts.renew_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if s.stopping.load(Ordering::SeqCst) {
                break;
            }
            s.ensure_leader().await;
        }
    });
    scheduler.start().await?;
    Ok(JobsHandle {
        shared,
        scheduler,
        renewer,
    })
}

//! The scheduled jobs of a deployment: planning every family's visits nightly, marking
//! visits whose window passed unfulfilled as missed, and flagging reported visits the family
//! has not confirmed in time (hourly). Every instance fires them; the leader
//! lease (Redis when configured, else the database) makes one act, and the run ledger makes
//! a second fire of the same period a no-op.
//!
//! Beside them runs the notification dispatcher (`notify.enabled`), in every instance at
//! once: it needs no leader, each takes its own batches.

use std::sync::Arc;

use chrono::{Days, Utc};
use scheduler::{
    generate::{GenerateOptions, generate},
    jobs::{JobSpec, JobsHandle, Period},
    lease::{Lease, holder_id},
    rules::FestivalSet,
};
use serde::Deserialize;
use serde_json::json;

use crate::{app::AppState, cache::Cache, config::VisitsConfig};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Run the jobs inside `nuanxin serve` (they can also run alone: `nuanxin jobs`).
    pub enabled: bool,
    /// 6-field cron (seconds first), in the deployment's time zone.
    pub plan_cron: String,
    pub missed_cron: String,
    /// Flags reported visits the family has not confirmed (`visits.confirm_within_hours`).
    pub unconfirmed_cron: String,
    /// How far ahead visits are planned.
    pub horizon_days: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            plan_cron: "0 30 2 * * *".into(),
            missed_cron: "0 10 * * * *".into(),
            unconfirmed_cron: "0 20 * * * *".into(),
            horizon_days: 60,
        }
    }
}

pub fn specs(
    config: &JobsConfig,
    visits: &VisitsConfig,
    tz: chrono_tz::Tz,
    festivals: &FestivalSet,
) -> Vec<JobSpec> {
    let horizon = config.horizon_days;
    let confirm_within = visits.confirm_within_hours;
    let festivals = festivals.clone();
    vec![
        JobSpec::new(
            "plan",
            config.plan_cron.clone(),
            Period::Daily,
            move |ctx| {
                let festivals = festivals.clone();
                async move {
                    let today = Utc::now().with_timezone(&tz).date_naive();
                    let mut opts = GenerateOptions::new(today, tz);
                    opts.to = today.checked_add_days(Days::new(horizon)).unwrap_or(today);
                    opts.festivals = festivals;
                    let stats = generate(&ctx.db, &opts).await.map_err(|e| e.to_string())?;
                    serde_json::to_value(stats).map_err(|e| e.to_string())
                }
            },
        ),
        JobSpec::new(
            "missed",
            config.missed_cron.clone(),
            Period::Hourly,
            move |ctx| async move {
                let n = crate::notify::produce::mark_missed(&ctx.db, tz, Utc::now())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({ "missed": n }))
            },
        ),
        JobSpec::new(
            "unconfirmed",
            config.unconfirmed_cron.clone(),
            Period::Hourly,
            move |ctx| async move {
                let n =
                    crate::api::reports::flag_unconfirmed(&ctx.db, Utc::now(), confirm_within, tz)
                        .await
                        .map_err(|e| e.to_string())?;
                Ok(json!({ "flagged": n }))
            },
        ),
    ]
}

/// The daily reminders job: coordinators' escalations (visits short of volunteers,
/// unanswered wishes) and the volunteers' digest of new visits (`reminders.daily_cron`).
/// Its messages carry the day in their keys, so a second run the same day queues nothing.
pub fn reminder_specs(
    config: &crate::notify::remind::RemindersConfig,
    tz: chrono_tz::Tz,
) -> Vec<JobSpec> {
    let c = config.clone();
    vec![JobSpec::new(
        "reminders",
        config.daily_cron.clone(),
        Period::Daily,
        move |ctx| {
            let c = c.clone();
            async move {
                let done = crate::notify::produce::daily(&ctx.db, &c, tz, Utc::now())
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::to_value(done).map_err(|e| e.to_string())
            }
        },
    )]
}

/// The proposals job: holders proposed for the visits nobody claimed in time
/// (`assign.cron`), applied at once in regions set to apply automatically.
pub fn assign_specs(config: &crate::assignments::AssignConfig, tz: chrono_tz::Tz) -> Vec<JobSpec> {
    let c = config.clone();
    vec![JobSpec::new(
        "assign",
        config.cron.clone(),
        Period::Hourly,
        move |ctx| {
            let c = c.clone();
            async move {
                let all = crate::auth::Scope::All;
                let stats = crate::assignments::run(
                    &ctx.db,
                    &c,
                    tz,
                    crate::assignments::Due::In(&all),
                    Utc::now(),
                )
                .await
                .map_err(|e| e.to_string())?;
                serde_json::to_value(stats).map_err(|e| e.to_string())
            }
        },
    )]
}

/// The festival surge warning (`surge.cron`), when `surge.enabled`.
pub fn surge_specs(state: &AppState) -> Vec<JobSpec> {
    let c = state.config.surge.clone();
    if !c.enabled {
        return Vec::new();
    }
    let (tz, festivals) = (state.tz, state.festivals.clone());
    vec![JobSpec::new(
        "surge",
        c.cron.clone(),
        Period::Daily,
        move |ctx| {
            let (c, festivals) = (c.clone(), festivals.clone());
            async move {
                let now = Utc::now();
                let today = now.with_timezone(&tz).date_naive();
                let mut opts = GenerateOptions::new(today, tz);
                opts.festivals = festivals;
                let n = crate::notify::produce::surge_warnings(&ctx.db, &opts, &c, today, now)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({ "warnings": n }))
            }
        },
    )]
}

/// The jobs running in this instance.
pub struct Running {
    cron: JobsHandle,
    dispatcher: Option<crate::notify::dispatch::Dispatcher>,
}

impl Running {
    /// Stops both, waiting for work in progress (see `JobsHandle::shutdown`).
    pub async fn shutdown(self) {
        if let Some(d) = self.dispatcher {
            d.shutdown().await;
        }
        self.cron.shutdown().await;
    }
}

/// Starts the jobs of this instance, and the notification dispatcher.
pub async fn start(state: &Arc<AppState>) -> anyhow::Result<Running> {
    let cron = start_cron(state).await?;
    let dispatcher = state
        .config
        .notify
        .enabled
        .then(|| crate::notify::dispatch::Dispatcher::start(state.clone()));
    Ok(Running { cron, dispatcher })
}

async fn start_cron(state: &AppState) -> anyhow::Result<JobsHandle> {
    let lease = match state.cache.as_ref() {
        Cache::Redis { conn, prefix } => Lease::Redis {
            conn: conn.clone(),
            key_prefix: prefix.clone(),
        },
        Cache::Memory(_) => Lease::Database(state.db.clone()),
    };
    let holder = holder_id();
    tracing::info!(%holder, "scheduled jobs started");
    let mut jobs = specs(
        &state.config.jobs,
        &state.config.visits,
        state.tz,
        &state.festivals,
    );
    jobs.extend(reminder_specs(&state.config.reminders, state.tz));
    jobs.extend(assign_specs(&state.config.assign, state.tz));
    jobs.extend(surge_specs(state));
    scheduler::jobs::start(state.db.clone(), Arc::new(lease), state.tz, jobs, holder).await
}

/// Brings one family's visits in line with its record right after a change (a member's
/// birthday, the family's status, preferences or pairing) instead of at the next nightly
/// run. The change is already committed: a failure is logged and the nightly run retries.
pub async fn replan(state: &AppState, family: uuid::Uuid) {
    let opts = state.plan_options(state.today());
    let started = chrono::Utc::now();
    if let Err(e) = scheduler::generate::replan_family(&state.db, family, &opts).await {
        tracing::error!(%family, error = %e, "re-planning after a change failed; the nightly run will retry");
    }
    if let Err(e) = state.feed.catch_up(&state.db, started).await {
        tracing::warn!(error = %e, "the feed's index will see the new plan at its next refresh");
    }
}

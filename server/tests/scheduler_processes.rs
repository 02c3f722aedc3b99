//! The scheduler as real `nuanxin` processes against one database (and one Redis when
//! `REDIS_URL` is set): two `nuanxin jobs` started at once plan every visit once, and a
//! `nuanxin plan` killed halfway and started again ends with exactly the visits of an
//! uninterrupted run. (scheduler/tests/jobs_db.rs and generate_db.rs test the same
//! in-process.)
//!
//! Each test makes its own database with `tests::database_url` (a SQLite file, or a fresh
//! PostgreSQL `nx_test_*` database when `DATABASE_URL` is set) and its own Redis key
//! prefix. The second database a test compares with is a copy of the first made right
//! after seeding (the file, or `CREATE DATABASE … TEMPLATE`), so that family ids, and with
//! them the visits' unique keys, are the same in both.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use chrono::Utc;
use entity::{job_lease, job_run, visit_task};
use scheduler::jobs::{Period, StartOptions, missed_period};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde_json::Value;
use server::config::Config;

mod processes;
use processes::*;

/// Families per batch of the `plan` runs of the kill test: many small transactions, so
/// that the kill lands between (or inside) them.
const BATCH: &str = "20";

impl World {
    /// `nuanxin plan <args>`: its figures.
    async fn plan(&self, url: &str, args: &[&str], name: &str) -> Value {
        let args: Vec<&str> = ["plan"].iter().chain(args).copied().collect();
        let out = self.run(url, &args, name).await;
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("plan printed {out:?}: {e}"))
    }
}

async fn task_count(db: &DatabaseConnection) -> u64 {
    visit_task::Entity::find()
        .count(db)
        .await
        .expect("count tasks")
}

/// [`task_count`] once it has not changed for half a second.
async fn settled_task_count(db: &DatabaseConnection) -> u64 {
    let mut last = task_count(db).await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = task_count(db).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn tasks(db: &DatabaseConnection) -> Vec<visit_task::Model> {
    visit_task::Entity::find()
        .order_by_asc(visit_task::Column::UniqueKey)
        .all(db)
        .await
        .expect("tasks")
}

/// No two live tasks (open, claimed, done, confirmed: those the generator counts as
/// covering their occasions) of one family cover the same occasion. A task's occasions
/// are its `components`, or its own key when it merges nothing.
fn assert_each_occasion_once(tasks: &[visit_task::Model], label: &str) {
    let mut seen: HashMap<(uuid::Uuid, &str), &str> = HashMap::new();
    for t in tasks {
        if !matches!(t.status.as_str(), "open" | "claimed" | "done" | "confirmed") {
            continue;
        }
        let parts: Vec<&str> = match t.components.as_ref().map(|c| c.0.as_slice()) {
            Some(list @ [_, ..]) => list.iter().map(String::as_str).collect(),
            _ => vec![t.unique_key.as_str()],
        };
        for part in parts {
            if let Some(other) = seen.insert((t.family_id, part), &t.unique_key) {
                panic!(
                    "{label}: occasion {part} is covered by {other} and {}",
                    t.unique_key
                );
            }
        }
    }
}

/// The same rows (sorted), or a failure naming a few of the differences.
fn assert_same<T: Ord + Debug>(got: Vec<T>, want: Vec<T>, label: &str) {
    if got == want {
        return;
    }
    let (g, w): (BTreeSet<&T>, BTreeSet<&T>) = (got.iter().collect(), want.iter().collect());
    let extra: Vec<_> = g.difference(&w).take(5).collect();
    let missing: Vec<_> = w.difference(&g).take(5).collect();
    panic!(
        "{label}: {} rows ({} distinct) where {} ({} distinct) were expected; \
         unexpected: {extra:?}; missing: {missing:?}",
        got.len(),
        g.len(),
        want.len(),
        w.len()
    );
}

fn figure(stats: &Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_processes_started_at_once_plan_each_visit_once() {
    let mut world = World::new().await;
    let label = if world.is_sqlite() {
        "sqlite"
    } else {
        "postgres"
    };
    let label = format!(
        "{label}, lease in {}",
        if world.redis.is_some() {
            "Redis"
        } else {
            "the database"
        }
    );
    let url = world.url.clone();
    world
        .run(&url, &["seed", "--families", "400"], "seed")
        .await;
    let reference = world.copy_database(&url, "reference").await;

    // Two instances at once, configured alike. The ledger has no "plan" run yet, so the one
    // that takes the lease catches up the latest nightly slot at start; the other is
    // refused the lease and waits for a cron fire (where the lease refuses it again).
    let mut a = world.spawn(&url, &["jobs"], "jobs-a");
    // The other one as the separate binary a deployment may run instead.
    let mut b = world.spawn(&url, &["nuanxin-jobs"], "jobs-b");
    let db = connect(&url).await;
    let started = Instant::now();
    let run = loop {
        for p in [&mut a, &mut b] {
            if let Some(status) = p.exited() {
                panic!("{label}: {} ended ({status}):\n{}", p.name, p.log());
            }
        }
        let done = job_run::Entity::find()
            .filter(job_run::Column::Job.eq("plan"))
            .filter(job_run::Column::Status.eq("done"))
            .one(&db)
            .await
            .expect("ledger");
        // Both got as far as asking for the lease (right after this line of their log).
        let both_up = [&a, &b].iter().all(|p| p.logged("scheduled jobs started"));
        if let Some(run) = done
            && both_up
        {
            break run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{label}: no plan run done after 120 s\n{}\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A moment for the later one's first lease request to land (a refusal writes nothing
    // to wait for); had it been granted, the lease's token would show it below.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (pid_a, pid_b) = (a.pid(), b.pid());
    let (logs_a, logs_b) = (a.log.clone(), b.log.clone());
    let logs = || format!("{}\n{}", tail(&logs_a), tail(&logs_b));
    for p in [&mut a, &mut b] {
        p.kill();
    }

    // One run of the period, by one of the two processes (holder ids hold the pid). The
    // period is the date of the latest 02:30 slot when it started, which before 02:30 is
    // yesterday's; the visits are planned from the day it ran, over the horizon.
    let config = Config::default();
    let tz = config.tz().expect("time zone");
    let period = missed_period(
        &config.jobs.plan_cron,
        Period::Daily,
        None,
        run.started_at,
        tz,
    )
    .expect("a nightly slot");
    assert_eq!(run.period, period, "{label}");
    let of_period = job_run::Entity::find()
        .filter(job_run::Column::Job.eq("plan"))
        .filter(job_run::Column::Period.eq(&period))
        .all(&db)
        .await
        .expect("ledger");
    assert_eq!(of_period.len(), 1, "{label}: {of_period:?}");
    let leader = run.holder.clone();
    assert!(
        [pid_a, pid_b]
            .iter()
            .any(|pid| leader.contains(&format!("-{pid}-"))),
        "{label}: run by {leader}, not by {pid_a} or {pid_b}"
    );
    // Only the leader acted: every run in the ledger (the missed-visit job's catch-up too)
    // is its, and none failed.
    let all_runs = job_run::Entity::find().all(&db).await.expect("ledger");
    for r in &all_runs {
        assert_eq!(r.holder, leader, "{label}: {all_runs:?}\n{}", logs());
        assert_ne!(r.status, "failed", "{label}: {r:?}\n{}", logs());
    }
    // The lease was taken once, by the leader, where it should live.
    let lease_name = StartOptions::default().lease_name;
    let leases = job_lease::Entity::find().all(&db).await.expect("leases");
    if let Some(mut redis) = world.redis_conn().await {
        assert!(leases.is_empty(), "{label}: {leases:?}");
        let key = format!("{}:lease:{lease_name}", world.prefix);
        let held: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .expect("redis");
        assert_eq!(held, Some(format!("{leader}:1")), "{label}");
    } else {
        assert_eq!(leases.len(), 1, "{label}: {leases:?}");
        assert_eq!(leases[0].name, lease_name);
        assert_eq!((leases[0].holder.as_str(), leases[0].token), (&*leader, 1));
    }

    let stats = run.stats.clone().expect("run stats");
    let got = tasks(&db).await;
    assert_eq!(figure(&stats, "families"), 400, "{label}: {stats}");
    assert_eq!(
        figure(&stats, "created"),
        got.len() as u64,
        "{label}: {stats}"
    );
    assert!(got.len() > 1000, "{label}: {} tasks", got.len());
    assert_each_occasion_once(&got, &label);

    // Exactly what one `nuanxin plan` from that day makes of the same families.
    let from = run.started_at.with_timezone(&tz).date_naive().to_string();
    let single = world
        .plan(&reference, &["--from", &from], "plan-reference")
        .await;
    let reference_db = connect(&reference).await;
    let want = tasks(&reference_db).await;
    assert_eq!(figure(&single, "created"), want.len() as u64, "{single}");
    let key = |t: &visit_task::Model| {
        (
            t.unique_key.clone(),
            t.window_start,
            t.window_end,
            t.kind.clone(),
        )
    };
    assert_same(
        got.iter().map(key).collect(),
        want.iter().map(key).collect(),
        &format!("{label}: the jobs' visits vs one plan's"),
    );

    eprintln!(
        "{label}: {} visits, period {period} from {from}, run by {leader}",
        want.len()
    );
    db.close().await.ok();
    reference_db.close().await.ok();
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_killed_halfway_and_run_again_ends_with_the_visits_of_an_uninterrupted_run() {
    let today = Utc::now()
        .with_timezone(&Config::default().tz().expect("time zone"))
        .date_naive()
        .to_string();
    let plan_args = ["--from", today.as_str(), "--batch", BATCH];
    let mut families = 5000;
    for _attempt in 0..3 {
        let mut world = World::new().await;
        let label = if world.is_sqlite() {
            "sqlite"
        } else {
            "postgres"
        };
        let url = world.url.clone();
        world
            .run(&url, &["seed", "--families", &families.to_string()], "seed")
            .await;
        let reference = world.copy_database(&url, "reference").await;

        // The uninterrupted run, on the copy.
        let whole = world.plan(&reference, &plan_args, "plan-whole").await;
        let reference_db = connect(&reference).await;
        let total = task_count(&reference_db).await;
        assert_eq!(figure(&whole, "created"), total, "{label}: {whole}");

        // The same run, killed once a third of the visits are committed.
        let db = connect(&url).await;
        let args: Vec<&str> = ["plan"].iter().chain(&plan_args).copied().collect();
        let mut killed = world.spawn(&url, &args, "plan-killed");
        let status = loop {
            if let Some(status) = killed.exited() {
                break status;
            }
            if task_count(&db).await >= total / 3 {
                break killed.kill();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if status.success() {
            // It ended before the kill: try again with more families.
            eprintln!("{label}: {families} families were planned before the kill; doubling");
            db.close().await.ok();
            reference_db.close().await.ok();
            drop(killed);
            world.finish().await;
            families *= 2;
            continue;
        }
        // A COMMIT the process had sent before it died still completes in PostgreSQL: count
        // once the count holds still.
        let at_kill = settled_task_count(&db).await;
        assert!(
            at_kill > 0 && at_kill < total,
            "{label}: {at_kill} of {total} visits at the kill\n{}",
            killed.log()
        );

        // Started again, it does the rest: the families committed before the kill are up to
        // date and skipped.
        let rest = world.plan(&url, &plan_args, "plan-again").await;
        assert!(figure(&rest, "up_to_date") > 0, "{label}: {rest}");
        assert_eq!(
            figure(&rest, "families") + figure(&rest, "up_to_date"),
            families as u64,
            "{label}: {rest}"
        );
        assert_eq!(figure(&rest, "created"), total - at_kill, "{label}: {rest}");
        assert_eq!(figure(&rest, "cancelled"), 0, "{label}: {rest}");
        assert_eq!(figure(&rest, "updated"), 0, "{label}: {rest}");

        let got = tasks(&db).await;
        let want = tasks(&reference_db).await;
        assert_each_occasion_once(&got, label);
        let key = |t: &visit_task::Model| {
            (
                t.unique_key.clone(),
                t.window_start,
                t.window_end,
                t.status.clone(),
                t.kind.clone(),
            )
        };
        assert_same(
            got.iter().map(key).collect(),
            want.iter().map(key).collect(),
            &format!("{label}: the interrupted run's visits vs the uninterrupted run's"),
        );
        eprintln!("{label}: {families} families, killed at {at_kill} of {total} visits, completed");
        db.close().await.ok();
        reference_db.close().await.ok();
        drop(killed);
        world.finish().await;
        return;
    }
    panic!("every plan run ended before it could be killed, the last with {families} families");
}

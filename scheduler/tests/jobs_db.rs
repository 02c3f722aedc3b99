//! The run ledger (`job_run`), the leader lease and the cron scheduler on a real database:
//! SQLite always; PostgreSQL too when `DATABASE_URL` is set (a fresh `nx_test_*` database
//! per test) and the Redis lease when `REDIS_URL` is set (a fresh key prefix per test).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use entity::job_run;
use migrations::{Migrator, MigratorTrait};
use scheduler::jobs::{
    self, JobSpec, Period, RunOptions, RunOutcome, StartOptions, missed_period, period_for,
    run_once, run_once_with,
};
use scheduler::lease::{Lease, holder_id};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    EntityTrait, QueryFilter, Set,
};
use serde_json::json;

struct TestDb {
    label: &'static str,
    db: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, database name) of a PostgreSQL test database, dropped at the end.
    pg: Option<(String, String)>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
        let mut opts = ConnectOptions::new(url);
        opts.max_connections(4).sqlx_logging(false);
        let db = Database::connect(opts).await.expect("open SQLite");
        db.execute_unprepared("PRAGMA journal_mode=WAL;")
            .await
            .expect("WAL");
        Migrator::up(&db, None).await.expect("migrate SQLite");
        TestDb {
            label: "sqlite",
            db,
            _dir: Some(dir),
            pg: None,
        }
    }

    async fn postgres(admin_url: &str) -> TestDb {
        let name = format!("nx_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("DATABASE_URL ends in /dbname");
        let mut opts = ConnectOptions::new(format!("{base}/{name}"));
        opts.max_connections(8).sqlx_logging(false);
        let db = Database::connect(opts).await.expect("open test database");
        Migrator::up(&db, None).await.expect("migrate PostgreSQL");
        TestDb {
            label: "postgres",
            db,
            _dir: None,
            pg: Some((admin_url.to_owned(), name)),
        }
    }

    /// SQLite, and PostgreSQL when DATABASE_URL is set.
    async fn all() -> Vec<TestDb> {
        let mut v = vec![TestDb::sqlite().await];
        if let Some(url) = env("DATABASE_URL") {
            v.push(TestDb::postgres(&url).await);
        }
        v
    }

    async fn cleanup(self) {
        self.db.close().await.ok();
        if let Some((admin_url, name)) = self.pg
            && let Ok(admin) = Database::connect(&admin_url).await
        {
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .ok();
            admin.close().await.ok();
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// A Redis lease under a fresh key prefix, when REDIS_URL is set.
async fn redis_lease() -> Option<(Lease, String)> {
    let url = env("REDIS_URL")?;
    let client = redis::Client::open(url).expect("REDIS_URL parses");
    let conn = redis::aio::ConnectionManager::new(client)
        .await
        .expect("Redis reachable");
    let prefix = format!("nx_test_{}", uuid::Uuid::new_v4().simple());
    Some((
        Lease::Redis {
            conn,
            key_prefix: prefix.clone(),
        },
        prefix,
    ))
}

async fn redis_cleanup(lease: &Lease, prefix: &str) {
    if let Lease::Redis { conn, .. } = lease {
        let mut conn = conn.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}

/// The leases to test against `db`: the database lease, and Redis when configured.
async fn leases(db: &DatabaseConnection) -> Vec<(&'static str, Arc<Lease>, Option<String>)> {
    let mut v = vec![("db-lease", Arc::new(Lease::Database(db.clone())), None)];
    if let Some((lease, prefix)) = redis_lease().await {
        v.push(("redis-lease", Arc::new(lease), Some(prefix)));
    }
    v
}

async fn runs(db: &DatabaseConnection, job: &str) -> Vec<job_run::Model> {
    jobs::history(db, Some(job), 10_000).await.expect("history")
}

#[test]
fn periods_are_local_and_fixed_width() {
    // 2026-11-24 19:30:05 UTC is 2026-11-25 03:30:05 in Shanghai.
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 19, 30, 5).unwrap();
    assert_eq!(period_for(Period::Daily, t, Shanghai), "2026-11-25");
    assert_eq!(period_for(Period::Hourly, t, Shanghai), "2026-11-25T03");
    assert_eq!(
        period_for(Period::EveryMinutes(15), t, Shanghai),
        "2026-11-25T03:30"
    );
    assert_eq!(
        period_for(Period::EveryMinutes(20), t, Shanghai),
        "2026-11-25T03:20"
    );
    assert_eq!(
        period_for(Period::EverySeconds(1), t, Shanghai),
        "2026-11-25T03:30:05"
    );
    assert_eq!(
        period_for(Period::EverySeconds(10), t, Shanghai),
        "2026-11-25T03:30:00"
    );
}

#[test]
fn missed_daily_period_is_caught_up_once_its_time_has_passed() {
    let cron = "0 0 2 * * *"; // 02:00 Shanghai
    let at = |h, m| {
        Shanghai
            .with_ymd_and_hms(2026, 11, 24, h, m, 0)
            .unwrap()
            .to_utc()
    };
    // 09:00, last done yesterday: today's 02:00 run was missed.
    assert_eq!(
        missed_period(cron, Period::Daily, Some("2026-11-23"), at(9, 0), Shanghai).as_deref(),
        Some("2026-11-24")
    );
    // 09:00, today's already done: nothing.
    assert_eq!(
        missed_period(cron, Period::Daily, Some("2026-11-24"), at(9, 0), Shanghai),
        None
    );
    // 01:00, yesterday done, today's time not yet come: nothing.
    assert_eq!(
        missed_period(cron, Period::Daily, Some("2026-11-23"), at(1, 0), Shanghai),
        None
    );
    // Exactly at 02:00 counts as passed.
    assert_eq!(
        missed_period(cron, Period::Daily, Some("2026-11-23"), at(2, 0), Shanghai).as_deref(),
        Some("2026-11-24")
    );
    // Never ran: the latest slot.
    assert_eq!(
        missed_period(cron, Period::Daily, None, at(1, 0), Shanghai).as_deref(),
        Some("2026-11-23")
    );
    // A bad expression gives nothing rather than a panic.
    assert_eq!(
        missed_period("0 0 2 * *", Period::Daily, None, at(9, 0), Shanghai),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_run_of_a_period_is_a_no_op() {
    for t in TestDb::all().await {
        let db = &t.db;
        let count = AtomicU64::new(0);
        let work = || async {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"made": 3}))
        };
        let first = run_once(db, "nightly", "2026-11-24", "a", work)
            .await
            .unwrap();
        assert!(
            matches!(&first, RunOutcome::Done { stats, took_over: false, .. } if stats["made"] == 3),
            "{}: {first:?}",
            t.label
        );
        let second = run_once(db, "nightly", "2026-11-24", "b", work)
            .await
            .unwrap();
        assert_eq!(
            second,
            RunOutcome::AlreadyRan {
                status: "done".into(),
                holder: "a".into()
            },
            "{}",
            t.label
        );
        assert_eq!(count.load(Ordering::SeqCst), 1, "{}", t.label);
        // Another period is another run.
        let other = run_once(db, "nightly", "2026-11-25", "b", work)
            .await
            .unwrap();
        assert!(other.ran(), "{}", t.label);
        assert_eq!(count.load(Ordering::SeqCst), 2, "{}", t.label);

        let rows = runs(db, "nightly").await;
        assert_eq!(rows.len(), 2, "{}", t.label);
        assert_eq!(rows[0].period, "2026-11-25", "{}: newest first", t.label);
        assert!(
            rows.iter()
                .all(|r| r.status == "done" && r.finished_at.is_some())
        );
        assert_eq!(rows[1].stats, Some(json!({"made": 3})));
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs_of_a_period_run_once() {
    for t in TestDb::all().await {
        let db = &t.db;
        for round in 0..5 {
            let period = format!("2026-11-{:02}", 10 + round);
            let count = AtomicU64::new(0);
            let work = || async {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(json!({}))
            };
            let (a, b) = tokio::join!(
                run_once(db, "race", &period, "a", work),
                run_once(db, "race", &period, "b", work)
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(count.load(Ordering::SeqCst), 1, "{}: {a:?} {b:?}", t.label);
            assert!(a.ran() != b.ran(), "{}: {a:?} {b:?}", t.label);
        }
        assert_eq!(runs(db, "race").await.len(), 5);
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_and_failed_runs_are_taken_over_live_ones_are_not() {
    for t in TestDb::all().await {
        let db = &t.db;
        let opts = RunOptions {
            stale_after: Duration::from_secs(3600),
            retry_failed: true,
        };
        let row = |period: &str, started: chrono::DateTime<Utc>| job_run::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            job: Set("nightly".into()),
            period: Set(period.into()),
            status: Set("running".into()),
            holder: Set("dead-host-1-abc".into()),
            started_at: Set(started),
            finished_at: Set(None),
            stats: Set(None),
            error: Set(None),
        };
        // Left running two hours ago by a process that died.
        row("2026-11-20", Utc::now() - chrono::Duration::hours(2))
            .insert(db)
            .await
            .unwrap();
        // Running right now elsewhere.
        row("2026-11-21", Utc::now()).insert(db).await.unwrap();

        let count = AtomicU64::new(0);
        let work = || async {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"ok": true}))
        };
        let stale = run_once_with(db, "nightly", "2026-11-20", "me", opts, work)
            .await
            .unwrap();
        assert!(
            matches!(
                stale,
                RunOutcome::Done {
                    took_over: true,
                    ..
                }
            ),
            "{}: {stale:?}",
            t.label
        );
        let live = run_once_with(db, "nightly", "2026-11-21", "me", opts, work)
            .await
            .unwrap();
        assert_eq!(
            live,
            RunOutcome::AlreadyRan {
                status: "running".into(),
                holder: "dead-host-1-abc".into()
            },
            "{}",
            t.label
        );
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let taken = job_run::Entity::find()
            .filter(job_run::Column::Period.eq("2026-11-20"))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (taken.status.as_str(), taken.holder.as_str()),
            ("done", "me")
        );

        // A failed run is recorded, and retried by the next fire of the same period.
        let failed = run_once_with(db, "nightly", "2026-11-22", "me", opts, || async {
            Err::<serde_json::Value, _>("database went away".to_owned())
        })
        .await
        .unwrap();
        assert!(matches!(
            failed,
            RunOutcome::Failed {
                took_over: false,
                ..
            }
        ));
        let row = job_run::Entity::find()
            .filter(job_run::Column::Period.eq("2026-11-22"))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "failed");
        assert_eq!(row.error.as_deref(), Some("database went away"));
        let retried = run_once_with(db, "nightly", "2026-11-22", "you", opts, work)
            .await
            .unwrap();
        assert!(matches!(
            retried,
            RunOutcome::Done {
                took_over: true,
                ..
            }
        ));
        // Without retries a failed run stays failed.
        let no_retry = RunOptions {
            retry_failed: false,
            ..opts
        };
        run_once_with(db, "nightly", "2026-11-23", "me", no_retry, || async {
            Err::<serde_json::Value, _>("no".to_owned())
        })
        .await
        .unwrap();
        let again = run_once_with(db, "nightly", "2026-11-23", "me", no_retry, work)
            .await
            .unwrap();
        assert!(matches!(again, RunOutcome::AlreadyRan { ref status, .. } if status == "failed"));
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_has_one_holder_and_growing_tokens() {
    for t in TestDb::all().await {
        for (kind, lease, prefix) in leases(&t.db).await {
            let label = format!("{}/{kind}", t.label);
            let ttl = Duration::from_millis(200);
            let (a, b) = (holder_id(), holder_id());
            assert_ne!(a, b);
            assert!(a.len() <= 64 && !a.contains(':'), "{a}");

            // Two holders race for a fresh lease: exactly one wins.
            let (ra, rb) = tokio::join!(
                lease.acquire_or_renew("scheduler", &a, ttl),
                lease.acquire_or_renew("scheduler", &b, ttl)
            );
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            assert!(ra.is_some() != rb.is_some(), "{label}: {ra:?} {rb:?}");
            let (winner, loser, first) = match (ra, rb) {
                (Some(tok), None) => (a.clone(), b.clone(), tok),
                (None, Some(tok)) => (b.clone(), a.clone(), tok),
                _ => unreachable!(),
            };
            // Renewing keeps the token; the other still gets nothing.
            let renewed = lease
                .acquire_or_renew("scheduler", &winner, ttl)
                .await
                .unwrap();
            assert_eq!(renewed, Some(first), "{label}");
            assert_eq!(
                lease
                    .acquire_or_renew("scheduler", &loser, ttl)
                    .await
                    .unwrap(),
                None,
                "{label}"
            );
            assert!(lease.is_current("scheduler", first).await, "{label}");
            // Another lease name is independent.
            assert!(
                lease
                    .acquire_or_renew("other", &loser, ttl)
                    .await
                    .unwrap()
                    .is_some()
            );

            // The winner stops renewing; after the TTL the other takes over.
            tokio::time::sleep(Duration::from_millis(350)).await;
            assert!(!lease.is_current("scheduler", first).await, "{label}");
            let second = lease
                .acquire_or_renew("scheduler", &loser, ttl)
                .await
                .unwrap()
                .expect("expired lease is free");
            assert!(second > first, "{label}: {second} > {first}");
            assert!(!lease.is_current("scheduler", first).await, "{label}");
            assert!(lease.is_current("scheduler", second).await, "{label}");
            assert_eq!(
                lease
                    .acquire_or_renew("scheduler", &winner, ttl)
                    .await
                    .unwrap(),
                None,
                "{label}"
            );

            // Releasing frees it at once; only the holder can release.
            assert!(
                !lease.release("scheduler", &winner).await.unwrap(),
                "{label}"
            );
            assert!(lease.is_current("scheduler", second).await, "{label}");
            assert!(lease.release("scheduler", &loser).await.unwrap(), "{label}");
            assert!(!lease.is_current("scheduler", second).await, "{label}");
            let third = lease
                .acquire_or_renew("scheduler", &winner, Duration::from_secs(5))
                .await
                .unwrap()
                .expect("released lease is free");
            assert!(third > second, "{label}");

            // The same holder whose lease lapsed gets a new token, not its old one.
            lease.release("scheduler", &winner).await.unwrap();
            let fourth = lease
                .acquire_or_renew("scheduler", &winner, ttl)
                .await
                .unwrap()
                .unwrap();
            assert!(fourth > third, "{label}");

            if let Some(prefix) = prefix {
                redis_cleanup(&lease, &prefix).await;
            }
        }
        t.cleanup().await;
    }
}

fn ticking_spec(name: &'static str, counter: Arc<AtomicU64>) -> JobSpec {
    JobSpec::new(name, "* * * * * *", Period::EverySeconds(1), move |ctx| {
        let counter = Arc::clone(&counter);
        async move {
            assert!(ctx.token > 0);
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"period": ctx.period, "token": ctx.token}))
        }
    })
}

fn fast_options() -> StartOptions {
    StartOptions {
        lease_ttl: Duration::from_millis(1500),
        renew_every: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(5),
        ..StartOptions::default()
    }
}

/// Every period in the ledger ran once, and the work ran once per period.
async fn assert_ledger_consistent(
    db: &DatabaseConnection,
    job: &str,
    counter: &AtomicU64,
    label: &str,
) {
    let rows = runs(db, job).await;
    let periods: BTreeSet<&str> = rows.iter().map(|r| r.period.as_str()).collect();
    assert_eq!(periods.len(), rows.len(), "{label}: periods are unique");
    assert!(rows.iter().all(|r| r.status == "done"), "{label}: {rows:?}");
    assert_eq!(
        counter.load(Ordering::SeqCst),
        rows.len() as u64,
        "{label}: work ran once per period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_run_each_period_once() {
    for t in TestDb::all().await {
        for (kind, lease, prefix) in leases(&t.db).await {
            let label = format!("{}/{kind}", t.label);
            let job = "tick";
            // Each combination gets its own ledger rows.
            job_run::Entity::delete_many().exec(&t.db).await.unwrap();
            let counter = Arc::new(AtomicU64::new(0));
            let start = |holder: String| {
                jobs::start_with(
                    t.db.clone(),
                    Arc::clone(&lease),
                    Shanghai,
                    vec![ticking_spec(job, Arc::clone(&counter))],
                    holder,
                    fast_options(),
                )
            };
            let (a, b) = tokio::join!(start(holder_id()), start(holder_id()));
            let (a, b) = (a.unwrap(), b.unwrap());
            tokio::time::sleep(Duration::from_millis(3200)).await;
            assert!(a.is_leader() != b.is_leader(), "{label}: one leader");
            let leader = if a.is_leader() {
                a.holder()
            } else {
                b.holder()
            }
            .to_owned();
            tokio::join!(a.shutdown(), b.shutdown());

            let rows = runs(&t.db, job).await;
            assert!(rows.len() >= 2, "{label}: {} runs in 3 s", rows.len());
            assert!(
                rows.iter().all(|r| r.holder == leader),
                "{label}: only the leader ran"
            );
            assert_ledger_consistent(&t.db, job, &counter, &label).await;
            // Nothing runs after shutdown.
            let after = counter.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1200)).await;
            assert_eq!(counter.load(Ordering::SeqCst), after, "{label}");
            if let Some(prefix) = prefix {
                redis_cleanup(&lease, &prefix).await;
            }
        }
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_instance_takes_over_from_a_dead_or_stopped_leader() {
    for t in TestDb::all().await {
        for (kind, lease, prefix) in leases(&t.db).await {
            let label = format!("{}/{kind}", t.label);
            let job = "tick";
            job_run::Entity::delete_many().exec(&t.db).await.unwrap();
            let counter = Arc::new(AtomicU64::new(0));
            let start = |holder: String| {
                jobs::start_with(
                    t.db.clone(),
                    Arc::clone(&lease),
                    Shanghai,
                    vec![ticking_spec(job, Arc::clone(&counter))],
                    holder,
                    fast_options(),
                )
            };
            let a = start(holder_id()).await.unwrap();
            assert!(a.is_leader(), "{label}: the first instance leads");
            let b = start(holder_id()).await.unwrap();
            assert!(!b.is_leader(), "{label}");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let (a_holder, a_token) = (a.holder().to_owned(), a.token());

            // The leader dies without releasing: the other takes over within the TTL.
            a.abandon().await;
            let died = tokio::time::Instant::now();
            while !b.is_leader() {
                assert!(
                    died.elapsed() < Duration::from_millis(3000),
                    "{label}: no takeover"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                died.elapsed() >= Duration::from_millis(500),
                "{label}: took over before the lease could have lapsed"
            );
            assert!(b.token() > a_token, "{label}: fencing token grew");
            assert!(!lease.is_current("scheduler", a_token).await, "{label}");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let rows = runs(&t.db, job).await;
            assert!(rows.iter().any(|r| r.holder == a_holder), "{label}");
            assert!(rows.iter().any(|r| r.holder == b.holder()), "{label}");

            // A graceful shutdown releases the lease: a third takes over at its next renewal.
            let c = start(holder_id()).await.unwrap();
            assert!(!c.is_leader(), "{label}");
            let b_token = b.token();
            b.shutdown().await;
            let stopped = tokio::time::Instant::now();
            while !c.is_leader() {
                assert!(
                    stopped.elapsed() < Duration::from_millis(1200),
                    "{label}: no prompt takeover after release"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(c.token() > b_token, "{label}");
            tokio::time::sleep(Duration::from_millis(1200)).await;
            c.shutdown().await;
            assert_ledger_consistent(&t.db, job, &counter, &label).await;
            if let Some(prefix) = prefix {
                redis_cleanup(&lease, &prefix).await;
            }
        }
        t.cleanup().await;
    }
}

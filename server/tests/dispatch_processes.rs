//! The notification dispatcher as real `nuanxin jobs` processes sending to the fake
//! WeChat server over HTTP, with what arrived counted on the fake's side:
//!
//! - killed (SIGKILL) again and again in the middle of sending, with passing WeChat
//!   failures mixed in, it loses no message, and the duplicates stay within the sends in
//!   flight at the kills (WeChat has no idempotency key: a send it accepted just before the
//!   kill is sent again);
//! - it also takes over a help request an API process left unacknowledged when it died,
//!   and escalates it one tier up;
//! - `dispatch_100k` (ignored: a benchmark) sends 100 000 messages with 10% passing
//!   failures and prints how many per second, with duplicates and losses counted;
//!   `enqueue_cost_of_claims` (ignored too) prints what queuing its messages adds to a claim.
//!
//! Runs on SQLite by default, on PostgreSQL and Redis with `DATABASE_URL` and `REDIS_URL`.

use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use entity::{
    BirthCalendar, FamilyCategory, MemberRelation, UserStatus, app_user, family_member,
    help_request, notification, subscription_quota,
};
use miniapp_stub::TEMPLATE_VISIT_NOTICE as TPL;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait,
};
use serde_json::json;
use tests::{
    Options, TestApp, spawn_app_with,
    visits::{VisitSpec, VolunteerSpec},
};
use uuid::Uuid;

mod processes;
use processes::*;

/// People sent to at once by one dispatcher: at most this many sends are in flight when
/// it is killed.
const CONCURRENCY: usize = 8;

/// `n` people on WeChat, each with one grant (ours and WeChat's), and one message queued
/// for each. Returns the openids.
async fn queue_one_each(app: &TestApp, n: usize) -> Vec<String> {
    let family = app
        .family_at("杨柳村", FamilyCategory::Bereaved, "钱秀英", None)
        .await;
    let visit = app
        .visit(VisitSpec::new(family, Utc::now() + Duration::days(3), 24))
        .await;
    let now = Utc::now();
    let mut openids = Vec::with_capacity(n);
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    for chunk in ids.chunks(1000) {
        let users = chunk.iter().map(|id| {
            let openid = format!("o-{}", id.simple());
            // WeChat knows the person from their login and holds their grant; a second
            // one lets a duplicate through, so that it is counted instead of refused.
            app.wechat.mint_code(&openid, None);
            app.wechat.grant_credits(&openid, TPL, 2);
            openids.push(openid.clone());
            app_user::ActiveModel {
                id: Set(*id),
                name: Set("测试".into()),
                phone: Set(None),
                openid: Set(Some(openid)),
                unionid: Set(None),
                status: Set(UserStatus::Active),
                created_at: Set(now),
                updated_at: Set(now),
            }
        });
        app_user::Entity::insert_many(users)
            .exec(&app.state.db)
            .await
            .expect("users");
        let grants = chunk.iter().map(|id| subscription_quota::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(*id),
            template_id: Set(TPL.into()),
            balance: Set(1),
            updated_at: Set(now),
        });
        subscription_quota::Entity::insert_many(grants)
            .exec(&app.state.db)
            .await
            .expect("grants");
        let messages = chunk.iter().map(|id| {
            notification::ActiveModel::pending(
                *id,
                "visit_cancelled",
                json!({"task_id": visit, "date": "2026-11-26"}),
                format!("test:{id}"),
                now,
                now,
            )
        });
        notification::Entity::insert_many(messages)
            .exec(&app.state.db)
            .await
            .expect("messages");
    }
    openids
}

/// Configures the `nuanxin jobs` processes: the app's database, the fake WeChat, messages
/// at any hour, quick retries.
fn configure(world: &mut World, app: &TestApp, batch: u64, concurrency: usize) {
    let config = format!(
        r#"
[wechat]
api_base = "{base}"
appid = "{appid}"
secret = "{secret}"
timeout_ms = 2000

[notify]
interval_ms = 50
batch = {batch}
concurrency = {concurrency}
claim_secs = 3
retry_base_secs = 1
retry_max_secs = 2
# Kills count as tries too; here every message must reach WeChat in the end.
max_attempts = 1000
miniprogram_state = "developer"
quiet_start = "00:00"
quiet_end = "00:00"
daily_cap = 0

[notify.templates.visit_cancelled]
template_id = "{TPL}"
"#,
        base = app.wechat.base_url(),
        appid = app.state.config.wechat.appid,
        secret = app.state.config.wechat.secret,
    );
    let file = world.dir.path().join("dispatch.toml");
    std::fs::write(&file, config).expect("config written");
    world
        .extra_env
        .push(("NUANXIN_CONFIG".into(), file.to_string_lossy().into_owned()));
}

/// Messages not yet settled (waiting, or taken by a dispatcher).
async fn unsettled(app: &TestApp) -> u64 {
    notification::Entity::find()
        .filter(notification::Column::Status.is_in([notification::PENDING, notification::SENDING]))
        .count(&app.state.db)
        .await
        .expect("count")
}

/// Sends WeChat accepted, duplicates included.
fn accepted(app: &TestApp) -> u64 {
    app.wechat.sent_counts().values().sum()
}

/// Passing failures on a share of the sends: WeChat busy (-1), the rate limit (45009), a
/// 502 from its gateway.
async fn passing_failures(app: &TestApp, share: f64) {
    let response = app
        .http
        .post(format!("{}/__fake/fault_rates", app.wechat.base_url()))
        .json(&json!({"route": "send", "faults": [
            {"rate": share / 2.0, "errcode": -1},
            {"rate": share / 4.0, "errcode": 45009},
            {"rate": share / 4.0, "http_status": 502},
        ]}))
        .send()
        .await
        .expect("fake answers");
    assert!(response.status().is_success());
}

/// Each person got their message, and how many twice.
fn delivered_and_duplicates(app: &TestApp, openids: &[String]) -> (usize, u64) {
    let counts = app.wechat.sent_counts();
    let delivered = openids
        .iter()
        .filter(|o| counts.contains_key(&((*o).clone(), TPL.to_string())))
        .count();
    let duplicates = counts.values().map(|n| n.saturating_sub(1)).sum();
    (delivered, duplicates)
}

/// Waits until every message is settled, while `proc` keeps running.
async fn until_settled(app: &TestApp, proc: &mut Proc, limit: StdDuration) {
    let started = Instant::now();
    while unsettled(app).await > 0 {
        if let Some(status) = proc.exited() {
            panic!("{} ended ({status}):\n{}", proc.name, proc.log());
        }
        assert!(
            started.elapsed() < limit,
            "{} messages still unsettled after {limit:?}\n{}",
            unsettled(app).await,
            proc.log()
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

fn options() -> Options {
    Options {
        demo_families: Some(0),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_killed_again_and_again_loses_nothing_and_repeats_only_sends_in_flight() {
    const MESSAGES: usize = 1500;
    const KILLS: u32 = 8;
    let app = spawn_app_with(options()).await;
    let mut world = World::new().await;
    configure(&mut world, &app, 50, CONCURRENCY);
    let url = app.state.config.database_url.clone();
    let openids = queue_one_each(&app, MESSAGES).await;
    // Each successful send is held a moment before WeChat answers, so that kills find
    // sends in flight; and some sends fail for a passing reason, to be retried.
    app.http
        .post(format!("{}/__fake/send_options", app.wechat.base_url()))
        .json(&json!({"hold_ms": 15, "reject_concurrent": true}))
        .send()
        .await
        .expect("fake answers");
    passing_failures(&app, 0.05).await;

    let mut kills = 0;
    let mut round = 0;
    while kills < KILLS && unsettled(&app).await > 0 {
        round += 1;
        let mut p = world.spawn(&url, &["jobs"], &format!("jobs-{round}"));
        // Killed once it has sent a random number of messages: in the middle of sending.
        let before = accepted(&app);
        let after = before + 1 + rand::random::<u64>() % 120;
        let started = Instant::now();
        while accepted(&app) < after && unsettled(&app).await > 0 {
            if let Some(status) = p.exited() {
                panic!("jobs-{round} ended ({status}):\n{}", p.log());
            }
            assert!(
                started.elapsed() < StdDuration::from_secs(60),
                "jobs-{round} sent nothing for 60 s\n{}",
                p.log()
            );
            tokio::time::sleep(StdDuration::from_millis(2)).await;
        }
        p.kill();
        kills += 1;
    }
    assert_eq!(kills, KILLS, "the messages ran out before the last kill");

    // A last one, left to finish: what the killed ones had taken comes back after its claim.
    let mut last = world.spawn(&url, &["jobs"], "jobs-last");
    until_settled(&app, &mut last, StdDuration::from_secs(120)).await;
    last.kill();

    let not_sent = notification::Entity::find()
        .filter(notification::Column::Status.ne(notification::SENT))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(not_sent, 0, "every message is marked sent");
    let (delivered, duplicates) = delivered_and_duplicates(&app, &openids);
    eprintln!(
        "{MESSAGES} messages, {kills} kills: {delivered} delivered, {duplicates} sent twice \
         (at most {} in flight at the kills)",
        kills as usize * CONCURRENCY
    );
    assert_eq!(delivered, MESSAGES, "no message is lost");
    assert!(
        duplicates <= kills as u64 * CONCURRENCY as u64,
        "{duplicates} duplicates after {kills} kills of dispatchers sending {CONCURRENCY} at a time"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_process_escalates_a_help_request_nobody_answered() {
    // The test's own server waits a day before escalating: only the jobs process, with
    // the default 10 minutes, escalates this one.
    let app = spawn_app_with(Options {
        configure: Some(|c| c.help.escalate_after_secs = 24 * 3600),
        ..options()
    })
    .await;
    let mut world = World::new().await;
    configure(&mut world, &app, 50, CONCURRENCY);
    let family = app
        .family_at("杨柳村", FamilyCategory::Bereaved, "钱秀英", None)
        .await;
    // Pressed 20 minutes ago; the API process that took it died before anyone answered.
    let made = Utc::now() - Duration::minutes(20);
    let id = Uuid::now_v7();
    help_request::ActiveModel {
        id: Set(id),
        family_id: Set(family),
        requester_id: Set(None),
        kind: Set("general".into()),
        message: Set(String::new()),
        status: Set("open".into()),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_at: Set(None),
        created_at: Set(made),
        escalation_level: Set(0),
        escalated_at: Set(None),
        resolved_by: Set(None),
        resolution: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();

    let mut p = world.spawn(&app.state.config.database_url, &["jobs"], "jobs-help");
    let started = Instant::now();
    loop {
        let level = help_request::Entity::find_by_id(id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .escalation_level;
        if level >= 1 {
            break;
        }
        if let Some(status) = p.exited() {
            panic!("jobs ended ({status}):\n{}", p.log());
        }
        assert!(
            started.elapsed() < StdDuration::from_secs(60),
            "not escalated after 60 s\n{}",
            p.log()
        );
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    p.kill();
    world.finish().await;
}

/// The figure of BENCHMARKS.md: 100 000 messages (`NX_BENCH_MESSAGES`) through one
/// `nuanxin jobs` process, 10% of sends failing for a passing reason.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test --release -p server --test dispatch_processes -- --ignored --nocapture"]
async fn dispatch_100k() {
    let messages: usize =
        env("NX_BENCH_MESSAGES").map_or(100_000, |n| n.parse().expect("a number"));
    let concurrency: usize =
        env("NX_BENCH_CONCURRENCY").map_or(64, |n| n.parse().expect("a number"));
    let app = spawn_app_with(options()).await;
    let mut world = World::new().await;
    configure(&mut world, &app, 500, concurrency);
    let url = app.state.config.database_url.clone();
    let queued = Instant::now();
    let openids = queue_one_each(&app, messages).await;
    eprintln!(
        "queued {messages} in {:.1} s",
        queued.elapsed().as_secs_f64()
    );
    passing_failures(&app, 0.10).await;

    let started = Instant::now();
    let mut p = world.spawn(&url, &["jobs"], "jobs-bench");
    until_settled(&app, &mut p, StdDuration::from_secs(900)).await;
    let all = started.elapsed();
    p.kill();
    let (delivered, duplicates) = delivered_and_duplicates(&app, &openids);
    let db = if url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    println!(
        "dispatch {messages} on {db}, {concurrency} at a time, 10% passing failures \
         (retried after 1–2 s): all delivered in {:.1} s, {:.0}/s; {delivered} delivered, \
         {} lost, {duplicates} duplicates",
        all.as_secs_f64(),
        messages as f64 / all.as_secs_f64(),
        messages - delivered,
    );
    assert_eq!(delivered, messages, "lost messages");
    assert_eq!(duplicates, 0, "duplicates without a crash");
    world.finish().await;
}

/// A family in `village` near the volunteers, whose mother uses the app: a claim tells her
/// who is coming.
async fn family_on_the_app(app: &TestApp, n: usize) -> Uuid {
    let family = app
        .family_at(
            "杨柳村",
            FamilyCategory::Bereaved,
            &format!("钱{n}"),
            Some((31.301, 116.601)),
        )
        .await;
    let now = Utc::now();
    let user = Uuid::now_v7();
    app_user::ActiveModel {
        id: Set(user),
        name: Set(format!("钱{n}")),
        phone: Set(None),
        openid: Set(None),
        unionid: Set(None),
        status: Set(UserStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&app.state.db)
    .await
    .expect("user");
    family_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family),
        name: Set(format!("钱{n}")),
        relation: Set(MemberRelation::Mother),
        gender: Set(Some("女".into())),
        phone: Set(None),
        id_number_enc: Set(None),
        id_number_masked: Set(None),
        birth_calendar: Set(BirthCalendar::Solar),
        birth_year: Set(Some(1955)),
        birth_month: Set(Some(3)),
        birth_day: Set(Some(8)),
        birth_leap_month: Set(false),
        deceased: Set(false),
        death_date: Set(None),
        primary_contact: Set(true),
        user_id: Set(Some(user)),
        created_at: Set(now),
    }
    .insert(&app.state.db)
    .await
    .expect("member");
    family
}

/// The figure of BENCHMARKS.md for the outbox's cost when visits are taken: a claim writes
/// the volunteer's confirmation and reminders and the family's "who is coming" and
/// day-before reminder in its own transaction. Claims through the API one after another,
/// then the same messages queued alone for as many other visits, as the claim queues them.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test --release -p server --test dispatch_processes -- --ignored --nocapture enqueue"]
async fn enqueue_cost_of_claims() {
    const VOLUNTEERS: usize = 200;
    const PER_VOLUNTEER: usize = 5;
    let app = spawn_app_with(options()).await;
    let mut spec = VolunteerSpec::at(31.30, 116.60);
    spec.weekly_capacity = 20;
    let volunteers = app.volunteers(VOLUNTEERS, spec).await;
    // Two visits per volunteer and day (claimed, and queued for alone), days apart.
    let start = Utc::now() + Duration::days(3);
    let mut claimed = Vec::new();
    let mut alone = Vec::new();
    for day in 0..PER_VOLUNTEER {
        for (i, v) in volunteers.iter().enumerate() {
            let family = family_on_the_app(&app, day * VOLUNTEERS + i).await;
            let at = start + Duration::days(day as i64) + Duration::hours(1);
            let a = app.visit(VisitSpec::new(family, at, 2)).await;
            let b = app
                .visit(VisitSpec::new(family, at + Duration::hours(4), 2))
                .await;
            claimed.push((a, v.clone()));
            alone.push((b, v.user_id));
        }
    }
    let n = claimed.len();

    let started = Instant::now();
    for (visit, v) in &claimed {
        app.post(
            &format!("/api/visits/{visit}/claims"),
            Some(&v.token),
            json!({}),
        )
        .await
        .ok();
    }
    let with_messages = started.elapsed().as_secs_f64() / n as f64;
    let queued_by_claims = notification::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap();

    let mut rows = Vec::new();
    for (visit, user) in &alone {
        let task = app.visit_row(*visit).await;
        rows.push((app.hold(&task, &[*user]).await, *user));
    }
    // In one transaction: in a claim they share the claim's (and its commit).
    let state = &app.state;
    let started = Instant::now();
    let txn = state.db.begin().await.unwrap();
    for (task, user) in &rows {
        server::notify::produce::claimed(
            &txn,
            &state.config.reminders,
            state.tz,
            task,
            *user,
            Utc::now(),
        )
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
    let messages = started.elapsed().as_secs_f64() / n as f64;
    let db = if state.config.database_url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    println!(
        "{n} claims on {db} through the API, one at a time: {:.2} ms each, {:.1} messages \
         queued per claim; queuing them alone: {:.2} ms; a claim without them {:.2} ms, \
         so the messages add {:.0}%",
        with_messages * 1e3,
        queued_by_claims as f64 / n as f64,
        messages * 1e3,
        (with_messages - messages) * 1e3,
        100.0 * messages / (with_messages - messages),
    );
    assert!(
        queued_by_claims as usize >= 2 * n,
        "each claim queued its messages"
    );
}

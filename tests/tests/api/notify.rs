//! Notifications as people get them: a WeChat subscribe message when they granted one,
//! the in-app inbox always. WeChat is the fake server over real HTTP; what it received is
//! counted on its side.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use entity::{FamilyCategory, app_user, notification, visit_task};
use miniapp_stub::TEMPLATE_VISIT_NOTICE as TPL;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use serde_json::{Value, json};
use server::notify::dispatch::{Stats, run_batch};
use tests::{
    visits::{VisitSpec, VolunteerSpec},
    *,
};
use uuid::Uuid;

/// A volunteer who logged in with WeChat.
struct Person {
    user: Uuid,
    token: String,
    openid: String,
}

async fn on_wechat(app: &TestApp) -> Person {
    let v = app.volunteer(VolunteerSpec::at(31.30, 116.60)).await;
    let openid = format!("o-{}", v.user_id.simple());
    let mut user = app_user::Entity::find_by_id(v.user_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    user.openid = Set(Some(openid.clone()));
    user.update(&app.state.db).await.unwrap();
    // WeChat knows the person from their login.
    app.wechat.mint_code(&openid, None);
    Person {
        user: v.user_id,
        token: v.token,
        openid,
    }
}

/// The person accepts the template `n` times at taps in the mini-program, which reports
/// each acceptance.
async fn accept(app: &TestApp, p: &Person, n: u32) {
    for _ in 0..n {
        app.wechat.grant_credits(&p.openid, TPL, 1);
        app.post(
            "/api/me/subscriptions",
            Some(&p.token),
            json!({"accepted": [TPL]}),
        )
        .await
        .ok();
    }
}

async fn balance(app: &TestApp, p: &Person) -> i64 {
    let body = app.get("/api/me/subscriptions", Some(&p.token)).await.ok();
    assert_eq!(body["templates"][0]["template_id"], TPL, "{body}");
    body["templates"][0]["balance"].as_i64().unwrap()
}

/// A visit three days ahead that `p` holds.
async fn held_visit(app: &TestApp, p: &Person) -> Uuid {
    let family = app
        .family_at(
            "杨柳村",
            FamilyCategory::Bereaved,
            "钱秀英",
            Some((31.31, 116.60)),
        )
        .await;
    let id = app
        .visit(VisitSpec::new(family, Utc::now() + Duration::days(3), 24))
        .await;
    app.hold(&app.visit_row(id).await, &[p.user]).await;
    id
}

/// Queues a message as the code that causes it does.
async fn queue(app: &TestApp, to: Uuid, template: &str, visit: Uuid) -> Uuid {
    let now = Utc::now();
    let id = Uuid::now_v7();
    notification::ActiveModel {
        id: Set(id),
        recipient_id: Set(to),
        template: Set(template.into()),
        payload: Set(json!({"task_id": visit, "date": "2026-11-26"})),
        dedupe_key: Set(format!("test:{id}")),
        status: Set(notification::PENDING.into()),
        channel: Set(None),
        attempts: Set(0),
        next_attempt_at: Set(now),
        sent_at: Set(None),
        last_error: Set(None),
        read_at: Set(None),
        inbox_at: Set(None),
        due_at: Set(None),
        trail: Set(None),
        created_at: Set(now),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    id
}

async fn row(app: &TestApp, id: Uuid) -> notification::Model {
    notification::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

async fn dispatch(app: &TestApp) -> Stats {
    run_batch(&app.state, Utc::now()).await.unwrap()
}

/// The dispatcher as it will run `hours` from now.
async fn dispatch_later(app: &TestApp, hours: i64) -> Stats {
    run_batch(&app.state, Utc::now() + Duration::hours(hours))
        .await
        .unwrap()
}

fn sent_to(app: &TestApp, p: &Person) -> u64 {
    app.wechat
        .sent_counts()
        .get(&(p.openid.clone(), TPL.to_string()))
        .copied()
        .unwrap_or(0)
}

async fn fake(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app
        .http
        .post(format!("{}/__fake/{path}", app.wechat.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.json().await.unwrap()
}

async fn fake_calls(app: &TestApp) -> Value {
    app.http
        .get(format!("{}/__fake/stats", app.wechat.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn inbox(app: &TestApp, p: &Person, query: &str) -> Value {
    app.get(&format!("/api/me/inbox{query}"), Some(&p.token))
        .await
        .ok()
}

fn no_options() -> Options {
    Options {
        demo_families: Some(0),
        ..Options::default()
    }
}

#[tokio::test]
async fn a_released_volunteer_is_told_on_wechat_once_and_the_grant_is_spent() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    accept(&app, &p, 1).await;
    assert_eq!(balance(&app, &p).await, 1);
    let visit = held_visit(&app, &p).await;

    // A coordinator takes the volunteer off the visit.
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    app.post(
        &format!("/api/visits/{visit}/claims/{}/release", p.user),
        Some(&coordinator),
        json!({"reason": "志愿者临时生病"}),
    )
    .await
    .ok();
    let stats = dispatch(&app).await;
    assert_eq!((stats.taken, stats.wechat), (1, 1), "{stats:?}");

    let outbox = app.wechat.outbox();
    assert_eq!(outbox.len(), 1);
    let m = &outbox[0];
    assert_eq!(
        (m.touser.as_str(), m.template_id.as_str()),
        (p.openid.as_str(), TPL)
    );
    assert_eq!(m.data["thing1"], "走访安排调整");
    assert!(m.data["date2"].ends_with('日'), "{:?}", m.data);
    assert_eq!(
        m.page.as_deref(),
        Some(format!("pages/visit/detail?id={visit}").as_str())
    );
    assert_eq!(m.miniprogram_state, "developer");
    let shown = format!("{:?}", m.data);
    for secret in ["钱秀英", "失独", "杨柳村", "生病"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(balance(&app, &p).await, 0, "the grant is spent");

    // Sent once: a second pass has nothing to do.
    assert_eq!(dispatch_later(&app, 1).await.taken, 0);
    assert_eq!(sent_to(&app, &p), 1);

    // And it is in the inbox, unread.
    let page = inbox(&app, &p, "").await;
    assert_eq!(page["unread"], 1);
    assert_eq!(page["items"][0]["title"], "走访安排有调整");
    assert_eq!(page["items"][0]["visit_id"], visit.to_string());
    assert_eq!(page["items"][0]["read"], false);
}

#[tokio::test]
async fn without_a_grant_or_a_wechat_account_a_message_reaches_the_inbox_only() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    let visit = held_visit(&app, &p).await;
    let no_grant = queue(&app, p.user, "visit_cancelled", visit).await;
    // Someone who never logged in with WeChat.
    let offline = app.volunteer(VolunteerSpec::at(31.30, 116.60)).await;
    let no_wechat = queue(&app, offline.user_id, "visit_cancelled", visit).await;

    let stats = dispatch(&app).await;
    assert_eq!((stats.inbox, stats.wechat), (2, 0), "{stats:?}");
    assert_eq!(fake_calls(&app).await["send"], 0, "WeChat was not asked");
    for (id, why) in [(no_grant, "grant"), (no_wechat, "WeChat account")] {
        let r = row(&app, id).await;
        assert_eq!(
            (r.status.as_str(), r.channel.as_deref()),
            ("sent", Some("inbox"))
        );
        assert!(r.last_error.unwrap().contains(why));
    }
    let page = inbox(&app, &p, "").await;
    assert_eq!(page["items"][0]["title"], "走访已取消");
    let seen = app.get("/api/me/inbox", Some(&offline.token)).await.ok();
    assert_eq!(seen["unread"], 1);
}

#[tokio::test]
async fn wechat_saying_no_grant_is_left_zeroes_the_balance_and_falls_back() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    accept(&app, &p, 2).await;
    // The person turned the template off in WeChat's settings.
    fake(
        &app,
        "credits/revoke",
        json!({"openid": p.openid, "template_id": TPL}),
    )
    .await;
    let visit = held_visit(&app, &p).await;
    let first = queue(&app, p.user, "visit_cancelled", visit).await;
    let second = queue(&app, p.user, "visit_declined", visit).await;

    let stats = dispatch(&app).await;
    assert_eq!((stats.inbox, stats.wechat), (2, 0), "{stats:?}");
    assert_eq!(balance(&app, &p).await, 0);
    // WeChat was asked once; the second message knew better.
    assert_eq!(fake_calls(&app).await["send"], 1);
    let r = row(&app, first).await;
    assert_eq!(r.channel.as_deref(), Some("inbox"));
    assert!(r.last_error.unwrap().contains("43101"));
    assert_eq!(row(&app, second).await.channel.as_deref(), Some("inbox"));
    assert_eq!(inbox(&app, &p, "").await["unread"], 2);
}

#[tokio::test]
async fn a_passing_failure_is_retried_later_and_delivered_once() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    accept(&app, &p, 1).await;
    let visit = held_visit(&app, &p).await;
    let id = queue(&app, p.user, "visit_cancelled", visit).await;
    fake(&app, "faults", json!({"route": "send", "errcode": -1})).await;
    fake(&app, "faults", json!({"route": "send", "http_status": 502})).await;

    assert_eq!(dispatch(&app).await.retried, 1);
    let r = row(&app, id).await;
    assert_eq!((r.status.as_str(), r.attempts), ("pending", 1));
    assert!(r.next_attempt_at > Utc::now(), "later, not at once");
    assert!(r.last_error.unwrap().contains("-1"));
    // In the inbox already, while WeChat is retried.
    assert_eq!(inbox(&app, &p, "").await["unread"], 1);
    assert_eq!(dispatch(&app).await.taken, 0, "not due yet");

    assert_eq!(dispatch_later(&app, 2).await.retried, 1, "the 502");
    assert_eq!(dispatch_later(&app, 4).await.wechat, 1);
    let r = row(&app, id).await;
    assert_eq!(
        (r.status.as_str(), r.channel.as_deref(), r.attempts),
        ("sent", Some("wechat"), 3)
    );
    assert_eq!(sent_to(&app, &p), 1);
    assert_eq!(balance(&app, &p).await, 0);
    assert_eq!(dispatch_later(&app, 8).await.taken, 0);
}

#[tokio::test]
async fn a_message_wechat_refuses_for_good_is_dead_lettered_and_stays_in_the_inbox() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    accept(&app, &p, 1).await;
    let visit = held_visit(&app, &p).await;
    let id = queue(&app, p.user, "visit_cancelled", visit).await;
    fake(&app, "faults", json!({"route": "send", "errcode": 47003})).await;

    assert_eq!(dispatch(&app).await.dead, 1);
    let r = row(&app, id).await;
    assert_eq!(r.status, "dead");
    assert!(r.last_error.unwrap().contains("47003"));
    assert_eq!(balance(&app, &p).await, 1, "no grant spent");
    assert_eq!(dispatch_later(&app, 24).await.taken, 0, "never retried");
    assert_eq!(fake_calls(&app).await["send"], 1);
    assert_eq!(inbox(&app, &p, "").await["items"][0]["id"], id.to_string());
}

#[tokio::test]
async fn the_token_is_fetched_once_for_many_sends_and_refreshed_when_wechat_refuses_it() {
    let app = spawn_app_with(no_options()).await;
    let mut people = Vec::new();
    for _ in 0..5 {
        let p = on_wechat(&app).await;
        accept(&app, &p, 2).await;
        let visit = held_visit(&app, &p).await;
        queue(&app, p.user, "visit_cancelled", visit).await;
        people.push((p, visit));
    }
    assert_eq!(dispatch(&app).await.wechat, 5);
    assert_eq!(fake_calls(&app).await["stable_token"], 1);

    // WeChat calls the token invalid: fetched again once, and the send goes through.
    fake(&app, "faults", json!({"route": "send", "errcode": 40001})).await;
    let (p, visit) = &people[0];
    let id = queue(&app, p.user, "visit_declined", *visit).await;
    assert_eq!(dispatch(&app).await.wechat, 1);
    assert_eq!(fake_calls(&app).await["stable_token"], 2);
    assert_eq!(
        row(&app, id).await.attempts,
        1,
        "one attempt, retried inside"
    );
    assert_eq!(sent_to(&app, p), 2);
}

#[tokio::test]
async fn a_message_no_longer_true_is_dropped_with_the_reason() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    accept(&app, &p, 1).await;
    let visit = held_visit(&app, &p).await;
    let id = queue(&app, p.user, "visit_declined", visit).await;
    // Cancelled before the message went out.
    let mut v = app.visit_row(visit).await.into_active_model();
    v.status = Set(visit_task::status::CANCELLED.into());
    v.update(&app.state.db).await.unwrap();

    assert_eq!(dispatch(&app).await.dropped, 1);
    let r = row(&app, id).await;
    assert_eq!(r.status, "dropped");
    assert!(r.last_error.unwrap().contains("cancelled"));
    assert_eq!(fake_calls(&app).await["send"], 0);
    assert_eq!(balance(&app, &p).await, 1);
    assert_eq!(inbox(&app, &p, "").await["items"], json!([]));
}

#[tokio::test]
async fn one_person_gets_one_send_at_a_time() {
    let app = spawn_app_with(no_options()).await;
    // WeChat refuses concurrent sends to one openid, and holds each send a while.
    fake(
        &app,
        "send_options",
        json!({"reject_concurrent": true, "hold_ms": 150}),
    )
    .await;
    let p = on_wechat(&app).await;
    accept(&app, &p, 3).await;
    let visit = held_visit(&app, &p).await;
    for template in ["visit_cancelled", "visit_declined", "visit_move_requested"] {
        queue(&app, p.user, template, visit).await;
    }
    let stats = dispatch(&app).await;
    assert_eq!((stats.wechat, stats.retried), (3, 0), "{stats:?}");
    assert_eq!(sent_to(&app, &p), 3);
    assert_eq!(balance(&app, &p).await, 0);
}

#[tokio::test]
async fn concurrent_dispatchers_send_each_message_once() {
    let app = spawn_app_with(no_options()).await;
    let volunteers = app.volunteers(120, VolunteerSpec::at(31.30, 116.60)).await;
    let family = app
        .family_at("杨柳村", FamilyCategory::Bereaved, "钱秀英", None)
        .await;
    let visit = app
        .visit(VisitSpec::new(family, Utc::now() + Duration::days(3), 24))
        .await;
    for v in &volunteers {
        let openid = format!("o-{}", v.user_id.simple());
        let mut user = app_user::Entity::find_by_id(v.user_id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        user.openid = Set(Some(openid.clone()));
        user.update(&app.state.db).await.unwrap();
        app.wechat.grant_credits(&openid, TPL, 1);
        server::notify::ledger::add(&app.state.db, v.user_id, &[TPL.to_string()])
            .await
            .unwrap();
        queue(&app, v.user_id, "visit_cancelled", visit).await;
    }
    // Three dispatchers at once, as three instances would run them.
    let mut runs = Vec::new();
    for _ in 0..3 {
        let state = app.state.clone();
        runs.push(tokio::spawn(async move {
            let mut total = Stats::default();
            loop {
                let s = run_batch(&state, Utc::now()).await.unwrap();
                if s.taken == 0 {
                    return total;
                }
                total.taken += s.taken;
                total.wechat += s.wechat;
            }
        }));
    }
    let mut taken = 0;
    for r in runs {
        taken += r.await.unwrap().taken;
    }
    assert_eq!(taken, 120, "each message taken once");
    let counts = app.wechat.sent_counts();
    assert_eq!(counts.len(), 120);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[tokio::test]
async fn a_message_left_by_a_dispatcher_that_died_is_sent_after_its_claim() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    accept(&app, &p, 2).await;
    let visit = held_visit(&app, &p).await;
    // One taken by a dispatcher that died (its claim ran out), one by a live one.
    let orphan = queue(&app, p.user, "visit_cancelled", visit).await;
    let busy = queue(&app, p.user, "visit_declined", visit).await;
    for (id, until) in [
        (orphan, Utc::now() - Duration::seconds(1)),
        (busy, Utc::now() + Duration::seconds(60)),
    ] {
        let mut r = row(&app, id).await.into_active_model();
        r.status = Set(notification::SENDING.into());
        r.attempts = Set(1);
        r.next_attempt_at = Set(until);
        r.update(&app.state.db).await.unwrap();
    }
    assert_eq!(dispatch(&app).await.wechat, 1);
    assert_eq!(row(&app, orphan).await.status, "sent");
    assert_eq!(row(&app, busy).await.status, "sending");
    assert_eq!(sent_to(&app, &p), 1);
}

#[tokio::test]
async fn the_background_dispatcher_sends_what_is_queued_and_stops_cleanly() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    accept(&app, &p, 1).await;
    let visit = held_visit(&app, &p).await;
    let id = queue(&app, p.user, "visit_cancelled", visit).await;
    let dispatcher = server::notify::dispatch::Dispatcher::start(app.state.clone());
    for _ in 0..100 {
        if sent_to(&app, &p) > 0 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    dispatcher.shutdown().await;
    assert_eq!(sent_to(&app, &p), 1);
    assert_eq!(row(&app, id).await.channel.as_deref(), Some("wechat"));
}

#[tokio::test]
async fn the_inbox_pages_newest_first_and_marks_my_own_messages_read() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    let other = on_wechat(&app).await;
    let visit = held_visit(&app, &p).await;
    let mut mine = Vec::new();
    for template in ["visit_cancelled", "visit_declined", "visit_move_requested"] {
        mine.push(queue(&app, p.user, template, visit).await);
        dispatch(&app).await;
    }
    let theirs = queue(&app, other.user, "visit_cancelled", visit).await;
    dispatch(&app).await;
    // Queued, not yet due: not in the inbox.
    let later = queue(&app, p.user, "visit_cancelled", visit).await;
    let mut r = row(&app, later).await.into_active_model();
    r.next_attempt_at = Set(Utc::now() + Duration::hours(5));
    r.update(&app.state.db).await.unwrap();

    let first = inbox(&app, &p, "?limit=2").await;
    assert_eq!(first["unread"], 3);
    let ids: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine[2].to_string(), mine[1].to_string()]);
    assert_eq!(first["items"][0]["title"], "家庭希望改期");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = inbox(&app, &p, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["id"], mine[0].to_string());
    assert!(second.get("next_cursor").is_none());

    let read = app
        .post(
            &format!("/api/me/inbox/{}/read", mine[1]),
            Some(&p.token),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(read["unread"], 2);
    let again = app
        .post(
            &format!("/api/me/inbox/{}/read", mine[1]),
            Some(&p.token),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(again["unread"], 2, "reading twice changes nothing");
    assert_eq!(inbox(&app, &p, "").await["items"][1]["read"], true);

    // Someone else's message, one not yet in the inbox, one that does not exist.
    for id in [theirs, later, Uuid::now_v7()] {
        app.post(
            &format!("/api/me/inbox/{id}/read"),
            Some(&p.token),
            json!({}),
        )
        .await
        .error(404, "not_found");
    }
    assert_eq!(inbox(&app, &other, "").await["unread"], 1, "untouched");
    app.post("/api/me/inbox/not-an-id/read", Some(&p.token), json!({}))
        .await
        .invalid("id");

    let all = app
        .post("/api/me/inbox/read-all", Some(&p.token), json!({}))
        .await
        .ok();
    assert_eq!(all["unread"], 0);
    assert_eq!(inbox(&app, &other, "").await["unread"], 1);

    for bad in ["?limit=0", "?limit=51", "?cursor=nonsense"] {
        let field = if bad.contains("limit") {
            "limit"
        } else {
            "cursor"
        };
        app.get(&format!("/api/me/inbox{bad}"), Some(&p.token))
            .await
            .invalid(field);
    }
    app.get("/api/me/inbox", None)
        .await
        .error(401, "unauthorized");
}

#[tokio::test]
async fn bad_subscription_reports_are_refused_naming_the_field() {
    let app = spawn_app_with(no_options()).await;
    let p = on_wechat(&app).await;
    let cases = [
        (json!({}), "accepted"),
        (json!({"accepted": "TPL"}), "accepted"),
        (json!({"accepted": [TPL, TPL]}), "accepted[1]"),
        (json!({"accepted": [""]}), "accepted[0]"),
        (
            json!({"accepted": [TPL, "TPL_SOMETHING_ELSE"]}),
            "accepted[1]",
        ),
        (json!({"accepted": [1]}), "accepted[0]"),
        (
            json!({"accepted": ["a", "b", "c", "d", "e", "f"]}),
            "accepted",
        ),
    ];
    for (body, field) in cases {
        app.post("/api/me/subscriptions", Some(&p.token), body)
            .await
            .invalid(field);
    }
    assert_eq!(balance(&app, &p).await, 0, "nothing written");
    // An empty report (the person declined everything) is fine.
    app.post(
        "/api/me/subscriptions",
        Some(&p.token),
        json!({"accepted": []}),
    )
    .await
    .ok();
    accept(&app, &p, 3).await;
    assert_eq!(balance(&app, &p).await, 3, "grants add up");
}

//! `POST /cgi-bin/message/subscribe/send` (WECHAT.md §3; scenarios 7, 8 and 43108).

use miniapp_stub::{TEMPLATE_LONG_TERM_NOTICE, TEMPLATE_VISIT_REMINDER};
use serde_json::{Value, json};

use crate::helpers::*;

/// A server, a valid stable token and a known openid without credits.
async fn ready(openid: &str) -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let token = token_of(&app.stable_token(false).await);
    app.mint_code(openid, None).await;
    (app, token)
}

async fn credits(app: &TestApp, openid: &str, template_id: &str) -> i64 {
    let path = format!("/__fake/credits?openid={openid}&template_id={template_id}");
    app.get_json(&path).await["credits"].as_i64().unwrap()
}

async fn grant(app: &TestApp, openid: &str, template_id: &str, count: u32) -> Value {
    app.control(
        "credits/grant",
        json!({ "openid": openid, "template_id": template_id, "count": count }),
    )
    .await
}

fn with_value(mut body: Value, key: &str, value: Value) -> Value {
    body["data"][key] = json!({ "value": value });
    body
}

#[tokio::test]
async fn one_time_credits_allow_exactly_that_many_sends() {
    // Scenario 7.
    let (app, token) = ready("o-family").await;

    let refused = app.send(&token, visit_reminder("o-family")).await;
    assert_eq!(errcode(&refused), 43101, "no credit yet: {refused}");
    assert!(errmsg(&refused).starts_with("user refuse to accept the msg rid: "));

    assert_eq!(
        grant(&app, "o-family", TEMPLATE_VISIT_REMINDER, 2).await["credits"],
        2
    );
    let first = app.send(&token, visit_reminder("o-family")).await;
    let second = app.send(&token, visit_reminder("o-family")).await;
    let third = app.send(&token, visit_reminder("o-family")).await;

    assert_eq!(first["errcode"], 0);
    assert_eq!(first["errmsg"], "ok");
    let (id1, id2) = (
        first["msgid"].as_u64().unwrap(),
        second["msgid"].as_u64().unwrap(),
    );
    assert!(id1 > 1 << 53, "msgid above 2^53: {id1}");
    assert!(id2 > id1);
    assert_eq!(errcode(&third), 43101);
    assert_eq!(credits(&app, "o-family", TEMPLATE_VISIT_REMINDER).await, 0);

    let outbox = app.get_json("/__fake/outbox").await;
    let outbox = outbox.as_array().unwrap();
    assert_eq!(outbox.len(), 2, "only successes are recorded");
    assert_eq!(outbox[0]["msgid"].as_u64(), Some(id1));
    assert_eq!(outbox[0]["touser"], "o-family");
    assert_eq!(outbox[0]["template_id"], TEMPLATE_VISIT_REMINDER);
    assert_eq!(outbox[0]["page"], "pages/visit/detail?id=123");
    assert_eq!(outbox[0]["miniprogram_state"], "developer");
    assert_eq!(outbox[0]["token_source"], "stable_token");
    assert_eq!(outbox[0]["data"]["phrase4"], "待出发");
    assert_eq!(app.fake.outbox()[1].msgid, id2);
}

#[tokio::test]
async fn credits_are_per_openid_and_template() {
    let (app, token) = ready("o-a").await;
    grant(&app, "o-b", TEMPLATE_VISIT_REMINDER, 1).await;
    grant(&app, "o-a", "TPL_TASK_ASSIGNED", 1).await;

    assert_eq!(
        errcode(&app.send(&token, visit_reminder("o-a")).await),
        43101
    );
    assert_eq!(errcode(&app.send(&token, visit_reminder("o-b")).await), 0);
}

#[tokio::test]
async fn long_term_templates_are_not_decremented_but_can_be_revoked() {
    let (app, token) = ready("o-volunteer").await;
    grant(&app, "o-volunteer", TEMPLATE_LONG_TERM_NOTICE, 1).await;
    let body = json!({
        "touser": "o-volunteer",
        "template_id": TEMPLATE_LONG_TERM_NOTICE,
        "data": { "thing1": { "value": "活动通知" }, "time2": { "value": "09:30" } },
    });
    for _ in 0..3 {
        assert_eq!(app.send(&token, body.clone()).await["errcode"], 0);
    }
    assert_eq!(
        credits(&app, "o-volunteer", TEMPLATE_LONG_TERM_NOTICE).await,
        1
    );

    let revoked = app
        .control(
            "credits/revoke",
            json!({ "openid": "o-volunteer", "template_id": TEMPLATE_LONG_TERM_NOTICE }),
        )
        .await;
    assert_eq!(revoked["credits"], 0);
    assert_eq!(errcode(&app.send(&token, body).await), 43101);
}

#[tokio::test]
async fn a_21_character_thing_gives_47003_and_keeps_the_credit() {
    // Scenario 8.
    let (app, token) = ready("o-family").await;
    grant(&app, "o-family", TEMPLATE_VISIT_REMINDER, 1).await;

    let too_long = with_value(visit_reminder("o-family"), "thing1", json!("走".repeat(21)));
    let refused = app.send(&token, too_long).await;
    assert_eq!(errcode(&refused), 47003);
    assert!(
        errmsg(&refused).starts_with("argument invalid! data.thing1.value invalid rid: "),
        "{refused}"
    );
    assert_eq!(credits(&app, "o-family", TEMPLATE_VISIT_REMINDER).await, 1);

    let just_fits = with_value(visit_reminder("o-family"), "thing1", json!("走".repeat(20)));
    assert_eq!(app.send(&token, just_fits).await["errcode"], 0);
}

#[tokio::test]
async fn empty_missing_and_non_string_values() {
    let (app, token) = ready("o-family").await;
    grant(&app, "o-family", TEMPLATE_VISIT_REMINDER, 1).await;

    let empty = with_value(visit_reminder("o-family"), "thing3", json!(""));
    let body = app.send(&token, empty).await;
    assert_eq!(errcode(&body), 47003);
    assert!(errmsg(&body).starts_with("argument invalid! data.thing3.value is emtpy rid: "));

    let mut missing = visit_reminder("o-family");
    missing["data"].as_object_mut().unwrap().remove("time2");
    let body = app.send(&token, missing).await;
    assert!(
        errmsg(&body).contains("data.time2.value is emtpy"),
        "{body}"
    );

    let number = with_value(visit_reminder("o-family"), "phrase4", json!(0));
    let body = app.send(&token, number).await;
    assert!(
        errmsg(&body).contains("data.phrase4.value invalid"),
        "{body}"
    );

    let bad_time = with_value(visit_reminder("o-family"), "time2", json!("明天下午"));
    let body = app.send(&token, bad_time).await;
    assert!(errmsg(&body).contains("data.time2.value invalid"), "{body}");
}

#[tokio::test]
async fn unknown_openid_template_and_page() {
    let (app, token) = ready("o-family").await;
    grant(&app, "o-family", TEMPLATE_VISIT_REMINDER, 1).await;

    let stranger = app.send(&token, visit_reminder("o-never-seen")).await;
    assert_eq!(errcode(&stranger), 40003);

    let mut unknown_template = visit_reminder("o-family");
    unknown_template["template_id"] = json!("TPL_NOPE");
    assert_eq!(errcode(&app.send(&token, unknown_template).await), 40037);

    let mut bad_page = visit_reminder("o-family");
    bad_page["page"] = json!("pages/secret/index?id=1");
    assert_eq!(errcode(&app.send(&token, bad_page).await), 41030);

    let mut no_page = visit_reminder("o-family");
    no_page.as_object_mut().unwrap().remove("page");
    assert_eq!(app.send(&token, no_page).await["errcode"], 0);
    assert_eq!(app.fake.outbox()[0].page, None);
}

#[tokio::test]
async fn registered_templates_validate_their_enum_values() {
    let (app, token) = ready("o-family").await;
    let template = json!({
        "template_id": "TPL_CUSTOM",
        "kind": "one_time",
        "keys": ["enum1", "amount2", "character_string3"],
        "enums": { "enum1": ["已完成", "未完成"] },
    });
    assert_eq!(
        app.control("templates", template).await["template_id"],
        "TPL_CUSTOM"
    );
    grant(&app, "o-family", "TPL_CUSTOM", 2).await;
    let send = |status: &str| {
        json!({
            "touser": "o-family",
            "template_id": "TPL_CUSTOM",
            "data": {
                "enum1": { "value": status },
                "amount2": { "value": "¥12.50" },
                "character_string3": { "value": "ORD-0001" },
            },
        })
    };

    let body = app.send(&token, send("进行中")).await;
    assert!(errmsg(&body).contains("data.enum1.value invalid"), "{body}");
    assert_eq!(app.send(&token, send("已完成")).await["errcode"], 0);

    let templates = app.get_json("/__fake/templates").await;
    assert!(
        templates
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["template_id"] == "TPL_CUSTOM")
    );
}

#[tokio::test]
async fn concurrent_sends_to_one_openid_give_43108_when_enabled() {
    let (app, token) = ready("o-family").await;
    grant(&app, "o-family", TEMPLATE_VISIT_REMINDER, 3).await;
    let options = app
        .control(
            "send_options",
            json!({ "reject_concurrent": true, "hold_ms": 400 }),
        )
        .await;
    assert_eq!(
        options,
        json!({ "reject_concurrent": true, "hold_ms": 400 })
    );

    let (a, b) = tokio::join!(
        app.send(&token, visit_reminder("o-family")),
        app.send(&token, visit_reminder("o-family")),
    );
    let mut codes = [errcode(&a), errcode(&b)];
    codes.sort();
    assert_eq!(codes, [0, 43108], "{a} / {b}");
    let rejected = if errcode(&a) == 43108 { &a } else { &b };
    assert!(errmsg(rejected).starts_with("Cannot make concurrent calls to the same OpenID"));
    assert_eq!(
        credits(&app, "o-family", TEMPLATE_VISIT_REMINDER).await,
        2,
        "43108 costs nothing"
    );

    // Once the first send has answered, a retry goes through.
    assert_eq!(
        app.send(&token, visit_reminder("o-family")).await["errcode"],
        0
    );
    assert_eq!(
        app.get_json("/__fake/outbox")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn concurrent_sends_to_different_openids_or_without_the_flag_succeed() {
    let (app, token) = ready("o-a").await;
    app.mint_code("o-b", None).await;
    grant(&app, "o-a", TEMPLATE_VISIT_REMINDER, 2).await;
    grant(&app, "o-b", TEMPLATE_VISIT_REMINDER, 1).await;

    app.control(
        "send_options",
        json!({ "reject_concurrent": true, "hold_ms": 300 }),
    )
    .await;
    let (a, b) = tokio::join!(
        app.send(&token, visit_reminder("o-a")),
        app.send(&token, visit_reminder("o-b")),
    );
    assert_eq!((errcode(&a), errcode(&b)), (0, 0));

    app.control("send_options", json!({ "reject_concurrent": false }))
        .await;
    let (a, b) = tokio::join!(
        app.send(&token, visit_reminder("o-a")),
        app.send(&token, visit_reminder("o-a")),
    );
    let mut codes = [errcode(&a), errcode(&b)];
    codes.sort();
    assert_eq!(
        codes,
        [0, 43101],
        "no 43108 without the flag; one credit was left"
    );
}

#[tokio::test]
async fn injected_send_fault_keeps_the_credit() {
    let (app, token) = ready("o-family").await;
    grant(&app, "o-family", TEMPLATE_VISIT_REMINDER, 1).await;
    app.control(
        "faults",
        json!({ "route": "send", "errcode": -1, "times": 1 }),
    )
    .await;

    assert_eq!(
        errcode(&app.send(&token, visit_reminder("o-family")).await),
        -1
    );
    assert_eq!(
        app.send(&token, visit_reminder("o-family")).await["errcode"],
        0
    );
    assert_eq!(app.stats().await["send"], 2);
}

#[tokio::test]
async fn send_wants_post_and_a_json_body() {
    let (app, token) = ready("o-family").await;
    let path = format!("/cgi-bin/message/subscribe/send?access_token={token}");

    let get: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(errcode(&get), 43002);
    let empty: Value = app.post_raw(&path, "").await.json().await.unwrap();
    assert_eq!(errcode(&empty), 44002);
    let garbage: Value = app.post_raw(&path, "touser=o1").await.json().await.unwrap();
    assert_eq!(errcode(&garbage), 47001);
}

#[tokio::test]
async fn an_injected_gateway_failure_is_an_http_error_without_json() {
    let (app, token) = ready("o-family").await;
    grant(&app, "o-family", TEMPLATE_VISIT_REMINDER, 1).await;
    app.control(
        "faults",
        json!({ "route": "send", "http_status": 502, "times": 1 }),
    )
    .await;
    let path = format!("/cgi-bin/message/subscribe/send?access_token={token}");
    let failed = app
        .post_raw(&path, visit_reminder("o-family").to_string())
        .await;
    assert_eq!(failed.status(), 502);
    assert!(serde_json::from_str::<Value>(&failed.text().await.unwrap()).is_err());
    assert_eq!(credits(&app, "o-family", TEMPLATE_VISIT_REMINDER).await, 1);
    assert_eq!(
        app.send(&token, visit_reminder("o-family")).await["errcode"],
        0
    );
}

#[tokio::test]
async fn fault_rates_strike_that_share_of_calls_until_cleared() {
    let (app, token) = ready("o-family").await;
    grant(&app, "o-family", TEMPLATE_VISIT_REMINDER, 10).await;
    let set = app
        .control(
            "fault_rates",
            json!({ "route": "send", "faults": [{ "rate": 1.0, "errcode": 45009 }] }),
        )
        .await;
    assert_eq!(set["faults"][0]["errcode"], 45009);
    for _ in 0..3 {
        assert_eq!(
            errcode(&app.send(&token, visit_reminder("o-family")).await),
            45009
        );
    }
    app.control("fault_rates", json!({ "route": "send", "faults": [] }))
        .await;
    assert_eq!(
        errcode(&app.send(&token, visit_reminder("o-family")).await),
        0
    );
    let too_much = app
        .post_raw(
            "/__fake/fault_rates",
            json!({ "route": "send", "faults": [{ "rate": 0.7 }, { "rate": 0.6 }] }).to_string(),
        )
        .await;
    assert_eq!(too_much.status(), 400);
}

#[tokio::test]
async fn counts_are_per_openid_and_template() {
    let (app, token) = ready("o-a").await;
    app.mint_code("o-b", None).await;
    grant(&app, "o-a", TEMPLATE_VISIT_REMINDER, 2).await;
    grant(&app, "o-b", TEMPLATE_VISIT_REMINDER, 1).await;
    app.send(&token, visit_reminder("o-a")).await;
    app.send(&token, visit_reminder("o-a")).await;
    app.send(&token, visit_reminder("o-b")).await;
    // Refused sends are not counted.
    assert_eq!(
        errcode(&app.send(&token, visit_reminder("o-b")).await),
        43101
    );
    assert_eq!(
        app.get_json("/__fake/counts").await,
        json!([
            { "openid": "o-a", "template_id": TEMPLATE_VISIT_REMINDER, "sent": 2 },
            { "openid": "o-b", "template_id": TEMPLATE_VISIT_REMINDER, "sent": 1 },
        ])
    );
    let counts = app.fake.sent_counts();
    assert_eq!(
        counts[&("o-a".to_owned(), TEMPLATE_VISIT_REMINDER.to_owned())],
        2
    );
}

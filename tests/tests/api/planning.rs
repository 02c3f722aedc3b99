//! The coordinator's planning API: a family's coming visits (nothing written), planning
//! runs of a region started by hand, and the run history, scoped to one's region.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Timelike, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};
use tests::*;
use uuid::Uuid;

/// Coordinator of 青石乡, the second township of 东城县.
const QINGSHI: &str = "13800000022";

async fn task_count(app: &TestApp) -> u64 {
    entity::visit_task::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

async fn run_count(app: &TestApp) -> u64 {
    entity::job_run::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

/// The ids of the families living in a region's subtree.
async fn families_under(app: &TestApp, region_name: &str) -> HashSet<Uuid> {
    use entity::{family, region};
    let db = &app.state.db;
    let top = region::Entity::find_by_id(Uuid::parse_str(&app.region(region_name).await).unwrap())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let regions: Vec<Uuid> = region::Entity::find()
        .filter(region::Column::Path.starts_with(&top.path))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    family::Entity::find()
        .filter(family::Column::RegionId.is_in(regions))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect()
}

/// The first family of a category in a region, through the list a coordinator sees.
async fn family_in(app: &TestApp, token: &str, region: &str, category: &str) -> String {
    let region = app.region(region).await;
    app.get(
        &format!("/api/families?region_id={region}&category={category}"),
        Some(token),
    )
    .await
    .ok()["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {category} family"))
        .to_string()
}

/// Not in the last seconds of a minute, so that two requests made now fall in the same
/// minute (runs are keyed by region and minute).
async fn early_in_a_minute() {
    let second = Utc::now().second();
    if second >= 50 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(61 - second))).await;
    }
}

/// Polls the history until the run has ended; its entry.
async fn finished(app: &TestApp, token: &str, run_id: &str) -> Value {
    for _ in 0..600 {
        let history = app
            .get("/api/planning/runs?job=plan-region", Some(token))
            .await
            .ok();
        let run = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == run_id)
            .cloned()
            .expect("the run is in the history");
        if run["status"] != "running" {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("run {run_id} did not finish");
}

fn reasons(plan: &Value) -> Vec<String> {
    plan["visits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["reasons"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_family_plan_shows_its_birthdays_and_festivals_and_writes_nothing() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let id = family_in(&app, &token, "青石乡", "disabled_child").await;
    let audits = app.audit_count("read_family").await;

    let plan = app
        .get(&format!("/api/families/{id}/plan"), Some(&token))
        .await
        .ok();
    assert_eq!(plan["family_id"], id.as_str());
    assert_eq!(plan["months"], 12, "a year by default");
    let from: chrono::NaiveDate = plan["from"].as_str().unwrap().parse().unwrap();
    let until = from + chrono::Months::new(12);
    let visits = plan["visits"].as_array().unwrap();
    assert!(!visits.is_empty());
    for v in visits {
        let date: chrono::NaiveDate = v["date"].as_str().unwrap().parse().unwrap();
        assert!(from <= date && date < until, "{v}");
        let start = DateTime::parse_from_rfc3339(v["window_start"].as_str().unwrap()).unwrap();
        let end = DateTime::parse_from_rfc3339(v["window_end"].as_str().unwrap()).unwrap();
        assert!(start < end, "{v}");
        assert!(v["volunteers_needed"].as_u64().unwrap() >= 1);
        assert!(
            ["home_visit", "phone_call"].contains(&v["channel"].as_str().unwrap()),
            "{v}"
        );
    }

    // Every living member's birthday, by name, and the festivals.
    let reasons = reasons(&plan);
    let members = entity::family_member::Entity::find()
        .filter(entity::family_member::Column::FamilyId.eq(Uuid::parse_str(&id).unwrap()))
        .all(&app.state.db)
        .await
        .unwrap();
    for m in members
        .iter()
        .filter(|m| !m.deceased && m.birth_month.is_some())
    {
        assert!(
            reasons
                .iter()
                .any(|r| r.contains(&m.name) && r.contains("生日")),
            "no birthday visit for {}: {reasons:?}",
            m.name
        );
    }
    assert!(
        reasons.iter().any(|r| r == "春节慰问") && reasons.iter().any(|r| r == "中秋节慰问"),
        "{reasons:?}"
    );
    let kinds: HashSet<&str> = visits
        .iter()
        .flat_map(|v| v["kinds"].as_array().unwrap())
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(kinds.contains("birthday") && kinds.contains("festival") && kinds.contains("checkin"));

    // Nothing was written, and the read is in the audit log.
    assert_eq!(task_count(&app).await, 0);
    assert_eq!(app.audit_count("read_family").await, audits + 1);

    // A shorter look ahead is a prefix of the longer one.
    let short = app
        .get(&format!("/api/families/{id}/plan?months=1"), Some(&token))
        .await
        .ok();
    let month = from + chrono::Months::new(1);
    for v in short["visits"].as_array().unwrap() {
        let date: chrono::NaiveDate = v["date"].as_str().unwrap().parse().unwrap();
        assert!(date < month, "{v}");
    }

    // A paused family gets no visits, and the plan says why.
    app.patch(
        &format!("/api/families/{id}"),
        Some(&token),
        json!({"status": "paused"}),
    )
    .await
    .ok();
    let paused = app
        .get(&format!("/api/families/{id}/plan"), Some(&token))
        .await
        .ok();
    assert_eq!(paused["visits"], json!([]));
    assert!(
        paused["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["reason"] == "家庭已暂停" && s["date"].is_string()),
        "{paused}"
    );
    assert_eq!(task_count(&app).await, 0);
}

#[tokio::test]
async fn a_plan_needs_a_sensible_horizon_and_a_family_in_scope() {
    let app = spawn_app().await;
    let token = app.token_for(people::TAOYUAN).await;
    let own = family_in(&app, &token, "桃源镇", "bereaved").await;
    let audits = app.audit_count("read_family").await;
    for months in ["0", "25", "-1", "twelve"] {
        app.get(
            &format!("/api/families/{own}/plan?months={months}"),
            Some(&token),
        )
        .await
        .invalid("months");
    }
    // Two years of a bereaved family: its grief days are gentle visits.
    let plan = app
        .get(&format!("/api/families/{own}/plan?months=24"), Some(&token))
        .await
        .ok();
    assert_eq!(plan["months"], 24);
    let gentle: Vec<&Value> = plan["visits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["gentle"] == true)
        .collect();
    assert!(!gentle.is_empty(), "{plan}");
    // A grief day is never merged with a festive occasion (a check-in may join it).
    for v in gentle {
        let kinds: Vec<&str> = v["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert!(
            kinds
                .iter()
                .any(|k| ["child_birthday", "death_anniversary", "qingming"].contains(k)),
            "{v}"
        );
        assert!(
            !kinds.contains(&"birthday") && !kinds.contains(&"festival"),
            "{v}"
        );
    }

    // Another township's family, another county's, and one that does not exist.
    let admin = app.token_for(people::ADMIN).await;
    let neighbour = family_in(&app, &admin, "青石乡", "disabled_child").await;
    let far = family_in(&app, &admin, "白云乡", "hardship").await;
    for id in [neighbour, far, Uuid::now_v7().to_string()] {
        app.get(&format!("/api/families/{id}/plan"), Some(&token))
            .await
            .error(404, "not_found");
    }
    assert_eq!(
        app.audit_count("read_family").await,
        audits + 1,
        "only the plan shown is audited"
    );
}

#[tokio::test]
async fn a_township_run_plans_only_that_townships_families() {
    let app = spawn_app().await;
    let token = app.token_for(people::TAOYUAN).await;
    let township = app.region("桃源镇").await;
    let ours = families_under(&app, "桃源镇").await;
    assert!(!ours.is_empty());

    early_in_a_minute().await;
    // No region: my own.
    let run = app
        .post("/api/planning/runs", Some(&token), json!({}))
        .await;
    assert_eq!(run.status.as_u16(), 202, "{}", run.body);
    let run = run.body;
    assert_eq!(run["job"], "plan-region");
    assert_eq!(run["status"], "running");
    assert_eq!(run["region"]["id"], township.as_str());
    assert_eq!(run["region"]["name"], "桃源镇");
    assert!(
        run["period"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{township}@")),
        "{run}"
    );
    assert!(DateTime::parse_from_rfc3339(run["started_at"].as_str().unwrap()).is_ok());
    let run_id = run["id"].as_str().unwrap().to_string();

    // A double click: the same run, not a second one.
    let again = app
        .post(
            "/api/planning/runs",
            Some(&token),
            json!({"region_id": township}),
        )
        .await;
    assert_eq!(again.status.as_u16(), 202, "{}", again.body);
    assert_eq!(again.body["id"], run_id.as_str());
    assert_eq!(again.body["period"], run["period"]);
    assert_eq!(app.audit_count("start_plan_run").await, 1);

    let done = finished(&app, &token, &run_id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["region"]["name"], "桃源镇");
    assert_eq!(done["error"], Value::Null);
    assert_eq!(done["error_count"], 0);
    assert!(done["finished_at"].is_string() && done["duration_ms"].as_i64().unwrap() >= 0);

    // Tasks for every family of the township, and for no other.
    let tasks = entity::visit_task::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    let planned: HashSet<Uuid> = tasks.iter().map(|t| t.family_id).collect();
    assert_eq!(planned, ours, "every family of 桃源镇 and none elsewhere");
    assert_eq!(done["families"], ours.len() as u64);
    assert_eq!(done["created"], tasks.len() as u64);
    assert_eq!(done["updated"], 0);
    assert_eq!(done["cancelled"], 0);

    // The same minute, after the end: still that run, nothing new.
    let repeat = app
        .post("/api/planning/runs", Some(&token), json!({}))
        .await;
    if repeat.body["period"] == run["period"] {
        assert_eq!(repeat.body["id"], run_id.as_str());
        assert_eq!(repeat.body["status"], "done");
    }
}

#[tokio::test]
async fn a_run_is_refused_for_a_region_outside_scope_or_already_running() {
    let app = spawn_app().await;
    let token = app.token_for(people::TAOYUAN).await;
    for (body, what) in [
        (json!({"region_id": "not-a-uuid"}), "not an id"),
        (json!({"region_id": 7}), "a number"),
        (
            json!({"region_id": app.region("白云乡").await}),
            "another county",
        ),
        (
            json!({"region_id": app.region("青石乡").await}),
            "another township",
        ),
        (
            json!({"region_id": app.region("东城县").await}),
            "the county above",
        ),
        (
            json!({"region_id": Uuid::now_v7().to_string()}),
            "no such region",
        ),
    ] {
        let r = app.post("/api/planning/runs", Some(&token), body).await;
        assert!(
            r.status.is_client_error(),
            "{what}: {} {}",
            r.status,
            r.body
        );
        r.invalid("region_id");
    }
    assert_eq!(run_count(&app).await, 0, "nothing started");
    assert_eq!(task_count(&app).await, 0);

    // An administrator has no region of their own: they name one.
    let admin = app.token_for(people::ADMIN).await;
    app.post("/api/planning/runs", Some(&admin), json!({}))
        .await
        .invalid("region_id");

    // A run of the township started a few minutes ago is still going: refused.
    let township = app.region("桃源镇").await;
    let earlier = Utc::now() - Duration::minutes(3);
    entity::job_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        job: Set("plan-region".into()),
        period: Set(format!("{township}@2026-01-01T00:00")),
        status: Set("running".into()),
        holder: Set("another-instance".into()),
        started_at: Set(earlier),
        finished_at: Set(None),
        stats: Set(None),
        error: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let body = app
        .post("/api/planning/runs", Some(&token), json!({}))
        .await
        .error(409, "run_in_progress");
    assert!(
        body["message"].as_str().unwrap().contains("桃源镇"),
        "{body}"
    );
    assert_eq!(run_count(&app).await, 1);

    // Another township is not held up by it.
    let qingshi = app.token_for(QINGSHI).await;
    let r = app
        .post("/api/planning/runs", Some(&qingshi), json!({}))
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(finished(&app, &qingshi, &id).await["status"], "done");
}

#[tokio::test]
async fn a_run_left_running_by_a_dead_instance_does_not_block_for_ever() {
    let app = spawn_app().await;
    let token = app.token_for(people::TAOYUAN).await;
    let township = app.region("桃源镇").await;
    entity::job_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        job: Set("plan-region".into()),
        period: Set(format!("{township}@2026-01-01T00:00")),
        status: Set("running".into()),
        holder: Set("dead-instance".into()),
        started_at: Set(Utc::now() - Duration::hours(2)),
        finished_at: Set(None),
        stats: Set(None),
        error: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let r = app
        .post("/api/planning/runs", Some(&token), json!({}))
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(finished(&app, &token, &id).await["status"], "done");
}

#[tokio::test]
async fn the_history_shows_a_coordinator_only_their_regions_runs() {
    let app = spawn_app().await;
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let qingshi = app.token_for(QINGSHI).await;
    let county = app.token_for(people::EAST_COUNTY).await;
    let west = app.token_for(people::WEST_COUNTY).await;
    let admin = app.token_for(people::ADMIN).await;

    // The nightly planning, deployment-wide, as the scheduler records it.
    let finished_at = Utc::now();
    entity::job_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        job: Set("plan".into()),
        period: Set("2026-01-01".into()),
        status: Set("done".into()),
        holder: Set("night-instance".into()),
        started_at: Set(finished_at - Duration::seconds(2)),
        finished_at: Set(Some(finished_at)),
        stats: Set(Some(json!({
            "families": 30, "created": 900, "unchanged": 0, "updated": 1, "cancelled": 2,
            "flagged": 0, "skipped": 3, "missed": 0, "errors": ["family x: bad birthday"],
            "error_count": 1, "load_ms": 1, "plan_ms": 1, "write_ms": 1
        }))),
        error: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();

    let mut started = Vec::new();
    for token in [&taoyuan, &qingshi] {
        let r = app.post("/api/planning/runs", Some(token), json!({})).await;
        assert_eq!(r.status.as_u16(), 202, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        finished(&app, token, &id).await;
        started.push(id);
    }

    let seen = |history: &Value| -> Vec<(String, String)> {
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["job"].as_str().unwrap().to_string(),
                    r["region"]["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let plan = || ("plan".to_string(), String::new());
    let region_run = |name: &str| ("plan-region".to_string(), name.to_string());

    let mine = app.get("/api/planning/runs", Some(&taoyuan)).await.ok();
    assert_eq!(seen(&mine), [region_run("桃源镇"), plan()]);
    let theirs = app.get("/api/planning/runs", Some(&qingshi)).await.ok();
    assert_eq!(seen(&theirs), [region_run("青石乡"), plan()]);
    let both = app.get("/api/planning/runs", Some(&county)).await.ok();
    assert_eq!(
        seen(&both),
        [region_run("青石乡"), region_run("桃源镇"), plan()],
        "newest first"
    );
    let other_county = app.get("/api/planning/runs", Some(&west)).await.ok();
    assert_eq!(seen(&other_county), [plan()]);
    let everything = app.get("/api/planning/runs", Some(&admin)).await.ok();
    assert_eq!(seen(&everything).len(), 3);

    // The nightly run's figures, and no region.
    let night = &mine["items"][1];
    assert_eq!(night["region"], Value::Null);
    assert_eq!(night["families"], 30);
    assert_eq!(night["created"], 900);
    assert_eq!(night["cancelled"], 2);
    assert_eq!(night["merged"], 0, "absent from older stats: 0");
    assert_eq!(night["error_count"], 1);
    assert_eq!(night["errors"], json!(["family x: bad birthday"]));
    assert_eq!(night["duration_ms"], 2000);

    // Narrowed to one job, and limited.
    let only_plan = app
        .get("/api/planning/runs?job=plan", Some(&county))
        .await
        .ok();
    assert_eq!(seen(&only_plan), [plan()]);
    let one = app
        .get("/api/planning/runs?limit=1", Some(&county))
        .await
        .ok();
    assert_eq!(seen(&one), [region_run("青石乡")]);
    for limit in ["0", "201", "x"] {
        app.get(&format!("/api/planning/runs?limit={limit}"), Some(&county))
            .await
            .invalid("limit");
    }
}

//! A coordinator changes what one family is owed; the visits follow at once.

use entity::visit_task;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tests::*;
use uuid::Uuid;

async fn new_family(app: &TestApp, token: &str) -> String {
    let village = app.region("杨柳村").await;
    let created = app
        .post(
            "/api/families",
            Some(token),
            json!({
                "region_id": village,
                "register_no": "CR-0001",
                "category": "disabled_child",
                "head_name": "吴国庆",
                "address": "杨柳村2组6号",
                "care_level": 2,
                "members": [
                    {"name": "吴国庆", "relation": "father", "birth_calendar": "solar",
                     "birth_year": 1958, "birth_month": 3, "birth_day": 9},
                    {"name": "吴小东", "relation": "child", "birth_calendar": "solar",
                     "birth_year": 1990, "birth_month": 7, "birth_day": 1}
                ]
            }),
        )
        .await
        .ok();
    created["id"].as_str().unwrap().to_string()
}

async fn live_keys(app: &TestApp, family: &str) -> Vec<String> {
    let id: Uuid = family.parse().unwrap();
    visit_task::Entity::find()
        .filter(visit_task::Column::FamilyId.eq(id))
        .filter(visit_task::Column::Status.eq("open"))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.unique_key)
        .collect()
}

fn keys(rules: &Value) -> Vec<&str> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_coordinator_changes_what_a_family_is_owed_and_the_visits_follow() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let id = new_family(&app, &token).await;
    let path = format!("/api/families/{id}/rules");

    let rules = app.get(&path, Some(&token)).await.ok();
    assert_eq!(rules["overrides"], json!([]));
    let defaults = keys(&rules["defaults"]);
    assert!(defaults.contains(&"checkin-call"));
    // The father is over 60: 重阳 is among the defaults.
    assert!(defaults.contains(&"festival-重阳"), "{defaults:?}");
    assert_eq!(rules["effective"], rules["defaults"]);
    assert!(
        live_keys(&app, &id)
            .await
            .iter()
            .any(|k| k.contains("checkin-call:"))
    );

    // The family asked for a call every two weeks instead of weekly, and a visit for 端午.
    let mut call = rules["defaults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "checkin-call")
        .unwrap()
        .clone();
    call["every"] = json!(2);
    call["window_days"] = json!(14);
    let dragon = json!({
        "key": "festival-端午", "kind": "festival", "festival": "端午",
        "channel": "home_visit", "lead_days": 3, "window_days": 4, "volunteers_needed": 1
    });
    let changed = app
        .put(
            &path,
            Some(&token),
            json!({"overrides": [
                {"op": "replace", "rule": call},
                {"op": "add", "rule": dragon},
                {"op": "disable", "key": "festival-重阳"}
            ]}),
        )
        .await
        .ok();
    let effective = keys(&changed["effective"]);
    assert!(effective.contains(&"festival-端午"));
    assert!(!effective.contains(&"festival-重阳"));
    let call = changed["effective"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "checkin-call")
        .unwrap();
    assert_eq!(call["every"], 2);
    assert_eq!(changed["overrides"].as_array().unwrap().len(), 3);
    assert_eq!(app.audit_count("update_care_rules").await, 1);

    // Re-planned at once: calls every other week now (about four in 60 days, not nine).
    let calls = live_keys(&app, &id)
        .await
        .into_iter()
        .filter(|k| k.contains("checkin-call:"))
        .count();
    assert!((3..=5).contains(&calls), "{calls} calls");

    // Back to the defaults.
    let reset = app
        .put(&path, Some(&token), json!({"overrides": []}))
        .await
        .ok();
    assert_eq!(reset["effective"], reset["defaults"]);
    let calls = live_keys(&app, &id)
        .await
        .into_iter()
        .filter(|k| k.contains("checkin-call:"))
        .count();
    assert!(calls >= 8, "{calls} calls");
}

#[tokio::test]
async fn bad_rules_name_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let id = new_family(&app, &token).await;
    let path = format!("/api/families/{id}/rules");
    let before = app.get(&path, Some(&token)).await.ok();
    let tasks_before = live_keys(&app, &id).await;
    let rule = |patch: Value| {
        let mut r = json!({
            "key": "checkin-extra", "kind": "checkin", "every": 1, "unit": "month",
            "channel": "home_visit", "lead_days": 0, "window_days": 10, "volunteers_needed": 1
        });
        for (k, v) in patch.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let cases = [
        (json!({"overrides": "all"}), "overrides"),
        (
            json!({"overrides": [{"op": "add", "rule": rule(json!({"window_days": 0}))}]}),
            "overrides[0].rule.window_days",
        ),
        (
            json!({"overrides": [{"op": "add", "rule": rule(json!({"every": 0}))}]}),
            "overrides[0].rule.every",
        ),
        (
            json!({"overrides": [{"op": "add", "rule": rule(json!({"kind": "festival", "festival": "圣诞"}))}]}),
            "overrides[0].rule.festival",
        ),
        (
            json!({"overrides": [{"op": "add", "rule": rule(json!({"key": "bad key"}))}]}),
            "overrides[0].rule.key",
        ),
        (
            json!({"overrides": [{"op": "add", "rule": rule(json!({"volunteers_needed": 9}))}]}),
            "overrides[0].rule.volunteers_needed",
        ),
        (
            json!({"overrides": [{"op": "sometimes", "key": "birthday"}]}),
            "overrides[0].op",
        ),
        (
            json!({"overrides": [{"op": "disable"}]}),
            "overrides[0].key",
        ),
        (
            json!({"overrides": [{"op": "disable", "key": "birthday"}, {"op": "disable", "key": "brithday"}]}),
            "overrides[1].key",
        ),
        (
            json!({"overrides": [{"op": "add", "rule": rule(json!({"key": "birthday"}))}]}),
            "overrides[0].rule.key",
        ),
        (
            json!({"overrides": [{"op": "replace"}]}),
            "overrides[0].rule",
        ),
    ];
    for (body, field) in cases {
        app.put(&path, Some(&token), body).await.invalid(field);
    }
    assert_eq!(app.get(&path, Some(&token)).await.ok(), before);
    assert_eq!(live_keys(&app, &id).await, tasks_before);
    assert_eq!(app.audit_count("update_care_rules").await, 0);
}

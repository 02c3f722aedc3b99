//! A volunteer subscribes their phone's calendar to the visits they hold.

use entity::visit_task;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use tests::*;
use uuid::Uuid;

#[tokio::test]
async fn a_volunteer_subscribes_to_their_visits_and_can_turn_the_address_off() {
    let app = spawn_app().await;
    let coordinator = app.token_for(people::EAST_COUNTY).await;
    let village = app.region("杨柳村").await;
    let family = app
        .post(
            "/api/families",
            Some(&coordinator),
            json!({
                "region_id": village, "register_no": "CAL-1", "category": "hardship",
                "head_name": "郑大山", "address": "杨柳村7组1号", "care_level": 1,
                "members": [{"name": "郑大山", "relation": "father", "birth_calendar": "solar",
                             "birth_year": 1960, "birth_month": 1, "birth_day": 1}]
            }),
        )
        .await
        .ok();
    let family: Uuid = family["id"].as_str().unwrap().parse().unwrap();
    let db = &app.state.db;
    let task = visit_task::Entity::find()
        .filter(visit_task::Column::FamilyId.eq(family))
        .filter(visit_task::Column::Channel.eq("home_visit"))
        .one(db)
        .await
        .unwrap()
        .expect("a planned home visit");
    // The demo volunteer holds it.
    let volunteer = app.user_id(people::VOLUNTEER).await;
    app.hold(&task, &[volunteer]).await;

    let token = app.token_for(people::VOLUNTEER).await;
    app.post("/api/me/calendar-feed", None, json!({}))
        .await
        .error(401, "unauthorized");
    let link = app
        .post("/api/me/calendar-feed", Some(&token), json!({}))
        .await
        .ok();
    let path = link["path"].as_str().unwrap().to_string();
    assert!(path.starts_with("/api/calendar/") && path.ends_with(".ics"));

    // The phone fetches it without logging in.
    let res = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let ics = res.text().await.unwrap().replace("\r\n ", "");
    assert!(ics.contains("BEGIN:VEVENT"), "{ics}");
    assert!(ics.contains(&format!("UID:{}@nuanxin", task.id)));
    assert!(ics.contains("入户走访 · 杨柳村"), "{ics}");
    // Calendars sync to other companies' clouds: no family name, no address.
    assert!(!ics.contains("郑大山") && !ics.contains("7组"), "{ics}");

    // A new address replaces the old one; turning it off ends the new one too.
    let again = app
        .post("/api/me/calendar-feed", Some(&token), json!({}))
        .await
        .ok();
    let new_path = again["path"].as_str().unwrap().to_string();
    assert_ne!(new_path, path);
    assert_eq!(app.get(&path, None).await.status, 404);
    assert_eq!(app.get(&new_path, None).await.status, 200);
    app.delete("/api/me/calendar-feed", Some(&token)).await.ok();
    assert_eq!(app.get(&new_path, None).await.status, 404);
    assert_eq!(
        app.get("/api/calendar/nonsense.ics", None).await.status,
        404
    );
}

//! The wish wall as families, volunteers and coordinators use it: a mother posts a wish
//! (her phone number taken out, an advert refused); the wall of her county shows it
//! without a name; a coordinator answers on the wall and privately, and she hears; someone
//! is asked to see it through and it is closed; time to first answer is shown per wish and
//! as a median; another county sees nothing of it.

use chrono::{Duration, Utc};
use entity::{notification, wish, wish_answer};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
};
use serde_json::json;
use server::notify::remind;
use tests::{visits::VolunteerSpec, *};
use uuid::Uuid;

fn plain() -> Options {
    Options {
        demo_families: Some(0),
        ..Options::default()
    }
}

async fn count_wishes(app: &TestApp) -> u64 {
    wish::Entity::find().count(&app.state.db).await.unwrap()
}

#[tokio::test]
async fn a_wish_is_checked_numbers_taken_out_and_adverts_refused() {
    let app = spawn_app_with(plain()).await;
    let m = app
        .member_of_new_family("杨柳村", "钱秀英", "13711112222", None)
        .await;
    let posted = app
        .post(
            "/api/family/wishes",
            Some(&m.token),
            json!({"content": "想找人帮忙换个灯泡，电话13711112222", "kind": "daily_life"}),
        )
        .await
        .ok();
    assert_eq!(posted["redacted"], true);
    assert_eq!(posted["kind_label"], "生活帮扶");
    let content = posted["content"].as_str().unwrap();
    assert!(!content.contains("13711112222"), "{content}");
    assert!(content.contains("换个灯泡"), "{content}");
    assert_eq!(count_wishes(&app).await, 1);

    for (body, field) in [
        (json!({"content": "有人找我刷单赚钱"}), "content"),
        (json!({"content": "字".repeat(501)}), "content"),
        (json!({"content": "  "}), "content"),
        (json!({"content": "想要轮椅", "kind": "money"}), "kind"),
        (
            json!({"content": "想要轮椅", "family_id": Uuid::now_v7()}),
            "family_id",
        ),
        (json!({"words": "想要轮椅"}), "words"),
    ] {
        app.post("/api/family/wishes", Some(&m.token), body)
            .await
            .invalid(field);
    }
    assert_eq!(count_wishes(&app).await, 1, "no partial writes");
    let v = app.volunteer(VolunteerSpec::at(31.31, 116.60)).await;
    app.post(
        "/api/family/wishes",
        Some(&v.token),
        json!({"content": "想要轮椅"}),
    )
    .await
    .error(403, "forbidden");
}

#[tokio::test]
async fn the_wall_shows_public_wishes_anonymised_with_public_answers_and_the_family_hears() {
    let app = spawn_app_with(plain()).await;
    let m = app
        .member_of_new_family("杨柳村", "钱秀英", "13711112222", None)
        .await;
    let other = app
        .member_of_new_family("杨柳村", "孙桂兰", "13711113333", None)
        .await;
    let public = app
        .post(
            "/api/family/wishes",
            Some(&m.token),
            json!({"content": "希望有人周末陪我去公园走走", "kind": "emotional", "public": true}),
        )
        .await
        .ok();
    let id = public["id"].as_str().unwrap().to_string();
    app.post(
        "/api/family/wishes",
        Some(&other.token),
        json!({"content": "家里的低保材料不会填"}),
    )
    .await
    .ok();

    let coordinator = app.token_for(people::TAOYUAN).await;
    let answered = app
        .post(
            &format!("/api/wishes/{id}/answers"),
            Some(&coordinator),
            json!({"content": "已联系志愿服务队，本周六上午有志愿者陪您去。", "public": true}),
        )
        .await
        .ok();
    assert!(answered["first_answer_minutes"].as_i64().is_some());
    app.post(
        &format!("/api/wishes/{id}/answers"),
        Some(&coordinator),
        json!({"content": "志愿者王*的电话 13900000000，有事可以找她。"}),
    )
    .await
    .ok();

    // A volunteer of the county sees one wish, no name, the village at most, and only the
    // public answer.
    let v = app.volunteer(VolunteerSpec::at(31.31, 116.60)).await;
    let wall = app.get("/api/wishes/wall", Some(&v.token)).await.ok();
    assert_eq!(wall["total"], 1, "{wall}");
    let item = &wall["items"][0];
    assert_eq!(item["village"], "杨柳村");
    assert_eq!(item["kind_label"], "精神慰藉");
    assert_eq!(item["answers"].as_array().unwrap().len(), 1);
    let shown = wall.to_string();
    for secret in ["钱秀英", "孙桂兰", "低保", "13900000000", "family_id"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    // The other family sees the same wall.
    let theirs = app.get("/api/wishes/wall", Some(&other.token)).await.ok();
    assert_eq!(theirs["total"], 1);

    // The family sees both answers, and was told.
    let mine = app.get("/api/family/wishes", Some(&m.token)).await.ok();
    assert_eq!(mine["items"][0]["answers"].as_array().unwrap().len(), 2);
    let told = notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(m.user))
        .filter(notification::Column::Template.eq(remind::WISH_ANSWERED))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(told, 2);
    assert_eq!(app.audit_count("answer_wish").await, 2);

    // Another county's wall is empty; its coordinator cannot read or answer the wish.
    let far = app
        .member_of_new_family("丰收村", "周玉珍", "13711114444", None)
        .await;
    let far_wall = app.get("/api/wishes/wall", Some(&far.token)).await.ok();
    assert_eq!(far_wall["total"], 0);
    let west = app.token_for(people::WEST_COUNTY).await;
    app.get(&format!("/api/wishes/{id}"), Some(&west))
        .await
        .error(404, "not_found");
    app.post(
        &format!("/api/wishes/{id}/answers"),
        Some(&west),
        json!({"content": "你好"}),
    )
    .await
    .error(404, "not_found");
    assert_eq!(app.get("/api/wishes", Some(&west)).await.ok()["total"], 0);
    assert_eq!(
        wish_answer::Entity::find()
            .count(&app.state.db)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn a_wish_is_assigned_closed_and_time_to_first_answer_is_a_median() {
    let app = spawn_app_with(plain()).await;
    let m = app
        .member_of_new_family("杨柳村", "钱秀英", "13711112222", None)
        .await;
    let coordinator = app.token_for(people::TAOYUAN).await;
    // Three wishes posted 1, 3 and 5 hours ago; two answered now.
    let mut ids = Vec::new();
    for hours in [1, 3, 5] {
        let w = app
            .post(
                "/api/family/wishes",
                Some(&m.token),
                json!({"content": format!("心愿{hours}")}),
            )
            .await
            .ok();
        let id: Uuid = w["id"].as_str().unwrap().parse().unwrap();
        let mut row = wish::Entity::find_by_id(id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        row.created_at = Set(Utc::now() - Duration::hours(hours));
        row.update(&app.state.db).await.unwrap();
        ids.push(id);
    }
    for id in &ids[..2] {
        app.post(
            &format!("/api/wishes/{id}/answers"),
            Some(&coordinator),
            json!({"content": "收到，我们来安排。"}),
        )
        .await
        .ok();
    }
    let stats = app.get("/api/wishes/stats", Some(&coordinator)).await.ok();
    assert_eq!(stats["received"], 3);
    assert_eq!(stats["answered"], 2);
    assert_eq!(stats["unanswered"], 1);
    let median = stats["median_first_answer_minutes"].as_f64().unwrap();
    assert!((median - 120.0).abs() <= 1.0, "{stats}");
    let unanswered = app
        .get("/api/wishes?unanswered=true", Some(&coordinator))
        .await
        .ok();
    assert_eq!(unanswered["total"], 1);
    assert_eq!(unanswered["items"][0]["id"], ids[2].to_string());

    // Someone of the township sees it through; someone elsewhere cannot be asked.
    let v = app.volunteer(VolunteerSpec::at(31.31, 116.60)).await;
    let id = ids[0];
    let assigned = app
        .post(
            &format!("/api/wishes/{id}/assign"),
            Some(&coordinator),
            json!({"user_id": v.user_id}),
        )
        .await
        .ok();
    assert_eq!(assigned["status"], "in_progress");
    assert!(assigned["assignee"].as_str().unwrap().ends_with('*'));
    // The volunteer is told, once, even when assigned again.
    app.post(
        &format!("/api/wishes/{id}/assign"),
        Some(&coordinator),
        json!({"user_id": v.user_id}),
    )
    .await
    .ok();
    let told: Vec<notification::Model> = notification::Entity::find()
        .filter(notification::Column::RecipientId.eq(v.user_id))
        .filter(notification::Column::Template.eq("wish_assigned"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].payload["wish_id"], id.to_string());
    let west_coordinator = app.user_id(people::WEST_COUNTY).await;
    app.post(
        &format!("/api/wishes/{id}/assign"),
        Some(&coordinator),
        json!({"user_id": west_coordinator}),
    )
    .await
    .invalid("user_id");
    let done = app
        .post(
            &format!("/api/wishes/{id}/done"),
            Some(&coordinator),
            json!({"note": "志愿者已陪同"}),
        )
        .await
        .ok();
    assert_eq!(done["status"], "done");
    app.post(
        &format!("/api/wishes/{id}/done"),
        Some(&coordinator),
        json!({}),
    )
    .await
    .error(409, "wish_done");
    app.post(
        &format!("/api/wishes/{id}/assign"),
        Some(&coordinator),
        json!({"user_id": v.user_id}),
    )
    .await
    .error(409, "wish_done");
    let stats = app.get("/api/wishes/stats", Some(&coordinator)).await.ok();
    assert_eq!(stats["done"], 1);

    // Bad filters are named.
    app.get("/api/wishes?status=lost", Some(&coordinator))
        .await
        .invalid("status");
    app.get("/api/wishes?kind=money", Some(&coordinator))
        .await
        .invalid("kind");
    app.get(
        "/api/wishes/stats?from=2026-05-01&to=2026-04-01",
        Some(&coordinator),
    )
    .await
    .invalid("from");
    app.post(
        &format!("/api/wishes/{}/answers", ids[2]),
        Some(&coordinator),
        json!({"content": "", "public": true}),
    )
    .await
    .invalid("content");
}

use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use tests::*;

fn new_family(village: &str, register_no: &str) -> Value {
    json!({
        "region_id": village,
        "register_no": register_no,
        "category": "bereaved",
        "head_name": "赵德明",
        "phone": "13611112222",
        "address": "杨柳村3组12号",
        "lat": 31.83, "lng": 117.24,
        "care_level": 3,
        "consent_sms": true,
        "preferences": {"quiet_from": "21:00", "quiet_to": "08:00", "no_festive_visits": true},
        "visitor_notes": "喜欢下午来访",
        "counsel_notes": "不要提起儿子",
        "members": [
            {"name": "赵德明", "relation": "father", "gender": "男", "phone": "13611112222",
             "id_number": "11010519491231002X", "birth_calendar": "lunar",
             "birth_year": 1955, "birth_month": 6, "birth_day": 30, "primary_contact": true},
            {"name": "钱秀英", "relation": "mother", "gender": "女",
             "birth_calendar": "lunar", "birth_year": 1957, "birth_month": 8, "birth_day": 3, "birth_leap_month": true},
            {"name": "赵小军", "relation": "child", "birth_year": 1982, "birth_month": 2, "birth_day": 14,
             "deceased": true, "death_date": "2008-05-12"}
        ]
    })
}

async fn family_count(app: &TestApp) -> u64 {
    entity::family::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_coordinator_registers_a_family_and_finds_it_again() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let village = app.region("杨柳村").await;
    let before = app.get("/api/families", Some(&token)).await.ok()["total"]
        .as_u64()
        .unwrap();
    let created = app
        .post(
            "/api/families",
            Some(&token),
            new_family(&village, "YL-0001"),
        )
        .await
        .ok();
    let id = created["id"].as_str().unwrap();
    let after = app.get("/api/families", Some(&token)).await.ok()["total"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before + 1, "the total counts the new family at once");
    assert_eq!(created["members"].as_array().unwrap().len(), 3);
    assert_eq!(created["preferences"]["no_festive_visits"], true);
    let father = &created["members"][0];
    assert_eq!(
        father["id_number"], "110105********002X",
        "ID numbers are shown masked"
    );
    assert_eq!(father["birth_calendar"], "lunar");
    assert_eq!(father["birth_day"], 30);
    assert_eq!(created["members"][1]["birth_leap_month"], true);
    assert_eq!(created["members"][2]["deceased"], true);

    // Search by name: the list shows the phone masked and no address.
    let found = app.get("/api/families?q=赵德", Some(&token)).await.ok();
    assert_eq!(found["total"], 1);
    let row = &found["items"][0];
    assert_eq!(row["id"], id);
    assert_eq!(row["phone"], "136****2222");
    assert!(row.get("address").is_none());

    // Filter by category and by township; paginate.
    let bereaved = app
        .get("/api/families?category=bereaved&per_page=5", Some(&token))
        .await
        .ok();
    assert!(
        bereaved["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["category"] == "bereaved")
    );
    assert_eq!(
        bereaved["items"].as_array().unwrap().len().min(5),
        bereaved["items"].as_array().unwrap().len()
    );
    let township = app.region("桃源镇").await;
    let in_township = app
        .get(
            &format!("/api/families?region_id={township}&per_page=100"),
            Some(&token),
        )
        .await
        .ok();
    assert!(
        in_township["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == id)
    );
    let page2 = app
        .get("/api/families?per_page=2&page=2", Some(&token))
        .await
        .ok();
    assert_eq!(page2["page"], 2);
    assert_eq!(page2["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn reading_a_full_record_is_audited_and_id_numbers_are_encrypted_at_rest() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let village = app.region("杨柳村").await;
    let created = app
        .post(
            "/api/families",
            Some(&token),
            new_family(&village, "YL-0002"),
        )
        .await
        .ok();
    let id = created["id"].as_str().unwrap();
    let before = app.audit_count("read_family").await;
    app.get(&format!("/api/families/{id}"), Some(&token))
        .await
        .ok();
    assert_eq!(app.audit_count("read_family").await, before + 1);

    let stored = entity::family_member::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(stored.iter().all(|m| {
        !m.id_number_enc
            .as_deref()
            .unwrap_or("")
            .contains("1101051949")
    }));

    let member = created["members"][0]["id"].as_str().unwrap();
    let revealed = app
        .get(
            &format!("/api/families/{id}/members/{member}/id-number"),
            Some(&token),
        )
        .await
        .ok();
    assert_eq!(revealed["id_number"], "11010519491231002X");
    assert_eq!(app.audit_count("reveal_id_number").await, 1);
}

#[tokio::test]
async fn bad_input_names_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    let token = app.token_for(people::EAST_COUNTY).await;
    let village = app.region("杨柳村").await;
    let before = family_count(&app).await;
    type Breakage = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Breakage)> = vec![
        ("category", Box::new(|f| f["category"] = json!("widowed"))),
        ("phone", Box::new(|f| f["phone"] = json!("12345"))),
        ("care_level", Box::new(|f| f["care_level"] = json!(9))),
        ("care_level", Box::new(|f| f["care_level"] = json!("high"))),
        ("head_name", Box::new(|f| f["head_name"] = json!("  "))),
        (
            "address",
            Box::new(|f| {
                f.as_object_mut().unwrap().remove("address");
            }),
        ),
        (
            "location",
            Box::new(|f| {
                f.as_object_mut().unwrap().remove("lng");
            }),
        ),
        ("location.lat", Box::new(|f| f["lat"] = json!(123.0))),
        (
            "region_id",
            Box::new(|f| f["region_id"] = json!("not-a-uuid")),
        ),
        (
            "preferences.quiet_from",
            Box::new(|f| f["preferences"]["quiet_from"] = json!("25:00")),
        ),
        (
            "members[0].id_number",
            Box::new(|f| f["members"][0]["id_number"] = json!("110105194912310021")),
        ),
        (
            "members[1].birth_day",
            Box::new(|f| f["members"][1]["birth_day"] = json!(31)),
        ),
        (
            "members[2].relation",
            Box::new(|f| f["members"][2]["relation"] = json!("cousin")),
        ),
        (
            "members[2].death_date",
            Box::new(|f| f["members"][2]["deceased"] = json!(false)),
        ),
        (
            "members[0].birth_leap_month",
            Box::new(|f| {
                f["members"][0]["birth_calendar"] = json!("solar");
                f["members"][0]["birth_day"] = json!(1);
                f["members"][0]["birth_leap_month"] = json!(true);
            }),
        ),
        ("unexpected", Box::new(|f| f["unexpected"] = json!(1))),
    ];
    for (field, break_it) in cases {
        let mut body = new_family(&village, "YL-BAD");
        break_it(&mut body);
        let reply = app.post("/api/families", Some(&token), body).await;
        assert_eq!(reply.status.as_u16(), 422, "{field}: {}", reply.body);
        reply.invalid(field);
    }
    // Malformed JSON, wrong content type, an empty body and an oversized one.
    app.raw(
        "POST",
        "/api/families",
        Some(&token),
        "application/json",
        b"{\"region_id\":".to_vec(),
    )
    .await
    .invalid("body");
    app.raw(
        "POST",
        "/api/families",
        Some(&token),
        "application/json",
        Vec::new(),
    )
    .await
    .invalid("body");
    let reply = app
        .raw(
            "POST",
            "/api/families",
            Some(&token),
            "text/plain",
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 415, "{}", reply.body);
    let huge = vec![b' '; 9 * 1024 * 1024];
    app.raw(
        "POST",
        "/api/families",
        Some(&token),
        "application/json",
        huge,
    )
    .await
    .error(413, "payload_too_large");
    assert_eq!(family_count(&app).await, before, "no partial writes");

    // A duplicate register number in the same village is a conflict on that field.
    app.post(
        "/api/families",
        Some(&token),
        new_family(&village, "YL-DUP"),
    )
    .await
    .ok();
    app.post(
        "/api/families",
        Some(&token),
        new_family(&village, "YL-DUP"),
    )
    .await
    .invalid("register_no");
    assert_eq!(family_count(&app).await, before + 1);
}

#[tokio::test]
async fn coordinators_see_and_touch_only_their_own_region() {
    let app = spawn_app().await;
    let east = app.token_for(people::EAST_COUNTY).await;
    let west = app.token_for(people::WEST_COUNTY).await;
    let east_village = app.region("杨柳村").await;
    let west_village = app.region("丰收村").await;
    let east_family = app
        .post(
            "/api/families",
            Some(&east),
            new_family(&east_village, "E-1"),
        )
        .await
        .ok();
    let id = east_family["id"].as_str().unwrap();

    // West cannot see, change, or register into the east.
    app.get(&format!("/api/families/{id}"), Some(&west))
        .await
        .error(404, "not_found");
    app.patch(
        &format!("/api/families/{id}"),
        Some(&west),
        json!({"care_level": 1}),
    )
    .await
    .error(404, "not_found");
    app.post(
        "/api/families",
        Some(&west),
        new_family(&east_village, "W-1"),
    )
    .await
    .invalid("region_id");
    let west_list = app
        .get("/api/families?per_page=100&q=赵德明", Some(&west))
        .await
        .ok();
    assert_eq!(west_list["total"], 0);
    // The east county's list holds only east families; the city sees both.
    let east_all = app
        .get("/api/families?per_page=100", Some(&east))
        .await
        .ok();
    let west_all = app
        .get("/api/families?per_page=100", Some(&west))
        .await
        .ok();
    let city = app.token_for(people::CITY).await;
    let city_all = app
        .get("/api/families?per_page=100", Some(&city))
        .await
        .ok();
    assert_eq!(
        city_all["total"].as_u64().unwrap(),
        east_all["total"].as_u64().unwrap() + west_all["total"].as_u64().unwrap()
    );
    app.post(
        "/api/families",
        Some(&west),
        new_family(&west_village, "W-1"),
    )
    .await
    .ok();

    // A volunteer sees no family details yet.
    let volunteer = app.token_for(people::VOLUNTEER).await;
    app.get("/api/families", Some(&volunteer))
        .await
        .error(403, "forbidden");
    app.get(&format!("/api/families/{id}"), Some(&volunteer))
        .await
        .error(403, "forbidden");
}

#[tokio::test]
async fn the_list_shows_a_change_at_once() {
    let app = spawn_app().await;
    let token = app.token_for(people::TAOYUAN).await;
    let village = app.region("杨柳村").await;
    let f = app
        .post("/api/families", Some(&token), new_family(&village, "L-1"))
        .await
        .ok();
    let id = f["id"].as_str().unwrap();
    let list = |q: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            app.get(&format!("/api/families?q={q}"), Some(token))
                .await
                .ok()
        }
    };
    // Read (and so cached) before the change.
    assert_eq!(list("L-1").await["items"][0]["care_level"], f["care_level"]);
    let before = list("L-1").await["total"].as_u64().unwrap();
    let new_level = if f["care_level"] == 3 { 1 } else { 3 };
    app.patch(
        &format!("/api/families/{id}"),
        Some(&token),
        json!({"care_level": new_level}),
    )
    .await
    .ok();
    assert_eq!(list("L-1").await["items"][0]["care_level"], new_level);
    app.post("/api/families", Some(&token), new_family(&village, "L-12"))
        .await
        .ok();
    assert_eq!(list("L-1").await["total"].as_u64().unwrap(), before + 1);
}

#[tokio::test]
async fn coordinators_of_two_regions_asking_the_same_page_each_get_their_own() {
    let app = spawn_app().await;
    let east = app.token_for(people::EAST_COUNTY).await;
    let west = app.token_for(people::WEST_COUNTY).await;
    let (east_village, west_village) = (app.region("杨柳村").await, app.region("丰收村").await);
    for (token, village, no) in [
        (&east, &east_village, "Q9-1"),
        (&west, &west_village, "Q9-2"),
    ] {
        app.post("/api/families", Some(token), new_family(village, no))
            .await
            .ok();
    }
    let page = |token: &String| {
        let (app, token) = (&app, token.clone());
        async move {
            let page = app
                .get("/api/families?q=Q9-&per_page=100", Some(&token))
                .await
                .ok();
            let nos: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["register_no"].as_str().unwrap().to_string())
                .collect();
            (nos, page)
        }
    };
    // The same query, one right after the other: each sees their own county only, masked.
    let (east_nos, east_page) = page(&east).await;
    let (west_nos, _) = page(&west).await;
    assert_eq!(east_nos, ["Q9-1"]);
    assert_eq!(west_nos, ["Q9-2"]);
    assert_eq!(east_page["total"], 1);
    assert_eq!(east_page["items"][0]["phone"], "136****2222");
    assert!(east_page["items"][0].get("counsel_notes").is_none());

    // A write through this instance shows at once, to its own region only.
    let created = app
        .post(
            "/api/families",
            Some(&west),
            new_family(&west_village, "Q9-3"),
        )
        .await
        .ok();
    assert_eq!(page(&west).await.0, ["Q9-2", "Q9-3"]);
    assert_eq!(page(&east).await.0, ["Q9-1"]);
    app.patch(
        &format!("/api/families/{}", created["id"].as_str().unwrap()),
        Some(&west),
        json!({"register_no": "R9-3"}),
    )
    .await
    .ok();
    let (west_nos, west_page) = page(&west).await;
    assert_eq!(west_nos, ["Q9-2"]);
    assert_eq!(west_page["total"], 1);
}

#[tokio::test]
async fn preferences_consent_and_members_can_be_changed() {
    let app = spawn_app().await;
    let token = app.token_for(people::TAOYUAN).await;
    let village = app.region("杨柳村").await;
    let f = app
        .post("/api/families", Some(&token), new_family(&village, "P-1"))
        .await
        .ok();
    let id = f["id"].as_str().unwrap();
    let changed = app
        .patch(&format!("/api/families/{id}"), Some(&token), json!({"consent_sms": false, "consent_wechat": true, "care_level": 2, "preferences": {"no_festive_visits": false}}))
        .await
        .ok();
    assert_eq!(changed["consent_sms"], false);
    assert_eq!(changed["consent_wechat"], true);
    assert_eq!(changed["preferences"]["no_festive_visits"], false);
    let consents = entity::consent::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    let sms: Vec<_> = consents.iter().filter(|c| c.purpose == "sms").collect();
    assert_eq!(sms.len(), 1);
    assert!(
        sms[0].withdrawn_at.is_some(),
        "withdrawing consent is recorded"
    );
    assert!(
        consents
            .iter()
            .any(|c| c.purpose == "wechat" && c.withdrawn_at.is_none())
    );

    let added = app
        .post(
            &format!("/api/families/{id}/members"),
            Some(&token),
            json!({"name": "赵小红", "relation": "grandchild", "birth_month": 2, "birth_day": 29}),
        )
        .await
        .ok();
    let mid = added["id"].as_str().unwrap();
    app.patch(
        &format!("/api/families/{id}/members/{mid}"),
        Some(&token),
        json!({"birth_year": 2011}),
    )
    .await
    .invalid("birth_day");
    let fixed = app
        .patch(
            &format!("/api/families/{id}/members/{mid}"),
            Some(&token),
            json!({"birth_year": 2012}),
        )
        .await
        .ok();
    assert_eq!(fixed["birth_year"], 2012);
    app.delete(&format!("/api/families/{id}/members/{mid}"), Some(&token))
        .await
        .ok();
    let after = app
        .get(&format!("/api/families/{id}"), Some(&token))
        .await
        .ok();
    assert_eq!(after["members"].as_array().unwrap().len(), 3);
    app.patch(
        &format!("/api/families/{id}"),
        Some(&token),
        json!({"status": "gone"}),
    )
    .await
    .invalid("status");
}

#[tokio::test]
async fn member_and_invite_writes_refuse_bad_input() {
    let app = spawn_app().await;
    let token = app.token_for(people::TAOYUAN).await;
    let village = app.region("杨柳村").await;
    let f = app
        .post("/api/families", Some(&token), new_family(&village, "M-1"))
        .await
        .ok();
    let id = f["id"].as_str().unwrap();
    let members = format!("/api/families/{id}/members");
    app.post(&members, Some(&token), json!({"relation": "child"}))
        .await
        .invalid("name");
    app.post(
        &members,
        Some(&token),
        json!({"name": "赵", "relation": "child", "gender": "x"}),
    )
    .await
    .invalid("gender");
    app.post(
        &members,
        Some(&token),
        json!({"name": "赵", "relation": "child", "phone": "555"}),
    )
    .await
    .invalid("phone");
    app.post(
        &members,
        Some(&token),
        json!({"name": "赵", "relation": "child", "death_date": "2999-01-01", "deceased": true}),
    )
    .await
    .invalid("death_date");
    let mid = f["members"][0]["id"].as_str().unwrap();
    app.patch(
        &format!("{members}/{mid}"),
        Some(&token),
        json!({"gender": "x"}),
    )
    .await
    .invalid("gender");
    app.patch(
        &format!("{members}/{mid}"),
        Some(&token),
        json!({"birth_month": 13}),
    )
    .await
    .invalid("birth_month");
    app.patch(
        &format!("{members}/{}", uuid::Uuid::now_v7()),
        Some(&token),
        json!({"gender": "女"}),
    )
    .await
    .error(404, "not_found");
    let invites = format!("/api/families/{id}/invites");
    app.post(
        &invites,
        Some(&token),
        json!({"member_id": uuid::Uuid::now_v7()}),
    )
    .await
    .invalid("member_id");
    let deceased = f["members"][2]["id"].as_str().unwrap();
    app.post(&invites, Some(&token), json!({"member_id": deceased}))
        .await
        .invalid("member_id");
    let after = app
        .get(&format!("/api/families/{id}"), Some(&token))
        .await
        .ok();
    assert_eq!(
        after["members"].as_array().unwrap().len(),
        3,
        "nothing was added"
    );
    assert_eq!(after["members"][0]["gender"], "男", "nothing was changed");
}

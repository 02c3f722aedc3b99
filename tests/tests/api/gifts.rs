//! The 慰问金 ledger as coordinators use it: a budget per programme and festival, one gift
//! per family per festival unless overridden with a reason, a second coordinator's
//! approval for large gifts, the family's confirmation as the receipt, and the gifts
//! reconciled with the 慰问金 the visit reports give; bad input and other regions refused
//! without writing anything.

use entity::{FamilyCategory, gift};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use tests::{oversight::HOME, visits::VolunteerSpec, *};

async fn gifts_count(app: &TestApp) -> u64 {
    gift::Entity::find().count(&app.state.db).await.unwrap()
}

#[tokio::test]
async fn gifts_once_per_festival_approved_received_and_reconciled() {
    let app = spawn_app().await;
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let county = app.token_for(people::EAST_COUNTY).await;
    let vols = app.volunteers(2, VolunteerSpec::at(HOME.0, HOME.1)).await;
    let f1 = app
        .family_at("杨柳村", FamilyCategory::Bereaved, "孙长海", Some(HOME))
        .await;
    let f2 = app
        .family_at("杨柳村", FamilyCategory::Hardship, "钱秀英", Some(HOME))
        .await;
    let township = app.region("桃源镇").await;
    let budget = app
        .post(
            "/api/gift-budgets",
            Some(&taoyuan),
            json!({"region_id": township, "programme": "两节慰问", "festival": "2027春节",
                   "budget_yuan": 5000}),
        )
        .await
        .ok();
    let b = budget["id"].as_str().unwrap().to_string();
    assert_eq!(budget["budget_fen"], 500_000);
    // The same budget twice: refused.
    app.post(
        "/api/gift-budgets",
        Some(&taoyuan),
        json!({"region_id": township, "programme": "两节慰问", "festival": "2027春节",
               "budget_yuan": 1}),
    )
    .await
    .error(409, "already_exists");

    let v1 = app.visit_today(f1, "festival").await;
    let v2 = app.visit_today(f2, "festival").await;
    let g1 = app
        .post(
            "/api/gifts",
            Some(&taoyuan),
            json!({"budget_id": b, "family_id": f1, "task_id": v1, "amount_yuan": 500}),
        )
        .await
        .ok();
    assert_eq!(g1["status"], "approved");
    assert_eq!(g1["head_name"], "孙*海");
    // A second gift for the same festival needs a reason.
    app.post(
        "/api/gifts",
        Some(&taoyuan),
        json!({"budget_id": b, "family_id": f1, "amount_yuan": 200}),
    )
    .await
    .error(409, "already_given");
    let extra = app
        .post(
            "/api/gifts",
            Some(&taoyuan),
            json!({"budget_id": b, "family_id": f1, "amount_yuan": 200,
                   "override_reason": "老人住院，追加慰问"}),
        )
        .await
        .ok();
    assert_eq!(extra["override_reason"], "老人住院，追加慰问");
    // Cancelled, the extra gift no longer counts against the budget.
    app.post(
        &format!("/api/gifts/{}/cancel", extra["id"].as_str().unwrap()),
        Some(&taoyuan),
        json!({"reason": "重复录入"}),
    )
    .await
    .ok();

    // Above 2000 yuan: waits for a second coordinator.
    let g2 = app
        .post(
            "/api/gifts",
            Some(&taoyuan),
            json!({"budget_id": b, "family_id": f2, "task_id": v2, "amount_yuan": 3000}),
        )
        .await
        .ok();
    assert_eq!(g2["status"], "awaiting_approval");
    let g2_id = g2["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/gifts/{g2_id}/approve"),
        Some(&taoyuan),
        json!({}),
    )
    .await
    .error(403, "forbidden");
    let approved = app
        .post(
            &format!("/api/gifts/{g2_id}/approve"),
            Some(&county),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(approved["status"], "approved");
    app.post(
        &format!("/api/gifts/{g2_id}/approve"),
        Some(&county),
        json!({}),
    )
    .await
    .error(409, "not_awaiting_approval");
    // 5000 − 500 − 3000 left: 1600 is too much.
    let f3 = app
        .family_at("杨柳村", FamilyCategory::Hardship, "李德明", Some(HOME))
        .await;
    app.post(
        "/api/gifts",
        Some(&taoyuan),
        json!({"budget_id": b, "family_id": f3, "amount_yuan": 1600}),
    )
    .await
    .error(409, "over_budget");

    // The visits are done; the reports give the cash handed over (the second one less
    // than the ledger says); the families confirm: the receipts.
    app.do_visit(
        &vols[0].token,
        v1,
        json!({"services": ["condolence"], "cash_yuan": 500}),
    )
    .await;
    app.do_visit(
        &vols[1].token,
        v2,
        json!({"services": ["condolence"], "cash_yuan": 2500}),
    )
    .await;
    let unconfirmed = app
        .get(
            &format!("/api/gift-budgets/{b}/reconciliation"),
            Some(&taoyuan),
        )
        .await
        .ok();
    assert_eq!(unconfirmed["received_gifts"], 0);
    for (fam, visit) in [(f1, v1), (f2, v2)] {
        let member = app.family_member_token(people::TAOYUAN, fam).await;
        app.post(
            &format!("/api/family/visits/{visit}/confirm"),
            Some(&member),
            json!({}),
        )
        .await
        .ok();
    }
    let listed = app
        .get(&format!("/api/gift-budgets/{b}/gifts"), Some(&taoyuan))
        .await
        .ok();
    assert_eq!(listed["total"], 3);
    let received: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["received_at"].is_string())
        .collect();
    assert_eq!(received.len(), 2);
    let r = app
        .get(
            &format!("/api/gift-budgets/{b}/reconciliation"),
            Some(&taoyuan),
        )
        .await
        .ok();
    assert_eq!(r["received_gifts"], 2);
    assert_eq!(r["received_fen"], 350_000);
    assert_eq!(r["reported_cash_fen"], 300_000);
    assert_eq!(r["reconciled"], false);
    assert_eq!(r["mismatches"].as_array().unwrap().len(), 1);
    assert_eq!(r["mismatches"][0]["visit_id"], v2.to_string());
    assert_eq!(r["mismatches"][0]["gifts_fen"], 300_000);
    // A coordinator corrects the report: now they agree.
    app.patch(
        &format!("/api/visits/{v2}/report"),
        Some(&taoyuan),
        json!({"cash_yuan": 3000, "reason": "慰问金录入有误"}),
    )
    .await
    .ok();
    let r = app
        .get(
            &format!("/api/gift-budgets/{b}/reconciliation"),
            Some(&taoyuan),
        )
        .await
        .ok();
    assert_eq!(r["reconciled"], true);
    assert_eq!(r["received_fen"], r["reported_cash_fen"]);

    let budgets = app.get("/api/gift-budgets", Some(&taoyuan)).await.ok();
    let row = &budgets["items"][0];
    assert_eq!(row["allocated_fen"], 350_000);
    assert_eq!(row["received_fen"], 350_000);
    assert_eq!(row["remaining_fen"], 150_000);
    assert_eq!(app.audit_count("create_gift").await, 3);
    assert_eq!(app.audit_count("approve_gift").await, 1);
    assert_eq!(app.audit_count("cancel_gift").await, 1);
}

#[tokio::test]
async fn bad_gifts_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let f1 = app
        .family_at("杨柳村", FamilyCategory::Bereaved, "孙长海", Some(HOME))
        .await;
    let other_family = app
        .family_at("和平社区", FamilyCategory::Bereaved, "周德明", Some(HOME))
        .await;
    let west_family = app
        .family_at("丰收村", FamilyCategory::Bereaved, "吴建国", Some(HOME))
        .await;
    let village = app.region("杨柳村").await;
    let b = app
        .post(
            "/api/gift-budgets",
            Some(&taoyuan),
            json!({"region_id": village, "programme": "两节慰问", "festival": "2027中秋",
                   "budget_yuan": 1000}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let west_village = app.region("丰收村").await;
    app.post(
        "/api/gift-budgets",
        Some(&taoyuan),
        json!({"region_id": west_village, "programme": "x", "festival": "y", "budget_yuan": 1}),
    )
    .await
    .invalid("region_id");
    app.post(
        "/api/gift-budgets",
        Some(&taoyuan),
        json!({"region_id": village, "programme": "x", "festival": "y", "budget_yuan": -5}),
    )
    .await
    .invalid("budget_yuan");
    app.post(
        "/api/gift-budgets",
        Some(&taoyuan),
        json!({"region_id": village, "programme": "", "festival": "y", "budget_yuan": 5}),
    )
    .await
    .invalid("programme");

    let before = gifts_count(&app).await;
    let gift = |body: Value| {
        let app = &app;
        let taoyuan = taoyuan.clone();
        async move { app.post("/api/gifts", Some(&taoyuan), body).await }
    };
    gift(json!({"budget_id": b, "family_id": f1, "amount_yuan": 0}))
        .await
        .invalid("amount_yuan");
    gift(json!({"budget_id": b, "family_id": f1, "amount_yuan": 10.001}))
        .await
        .invalid("amount_yuan");
    gift(json!({"budget_id": b, "family_id": f1, "amount_yuan": "many"}))
        .await
        .invalid("amount_yuan");
    // A family of another village than the budget's, or of another county.
    gift(json!({"budget_id": b, "family_id": other_family, "amount_yuan": 10}))
        .await
        .invalid("family_id");
    gift(json!({"budget_id": b, "family_id": west_family, "amount_yuan": 10}))
        .await
        .invalid("family_id");
    // A visit of another family.
    let theirs = app.visit_today(other_family, "festival").await;
    gift(json!({"budget_id": b, "family_id": f1, "task_id": theirs, "amount_yuan": 10}))
        .await
        .invalid("task_id");
    gift(json!({"budget_id": b, "family_id": f1, "amount_yuan": 10, "override_reason": " "}))
        .await
        .invalid("override_reason");
    assert_eq!(gifts_count(&app).await, before);
    assert_eq!(app.audit_count("create_gift").await, 0);

    // Another county's coordinator cannot see or use the budget.
    let west = app.token_for(people::WEST_COUNTY).await;
    app.post(
        "/api/gifts",
        Some(&west),
        json!({"budget_id": b, "family_id": f1, "amount_yuan": 10}),
    )
    .await
    .error(404, "not_found");
    app.get(
        &format!("/api/gift-budgets/{b}/reconciliation"),
        Some(&west),
    )
    .await
    .error(404, "not_found");
    let theirs = app.get("/api/gift-budgets", Some(&west)).await.ok();
    assert_eq!(theirs["total"], 0);
    let volunteer = app.token_for(people::VOLUNTEER).await;
    app.post(
        "/api/gifts",
        Some(&volunteer),
        json!({"budget_id": b, "family_id": f1, "amount_yuan": 10}),
    )
    .await
    .error(403, "forbidden");
}

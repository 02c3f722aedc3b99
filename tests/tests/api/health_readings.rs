//! Blood pressure over time per family member, as a coordinator sees it: readings from the
//! visit reports, marked against the thresholds, and a reading beyond them raising a
//! health worker's follow-up that the coordinators hear of; bad input refused whole.

use entity::{FamilyCategory, notification, visit_record, visit_task};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use tests::{oversight::HOME, visits::VolunteerSpec, *};
use uuid::Uuid;

async fn member(app: &TestApp, token: &str, family: Uuid, name: &str, relation: &str) -> String {
    app.post(
        &format!("/api/families/{family}/members"),
        Some(token),
        json!({"name": name, "relation": relation}),
    )
    .await
    .ok()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_high_reading_raises_a_followup_and_readings_show_over_time() {
    let app = spawn_app().await;
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let vols = app.volunteers(2, VolunteerSpec::at(HOME.0, HOME.1)).await;
    let fam = app
        .family_at("杨柳村", FamilyCategory::EmptyNest, "孙长海", Some(HOME))
        .await;
    let father = member(&app, &taoyuan, fam, "孙长海", "father").await;
    let mother = member(&app, &taoyuan, fam, "周桂兰", "mother").await;

    let v1 = app.visit_today(fam, "checkin").await;
    let report = app
        .do_visit(
            &vols[0].token,
            v1,
            json!({"services": ["health_check"], "bp_systolic": 182, "bp_diastolic": 112,
                   "bp_member_id": father}),
        )
        .await;
    assert_eq!(report["bp_member_id"], father.as_str());
    let followup: Uuid = report["health_followup_visit_id"]
        .as_str()
        .expect("a follow-up")
        .parse()
        .unwrap();
    let f = app.visit_row(followup).await;
    assert_eq!(f.kind, "health_followup");
    assert!(f.needs_attention);
    assert_eq!(f.required_skills.0, vec!["health".to_string()]);
    assert!(f.status_reason.unwrap().contains("182/112"));
    // The nearest coordinator over the family (杨柳村 has its own) hears of it, without
    // the values; the tiers above do not.
    let told: Vec<notification::Model> = notification::Entity::find()
        .filter(notification::Column::Template.eq("visit_risk_signs"))
        .all(&app.state.db)
        .await
        .unwrap();
    let to: Vec<Uuid> = told.iter().map(|n| n.recipient_id).collect();
    assert_eq!(to, vec![app.user_id(people::YANGLIU).await]);
    assert!(told.iter().all(|n| !n.payload.to_string().contains("182")));

    let v2 = app.visit_today(fam, "checkin").await;
    let normal = app
        .do_visit(
            &vols[1].token,
            v2,
            json!({"services": ["health_check"], "bp_systolic": 128, "bp_diastolic": 82,
                   "bp_member_id": mother}),
        )
        .await;
    assert!(normal["health_followup_visit_id"].is_null());

    let all = app
        .get(
            &format!("/api/families/{fam}/health-readings"),
            Some(&taoyuan),
        )
        .await
        .ok();
    assert_eq!(all["thresholds"]["systolic_high"], 160);
    assert_eq!(all["readings"]["total"], 2);
    let his = app
        .get(
            &format!("/api/families/{fam}/health-readings?member_id={father}"),
            Some(&taoyuan),
        )
        .await
        .ok();
    assert_eq!(his["readings"]["total"], 1);
    let r = &his["readings"]["items"][0];
    assert_eq!(r["systolic"], 182);
    assert_eq!(r["level"], "high");
    assert_eq!(r["member"], "父亲 孙*海");
    assert_eq!(app.audit_count("read_health_readings").await, 2);

    // A coordinator's correction to a high reading calls the health worker too.
    let corrected = app
        .patch(
            &format!("/api/visits/{v2}/report"),
            Some(&taoyuan),
            json!({"bp_systolic": 165, "bp_diastolic": 95, "reason": "录入有误"}),
        )
        .await
        .ok();
    assert!(corrected["health_followup_visit_id"].is_string());
}

#[tokio::test]
async fn readings_refuse_bad_input_and_other_regions() {
    let app = spawn_app().await;
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let v = app.volunteer(VolunteerSpec::at(HOME.0, HOME.1)).await;
    let fam = app
        .family_at("杨柳村", FamilyCategory::EmptyNest, "孙长海", Some(HOME))
        .await;
    let other = app
        .family_at("杨柳村", FamilyCategory::EmptyNest, "李德明", Some(HOME))
        .await;
    let stranger = member(&app, &taoyuan, other, "李德明", "father").await;
    let visit = app.visit_today(fam, "checkin").await;
    app.claim(&v.token, visit).await;
    app.post(
        &format!("/api/visits/{visit}/checkin"),
        Some(&v.token),
        json!({"lat": HOME.0, "lng": HOME.1}),
    )
    .await
    .ok();
    let url = format!("/api/visits/{visit}/report");
    app.post(
        &url,
        Some(&v.token),
        json!({"services": ["health_check"], "bp_member_id": stranger}),
    )
    .await
    .invalid("bp_member_id");
    app.post(
        &url,
        Some(&v.token),
        json!({"services": ["health_check"], "bp_systolic": 190, "bp_diastolic": 120,
               "bp_member_id": stranger}),
    )
    .await
    .invalid("bp_member_id");
    // Nothing was written: no report, no follow-up, the visit still under way.
    assert_eq!(app.visit_row(visit).await.status, "in_progress");
    let rec = visit_record::Entity::find()
        .filter(visit_record::Column::TaskId.eq(visit))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(rec.submitted_at.is_none() && rec.bp_systolic.is_none());
    let followups = visit_task::Entity::find()
        .filter(visit_task::Column::Kind.eq("health_followup"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(followups.is_empty());

    app.get(
        &format!("/api/families/{fam}/health-readings?member_id={stranger}"),
        Some(&taoyuan),
    )
    .await
    .invalid("member_id");
    let west = app.token_for(people::WEST_COUNTY).await;
    app.get(&format!("/api/families/{fam}/health-readings"), Some(&west))
        .await
        .error(404, "not_found");
    let volunteer = app.token_for(people::VOLUNTEER).await;
    app.get(
        &format!("/api/families/{fam}/health-readings"),
        Some(&volunteer),
    )
    .await
    .error(403, "forbidden");
    assert_eq!(app.audit_count("read_health_readings").await, 0);
}

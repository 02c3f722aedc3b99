//! The report a coordinator files upward, reconciled with the visits, check-ins, ledger
//! rows, events and wishes beneath it: the test does the visits through the API, keeps
//! its own account of what was reported, and compares every figure (JSON, XLSX, CSV).

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use entity::{FamilyCategory, event, service_hours, visit_checkin, wish, wish_answer};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use tests::{
    oversight::{HOME, today},
    visits::VolunteerSpec,
    *,
};
use uuid::Uuid;

/// What the test did, as an association clerk would tally it by hand.
#[derive(Default)]
struct Tally {
    families: std::collections::BTreeSet<Uuid>,
    visits: u64,
    /// kind → (户次, 人次)
    by_kind: BTreeMap<&'static str, (u64, u64)>,
    cash_fen: i64,
    goods_visits: u64,
    people: std::collections::BTreeSet<Uuid>,
    person_visits: u64,
}

impl Tally {
    fn add(&mut self, family: Uuid, kind: &'static str, cash_fen: i64, goods: bool, by: &[Uuid]) {
        self.families.insert(family);
        self.visits += 1;
        let k = self.by_kind.entry(kind).or_default();
        k.0 += 1;
        k.1 += by.len() as u64;
        self.cash_fen += cash_fen;
        self.goods_visits += u64::from(goods);
        self.people.extend(by);
        self.person_visits += by.len() as u64;
    }
}

async fn event_at(app: &TestApp, village: &str, starts: chrono::DateTime<Utc>) -> Uuid {
    let region: Uuid = app.region(village).await.parse().unwrap();
    event::ActiveModel {
        id: Set(Uuid::now_v7()),
        region_id: Set(region),
        kind: Set("birthday_party".into()),
        title: Set("集体庆生".into()),
        description: Set(String::new()),
        location: Set("村委会".into()),
        starts_at: Set(starts),
        ends_at: Set(starts + Duration::hours(2)),
        capacity: Set(30),
        created_by: Set(app.user_id(people::TAOYUAN).await),
        created_at: Set(Utc::now()),
        volunteer_slots: Set(0),
        volunteers_count: Set(0),
        accepted_count: Set(0),
        status: Set(event::PLANNED.into()),
        birthday_month: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn every_figure_of_the_report_comes_from_the_records_beneath_it() {
    let app = spawn_app().await;
    // One visit each: a volunteer cannot hold two visits at the same time.
    let vols = app.volunteers(6, VolunteerSpec::at(HOME.0, HOME.1)).await;
    let (a, b, c, d, e) = (&vols[0], &vols[1], &vols[2], &vols[3], &vols[4]);
    let f1 = app
        .family_at("杨柳村", FamilyCategory::Bereaved, "孙长海", Some(HOME))
        .await;
    let f2 = app
        .family_at(
            "和平社区",
            FamilyCategory::DaughtersOnly,
            "钱秀英",
            Some(HOME),
        )
        .await;
    // In the other county: not in 桃源镇's report, in the city's.
    let far = app
        .family_at("丰收村", FamilyCategory::Hardship, "李德明", Some(HOME))
        .await;
    let mut t = Tally::default();

    let v1 = app.visit_today(f1, "festival").await;
    app.do_visit(
        &a.token,
        v1,
        json!({"services": ["condolence"], "cash_yuan": 500, "goods": "大米一袋"}),
    )
    .await;
    t.add(f1, "festival", 50_000, true, &[a.user_id]);
    let v2 = app.visit_today(f1, "checkin").await;
    app.do_visit(
        &b.token,
        v2,
        json!({"services": ["companionship"], "cash_yuan": 200.5}),
    )
    .await;
    t.add(f1, "checkin", 20_050, false, &[b.user_id]);
    let v3 = app.visit_today(f2, "festival").await;
    app.do_visit(
        &c.token,
        v3,
        json!({"services": ["condolence"], "goods": "食用油", "needs": ["代缴电费", "修理门窗"]}),
    )
    .await;
    t.add(f2, "festival", 0, true, &[c.user_id]);
    let v4 = app.visit_today(far, "festival").await;
    app.do_visit(
        &d.token,
        v4,
        json!({"services": ["condolence"], "cash_yuan": 1000}),
    )
    .await;
    // A cadre's call passing a message on, made and reported: not a visit of the family's
    // care, so in no figure of the report.
    let call = app.visit_today(f2, entity::visit_task::MESSAGE_CALL).await;
    app.do_visit(&vols[5].token, call, json!({"services": ["companionship"]}))
        .await;
    // Claimed but not done: not in the report.
    let open = app.visit_today(f2, "checkin").await;
    app.claim(&e.token, open).await;

    // The family confirms the first visit: its hours are credited (the volunteer came
    // 45 minutes before reporting).
    let db = &app.state.db;
    let checkin = visit_checkin::Entity::find()
        .filter(visit_checkin::Column::TaskId.eq(v1))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut checkin: visit_checkin::ActiveModel = checkin.into();
    checkin.checkin_at = Set(Utc::now() - Duration::minutes(45));
    checkin.update(db).await.unwrap();
    let mother = app.family_member_token(people::TAOYUAN, f1).await;
    app.post(
        &format!("/api/family/visits/{v1}/confirm"),
        Some(&mother),
        json!({"rating": 5}),
    )
    .await
    .ok();
    let minutes: i64 = service_hours::Entity::find()
        .filter(service_hours::Column::TaskId.is_in([v1, v2, v3]))
        .all(db)
        .await
        .unwrap()
        .iter()
        .map(|h| i64::from(h.minutes))
        .sum();
    assert!(minutes >= 44, "credited {minutes}");

    // One wish of the two is answered.
    let wishes = wish::Entity::find()
        .filter(wish::Column::FamilyId.eq(f2))
        .all(db)
        .await
        .unwrap();
    assert_eq!(wishes.len(), 2);
    wish_answer::ActiveModel {
        id: Set(Uuid::now_v7()),
        wish_id: Set(wishes[0].id),
        author_id: Set(app.user_id(people::TAOYUAN).await),
        content: Set("已联系电力所".into()),
        created_at: Set(Utc::now()),
        public: Set(false),
    }
    .insert(db)
    .await
    .unwrap();
    // An event held yesterday here, one next week, one in the other county.
    event_at(&app, "杨柳村", Utc::now() - Duration::days(1)).await;
    event_at(&app, "杨柳村", Utc::now() + Duration::days(7)).await;
    event_at(&app, "丰收村", Utc::now() - Duration::days(1)).await;
    // One called off before its day: not held.
    let off = event_at(&app, "杨柳村", Utc::now() - Duration::days(2)).await;
    event::Entity::update_many()
        .col_expr(
            event::Column::Status,
            sea_orm::sea_query::Expr::value(event::CANCELLED),
        )
        .filter(event::Column::Id.eq(off))
        .exec(db)
        .await
        .unwrap();

    let from = today() - Duration::days(3);
    let to = today() + Duration::days(10);
    let taoyuan = app.token_for(people::TAOYUAN).await;
    let q = format!("from={from}&to={to}");
    let r = app
        .get(&format!("/api/filings?{q}"), Some(&taoyuan))
        .await
        .ok();
    assert_eq!(r["region_name"], "桃源镇");
    assert_eq!(r["families"], t.families.len());
    assert_eq!(r["household_visits"], t.visits);
    let kinds: BTreeMap<String, (u64, u64)> = r["by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kind"].as_str().unwrap().to_string(),
                (
                    k["visits"].as_u64().unwrap(),
                    k["person_visits"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (u64, u64)> =
        t.by_kind.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(kinds, expected);
    assert_eq!(r["cash_fen"], t.cash_fen);
    assert_eq!(r["cash_yuan"], t.cash_fen as f64 / 100.0);
    assert_eq!(r["goods_visits"], t.goods_visits);
    assert_eq!(r["volunteer_visits"], t.person_visits);
    assert_eq!(r["volunteers"], t.people.len());
    assert_eq!(r["service_minutes"], minutes);
    assert_eq!(r["events_held"], 1);
    assert_eq!(r["event_attendance"], 0, "nobody was recorded at them");
    assert_eq!(r["wishes_received"], 2);
    assert_eq!(r["wishes_answered"], 1);

    // The city's report adds the other county's visit and event.
    let city = app.token_for(people::CITY).await;
    let whole = app
        .get(&format!("/api/filings?{q}"), Some(&city))
        .await
        .ok();
    assert_eq!(whole["household_visits"], t.visits + 1);
    assert_eq!(whole["cash_fen"], t.cash_fen + 100_000);
    assert_eq!(whole["events_held"], 2);

    // A period before any of it: nothing.
    let before = format!(
        "from={}&to={}",
        today() - Duration::days(60),
        today() - Duration::days(30)
    );
    let empty = app
        .get(&format!("/api/filings?{before}"), Some(&taoyuan))
        .await
        .ok();
    assert_eq!(empty["household_visits"], 0);
    assert_eq!(empty["events_held"], 0);

    // The files say the same, with Chinese headers.
    let xlsx = app
        .http
        .get(app.url(&format!("/api/filings/xlsx?{q}")))
        .bearer_auth(&taoyuan)
        .send()
        .await
        .unwrap();
    assert_eq!(xlsx.status(), 200);
    let bytes = xlsx.bytes().await.unwrap().to_vec();
    use calamine::{Reader, Xlsx};
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range("工作报表").unwrap();
    let cells: BTreeMap<String, String> = sheet
        .rows()
        .map(|row| (row[0].to_string(), row[1].to_string()))
        .collect();
    assert_eq!(cells["指标"], "数值");
    assert_eq!(cells["走访户次（户次）"], t.visits.to_string());
    assert_eq!(cells["节日慰问（人次）"], "2");
    assert_eq!(cells["发放慰问金（元）"], "700.5");
    assert_eq!(cells["收到心愿（条）"], "2");
    let csv = app
        .http
        .get(app.url(&format!("/api/filings/csv?{q}")))
        .bearer_auth(&taoyuan)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let bytes = csv.bytes().await.unwrap();
    // A byte-order mark, so Excel reads UTF-8.
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("走访户数（户）,2"), "{text}");
    assert!(text.contains("发放慰问金（元）,700.5"), "{text}");
    assert_eq!(app.audit_count("export_filing").await, 2);
}

#[tokio::test]
async fn reports_are_for_the_coordinators_region_and_check_their_input() {
    let app = spawn_app().await;
    let west = app.token_for(people::WEST_COUNTY).await;
    let taoyuan = app.region("桃源镇").await;
    app.get(&format!("/api/filings?region_id={taoyuan}"), Some(&west))
        .await
        .error(404, "not_found");
    app.get(
        &format!("/api/filings/xlsx?region_id={taoyuan}"),
        Some(&west),
    )
    .await
    .error(404, "not_found");
    let t = today();
    app.get(&format!("/api/filings?from={t}"), Some(&west))
        .await
        .invalid("to");
    app.get(
        &format!("/api/filings/csv?from={t}&to={}", t - Duration::days(1)),
        Some(&west),
    )
    .await
    .invalid("to");
    app.get("/api/filings?from=someday&to=2026-01-01", Some(&west))
        .await
        .invalid("from");
    let volunteer = app.token_for(people::VOLUNTEER).await;
    app.get("/api/filings", Some(&volunteer))
        .await
        .error(403, "forbidden");
    // Nothing exported, nothing audited.
    assert_eq!(app.audit_count("export_filing").await, 0);
}

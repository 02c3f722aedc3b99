//! The festival surge as coordinators see it: 桃源镇 has seven families owed visits around
//! Spring Festival and one volunteer who can do one visit a week, 青石乡 has a volunteer and
//! nobody to visit; the township coordinator sees 桃源镇 short, the county sees both,
//! another county neither; weeks ahead the coordinators over 桃源镇 are warned, once.

use chrono::{Duration, Utc};
use entity::{FamilyCategory, VolunteerStatus, notification, volunteer};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    sea_query::Expr,
};
use server::notify::produce;
use tests::{visits::VolunteerSpec, *};

async fn scene(app: &TestApp) {
    let db = &app.state.db;
    // Only this test's volunteers count.
    volunteer::Entity::update_many()
        .col_expr(
            volunteer::Column::Status,
            Expr::value(VolunteerStatus::Suspended),
        )
        .exec(db)
        .await
        .unwrap();
    for i in 0..6 {
        app.family_at(
            "杨柳村",
            FamilyCategory::DaughtersOnly,
            &format!("王{i}"),
            Some((31.31, 116.60)),
        )
        .await;
    }
    let mut one = VolunteerSpec::at(31.31, 116.60);
    one.weekly_capacity = 1;
    app.volunteer(one).await;
    let mut five = VolunteerSpec::at(31.31, 116.60);
    five.weekly_capacity = 5;
    let v = app.volunteer(five).await;
    let mut row = volunteer::Entity::find_by_id(v.volunteer_id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row.region_id = Set(app.region("枫林村").await.parse().unwrap());
    row.update(db).await.unwrap();
}

#[tokio::test]
async fn coordinators_see_where_the_season_will_not_fit_and_are_warned_once_weeks_ahead() {
    let app = spawn_app_with(Options {
        demo_families: Some(0),
        ..Options::default()
    })
    .await;
    scene(&app).await;
    // Families do not see the forecast.
    let family = app
        .member_of_new_family("杨柳村", "周玉珍", "13711114444", None)
        .await;
    app.get("/api/surge", Some(&family.token))
        .await
        .error(403, "forbidden");

    let township = app.token_for(people::TAOYUAN).await;
    let report = app.get("/api/surge", Some(&township)).await.ok();
    let days = report["days"].as_i64().unwrap();
    assert!((20..=35).contains(&days), "{report}");
    assert_eq!(report["regions"]["total"], 1, "{report}");
    let row = &report["regions"]["items"][0];
    assert_eq!(row["region"], "桃源镇");
    let required = row["required"].as_i64().unwrap();
    let capacity = row["capacity"].as_i64().unwrap();
    // Every family is owed at least its Spring Festival visit.
    assert!(required >= 6, "{row}");
    assert_eq!(capacity, days / 7, "one visit a week over the season");
    assert_eq!(row["shortfall"].as_i64().unwrap(), required - capacity);

    let county = app.token_for(people::EAST_COUNTY).await;
    let report = app.get("/api/surge", Some(&county)).await.ok();
    let items = report["regions"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{report}");
    assert_eq!(items[0]["region"], "桃源镇", "largest shortfall first");
    assert_eq!(items[1]["region"], "青石乡");
    assert_eq!(items[1]["required"], 0);
    assert_eq!(items[1]["capacity"], days * 5 / 7);
    assert_eq!(items[1]["shortfall"], 0);

    let west = app.token_for(people::WEST_COUNTY).await;
    let report = app.get("/api/surge", Some(&west)).await.ok();
    assert_eq!(report["regions"]["total"], 0);
    app.get("/api/surge?year=1999", Some(&county))
        .await
        .invalid("year");

    // The daily job: too early ten weeks before, a warning a week before, once.
    let state = &app.state;
    let season = report["start"]
        .as_str()
        .unwrap()
        .parse::<chrono::NaiveDate>()
        .unwrap();
    let opts = state.plan_options(season);
    let c = &state.config.surge;
    let now = Utc::now();
    let run = |today| produce::surge_warnings(&state.db, &opts, c, today, now);
    assert_eq!(run(season - Duration::weeks(10)).await.unwrap(), 0);
    let queued = run(season - Duration::days(7)).await;
    assert!(matches!(queued, Ok(n) if n > 0), "{queued:?} {season}");
    assert_eq!(run(season - Duration::days(6)).await.unwrap(), 0, "once");
    let warned = |phone: &'static str| {
        let app = &app;
        async move {
            notification::Entity::find()
                .filter(notification::Column::RecipientId.eq(app.user_id(phone).await))
                .filter(notification::Column::Template.eq("surge_warning"))
                .all(&app.state.db)
                .await
                .unwrap()
        }
    };
    let told = warned(people::TAOYUAN).await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].payload["region"], "桃源镇");
    assert_eq!(
        told[0].payload["shortfall"].as_i64().unwrap(),
        required - capacity
    );
    assert_eq!(warned(people::EAST_COUNTY).await.len(), 1);
    // 青石乡 fits: its coordinator hears nothing.
    assert!(warned("13800000022").await.is_empty());
    assert!(warned(people::WEST_COUNTY).await.is_empty());
}

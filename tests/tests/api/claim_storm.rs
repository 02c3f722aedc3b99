//! The claim storm: 200 volunteers send 500 claims at once, over real HTTP, on 50 visits
//! that need two volunteers each. Exactly the needed number win, everyone else hears that
//! the visit is full, nothing fails. On SQLite by default; on PostgreSQL and Redis when
//! DATABASE_URL and REDIS_URL are set.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{Duration, NaiveTime, TimeZone, Utc};
use entity::{FamilyCategory, task_claim};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use tests::{
    visits::{VisitSpec, VolunteerSpec, offset},
    *,
};
use uuid::Uuid;

const HOME: (f64, f64) = (31.25, 116.55);
const VOLUNTEERS: usize = 200;
const VISITS: usize = 50;
const CLAIMS: usize = 500;
/// The last claims repeat the first ones (a phone retrying on a poor connection).
const REPEATS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_claims_at_once_fill_fifty_visits_exactly() {
    let app = spawn_app().await;
    let mut spec = VolunteerSpec::at(HOME.0, HOME.1);
    spec.weekly_capacity = 50;
    let volunteers = app.volunteers(VOLUNTEERS, spec).await;

    // Fifty one-day visits, back to back, a kilometre or two away.
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let today = Utc::now().with_timezone(&beijing).date_naive();
    let mut specs = Vec::new();
    for k in 0..VISITS {
        let f = app
            .family_at(
                "杨柳村",
                FamilyCategory::DaughtersOnly,
                "孙桂兰",
                Some(offset(HOME, 1.0 + (k % 5) as f64 * 0.2, 0.3)),
            )
            .await;
        let start = beijing
            .from_local_datetime(&(today + Duration::days(2 + k as i64)).and_time(NaiveTime::MIN))
            .unwrap()
            .with_timezone(&Utc);
        specs.push(VisitSpec::new(f, start, 24).needing(2));
    }
    let visits = app.visits(specs).await;

    // Claim i is on visit i % 50, by a volunteer that differs for each round i / 50.
    let pairs: Vec<(usize, usize)> = (0..CLAIMS)
        .map(|i| {
            let i = if i >= CLAIMS - REPEATS {
                i - (CLAIMS - REPEATS)
            } else {
                i
            };
            let (visit, round) = (i % VISITS, i / VISITS);
            (visit, (3 * visit + 167 * round) % VOLUNTEERS)
        })
        .collect();

    let start = Arc::new(tokio::sync::Barrier::new(CLAIMS));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, &(visit, who)) in pairs.iter().enumerate() {
        let http = app.http.clone();
        let url = app.url(&format!("/api/visits/{}/claims", visits[visit]));
        let token = volunteers[who].token.clone();
        let start = start.clone();
        tasks.spawn(async move {
            start.wait().await;
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .expect("request sent");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (n, status, body)
        });
    }
    let mut replies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        replies.push(r.expect("task"));
    }
    assert_eq!(replies.len(), CLAIMS);

    let mut created: HashMap<(usize, usize), String> = HashMap::new();
    let mut repeated = Vec::new();
    for (n, status, body) in &replies {
        let pair = pairs[*n];
        match status {
            201 => {
                let id = body["id"].as_str().expect("claim id").to_string();
                assert!(
                    created.insert(pair, id).is_none(),
                    "two new claims for one volunteer and visit"
                );
            }
            200 => repeated.push((pair, body["id"].as_str().unwrap().to_string())),
            409 => assert_eq!(body["code"], "visit_full", "{body}"),
            s => panic!("claim {n} answered {s}: {body}"),
        }
    }
    assert_eq!(created.len(), VISITS * 2, "exactly the places there were");
    for (pair, id) in repeated {
        assert_eq!(
            created.get(&pair),
            Some(&id),
            "a repeat gets the same claim"
        );
    }

    // The database agrees.
    let claims = task_claim::Entity::find()
        .filter(task_claim::Column::TaskId.is_in(visits.clone()))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(claims.len(), VISITS * 2);
    assert!(claims.iter().all(|c| c.status == task_claim::ACTIVE));
    let mut holders: HashMap<Uuid, HashSet<Uuid>> = HashMap::new();
    for c in &claims {
        holders.entry(c.task_id).or_default().insert(c.volunteer_id);
    }
    for &v in &visits {
        assert_eq!(holders.get(&v).map(HashSet::len), Some(2), "visit {v}");
        let row = app.visit_row(v).await;
        assert_eq!((row.claims_count, row.status.as_str()), (2, "claimed"));
    }
}

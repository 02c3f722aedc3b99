//! `scheduler::generate` against a real database: a SQLite file always, and a fresh
//! PostgreSQL database as well when `DATABASE_URL` (an administrative connection) is set.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use entity::{
    BirthCalendar, FamilyCategory, FamilyStatus, MemberRelation, RegionLevel, UserStatus,
    VolunteerStatus, app_user, family, family_member, notification, pairing, region, task_claim,
    visit_task, volunteer,
};
use migrations::{Migrator, MigratorTrait};
use scheduler::events::{LifeEvent, TEMPLATE_VISIT_CANCELLED, cancel_ahead};
use scheduler::generate::{
    GenerateOptions, REASON_CALL_OVERDUE, REASON_CLOSED, REASON_DEATH, REASON_MERGED,
    REASON_PAUSED, REASON_REPLANNED, clear_plan_stamps, flag_overdue_calls, generate, mark_missed,
    preview, replan_family,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Databases

struct TestDb {
    name: &'static str,
    db: DatabaseConnection,
    /// The admin URL and database name of a PostgreSQL test database, to drop it.
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let db = connect(&url, 4).await;
        db.execute_unprepared("PRAGMA journal_mode=WAL;")
            .await
            .expect("WAL");
        Migrator::up(&db, None).await.expect("migrations");
        TestDb {
            name: "sqlite",
            db,
            pg: None,
            _dir: Some(dir),
        }
    }

    async fn postgres(admin_url: &str) -> TestDb {
        let name = format!("nx_test_{}", Uuid::new_v4().simple());
        let admin = Database::connect(admin_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("DATABASE_URL ends in /dbname");
        let db = connect(&format!("{base}/{name}"), 16).await;
        Migrator::up(&db, None).await.expect("migrations");
        TestDb {
            name: "postgres",
            db,
            pg: Some((admin_url.to_string(), name)),
            _dir: None,
        }
    }

    /// Closes the connection and drops a PostgreSQL database (best effort).
    async fn finish(self) {
        self.db.close().await.ok();
        if let Some((admin_url, name)) = self.pg
            && let Ok(admin) = Database::connect(&admin_url).await
        {
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .ok();
            admin.close().await.ok();
        }
    }
}

async fn connect(url: &str, max: u32) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    Database::connect(options).await.expect("database connects")
}

fn admin_url() -> Option<String> {
    std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty())
}

/// A fresh SQLite database, and a fresh PostgreSQL one when `DATABASE_URL` is set.
async fn backends() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    if let Some(url) = admin_url() {
        dbs.push(TestDb::postgres(&url).await);
    }
    dbs
}

/// A second fresh database of the same kind.
async fn same_kind(t: &TestDb) -> TestDb {
    match &t.pg {
        None => TestDb::sqlite().await,
        Some((url, _)) => TestDb::postgres(url).await,
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Local midnight in Shanghai, in UTC.
fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Shanghai
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn opts(from: NaiveDate, to: NaiveDate) -> GenerateOptions {
    GenerateOptions {
        to,
        ..GenerateOptions::new(from, Shanghai)
    }
}

struct Fixture {
    region: Uuid,
    cadre: Uuid,
}

async fn fixture(db: &DatabaseConnection) -> Fixture {
    let now = Utc::now();
    let region = Uuid::now_v7();
    region::ActiveModel {
        id: Set(region),
        parent_id: Set(None),
        level: Set(RegionLevel::Village),
        name: Set("幸福村".into()),
        code: Set(format!("V{}", &region.simple().to_string()[..12])),
        path: Set(format!("/{region}/")),
        lat: Set(None),
        lng: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .expect("region");
    let cadre = Uuid::now_v7();
    app_user::ActiveModel {
        id: Set(cadre),
        name: Set("李干部".into()),
        phone: Set(None),
        openid: Set(None),
        unionid: Set(None),
        status: Set(UserStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("cadre");
    Fixture { region, cadre }
}

#[derive(Clone)]
struct Member {
    name: &'static str,
    relation: MemberRelation,
    calendar: BirthCalendar,
    birth: Option<(i32, u32, u32)>,
    death: Option<NaiveDate>,
}

fn solar(name: &'static str, relation: MemberRelation, y: i32, m: u32, day: u32) -> Member {
    Member {
        name,
        relation,
        calendar: BirthCalendar::Solar,
        birth: Some((y, m, day)),
        death: None,
    }
}

struct FamilySpec {
    category: FamilyCategory,
    members: Vec<Member>,
    paired: bool,
    overrides: Option<Value>,
}

fn spec(category: FamilyCategory, members: Vec<Member>) -> FamilySpec {
    FamilySpec {
        category,
        members,
        paired: true,
        overrides: None,
    }
}

/// Inserts a family; returns its id and its members' ids.
async fn add_family(db: &DatabaseConnection, fx: &Fixture, s: FamilySpec) -> (Uuid, Vec<Uuid>) {
    let now = Utc::now();
    let id = Uuid::now_v7();
    family::ActiveModel {
        id: Set(id),
        region_id: Set(fx.region),
        register_no: Set(id.simple().to_string()[..20].to_string()),
        category: Set(s.category),
        head_name: Set("张建国".into()),
        phone: Set(None),
        address: Set("幸福村 1 号".into()),
        lat: Set(None),
        lng: Set(None),
        care_level: Set(2),
        status: Set(FamilyStatus::Active),
        consent_data: Set(true),
        consent_sms: Set(true),
        consent_wechat: Set(true),
        consent_at: Set(Some(now)),
        do_not_disturb: Set(
            json!({"quiet_from": "20:30", "quiet_to": "08:30", "no_festive_visits": false}),
        ),
        visitor_notes: Set(String::new()),
        counsel_notes: Set(String::new()),
        created_at: Set(now),
        care_overrides: Set(s.overrides),
        plan_stamp: Set(None),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("family");
    let mut members = Vec::new();
    for m in s.members {
        let mid = Uuid::now_v7();
        member_model(id, mid, &m, now)
            .insert(db)
            .await
            .expect("member");
        members.push(mid);
    }
    if s.paired {
        pairing_model(id, fx.cadre, now)
            .insert(db)
            .await
            .expect("pairing");
    }
    (id, members)
}

fn member_model(
    family_id: Uuid,
    id: Uuid,
    m: &Member,
    now: DateTime<Utc>,
) -> family_member::ActiveModel {
    family_member::ActiveModel {
        id: Set(id),
        family_id: Set(family_id),
        name: Set(m.name.into()),
        relation: Set(m.relation),
        gender: Set(None),
        phone: Set(None),
        id_number_enc: Set(None),
        id_number_masked: Set(None),
        birth_calendar: Set(m.calendar),
        birth_year: Set(m.birth.map(|b| b.0)),
        birth_month: Set(m.birth.map(|b| b.1 as i32)),
        birth_day: Set(m.birth.map(|b| b.2 as i32)),
        birth_leap_month: Set(false),
        deceased: Set(m.death.is_some()),
        death_date: Set(m.death),
        primary_contact: Set(false),
        user_id: Set(None),
        created_at: Set(now),
    }
}

fn pairing_model(family_id: Uuid, cadre: Uuid, now: DateTime<Utc>) -> pairing::ActiveModel {
    pairing::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family_id),
        cadre_id: Set(cadre),
        leader_id: Set(None),
        started_on: Set(d(2024, 1, 1)),
        ended_on: Set(None),
        created_at: Set(now),
    }
}

/// 失独 parents (both over 60) whose son died; his birthday is 20 March.
fn bereaved() -> FamilySpec {
    spec(
        FamilyCategory::Bereaved,
        vec![
            solar("钱秀英", MemberRelation::Mother, 1958, 10, 2),
            solar("张建国", MemberRelation::Father, 1956, 5, 1),
            Member {
                death: Some(d(2015, 8, 10)),
                ..solar("小明", MemberRelation::Child, 1985, 3, 20)
            },
        ],
    )
}

/// A daughters-only family with the mother's birthday on `birthday`.
fn daughters(birthday: (u32, u32)) -> FamilySpec {
    spec(
        FamilyCategory::DaughtersOnly,
        vec![
            solar(
                "王桂兰",
                MemberRelation::Mother,
                1970,
                birthday.0,
                birthday.1,
            ),
            solar("王小红", MemberRelation::Child, 1995, 12, 12),
        ],
    )
}

async fn tasks(db: &DatabaseConnection) -> Vec<visit_task::Model> {
    visit_task::Entity::find()
        .order_by_asc(visit_task::Column::UniqueKey)
        .all(db)
        .await
        .expect("tasks")
}

async fn family_tasks(db: &DatabaseConnection, family: Uuid) -> Vec<visit_task::Model> {
    visit_task::Entity::find()
        .filter(visit_task::Column::FamilyId.eq(family))
        .order_by_asc(visit_task::Column::UniqueKey)
        .all(db)
        .await
        .expect("tasks")
}

fn keys(tasks: &[visit_task::Model]) -> BTreeSet<String> {
    tasks.iter().map(|t| t.unique_key.clone()).collect()
}

fn has_kind(t: &visit_task::Model, kind: &str) -> bool {
    t.kinds
        .as_ref()
        .is_some_and(|k| k.0.iter().any(|x| x == kind))
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn first_run_creates_the_visits() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        let (fam, members) = add_family(db, &fx, bereaved()).await;
        let child = members[2];
        let stats = generate(db, &opts(d(2026, 3, 1), d(2026, 4, 30)))
            .await
            .expect("generate");
        let all = family_tasks(db, fam).await;
        assert_eq!(stats.families, 1, "{}", t.name);
        assert_eq!(stats.created as usize, all.len(), "{}", t.name);
        assert!(stats.errors.is_empty(), "{:?}", stats.errors);
        assert!(
            all.iter()
                .all(|t| t.status == "open" && t.claims_count == 0)
        );

        // The child's birthday: a gentle visit by a counsellor, on the day or just before.
        let key = format!("{fam}:child-birthday:{child}:2026");
        let bday = all
            .iter()
            .find(|t| t.components.as_ref().is_some_and(|c| c.0.contains(&key)))
            .unwrap_or_else(|| panic!("{}: no child birthday visit in {:?}", t.name, keys(&all)));
        assert!(bday.gentle, "{}", t.name);
        assert!(has_kind(bday, "child_birthday"));
        assert!(bday.required_skills.0.contains(&"counselling".to_string()));
        assert_eq!(bday.channel, "home_visit");
        assert!(bday.window_start <= midnight(d(2026, 3, 20)));
        assert!(bday.window_end >= midnight(d(2026, 3, 21)));
        assert!(bday.planned_date.is_some_and(|p| p <= d(2026, 3, 20)));
        assert!(bday.reasons.as_ref().is_some_and(|r| !r.0.is_empty()));
        // 清明 is a gentle phone call.
        let qingming = all
            .iter()
            .find(|t| has_kind(t, "qingming"))
            .expect("清明 contact");
        assert!(qingming.gentle && qingming.channel == "phone_call");
        // Nobody has visited yet: the first home visit needs two volunteers.
        let first: Vec<_> = all.iter().filter(|t| t.first_visit).collect();
        assert_eq!(first.len(), 1, "{}", t.name);
        assert!(first[0].volunteers_needed >= 2);

        // The cadre's check-ins are pre-assigned to the paired cadre and still open.
        let calls: Vec<_> = all
            .iter()
            .filter(|t| t.kind == "checkin" && t.channel == "phone_call")
            .collect();
        assert!(calls.len() >= 6, "{}: {} weekly calls", t.name, calls.len());
        for c in &calls {
            assert!(c.assign_to_cadre);
            assert_eq!(c.assigned_cadre_id, Some(fx.cadre));
            assert_eq!(c.status, "open");
            assert!(!c.needs_attention);
        }
        // Festive and grief visits are for volunteers.
        assert_eq!(bday.assigned_cadre_id, None);
        t.finish().await;
    }
}

#[tokio::test]
async fn unpaired_cadre_visits_are_flagged_and_assigned_once_paired() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        let (fam, _) = add_family(
            db,
            &fx,
            FamilySpec {
                paired: false,
                ..daughters((7, 7))
            },
        )
        .await;
        let o = opts(d(2026, 3, 1), d(2026, 4, 30));
        generate(db, &o).await.unwrap();
        let cadre_tasks: Vec<_> = family_tasks(db, fam)
            .await
            .into_iter()
            .filter(|t| t.assign_to_cadre)
            .collect();
        assert!(!cadre_tasks.is_empty());
        assert!(
            cadre_tasks
                .iter()
                .all(|t| t.needs_attention && t.assigned_cadre_id.is_none())
        );

        pairing_model(fam, fx.cadre, Utc::now())
            .insert(db)
            .await
            .unwrap();
        // As the pairing API does (it also re-plans at once).
        clear_plan_stamps(db, &[fam]).await.unwrap();
        let stats = generate(db, &o).await.unwrap();
        assert_eq!(stats.created, 0, "{}", t.name);
        assert_eq!(stats.updated as usize, cadre_tasks.len(), "{}", t.name);
        for task in family_tasks(db, fam)
            .await
            .iter()
            .filter(|t| t.assign_to_cadre)
        {
            assert_eq!(task.assigned_cadre_id, Some(fx.cadre));
            assert!(!task.needs_attention);
            assert_eq!(task.status_reason, None);
        }
        t.finish().await;
    }
}

#[tokio::test]
async fn a_second_run_changes_nothing() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        add_family(db, &fx, bereaved()).await;
        add_family(db, &fx, daughters((3, 25))).await;
        add_family(db, &fx, daughters((4, 12))).await;
        let o = opts(d(2026, 3, 1), d(2026, 4, 30));
        let first = generate(db, &o).await.unwrap();
        let before = tasks(db).await;
        assert!(first.created > 20, "{}: {first:?}", t.name);
        assert_eq!(first.created as usize, before.len());

        // The same day again: every family is up to date, nothing is even planned.
        let same_day = generate(db, &o).await.unwrap();
        assert_eq!(
            (same_day.families, same_day.up_to_date),
            (0, 3),
            "{same_day:?}"
        );
        assert_eq!(before, tasks(db).await, "{}", t.name);

        // Planned again in full (as after a change): still nothing to write.
        let ids: Vec<Uuid> = family::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect();
        clear_plan_stamps(db, &ids).await.unwrap();
        let second = generate(db, &o).await.unwrap();
        let after = tasks(db).await;
        assert_eq!(second.families, 3);
        assert_eq!(second.created, 0, "{}: {second:?}", t.name);
        assert_eq!(second.updated, 0, "{second:?}");
        assert_eq!(second.cancelled, 0, "{second:?}");
        assert_eq!(second.flagged, 0, "{second:?}");
        assert_eq!(second.unchanged, first.created, "{second:?}");
        // Not one row rewritten: same ids, same updated_at, same everything.
        assert_eq!(before, after, "{}", t.name);

        // Next day's run: the same visits (the horizon moved by a day), a few new ones.
        let next = generate(db, &opts(d(2026, 3, 2), d(2026, 5, 1)))
            .await
            .unwrap();
        assert_eq!(next.cancelled, 0, "{}: {next:?}", t.name);
        let later = tasks(db).await;
        let unchanged = before.iter().all(|b| later.iter().any(|l| l == b));
        assert!(unchanged, "{}: an existing task was rewritten", t.name);
        t.finish().await;
    }
}

#[tokio::test]
async fn concurrent_runs_create_each_visit_once() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        for i in 0..12 {
            let s = if i % 3 == 0 {
                bereaved()
            } else {
                daughters((3 + i % 2, 1 + i))
            };
            add_family(db, &fx, s).await;
        }
        let o = GenerateOptions {
            batch: 2,
            ..opts(d(2026, 3, 1), d(2026, 4, 30))
        };
        let (a, b) = tokio::join!(generate(db, &o), generate(db, &o));
        let (a, b) = (
            a.unwrap_or_else(|e| panic!("{}: {e}", t.name)),
            b.unwrap_or_else(|e| panic!("{}: {e}", t.name)),
        );
        let all = tasks(db).await;
        assert_eq!(keys(&all).len(), all.len());
        assert_eq!(a.created + b.created, all.len() as u64, "{}", t.name);

        // Exactly what one run makes on its own.
        let fresh = same_kind(&t).await;
        copy_families(db, &fresh.db).await;
        generate(&fresh.db, &o).await.unwrap();
        assert_eq!(keys(&tasks(&fresh.db).await), keys(&all), "{}", t.name);
        fresh.finish().await;
        t.finish().await;
    }
}

#[tokio::test]
async fn an_interrupted_run_completes_to_the_same_visits() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        for i in 0..10 {
            let s = if i % 4 == 0 {
                bereaved()
            } else {
                daughters((3 + i % 2, 2 * i + 1))
            };
            add_family(db, &fx, s).await;
        }
        let fresh = same_kind(&t).await;
        copy_families(db, &fresh.db).await;

        let o = GenerateOptions {
            batch: 1,
            ..opts(d(2026, 3, 1), d(2026, 4, 30))
        };
        // Dies after five of the ten families.
        let half = generate(
            db,
            &GenerateOptions {
                max_batches: Some(5),
                ..o.clone()
            },
        )
        .await
        .unwrap();
        assert_eq!(half.families, 5);
        let rest = generate(db, &o).await.unwrap();
        // The five planned before the crash are not planned again.
        assert_eq!((rest.families, rest.up_to_date), (5, 5));
        assert_eq!(rest.cancelled, 0);

        let whole = generate(&fresh.db, &o).await.unwrap();
        let (got, want) = (tasks(db).await, tasks(&fresh.db).await);
        assert_eq!(keys(&got), keys(&want), "{}", t.name);
        assert_eq!(half.created + rest.created, whole.created);
        // Same contents too.
        let strip = |ts: Vec<visit_task::Model>| -> Vec<_> {
            ts.into_iter()
                .map(|t| {
                    (
                        t.unique_key,
                        t.window_start,
                        t.window_end,
                        t.volunteers_needed,
                        t.reasons,
                        t.assigned_cadre_id,
                    )
                })
                .collect()
        };
        assert_eq!(strip(got), strip(want), "{}", t.name);
        fresh.finish().await;
        t.finish().await;
    }
}

#[tokio::test]
async fn pausing_a_family_cancels_its_open_visits_and_flags_claimed_ones() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        let (fam, _) = add_family(db, &fx, bereaved()).await;
        let (other, _) = add_family(db, &fx, daughters((3, 25))).await;
        let o = opts(d(2026, 3, 1), d(2026, 4, 30));
        generate(db, &o).await.unwrap();
        let before = family_tasks(db, fam).await;
        let claimed = before
            .iter()
            .find(|t| !t.assign_to_cadre && t.window_start > midnight(d(2026, 3, 10)))
            .expect("a volunteer visit")
            .clone();
        let mut m: visit_task::ActiveModel = claimed.clone().into();
        m.status = Set("claimed".into());
        m.claims_count = Set(1);
        m.update(db).await.unwrap();
        let untouched_other = family_tasks(db, other).await;

        set_status(db, fam, FamilyStatus::Paused).await;
        let stats = generate(db, &o).await.unwrap();
        let after = family_tasks(db, fam).await;
        assert_eq!(stats.cancelled as usize, before.len() - 1, "{}", t.name);
        assert_eq!(stats.flagged, 1);
        for task in &after {
            if task.id == claimed.id {
                assert_eq!(task.status, "claimed");
                assert!(task.needs_attention);
                assert_eq!(task.status_reason.as_deref(), Some(REASON_PAUSED));
            } else {
                assert_eq!(task.status, "cancelled", "{}", task.unique_key);
                assert_eq!(task.status_reason.as_deref(), Some(REASON_PAUSED));
            }
        }
        assert_eq!(family_tasks(db, other).await, untouched_other);
        // Again: nothing more to do.
        let again = generate(db, &o).await.unwrap();
        assert_eq!((again.cancelled, again.flagged, again.updated), (0, 0, 0));

        // Active again: the same visits are back, the claimed one unflagged.
        set_status(db, fam, FamilyStatus::Active).await;
        let back = generate(db, &o).await.unwrap();
        assert_eq!(back.created, 0, "{}: {back:?}", t.name);
        let restored = family_tasks(db, fam).await;
        assert_eq!(keys(&restored), keys(&before));
        for task in &restored {
            assert!(!task.needs_attention, "{}", task.unique_key);
            assert_eq!(task.status_reason, None);
            let want = if task.id == claimed.id {
                "claimed"
            } else {
                "open"
            };
            assert_eq!(task.status, want);
        }
        t.finish().await;
    }
}

/// A volunteer (with their own account) holding `task` by an active claim.
async fn claim(db: &DatabaseConnection, fx: &Fixture, task: &visit_task::Model) -> Uuid {
    let now = Utc::now();
    let user = Uuid::now_v7();
    app_user::ActiveModel {
        id: Set(user),
        name: Set("王志愿".into()),
        phone: Set(None),
        openid: Set(None),
        unionid: Set(None),
        status: Set(UserStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    let vol = Uuid::now_v7();
    volunteer::ActiveModel {
        id: Set(vol),
        user_id: Set(user),
        team_id: Set(None),
        region_id: Set(fx.region),
        skills: Set(Default::default()),
        home_lat: Set(None),
        home_lng: Set(None),
        max_distance_km: Set(5.0),
        weekly_capacity: Set(3),
        availability: Set(json!({})),
        status: Set(VolunteerStatus::Approved),
        approved_by: Set(None),
        approved_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    task_claim::ActiveModel {
        id: Set(Uuid::now_v7()),
        task_id: Set(task.id),
        volunteer_id: Set(user),
        status: Set(task_claim::ACTIVE.into()),
        claimed_at: Set(now),
        released_at: Set(None),
        released_by: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    let mut m: visit_task::ActiveModel = task.clone().into();
    m.status = Set("claimed".into());
    m.claims_count = Set(1);
    m.update(db).await.unwrap();
    user
}

#[tokio::test]
async fn a_life_event_cancels_everything_ahead_tells_the_holders_and_replans() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        // The mother's birthday (25 March) is inside the horizon.
        let mut family = bereaved();
        family.members[0] = solar("钱秀英", MemberRelation::Mother, 1958, 3, 25);
        family.paired = true;
        let (fam, members) = add_family(db, &fx, family).await;
        let (other, _) = add_family(db, &fx, daughters((3, 25))).await;
        let o = opts(d(2026, 3, 1), d(2026, 4, 30));
        generate(db, &o).await.unwrap();
        let before = family_tasks(db, fam).await;
        let held = before
            .iter()
            // The son's birthday, a grief day: still owed after the mother's death.
            .find(|t| t.unique_key.contains("child-birthday"))
            .expect("the son's birthday visit")
            .clone();
        let volunteer_user = claim(db, &fx, &held).await;
        let cadre_visits = before
            .iter()
            .filter(|t| t.assigned_cadre_id.is_some())
            .count();
        assert!(cadre_visits > 0, "{}", t.name);
        let untouched_other = family_tasks(db, other).await;

        let birthday = format!("birthday:{}:2026", members[0]);
        assert!(before.iter().any(|t| t.unique_key.contains(&birthday)));

        // The mother dies on 3 March.
        let now = midnight(d(2026, 3, 3));
        let txn = db.begin().await.unwrap();
        let done = cancel_ahead(&txn, fam, LifeEvent::Death, now, Shanghai)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let ahead: Vec<_> = before.iter().filter(|t| t.window_end > now).collect();
        assert_eq!(done.visits as usize, ahead.len(), "{}", t.name);
        assert_eq!(done.claims, 1);
        for task in family_tasks(db, fam).await {
            if task.window_end > now {
                assert_eq!(task.status, "cancelled", "{}", task.unique_key);
                assert_eq!(task.status_reason.as_deref(), Some(REASON_DEATH));
                assert_eq!(task.claims_count, 0);
            }
        }
        let claim_row = task_claim::Entity::find().one(db).await.unwrap().unwrap();
        assert_eq!(claim_row.status, task_claim::RELEASED);
        // One message per visit held: the volunteer's, and each of the cadre's.
        let messages = notification::Entity::find().all(db).await.unwrap();
        assert_eq!(messages.len(), 1 + cadre_visits_ahead(&ahead), "{}", t.name);
        assert!(
            messages
                .iter()
                .all(|m| m.template == TEMPLATE_VISIT_CANCELLED)
        );
        let to_volunteer: Vec<_> = messages
            .iter()
            .filter(|m| m.recipient_id == volunteer_user)
            .collect();
        assert_eq!(to_volunteer.len(), 1);
        assert_eq!(to_volunteer[0].payload["task_id"], json!(held.id));
        assert_eq!(to_volunteer[0].payload["event"], "death");
        // Nothing about the family on a message that may show on a locked screen.
        assert!(!to_volunteer[0].payload.to_string().contains("李"));
        assert_eq!(family_tasks(db, other).await, untouched_other);

        // Twice: nothing more.
        let txn = db.begin().await.unwrap();
        let again = cancel_ahead(&txn, fam, LifeEvent::Death, now, Shanghai)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(again, Default::default());
        assert_eq!(
            notification::Entity::find().count(db).await.unwrap() as usize,
            messages.len()
        );

        // Re-planned at once: what the family is still owed is open again, unclaimed; the
        // dead mother's birthday is not.
        let mut mother = family_member::Entity::find_by_id(members[0])
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        mother.deceased = Set(true);
        mother.update(db).await.unwrap();
        replan_family(db, fam, &o).await.unwrap();
        let after = family_tasks(db, fam).await;
        let reopened = after.iter().find(|t| t.id == held.id).unwrap();
        assert_eq!(
            (reopened.status.as_str(), reopened.claims_count),
            ("open", 0)
        );
        assert!(after.iter().all(|t| t.status != "claimed"));
        assert!(
            after
                .iter()
                .filter(|t| t.status == "open" || t.status == "claimed")
                .all(|t| !t.unique_key.contains(&birthday)),
            "{}",
            t.name
        );

        // A closed case: what was live is cancelled and stays so after re-planning.
        let live: Vec<Uuid> = after
            .iter()
            .filter(|t| t.status == "open" && t.window_end > now)
            .map(|t| t.id)
            .collect();
        assert!(!live.is_empty());
        set_status(db, fam, FamilyStatus::Closed).await;
        let txn = db.begin().await.unwrap();
        cancel_ahead(&txn, fam, LifeEvent::Closed, now, Shanghai)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        replan_family(db, fam, &o).await.unwrap();
        for task in family_tasks(db, fam).await {
            if task.window_end > now {
                assert_eq!(task.status, "cancelled", "{}", task.unique_key);
            }
            if live.contains(&task.id) {
                assert_eq!(task.status_reason.as_deref(), Some(REASON_CLOSED));
            }
        }
        t.finish().await;
    }
}

fn cadre_visits_ahead(ahead: &[&visit_task::Model]) -> usize {
    ahead
        .iter()
        .filter(|t| t.assigned_cadre_id.is_some())
        .count()
}

async fn set_birthday(db: &DatabaseConnection, member: Uuid, month: i32, day: i32) {
    let m = family_member::Entity::find_by_id(member)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut m: family_member::ActiveModel = m.into();
    m.birth_month = Set(Some(month));
    m.birth_day = Set(Some(day));
    let m = m.update(db).await.unwrap();
    // What the API does besides re-planning at once: the next run plans the family.
    clear_plan_stamps(db, &[m.family_id]).await.unwrap();
}

async fn set_status(db: &DatabaseConnection, fam: Uuid, status: FamilyStatus) {
    let f = family::Entity::find_by_id(fam)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut m: family::ActiveModel = f.into();
    m.status = Set(status);
    m.plan_stamp = Set(None);
    m.update(db).await.unwrap();
}

#[tokio::test]
async fn changing_a_birthday_replans() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        // Check-ins disabled, so the only visits are the birthday and the festivals.
        let overrides = json!([
            {"op": "disable", "key": "checkin-call"},
            {"op": "disable", "key": "checkin-visit"}
        ]);
        let (fam, members) = add_family(
            db,
            &fx,
            FamilySpec {
                overrides: Some(overrides),
                ..daughters((10, 10))
            },
        )
        .await;
        let mother = members[0];
        // 中秋 2026 is on 25 September.
        let o = opts(d(2026, 9, 1), d(2026, 10, 31));
        let first = generate(db, &o).await.unwrap();
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        let old_birthday = format!("{fam}:birthday:{mother}:2026");
        let mid_autumn = format!("{fam}:festival-中秋:2026");
        let before = keys(&family_tasks(db, fam).await);
        assert!(before.contains(&old_birthday), "{before:?}");
        assert!(before.contains(&mid_autumn), "{before:?}");

        let task = |key: &str| {
            let key = key.to_string();
            async move {
                visit_task::Entity::find()
                    .filter(visit_task::Column::UniqueKey.eq(key))
                    .one(db)
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let first_birthday = task(&old_birthday).await;
        assert_eq!(first_birthday.planned_date, Some(d(2026, 10, 10)));

        // Ten days later: the same occurrence (its key is the year's), moved in place.
        set_birthday(db, mother, 10, 20).await;
        let stats = generate(db, &o).await.unwrap();
        assert_eq!(
            (stats.created, stats.updated, stats.cancelled),
            (0, 1, 0),
            "{}: {stats:?}",
            t.name
        );
        let moved = task(&old_birthday).await;
        assert_eq!(moved.id, first_birthday.id);
        assert_eq!(moved.planned_date, Some(d(2026, 10, 20)));
        assert_eq!(moved.window_end, midnight(d(2026, 10, 21)));
        assert_eq!(moved.status, "open");

        // Two days before 中秋: one visit for both; the two tasks give way to it.
        set_birthday(db, mother, 9, 23).await;
        let stats = generate(db, &o).await.unwrap();
        assert_eq!(stats.cancelled, 2, "{}: {stats:?}", t.name);
        assert_eq!(stats.created, 1, "{stats:?}");
        for key in [&old_birthday, &mid_autumn] {
            let old = task(key).await;
            assert_eq!(old.status, "cancelled", "{key}");
            assert_eq!(old.status_reason.as_deref(), Some(REASON_MERGED));
        }
        let after = family_tasks(db, fam).await;
        let merged = after
            .iter()
            .find(|t| t.status == "open" && has_kind(t, "birthday"))
            .expect("the new birthday visit")
            .clone();
        let parts = merged.components.clone().unwrap().0;
        assert_eq!(parts, vec![old_birthday.clone(), mid_autumn.clone()]);
        assert!(merged.planned_date.is_some_and(|p| p <= d(2026, 9, 23)));
        assert!(has_kind(&merged, "festival"));
        assert_eq!(merged.volunteers_needed, 2, "the festival's two volunteers");

        // Back to 20 October: the merged visit is cancelled, the two come back.
        set_birthday(db, mother, 10, 20).await;
        let stats = generate(db, &o).await.unwrap();
        assert_eq!(
            (stats.created, stats.updated, stats.cancelled),
            (0, 2, 1),
            "{}: {stats:?}",
            t.name
        );
        let merged = task(&merged.unique_key).await;
        assert_eq!(merged.status, "cancelled");
        assert_eq!(merged.status_reason.as_deref(), Some(REASON_REPLANNED));
        for key in [&old_birthday, &mid_autumn] {
            let back = task(key).await;
            assert_eq!(back.status, "open", "{key}");
            assert_eq!(back.status_reason, None);
        }

        // A second run leaves it so.
        let again = generate(db, &o).await.unwrap();
        assert_eq!((again.created, again.cancelled, again.updated), (0, 0, 0));
        t.finish().await;
    }
}

#[tokio::test]
async fn a_claimed_visit_the_plan_drops_is_flagged_not_cancelled() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        let (fam, members) = add_family(db, &fx, daughters((4, 12))).await;
        let o = opts(d(2026, 3, 1), d(2026, 4, 30));
        generate(db, &o).await.unwrap();
        let bday = family_tasks(db, fam)
            .await
            .into_iter()
            .find(|t| has_kind(t, "birthday"))
            .unwrap();
        let mut m: visit_task::ActiveModel = bday.clone().into();
        m.claims_count = Set(1);
        m.update(db).await.unwrap();

        // The mother's birthday is removed (unknown after all).
        let mm = family_member::Entity::find_by_id(members[0])
            .one(db)
            .await
            .unwrap()
            .unwrap();
        let mut mm: family_member::ActiveModel = mm.into();
        mm.birth_month = Set(None);
        mm.birth_day = Set(None);
        mm.update(db).await.unwrap();
        clear_plan_stamps(db, &[fam]).await.unwrap();

        let stats = generate(db, &o).await.unwrap();
        assert_eq!(stats.flagged, 1, "{}: {stats:?}", t.name);
        let now = visit_task::Entity::find_by_id(bday.id)
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now.status, "open");
        assert!(now.needs_attention);
        assert_eq!(now.status_reason.as_deref(), Some(REASON_REPLANNED));
        // A check-in it had absorbed gets its own visit again, unless the claimed
        // visit still covers it.
        let again = generate(db, &o).await.unwrap();
        assert_eq!((again.flagged, again.created, again.cancelled), (0, 0, 0));
        t.finish().await;
    }
}

#[tokio::test]
async fn bad_overrides_are_reported_and_defaults_used() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        let (fam, _) = add_family(
            db,
            &fx,
            FamilySpec {
                overrides: Some(json!([{"op": "explode"}])),
                ..daughters((3, 25))
            },
        )
        .await;
        let stats = generate(db, &opts(d(2026, 3, 1), d(2026, 4, 30)))
            .await
            .unwrap();
        assert_eq!(stats.errors.len(), 1, "{}", t.name);
        assert!(stats.errors[0].contains(&fam.to_string()));
        assert!(stats.errors[0].contains("care_overrides"));
        assert!(stats.created > 0);
        assert!(
            family_tasks(db, fam)
                .await
                .iter()
                .any(|t| t.kind == "checkin")
        );
        t.finish().await;
    }
}

#[tokio::test]
async fn region_filter_limits_the_run() {
    for t in backends().await {
        let db = &t.db;
        let here = fixture(db).await;
        let there = fixture(db).await;
        let (a, _) = add_family(db, &here, daughters((3, 25))).await;
        let (b, _) = add_family(db, &there, daughters((3, 25))).await;
        let stats = generate(
            db,
            &GenerateOptions {
                region_path: Some(format!("/{}/", here.region)),
                ..opts(d(2026, 3, 1), d(2026, 4, 30))
            },
        )
        .await
        .unwrap();
        assert_eq!(stats.families, 1, "{}", t.name);
        assert!(!family_tasks(db, a).await.is_empty());
        assert!(family_tasks(db, b).await.is_empty());
        t.finish().await;
    }
}

#[tokio::test]
async fn mark_missed_marks_only_past_open_or_claimed_visits() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        add_family(db, &fx, bereaved()).await;
        generate(db, &opts(d(2026, 3, 1), d(2026, 4, 30)))
            .await
            .unwrap();
        let now = midnight(d(2026, 4, 15));
        let all = tasks(db).await;
        let past: Vec<_> = all.iter().filter(|t| t.window_end < now).collect();
        assert!(past.len() >= 4, "{}", t.name);
        // One past visit done, one claimed, one cancelled; the rest open.
        for (task, status) in past.iter().zip(["reported", "claimed", "cancelled"]) {
            let mut m: visit_task::ActiveModel = (*task).clone().into();
            m.status = Set(status.into());
            m.update(db).await.unwrap();
        }
        // And one a cadre's call passing a message on, not made: not a care visit, so
        // never missed.
        let mut call: visit_task::ActiveModel = past[3].clone().into();
        call.kind = Set(visit_task::MESSAGE_CALL.into());
        call.update(db).await.unwrap();
        let missed = mark_missed(db, now).await.unwrap();
        assert_eq!(missed.len(), past.len() - 3, "{}", t.name);
        assert!(missed.iter().all(|m| m.status == "missed"));
        for task in tasks(db).await {
            let was = all.iter().find(|a| a.id == task.id).unwrap();
            let expect = if task.window_end >= now || was.id == past[3].id {
                "open"
            } else if was.id == past[0].id {
                "reported"
            } else if was.id == past[2].id {
                "cancelled"
            } else {
                "missed"
            };
            assert_eq!(task.status, expect, "{}", task.unique_key);
        }
        assert!(mark_missed(db, now).await.unwrap().is_empty());
        // The call not made is shown to a coordinator instead, once.
        assert_eq!(flag_overdue_calls(db, now).await.unwrap(), 1, "{}", t.name);
        let call = tasks(db)
            .await
            .into_iter()
            .find(|c| c.id == past[3].id)
            .unwrap();
        assert!(call.needs_attention && call.status == "open");
        assert_eq!(call.status_reason.as_deref(), Some(REASON_CALL_OVERDUE));
        assert_eq!(flag_overdue_calls(db, now).await.unwrap(), 0);
        t.finish().await;
    }
}

#[tokio::test]
async fn preview_writes_nothing() {
    for t in backends().await {
        let db = &t.db;
        let fx = fixture(db).await;
        let (fam, members) = add_family(db, &fx, bereaved()).await;
        let plan = preview(db, fam, 2, &opts(d(2026, 3, 1), d(2026, 3, 1)))
            .await
            .unwrap();
        assert_eq!(visit_task::Entity::find().count(db).await.unwrap(), 0);
        let key = format!("{fam}:child-birthday:{}:2026", members[2]);
        assert!(plan.visits.iter().any(|v| v.components.contains(&key)));
        assert!(plan.visits.iter().all(|v| v.date < d(2026, 5, 1)));
        // It is the plan generate writes.
        generate(db, &opts(d(2026, 3, 1), d(2026, 4, 30)))
            .await
            .unwrap();
        let written = keys(&tasks(db).await);
        let previewed: BTreeSet<_> = plan.visits.iter().map(|v| v.unique_key.clone()).collect();
        assert_eq!(written, previewed, "{}", t.name);
        assert!(
            preview(db, Uuid::now_v7(), 2, &opts(d(2026, 3, 1), d(2026, 3, 1)))
                .await
                .is_err()
        );
        t.finish().await;
    }
}

/// Copies regions, users, families, members and pairings (not tasks) to another database.
async fn copy_families(from: &DatabaseConnection, to: &DatabaseConnection) {
    for r in region::Entity::find().all(from).await.unwrap() {
        region::ActiveModel::from(r)
            .reset_all()
            .insert(to)
            .await
            .unwrap();
    }
    for u in app_user::Entity::find().all(from).await.unwrap() {
        app_user::ActiveModel::from(u)
            .reset_all()
            .insert(to)
            .await
            .unwrap();
    }
    for f in family::Entity::find().all(from).await.unwrap() {
        // Not planned there yet.
        let f = family::Model {
            plan_stamp: None,
            ..f
        };
        family::ActiveModel::from(f)
            .reset_all()
            .insert(to)
            .await
            .unwrap();
    }
    for m in family_member::Entity::find().all(from).await.unwrap() {
        family_member::ActiveModel::from(m)
            .reset_all()
            .insert(to)
            .await
            .unwrap();
    }
    for p in pairing::Entity::find().all(from).await.unwrap() {
        pairing::ActiveModel::from(p)
            .reset_all()
            .insert(to)
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Timings (run with `cargo test --release -p scheduler --test generate_db -- --ignored
// --nocapture`)

/// Inserts `n` families of mixed categories with 2–3 members each, 100 cadres.
async fn bulk_families(db: &DatabaseConnection, n: usize) {
    let fx = fixture(db).await;
    let now = Utc::now();
    let mut cadres = vec![fx.cadre];
    let users: Vec<_> = (0..99)
        .map(|i| {
            let id = Uuid::now_v7();
            cadres.push(id);
            app_user::ActiveModel {
                id: Set(id),
                name: Set(format!("干部{i}")),
                phone: Set(None),
                openid: Set(None),
                unionid: Set(None),
                status: Set(UserStatus::Active),
                created_at: Set(now),
                updated_at: Set(now),
            }
        })
        .collect();
    app_user::Entity::insert_many(users).exec(db).await.unwrap();
    let categories = FamilyCategory::ALL;
    let chunk = 500;
    for start in (0..n).step_by(chunk) {
        let mut fams = Vec::new();
        let mut mems = Vec::new();
        let mut pairs = Vec::new();
        for i in start..(start + chunk).min(n) {
            let id = Uuid::now_v7();
            let category = categories[i % categories.len()];
            fams.push(family::ActiveModel {
                id: Set(id),
                region_id: Set(fx.region),
                register_no: Set(format!("R{i:08}")),
                category: Set(category),
                head_name: Set("张建国".into()),
                phone: Set(None),
                address: Set("幸福村".into()),
                lat: Set(None),
                lng: Set(None),
                care_level: Set(2),
                status: Set(if i % 50 == 0 {
                    FamilyStatus::Paused
                } else {
                    FamilyStatus::Active
                }),
                consent_data: Set(true),
                consent_sms: Set(true),
                consent_wechat: Set(true),
                consent_at: Set(Some(now)),
                do_not_disturb: Set(json!({"no_festive_visits": i % 10 == 0})),
                visitor_notes: Set(String::new()),
                counsel_notes: Set(String::new()),
                created_at: Set(now),
                care_overrides: Set(None),
                plan_stamp: Set(None),
                updated_at: Set(now),
            });
            let month = (i % 12) as u32 + 1;
            let day = (i % 28) as u32 + 1;
            let calendar = if i % 3 == 0 {
                BirthCalendar::Lunar
            } else {
                BirthCalendar::Solar
            };
            let mut list = vec![
                Member {
                    calendar,
                    ..solar(
                        "钱秀英",
                        MemberRelation::Mother,
                        1950 + (i % 25) as i32,
                        month,
                        day,
                    )
                },
                solar(
                    "张建国",
                    MemberRelation::Father,
                    1948 + (i % 25) as i32,
                    (month % 12) + 1,
                    (day % 27) + 2,
                ),
            ];
            if category == FamilyCategory::Bereaved {
                list.push(Member {
                    death: Some(d(2010 + (i % 12) as i32, (i % 12) as u32 + 1, 15)),
                    ..solar(
                        "小明",
                        MemberRelation::Child,
                        1980,
                        ((i + 5) % 12) as u32 + 1,
                        9,
                    )
                });
            }
            for m in &list {
                mems.push(member_model(id, Uuid::now_v7(), m, now));
            }
            if i % 5 != 0 {
                pairs.push(pairing_model(id, cadres[i % cadres.len()], now));
            }
        }
        family::Entity::insert_many(fams).exec(db).await.unwrap();
        family_member::Entity::insert_many(mems)
            .exec(db)
            .await
            .unwrap();
        pairing::Entity::insert_many(pairs).exec(db).await.unwrap();
    }
}

async fn time_generation(t: &TestDb, n: usize) {
    let db = &t.db;
    let started = Instant::now();
    bulk_families(db, n).await;
    println!(
        "{}: {n} families inserted in {:.2?}; peak memory so far {}",
        t.name,
        started.elapsed(),
        peak_memory()
    );
    let runs = [
        ("first run", opts(d(2026, 3, 1), d(2026, 4, 30))),
        (
            "second run (nothing changed)",
            opts(d(2026, 3, 1), d(2026, 4, 30)),
        ),
        ("next day's run", opts(d(2026, 3, 2), d(2026, 5, 1))),
    ];
    for (i, (name, o)) in runs.iter().enumerate() {
        if t.pg.is_some() {
            // What autovacuum does after bulk changes (the test server runs without it):
            // without statistics PostgreSQL plans the batch reads as table scans.
            db.execute_unprepared("ANALYZE").await.unwrap();
        }
        let started = Instant::now();
        let s = generate(db, o).await.unwrap();
        println!(
            "{}: {name}: {:.2?}: {} families planned, {} up to date, {} created, {} \
             unchanged, {} updated, {} cancelled, {} errors (summed over overlapping batches: \
             read {} ms, plan {} ms, write {} ms); peak memory {}",
            t.name,
            started.elapsed(),
            s.families,
            s.up_to_date,
            s.created,
            s.unchanged,
            s.updated,
            s.cancelled,
            s.error_count,
            s.load_ms,
            s.plan_ms,
            s.write_ms,
            peak_memory()
        );
        if i == 1 {
            assert_eq!(s.created + s.updated + s.cancelled + s.flagged, 0);
        }
    }
}

/// The process's peak resident memory (Linux), for the record.
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing: run with --release -- --ignored --nocapture"]
async fn generate_10k_families_on_sqlite() {
    let mut t = TestDb::sqlite().await;
    time_generation(&t, 10_000).await;
    if std::env::var("NX_BENCH_KEEP").is_ok() {
        let dir = t._dir.take().unwrap().keep();
        println!("kept {}", dir.display());
    }
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing: run with --release -- --ignored --nocapture; needs DATABASE_URL"]
async fn generate_100k_families_on_postgres() {
    let Some(url) = admin_url() else {
        println!("DATABASE_URL not set: skipped");
        return;
    };
    let t = TestDb::postgres(&url).await;
    let n = std::env::var("NX_BENCH_FAMILIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    time_generation(&t, n).await;
    if std::env::var("NX_BENCH_KEEP").is_ok() {
        println!("kept database {:?}", t.pg);
        return;
    }
    t.finish().await;
}

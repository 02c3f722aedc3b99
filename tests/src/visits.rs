//! Visits, families and volunteers written straight to the database, for tests of the visit
//! flow that need exact places, windows and many people quickly.

use chrono::{DateTime, Duration, Utc};
use entity::{
    FamilyCategory, FamilyStatus, Role, Skill, StringList, UserStatus, VolunteerStatus, app_user,
    family, role_grant, task_claim, visit_task, volunteer,
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::TestApp;

/// A visit to insert; [`VisitSpec::new`] gives an open birthday visit for one volunteer.
#[derive(Clone, Debug)]
pub struct VisitSpec {
    pub family: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub kind: String,
    pub needed: i32,
    pub claims: i32,
    pub status: String,
    pub skills: Vec<Skill>,
    pub assign_to_cadre: bool,
    pub cadre: Option<Uuid>,
}

impl VisitSpec {
    /// Open, `hours` long from `start`.
    pub fn new(family: Uuid, start: DateTime<Utc>, hours: i64) -> Self {
        Self {
            family,
            start,
            end: start + Duration::hours(hours),
            kind: "birthday".into(),
            needed: 1,
            claims: 0,
            status: "open".into(),
            skills: vec![],
            assign_to_cadre: false,
            cadre: None,
        }
    }

    pub fn needing(mut self, n: i32) -> Self {
        self.needed = n;
        self
    }

    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = kind.into();
        self
    }

    pub fn skills(mut self, skills: &[Skill]) -> Self {
        self.skills = skills.to_vec();
        self
    }
}

/// A volunteer made for a test, with an access token.
#[derive(Clone, Debug)]
pub struct TestVolunteer {
    pub user_id: Uuid,
    pub volunteer_id: Uuid,
    pub token: String,
}

/// Who [`TestApp::volunteers`] makes.
#[derive(Clone, Debug)]
pub struct VolunteerSpec {
    pub home: Option<(f64, f64)>,
    pub skills: Vec<Skill>,
    pub max_distance_km: f64,
    pub weekly_capacity: i32,
    pub status: VolunteerStatus,
}

impl VolunteerSpec {
    /// Approved, companionship only, 5 km, three visits a week.
    pub fn at(lat: f64, lng: f64) -> Self {
        Self {
            home: Some((lat, lng)),
            skills: vec![Skill::Companionship],
            max_distance_km: 5.0,
            weekly_capacity: 3,
            status: VolunteerStatus::Approved,
        }
    }
}

/// A point `km` north and `east_km` east of `(lat, lng)`.
pub fn offset(from: (f64, f64), north_km: f64, east_km: f64) -> (f64, f64) {
    let lat = from.0 + north_km / 111.195;
    let lng = from.1 + east_km / (111.195 * from.0.to_radians().cos());
    (lat, lng)
}

impl TestApp {
    /// The account of a user, by phone.
    pub async fn user_id(&self, phone: &str) -> Uuid {
        app_user::Entity::find()
            .filter(app_user::Column::Phone.eq(phone))
            .one(&self.state.db)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("no user {phone}"))
            .id
    }

    /// These accounts hold the visit, as claims through the API would leave it: an active
    /// claim each, and the visit fully claimed by them.
    pub async fn hold(&self, task: &visit_task::Model, users: &[Uuid]) -> visit_task::Model {
        let db = &self.state.db;
        for user in users {
            task_claim::ActiveModel {
                id: Set(Uuid::now_v7()),
                task_id: Set(task.id),
                volunteer_id: Set(*user),
                status: Set(task_claim::ACTIVE.into()),
                claimed_at: Set(Utc::now()),
                released_at: Set(None),
                released_by: Set(None),
            }
            .insert(db)
            .await
            .expect("claim");
        }
        let mut t: visit_task::ActiveModel = task.clone().into();
        t.status = Set(visit_task::status::CLAIMED.into());
        t.volunteers_needed = Set(users.len() as i32);
        t.claims_count = Set(users.len() as i32);
        t.update(db).await.expect("visit")
    }

    /// A family in `village` living at `at` (or nowhere recorded), written to the register
    /// directly: nothing plans visits for it.
    pub async fn family_at(
        &self,
        village: &str,
        category: FamilyCategory,
        head_name: &str,
        at: Option<(f64, f64)>,
    ) -> Uuid {
        let region: Uuid = self.region(village).await.parse().expect("uuid");
        let id = Uuid::now_v7();
        let now = Utc::now();
        family::ActiveModel {
            id: Set(id),
            region_id: Set(region),
            register_no: Set(format!("T-{}", &id.simple().to_string()[20..])),
            category: Set(category),
            head_name: Set(head_name.into()),
            phone: Set(Some("13855501234".into())),
            address: Set(format!("{village}幸福路{}号", id.as_u128() % 97 + 1)),
            lat: Set(at.map(|p| p.0)),
            lng: Set(at.map(|p| p.1)),
            care_level: Set(2),
            status: Set(FamilyStatus::Active),
            consent_data: Set(true),
            consent_sms: Set(false),
            consent_wechat: Set(false),
            consent_at: Set(None),
            do_not_disturb: Set(json!({})),
            visitor_notes: Set("老人耳背，请大声说话".into()),
            counsel_notes: Set("不要提起儿子；喜欢下午来访".into()),
            created_at: Set(now),
            care_overrides: Set(None),
            plan_stamp: Set(Some("test".into())),
            updated_at: Set(now),
        }
        .insert(&self.state.db)
        .await
        .expect("family inserted");
        id
    }

    /// Inserts a visit as the planner would have written it.
    pub async fn visit(&self, v: VisitSpec) -> Uuid {
        self.visits(vec![v]).await[0]
    }

    pub async fn visits(&self, specs: Vec<VisitSpec>) -> Vec<Uuid> {
        let now = Utc::now();
        let mut ids = Vec::new();
        let rows: Vec<visit_task::ActiveModel> = specs
            .into_iter()
            .map(|v| {
                let id = Uuid::now_v7();
                ids.push(id);
                visit_task::ActiveModel {
                    id: Set(id),
                    family_id: Set(v.family),
                    rule_id: Set(None),
                    kind: Set(v.kind.clone()),
                    channel: Set("home_visit".into()),
                    unique_key: Set(format!("test:{id}")),
                    window_start: Set(v.start),
                    window_end: Set(v.end),
                    status: Set(v.status),
                    volunteers_needed: Set(v.needed),
                    claims_count: Set(v.claims),
                    required_skills: Set(StringList(
                        v.skills.iter().map(|s| s.code().to_string()).collect(),
                    )),
                    assigned_cadre_id: Set(v.cadre),
                    planned_date: Set(None),
                    kinds: Set(Some(StringList(vec![v.kind]))),
                    reasons: Set(Some(StringList(vec!["测试走访".into()]))),
                    components: Set(None),
                    gentle: Set(false),
                    first_visit: Set(false),
                    assign_to_cadre: Set(v.assign_to_cadre),
                    preferred_time: Set(None),
                    visitor_gender: Set(None),
                    status_reason: Set(None),
                    needs_attention: Set(false),
                    created_at: Set(now),
                    updated_at: Set(now),
                    rescheduled_at: Set(None),
                }
            })
            .collect();
        for chunk in rows.chunks(500) {
            visit_task::Entity::insert_many(chunk.to_vec())
                .exec(&self.state.db)
                .await
                .expect("visits inserted");
        }
        ids
    }

    /// `n` volunteers as `spec` says, living in 杨柳村, each with an access token.
    pub async fn volunteers(&self, n: usize, spec: VolunteerSpec) -> Vec<TestVolunteer> {
        let db = &self.state.db;
        let village: Uuid = self.region("杨柳村").await.parse().expect("uuid");
        let now = Utc::now();
        let mut users = Vec::new();
        let mut grants = Vec::new();
        let mut profiles = Vec::new();
        let mut out = Vec::new();
        for i in 0..n {
            let user_id = Uuid::now_v7();
            let volunteer_id = Uuid::now_v7();
            users.push(app_user::ActiveModel {
                id: Set(user_id),
                name: Set(format!("测试志愿者{i}")),
                phone: Set(Some(format!("136{:08}", user_id.as_u128() % 100_000_000))),
                openid: Set(None),
                unionid: Set(None),
                status: Set(UserStatus::Active),
                created_at: Set(now),
                updated_at: Set(now),
            });
            if spec.status == VolunteerStatus::Approved {
                grants.push(role_grant::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    user_id: Set(user_id),
                    role: Set(Role::Volunteer),
                    region_id: Set(Some(village)),
                    granted_by: Set(None),
                    created_at: Set(now),
                });
            }
            profiles.push(volunteer::ActiveModel {
                id: Set(volunteer_id),
                user_id: Set(user_id),
                team_id: Set(None),
                region_id: Set(village),
                skills: Set(server::api::volunteers::skill_list(&spec.skills)),
                home_lat: Set(spec.home.map(|h| h.0)),
                home_lng: Set(spec.home.map(|h| h.1)),
                max_distance_km: Set(spec.max_distance_km),
                weekly_capacity: Set(spec.weekly_capacity),
                availability: Set(json!({})),
                status: Set(spec.status),
                approved_by: Set(None),
                approved_at: Set(Some(now)),
                created_at: Set(now),
                updated_at: Set(now),
            });
            out.push((user_id, volunteer_id));
        }
        for chunk in users.chunks(500) {
            app_user::Entity::insert_many(chunk.to_vec())
                .exec(db)
                .await
                .expect("users inserted");
        }
        for chunk in grants.chunks(500) {
            role_grant::Entity::insert_many(chunk.to_vec())
                .exec(db)
                .await
                .expect("grants inserted");
        }
        for chunk in profiles.chunks(500) {
            volunteer::Entity::insert_many(chunk.to_vec())
                .exec(db)
                .await
                .expect("volunteers inserted");
        }
        let mut made = Vec::with_capacity(n);
        for (user_id, volunteer_id) in out {
            let token = server::auth::issue_tokens(&self.state, db, user_id, None)
                .await
                .expect("tokens")
                .access_token;
            made.push(TestVolunteer {
                user_id,
                volunteer_id,
                token,
            });
        }
        made
    }

    /// One volunteer as `spec` says.
    pub async fn volunteer(&self, spec: VolunteerSpec) -> TestVolunteer {
        self.volunteers(1, spec).await.remove(0)
    }

    /// A visit as it is now in the database.
    pub async fn visit_row(&self, id: Uuid) -> visit_task::Model {
        visit_task::Entity::find_by_id(id)
            .one(&self.state.db)
            .await
            .expect("query")
            .expect("the visit")
    }
}

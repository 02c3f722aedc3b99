//! Who carries how much: per volunteer and per team, the visits held, done, missed and
//! given back this week and this month against their capacity; how evenly the load is
//! spread (max/mean, Gini, volunteers with nothing counted); and the villages with many
//! visits nobody has taken. Coordinators see the volunteers and villages of their region
//! subtree.

use std::{collections::HashMap, sync::Arc};

use chrono::{Duration, NaiveDate, Utc};
use entity::{
    VolunteerStatus, app_user, family, region, task_claim, team, visit_task, visit_task::status,
    volunteer,
};
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait, Query as SqlQuery},
};
use uuid::Uuid;

use super::{Page, Paging, Tag, in_scope, regions};
use crate::{
    app::AppState,
    auth::{Manager, Scope},
    error::{ApiError, ApiResult},
    oversight::{self, Load, Period},
};

pub struct Api(pub Arc<AppState>);

/// A period's bounds (local days, inclusive).
#[derive(Object, Clone)]
pub struct PeriodView {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl From<&Period> for PeriodView {
    fn from(p: &Period) -> Self {
        Self {
            from: p.from,
            to: p.to,
        }
    }
}

/// Visits in a period against capacity.
#[derive(Object, Clone, Default)]
pub struct LoadView {
    /// Taken and not yet done.
    pub held: u32,
    /// Reported or confirmed.
    pub done: u32,
    /// Held while the window passed.
    pub missed: u32,
    /// Given back by the volunteer or released by a coordinator in the period.
    pub released: u32,
    /// held + done + missed: what counts against capacity.
    pub total: u32,
    pub capacity: f64,
    /// total / capacity (1.0 is full); absent without capacity.
    pub utilisation: Option<f64>,
}

impl LoadView {
    fn of(l: &Load, capacity: f64) -> Self {
        Self {
            held: l.held,
            done: l.done,
            missed: l.missed,
            released: l.released,
            total: l.total(),
            capacity,
            utilisation: oversight::utilisation(l.total(), capacity),
        }
    }
}

#[derive(Object, Clone)]
pub struct VolunteerLoad {
    pub volunteer_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub team: Option<String>,
    pub region_id: Uuid,
    pub weekly_capacity: i32,
    pub week: LoadView,
    pub month: LoadView,
}

#[derive(Object, Clone)]
pub struct TeamLoad {
    /// Absent for volunteers in no team.
    pub team_id: Option<Uuid>,
    pub name: String,
    pub volunteers: u32,
    pub week: LoadView,
    pub month: LoadView,
}

/// How evenly the visits of a period are spread over the volunteers.
#[derive(Object, Clone)]
pub struct SpreadView {
    /// Volunteers counted, with or without visits.
    pub volunteers: u32,
    pub max: f64,
    pub mean: f64,
    /// 1.0 is perfectly even; absent when nobody holds a visit.
    pub max_over_mean: Option<f64>,
    /// 0 (all equal) to 1 (one person holds everything).
    pub gini: f64,
}

impl From<oversight::Spread> for SpreadView {
    fn from(s: oversight::Spread) -> Self {
        Self {
            volunteers: s.people as u32,
            max: s.max,
            mean: s.mean,
            max_over_mean: s.max_over_mean,
            gini: s.gini,
        }
    }
}

/// The workload of the volunteers in scope.
#[derive(Object)]
pub struct Workload {
    pub week: PeriodView,
    pub month: PeriodView,
    pub week_spread: SpreadView,
    pub month_spread: SpreadView,
    /// Most loaded this week first.
    pub volunteers: Page<VolunteerLoad>,
}

#[derive(Object)]
pub struct TeamsWorkload {
    pub week: PeriodView,
    pub month: PeriodView,
    pub teams: Page<TeamLoad>,
}

/// A village with visits nobody has taken.
#[derive(Object, Clone)]
pub struct UnclaimedVillage {
    pub region_id: Uuid,
    pub name: String,
    /// Visits still short of volunteers.
    pub visits: u32,
    /// Volunteers still missing over those visits.
    pub places: u32,
}

/// What the workload of a region subtree is computed from.
struct Loaded {
    week: Period,
    month: Period,
    rows: Vec<VolunteerLoad>,
}

async fn narrowed(
    db: &DatabaseConnection,
    scope: &Scope,
    region: Option<Uuid>,
) -> ApiResult<Scope> {
    match region {
        None => Ok(scope.clone()),
        Some(id) => {
            let r = regions::find_in_scope(db, scope, id).await?;
            Ok(Scope::Subtrees(vec![r.path]))
        }
    }
}

impl Api {
    async fn load(&self, scope: &Scope, day: NaiveDate) -> ApiResult<Loaded> {
        let db = &self.0.db;
        let tz = self.0.tz;
        let week = Period::week_of(day, tz);
        let month = Period::month_of(day, tz);
        let vols = volunteer::Entity::find()
            .filter(in_scope(scope, volunteer::Column::RegionId))
            .filter(volunteer::Column::Status.eq(VolunteerStatus::Approved))
            .all(db)
            .await?;
        let users = SqlQuery::select()
            .column(volunteer::Column::UserId)
            .from(volunteer::Entity)
            .cond_where(in_scope(scope, volunteer::Column::RegionId))
            .to_owned();
        let (lo, hi) = (
            Ord::min(week.start, month.start),
            Ord::max(week.end, month.end),
        );
        // Visits whose window opens in the week or the month, held by these volunteers.
        let visits: HashMap<Uuid, (chrono::DateTime<Utc>, String)> = visit_task::Entity::find()
            .select_only()
            .columns([
                visit_task::Column::Id,
                visit_task::Column::WindowStart,
                visit_task::Column::Status,
            ])
            .filter(visit_task::Column::WindowStart.gte(lo))
            .filter(visit_task::Column::WindowStart.lt(hi))
            .filter(
                visit_task::Column::Id.in_subquery(
                    SqlQuery::select()
                        .column(task_claim::Column::TaskId)
                        .from(task_claim::Entity)
                        .and_where(task_claim::Column::VolunteerId.in_subquery(users.clone()))
                        .to_owned(),
                ),
            )
            .into_tuple::<(Uuid, chrono::DateTime<Utc>, String)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(id, start, st)| (id, (start, st)))
            .collect();
        let claims: Vec<(Uuid, Uuid, String, Option<chrono::DateTime<Utc>>)> =
            task_claim::Entity::find()
                .select_only()
                .columns([
                    task_claim::Column::TaskId,
                    task_claim::Column::VolunteerId,
                    task_claim::Column::Status,
                    task_claim::Column::ReleasedAt,
                ])
                .filter(task_claim::Column::VolunteerId.in_subquery(users))
                .filter(
                    Expr::col(task_claim::Column::ReleasedAt)
                        .gte(lo)
                        .and(Expr::col(task_claim::Column::ReleasedAt).lt(hi))
                        .or(task_claim::Column::Status.eq(task_claim::ACTIVE)),
                )
                .into_tuple()
                .all(db)
                .await?;
        let mut per: HashMap<Uuid, (Load, Load)> = HashMap::new();
        for (task, user, st, released_at) in claims {
            let slot = per.entry(user).or_default();
            if st == task_claim::ACTIVE {
                if let Some((start, visit_status)) = visits.get(&task) {
                    if week.contains(*start) {
                        slot.0.count(visit_status);
                    }
                    if month.contains(*start) {
                        slot.1.count(visit_status);
                    }
                }
            } else if let Some(at) = released_at {
                slot.0.released += u32::from(week.contains(at));
                slot.1.released += u32::from(month.contains(at));
            }
        }
        let names: HashMap<Uuid, String> = app_user::Entity::find()
            .select_only()
            .columns([app_user::Column::Id, app_user::Column::Name])
            .filter(
                app_user::Column::Id.in_subquery(
                    SqlQuery::select()
                        .column(volunteer::Column::UserId)
                        .from(volunteer::Entity)
                        .cond_where(in_scope(scope, volunteer::Column::RegionId))
                        .to_owned(),
                ),
            )
            .into_tuple::<(Uuid, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let teams = team_names(db).await?;
        let days = month.len_days();
        let mut rows: Vec<VolunteerLoad> = vols
            .into_iter()
            .map(|v| {
                let (w, m) = per.remove(&v.user_id).unwrap_or_default();
                VolunteerLoad {
                    volunteer_id: v.id,
                    user_id: v.user_id,
                    name: names.get(&v.user_id).cloned().unwrap_or_default(),
                    team: v.team_id.and_then(|t| teams.get(&t).cloned()),
                    region_id: v.region_id,
                    weekly_capacity: v.weekly_capacity,
                    week: LoadView::of(&w, f64::from(Ord::max(v.weekly_capacity, 0))),
                    month: LoadView::of(&m, oversight::month_capacity(v.weekly_capacity, days)),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.week
                .total
                .cmp(&a.week.total)
                .then(b.month.total.cmp(&a.month.total))
                .then(a.name.cmp(&b.name))
                .then(a.volunteer_id.cmp(&b.volunteer_id))
        });
        Ok(Loaded { week, month, rows })
    }
}

async fn team_names(db: &DatabaseConnection) -> ApiResult<HashMap<Uuid, String>> {
    Ok(team::Entity::find()
        .select_only()
        .columns([team::Column::Id, team::Column::Name])
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

fn page_of<T: Clone + poem_openapi::types::ParseFromJSON + poem_openapi::types::ToJSON>(
    paging: &Paging,
    all: &[T],
) -> Page<T> {
    let from = ((paging.page - 1) * paging.per_page) as usize;
    let items = all
        .iter()
        .skip(from)
        .take(paging.per_page as usize)
        .cloned()
        .collect();
    paging.wrap(items, all.len() as u64)
}

fn add_view(a: &mut LoadView, b: &LoadView) {
    a.held += b.held;
    a.done += b.done;
    a.missed += b.missed;
    a.released += b.released;
    a.total += b.total;
    a.capacity = ((a.capacity + b.capacity) * 10.0).round() / 10.0;
    a.utilisation = oversight::utilisation(a.total, a.capacity);
}

#[OpenApi(prefix_path = "/workload", tag = "Tag::Volunteers")]
impl Api {
    /// The volunteers' workload in my region (or a region of it): per volunteer, the
    /// visits held, done, missed and given back this week (Monday to Sunday) and this
    /// month against capacity, most loaded first; and how evenly the visits are spread
    /// (max/mean and Gini over every approved volunteer, those with no visit included).
    /// `date` picks another week and month.
    #[oai(path = "/", method = "get")]
    async fn volunteers(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        date: Query<Option<NaiveDate>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Workload>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let scope = narrowed(&self.0.db, &auth.0.manager_scope()?, region_id.0).await?;
        let l = self
            .load(&scope, date.0.unwrap_or_else(|| self.0.today()))
            .await?;
        let week: Vec<f64> = l.rows.iter().map(|r| f64::from(r.week.total)).collect();
        let month: Vec<f64> = l.rows.iter().map(|r| f64::from(r.month.total)).collect();
        Ok(Json(Workload {
            week: (&l.week).into(),
            month: (&l.month).into(),
            week_spread: oversight::spread(&week).into(),
            month_spread: oversight::spread(&month).into(),
            volunteers: page_of(&paging, &l.rows),
        }))
    }

    /// The same per team (volunteers in no team together), most loaded this week first.
    #[oai(path = "/teams", method = "get")]
    async fn teams(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        date: Query<Option<NaiveDate>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<TeamsWorkload>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let scope = narrowed(&self.0.db, &auth.0.manager_scope()?, region_id.0).await?;
        let l = self
            .load(&scope, date.0.unwrap_or_else(|| self.0.today()))
            .await?;
        let ids = team_ids(&self.0.db, &scope).await?;
        let mut by: HashMap<Option<Uuid>, TeamLoad> = HashMap::new();
        for r in &l.rows {
            let id = ids.get(&r.volunteer_id).copied().flatten();
            let t = by.entry(id).or_insert_with(|| TeamLoad {
                team_id: id,
                name: r.team.clone().unwrap_or_else(|| "未加入服务队".into()),
                volunteers: 0,
                week: LoadView::default(),
                month: LoadView::default(),
            });
            t.volunteers += 1;
            add_view(&mut t.week, &r.week);
            add_view(&mut t.month, &r.month);
        }
        let mut teams: Vec<TeamLoad> = by.into_values().collect();
        teams.sort_by(|a, b| b.week.total.cmp(&a.week.total).then(a.name.cmp(&b.name)));
        Ok(Json(TeamsWorkload {
            week: (&l.week).into(),
            month: (&l.month).into(),
            teams: page_of(&paging, &teams),
        }))
    }

    /// Villages of my region with visits still short of volunteers whose window opens in
    /// the next `days` days (default 14) or is open now, most first; `min` (default 1)
    /// leaves out villages with fewer.
    #[oai(path = "/unclaimed-villages", method = "get")]
    async fn unclaimed_villages(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        days: Query<Option<i64>>,
        min: Query<Option<u32>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<UnclaimedVillage>>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let days = days.0.unwrap_or(14);
        if !(0..=90).contains(&days) {
            return Err(ApiError::field("days", "days 应在 0 到 90 之间"));
        }
        let min = Ord::max(min.0.unwrap_or(1), 1);
        let db = &self.0.db;
        let scope = narrowed(db, &auth.0.manager_scope()?, region_id.0).await?;
        let now = Utc::now();
        let families = SqlQuery::select()
            .column(family::Column::Id)
            .from(family::Entity)
            .cond_where(in_scope(&scope, family::Column::RegionId))
            .to_owned();
        let short: Vec<(Uuid, i32, i32)> = visit_task::Entity::find()
            .select_only()
            .columns([
                visit_task::Column::FamilyId,
                visit_task::Column::VolunteersNeeded,
                visit_task::Column::ClaimsCount,
            ])
            .filter(visit_task::Column::Status.eq(status::OPEN))
            .filter(visit_task::Column::AssignToCadre.eq(false))
            .filter(visit_task::Column::AssignedCadreId.is_null())
            .filter(
                Expr::col(visit_task::Column::ClaimsCount)
                    .lt(Expr::col(visit_task::Column::VolunteersNeeded)),
            )
            .filter(visit_task::Column::WindowEnd.gt(now))
            .filter(visit_task::Column::WindowStart.lt(now + Duration::days(days)))
            .filter(visit_task::Column::FamilyId.in_subquery(families.clone()))
            .into_tuple()
            .all(db)
            .await?;
        let village_of: HashMap<Uuid, Uuid> = family::Entity::find()
            .select_only()
            .columns([family::Column::Id, family::Column::RegionId])
            .filter(family::Column::Id.in_subquery(families))
            .into_tuple::<(Uuid, Uuid)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let mut per: HashMap<Uuid, (u32, u32)> = HashMap::new();
        for (fam, needed, claims) in short {
            if let Some(v) = village_of.get(&fam) {
                let e = per.entry(*v).or_default();
                e.0 += 1;
                e.1 += Ord::max(needed - claims, 0) as u32;
            }
        }
        let names: HashMap<Uuid, String> = region::Entity::find()
            .select_only()
            .columns([region::Column::Id, region::Column::Name])
            .filter(region::Column::Id.is_in(per.keys().copied().collect::<Vec<_>>()))
            .into_tuple::<(Uuid, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let mut rows: Vec<UnclaimedVillage> = per
            .into_iter()
            .filter(|(_, (n, _))| *n >= min)
            .map(|(id, (visits, places))| UnclaimedVillage {
                region_id: id,
                name: names.get(&id).cloned().unwrap_or_default(),
                visits,
                places,
            })
            .collect();
        rows.sort_by(|a, b| b.visits.cmp(&a.visits).then(a.name.cmp(&b.name)));
        Ok(Json(page_of(&paging, &rows)))
    }
}

async fn team_ids(
    db: &DatabaseConnection,
    scope: &Scope,
) -> ApiResult<HashMap<Uuid, Option<Uuid>>> {
    Ok(volunteer::Entity::find()
        .select_only()
        .columns([volunteer::Column::Id, volunteer::Column::TeamId])
        .filter(in_scope(scope, volunteer::Column::RegionId))
        .into_tuple::<(Uuid, Option<Uuid>)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

//! Whether every family is cared for (随访率): per region and family category, the share of
//! families whose visits due in a period were all done, and of those visited at all; the
//! families not visited for N days; the visits missed or not confirmed. One row per child
//! region, so a city coordinator sees its counties side by side, a county its townships.
//! Coordinators see their own subtree; family names are masked.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{
    FamilyCategory, FamilyStatus, RegionLevel, family, region, visit_record, visit_task,
    visit_task::status,
};
use poem_openapi::{Enum, Object, OpenApi, param::Query, payload::Json};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
    sea_query::{Expr, Func, Query as SqlQuery, SelectStatement},
};
use uuid::Uuid;

use super::{Page, Paging, Tag, in_scope, regions, workload::PeriodView};
use crate::{
    app::AppState,
    auth::{Ctx, Manager, Scope},
    crypto::mask_name,
    error::{ApiError, ApiResult},
    oversight::{Due, Period, rate},
    report,
};

pub struct Api(pub Arc<AppState>);

/// Coverage of one group of families.
#[derive(Object, Clone, Default)]
pub struct Counts {
    /// Families in the register (在册).
    pub families: u64,
    /// Families with a visit due in the period (its window ends in it).
    pub due: u64,
    /// Of those, families whose every visit due was done (reported or confirmed).
    pub met: u64,
    /// met / due, in percent.
    pub met_rate: Option<f64>,
    /// Families with at least one visit reported in the period.
    pub visited: u64,
    /// visited / families, in percent (随访率).
    pub visited_rate: Option<f64>,
    /// Visits due in the period whose window passed with nobody there.
    pub missed_visits: u64,
    /// Visits due in the period reported but not confirmed by the family in time.
    pub unconfirmed_visits: u64,
}

impl Counts {
    fn add_family(&mut self, due: Option<&Due>, visited: bool, unconfirmed: u64) {
        self.families += 1;
        if let Some(d) = due.filter(|d| d.due > 0) {
            self.due += 1;
            self.met += u64::from(d.met());
            self.missed_visits += u64::from(d.missed);
        }
        self.visited += u64::from(visited);
        self.unconfirmed_visits += unconfirmed;
    }

    fn finish(mut self) -> Self {
        self.met_rate = rate(self.met, self.due);
        self.visited_rate = rate(self.visited, self.families);
        self
    }
}

#[derive(Object, Clone)]
pub struct CategoryCoverage {
    pub category: FamilyCategory,
    /// 失独, 伤残…
    pub label: String,
    #[oai(flatten)]
    pub counts: Counts,
}

/// One child region's coverage.
#[derive(Object, Clone)]
pub struct RegionCoverage {
    pub region_id: Uuid,
    pub name: String,
    pub level: RegionLevel,
    #[oai(flatten)]
    pub counts: Counts,
    /// Categories with families, in the register's order.
    pub by_category: Vec<CategoryCoverage>,
}

#[derive(Object)]
pub struct Coverage {
    pub period: PeriodView,
    /// The region whose children the rows are (absent for an administrator's whole view).
    pub region_id: Option<Uuid>,
    pub region_name: String,
    /// The whole region.
    pub total: RegionCoverage,
    /// One row per child region (a village's own row when it has none).
    pub rows: Page<RegionCoverage>,
}

/// A family not visited for a while: masked, with the days since its last visit.
#[derive(Object)]
pub struct QuietFamily {
    pub family_id: Uuid,
    pub register_no: String,
    /// "王*英"
    pub head_name: String,
    pub category: FamilyCategory,
    pub region_id: Uuid,
    pub village: String,
    pub last_visit_at: Option<DateTime<Utc>>,
    /// Absent when the family was never visited.
    pub days_since: Option<i64>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
pub enum Lapse {
    /// The window passed with nobody there.
    Missed,
    /// Reported, and the family has not confirmed in time.
    Unconfirmed,
}

#[derive(Object)]
pub struct LapsedVisit {
    pub visit_id: Uuid,
    pub family_id: Uuid,
    pub head_name: String,
    pub village: String,
    pub kind: String,
    pub kind_label: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub status: String,
    pub reported_at: Option<DateTime<Utc>>,
}

/// The region a view is about: the one asked for (in scope), else the coordinator's own;
/// None for an administrator asking for no region (every top-level region).
pub(crate) async fn focus(
    db: &DatabaseConnection,
    ctx: &Ctx,
    region: Option<Uuid>,
) -> ApiResult<(Scope, Option<region::Model>)> {
    let scope = ctx.manager_scope()?;
    let id = match (region, &scope) {
        (Some(id), _) => Some(id),
        (None, Scope::All) => None,
        (None, Scope::Subtrees(_)) => ctx.home_region(),
    };
    let Some(id) = id else {
        return Ok((scope, None));
    };
    let r = regions::find_in_scope(db, &scope, id).await?;
    Ok((Scope::Subtrees(vec![r.path.clone()]), Some(r)))
}

fn families_of(scope: &Scope) -> SelectStatement {
    SqlQuery::select()
        .column(family::Column::Id)
        .from(family::Entity)
        .cond_where(in_scope(scope, family::Column::RegionId))
        .to_owned()
}

/// Visits of the scope due in the period (their window ends in it).
fn due_in(scope: &Scope, p: &Period) -> Select<visit_task::Entity> {
    visit_task::Entity::find()
        .filter(visit_task::Column::FamilyId.in_subquery(families_of(scope)))
        .filter(visit_task::Column::WindowEnd.gt(p.start))
        .filter(visit_task::Column::WindowEnd.lte(p.end))
        .filter(visit_task::Column::Status.ne(status::CANCELLED))
        .filter(crate::visits::care_visits())
}

/// Reported visits of the scope due in the period that the family has not confirmed
/// within the configured hours of the report.
fn unconfirmed_in(scope: &Scope, p: &Period, within_hours: i64) -> Select<visit_task::Entity> {
    let late = SqlQuery::select()
        .column(visit_record::Column::TaskId)
        .from(visit_record::Entity)
        .and_where(visit_record::Column::SubmittedAt.lt(Utc::now() - Duration::hours(within_hours)))
        .and_where(visit_record::Column::ConfirmedAt.is_null())
        .to_owned();
    due_in(scope, p)
        .filter(visit_task::Column::Status.eq(status::REPORTED))
        .filter(visit_task::Column::Id.in_subquery(late))
}

async fn village_names(
    db: &DatabaseConnection,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, String>> {
    let ids: Vec<Uuid> = ids
        .into_iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    Ok(region::Entity::find()
        .select_only()
        .columns([region::Column::Id, region::Column::Name])
        .filter(region::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

fn row_of(
    r: &region::Model,
) -> (
    Counts,
    BTreeMap<usize, (FamilyCategory, Counts)>,
    &region::Model,
) {
    (Counts::default(), BTreeMap::new(), r)
}

fn finish_row(
    (counts, cats, r): (
        Counts,
        BTreeMap<usize, (FamilyCategory, Counts)>,
        &region::Model,
    ),
) -> RegionCoverage {
    RegionCoverage {
        region_id: r.id,
        name: r.name.clone(),
        level: r.level,
        counts: counts.finish(),
        by_category: cats
            .into_values()
            .map(|(c, n)| CategoryCoverage {
                category: c,
                label: c.label().into(),
                counts: n.finish(),
            })
            .collect(),
    }
}

#[OpenApi(prefix_path = "/coverage", tag = "Tag::Families")]
impl Api {
    /// Coverage (随访率) of my region in a period (`from`/`to`, local days; default this
    /// month so far): per child region (a city's counties side by side) and per family
    /// category, the families with visits due, those whose every visit due was done, those
    /// visited at all, and the visits missed or not confirmed.
    #[oai(path = "/", method = "get")]
    async fn coverage(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Coverage>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let state = &self.0;
        let db = &state.db;
        let p = Period::asked(from.0, to.0, state.today(), state.tz)?;
        let (scope, parent) = focus(db, &auth.0, region_id.0).await?;

        // The rows: the children of the region (every top-level region for an admin).
        let mut children = region::Entity::find()
            .filter(match &parent {
                Some(r) => region::Column::ParentId.eq(r.id),
                None => region::Column::ParentId.is_null(),
            })
            .order_by_asc(region::Column::Code)
            .all(db)
            .await?;
        if children.is_empty()
            && let Some(r) = &parent
        {
            children.push(r.clone());
        }
        let paths: HashMap<Uuid, String> = region::Entity::find()
            .select_only()
            .columns([region::Column::Id, region::Column::Path])
            .filter(in_scope(&scope, region::Column::Id))
            .into_tuple::<(Uuid, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let families: Vec<(Uuid, Uuid, FamilyCategory)> = family::Entity::find()
            .select_only()
            .columns([
                family::Column::Id,
                family::Column::RegionId,
                family::Column::Category,
            ])
            .filter(in_scope(&scope, family::Column::RegionId))
            .filter(family::Column::Status.eq(FamilyStatus::Active))
            .into_tuple()
            .all(db)
            .await?;
        let mut due: HashMap<Uuid, Due> = HashMap::new();
        let visits: Vec<(Uuid, String)> = due_in(&scope, &p)
            .select_only()
            .columns([visit_task::Column::FamilyId, visit_task::Column::Status])
            .into_tuple()
            .all(db)
            .await?;
        for (f, s) in &visits {
            due.entry(*f).or_default().count(s);
        }
        let visited: HashSet<Uuid> = visit_task::Entity::find()
            .select_only()
            .column(visit_task::Column::FamilyId)
            .filter(visit_task::Column::FamilyId.in_subquery(families_of(&scope)))
            .filter(
                visit_task::Column::Id.in_subquery(
                    SqlQuery::select()
                        .column(visit_record::Column::TaskId)
                        .from(visit_record::Entity)
                        .and_where(visit_record::Column::SubmittedAt.gte(p.start))
                        .and_where(visit_record::Column::SubmittedAt.lt(p.end))
                        .to_owned(),
                ),
            )
            .filter(visit_task::Column::Status.is_in([status::REPORTED, status::CONFIRMED]))
            .into_tuple::<Uuid>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let mut unconfirmed: HashMap<Uuid, u64> = HashMap::new();
        let late: Vec<Uuid> = unconfirmed_in(&scope, &p, state.config.visits.confirm_within_hours)
            .select_only()
            .column(visit_task::Column::FamilyId)
            .into_tuple()
            .all(db)
            .await?;
        for f in late {
            *unconfirmed.entry(f).or_default() += 1;
        }

        let mut rows: Vec<_> = children.iter().map(row_of).collect();
        let whole = parent.clone().unwrap_or_else(|| region::Model {
            id: Uuid::nil(),
            parent_id: None,
            level: RegionLevel::City,
            name: "全部地区".into(),
            code: String::new(),
            path: "/".into(),
            lat: None,
            lng: None,
            created_at: Utc::now(),
        });
        let mut total = row_of(&whole);
        for (id, region_id, category) in families {
            let Some(path) = paths.get(&region_id) else {
                continue;
            };
            let d = due.get(&id);
            let v = visited.contains(&id);
            let u = unconfirmed.get(&id).copied().unwrap_or(0);
            let cat = FamilyCategory::ALL
                .iter()
                .position(|c| *c == category)
                .unwrap_or(usize::MAX);
            let add = |row: &mut (
                Counts,
                BTreeMap<usize, (FamilyCategory, Counts)>,
                &region::Model,
            )| {
                row.0.add_family(d, v, u);
                row.1
                    .entry(cat)
                    .or_insert_with(|| (category, Counts::default()))
                    .1
                    .add_family(d, v, u);
            };
            add(&mut total);
            if let Some(row) = rows.iter_mut().find(|r| path.starts_with(&r.2.path)) {
                add(row);
            }
        }
        let all: Vec<RegionCoverage> = rows.into_iter().map(finish_row).collect();
        let start = ((paging.page - 1) * paging.per_page) as usize;
        let items = all
            .iter()
            .skip(start)
            .take(paging.per_page as usize)
            .cloned()
            .collect();
        Ok(Json(Coverage {
            period: (&p).into(),
            region_id: parent.as_ref().map(|r| r.id),
            region_name: whole.name.clone(),
            total: finish_row(total),
            rows: paging.wrap(items, all.len() as u64),
        }))
    }

    /// Families of my region (in the register) with no visit reported for `days` days
    /// (default 30), longest first (never visited at the top); names masked.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/not-visited", method = "get")]
    async fn not_visited(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        category: Query<Option<FamilyCategory>>,
        days: Query<Option<i64>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<QuietFamily>>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let days = days.0.unwrap_or(30);
        if !(1..=3650).contains(&days) {
            return Err(ApiError::field("days", "days 应在 1 到 3650 之间"));
        }
        let db = &self.0.db;
        let (scope, _) = focus(db, &auth.0, region_id.0).await?;
        let now = Utc::now();
        let recent = SqlQuery::select()
            .column(visit_task::Column::FamilyId)
            .from(visit_task::Entity)
            .and_where(
                visit_task::Column::Id.in_subquery(
                    SqlQuery::select()
                        .column(visit_record::Column::TaskId)
                        .from(visit_record::Entity)
                        .and_where(
                            visit_record::Column::SubmittedAt.gte(now - Duration::days(days)),
                        )
                        .to_owned(),
                ),
            )
            .to_owned();
        let mut select = family::Entity::find()
            .filter(in_scope(&scope, family::Column::RegionId))
            .filter(family::Column::Status.eq(FamilyStatus::Active))
            .filter(family::Column::Id.not_in_subquery(recent));
        if let Some(c) = category.0 {
            select = select.filter(family::Column::Category.eq(c));
        }
        let rows: Vec<family::Model> = select.all(db).await?;
        // The last visit of each (one grouped query, not one per family).
        let last: HashMap<Uuid, DateTime<Utc>> = visit_task::Entity::find()
            .select_only()
            .column(visit_task::Column::FamilyId)
            .expr_as(
                Func::max(Expr::col((
                    visit_record::Entity,
                    visit_record::Column::SubmittedAt,
                ))),
                "last",
            )
            .join(
                sea_orm::JoinType::InnerJoin,
                visit_task::Entity::belongs_to(visit_record::Entity)
                    .from(visit_task::Column::Id)
                    .to(visit_record::Column::TaskId)
                    .into(),
            )
            .filter(
                visit_task::Column::FamilyId.is_in(rows.iter().map(|f| f.id).collect::<Vec<_>>()),
            )
            .filter(visit_record::Column::SubmittedAt.is_not_null())
            .group_by(visit_task::Column::FamilyId)
            .into_tuple::<(Uuid, Option<DateTime<Utc>>)>()
            .all(db)
            .await?
            .into_iter()
            .filter_map(|(f, t)| Some((f, t?)))
            .collect();
        let mut rows: Vec<(family::Model, Option<DateTime<Utc>>)> = rows
            .into_iter()
            .map(|f| {
                let at = last.get(&f.id).copied();
                (f, at)
            })
            .collect();
        // Never visited first, then the longest ago.
        rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.register_no.cmp(&b.0.register_no)));
        let total = rows.len() as u64;
        let start = ((paging.page - 1) * paging.per_page) as usize;
        let page_rows: Vec<_> = rows
            .into_iter()
            .skip(start)
            .take(paging.per_page as usize)
            .collect();
        let names = village_names(db, page_rows.iter().map(|r| r.0.region_id)).await?;
        let items = page_rows
            .into_iter()
            .map(|(f, at)| QuietFamily {
                family_id: f.id,
                village: names.get(&f.region_id).cloned().unwrap_or_default(),
                register_no: f.register_no,
                head_name: mask_name(&f.head_name),
                category: f.category,
                region_id: f.region_id,
                last_visit_at: at,
                days_since: at.map(|t| (now - t).num_days()),
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// Visits of my region due in the period that were missed (`kind=missed`) or reported
    /// and not confirmed by the family in time (`kind=unconfirmed`), oldest first.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/lapses", method = "get")]
    async fn lapses(
        &self,
        auth: Manager,
        kind: Query<Lapse>,
        region_id: Query<Option<Uuid>>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<LapsedVisit>>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let state = &self.0;
        let db = &state.db;
        let p = Period::asked(from.0, to.0, state.today(), state.tz)?;
        let (scope, _) = focus(db, &auth.0, region_id.0).await?;
        let select = match kind.0 {
            Lapse::Missed => {
                due_in(&scope, &p).filter(visit_task::Column::Status.eq(status::MISSED))
            }
            Lapse::Unconfirmed => {
                unconfirmed_in(&scope, &p, state.config.visits.confirm_within_hours)
            }
        }
        .order_by_asc(visit_task::Column::WindowEnd)
        .order_by_asc(visit_task::Column::Id);
        let (tasks, total) = paging.fetch(db, select).await?;
        let fams: HashMap<Uuid, (String, Uuid)> = family::Entity::find()
            .select_only()
            .columns([
                family::Column::Id,
                family::Column::HeadName,
                family::Column::RegionId,
            ])
            .filter(family::Column::Id.is_in(tasks.iter().map(|t| t.family_id).collect::<Vec<_>>()))
            .into_tuple::<(Uuid, String, Uuid)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(id, name, r)| (id, (name, r)))
            .collect();
        let names = village_names(db, fams.values().map(|f| f.1)).await?;
        let reported: HashMap<Uuid, Option<DateTime<Utc>>> = visit_record::Entity::find()
            .select_only()
            .columns([
                visit_record::Column::TaskId,
                visit_record::Column::SubmittedAt,
            ])
            .filter(Condition::all().add(
                visit_record::Column::TaskId.is_in(tasks.iter().map(|t| t.id).collect::<Vec<_>>()),
            ))
            .into_tuple::<(Uuid, Option<DateTime<Utc>>)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let items = tasks
            .into_iter()
            .map(|t| {
                let (name, village) = fams
                    .get(&t.family_id)
                    .map(|(n, r)| (mask_name(n), names.get(r).cloned().unwrap_or_default()))
                    .unwrap_or_default();
                LapsedVisit {
                    visit_id: t.id,
                    family_id: t.family_id,
                    head_name: name,
                    village,
                    kind_label: report::kind_label(&t.kind).into(),
                    kind: t.kind,
                    window_start: t.window_start,
                    window_end: t.window_end,
                    status: t.status,
                    reported_at: reported.get(&t.id).copied().flatten(),
                }
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }
}

//! Proposing holders for the visits nobody claimed: loads the open visits and the
//! volunteers, asks [`scheduler::assign::propose`], writes the proposals; applies them (a
//! claim, as the visit flow makes) and takes back the visits of volunteers on leave.
//!
//! Claims come first: a visit is proposed for once it has been open for claiming
//! `assign.claim_hours` and its window starts within `assign.lead_days`. Nothing here moves
//! a claim or a cadre's visit: only free places are filled.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::{
    Role, VolunteerStatus, assignment_proposal as proposal, assignment_setting, family,
    notification, region, task_claim, visit_task, visit_task::status, volunteer, volunteer_leave,
};
use scheduler::assign::{self, Problem, Weights};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, Query},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::{
    api::visits::{
        HELD_LOOKBACK_DAYS, held_visits, lock_volunteer, offer_of, take_place, taker_of,
    },
    audit,
    auth::Scope,
    eligibility::{self, Point, Window, local_midnight},
    error::{ApiError, ApiResult},
};

/// The outbox template telling a volunteer a coordinator assigned them a visit.
pub const TEMPLATE_VISIT_ASSIGNED: &str = "visit_assigned";

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssignConfig {
    /// Visits whose window starts within this many days get proposals (D).
    pub lead_days: i64,
    /// A visit is left to volunteers' claims this many hours after it was published.
    pub claim_hours: i64,
    /// When the proposals are made (6-field cron, local time).
    pub cron: String,
    pub weights: Weights,
}

impl Default for AssignConfig {
    fn default() -> Self {
        Self {
            lead_days: 7,
            claim_hours: 72,
            cron: "0 40 * * * *".into(),
            weights: Weights::default(),
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunStats {
    pub visits: usize,
    pub volunteers: usize,
    pub proposed: usize,
    /// Places nobody can fill.
    pub unfilled: u32,
    /// Applied at once (regions set to apply automatically).
    pub applied: usize,
    /// Milliseconds spent reading the visits and volunteers, computing the proposals, and
    /// writing them (with the automatic applies).
    pub load_ms: u64,
    pub compute_ms: u64,
    pub write_ms: u64,
}

/// Which visits a run considers.
pub enum Due<'a> {
    /// Those due (see the module) whose family lies in the scope.
    In(&'a Scope),
    /// These, whenever published (a decline, a leave).
    Only(&'a [Uuid]),
}

/// Proposes holders for the open places of the due visits, replacing proposals nobody
/// acted on, and applies those of regions set to apply automatically.
pub async fn run(
    db: &DatabaseConnection,
    cfg: &AssignConfig,
    tz: Tz,
    due: Due<'_>,
    now: DateTime<Utc>,
) -> ApiResult<RunStats> {
    use visit_task::Column as T;
    let started = std::time::Instant::now();
    let mut q = visit_task::Entity::find()
        .filter(T::Status.eq(status::OPEN))
        .filter(T::AssignToCadre.eq(false))
        .filter(T::AssignedCadreId.is_null())
        .filter(Expr::col(T::ClaimsCount).lt(Expr::col(T::VolunteersNeeded)))
        .filter(T::WindowStart.gt(now));
    let scope = match &due {
        Due::In(scope) => {
            q = q
                .filter(T::WindowStart.lte(now + Duration::days(cfg.lead_days)))
                .filter(T::CreatedAt.lte(now - Duration::hours(cfg.claim_hours)));
            Some(*scope)
        }
        Due::Only(ids) => {
            q = q.filter(T::Id.is_in(ids.iter().copied()));
            None
        }
    };
    let tasks = q.all(db).await?;
    let families: HashMap<Uuid, family::Model> = family::Entity::find()
        .filter(family::Column::Id.is_in(tasks.iter().map(|t| t.family_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
    let paths = region_paths(db, families.values().map(|f| f.region_id)).await?;
    let tasks: Vec<visit_task::Model> = tasks
        .into_iter()
        .filter(|t| {
            families.get(&t.family_id).is_some_and(|f| {
                f.lat.is_some()
                    && f.lng.is_some()
                    && scope.is_none_or(|s| paths.get(&f.region_id).is_some_and(|p| s.contains(p)))
            })
        })
        .collect();
    if tasks.is_empty() {
        return Ok(RunStats::default());
    }
    let task_ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();

    // Who is not to be asked again: anyone who claimed it or was proposed and acted on.
    let mut exclude: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (task, who) in task_claim::Entity::find()
        .select_only()
        .columns([task_claim::Column::TaskId, task_claim::Column::VolunteerId])
        .filter(task_claim::Column::TaskId.is_in(task_ids.clone()))
        .into_tuple::<(Uuid, Uuid)>()
        .all(db)
        .await?
    {
        exclude.entry(task).or_default().push(who);
    }
    for (task, who) in proposal::Entity::find()
        .select_only()
        .columns([proposal::Column::TaskId, proposal::Column::VolunteerId])
        .filter(proposal::Column::TaskId.is_in(task_ids.clone()))
        .filter(proposal::Column::Status.ne(proposal::PROPOSED))
        .into_tuple::<(Uuid, Uuid)>()
        .all(db)
        .await?
    {
        exclude.entry(task).or_default().push(who);
    }

    let volunteers = load_volunteers(db, tz, &tasks, now).await?;
    let visits: Vec<assign::Visit> = tasks
        .iter()
        .map(|t| {
            let f = &families[&t.family_id];
            assign::Visit {
                id: t.id,
                family: t.family_id,
                window: Window::new(t.window_start, t.window_end),
                at: Point::new(f.lat.unwrap_or_default(), f.lng.unwrap_or_default()),
                skills: t.required_skills.0.clone(),
                places: Ord::max(t.volunteers_needed - t.claims_count, 0) as u32,
                exclude: exclude.remove(&t.id).unwrap_or_default(),
            }
        })
        .collect();
    let problem = Problem {
        visits: &visits,
        volunteers: &volunteers,
        weights: cfg.weights,
        tz,
    };
    let load_ms = started.elapsed().as_millis() as u64;
    let computing = std::time::Instant::now();
    let out = assign::propose(&problem);
    let compute_ms = computing.elapsed().as_millis() as u64;
    let writing = std::time::Instant::now();

    let region_of: HashMap<Uuid, Uuid> = tasks
        .iter()
        .map(|t| (t.id, families[&t.family_id].region_id))
        .collect();
    let rows: Vec<proposal::ActiveModel> = out
        .proposals
        .iter()
        .map(|p| proposal::ActiveModel {
            id: Set(Uuid::now_v7()),
            task_id: Set(p.visit),
            volunteer_id: Set(p.volunteer),
            region_id: Set(region_of[&p.visit]),
            status: Set(proposal::PROPOSED.into()),
            reason: Set(p.reason.text()),
            distance_km: Set(p.reason.distance_km),
            past_visits: Set(p.reason.past_visits as i32),
            week_load: Set(p.reason.week_load as i32),
            week_capacity: Set(p.reason.week_capacity as i32),
            claim_id: Set(None),
            applied_by: Set(None),
            applied_at: Set(None),
            answered_at: Set(None),
            created_at: Set(now),
        })
        .collect();
    let ids: Vec<(Uuid, Uuid)> = rows
        .iter()
        .map(|r| (r.id.clone().unwrap(), r.region_id.clone().unwrap()))
        .collect();
    let txn = db.begin().await?;
    for chunk in task_ids.chunks(500) {
        proposal::Entity::delete_many()
            .filter(proposal::Column::TaskId.is_in(chunk.iter().copied()))
            .filter(proposal::Column::Status.eq(proposal::PROPOSED))
            .exec(&txn)
            .await?;
    }
    for chunk in rows.chunks(500) {
        proposal::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;

    // Regions applying automatically: each proposal in its own transaction; one that no
    // longer fits stays proposed for a coordinator to see.
    let auto = auto_regions(db, ids.iter().map(|i| i.1)).await?;
    let mut applied = 0;
    for (id, region) in ids {
        if auto.contains(&region) {
            let txn = db.begin().await?;
            match apply_in(&txn, tz, id, None, now).await {
                Ok(_) => {
                    txn.commit().await?;
                    applied += 1;
                }
                Err(e) => {
                    txn.rollback().await?;
                    tracing::info!(proposal = %id, error = %e, "automatic apply skipped");
                }
            }
        }
    }
    Ok(RunStats {
        visits: visits.len(),
        volunteers: volunteers.len(),
        proposed: out.proposals.len(),
        unfilled: out.unfilled.iter().map(|u| u.1).sum(),
        applied,
        load_ms,
        compute_ms,
        write_ms: writing.elapsed().as_millis() as u64,
    })
}

async fn region_paths(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    let ids: HashSet<Uuid> = ids.into_iter().collect();
    Ok(region::Entity::find()
        .select_only()
        .columns([region::Column::Id, region::Column::Path])
        .filter(region::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// Of these regions, those applying proposals automatically: the nearest region up the
/// tree with a setting decides.
pub async fn auto_regions(
    db: &impl ConnectionTrait,
    regions: impl IntoIterator<Item = Uuid>,
) -> Result<HashSet<Uuid>, DbErr> {
    let paths = region_paths(db, regions).await?;
    let settings = assignment_setting::Entity::find().all(db).await?;
    if settings.is_empty() {
        return Ok(HashSet::new());
    }
    let setting_paths = region_paths(db, settings.iter().map(|s| s.region_id)).await?;
    let by_path: Vec<(String, bool)> = settings
        .iter()
        .filter_map(|s| Some((setting_paths.get(&s.region_id)?.clone(), s.auto_apply)))
        .collect();
    Ok(paths
        .into_iter()
        .filter(|(_, path)| {
            by_path
                .iter()
                .filter(|(p, _)| path.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .is_some_and(|(_, auto)| *auto)
        })
        .map(|(id, _)| id)
        .collect())
}

/// The approved volunteers with a home on record, with what they hold around the visits'
/// weeks and this month, their leave, and how often they visited these families.
async fn load_volunteers(
    db: &impl ConnectionTrait,
    tz: Tz,
    tasks: &[visit_task::Model],
    now: DateTime<Utc>,
) -> Result<Vec<assign::Volunteer>, DbErr> {
    let vols = volunteer::Entity::find()
        .filter(volunteer::Column::Status.eq(VolunteerStatus::Approved))
        .filter(volunteer::Column::HomeLat.is_not_null())
        .filter(volunteer::Column::HomeLng.is_not_null())
        .filter(volunteer::Column::WeeklyCapacity.gt(0))
        .all(db)
        .await?;
    let today = now.with_timezone(&tz).date_naive();
    let month_start = local_midnight(tz, today.with_day(1).unwrap_or(today));
    let month_end = local_midnight(
        tz,
        NaiveDate::from_ymd_opt(
            today.year() + i32::from(today.month() == 12),
            today.month() % 12 + 1,
            1,
        )
        .unwrap_or(today),
    );
    let last = tasks.iter().map(|t| t.window_end).max().unwrap_or(now);
    let from = Ord::min(month_start, now - Duration::days(HELD_LOOKBACK_DAYS));
    let to = last + Duration::days(8);

    // Held: live claims on visits around the weeks that matter.
    let held: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = task_claim::Entity::find()
        .select_only()
        .column(task_claim::Column::VolunteerId)
        .column_as(
            Expr::col((visit_task::Entity, visit_task::Column::WindowStart)),
            "s",
        )
        .column_as(
            Expr::col((visit_task::Entity, visit_task::Column::WindowEnd)),
            "e",
        )
        .join(
            sea_orm::JoinType::InnerJoin,
            task_claim::Entity::belongs_to(visit_task::Entity)
                .from(task_claim::Column::TaskId)
                .to(visit_task::Column::Id)
                .into(),
        )
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .filter(
            Expr::col((visit_task::Entity, visit_task::Column::Status))
                .is_not_in([status::CANCELLED, status::MISSED]),
        )
        .filter(Expr::col((visit_task::Entity, visit_task::Column::WindowEnd)).gt(from))
        .filter(Expr::col((visit_task::Entity, visit_task::Column::WindowStart)).lt(to))
        .into_tuple()
        .all(db)
        .await?;
    let mut held_by: HashMap<Uuid, Vec<Window>> = HashMap::new();
    for (who, s, e) in held {
        held_by.entry(who).or_default().push(Window::new(s, e));
    }

    // Visits done, per volunteer and family, for the families concerned.
    let families: HashSet<Uuid> = tasks.iter().map(|t| t.family_id).collect();
    let done: Vec<(Uuid, Uuid)> = task_claim::Entity::find()
        .select_only()
        .column(task_claim::Column::VolunteerId)
        .column_as(
            Expr::col((visit_task::Entity, visit_task::Column::FamilyId)),
            "f",
        )
        .join(
            sea_orm::JoinType::InnerJoin,
            task_claim::Entity::belongs_to(visit_task::Entity)
                .from(task_claim::Column::TaskId)
                .to(visit_task::Column::Id)
                .into(),
        )
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .filter(
            Expr::col((visit_task::Entity, visit_task::Column::Status))
                .is_in([status::REPORTED, status::CONFIRMED]),
        )
        .filter(
            Expr::col((visit_task::Entity, visit_task::Column::FamilyId))
                .is_in(families.into_iter().collect::<Vec<_>>()),
        )
        .into_tuple()
        .all(db)
        .await?;
    let mut history: HashMap<Uuid, HashMap<Uuid, u32>> = HashMap::new();
    for (who, fam) in done {
        *history.entry(who).or_default().entry(fam).or_default() += 1;
    }

    let mut leave: HashMap<Uuid, Vec<(NaiveDate, NaiveDate)>> = HashMap::new();
    for l in volunteer_leave::Entity::find()
        .filter(
            Condition::any()
                .add(volunteer_leave::Column::EndDate.is_null())
                .add(volunteer_leave::Column::EndDate.gte(today)),
        )
        .all(db)
        .await?
    {
        leave
            .entry(l.volunteer_id)
            .or_default()
            .push((l.start_date, l.end_date.unwrap_or(NaiveDate::MAX)));
    }

    Ok(vols
        .into_iter()
        .map(|v| {
            let held = held_by.remove(&v.user_id).unwrap_or_default();
            let month_held = held
                .iter()
                .filter(|w| w.start >= month_start && w.start < month_end)
                .count() as u32;
            assign::Volunteer {
                id: v.user_id,
                skills: v.skills.0.clone(),
                home: Point::new(
                    v.home_lat.unwrap_or_default(),
                    v.home_lng.unwrap_or_default(),
                ),
                max_distance_km: v.max_distance_km,
                weekly_capacity: Ord::max(v.weekly_capacity, 0) as u32,
                weekdays: assign::weekdays_of(&v.availability),
                leave: leave.remove(&v.id).unwrap_or_default(),
                held,
                month_held,
                history: history.remove(&v.user_id).unwrap_or_default(),
            }
        })
        .collect())
}

/// Applies a proposal inside the caller's transaction: the volunteer takes a place on the
/// visit (a claim, the rules of a claim checked again) and is told. `by`: the coordinator,
/// none for a region applying automatically.
pub async fn apply_in(
    txn: &impl ConnectionTrait,
    tz: Tz,
    id: Uuid,
    by: Option<Uuid>,
    now: DateTime<Utc>,
) -> ApiResult<proposal::Model> {
    let p = proposal::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("分配建议"))?;
    if p.status != proposal::PROPOSED {
        return Err(ApiError::state(
            "proposal_not_open",
            p.status.clone(),
            "该建议已处理过",
        ));
    }
    let user = p.volunteer_id;
    lock_volunteer(txn, user).await?;
    let v = volunteer::Entity::find()
        .filter(volunteer::Column::UserId.eq(user))
        .one(txn)
        .await?
        .filter(|v| v.status == VolunteerStatus::Approved)
        .ok_or_else(|| ApiError::conflict("volunteer_unavailable", "该志愿者当前不能接受安排"))?;
    let task = visit_task::Entity::find_by_id(p.task_id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("走访"))?;
    let fam = family::Entity::find_by_id(task.family_id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("走访"))?;
    if task.window_end <= now {
        return Err(ApiError::state(
            "visit_window_passed",
            task.status.clone(),
            "这次走访的时间已过",
        ));
    }
    let on_leave = volunteer_leave::Entity::find()
        .filter(volunteer_leave::Column::VolunteerId.eq(v.id))
        .all(txn)
        .await?
        .into_iter()
        .any(|l| {
            let from = local_midnight(tz, l.start_date);
            let to = l.end_date.map_or(DateTime::<Utc>::MAX_UTC, |d| {
                local_midnight(tz, d + Duration::days(1))
            });
            task.window_start < to && from < task.window_end
        });
    if on_leave {
        return Err(ApiError::conflict(
            "volunteer_on_leave",
            "该志愿者在走访期间请假",
        ));
    }
    let window = Window::new(task.window_start, task.window_end);
    if !assign::on_their_days(assign::weekdays_of(&v.availability), window, tz) {
        return Err(ApiError::conflict(
            "proposal_no_longer_fits",
            "这次走访不在该志愿者可走访的日子",
        ));
    }
    let held = held_visits(txn, user, now - Duration::days(HELD_LOOKBACK_DAYS)).await?;
    if let Err(r) = eligibility::check(&taker_of(&v), &held, &offer_of(&task, &fam), tz) {
        return Err(ApiError::conflict(
            "proposal_no_longer_fits",
            format!("情况已有变化，该志愿者不能再接这次走访（{r:?}）"),
        ));
    }
    let existing = task_claim::Entity::find()
        .filter(task_claim::Column::TaskId.eq(task.id))
        .filter(task_claim::Column::VolunteerId.eq(user))
        .one(txn)
        .await?;
    let Some(claim) = take_place(txn, &task, existing, user, now).await? else {
        return Err(ApiError::state(
            "visit_full",
            task.status.clone(),
            "这次走访已有足够的志愿者",
        ));
    };
    let mut row: proposal::ActiveModel = p.into();
    row.status = Set(proposal::APPLIED.into());
    row.claim_id = Set(Some(claim.id));
    row.applied_by = Set(by);
    row.applied_at = Set(Some(now));
    let p = row.update(txn).await?;
    audit::record(
        txn,
        by,
        "apply_proposal",
        "visit_task",
        Some(task.id),
        json!({"proposal": p.id, "volunteer": user, "claim": claim.id}),
    )
    .await?;
    // No family details: the message may show on a locked screen.
    let date = task.window_start.with_timezone(&tz).date_naive();
    notification::ActiveModel::pending(
        user,
        TEMPLATE_VISIT_ASSIGNED,
        json!({"task_id": task.id, "date": date.to_string(), "proposal_id": p.id}),
        format!("{TEMPLATE_VISIT_ASSIGNED}:{}:{user}", task.id),
        now,
        now,
    )
    .insert(txn)
    .await?;
    Ok(p)
}

/// Takes back what a volunteer holds or is proposed for in `[from, to)` (live visits whose
/// window has not ended), inside the caller's transaction: their claims are released (by
/// `by`), their proposals withdrawn. Returns the visits, to propose again.
pub async fn take_back_in(
    txn: &impl ConnectionTrait,
    user: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<Vec<Uuid>> {
    lock_volunteer(txn, user).await?;
    let claims = task_claim::Entity::find()
        .filter(task_claim::Column::VolunteerId.eq(user))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .filter(
            task_claim::Column::TaskId.in_subquery(
                Query::select()
                    .column(visit_task::Column::Id)
                    .from(visit_task::Entity)
                    .and_where(visit_task::Column::Status.is_in([status::OPEN, status::CLAIMED]))
                    .and_where(visit_task::Column::WindowEnd.gt(Ord::max(from, now)))
                    .and_where(visit_task::Column::WindowStart.lt(to))
                    .to_owned(),
            ),
        )
        .all(txn)
        .await?;
    let mut tasks = Vec::new();
    for c in claims {
        let task = visit_task::Entity::find_by_id(c.task_id)
            .one(txn)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        crate::api::visits::release_in(txn, c, &task, by, now).await?;
        tasks.push(task.id);
    }
    // Their proposals for visits in the period, whatever their state short of an answer.
    let in_period = Query::select()
        .column(visit_task::Column::Id)
        .from(visit_task::Entity)
        .and_where(visit_task::Column::WindowEnd.gt(Ord::max(from, now)))
        .and_where(visit_task::Column::WindowStart.lt(to))
        .to_owned();
    proposal::Entity::update_many()
        .col_expr(proposal::Column::Status, Expr::value(proposal::WITHDRAWN))
        .col_expr(proposal::Column::AnsweredAt, Expr::value(now))
        .filter(proposal::Column::VolunteerId.eq(user))
        .filter(proposal::Column::Status.is_in([
            proposal::PROPOSED,
            proposal::APPLIED,
            proposal::ACCEPTED,
        ]))
        .filter(proposal::Column::TaskId.in_subquery(in_period))
        .exec(txn)
        .await?;
    Ok(tasks)
}

/// Withdraws a volunteer's open proposals for visits on none of their new `weekdays`
/// (bits as `assign::weekdays_of`), inside the caller's transaction, so that a coordinator
/// cannot apply one before the next run. Returns the visits, to propose again.
pub async fn withdraw_off_days(
    txn: &impl ConnectionTrait,
    tz: Tz,
    user: Uuid,
    weekdays: u8,
    now: DateTime<Utc>,
) -> ApiResult<Vec<Uuid>> {
    let open: Vec<(Uuid, Uuid)> = proposal::Entity::find()
        .select_only()
        .columns([proposal::Column::Id, proposal::Column::TaskId])
        .filter(proposal::Column::VolunteerId.eq(user))
        .filter(proposal::Column::Status.eq(proposal::PROPOSED))
        .into_tuple()
        .all(txn)
        .await?;
    let off_days: HashSet<Uuid> = visit_task::Entity::find()
        .select_only()
        .columns([
            visit_task::Column::Id,
            visit_task::Column::WindowStart,
            visit_task::Column::WindowEnd,
        ])
        .filter(visit_task::Column::Id.is_in(open.iter().map(|p| p.1)))
        .into_tuple::<(Uuid, DateTime<Utc>, DateTime<Utc>)>()
        .all(txn)
        .await?
        .into_iter()
        .filter(|(_, start, end)| !assign::on_their_days(weekdays, Window::new(*start, *end), tz))
        .map(|(id, _, _)| id)
        .collect();
    let (ids, tasks): (Vec<Uuid>, Vec<Uuid>) = open
        .into_iter()
        .filter(|(_, task)| off_days.contains(task))
        .unzip();
    if !ids.is_empty() {
        proposal::Entity::update_many()
            .col_expr(proposal::Column::Status, Expr::value(proposal::WITHDRAWN))
            .col_expr(proposal::Column::AnsweredAt, Expr::value(now))
            .filter(proposal::Column::Id.is_in(ids))
            .exec(txn)
            .await?;
    }
    Ok(tasks)
}

/// The volunteer role's grants of a user, for marking them as left.
pub async fn drop_volunteer_role(txn: &impl ConnectionTrait, user: Uuid) -> Result<(), DbErr> {
    entity::role_grant::Entity::delete_many()
        .filter(entity::role_grant::Column::UserId.eq(user))
        .filter(entity::role_grant::Column::Role.eq(Role::Volunteer))
        .exec(txn)
        .await?;
    Ok(())
}

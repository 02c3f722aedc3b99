//! 分配: proposals of who should hold the visits nobody claimed. Coordinators list them in
//! their subtree with the reason for each, apply them one by one or in bulk, set a region
//! to apply them automatically, and mark a volunteer as left; volunteers accept or decline
//! what they were given and declare leave. A decline or a leave proposes someone else.
//!
//! The work is in [`crate::assignments`]; the proposals themselves are made by the
//! `assign` job (or `POST /assignments/run`).

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{
    FamilyCategory, VolunteerStatus, app_user, assignment_proposal as proposal, assignment_setting,
    family, region, task_claim, visit_task, volunteer, volunteer_leave,
};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use scheduler::assign;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    Page, Paging, Tag, in_scope,
    visits::{feed_catches_up, feed_sees, path_id},
    volunteers,
};
use crate::{
    app::AppState,
    assignments::{self, Due, RunStats},
    audit,
    auth::{Auth, Manager, Scope},
    eligibility::local_midnight,
    error::{ApiError, ApiResult},
    input::{Input, Validate, opt_text, text},
};

pub struct Api(pub Arc<AppState>);

/// Bulk applies take at most this many proposals.
pub const MAX_BULK: usize = 200;

/// One proposal, as a coordinator reviews it. The family is shown as its category and
/// village only.
#[derive(Object, Debug)]
pub struct ProposalView {
    pub id: Uuid,
    pub visit_id: Uuid,
    pub volunteer_user_id: Uuid,
    pub volunteer_name: String,
    /// proposed, applied, accepted, declined, withdrawn.
    pub status: String,
    /// Why them: "走访过该家庭3次；1.2公里；当周2/4".
    pub reason: String,
    pub distance_km: f64,
    pub past_visits: i32,
    pub week_load: i32,
    pub week_capacity: i32,
    pub kind: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub category: FamilyCategory,
    pub village: String,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub applied_at: Option<DateTime<Utc>>,
}

#[derive(Object, Debug)]
pub struct AssignmentRun {
    /// Visits with open places considered.
    pub visits: u64,
    pub volunteers: u64,
    pub proposed: u64,
    /// Places nobody can fill: for a coordinator to arrange.
    pub unfilled: u64,
    /// Applied at once in regions set to apply automatically.
    pub applied: u64,
}

impl From<RunStats> for AssignmentRun {
    fn from(s: RunStats) -> Self {
        Self {
            visits: s.visits as u64,
            volunteers: s.volunteers as u64,
            proposed: s.proposed as u64,
            unfilled: s.unfilled as u64,
            applied: s.applied as u64,
        }
    }
}

#[derive(Object, Deserialize, Debug)]
#[oai(skip_serializing_if_is_none)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Only this region's subtree (default: all of mine).
    pub region_id: Option<Uuid>,
}

impl Validate for RunRequest {}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BulkApply {
    /// The proposals; all are applied or none.
    pub ids: Vec<Uuid>,
}

impl Validate for BulkApply {
    fn validate(&self) -> ApiResult<()> {
        if self.ids.is_empty() || self.ids.len() > MAX_BULK {
            return Err(ApiError::field(
                "ids",
                format!("ids 应包含 1 到 {MAX_BULK} 条建议"),
            ));
        }
        Ok(())
    }
}

#[derive(Object, Debug)]
pub struct AppliedProposals {
    pub applied: Vec<ProposalView>,
}

#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AutoApply {
    /// Apply this region's proposals (and its subregions', unless they say otherwise)
    /// without review.
    pub auto_apply: bool,
}

impl Validate for AutoApply {}

#[derive(Object, Debug)]
pub struct AutoApplyView {
    pub region_id: Uuid,
    pub auto_apply: bool,
}

#[derive(Object, Deserialize, Debug, Default)]
#[oai(skip_serializing_if_is_none)]
#[serde(deny_unknown_fields)]
pub struct DeclineAssignment {
    /// Why (kept for the coordinator).
    pub reason: Option<String>,
}

impl Validate for DeclineAssignment {
    fn validate(&self) -> ApiResult<()> {
        opt_text("reason", self.reason.as_deref(), 200)
    }
}

#[derive(Object, Deserialize, Debug)]
#[oai(skip_serializing_if_is_none)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    /// First day away (local date).
    pub start_date: NaiveDate,
    /// Last day away, included.
    pub end_date: NaiveDate,
    pub reason: Option<String>,
}

impl Validate for LeaveRequest {
    fn validate(&self) -> ApiResult<()> {
        if self.end_date < self.start_date {
            return Err(ApiError::field("end_date", "结束日期不能早于开始日期"));
        }
        if (self.end_date - self.start_date).num_days() > 366 {
            return Err(ApiError::field("end_date", "请假最长一年"));
        }
        opt_text("reason", self.reason.as_deref(), 200)
    }
}

/// When a volunteer can visit, as they say it themselves.
#[derive(Object, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityChange {
    /// The weekdays they can visit on, 1 (Monday) to 7 (Sunday).
    pub weekdays: Option<Vec<u8>>,
    /// Visits a week at most (0: none for now).
    pub weekly_capacity: Option<i32>,
}

impl Validate for AvailabilityChange {
    fn validate(&self) -> ApiResult<()> {
        if let Some(days) = &self.weekdays {
            volunteers::check_weekdays(days)?;
        }
        if let Some(c) = self.weekly_capacity {
            volunteers::check_capacity(c)?;
        }
        Ok(())
    }
}

#[derive(Object, Debug)]
pub struct AvailabilityView {
    /// 1 (Monday) to 7; every day when never set.
    pub weekdays: Vec<u8>,
    pub weekly_capacity: i32,
}

fn availability_view(v: &volunteer::Model) -> AvailabilityView {
    AvailabilityView {
        weekdays: assign::weekday_numbers(assign::weekdays_of(&v.availability)),
        weekly_capacity: v.weekly_capacity,
    }
}

#[derive(Object, Deserialize, Debug)]
#[oai(skip_serializing_if_is_none)]
#[serde(deny_unknown_fields)]
pub struct LeftRequest {
    /// Why (kept in the audit log).
    pub reason: String,
    /// From when (default today).
    pub date: Option<NaiveDate>,
}

impl Validate for LeftRequest {
    fn validate(&self) -> ApiResult<()> {
        text("reason", &self.reason, 1, 200)
    }
}

#[derive(Object, Debug)]
pub struct LeaveView {
    pub id: Uuid,
    /// leave or left.
    pub kind: String,
    pub start_date: NaiveDate,
    #[oai(skip_serializing_if_is_none)]
    pub end_date: Option<NaiveDate>,
    /// Visits taken back and proposed to others.
    pub released_visits: Vec<Uuid>,
    pub reproposed: u64,
}

/// Views of proposals, with the visits, villages and names they need.
async fn views(
    db: &impl sea_orm::ConnectionTrait,
    rows: Vec<proposal::Model>,
) -> ApiResult<Vec<ProposalView>> {
    let tasks: HashMap<Uuid, visit_task::Model> = visit_task::Entity::find()
        .filter(visit_task::Column::Id.is_in(rows.iter().map(|r| r.task_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let cats: HashMap<Uuid, FamilyCategory> = family::Entity::find()
        .select_only()
        .columns([family::Column::Id, family::Column::Category])
        .filter(family::Column::Id.is_in(tasks.values().map(|t| t.family_id)))
        .into_tuple::<(Uuid, FamilyCategory)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let villages = crate::visits::village_names(db, rows.iter().map(|r| r.region_id)).await?;
    let names: HashMap<Uuid, String> = app_user::Entity::find()
        .select_only()
        .columns([app_user::Column::Id, app_user::Column::Name])
        .filter(app_user::Column::Id.is_in(rows.iter().map(|r| r.volunteer_id)))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let t = tasks.get(&r.task_id)?;
            Some(ProposalView {
                id: r.id,
                visit_id: r.task_id,
                volunteer_user_id: r.volunteer_id,
                volunteer_name: names.get(&r.volunteer_id).cloned().unwrap_or_default(),
                status: r.status,
                reason: r.reason,
                distance_km: r.distance_km,
                past_visits: r.past_visits,
                week_load: r.week_load,
                week_capacity: r.week_capacity,
                kind: t.kind.clone(),
                window_start: t.window_start,
                window_end: t.window_end,
                category: *cats.get(&t.family_id)?,
                village: villages.get(&r.region_id).cloned().unwrap_or_default(),
                created_at: r.created_at,
                applied_at: r.applied_at,
            })
        })
        .collect())
}

/// A proposal whose family lies in the caller's scope (else 404).
async fn proposal_in_scope(
    db: &impl sea_orm::ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> ApiResult<proposal::Model> {
    let p = proposal::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("分配建议"))?;
    let path = region::Entity::find_by_id(p.region_id)
        .one(db)
        .await?
        .map(|r| r.path)
        .unwrap_or_default();
    if !scope.contains(&path) {
        return Err(ApiError::NotFound("分配建议"));
    }
    Ok(p)
}

/// The caller's own applied proposal.
async fn my_proposal(
    db: &impl sea_orm::ConnectionTrait,
    user: Uuid,
    id: Uuid,
) -> ApiResult<proposal::Model> {
    let p = proposal::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|p| p.volunteer_id == user && p.status != proposal::PROPOSED)
        .ok_or(ApiError::NotFound("分配建议"))?;
    Ok(p)
}

#[OpenApi(tag = "Tag::Assignments")]
impl Api {
    /// Propose holders now for the visits due in my regions (or one region's subtree):
    /// open visits nobody claimed within `assign.claim_hours`, starting within
    /// `assign.lead_days`. Proposals nobody acted on are made afresh.
    #[oai(path = "/assignments/run", method = "post")]
    async fn run(&self, auth: Manager, body: Input<RunRequest>) -> ApiResult<Json<AssignmentRun>> {
        let state = &self.0;
        let mut scope = auth.0.manager_scope()?;
        if let Some(r) = body.0.region_id {
            let reg = super::regions::find_in_scope(&state.db, &scope, r)
                .await
                .map_err(|_| ApiError::field("region_id", "地区不存在或不在您的管辖范围内"))?;
            scope = Scope::Subtrees(vec![reg.path]);
        }
        let started = Utc::now();
        let stats = assignments::run(
            &state.db,
            &state.config.assign,
            state.tz,
            Due::In(&scope),
            Utc::now(),
        )
        .await?;
        audit::record(
            &state.db,
            Some(auth.0.user_id),
            "run_assignment",
            "region",
            body.0.region_id,
            json!({"proposed": stats.proposed, "applied": stats.applied}),
        )
        .await?;
        if stats.applied > 0 {
            feed_catches_up(state, started).await;
        }
        Ok(Json(stats.into()))
    }

    /// Proposals in my regions, newest first, with the reason for each.
    #[oai(path = "/assignments/proposals", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        /// proposed (default), applied, accepted, declined, withdrawn.
        status: Query<Option<String>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<ProposalView>>> {
        let scope = auth.0.manager_scope()?;
        let status = status.0.unwrap_or_else(|| proposal::PROPOSED.into());
        if ![
            proposal::PROPOSED,
            proposal::APPLIED,
            proposal::ACCEPTED,
            proposal::DECLINED,
            proposal::WITHDRAWN,
        ]
        .contains(&status.as_str())
        {
            return Err(ApiError::field("status", "status 取值无效"));
        }
        let paging = Paging::new(page.0, per_page.0)?;
        let select = proposal::Entity::find()
            .filter(in_scope(&scope, proposal::Column::RegionId))
            .filter(proposal::Column::Status.eq(status))
            .order_by_desc(proposal::Column::CreatedAt)
            .order_by_asc(proposal::Column::Id);
        let (rows, total) = paging.fetch(&self.0.db, select).await?;
        Ok(Json(paging.wrap(views(&self.0.db, rows).await?, total)))
    }

    /// Apply a proposal: the volunteer holds the visit (as if they had claimed it) and is
    /// asked to accept. 409 when it no longer fits (`proposal_not_open`, `visit_full`,
    /// `proposal_no_longer_fits`, `volunteer_on_leave`…).
    #[oai(path = "/assignments/proposals/:id/apply", method = "post")]
    async fn apply(&self, auth: Manager, id: Path<String>) -> ApiResult<Json<ProposalView>> {
        let id = path_id("id", &id.0)?;
        let state = &self.0;
        let scope = auth.0.manager_scope()?;
        proposal_in_scope(&state.db, &scope, id).await?;
        let txn = state.db.begin().await?;
        let p = match assignments::apply_in(&txn, state.tz, id, Some(auth.0.user_id), Utc::now())
            .await
        {
            Ok(p) => p,
            Err(e) => {
                txn.rollback().await?;
                return Err(e);
            }
        };
        txn.commit().await?;
        feed_sees(state, &[p.task_id], &[p.volunteer_id]).await;
        Ok(Json(views(&state.db, vec![p]).await?.remove(0)))
    }

    /// Apply several proposals at once: all of them, or none when one cannot be applied
    /// (422 naming it, `ids[i]`, when it is unknown or not mine to apply; 409 as for one
    /// alone when it no longer fits, the message saying which).
    #[oai(path = "/assignments/proposals/apply", method = "post")]
    async fn apply_bulk(
        &self,
        auth: Manager,
        body: Input<BulkApply>,
    ) -> ApiResult<Json<AppliedProposals>> {
        let state = &self.0;
        let scope = auth.0.manager_scope()?;
        let ids = body.0.ids;
        let mut seen = std::collections::HashSet::new();
        let mut order = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let field = format!("ids[{i}]");
            if !seen.insert(*id) {
                return Err(ApiError::field(field, "重复的建议"));
            }
            let p = proposal_in_scope(&state.db, &scope, *id)
                .await
                .map_err(|_| {
                    ApiError::field(field.clone(), "分配建议不存在或不在您的管辖范围内")
                })?;
            order.push((p.volunteer_id, i, *id));
        }
        // One volunteer's lock at a time, in one order, so two bulk applies cannot deadlock.
        order.sort();
        let now = Utc::now();
        let txn = state.db.begin().await?;
        let mut applied = Vec::with_capacity(order.len());
        for (_, i, id) in order {
            match assignments::apply_in(&txn, state.tz, id, Some(auth.0.user_id), now).await {
                Ok(p) => applied.push((i, p)),
                Err(e) => {
                    txn.rollback().await?;
                    // The same status as applying it alone; the message says which.
                    let which = |m: &str| format!("第 {} 条建议无法应用：{m}", i + 1);
                    return Err(match e {
                        ApiError::Conflict { code, message } => {
                            ApiError::conflict(code, which(&message))
                        }
                        ApiError::State {
                            code,
                            message,
                            state,
                        } => ApiError::state(code, state, which(&message)),
                        e @ ApiError::Internal(_) => e,
                        e => ApiError::field(format!("ids[{i}]"), which(&e.to_string())),
                    });
                }
            }
        }
        txn.commit().await?;
        let tasks: Vec<Uuid> = applied.iter().map(|a| a.1.task_id).collect();
        let volunteers: Vec<Uuid> = applied.iter().map(|a| a.1.volunteer_id).collect();
        feed_sees(state, &tasks, &volunteers).await;
        applied.sort_by_key(|a| a.0);
        let rows = applied.into_iter().map(|a| a.1).collect();
        Ok(Json(AppliedProposals {
            applied: views(&state.db, rows).await?,
        }))
    }

    /// Apply this region's proposals automatically (true) or leave them for review.
    /// Subregions follow unless they have a setting of their own.
    #[oai(path = "/assignments/regions/:id/auto", method = "put")]
    async fn set_auto(
        &self,
        auth: Manager,
        id: Path<String>,
        body: Input<AutoApply>,
    ) -> ApiResult<Json<AutoApplyView>> {
        let id = path_id("id", &id.0)?;
        let state = &self.0;
        let scope = auth.0.manager_scope()?;
        super::regions::find_in_scope(&state.db, &scope, id).await?;
        let txn = state.db.begin().await?;
        assignment_setting::Entity::insert(assignment_setting::ActiveModel {
            region_id: Set(id),
            auto_apply: Set(body.0.auto_apply),
            updated_by: Set(auth.0.user_id),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(assignment_setting::Column::RegionId)
                .update_columns([
                    assignment_setting::Column::AutoApply,
                    assignment_setting::Column::UpdatedBy,
                    assignment_setting::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(&txn)
        .await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "set_auto_apply",
            "region",
            Some(id),
            json!({"auto_apply": body.0.auto_apply}),
        )
        .await?;
        txn.commit().await?;
        Ok(Json(AutoApplyView {
            region_id: id,
            auto_apply: body.0.auto_apply,
        }))
    }

    /// Mark a volunteer (profile id) as having left: they can take no more visits, and the
    /// visits they hold from `date` on are proposed to others.
    #[oai(path = "/assignments/volunteers/:id/left", method = "post")]
    async fn left(
        &self,
        auth: Manager,
        id: Path<String>,
        body: Input<LeftRequest>,
    ) -> ApiResult<Json<LeaveView>> {
        let id = path_id("id", &id.0)?;
        let state = &self.0;
        let scope = auth.0.manager_scope()?;
        let v = volunteer::Entity::find_by_id(id)
            .one(&state.db)
            .await?
            .ok_or(ApiError::NotFound("志愿者"))?;
        super::regions::find_in_scope(&state.db, &scope, v.region_id)
            .await
            .map_err(|_| ApiError::NotFound("志愿者"))?;
        let today = state.today();
        let from = body.0.date.unwrap_or(today);
        if from < today - Duration::days(366) {
            return Err(ApiError::field("date", "日期过早"));
        }
        let now = Utc::now();
        let txn = state.db.begin().await?;
        let leave = volunteer_leave::ActiveModel {
            id: Set(Uuid::now_v7()),
            volunteer_id: Set(v.id),
            kind: Set(volunteer_leave::LEFT.into()),
            start_date: Set(from),
            end_date: Set(None),
            reason: Set(body.0.reason.trim().to_string()),
            created_by: Set(auth.0.user_id),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let released = assignments::take_back_in(
            &txn,
            v.user_id,
            local_midnight(state.tz, from),
            // For good; a date every database compares as a date.
            now + Duration::days(100 * 366),
            auth.0.user_id,
            now,
        )
        .await?;
        if v.status == VolunteerStatus::Approved {
            assignments::drop_volunteer_role(&txn, v.user_id).await?;
        }
        let mut row: volunteer::ActiveModel = v.into();
        row.status = Set(VolunteerStatus::Suspended);
        row.updated_at = Set(now);
        let v = row.update(&txn).await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "volunteer_left",
            "volunteer",
            Some(v.id),
            json!({"from": from, "released": released, "reason": leave.reason}),
        )
        .await?;
        txn.commit().await?;
        feed_sees(state, &released, &[v.user_id]).await;
        let reproposed = repropose(&self.0, &released).await;
        Ok(Json(LeaveView {
            id: leave.id,
            kind: leave.kind,
            start_date: leave.start_date,
            end_date: leave.end_date,
            released_visits: released,
            reproposed,
        }))
    }

    /// The visits coordinators assigned me, waiting for my answer.
    #[oai(path = "/me/assignments", method = "get")]
    async fn mine(
        &self,
        auth: Auth,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<ProposalView>>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let select = proposal::Entity::find()
            .filter(proposal::Column::VolunteerId.eq(auth.0.user_id))
            .filter(proposal::Column::Status.eq(proposal::APPLIED))
            .order_by_asc(proposal::Column::AppliedAt)
            .order_by_asc(proposal::Column::Id);
        let (rows, total) = paging.fetch(&self.0.db, select).await?;
        Ok(Json(paging.wrap(views(&self.0.db, rows).await?, total)))
    }

    /// Accept a visit a coordinator assigned me: I am reminded of it like one I claimed,
    /// and the family is told who is coming.
    #[oai(path = "/assignments/proposals/:id/accept", method = "post")]
    async fn accept(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<ProposalView>> {
        let id = path_id("id", &id.0)?;
        let state = &self.0;
        let user = auth.0.user_id;
        let now = Utc::now();
        let txn = state.db.begin().await?;
        let p = my_proposal(&txn, user, id).await?;
        if p.status == proposal::ACCEPTED {
            txn.rollback().await?;
            return Ok(Json(views(&state.db, vec![p]).await?.remove(0)));
        }
        if p.status != proposal::APPLIED {
            txn.rollback().await?;
            return Err(ApiError::state(
                "proposal_not_open",
                p.status,
                "这项安排已不再有效",
            ));
        }
        let task = visit_task::Entity::find_by_id(p.task_id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        let moved = proposal::Entity::update_many()
            .col_expr(proposal::Column::Status, Expr::value(proposal::ACCEPTED))
            .col_expr(proposal::Column::AnsweredAt, Expr::value(now))
            .filter(proposal::Column::Id.eq(p.id))
            .filter(proposal::Column::Status.eq(proposal::APPLIED))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            txn.rollback().await?;
            return Err(ApiError::conflict(
                "proposal_not_open",
                "这项安排已不再有效",
            ));
        }
        crate::notify::produce::claimed(&txn, &state.config.reminders, state.tz, &task, user, now)
            .await?;
        audit::record(
            &txn,
            Some(user),
            "accept_assignment",
            "visit_task",
            Some(task.id),
            json!({"proposal": p.id}),
        )
        .await?;
        txn.commit().await?;
        let p = proposal::Entity::find_by_id(id)
            .one(&state.db)
            .await?
            .ok_or(ApiError::NotFound("分配建议"))?;
        Ok(Json(views(&state.db, vec![p]).await?.remove(0)))
    }

    /// Decline a visit a coordinator assigned me: it is given back and proposed to
    /// someone else.
    #[oai(path = "/assignments/proposals/:id/decline", method = "post")]
    async fn decline(
        &self,
        auth: Auth,
        id: Path<String>,
        body: Input<DeclineAssignment>,
    ) -> ApiResult<Json<ProposalView>> {
        let id = path_id("id", &id.0)?;
        let state = &self.0;
        let user = auth.0.user_id;
        let now = Utc::now();
        let txn = state.db.begin().await?;
        crate::api::visits::lock_volunteer(&txn, user).await?;
        let p = my_proposal(&txn, user, id).await?;
        if p.status != proposal::APPLIED && p.status != proposal::ACCEPTED {
            txn.rollback().await?;
            return Err(ApiError::state(
                "proposal_not_open",
                p.status,
                "这项安排已不再有效",
            ));
        }
        let task = visit_task::Entity::find_by_id(p.task_id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        let claim = task_claim::Entity::find()
            .filter(task_claim::Column::TaskId.eq(task.id))
            .filter(task_claim::Column::VolunteerId.eq(user))
            .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
            .one(&txn)
            .await?;
        if let Some(c) = claim
            && let Err(e) = crate::api::visits::release_in(&txn, c, &task, user, now).await
        {
            txn.rollback().await?;
            return Err(e);
        }
        let applied_by = p.applied_by;
        let mut row: proposal::ActiveModel = p.into();
        row.status = Set(proposal::DECLINED.into());
        row.answered_at = Set(Some(now));
        let p = row.update(&txn).await?;
        crate::notify::produce::declined(&txn, state.tz, &task, p.id, applied_by, now).await?;
        audit::record(
            &txn,
            Some(user),
            "decline_assignment",
            "visit_task",
            Some(task.id),
            json!({"proposal": p.id, "reason": body.0.reason.as_deref().map(str::trim)}),
        )
        .await?;
        txn.commit().await?;
        feed_sees(state, &[task.id], &[user]).await;
        repropose(&self.0, &[task.id]).await;
        Ok(Json(views(&state.db, vec![p]).await?.remove(0)))
    }

    /// The weekdays I can visit on and how many visits a week.
    #[oai(path = "/me/availability", method = "get")]
    async fn my_availability(&self, auth: Auth) -> ApiResult<Json<AvailabilityView>> {
        let v = own_volunteer(&self.0, auth.0.user_id).await?;
        Ok(Json(availability_view(&v)))
    }

    /// Say when I can visit: proposals keep to these weekdays and this many visits a
    /// week. Open proposals to me on other days are withdrawn and made to others at once;
    /// visits I already hold stay mine.
    #[oai(path = "/me/availability", method = "put")]
    async fn set_my_availability(
        &self,
        auth: Auth,
        body: Input<AvailabilityChange>,
    ) -> ApiResult<Json<AvailabilityView>> {
        let state = &self.0;
        let user = auth.0.user_id;
        let b = body.0;
        let v = own_volunteer(state, user).await?;
        let mut row: volunteer::ActiveModel = v.into();
        if let Some(days) = &b.weekdays {
            row.availability = Set(volunteers::availability(days));
        }
        if let Some(c) = b.weekly_capacity {
            row.weekly_capacity = Set(c);
        }
        row.updated_at = Set(Utc::now());
        let txn = state.db.begin().await?;
        let v = row.update(&txn).await?;
        let withdrawn = match &b.weekdays {
            Some(days) => {
                let days = assign::weekday_bits(days.iter().copied());
                assignments::withdraw_off_days(&txn, state.tz, user, days, Utc::now()).await?
            }
            None => Vec::new(),
        };
        audit::record(
            &txn,
            Some(user),
            "update_availability",
            "volunteer",
            Some(v.id),
            json!({"weekdays": b.weekdays, "weekly_capacity": b.weekly_capacity}),
        )
        .await?;
        txn.commit().await?;
        state.feed_takers.remove(&user.to_string());
        repropose(state, &withdrawn).await;
        Ok(Json(availability_view(&v)))
    }

    /// Declare leave: no visits are proposed to me on those days, and the visits I hold on
    /// them are given back and proposed to others.
    #[oai(path = "/me/leave", method = "post")]
    async fn leave(&self, auth: Auth, body: Input<LeaveRequest>) -> ApiResult<Json<LeaveView>> {
        let state = &self.0;
        let user = auth.0.user_id;
        let b = body.0;
        let v = own_volunteer(state, user).await?;
        if b.end_date < state.today() {
            return Err(ApiError::field("end_date", "结束日期已过"));
        }
        let now = Utc::now();
        let txn = state.db.begin().await?;
        let leave = volunteer_leave::ActiveModel {
            id: Set(Uuid::now_v7()),
            volunteer_id: Set(v.id),
            kind: Set(volunteer_leave::LEAVE.into()),
            start_date: Set(b.start_date),
            end_date: Set(Some(b.end_date)),
            reason: Set(b.reason.as_deref().unwrap_or("").trim().to_string()),
            created_by: Set(user),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let released = assignments::take_back_in(
            &txn,
            user,
            local_midnight(state.tz, b.start_date),
            local_midnight(state.tz, b.end_date + Duration::days(1)),
            user,
            now,
        )
        .await?;
        audit::record(
            &txn,
            Some(user),
            "declare_leave",
            "volunteer",
            Some(v.id),
            json!({"from": b.start_date, "to": b.end_date, "released": released}),
        )
        .await?;
        txn.commit().await?;
        feed_sees(state, &released, &[user]).await;
        let reproposed = repropose(&self.0, &released).await;
        Ok(Json(LeaveView {
            id: leave.id,
            kind: leave.kind,
            start_date: leave.start_date,
            end_date: leave.end_date,
            released_visits: released,
            reproposed,
        }))
    }
}

/// The caller's own volunteer profile; 403 for anyone else.
async fn own_volunteer(state: &AppState, user: Uuid) -> ApiResult<volunteer::Model> {
    volunteer::Entity::find()
        .filter(volunteer::Column::UserId.eq(user))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::Forbidden("仅限志愿者".into()))
}

/// Proposes someone else for visits given back. The change is committed already: a
/// failure is logged, and the next run proposes.
pub async fn repropose(state: &AppState, tasks: &[Uuid]) -> u64 {
    if tasks.is_empty() {
        return 0;
    }
    let started = Utc::now();
    match assignments::run(
        &state.db,
        &state.config.assign,
        state.tz,
        Due::Only(tasks),
        started,
    )
    .await
    {
        Ok(s) => {
            if s.applied > 0 {
                feed_catches_up(state, started).await;
            }
            s.proposed as u64
        }
        Err(e) => {
            tracing::error!(error = %e, "proposing again failed; the next run will");
            0
        }
    }
}

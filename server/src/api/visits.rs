//! 走访: what a volunteer sees of the visits and how they take them — the feed of open
//! visits they can take, claiming and giving back, a coordinator releasing a claim, one
//! visit's details, and the visits one holds.
//!
//! Who may take what is decided in [`crate::eligibility`]; this module loads the rows, asks
//! there, and writes. A claim is exactly-once under contention: one transaction takes the
//! claiming volunteer's row lock (so their own claims are checked one at a time against
//! what they hold), checks again, and moves the visit's count with a conditional UPDATE
//! that only succeeds while the visit is open and not full; the claim row is written in the
//! same transaction.
//!
//! Before a claim a family is shown only as its category, village and a distance rounded to
//! 0.5 km. Its name, address, phone, location and notes for visitors are shown to those who
//! hold the visit, from the claim until `visits.details_grace_hours` after the window;
//! counselling notes only to holders with the counselling skill and to coordinators. Every
//! such read is audited.

use std::{collections::HashMap, sync::Arc};

use base64::Engine;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use entity::{
    FamilyCategory, Role, Skill, StringList, VolunteerStatus, app_user, family, notification,
    region, task_claim, visit_task, visit_task::status, volunteer,
};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::{
        Alias, ArrayType, Asterisk, Expr, ExprTrait, JoinType, Order, Query as Sql,
        SelectStatement, UnionType, Value,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::Tag;
use crate::{
    app::AppState,
    audit,
    auth::{Auth, Manager, Scope},
    eligibility::{
        self, BAND_M, FeedKey, Held, Offer, Point, Refusal, Taker, Window, approx_km, band_upper_m,
        check, full_weeks, local_midnight, next_radius, visible,
    },
    error::{ApiError, ApiResult},
    feed_index::Search,
    geo::{METRES_PER_DEGREE, bounding_box, metres_per_degree_lng},
    input::{Input, Validate, text},
    notify,
};

pub struct Api(pub Arc<AppState>);

/// The outbox template telling a volunteer a coordinator released their claim.
pub const TEMPLATE_CLAIM_RELEASED: &str = "claim_released";

/// Feed pages hold at most this many visits.
pub const MAX_LIMIT: u32 = 50;
const DEFAULT_LIMIT: u32 = 20;

/// Held visits that can matter to a candidate: a window is at most
/// `scheduler::rules::MAX_WINDOW_DAYS` long, and a capacity week is seven days.
pub(crate) const HELD_LOOKBACK_DAYS: i64 = scheduler::rules::MAX_WINDOW_DAYS as i64 + 8;

/// Rows beyond a page the feed reads, for rows the exact checks drop.
const PAGE_SLACK: usize = 4;

/// Overlap rules handed to the database as filters, at most (the rest is checked here).
const MAX_PUSHED_OVERLAPS: usize = 64;

// ---------------------------------------------------------------------------------------
// Shapes

/// An open visit in the feed. The family is not identified: category, village and an
/// approximate distance only.
#[derive(Object, Debug)]
pub struct FeedItem {
    pub id: Uuid,
    /// What the visit is for: `birthday`, `festival`, `child_birthday`,
    /// `death_anniversary`, `qingming`… (the first occasion; `kinds` lists them all).
    pub kind: String,
    pub kinds: Vec<String>,
    /// `home_visit` or `phone_call`.
    pub channel: String,
    pub window_start: DateTime<Utc>,
    /// Exclusive.
    pub window_end: DateTime<Utc>,
    /// The suggested day.
    pub planned_date: Option<NaiveDate>,
    pub preferred_time: Option<String>,
    /// The family asked for a visitor of this gender (男/女).
    pub visitor_gender: Option<String>,
    pub volunteers_needed: i32,
    pub claims_count: i32,
    pub required_skills: Vec<Skill>,
    /// A grief day: quiet, no gifts or greetings.
    pub gentle: bool,
    pub first_visit: bool,
    pub category: FamilyCategory,
    /// 失独, 伤残…
    pub category_label: String,
    pub village: String,
    /// From where the feed was asked, rounded to 0.5 km.
    pub distance_km: f64,
}

#[derive(Object, Debug)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A volunteer's claim on a visit.
#[derive(Object, Debug)]
pub struct ClaimView {
    pub id: Uuid,
    pub visit_id: Uuid,
    /// The volunteer's account.
    pub volunteer_user_id: Uuid,
    /// `active` or `released`.
    pub status: String,
    pub claimed_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    /// Who released it: the volunteer, or a coordinator.
    pub released_by: Option<Uuid>,
    pub visit_status: String,
    pub claims_count: i32,
    pub volunteers_needed: i32,
    /// The volunteer can give the visit back until then; later only a coordinator can.
    pub unclaim_until: DateTime<Utc>,
}

#[derive(ApiResponse)]
pub enum Claimed {
    /// The visit is now the volunteer's.
    #[oai(status = 201)]
    Created(Json<ClaimView>),
    /// The volunteer held it already (a repeated request): the same claim.
    #[oai(status = 200)]
    Existing(Json<ClaimView>),
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Why (kept in the audit log; not sent to the volunteer).
    pub reason: String,
}

impl Validate for Release {
    fn validate(&self) -> ApiResult<()> {
        text("reason", &self.reason, 1, 200)
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reschedule {
    /// The new window: from (RFC 3339)...
    pub window_start: DateTime<Utc>,
    /// ...until: after the start, not yet past, at most 92 days long.
    pub window_end: DateTime<Utc>,
    /// Why (kept in the audit log; the holders hear only the new time).
    pub reason: String,
}

impl Validate for Reschedule {
    fn validate(&self) -> ApiResult<()> {
        text("reason", &self.reason, 1, 200)?;
        if self.window_end <= self.window_start {
            return Err(ApiError::field("window_end", "结束时间应晚于开始时间"));
        }
        let days = i64::from(scheduler::rules::MAX_WINDOW_DAYS);
        if self.window_end - self.window_start > Duration::days(days) {
            return Err(ApiError::field(
                "window_end",
                format!("走访时段最长 {days} 天"),
            ));
        }
        Ok(())
    }
}

/// A visit after it was moved.
#[derive(Object, Debug)]
pub struct Rescheduled {
    pub id: Uuid,
    pub status: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub planned_date: Option<NaiveDate>,
    /// Messages queued: each holder's notice of the new time and the reminders for it.
    pub messages: u64,
}

/// The family as one viewer may see it. Before a claim (and after the window's grace):
/// category, village and approximate distance only.
#[derive(Object, Debug)]
pub struct FamilyCard {
    pub category: FamilyCategory,
    pub category_label: String,
    pub village: String,
    /// From the volunteer's home, rounded to 0.5 km.
    #[oai(skip_serializing_if_is_none)]
    pub distance_km: Option<f64>,
    /// For coordinators: the register entry (read there, audited).
    #[oai(skip_serializing_if_is_none)]
    pub family_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub address: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub phone: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub lat: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub lng: Option<f64>,
    /// Notes for whoever visits.
    #[oai(skip_serializing_if_is_none)]
    pub visitor_notes: Option<String>,
}

/// Someone holding the visit (shown to coordinators).
#[derive(Object, Debug)]
pub struct HolderView {
    pub user_id: Uuid,
    pub name: String,
    /// `volunteer` (a claim) or `cadre` (pre-assigned).
    pub role: String,
    pub claimed_at: Option<DateTime<Utc>>,
}

/// One visit, as the caller may see it.
#[derive(Object, Debug)]
pub struct VisitDetail {
    pub id: Uuid,
    pub kind: String,
    pub kinds: Vec<String>,
    pub channel: String,
    pub status: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub planned_date: Option<NaiveDate>,
    pub preferred_time: Option<String>,
    pub visitor_gender: Option<String>,
    pub volunteers_needed: i32,
    pub claims_count: i32,
    pub required_skills: Vec<Skill>,
    pub gentle: bool,
    pub first_visit: bool,
    pub family: FamilyCard,
    /// The occasions in words ("母亲 钱秀英 农历生日"): with the family's details only.
    #[oai(skip_serializing_if_is_none)]
    pub reasons: Option<Vec<String>>,
    /// Notes from counselling: for holders with the counselling skill, and coordinators.
    #[oai(skip_serializing_if_is_none)]
    pub counsel_notes: Option<String>,
    /// Whether the caller holds the visit.
    pub holding: bool,
    /// The caller's claim, if they hold one.
    #[oai(skip_serializing_if_is_none)]
    pub my_claim: Option<ClaimView>,
    /// Until when a holder sees the family's details.
    #[oai(skip_serializing_if_is_none)]
    pub details_until: Option<DateTime<Utc>>,
    /// Who holds it (coordinators).
    #[oai(skip_serializing_if_is_none)]
    pub holders: Option<Vec<HolderView>>,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Still to do: open, claimed or in progress, window not over (soonest first).
    Upcoming,
    /// Done, missed, or the window is over (latest first).
    Past,
}

/// A visit the caller holds.
#[derive(Object, Debug)]
pub struct MyVisit {
    pub id: Uuid,
    pub kind: String,
    pub kinds: Vec<String>,
    pub channel: String,
    pub status: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub planned_date: Option<NaiveDate>,
    pub preferred_time: Option<String>,
    /// `volunteer` (claimed) or `cadre` (pre-assigned).
    pub role: String,
    pub category: FamilyCategory,
    pub category_label: String,
    pub village: String,
}

#[derive(Object, Debug)]
pub struct MyVisitsPage {
    pub items: Vec<MyVisit>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Reading

/// The caller's volunteer profile, which must be approved.
async fn approved_volunteer(db: &impl ConnectionTrait, user: Uuid) -> ApiResult<volunteer::Model> {
    volunteer::Entity::find()
        .filter(volunteer::Column::UserId.eq(user))
        .one(db)
        .await?
        .filter(|v| v.status == VolunteerStatus::Approved)
        .ok_or_else(|| ApiError::Forbidden("仅限已通过审核的志愿者".into()))
}

pub(crate) fn taker_of(v: &volunteer::Model) -> Taker {
    Taker {
        skills: v.skills.0.clone(),
        home: Point::from_opt(v.home_lat, v.home_lng),
        max_distance_km: v.max_distance_km,
        weekly_capacity: v.weekly_capacity,
    }
}

pub(crate) fn offer_of(t: &visit_task::Model, f: &family::Model) -> Offer {
    Offer {
        id: t.id,
        status: t.status.clone(),
        window: Window::new(t.window_start, t.window_end),
        volunteers_needed: t.volunteers_needed,
        claims_count: t.claims_count,
        required_skills: t.required_skills.0.clone(),
        assign_to_cadre: t.assign_to_cadre,
        assigned_cadre_id: t.assigned_cadre_id,
        family_at: Point::from_opt(f.lat, f.lng),
    }
}

/// The visits `user` holds (claimed, or pre-assigned as cadre), not cancelled or missed,
/// whose window ends after `since`, as `held_id`, `held_start`, `held_end`: a UNION ALL of
/// the two ways to hold one, which the database plans in a fraction of the time an
/// `IN (…)` over both takes.
fn held_select(user: Uuid, since: DateTime<Utc>) -> SelectStatement {
    use visit_task::Column as T;
    let live = |c: Condition| {
        c.add(
            Expr::col((visit_task::Entity, T::Status))
                .is_not_in([status::CANCELLED, status::MISSED]),
        )
        .add(Expr::col((visit_task::Entity, T::WindowEnd)).gt(since))
    };
    let columns = |q: &mut SelectStatement| {
        q.expr_as(
            Expr::col((visit_task::Entity, T::Id)),
            Alias::new("held_id"),
        )
        .expr_as(
            Expr::col((visit_task::Entity, T::WindowStart)),
            Alias::new("held_start"),
        )
        .expr_as(
            Expr::col((visit_task::Entity, T::WindowEnd)),
            Alias::new("held_end"),
        );
    };
    let mut assigned = Sql::select();
    columns(&mut assigned);
    assigned.from(visit_task::Entity).cond_where(live(
        Condition::all().add(Expr::col((visit_task::Entity, T::AssignedCadreId)).eq(user)),
    ));
    let mut claimed = Sql::select();
    columns(&mut claimed);
    claimed
        .from(task_claim::Entity)
        .inner_join(
            visit_task::Entity,
            Expr::col((visit_task::Entity, T::Id))
                .equals((task_claim::Entity, task_claim::Column::TaskId)),
        )
        .cond_where(live(
            Condition::all()
                .add(Expr::col((task_claim::Entity, task_claim::Column::VolunteerId)).eq(user))
                .add(
                    Expr::col((task_claim::Entity, task_claim::Column::Status))
                        .eq(task_claim::ACTIVE),
                ),
        ))
        .union(UnionType::All, assigned);
    claimed
}

/// See [`held_select`].
pub(crate) async fn held_visits(
    db: &impl ConnectionTrait,
    user: Uuid,
    since: DateTime<Utc>,
) -> Result<Vec<Held>, DbErr> {
    let rows = db.query_all(&held_select(user, since)).await?;
    let mut held = Vec::with_capacity(rows.len());
    for row in &rows {
        held.push(Held {
            id: row.try_get("", "held_id")?,
            window: Window::new(row.try_get("", "held_start")?, row.try_get("", "held_end")?),
        });
    }
    Ok(held)
}

/// [`approved_volunteer`] and [`held_visits`] in one round trip (the feed's first step).
async fn volunteer_and_held(
    db: &impl ConnectionTrait,
    user: Uuid,
    since: DateTime<Utc>,
) -> ApiResult<(volunteer::Model, Vec<Held>)> {
    let h = Alias::new("h");
    let stmt = Sql::select()
        .column((volunteer::Entity, Asterisk))
        .columns([
            (h.clone(), Alias::new("held_id")),
            (h.clone(), Alias::new("held_start")),
            (h.clone(), Alias::new("held_end")),
        ])
        .from(volunteer::Entity)
        .join_subquery(
            JoinType::LeftJoin,
            held_select(user, since),
            h,
            Expr::cust("TRUE"),
        )
        .and_where(Expr::col((volunteer::Entity, volunteer::Column::UserId)).eq(user))
        .to_owned();
    let rows = db.query_all(&stmt).await?;
    let v = match rows.first() {
        Some(row) => volunteer::Model::from_query_result(row, "")?,
        None => return Err(ApiError::Forbidden("仅限已通过审核的志愿者".into())),
    };
    if v.status != VolunteerStatus::Approved {
        return Err(ApiError::Forbidden("仅限已通过审核的志愿者".into()));
    }
    let mut held = Vec::new();
    for row in &rows {
        let id: Option<Uuid> = row.try_get("", "held_id")?;
        let start: Option<DateTime<Utc>> = row.try_get("", "held_start")?;
        let end: Option<DateTime<Utc>> = row.try_get("", "held_end")?;
        if let (Some(id), Some(start), Some(end)) = (id, start, end) {
            held.push(Held {
                id,
                window: Window::new(start, end),
            });
        }
    }
    Ok((v, held))
}

pub(crate) async fn task_and_family(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> ApiResult<(visit_task::Model, family::Model)> {
    let task = visit_task::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("走访"))?;
    let fam = family::Entity::find_by_id(task.family_id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("走访"))?;
    Ok((task, fam))
}

async fn claim_of(
    db: &impl ConnectionTrait,
    task: Uuid,
    user: Uuid,
) -> Result<Option<task_claim::Model>, DbErr> {
    task_claim::Entity::find()
        .filter(task_claim::Column::TaskId.eq(task))
        .filter(task_claim::Column::VolunteerId.eq(user))
        .one(db)
        .await
}

/// Takes the volunteer's row lock for the rest of the transaction: their claims, gives
/// back and releases happen one at a time, so what they hold cannot change under a check.
/// (On SQLite the write also takes the database's write lock first thing, so the
/// transaction never has to upgrade a read lock.)
pub(crate) async fn lock_volunteer(txn: &impl ConnectionTrait, user: Uuid) -> Result<(), DbErr> {
    volunteer::Entity::update_many()
        .col_expr(
            volunteer::Column::UpdatedAt,
            Expr::col(volunteer::Column::UpdatedAt),
        )
        .filter(volunteer::Column::UserId.eq(user))
        .exec(txn)
        .await?;
    Ok(())
}

/// Chinese names of the visit states.
pub fn status_label(s: &str) -> &'static str {
    match s {
        status::OPEN => "待认领",
        status::CLAIMED => "已认满",
        status::IN_PROGRESS => "走访中",
        status::REPORTED => "已上报",
        status::CONFIRMED => "已确认",
        status::MISSED => "已错过",
        status::CANCELLED => "已取消",
        _ => "未知状态",
    }
}

fn skills_of(list: &StringList) -> Vec<Skill> {
    list.0.iter().filter_map(|s| Skill::parse(s)).collect()
}

fn kinds_of(kind: &str, kinds: &Option<StringList>) -> Vec<String> {
    match kinds {
        Some(k) if !k.0.is_empty() => k.0.clone(),
        _ => vec![kind.to_string()],
    }
}

fn unclaim_until(state: &AppState, window_start: DateTime<Utc>) -> DateTime<Utc> {
    window_start - Duration::hours(state.config.visits.unclaim_cutoff_hours)
}

fn claim_view(state: &AppState, c: &task_claim::Model, t: &visit_task::Model) -> ClaimView {
    ClaimView {
        id: c.id,
        visit_id: c.task_id,
        volunteer_user_id: c.volunteer_id,
        status: c.status.clone(),
        claimed_at: c.claimed_at,
        released_at: c.released_at,
        released_by: c.released_by,
        visit_status: t.status.clone(),
        claims_count: t.claims_count,
        volunteers_needed: t.volunteers_needed,
        unclaim_until: unclaim_until(state, t.window_start),
    }
}

/// The error a refusal to claim is answered with.
fn refusal_error(r: Refusal, task: &visit_task::Model, tz: chrono_tz::Tz) -> ApiError {
    match r {
        r if r.hides() => ApiError::NotFound("走访"),
        Refusal::Full { needed } => ApiError::state(
            "visit_full",
            task.status.clone(),
            format!("该走访已满员：需要 {needed} 位志愿者，都已有人认领"),
        ),
        Refusal::NotOpen(s) => not_open(&s),
        Refusal::AlreadyHeld => ApiError::conflict("already_held", "您已负责这次走访"),
        Refusal::OverCapacity { held, capacity, .. } => {
            let monday = eligibility::week_bounds(task.window_start, tz)
                .start
                .with_timezone(&tz)
                .date_naive();
            ApiError::conflict(
                "over_capacity",
                format!(
                    "{monday} 起的这一周您已认领 {held} 次走访，已达到每周 {capacity} 次的上限"
                ),
            )
        }
        Refusal::Overlaps(_) => {
            ApiError::conflict("overlaps", "这次走访与您已认领的另一次走访时间重叠")
        }
        // `hides` covers the rest.
        _ => ApiError::NotFound("走访"),
    }
}

fn not_open(s: &str) -> ApiError {
    ApiError::state(
        "visit_not_open",
        s,
        format!("该走访当前状态为「{}」，不能认领", status_label(s)),
    )
}

// ---------------------------------------------------------------------------------------
// The feed

/// What a feed request filters by, as given (the cursor must be used with the same).
#[derive(Debug, Clone, PartialEq)]
struct Filters {
    kind: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    max_distance_km: Option<f64>,
}

impl Filters {
    fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.kind.as_deref().unwrap_or(""),
            self.from.map(|d| d.to_string()).unwrap_or_default(),
            self.to.map(|d| d.to_string()).unwrap_or_default(),
            self.max_distance_km
                .map(|d| d.to_string())
                .unwrap_or_default()
        )
    }

    fn validate(&self) -> ApiResult<()> {
        if let Some(k) = &self.kind
            && (k.is_empty()
                || k.len() > 32
                || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            return Err(ApiError::field(
                "kind",
                "kind 应为走访类型代码，如 birthday、festival",
            ));
        }
        for (field, d) in [("from", self.from), ("to", self.to)] {
            if let Some(d) = d
                && !(1900..=2200).contains(&d.year())
            {
                return Err(ApiError::field(field, format!("{field} 日期超出范围")));
            }
        }
        if let (Some(f), Some(t)) = (self.from, self.to)
            && t < f
        {
            return Err(ApiError::field("to", "结束日期不能早于开始日期"));
        }
        if let Some(d) = self.max_distance_km
            && !(d.is_finite() && d > 0.0 && d <= 200.0)
        {
            return Err(ApiError::field(
                "max_distance_km",
                "max_distance_km 应大于 0、不超过 200",
            ));
        }
        Ok(())
    }
}

/// Where a feed page ended: the last key shown, the position the distances are measured
/// from (kept, so a phone's wandering GPS does not reshuffle the pages), and the filters.
#[derive(Serialize, Deserialize)]
struct FeedCursor {
    b: i32,
    /// window_end, nanoseconds since the epoch.
    e: i64,
    i: Uuid,
    o: (f64, f64),
    f: String,
}

fn encode_cursor<T: Serialize>(c: &T) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).expect("cursor serialises"))
}

fn decode_cursor<T: for<'de> Deserialize<'de>>(s: &str) -> ApiResult<T> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::field("cursor", "cursor 无效，请从第一页重新开始"))
}

/// A UUID in the path. poem-openapi calls path parameters `param0`, `param1`… in its own
/// parse errors, so ids are taken as text and parsed here, to name the parameter.
pub(crate) fn path_id(field: &str, raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| ApiError::field(field, format!("{field} 应为 UUID")))
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A candidate of the feed: what deciding and ordering need, all from the location
/// index on PostgreSQL (the rest is read for the page only: [`page_details`]).
#[derive(FromQueryResult, Debug)]
struct CandidateRow {
    id: Uuid,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    volunteers_needed: i32,
    claims_count: i32,
    required_skills: StringList,
    /// The family's home (copied onto its visits by the database, migration
    /// m20261124_000005_feed).
    lat: f64,
    lng: f64,
}

/// What a feed item shows besides its candidate row.
#[derive(FromQueryResult, Debug)]
struct DetailRow {
    id: Uuid,
    kind: String,
    kinds: Option<StringList>,
    channel: String,
    planned_date: Option<NaiveDate>,
    preferred_time: Option<String>,
    visitor_gender: Option<String>,
    gentle: bool,
    first_visit: bool,
    category: FamilyCategory,
    village: String,
}

/// Filters the database applies before the exact checks (all of them are re-checked).
struct Prefilter<'a> {
    now: DateTime<Utc>,
    origin: Point,
    radius_m: f64,
    /// Families closer than this are in groups before the cursor's.
    inner_m: f64,
    /// The volunteer's reach around their home, when measured from elsewhere.
    reach: Option<(Point, f64)>,
    lacking: Vec<&'static str>,
    full_weeks: &'a [Window],
    held: &'a [Held],
    kind: Option<&'a str>,
    /// Windows overlapping `[start, end)`, either end open.
    between: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

/// The visit's copy of its family's location.
fn visit_lat() -> Expr {
    Expr::col((visit_task::Entity, Alias::new("lat")))
}

fn visit_lng() -> Expr {
    Expr::col((visit_task::Entity, Alias::new("lng")))
}

fn in_box(center: Point, metres: f64) -> Condition {
    let (dlat, dlng) = bounding_box(center.lat, metres);
    Condition::all()
        .add(visit_lat().between(center.lat - dlat, center.lat + dlat))
        .add(visit_lng().between(center.lng - dlng, center.lng + dlng))
}

/// The conditions of [`Prefilter`].
fn prefilter_condition(p: &Prefilter<'_>) -> Condition {
    use visit_task::Column as T;
    let t = |c: T| Expr::col((visit_task::Entity, c));
    let mut cond = Condition::all()
        // Literally the condition of the partial index on open volunteer visits
        // (migration m20261124_000005_feed), so that every plan can use it.
        .add(Expr::cust(r#""visit_task"."status" = 'open'"#))
        .add(Expr::cust(r#"NOT "visit_task"."assign_to_cadre""#))
        .add(Expr::cust(r#""visit_task"."assigned_cadre_id" IS NULL"#))
        .add(t(T::WindowEnd).gt(p.now))
        .add(t(T::ClaimsCount).lt(t(T::VolunteersNeeded)))
        .add(in_box(p.origin, p.radius_m));
    if p.inner_m > 0.0 {
        // The square inside the circle of radius inner_m (with a margin): all closer.
        cond = cond.add(in_box(p.origin, p.inner_m * 0.95 / std::f64::consts::SQRT_2).not());
    }
    if let Some((home, reach)) = p.reach {
        cond = cond.add(in_box(home, reach));
    }
    // The statement's text must not depend on the volunteer, or PostgreSQL parses and
    // plans it anew for each: every skill gets its condition (one that matches nothing for
    // a skill the volunteer has), and the lists of windows are padded to a power of two
    // with empty windows, which exclude nothing.
    for s in Skill::ALL {
        let code = s.code();
        let pattern = if p.lacking.contains(&code) {
            format!("%\"{code}\"%")
        } else {
            NO_SKILL_PATTERN.to_string()
        };
        cond = cond.add(t(T::RequiredSkills).cast_as("text").not_like(pattern));
    }
    for w in padded(p.full_weeks.iter().copied()) {
        cond = cond.add(
            Condition::all()
                .add(t(T::WindowStart).gte(w.start))
                .add(t(T::WindowStart).lt(w.end))
                .not(),
        );
    }
    if p.held.len() <= MAX_PUSHED_OVERLAPS {
        for w in padded(p.held.iter().map(|h| h.window)) {
            cond = cond.add(
                Condition::all()
                    .add(t(T::WindowStart).lt(w.end))
                    .add(t(T::WindowEnd).gt(w.start))
                    .not(),
            );
        }
    }
    if let Some(k) = p.kind {
        cond = cond.add(
            Condition::any()
                .add(t(T::Kind).eq(k))
                .add(t(T::Kinds).cast_as("text").like(format!("%\"{k}\"%"))),
        );
    }
    if let Some(end) = p.between.1 {
        cond = cond.add(t(T::WindowStart).lt(end));
    }
    if let Some(start) = p.between.0 {
        cond = cond.add(t(T::WindowEnd).gt(start));
    }
    cond
}

/// A `LIKE` pattern no skill list matches.
const NO_SKILL_PATTERN: &str = "%\"\"%";

/// `windows`, padded to a power of two with empty windows (at the epoch: nothing overlaps
/// them, no window starts in them), so that the count shapes the statement only coarsely.
fn padded(windows: impl ExactSizeIterator<Item = Window>) -> Vec<Window> {
    let n = windows.len();
    let empty = Window::new(DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH);
    let mut out: Vec<Window> = windows.collect();
    out.resize(if n == 0 { 0 } else { n.next_power_of_two() }, empty);
    out
}

/// The candidate columns, all in the location index on PostgreSQL.
fn candidate_select() -> SelectStatement {
    use visit_task::Column as T;
    Sql::select()
        .columns([
            (visit_task::Entity, T::Id),
            (visit_task::Entity, T::WindowStart),
            (visit_task::Entity, T::WindowEnd),
            (visit_task::Entity, T::VolunteersNeeded),
            (visit_task::Entity, T::ClaimsCount),
            (visit_task::Entity, T::RequiredSkills),
        ])
        .expr_as(visit_lat(), Alias::new("lat"))
        .expr_as(visit_lng(), Alias::new("lng"))
        .from(visit_task::Entity)
        .to_owned()
}

/// The first `take` candidates inside the prefilter's circle (`closed`: its edge included)
/// in the feed's order — distance group, end of window, id; after `after`. The database
/// computes the distance exactly as [`Point::planar_m`] does and sorts, so only the page's
/// few rows leave it however many visits the circle holds; they come from the location
/// index alone (what they show is read for the page: [`page_details`]).
async fn nearest(
    db: &impl ConnectionTrait,
    p: &Prefilter<'_>,
    closed: bool,
    after: Option<FeedKey>,
    take: u64,
) -> Result<Vec<CandidateRow>, DbErr> {
    use visit_task::Column as T;
    let t = |c: T| Expr::col((visit_task::Entity, c));
    let backend = db.get_database_backend();
    let dy = visit_lat().sub(p.origin.lat).mul(METRES_PER_DEGREE);
    let dx = visit_lng()
        .sub(p.origin.lng)
        .mul(metres_per_degree_lng(p.origin.lat));
    let d2 = dy.clone().mul(dy).add(dx.clone().mul(dx));
    let r2 = p.radius_m * p.radius_m;
    let inside = if closed {
        d2.clone().lte(r2)
    } else {
        d2.clone().lt(r2)
    };
    let group = group_expr(backend, d2, p.radius_m);
    let mut cond = prefilter_condition(p).add(inside);
    if let Some(k) = after {
        cond = cond.add(
            Condition::any().add(group.clone().gt(k.band)).add(
                Condition::all().add(group.clone().eq(k.band)).add(
                    Condition::any().add(t(T::WindowEnd).gt(k.window_end)).add(
                        Condition::all()
                            .add(t(T::WindowEnd).eq(k.window_end))
                            .add(t(T::Id).gt(k.id)),
                    ),
                ),
            ),
        );
    }
    let stmt = candidate_select()
        .cond_where(cond)
        .order_by_expr(group, Order::Asc)
        .order_by((visit_task::Entity, T::WindowEnd), Order::Asc)
        .order_by((visit_task::Entity, T::Id), Order::Asc)
        .limit(take)
        .to_owned();
    CandidateRow::find_by_statement(backend.build(&stmt))
        .all(db)
        .await
}

/// What the page's visits show: kinds, the family's category and village. One statement
/// whatever the page (PostgreSQL keeps its plan; the candidates' statement varies with
/// the volunteer and is planned each time, so it stays on one table).
async fn page_details(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, DetailRow>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    use visit_task::Column as T;
    let backend = db.get_database_backend();
    let mut stmt = Sql::select()
        .columns([
            (visit_task::Entity, T::Id),
            (visit_task::Entity, T::Kind),
            (visit_task::Entity, T::Kinds),
            (visit_task::Entity, T::Channel),
            (visit_task::Entity, T::PlannedDate),
            (visit_task::Entity, T::PreferredTime),
            (visit_task::Entity, T::VisitorGender),
            (visit_task::Entity, T::Gentle),
            (visit_task::Entity, T::FirstVisit),
        ])
        .column((family::Entity, family::Column::Category))
        .expr_as(
            Expr::col((region::Entity, region::Column::Name)),
            Alias::new("village"),
        )
        .from(visit_task::Entity)
        .inner_join(
            family::Entity,
            Expr::col((family::Entity, family::Column::Id))
                .equals((visit_task::Entity, T::FamilyId)),
        )
        .inner_join(
            region::Entity,
            Expr::col((region::Entity, region::Column::Id))
                .equals((family::Entity, family::Column::RegionId)),
        )
        .to_owned();
    if backend == DbBackend::Postgres {
        let array = Value::Array(
            ArrayType::Uuid,
            Some(Box::new(ids.into_iter().map(Value::from).collect())),
        );
        stmt.and_where(Expr::cust_with_values(
            r#""visit_task"."id" = ANY($1)"#,
            [array],
        ));
    } else {
        stmt.and_where(Expr::col((visit_task::Entity, T::Id)).is_in(ids));
    }
    Ok(DetailRow::find_by_statement(backend.build(&stmt))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect())
}

/// The distance group ([`eligibility::band`]) of a squared distance `d2`, in SQL: SQLite
/// has no square root, so there the group is found by comparing with each group's edge up
/// to `radius_m`.
fn group_expr(backend: DbBackend, d2: Expr, radius_m: f64) -> Expr {
    if backend == DbBackend::Postgres {
        return Expr::cust_with_exprs(
            format!("FLOOR(SQRT($1) / {BAND_M:.1} + 0.5)::integer"),
            [d2],
        );
    }
    let last = eligibility::band(radius_m);
    let mut case = Expr::case(d2.clone().lt(BAND_M * BAND_M / 4.0), 0);
    for b in 1..last {
        let edge = band_upper_m(b);
        case = case.case(d2.clone().lt(edge * edge), b);
    }
    case.finally(last).into()
}

/// A position given as `lat` and `lng` (both or neither, on Earth).
fn position(lat: Option<f64>, lng: Option<f64>) -> ApiResult<Option<Point>> {
    match (lat, lng) {
        (None, None) => Ok(None),
        (Some(lat), Some(lng)) => {
            if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
                return Err(ApiError::field("lat", "lat 应在 -90 到 90 之间"));
            }
            if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
                return Err(ApiError::field("lng", "lng 应在 -180 到 180 之间"));
            }
            Ok(Some(Point::new(lat, lng)))
        }
        (Some(_), None) => Err(ApiError::field("lng", "lat 与 lng 须同时提供")),
        (None, Some(_)) => Err(ApiError::field("lat", "lat 与 lng 须同时提供")),
    }
}

fn check_limit(limit: Option<u32>, max: u32) -> ApiResult<usize> {
    let limit = limit.unwrap_or(Ord::min(DEFAULT_LIMIT, max));
    if limit == 0 || limit > max {
        return Err(ApiError::field(
            "limit",
            format!("limit 应在 1 到 {max} 之间"),
        ));
    }
    Ok(limit as usize)
}

// ---------------------------------------------------------------------------------------
// My visits

#[derive(Serialize, Deserialize)]
struct MineCursor {
    w: When,
    /// window_start, nanoseconds since the epoch.
    s: i64,
    i: Uuid,
}

// ---------------------------------------------------------------------------------------
// The endpoints

#[OpenApi(tag = "Tag::Visits")]
impl Api {
    /// Open visits I can take, nearest first and, among those about as near, the one that
    /// must be done soonest first. Distances are measured from `lat`,`lng` (where I am) or
    /// else my home, and never reach beyond how far I go from home (`max_distance_km` of
    /// my profile); families without a recorded location are not offered. The family shows
    /// only as category, village and distance (rounded to 0.5 km) until I claim the visit.
    /// Pages continue with `cursor` (which keeps the position of the first page).
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/visits/feed", method = "get")]
    async fn feed(
        &self,
        auth: Auth,
        /// Where I am now (with `lng`); default: my home.
        lat: Query<Option<f64>>,
        lng: Query<Option<f64>>,
        /// Only visits for this occasion (`birthday`, `festival`…).
        kind: Query<Option<String>>,
        /// Only visits whose window overlaps these days (local dates, inclusive).
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
        /// At most this far (km); never more than my profile allows.
        max_distance_km: Query<Option<f64>>,
        /// From the previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Visits per page, 1 to 50 (default 20).
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<FeedPage>> {
        let state = &self.0;
        let db = &state.db;
        let now = Utc::now();
        let key = auth.0.user_id.to_string();
        let (v, held) = match state.feed_takers.get(&key) {
            Some(cached) => cached,
            None => {
                let read = volunteer_and_held(
                    db,
                    auth.0.user_id,
                    now - Duration::days(HELD_LOOKBACK_DAYS),
                )
                .await?;
                state.feed_takers.put(key, read.clone());
                read
            }
        };
        let filters = Filters {
            kind: kind.0.map(|k| k.trim().to_string()),
            from: from.0,
            to: to.0,
            max_distance_km: max_distance_km.0,
        };
        filters.validate()?;
        let limit = check_limit(limit.0, MAX_LIMIT)?;
        let here = position(lat.0, lng.0)?;
        let cursor: Option<FeedCursor> = cursor.0.as_deref().map(decode_cursor).transpose()?;
        if let Some(c) = &cursor
            && (c.b < 0 || position(Some(c.o.0), Some(c.o.1)).is_err())
        {
            return Err(ApiError::field("cursor", "cursor 无效，请从第一页重新开始"));
        }
        if let Some(c) = &cursor
            && c.f != filters.fingerprint()
        {
            return Err(ApiError::field(
                "cursor",
                "筛选条件已改变，请从第一页重新开始",
            ));
        }
        let taker = taker_of(&v);
        let origin = match (&cursor, here, taker.home) {
            (Some(c), _, _) => Point::new(c.o.0, c.o.1),
            (None, Some(p), _) | (None, None, Some(p)) => p,
            (None, None, None) => {
                return Err(ApiError::field(
                    "lat",
                    "您的住址位置尚未登记，请提供当前位置（lat、lng）",
                ));
            }
        };
        let limit_m = filters
            .max_distance_km
            .unwrap_or(taker.max_distance_km)
            .min(taker.max_distance_km)
            * 1000.0;
        if taker.weekly_capacity <= 0 || limit_m <= 0.0 {
            return Ok(Json(FeedPage {
                items: vec![],
                next_cursor: None,
            }));
        }
        let tz = state.tz;
        let full = full_weeks(&held, taker.weekly_capacity, tz);
        let lacking: Vec<&'static str> = Skill::ALL
            .iter()
            .map(|s| s.code())
            .filter(|s| !taker.skills.iter().any(|h| h == s))
            .collect();
        // Windows overlapping [from 00:00, the day after `to` 00:00), local time.
        let between = (
            filters.from.map(|d| local_midnight(tz, d)),
            filters
                .to
                .and_then(|d| d.succ_opt())
                .map(|d| local_midnight(tz, d)),
        );
        let after = cursor.as_ref().map(|c| FeedKey {
            band: c.b,
            window_end: DateTime::from_timestamp_nanos(c.e),
            id: c.i,
        });
        let from_band = after.map_or(0, |k| k.band);
        let reach = taker
            .home
            .filter(|h| *h != origin)
            .map(|h| (h, taker.reach_m()));

        // From memory, once the index has loaded.
        state.feed.before_read(db).await?;
        let from_memory = state.feed.read(|grid| {
            grid.search(&Search {
                now,
                origin,
                limit_m,
                after,
                kind: filters.kind.as_deref(),
                between,
                taker: &taker,
                held: &held,
                tz,
                want: limit + 1,
            })
        });
        if let Some(mut found) = from_memory {
            let more = found.len() > limit;
            found.truncate(limit);
            let next_cursor = match (more, found.last()) {
                (true, Some((key, ..))) => Some(encode_cursor(&FeedCursor {
                    b: key.band,
                    e: nanos(key.window_end),
                    i: key.id,
                    o: (origin.lat, origin.lng),
                    f: filters.fingerprint(),
                })),
                _ => None,
            };
            let items = found
                .into_iter()
                .map(|(_, d, v)| FeedItem {
                    id: v.offer.id,
                    kind: v.kind.clone(),
                    kinds: v
                        .kinds
                        .clone()
                        .filter(|k| !k.is_empty())
                        .unwrap_or_else(|| vec![v.kind.clone()]),
                    channel: v.channel.clone(),
                    window_start: v.offer.window.start,
                    window_end: v.offer.window.end,
                    planned_date: v.planned_date,
                    preferred_time: v.preferred_time.clone(),
                    visitor_gender: v.visitor_gender.clone(),
                    volunteers_needed: v.offer.volunteers_needed,
                    claims_count: v.offer.claims_count,
                    required_skills: v
                        .offer
                        .required_skills
                        .iter()
                        .filter_map(|s| Skill::parse(s))
                        .collect(),
                    gentle: v.gentle,
                    first_visit: v.first_visit,
                    category: v.category,
                    category_label: v.category.label().into(),
                    village: v.village.clone(),
                    distance_km: approx_km(d),
                })
                .collect();
            return Ok(Json(FeedPage { items, next_cursor }));
        }

        let prefilter = |radius_m: f64| Prefilter {
            now,
            origin,
            radius_m,
            inner_m: if from_band > 0 {
                band_upper_m(from_band - 1)
            } else {
                0.0
            },
            reach,
            lacking: lacking.clone(),
            full_weeks: &full,
            held: &held,
            kind: filters.kind.as_deref(),
            between,
        };
        // Whether a row is in the circle and for this volunteer, and where it sorts.
        let judge = |row: CandidateRow, radius_m: f64| {
            let at = Point::new(row.lat, row.lng);
            let d = origin.planar_m(at);
            // Inside a group boundary the circle is open (a visit right on it belongs to
            // the next group, not yet complete); the limit is inclusive.
            let inside = if radius_m >= limit_m {
                d <= radius_m
            } else {
                d < radius_m
            };
            if !inside {
                return None;
            }
            let offer = Offer {
                id: row.id,
                status: status::OPEN.into(),
                window: Window::new(row.window_start, row.window_end),
                volunteers_needed: row.volunteers_needed,
                claims_count: row.claims_count,
                required_skills: row.required_skills.0.clone(),
                assign_to_cadre: false,
                assigned_cadre_id: None,
                family_at: Some(at),
            };
            check(&taker, &held, &offer, tz).ok()?;
            let key = FeedKey::new(d, row.window_end, row.id);
            if after.is_some_and(|a| key <= a) {
                return None;
            }
            Some((key, d, row))
        };

        // The nearest circle made of whole groups that holds a page (and one more), or
        // the limit: starting with the cursor's group alone (in a village that is the
        // page: a kilometre around holds thousands of visits), widened by the density seen.
        let page = limit + 1;
        let mut take = page + PAGE_SLACK;
        let mut radius_m = band_upper_m(from_band).min(limit_m);
        let mut found = loop {
            let closed = radius_m >= limit_m;
            let rows = nearest(db, &prefilter(radius_m), closed, after, take as u64).await?;
            let whole_circle = rows.len() < take;
            let found: Vec<_> = rows
                .into_iter()
                .filter_map(|r| judge(r, radius_m))
                .collect();
            if found.len() >= page || (whole_circle && closed) {
                break found;
            }
            if whole_circle {
                radius_m = next_radius(radius_m, found.len(), page, limit_m);
            } else {
                // The exact checks refused many of the nearest: read more of the same circle.
                take *= 4;
            }
        };
        found.sort_by_key(|f| f.0);
        let more = found.len() > limit;
        found.truncate(limit);
        let next_cursor = match (more, found.last()) {
            (true, Some((key, ..))) => Some(encode_cursor(&FeedCursor {
                b: key.band,
                e: nanos(key.window_end),
                i: key.id,
                o: (origin.lat, origin.lng),
                f: filters.fingerprint(),
            })),
            _ => None,
        };
        let mut details = page_details(db, found.iter().map(|f| f.2.id).collect()).await?;
        let items = found
            .into_iter()
            .filter_map(|(_, d, r)| {
                // Gone since the search (a family deleted): left out.
                let x = details.remove(&r.id)?;
                Some(FeedItem {
                    kinds: kinds_of(&x.kind, &x.kinds),
                    required_skills: skills_of(&r.required_skills),
                    category_label: x.category.label().into(),
                    distance_km: approx_km(d),
                    id: r.id,
                    kind: x.kind,
                    channel: x.channel,
                    window_start: r.window_start,
                    window_end: r.window_end,
                    planned_date: x.planned_date,
                    preferred_time: x.preferred_time,
                    visitor_gender: x.visitor_gender,
                    volunteers_needed: r.volunteers_needed,
                    claims_count: r.claims_count,
                    gentle: x.gentle,
                    first_visit: x.first_visit,
                    category: x.category,
                    village: x.village,
                })
            })
            .collect();
        Ok(Json(FeedPage { items, next_cursor }))
    }

    /// Take a visit. Visits that need two volunteers take two claims; once all are taken
    /// the visit is full (409 `visit_full`). Asking again returns the same claim (200).
    /// A visit I cannot see (a cadre's, out of my reach, needing a skill I lack) is 404;
    /// one I cannot take now says why (409: `visit_full`, `visit_not_open` with `state`,
    /// `over_capacity`, `overlaps`).
    #[oai(path = "/visits/:id/claims", method = "post")]
    async fn claim(
        &self,
        auth: Auth,
        /// The visit (a UUID).
        id: Path<String>,
    ) -> ApiResult<Claimed> {
        let id = path_id("id", &id.0)?;
        let state = &self.0;
        let db = &state.db;
        let user = auth.0.user_id;
        let v = approved_volunteer(db, user).await?;
        let (task, fam) = task_and_family(db, id).await?;
        let taker = taker_of(&v);
        let tz = state.tz;
        if let Err(r) = visible(&taker, &offer_of(&task, &fam)) {
            // Held already (their skills or home changed since): the claim is still theirs.
            return match claim_of(db, task.id, user).await? {
                Some(c) if c.status == task_claim::ACTIVE => {
                    Ok(Claimed::Existing(Json(claim_view(state, &c, &task))))
                }
                _ => Err(refusal_error(r, &task, tz)),
            };
        }

        let now = Utc::now();
        let txn = db.begin().await?;
        lock_volunteer(&txn, user).await?;
        let existing = claim_of(&txn, task.id, user).await?;
        let task = visit_task::Entity::find_by_id(task.id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        if let Some(c) = &existing {
            if c.status == task_claim::ACTIVE {
                txn.rollback().await?;
                return Ok(Claimed::Existing(Json(claim_view(state, c, &task))));
            }
            if c.released_by.is_some_and(|by| by != user) {
                txn.rollback().await?;
                return Err(ApiError::state(
                    "released_by_coordinator",
                    task_claim::RELEASED,
                    "协调员已将您从这次走访中调出；如需重新认领，请联系协调员",
                ));
            }
        }
        if task.window_end <= now {
            txn.rollback().await?;
            return Err(ApiError::state(
                "visit_window_passed",
                task.status.clone(),
                "这次走访的时间已过",
            ));
        }
        let held = held_visits(&txn, user, now - Duration::days(HELD_LOOKBACK_DAYS)).await?;
        if let Err(r) = check(&taker, &held, &offer_of(&task, &fam), tz) {
            txn.rollback().await?;
            return Err(refusal_error(r, &task, tz));
        }

        let Some(claim) = take_place(&txn, &task, existing, user, now).await? else {
            txn.rollback().await?;
            let (task, _) = task_and_family(db, task.id).await?;
            return Err(
                if task.status == status::OPEN || task.status == status::CLAIMED {
                    refusal_error(
                        Refusal::Full {
                            needed: task.volunteers_needed,
                        },
                        &task,
                        tz,
                    )
                } else {
                    not_open(&task.status)
                },
            );
        };
        let task = visit_task::Entity::find_by_id(task.id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        notify::produce::claimed(&txn, &state.config.reminders, tz, &task, user, now).await?;
        txn.commit().await?;
        feed_sees(state, &[task.id], &[user]).await;
        Ok(Claimed::Created(Json(claim_view(state, &claim, &task))))
    }

    /// Give a visit back, up to `visits.unclaim_cutoff_hours` (default 24) before its
    /// window opens; later a coordinator has to release me (409 `unclaim_too_late`).
    /// Asking again after it was given back returns the released claim.
    #[oai(path = "/visits/:id/claims/mine", method = "delete")]
    async fn unclaim(
        &self,
        auth: Auth,
        /// The visit (a UUID).
        id: Path<String>,
    ) -> ApiResult<Json<ClaimView>> {
        let id = path_id("id", &id.0)?;
        let state = &self.0;
        let db = &state.db;
        let user = auth.0.user_id;
        volunteer::Entity::find()
            .filter(volunteer::Column::UserId.eq(user))
            .one(db)
            .await?
            .ok_or_else(|| ApiError::Forbidden("仅限志愿者".into()))?;
        let (task, _) = task_and_family(db, id).await?;
        let now = Utc::now();
        let txn = db.begin().await?;
        lock_volunteer(&txn, user).await?;
        let task = visit_task::Entity::find_by_id(task.id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        let Some(claim) = claim_of(&txn, task.id, user).await? else {
            txn.rollback().await?;
            return Err(ApiError::NotFound("认领记录"));
        };
        if claim.status != task_claim::ACTIVE {
            txn.rollback().await?;
            if claim.released_by == Some(user) {
                // A repeated request: done already.
                return Ok(Json(claim_view(state, &claim, &task)));
            }
            return Err(ApiError::state(
                "claim_released",
                task_claim::RELEASED,
                "协调员已将您从这次走访中调出",
            ));
        }
        if task.status != status::OPEN && task.status != status::CLAIMED {
            txn.rollback().await?;
            return Err(ApiError::state(
                "visit_not_open",
                task.status.clone(),
                format!(
                    "该走访当前状态为「{}」，不能取消认领",
                    status_label(&task.status)
                ),
            ));
        }
        let cutoff = state.config.visits.unclaim_cutoff_hours;
        if now > unclaim_until(state, task.window_start) {
            txn.rollback().await?;
            return Err(ApiError::conflict(
                "unclaim_too_late",
                format!(
                    "距走访开始已不足 {cutoff} 小时，不能自行取消认领；如确实无法前往，请联系协调员调整"
                ),
            ));
        }
        let (claim, task) = release_in(&txn, claim, &task, user, now).await?;
        audit::record(
            &txn,
            Some(user),
            "unclaim_visit",
            "visit_task",
            Some(task.id),
            json!({}),
        )
        .await?;
        txn.commit().await?;
        feed_sees(state, &[task.id], &[user]).await;
        Ok(Json(claim_view(state, &claim, &task)))
    }

    /// Release a volunteer from a visit (coordinators, for visits of families in their
    /// region; at any time before the visit starts). The volunteer is told; the reason is
    /// kept in the audit log.
    #[oai(
        path = "/visits/:id/claims/:volunteer_user_id/release",
        method = "post"
    )]
    async fn release(
        &self,
        auth: Manager,
        /// The visit (a UUID).
        id: Path<String>,
        /// The volunteer's account (`volunteer_user_id` of the claim, `user_id` of holders).
        volunteer_user_id: Path<String>,
        body: Input<Release>,
    ) -> ApiResult<Json<ClaimView>> {
        let id = path_id("id", &id.0)?;
        let volunteer = path_id("volunteer_user_id", &volunteer_user_id.0)?;
        let state = &self.0;
        let db = &state.db;
        let scope = auth.0.manager_scope()?;
        let (task, fam) = task_and_family(db, id).await?;
        family_region_in_scope(db, &scope, &fam)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        let now = Utc::now();
        let txn = db.begin().await?;
        lock_volunteer(&txn, volunteer).await?;
        let task = visit_task::Entity::find_by_id(task.id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        let Some(claim) = claim_of(&txn, task.id, volunteer).await? else {
            txn.rollback().await?;
            return Err(ApiError::NotFound("认领记录"));
        };
        if claim.status != task_claim::ACTIVE {
            txn.rollback().await?;
            return Err(ApiError::state(
                "claim_released",
                task_claim::RELEASED,
                "该志愿者已不再负责这次走访",
            ));
        }
        if task.status != status::OPEN && task.status != status::CLAIMED {
            txn.rollback().await?;
            return Err(ApiError::state(
                "visit_not_open",
                task.status.clone(),
                format!(
                    "该走访当前状态为「{}」，不能再调出志愿者",
                    status_label(&task.status)
                ),
            ));
        }
        let claimed_at = claim.claimed_at;
        let (claim, task) = release_in(&txn, claim, &task, auth.0.user_id, now).await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "release_claim",
            "visit_task",
            Some(task.id),
            json!({"volunteer": volunteer, "claim": claim.id, "reason": body.0.reason.trim()}),
        )
        .await?;
        // No family details: the message may show on a locked screen.
        let date = task.window_start.with_timezone(&state.tz).date_naive();
        notification::ActiveModel::pending(
            volunteer,
            TEMPLATE_CLAIM_RELEASED,
            json!({"task_id": task.id, "date": date.to_string()}),
            format!(
                "{TEMPLATE_CLAIM_RELEASED}:{}:{volunteer}:{}",
                task.id,
                nanos(claimed_at)
            ),
            now,
            now,
        )
        .insert(&txn)
        .await?;
        txn.commit().await?;
        feed_sees(state, &[task.id], &[volunteer]).await;
        Ok(Json(claim_view(state, &claim, &task)))
    }

    /// Move a visit to another time (coordinators, for visits of families in their region,
    /// while it is open or claimed), typically after the family asked to move it: that
    /// flag is cleared. Whoever holds it (volunteers, the assigned cadre) is told the new
    /// time, and the reminders follow it; the reason is kept in the audit log.
    #[oai(path = "/visits/:id/reschedule", method = "post")]
    async fn reschedule(
        &self,
        auth: Manager,
        /// The visit (a UUID).
        id: Path<String>,
        body: Input<Reschedule>,
    ) -> ApiResult<Json<Rescheduled>> {
        use visit_task::Column as T;
        let id = path_id("id", &id.0)?;
        let b = body.0;
        let state = &self.0;
        let db = &state.db;
        let scope = auth.0.manager_scope()?;
        let now = Utc::now();
        if b.window_end <= now {
            return Err(ApiError::field("window_end", "新的时间已经过去"));
        }
        let (task, fam) = task_and_family(db, id).await?;
        family_region_in_scope(db, &scope, &fam)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        let txn = db.begin().await?;
        let mut update = visit_task::Entity::update_many()
            .col_expr(T::WindowStart, Expr::value(b.window_start))
            .col_expr(T::WindowEnd, Expr::value(b.window_end))
            .col_expr(
                T::PlannedDate,
                Expr::value(b.window_start.with_timezone(&state.tz).date_naive()),
            )
            .col_expr(T::UpdatedAt, Expr::value(now))
            .col_expr(T::RescheduledAt, Expr::value(now));
        let asked = task
            .status_reason
            .as_deref()
            .is_some_and(|r| r.starts_with(super::reports::MOVE_REQUESTED_FLAG));
        if asked {
            update = update
                .col_expr(T::NeedsAttention, Expr::value(false))
                .col_expr(T::StatusReason, Expr::value(Option::<String>::None));
        }
        let done = update
            .filter(T::Id.eq(id))
            .filter(T::Status.is_in([status::OPEN, status::CLAIMED]))
            .exec(&txn)
            .await?;
        if done.rows_affected != 1 {
            txn.rollback().await?;
            return Err(ApiError::state(
                "visit_not_open",
                task.status.clone(),
                format!(
                    "该走访当前状态为「{}」，不能再改期",
                    status_label(&task.status)
                ),
            ));
        }
        let moved = visit_task::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        let (messages, holders) =
            notify::produce::moved(&txn, &state.config.reminders, state.tz, &moved, now).await?;
        audit::record(
            &txn,
            Some(auth.0.user_id),
            "reschedule_visit",
            "visit_task",
            Some(id),
            json!({
                "from": [task.window_start, task.window_end],
                "to": [moved.window_start, moved.window_end],
                "reason": b.reason.trim(),
            }),
        )
        .await?;
        txn.commit().await?;
        // The holders' other visits are weighed against the new time.
        feed_sees(state, &[id], &holders).await;
        Ok(Json(Rescheduled {
            id,
            status: moved.status,
            window_start: moved.window_start,
            window_end: moved.window_end,
            planned_date: moved.planned_date,
            messages,
        }))
    }

    /// One visit. Those holding it see the family's name, address, phone, location and
    /// notes for visitors until `visits.details_grace_hours` after the window (counselling
    /// notes if they are counsellors); coordinators of the family's region see who holds it
    /// and the counselling notes; a volunteer who could take it sees category, village and
    /// distance. Reads of the family's details are audited. Anyone else: 404.
    #[oai(path = "/visits/:id", method = "get")]
    async fn get(
        &self,
        auth: Auth,
        /// The visit (a UUID).
        id: Path<String>,
    ) -> ApiResult<Json<VisitDetail>> {
        let id = path_id("id", &id.0)?;
        let state = &self.0;
        let db = &state.db;
        let ctx = &auth.0;
        let (task, fam) = task_and_family(db, id).await?;
        let village = region::Entity::find_by_id(fam.region_id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("走访"))?;
        let now = Utc::now();
        let holding = crate::visits::holds(db, &task, ctx.user_id).await?;
        let coordinator = match ctx.manager_scope() {
            Ok(scope) => scope.contains(&village.path),
            Err(_) => false,
        };
        let me = volunteer::Entity::find()
            .filter(volunteer::Column::UserId.eq(ctx.user_id))
            .one(db)
            .await?;
        let could_take = match &me {
            Some(v) if !holding && v.status == VolunteerStatus::Approved => {
                // Theirs to see, open and not full; whether they have room for it this
                // week is the claim's business.
                task.status == status::OPEN
                    && task.claims_count < task.volunteers_needed
                    && task.window_end > now
                    && visible(&taker_of(v), &offer_of(&task, &fam)).is_ok()
            }
            _ => false,
        };
        if !(holding || coordinator || could_take) {
            return Err(ApiError::NotFound("走访"));
        }
        let details_until =
            task.window_end + Duration::hours(state.config.visits.details_grace_hours);
        let details = holding && now < details_until;
        let counsellor = me
            .as_ref()
            .is_some_and(|v| v.skills.0.iter().any(|s| s == Skill::Counselling.code()));
        let counsel = coordinator || (details && counsellor);
        let distance_km = me
            .as_ref()
            .and_then(|v| Point::from_opt(v.home_lat, v.home_lng))
            .zip(Point::from_opt(fam.lat, fam.lng))
            .map(|(h, f)| approx_km(h.distance_m(f)));
        let my_claim = match claim_of(db, task.id, ctx.user_id).await? {
            Some(c) if c.status == task_claim::ACTIVE => Some(claim_view(state, &c, &task)),
            _ => None,
        };
        let holders = if coordinator {
            Some(holders_of(db, &task).await?)
        } else {
            None
        };
        if details || counsel {
            audit::record(
                db,
                Some(ctx.user_id),
                "read_visit_details",
                "visit_task",
                Some(task.id),
                json!({"family": fam.id, "details": details, "counsel_notes": counsel}),
            )
            .await?;
        }
        let card = FamilyCard {
            category: fam.category,
            category_label: fam.category.label().into(),
            village: village.name,
            distance_km,
            family_id: coordinator.then_some(fam.id),
            name: details.then(|| fam.head_name.clone()),
            address: details.then(|| fam.address.clone()),
            phone: if details { fam.phone.clone() } else { None },
            lat: if details { fam.lat } else { None },
            lng: if details { fam.lng } else { None },
            visitor_notes: details.then(|| fam.visitor_notes.clone()),
        };
        Ok(Json(VisitDetail {
            kinds: kinds_of(&task.kind, &task.kinds),
            required_skills: skills_of(&task.required_skills),
            reasons: (details || coordinator)
                .then(|| task.reasons.clone().map(|r| r.0).unwrap_or_default()),
            counsel_notes: counsel.then(|| fam.counsel_notes.clone()),
            details_until: holding.then_some(details_until),
            family: card,
            holding,
            my_claim,
            holders,
            id: task.id,
            kind: task.kind,
            channel: task.channel,
            status: task.status,
            window_start: task.window_start,
            window_end: task.window_end,
            planned_date: task.planned_date,
            preferred_time: task.preferred_time,
            visitor_gender: task.visitor_gender,
            volunteers_needed: task.volunteers_needed,
            claims_count: task.claims_count,
            gentle: task.gentle,
            first_visit: task.first_visit,
        }))
    }

    /// The visits I hold — claimed as a volunteer, or pre-assigned to me as 一帮一 cadre:
    /// `upcoming` (soonest first) or `past` (latest first). Pages continue with `cursor`.
    #[oai(path = "/me/visits", method = "get")]
    async fn mine(
        &self,
        auth: Auth,
        /// `upcoming` (default) or `past`.
        when: Query<Option<When>>,
        cursor: Query<Option<String>>,
        /// Visits per page, 1 to 50 (default 20).
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<MyVisitsPage>> {
        let state = &self.0;
        let db = &state.db;
        let user = auth.0.user_id;
        let when = when.0.unwrap_or(When::Upcoming);
        let limit = check_limit(limit.0, MAX_LIMIT)?;
        let cursor: Option<MineCursor> = cursor.0.as_deref().map(decode_cursor).transpose()?;
        if cursor.as_ref().is_some_and(|c| c.w != when) {
            return Err(ApiError::field(
                "cursor",
                "cursor 属于另一个列表，请从第一页重新开始",
            ));
        }
        use visit_task::Column as T;
        let now = Utc::now();
        let upcoming = Condition::any().add(T::Status.eq(status::IN_PROGRESS)).add(
            Condition::all()
                .add(T::Status.is_in([status::OPEN, status::CLAIMED]))
                .add(T::WindowEnd.gt(now)),
        );
        let mut select = visit_task::Entity::find().filter(crate::visits::held_by(user));
        select = match when {
            When::Upcoming => select.filter(upcoming),
            When::Past => select
                .filter(upcoming.not())
                .filter(T::Status.ne(status::CANCELLED)),
        };
        if let Some(c) = &cursor {
            let s = DateTime::from_timestamp_nanos(c.s);
            select = select.filter(match when {
                When::Upcoming => Condition::any().add(T::WindowStart.gt(s)).add(
                    Condition::all()
                        .add(T::WindowStart.eq(s))
                        .add(T::Id.gt(c.i)),
                ),
                When::Past => Condition::any().add(T::WindowStart.lt(s)).add(
                    Condition::all()
                        .add(T::WindowStart.eq(s))
                        .add(T::Id.lt(c.i)),
                ),
            });
        }
        select = match when {
            When::Upcoming => select.order_by_asc(T::WindowStart).order_by_asc(T::Id),
            When::Past => select.order_by_desc(T::WindowStart).order_by_desc(T::Id),
        };
        let mut rows = select.limit(limit as u64 + 1).all(db).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = match (more, rows.last()) {
            (true, Some(t)) => Some(encode_cursor(&MineCursor {
                w: when,
                s: nanos(t.window_start),
                i: t.id,
            })),
            _ => None,
        };
        let families: HashMap<Uuid, (FamilyCategory, Uuid)> = family::Entity::find()
            .select_only()
            .columns([
                family::Column::Id,
                family::Column::Category,
                family::Column::RegionId,
            ])
            .filter(family::Column::Id.is_in(rows.iter().map(|t| t.family_id)))
            .into_tuple::<(Uuid, FamilyCategory, Uuid)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(id, c, r)| (id, (c, r)))
            .collect();
        let villages = crate::visits::village_names(db, families.values().map(|f| f.1)).await?;
        let items = rows
            .into_iter()
            .filter_map(|t| {
                let (category, region) = *families.get(&t.family_id)?;
                Some(MyVisit {
                    kinds: kinds_of(&t.kind, &t.kinds),
                    role: if t.assigned_cadre_id == Some(user) {
                        "cadre".into()
                    } else {
                        "volunteer".into()
                    },
                    category,
                    category_label: category.label().into(),
                    village: villages.get(&region).cloned().unwrap_or_default(),
                    id: t.id,
                    kind: t.kind,
                    channel: t.channel,
                    status: t.status,
                    window_start: t.window_start,
                    window_end: t.window_end,
                    planned_date: t.planned_date,
                    preferred_time: t.preferred_time,
                })
            })
            .collect();
        Ok(Json(MyVisitsPage { items, next_cursor }))
    }
}

/// Takes one free place of `task` for `user` inside the caller's transaction (which holds
/// the volunteer's lock and has checked the rules): moves the visit's count with the
/// conditional UPDATE that only one taker can win per place, and writes the claim (reusing
/// `existing`, a claim given back earlier). None when there was no place to take.
pub(crate) async fn take_place(
    txn: &impl ConnectionTrait,
    task: &visit_task::Model,
    existing: Option<task_claim::Model>,
    user: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<task_claim::Model>, DbErr> {
    // The arbiter: only one claim can move the count past each free place.
    use visit_task::Column as T;
    let taken = visit_task::Entity::update_many()
        .col_expr(T::ClaimsCount, Expr::col(T::ClaimsCount).add(1))
        .col_expr(
            T::Status,
            Expr::case(
                Expr::col(T::ClaimsCount)
                    .add(1)
                    .gte(Expr::col(T::VolunteersNeeded)),
                status::CLAIMED,
            )
            .finally(status::OPEN)
            .into(),
        )
        .col_expr(T::UpdatedAt, Expr::value(now))
        .filter(T::Id.eq(task.id))
        .filter(T::Status.eq(status::OPEN))
        .filter(Expr::col(T::ClaimsCount).lt(Expr::col(T::VolunteersNeeded)))
        .filter(T::AssignToCadre.eq(false))
        .filter(T::AssignedCadreId.is_null())
        .filter(T::WindowEnd.gt(now))
        .exec(txn)
        .await?;
    if taken.rows_affected != 1 {
        return Ok(None);
    }
    let claim = match existing {
        Some(c) => {
            // Given back earlier by the volunteer: the same row holds again.
            let mut row: task_claim::ActiveModel = c.into();
            row.status = Set(task_claim::ACTIVE.into());
            row.claimed_at = Set(now);
            row.released_at = Set(None);
            row.released_by = Set(None);
            row.update(txn).await?
        }
        None => {
            task_claim::ActiveModel {
                id: Set(Uuid::now_v7()),
                task_id: Set(task.id),
                volunteer_id: Set(user),
                status: Set(task_claim::ACTIVE.into()),
                claimed_at: Set(now),
                released_at: Set(None),
                released_by: Set(None),
            }
            .insert(txn)
            .await?
        }
    };
    Ok(Some(claim))
}

/// Visits this instance changed (their holders or state), into the feed's index at once,
/// and the volunteers whose holdings changed read afresh (other instances see it at their
/// next refresh). Call after the commit: a failure here only leaves it to the next
/// refresh of this one too.
pub(crate) async fn feed_sees(state: &AppState, ids: &[Uuid], volunteers: &[Uuid]) {
    for v in volunteers {
        state.feed_takers.remove(&v.to_string());
    }
    if let Err(e) = state.feed.reload(&state.db, ids).await {
        tracing::warn!(error = %e, "the feed's index will see a visit's change at its next refresh");
    }
}

/// Every visit changed since `since` (a run this instance made, which began then), into
/// the feed's index at once; the volunteers' holdings are read afresh.
pub(crate) async fn feed_catches_up(state: &AppState, since: DateTime<Utc>) {
    state.feed_takers.clear();
    if let Err(e) = state.feed.catch_up(&state.db, since).await {
        tracing::warn!(error = %e, "the feed's index will see the changes at its next refresh");
    }
}

/// The family's village when it lies in `scope`.
async fn family_region_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    fam: &family::Model,
) -> ApiResult<Option<region::Model>> {
    Ok(region::Entity::find_by_id(fam.region_id)
        .one(db)
        .await?
        .filter(|r| scope.contains(&r.path)))
}

/// Ends `claim` and frees its place on the visit, inside the caller's transaction (which
/// holds the volunteer's lock). `by` is who released it.
pub(crate) async fn release_in(
    txn: &impl ConnectionTrait,
    claim: task_claim::Model,
    task: &visit_task::Model,
    by: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<(task_claim::Model, visit_task::Model)> {
    use visit_task::Column as T;
    let freed = visit_task::Entity::update_many()
        .col_expr(T::ClaimsCount, Expr::col(T::ClaimsCount).sub(1))
        .col_expr(T::Status, Expr::value(status::OPEN))
        .col_expr(T::UpdatedAt, Expr::value(now))
        .filter(T::Id.eq(task.id))
        .filter(T::Status.is_in([status::OPEN, status::CLAIMED]))
        .filter(T::ClaimsCount.gt(0))
        .exec(txn)
        .await?;
    if freed.rows_affected != 1 {
        // Changed since it was read (checked in, cancelled): the caller rolls back.
        let now_status = visit_task::Entity::find_by_id(task.id)
            .one(txn)
            .await?
            .map_or_else(|| status::CANCELLED.to_string(), |t| t.status);
        return Err(ApiError::state(
            "visit_not_open",
            now_status.clone(),
            format!(
                "该走访当前状态为「{}」，不能取消认领",
                status_label(&now_status)
            ),
        ));
    }
    let volunteer = claim.volunteer_id;
    let mut row: task_claim::ActiveModel = claim.into();
    row.status = Set(task_claim::RELEASED.into());
    row.released_at = Set(Some(now));
    row.released_by = Set(Some(by));
    let claim = row.update(txn).await?;
    let task = visit_task::Entity::find_by_id(task.id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("走访"))?;
    // Their reminders, and the family's word of them coming, are no longer true.
    notify::produce::released(txn, &task, volunteer).await?;
    Ok((claim, task))
}

/// Who holds a visit: its volunteers, and the cadre it is assigned to.
async fn holders_of(
    db: &impl ConnectionTrait,
    task: &visit_task::Model,
) -> ApiResult<Vec<HolderView>> {
    let claims = task_claim::Entity::find()
        .filter(task_claim::Column::TaskId.eq(task.id))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .order_by_asc(task_claim::Column::ClaimedAt)
        .all(db)
        .await?;
    let mut ids: Vec<Uuid> = claims.iter().map(|c| c.volunteer_id).collect();
    ids.extend(task.assigned_cadre_id);
    let names: HashMap<Uuid, String> = app_user::Entity::find()
        .select_only()
        .columns([app_user::Column::Id, app_user::Column::Name])
        .filter(app_user::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut out: Vec<HolderView> = claims
        .into_iter()
        .map(|c| HolderView {
            name: names.get(&c.volunteer_id).cloned().unwrap_or_default(),
            user_id: c.volunteer_id,
            role: Role::Volunteer.code().into(),
            claimed_at: Some(c.claimed_at),
        })
        .collect();
    if let Some(cadre) = task.assigned_cadre_id {
        out.push(HolderView {
            name: names.get(&cadre).cloned().unwrap_or_default(),
            user_id: cadre,
            role: Role::Cadre.code().into(),
            claimed_at: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_lists_are_padded_with_empty_windows() {
        let day = |d: i64| DateTime::UNIX_EPOCH + Duration::days(20_000 + d);
        let three: Vec<Window> = (0..3).map(|d| Window::new(day(d), day(d + 1))).collect();
        let out = padded(three.iter().copied());
        assert_eq!(out.len(), 4);
        assert_eq!(out[..3], three[..]);
        assert_eq!(out[3].start, out[3].end, "the filler is empty");
        assert!(padded(std::iter::empty()).is_empty());
        assert_eq!(padded(three[..2].iter().copied()).len(), 2);
    }
}

//! Events (活动): collective birthdays (集体庆生), festival gatherings, training. A
//! coordinator sets the date, place and places; for a collective birthday the app offers
//! the families whose members' birthdays — lunar where they keep lunar — fall in the month.
//! Families are invited and reply; volunteers sign up while there are places; after the
//! event the coordinator records who came.
//!
//! Places are counted on the event row and raised by one conditional update each
//! (`… SET n = n + 1 WHERE n < limit`), so the last place goes to one person only.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{
    FamilyStatus, event, event_invitation, event_signup, family, family_member, volunteer,
};
use poem_openapi::{
    Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use scheduler::calendar::{self, CalendarKind};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
    sea_query::{Expr, ExprTrait},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    Page, Paging, Tag,
    community::{begin, finish, my_families, my_family, region_names},
    families, in_scope, regions,
};
use crate::{
    app::AppState,
    audit,
    auth::{Auth, Ctx, Manager, Scope},
    error::{ApiError, ApiResult},
    input::{Input, Validate, opt_text, range, text},
    notify::{
        produce::{self, Msg},
        remind::key,
        templates,
    },
};

pub struct Api(pub Arc<AppState>);

#[derive(Enum, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// 集体庆生
    Birthday,
    /// 节日联欢
    Festival,
    /// 培训
    Training,
    /// 其他
    Other,
}

impl EventKind {
    fn code(self) -> &'static str {
        match self {
            Self::Birthday => "birthday",
            Self::Festival => "festival",
            Self::Training => "training",
            Self::Other => "other",
        }
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Where it is held for: a region in my scope.
    pub region_id: Uuid,
    pub kind: EventKind,
    pub title: String,
    pub description: Option<String>,
    /// The place.
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Places for families.
    pub capacity: i32,
    /// Volunteers wanted (0: none).
    #[serde(default)]
    pub volunteer_slots: i32,
    /// For a collective birthday: the month whose birthdays it celebrates (1–12).
    pub birthday_month: Option<i32>,
}

impl Validate for NewEvent {
    fn validate(&self) -> ApiResult<()> {
        text("title", &self.title, 1, 64)?;
        opt_text("description", self.description.as_deref(), 2000)?;
        text("location", &self.location, 1, 128)?;
        range("capacity", self.capacity, 1, 10_000)?;
        range("volunteer_slots", self.volunteer_slots, 0, 1_000)?;
        if self.ends_at <= self.starts_at {
            return Err(ApiError::field("ends_at", "结束时间应晚于开始时间"));
        }
        if self.starts_at < Utc::now() {
            return Err(ApiError::field("starts_at", "开始时间不能早于现在"));
        }
        match (self.kind, self.birthday_month) {
            (EventKind::Birthday, Some(m)) => range("birthday_month", m, 1, 12),
            (_, Some(_)) => Err(ApiError::field(
                "birthday_month",
                "只有集体庆生活动有庆生月份",
            )),
            _ => Ok(()),
        }
    }
}

/// What changes on an event; fields left out stay as they were.
#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventChange {
    pub title: Option<String>,
    pub description: Option<String>,
    /// The place.
    pub location: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Places for families: not fewer than the families who accepted.
    pub capacity: Option<i32>,
    /// Volunteers wanted: not fewer than those signed up.
    pub volunteer_slots: Option<i32>,
}

impl Validate for EventChange {
    fn validate(&self) -> ApiResult<()> {
        if let Some(t) = &self.title {
            text("title", t, 1, 64)?;
        }
        opt_text("description", self.description.as_deref(), 2000)?;
        if let Some(l) = &self.location {
            text("location", l, 1, 128)?;
        }
        if let Some(c) = self.capacity {
            range("capacity", c, 1, 10_000)?;
        }
        if let Some(v) = self.volunteer_slots {
            range("volunteer_slots", v, 0, 1_000)?;
        }
        if let Some(at) = self.starts_at
            && at < Utc::now()
        {
            return Err(ApiError::field("starts_at", "开始时间不能早于现在"));
        }
        Ok(())
    }
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelEvent {
    /// Why, for the record (kept in the audit log; the messages do not show it).
    pub reason: String,
}

impl Validate for CancelEvent {
    fn validate(&self) -> ApiResult<()> {
        text("reason", &self.reason, 1, 200)
    }
}

#[derive(Object)]
pub struct EventView {
    pub id: Uuid,
    pub region_id: Uuid,
    pub region: String,
    pub kind: String,
    pub title: String,
    pub description: String,
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: String,
    pub capacity: i32,
    pub accepted: i32,
    pub volunteer_slots: i32,
    pub volunteers: i32,
    pub birthday_month: Option<i32>,
    /// For a volunteer: whether I signed up.
    pub signed_up: Option<bool>,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invitations {
    /// Families in my scope (at most 500 at once).
    pub family_ids: Vec<Uuid>,
}

impl Validate for Invitations {
    fn validate(&self) -> ApiResult<()> {
        if self.family_ids.is_empty() || self.family_ids.len() > 500 {
            return Err(ApiError::field("family_ids", "一次邀请 1 到 500 户"));
        }
        Ok(())
    }
}

#[derive(Object)]
pub struct Invited {
    pub invited: u32,
    /// Invited before: left as they were.
    pub already: u32,
}

#[derive(Object)]
pub struct InvitationView {
    pub family_id: Uuid,
    pub village: String,
    pub head_name: String,
    pub status: String,
    pub replied_at: Option<DateTime<Utc>>,
    pub attended: Option<bool>,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub accept: bool,
    /// Only for someone in several families.
    pub family_id: Option<Uuid>,
}

impl Validate for Reply {}

/// An invitation as the family sees it.
#[derive(Object)]
pub struct FamilyEvent {
    pub event_id: Uuid,
    pub kind: String,
    pub title: String,
    /// What the coordinator wrote about it (what to bring, who comes).
    pub description: String,
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub event_status: String,
    /// invited, accepted, declined.
    pub reply: String,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyAttendance {
    pub family_id: Uuid,
    pub attended: bool,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolunteerAttendance {
    pub user_id: Uuid,
    pub attended: bool,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attendance {
    #[serde(default)]
    pub families: Vec<FamilyAttendance>,
    #[serde(default)]
    pub volunteers: Vec<VolunteerAttendance>,
}

impl Validate for Attendance {
    fn validate(&self) -> ApiResult<()> {
        if self.families.is_empty() && self.volunteers.is_empty() {
            return Err(ApiError::field("families", "请填写出席情况"));
        }
        if self.families.len() + self.volunteers.len() > 2000 {
            return Err(ApiError::field("families", "一次至多记录 2000 条"));
        }
        Ok(())
    }
}

#[derive(Object)]
pub struct AttendanceRecorded {
    pub families: u32,
    pub volunteers: u32,
}

/// A family whose members' birthdays fall in the month, for a collective birthday.
#[derive(Object)]
pub struct BirthdayFamily {
    pub family_id: Uuid,
    pub village: String,
    pub head_name: String,
    /// The days in the month the birthdays are kept on.
    pub birthdays: Vec<chrono::NaiveDate>,
    /// Whether any of them is kept by the lunar calendar.
    pub lunar: bool,
}

fn view(e: event::Model, region: String, signed_up: Option<bool>) -> EventView {
    EventView {
        id: e.id,
        region_id: e.region_id,
        region,
        kind: e.kind,
        title: e.title,
        description: e.description,
        location: e.location,
        starts_at: e.starts_at,
        ends_at: e.ends_at,
        status: e.status,
        capacity: e.capacity,
        accepted: e.accepted_count,
        volunteer_slots: e.volunteer_slots,
        volunteers: e.volunteers_count,
        birthday_month: e.birthday_month,
        signed_up,
    }
}

async fn views(
    db: &impl ConnectionTrait,
    rows: Vec<event::Model>,
    mine: Option<&[Uuid]>,
) -> ApiResult<Vec<EventView>> {
    let names = region_names(db, rows.iter().map(|e| e.region_id)).await?;
    Ok(rows
        .into_iter()
        .map(|e| {
            let region = names.get(&e.region_id).cloned().unwrap_or_default();
            let signed = mine.map(|m| m.contains(&e.id));
            view(e, region, signed)
        })
        .collect())
}

async fn event_in_scope(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> ApiResult<event::Model> {
    let e = event::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("活动"))?;
    regions::find_in_scope(db, scope, e.region_id)
        .await
        .map_err(|_| ApiError::NotFound("活动"))?;
    Ok(e)
}

/// An event still ahead and not cancelled, or 409 with its state.
fn open_for_replies(e: &event::Model, now: DateTime<Utc>) -> ApiResult<()> {
    if e.status == event::CANCELLED {
        return Err(ApiError::state("closed", &e.status, "活动已取消"));
    }
    if e.starts_at <= now {
        return Err(ApiError::state(
            "closed",
            "started",
            "活动已开始，不能再报名或回复",
        ));
    }
    Ok(())
}

/// An event a coordinator may still change: not cancelled and not begun, or 409.
fn open_for_changes(e: &event::Model, now: DateTime<Utc>) -> ApiResult<()> {
    if e.status == event::CANCELLED {
        return Err(ApiError::state("closed", &e.status, "活动已取消"));
    }
    if e.starts_at <= now {
        return Err(ApiError::state(
            "closed",
            "started",
            "活动已开始，不能再修改或取消",
        ));
    }
    Ok(())
}

/// Tells the event's signed-up volunteers and the families invited who have not declined
/// (`template` with the event's day; nothing else, as it may show on a locked screen).
/// `moment` tells one change's messages from another's.
async fn tell_participants(
    txn: &DatabaseTransaction,
    tz: chrono_tz::Tz,
    e: &event::Model,
    template: &'static str,
    moment: &str,
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    let mut to: Vec<Uuid> = event_signup::Entity::find()
        .select_only()
        .column(event_signup::Column::UserId)
        .filter(event_signup::Column::EventId.eq(e.id))
        .into_tuple()
        .all(txn)
        .await?;
    let families: Vec<Uuid> = event_invitation::Entity::find()
        .select_only()
        .column(event_invitation::Column::FamilyId)
        .filter(event_invitation::Column::EventId.eq(e.id))
        .filter(event_invitation::Column::Status.ne(event_invitation::DECLINED))
        .into_tuple()
        .all(txn)
        .await?;
    for f in families {
        to.extend(produce::family_accounts(txn, f).await?);
    }
    to.sort();
    to.dedup();
    let date = e.starts_at.with_timezone(&tz).date_naive().to_string();
    let msgs = to
        .into_iter()
        .map(|to| Msg {
            to,
            template,
            payload: json!({"event_id": e.id, "date": date}),
            key: key(template, e.id, to, moment),
            at: now,
        })
        .collect();
    Ok(produce::queue(txn, msgs, now).await?)
}

/// The volunteer profile of the caller, or 403.
async fn my_volunteer(db: &impl ConnectionTrait, ctx: &Ctx) -> ApiResult<volunteer::Model> {
    volunteer::Entity::find()
        .filter(volunteer::Column::UserId.eq(ctx.user_id))
        .filter(volunteer::Column::Status.eq(entity::VolunteerStatus::Approved))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::Forbidden("仅已通过审核的志愿者可以报名".into()))
}

/// Events a volunteer of the region at `path` may join: held for that region, one above
/// it (the township, the county…) or one below it.
fn near(path: &str) -> Condition {
    let above: Vec<Uuid> = path
        .split('/')
        .filter_map(|s| s.parse::<Uuid>().ok())
        .collect();
    Condition::any()
        .add(event::Column::RegionId.is_in(above))
        .add(in_scope(
            &Scope::Subtrees(vec![path.to_string()]),
            event::Column::RegionId,
        ))
}

async fn region_path(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<String> {
    let path: Option<String> = entity::region::Entity::find_by_id(id)
        .select_only()
        .column(entity::region::Column::Path)
        .into_tuple()
        .one(db)
        .await?;
    path.ok_or(ApiError::NotFound("地区"))
}

/// One more (or one fewer) on a counter, within its limit; whether it moved.
async fn bump(
    txn: &DatabaseTransaction,
    id: Uuid,
    counter: event::Column,
    limit: event::Column,
    up: bool,
) -> ApiResult<bool> {
    let q = event::Entity::update_many().filter(event::Column::Id.eq(id));
    let q = if up {
        q.col_expr(counter, Expr::col(counter).add(1))
            .filter(Expr::col(counter).lt(Expr::col(limit)))
    } else {
        q.col_expr(counter, Expr::col(counter).sub(1))
            .filter(Expr::col(counter).gt(0))
    };
    Ok(q.exec(txn).await?.rows_affected == 1)
}

#[OpenApi(tag = "Tag::Events")]
impl Api {
    /// Plan an event for a region of my scope.
    #[oai(path = "/events", method = "post")]
    async fn create(&self, auth: Manager, body: Input<NewEvent>) -> ApiResult<Json<EventView>> {
        let scope = auth.0.manager_scope()?;
        let b = body.0;
        let txn = begin(&self.0.db).await?;
        let out = async {
            let region = regions::referenced(&txn, &scope, "region_id", b.region_id).await?;
            let e = event::ActiveModel {
                id: Set(Uuid::now_v7()),
                region_id: Set(region.id),
                kind: Set(b.kind.code().into()),
                title: Set(b.title.trim().into()),
                description: Set(b.description.unwrap_or_default().trim().into()),
                location: Set(b.location.trim().into()),
                starts_at: Set(b.starts_at),
                ends_at: Set(b.ends_at),
                capacity: Set(b.capacity),
                created_by: Set(auth.0.user_id),
                created_at: Set(Utc::now()),
                volunteer_slots: Set(b.volunteer_slots),
                volunteers_count: Set(0),
                accepted_count: Set(0),
                status: Set(event::PLANNED.into()),
                birthday_month: Set(b.birthday_month),
            }
            .insert(&txn)
            .await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "create_event",
                "event",
                Some(e.id),
                json!({"region": region.id}),
            )
            .await?;
            Ok(view(e, region.name, None))
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Events of my scope (or a region of it), soonest first; `from` hides earlier ones.
    #[oai(path = "/events", method = "get")]
    async fn list(
        &self,
        auth: Manager,
        region_id: Query<Option<Uuid>>,
        from: Query<Option<DateTime<Utc>>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<EventView>>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let scope = match region_id.0 {
            Some(rid) => Scope::Subtrees(vec![regions::find_in_scope(db, &scope, rid).await?.path]),
            None => scope,
        };
        let mut select = event::Entity::find().filter(in_scope(&scope, event::Column::RegionId));
        if let Some(from) = from.0 {
            select = select.filter(event::Column::StartsAt.gte(from));
        }
        let paging = Paging::new(page.0, per_page.0)?;
        let (rows, total) = paging
            .fetch(
                db,
                select
                    .order_by_asc(event::Column::StartsAt)
                    .order_by_asc(event::Column::Id),
            )
            .await?;
        Ok(Json(paging.wrap(views(db, rows, None).await?, total)))
    }

    /// The families of my scope (or a region of it) with a living member whose birthday
    /// is kept in `year`-`month`, lunar birthdays on their lunar day: whom a collective
    /// birthday could invite. Families who asked for no festive contact are left out.
    #[oai(path = "/events/birthday-families", method = "get")]
    async fn birthday_families(
        &self,
        auth: Manager,
        year: Query<i32>,
        month: Query<u32>,
        region_id: Query<Option<Uuid>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<BirthdayFamily>>> {
        let scope = auth.0.manager_scope()?;
        range("year", year.0, 1901, 2099)?;
        range("month", month.0, 1, 12)?;
        let paging = Paging::new(page.0, per_page.0)?;
        let db = &self.0.db;
        let families = families::scoped(db, &scope, region_id.0, None)
            .await?
            .filter(family::Column::Status.eq(FamilyStatus::Active))
            .order_by_asc(family::Column::RegisterNo)
            .all(db)
            .await?;
        let members = family_member::Entity::find()
            .filter(family_member::Column::Deceased.eq(false))
            .filter(family_member::Column::BirthMonth.is_not_null())
            .filter(family_member::Column::BirthDay.is_not_null())
            .filter(
                family_member::Column::FamilyId.in_subquery(
                    families::scoped(db, &scope, region_id.0, None)
                        .await?
                        .select_only()
                        .column(family::Column::Id)
                        .into_query(),
                ),
            )
            .all(db)
            .await?;
        let mut days: HashMap<Uuid, (Vec<chrono::NaiveDate>, bool)> = HashMap::new();
        for m in members {
            let (Some(bm), Some(bd)) = (m.birth_month, m.birth_day) else {
                continue;
            };
            let kind = match m.birth_calendar {
                entity::BirthCalendar::Solar => CalendarKind::Solar,
                entity::BirthCalendar::Lunar => CalendarKind::Lunar,
            };
            if bm < 1 || bd < 1 {
                continue;
            }
            if let Some(day) = calendar::birthday_in_month(
                kind,
                bm as u32,
                bd as u32,
                m.birth_leap_month,
                year.0,
                month.0,
            ) {
                let e = days.entry(m.family_id).or_default();
                e.0.push(day);
                e.1 |= kind == CalendarKind::Lunar;
            }
        }
        let chosen: Vec<family::Model> = families
            .into_iter()
            .filter(|f| days.contains_key(&f.id))
            .filter(|f| {
                f.do_not_disturb
                    .get("no_festive_visits")
                    .and_then(|v| v.as_bool())
                    != Some(true)
            })
            .collect();
        let total = chosen.len() as u64;
        let start = ((paging.page - 1) * paging.per_page) as usize;
        let slice: Vec<family::Model> = chosen
            .into_iter()
            .skip(start)
            .take(paging.per_page as usize)
            .collect();
        let names = region_names(db, slice.iter().map(|f| f.region_id)).await?;
        let items = slice
            .into_iter()
            .map(|f| {
                let (mut birthdays, lunar) = days.remove(&f.id).unwrap_or_default();
                birthdays.sort();
                BirthdayFamily {
                    village: names.get(&f.region_id).cloned().unwrap_or_default(),
                    family_id: f.id,
                    head_name: f.head_name,
                    birthdays,
                    lunar,
                }
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    #[oai(path = "/events/:id", method = "get")]
    async fn get(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<EventView>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let e = event_in_scope(db, &scope, id.0).await?;
        Ok(Json(views(db, vec![e], None).await?.remove(0)))
    }

    /// Change an event of my scope before it begins. Places cannot drop below the families
    /// who accepted or the volunteers signed up (422 naming `capacity` or
    /// `volunteer_slots`). A new day or place is told to the volunteers signed up and the
    /// families invited. 409 `closed` once cancelled or begun.
    #[oai(path = "/events/:id", method = "patch")]
    async fn change(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<EventChange>,
    ) -> ApiResult<Json<EventView>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let b = body.0;
        let txn = begin(&state.db).await?;
        let out = async {
            let before = event_in_scope(&txn, &scope, id.0).await?;
            let now = Utc::now();
            open_for_changes(&before, now)?;
            let starts_at = b.starts_at.unwrap_or(before.starts_at);
            let ends_at = b.ends_at.unwrap_or(before.ends_at);
            if ends_at <= starts_at {
                let field = if b.ends_at.is_some() {
                    "ends_at"
                } else {
                    "starts_at"
                };
                return Err(ApiError::field(field, "结束时间应晚于开始时间"));
            }
            let capacity = b.capacity.unwrap_or(before.capacity);
            let slots = b.volunteer_slots.unwrap_or(before.volunteer_slots);
            let trimmed = |v: Option<String>, was: &str| {
                v.map_or_else(|| was.to_string(), |v| v.trim().to_string())
            };
            let title = trimmed(b.title, &before.title);
            let description = trimmed(b.description, &before.description);
            let location = trimmed(b.location, &before.location);
            // One conditional update: a reply or sign-up between our read and this write
            // cannot leave more taken than there are places.
            let done = event::Entity::update_many()
                .col_expr(event::Column::Title, Expr::value(title))
                .col_expr(event::Column::Description, Expr::value(description))
                .col_expr(event::Column::Location, Expr::value(location))
                .col_expr(event::Column::StartsAt, Expr::value(starts_at))
                .col_expr(event::Column::EndsAt, Expr::value(ends_at))
                .col_expr(event::Column::Capacity, Expr::value(capacity))
                .col_expr(event::Column::VolunteerSlots, Expr::value(slots))
                .filter(event::Column::Id.eq(before.id))
                .filter(event::Column::Status.eq(event::PLANNED))
                .filter(event::Column::AcceptedCount.lte(capacity))
                .filter(event::Column::VolunteersCount.lte(slots))
                .exec(&txn)
                .await?;
            let e = event::Entity::find_by_id(before.id)
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("活动"))?;
            if done.rows_affected != 1 {
                open_for_changes(&e, now)?;
                if e.accepted_count > capacity {
                    return Err(ApiError::field(
                        "capacity",
                        format!("已有 {} 户接受邀请，名额不能少于此数", e.accepted_count),
                    ));
                }
                return Err(ApiError::field(
                    "volunteer_slots",
                    format!("已有 {} 名志愿者报名，名额不能少于此数", e.volunteers_count),
                ));
            }
            let moved = e.starts_at != before.starts_at
                || e.ends_at != before.ends_at
                || e.location != before.location;
            let told = if moved {
                let moment = format!("changed-{}", now.timestamp_millis());
                tell_participants(&txn, state.tz, &e, templates::EVENT_CHANGED, &moment, now)
                    .await?
            } else {
                0
            };
            let changed = |a: bool, name: &'static str| a.then_some(name);
            let fields: Vec<&str> = [
                changed(e.title != before.title, "title"),
                changed(e.description != before.description, "description"),
                changed(e.location != before.location, "location"),
                changed(e.starts_at != before.starts_at, "starts_at"),
                changed(e.ends_at != before.ends_at, "ends_at"),
                changed(e.capacity != before.capacity, "capacity"),
                changed(
                    e.volunteer_slots != before.volunteer_slots,
                    "volunteer_slots",
                ),
            ]
            .into_iter()
            .flatten()
            .collect();
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "change_event",
                "event",
                Some(e.id),
                json!({
                    "fields": fields,
                    "before": {"starts_at": before.starts_at, "ends_at": before.ends_at,
                               "location": before.location, "capacity": before.capacity,
                               "volunteer_slots": before.volunteer_slots},
                    "told": told,
                }),
            )
            .await?;
            Ok(views(&txn, vec![e], None).await?.remove(0))
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Cancel an event of my scope before it begins, with the reason (kept in the audit
    /// log). The volunteers signed up and the families invited are told it will not take
    /// place. 409 `closed` when already cancelled or begun.
    #[oai(path = "/events/:id/cancel", method = "post")]
    async fn cancel(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<CancelEvent>,
    ) -> ApiResult<Json<EventView>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let reason = body.0.reason.trim().to_string();
        let txn = begin(&state.db).await?;
        let out = async {
            let e = event_in_scope(&txn, &scope, id.0).await?;
            let now = Utc::now();
            open_for_changes(&e, now)?;
            let done = event::Entity::update_many()
                .col_expr(event::Column::Status, Expr::value(event::CANCELLED))
                .filter(event::Column::Id.eq(e.id))
                .filter(event::Column::Status.eq(event::PLANNED))
                .exec(&txn)
                .await?;
            if done.rows_affected != 1 {
                return Err(ApiError::state("closed", event::CANCELLED, "活动已取消"));
            }
            let e = event::Model {
                status: event::CANCELLED.into(),
                ..e
            };
            let told =
                tell_participants(&txn, state.tz, &e, templates::EVENT_CANCELLED, "once", now)
                    .await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "cancel_event",
                "event",
                Some(e.id),
                json!({"reason": reason, "told": told}),
            )
            .await?;
            Ok(views(&txn, vec![e], None).await?.remove(0))
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Invite families of my scope; each family's members who use the app are told.
    #[oai(path = "/events/:id/invitations", method = "post")]
    async fn invite(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<Invitations>,
    ) -> ApiResult<Json<Invited>> {
        let scope = auth.0.manager_scope()?;
        let state = &self.0;
        let mut ids = body.0.family_ids;
        ids.sort();
        ids.dedup();
        let txn = begin(&state.db).await?;
        let out = async {
            let e = event_in_scope(&txn, &scope, id.0).await?;
            let now = Utc::now();
            open_for_replies(&e, now)?;
            for (i, f) in ids.iter().enumerate() {
                families::find_in_scope(&txn, &scope, *f)
                    .await
                    .map_err(|_| {
                        ApiError::field(
                            format!("family_ids[{i}]"),
                            "家庭不存在或不在您的管辖范围内",
                        )
                    })?;
            }
            let before: Vec<Uuid> = event_invitation::Entity::find()
                .select_only()
                .column(event_invitation::Column::FamilyId)
                .filter(event_invitation::Column::EventId.eq(e.id))
                .filter(event_invitation::Column::FamilyId.is_in(ids.iter().copied()))
                .into_tuple()
                .all(&txn)
                .await?;
            let new: Vec<Uuid> = ids
                .iter()
                .copied()
                .filter(|f| !before.contains(f))
                .collect();
            if !new.is_empty() {
                event_invitation::Entity::insert_many(new.iter().map(|f| {
                    event_invitation::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        event_id: Set(e.id),
                        family_id: Set(*f),
                        status: Set(event_invitation::INVITED.into()),
                        invited_by: Set(auth.0.user_id),
                        replied_at: Set(None),
                        replied_by: Set(None),
                        attended: Set(None),
                        attendance_by: Set(None),
                        created_at: Set(now),
                    }
                }))
                .exec_without_returning(&txn)
                .await?;
            }
            let date = e
                .starts_at
                .with_timezone(&state.tz)
                .date_naive()
                .to_string();
            let mut msgs = Vec::new();
            for f in &new {
                for to in produce::family_accounts(&txn, *f).await? {
                    msgs.push(Msg {
                        to,
                        template: templates::EVENT_INVITATION,
                        payload: json!({"event_id": e.id, "date": date}),
                        key: key(templates::EVENT_INVITATION, e.id, to, "once"),
                        at: now,
                    });
                }
            }
            produce::queue(&txn, msgs, now).await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "invite_families",
                "event",
                Some(e.id),
                json!({"families": new.len()}),
            )
            .await?;
            Ok(Invited {
                invited: new.len() as u32,
                already: before.len() as u32,
            })
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// The families invited, with their replies and attendance.
    #[oai(path = "/events/:id/invitations", method = "get")]
    async fn invitations(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<InvitationView>>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let e = event_in_scope(db, &scope, id.0).await?;
        let paging = Paging::new(page.0, per_page.0)?;
        let (rows, total) = paging
            .fetch(
                db,
                event_invitation::Entity::find()
                    .filter(event_invitation::Column::EventId.eq(e.id))
                    .order_by_asc(event_invitation::Column::CreatedAt)
                    .order_by_asc(event_invitation::Column::Id),
            )
            .await?;
        let fams: HashMap<Uuid, family::Model> = family::Entity::find()
            .filter(family::Column::Id.is_in(rows.iter().map(|r| r.family_id)))
            .all(db)
            .await?
            .into_iter()
            .map(|f| (f.id, f))
            .collect();
        let names = region_names(db, fams.values().map(|f| f.region_id)).await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let f = fams.get(&r.family_id);
                InvitationView {
                    family_id: r.family_id,
                    village: f
                        .and_then(|f| names.get(&f.region_id))
                        .cloned()
                        .unwrap_or_default(),
                    head_name: f.map(|f| f.head_name.clone()).unwrap_or_default(),
                    status: r.status,
                    replied_at: r.replied_at,
                    attended: r.attended,
                }
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// Who came, once the event has begun: invited families and signed-up volunteers.
    /// All or nothing: one unknown family or volunteer and nothing is recorded.
    #[oai(path = "/events/:id/attendance", method = "post")]
    async fn attendance(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        body: Input<Attendance>,
    ) -> ApiResult<Json<AttendanceRecorded>> {
        let scope = auth.0.manager_scope()?;
        let b = body.0;
        let txn = begin(&self.0.db).await?;
        let out = async {
            let e = event_in_scope(&txn, &scope, id.0).await?;
            if e.starts_at > Utc::now() {
                return Err(ApiError::state(
                    "not_started",
                    &e.status,
                    "活动开始后才能记录出席",
                ));
            }
            for (i, a) in b.families.iter().enumerate() {
                let done = event_invitation::Entity::update_many()
                    .col_expr(event_invitation::Column::Attended, Expr::value(a.attended))
                    .col_expr(
                        event_invitation::Column::AttendanceBy,
                        Expr::value(auth.0.user_id),
                    )
                    .filter(event_invitation::Column::EventId.eq(e.id))
                    .filter(event_invitation::Column::FamilyId.eq(a.family_id))
                    .exec(&txn)
                    .await?;
                if done.rows_affected != 1 {
                    return Err(ApiError::field(
                        format!("families[{i}].family_id"),
                        "该家庭未受邀参加此活动",
                    ));
                }
            }
            for (i, a) in b.volunteers.iter().enumerate() {
                let done = event_signup::Entity::update_many()
                    .col_expr(event_signup::Column::Attended, Expr::value(a.attended))
                    .col_expr(
                        event_signup::Column::AttendanceBy,
                        Expr::value(auth.0.user_id),
                    )
                    .filter(event_signup::Column::EventId.eq(e.id))
                    .filter(event_signup::Column::UserId.eq(a.user_id))
                    .exec(&txn)
                    .await?;
                if done.rows_affected != 1 {
                    return Err(ApiError::field(
                        format!("volunteers[{i}].user_id"),
                        "该志愿者未报名此活动",
                    ));
                }
            }
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "record_attendance",
                "event",
                Some(e.id),
                json!({"families": b.families.len(), "volunteers": b.volunteers.len()}),
            )
            .await?;
            Ok(AttendanceRecorded {
                families: b.families.len() as u32,
                volunteers: b.volunteers.len() as u32,
            })
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Events I can sign up for as a volunteer: ahead, not cancelled, wanting volunteers,
    /// held for my region, one above or below it. Soonest first.
    #[oai(path = "/volunteer/events", method = "get")]
    async fn volunteer_events(
        &self,
        auth: Auth,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<EventView>>> {
        let db = &self.0.db;
        let v = my_volunteer(db, &auth.0).await?;
        let path = region_path(db, v.region_id).await?;
        let paging = Paging::new(page.0, per_page.0)?;
        let select = event::Entity::find()
            .filter(near(&path))
            .filter(event::Column::Status.eq(event::PLANNED))
            .filter(event::Column::StartsAt.gt(Utc::now()))
            .filter(event::Column::VolunteerSlots.gt(0))
            .order_by_asc(event::Column::StartsAt)
            .order_by_asc(event::Column::Id);
        let (rows, total) = paging.fetch(db, select).await?;
        let mine: Vec<Uuid> = event_signup::Entity::find()
            .select_only()
            .column(event_signup::Column::EventId)
            .filter(event_signup::Column::UserId.eq(auth.0.user_id))
            .filter(event_signup::Column::EventId.is_in(rows.iter().map(|e| e.id)))
            .into_tuple()
            .all(db)
            .await?;
        Ok(Json(
            paging.wrap(views(db, rows, Some(&mine)).await?, total),
        ))
    }

    /// Sign up as a volunteer, while there are places; once per event.
    #[oai(path = "/events/:id/signup", method = "post")]
    async fn sign_up(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<EventView>> {
        let txn = begin(&self.0.db).await?;
        let out = async {
            let v = my_volunteer(&txn, &auth.0).await?;
            let path = region_path(&txn, v.region_id).await?;
            let e = event::Entity::find_by_id(id.0)
                .filter(near(&path))
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("活动"))?;
            open_for_replies(&e, Utc::now())?;
            let already = event_signup::Entity::find()
                .filter(event_signup::Column::EventId.eq(e.id))
                .filter(event_signup::Column::UserId.eq(auth.0.user_id))
                .one(&txn)
                .await?;
            if already.is_some() {
                return Err(ApiError::conflict("already_signed_up", "您已报名此活动"));
            }
            if !bump(
                &txn,
                e.id,
                event::Column::VolunteersCount,
                event::Column::VolunteerSlots,
                true,
            )
            .await?
            {
                return Err(ApiError::state("full", "full", "志愿者名额已满"));
            }
            event_signup::ActiveModel {
                id: Set(Uuid::now_v7()),
                event_id: Set(e.id),
                user_id: Set(auth.0.user_id),
                family_id: Set(None),
                created_at: Set(Utc::now()),
                attended: Set(None),
                attendance_by: Set(None),
            }
            .insert(&txn)
            .await
            .map_err(|err| match ApiError::from(err) {
                ApiError::Conflict { .. } => {
                    ApiError::conflict("already_signed_up", "您已报名此活动")
                }
                other => other,
            })?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "event_signup",
                "event",
                Some(e.id),
                json!({}),
            )
            .await?;
            let e = event::Entity::find_by_id(e.id)
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("活动"))?;
            Ok(views(&txn, vec![e], Some(&[id.0])).await?.remove(0))
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// Withdraw my sign-up before the event: the place is free again.
    #[oai(path = "/events/:id/signup", method = "delete")]
    async fn withdraw(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<EventView>> {
        let txn = begin(&self.0.db).await?;
        let out = async {
            my_volunteer(&txn, &auth.0).await?;
            let e = event::Entity::find_by_id(id.0)
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("活动"))?;
            open_for_replies(&e, Utc::now())?;
            let gone = event_signup::Entity::delete_many()
                .filter(event_signup::Column::EventId.eq(e.id))
                .filter(event_signup::Column::UserId.eq(auth.0.user_id))
                .exec(&txn)
                .await?;
            if gone.rows_affected != 1 {
                return Err(ApiError::NotFound("报名"));
            }
            bump(
                &txn,
                e.id,
                event::Column::VolunteersCount,
                event::Column::VolunteerSlots,
                false,
            )
            .await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "event_withdraw",
                "event",
                Some(e.id),
                json!({}),
            )
            .await?;
            let e = event::Entity::find_by_id(e.id)
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("活动"))?;
            Ok(views(&txn, vec![e], Some(&[])).await?.remove(0))
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }

    /// My family's invitations, soonest first.
    #[oai(path = "/family/events", method = "get")]
    async fn family_events(
        &self,
        auth: Auth,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<FamilyEvent>>> {
        let db = &self.0.db;
        let families = my_families(db, &auth.0).await?;
        if families.is_empty() {
            return Err(ApiError::Forbidden("仅家庭成员可以使用".into()));
        }
        let paging = Paging::new(page.0, per_page.0)?;
        let (rows, total) = paging
            .fetch(
                db,
                event_invitation::Entity::find()
                    .filter(event_invitation::Column::FamilyId.is_in(families))
                    .order_by_desc(event_invitation::Column::CreatedAt),
            )
            .await?;
        let events: HashMap<Uuid, event::Model> = event::Entity::find()
            .filter(event::Column::Id.is_in(rows.iter().map(|r| r.event_id)))
            .all(db)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let items = rows
            .into_iter()
            .filter_map(|r| {
                let e = events.get(&r.event_id)?;
                Some(FamilyEvent {
                    event_id: e.id,
                    kind: e.kind.clone(),
                    title: e.title.clone(),
                    description: e.description.clone(),
                    location: e.location.clone(),
                    starts_at: e.starts_at,
                    ends_at: e.ends_at,
                    event_status: e.status.clone(),
                    reply: r.status,
                })
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// Accept or decline an invitation, until the event begins; accepting needs a place.
    #[oai(path = "/family/events/:id/reply", method = "post")]
    async fn reply(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Input<Reply>,
    ) -> ApiResult<Json<FamilyEvent>> {
        let b = body.0;
        let txn = begin(&self.0.db).await?;
        let out = async {
            let f = my_family(&txn, &auth.0, b.family_id).await?;
            let inv = event_invitation::Entity::find()
                .filter(event_invitation::Column::EventId.eq(id.0))
                .filter(event_invitation::Column::FamilyId.eq(f.id))
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("邀请"))?;
            let e = event::Entity::find_by_id(id.0)
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("活动"))?;
            open_for_replies(&e, Utc::now())?;
            let was = inv.status == event_invitation::ACCEPTED;
            if b.accept && !was {
                if !bump(
                    &txn,
                    e.id,
                    event::Column::AcceptedCount,
                    event::Column::Capacity,
                    true,
                )
                .await?
                {
                    return Err(ApiError::state("full", "full", "活动名额已满"));
                }
            } else if !b.accept && was {
                bump(
                    &txn,
                    e.id,
                    event::Column::AcceptedCount,
                    event::Column::Capacity,
                    false,
                )
                .await?;
            }
            let status = if b.accept {
                event_invitation::ACCEPTED
            } else {
                event_invitation::DECLINED
            };
            let mut row: event_invitation::ActiveModel = inv.into();
            row.status = Set(status.into());
            row.replied_at = Set(Some(Utc::now()));
            row.replied_by = Set(Some(auth.0.user_id));
            row.update(&txn).await?;
            audit::record(
                &txn,
                Some(auth.0.user_id),
                "event_reply",
                "event",
                Some(e.id),
                json!({"family": f.id, "accept": b.accept}),
            )
            .await?;
            Ok(FamilyEvent {
                event_id: e.id,
                kind: e.kind,
                title: e.title,
                description: e.description,
                location: e.location,
                starts_at: e.starts_at,
                ends_at: e.ends_at,
                event_status: e.status,
                reply: status.into(),
            })
        }
        .await;
        Ok(Json(finish(txn, out).await?))
    }
}

//! Queuing the messages of [`super::remind`]: each a `notification` row written in the
//! transaction of the change that causes it, with a dedupe key unique per reason, object,
//! recipient and moment, so that a cause running twice queues nothing twice. Thin: it
//! loads, asks `remind` when, and writes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Days, Duration, Utc};
use chrono_tz::Tz;
use entity::{
    Role, VolunteerStatus, app_user, family, family_household, family_member, help_request,
    notification, region, role_grant, task_claim, team, visit_task, visit_task::status, volunteer,
    wish, wish_answer,
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::remind::{self, RemindersConfig, key, key_prefix};
use crate::eligibility::{self, Held, Offer, Point, Taker, Window};

/// One message to queue.
#[derive(Clone, Debug)]
pub struct Msg {
    pub to: Uuid,
    pub template: &'static str,
    pub payload: Value,
    pub key: String,
    /// When it should go out.
    pub at: DateTime<Utc>,
}

fn row(m: Msg, now: DateTime<Utc>) -> notification::ActiveModel {
    notification::ActiveModel {
        // Lateness is measured from the moment the reminder was meant for.
        due_at: Set(Some(m.at)),
        ..notification::ActiveModel::pending(m.to, m.template, m.payload, m.key, m.at, now)
    }
}

/// Queues messages; one whose key is queued already is left as it is.
pub async fn queue(
    db: &impl ConnectionTrait,
    msgs: Vec<Msg>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    insert(db, msgs, now, false).await
}

/// Queues reminders of a visit someone took; a reminder dropped when they gave the same
/// visit back is due again (same visit, person and moment: the same reminder).
async fn queue_again(
    db: &impl ConnectionTrait,
    msgs: Vec<Msg>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    insert(db, msgs, now, true).await
}

async fn insert(
    db: &impl ConnectionTrait,
    msgs: Vec<Msg>,
    now: DateTime<Utc>,
    revive: bool,
) -> Result<u64, DbErr> {
    use notification::Column as C;
    if msgs.is_empty() {
        return Ok(0);
    }
    let mut on_conflict = OnConflict::column(C::DedupeKey);
    if revive {
        on_conflict
            .update_columns([
                C::Status,
                C::NextAttemptAt,
                C::Attempts,
                C::LastError,
                C::InboxAt,
                // The same moment can serve another window (a visit moved by an hour keeps
                // its evening-before reminder): the text follows the visit.
                C::Payload,
                C::DueAt,
            ])
            .action_and_where(
                Expr::col((notification::Entity, C::Status)).eq(notification::DROPPED),
            );
    } else {
        on_conflict.do_nothing();
    }
    let mut total = 0;
    for chunk in msgs.chunks(500) {
        total += notification::Entity::insert_many(chunk.iter().cloned().map(|m| row(m, now)))
            .on_conflict(on_conflict.clone())
            .exec_without_returning(db)
            .await?;
    }
    Ok(total)
}

/// Drops `to`'s pending messages whose keys start with one of `prefixes`, with the reason.
async fn drop_pending(
    db: &impl ConnectionTrait,
    to: Uuid,
    prefixes: &[String],
    why: &str,
) -> Result<u64, DbErr> {
    use notification::Column as C;
    let mut any = Condition::any();
    for p in prefixes {
        any = any.add(C::DedupeKey.like(format!("{p}%")));
    }
    Ok(notification::Entity::update_many()
        .col_expr(C::Status, Expr::value(notification::DROPPED))
        .col_expr(C::LastError, Expr::value(why))
        .filter(C::RecipientId.eq(to))
        .filter(C::Status.eq(notification::PENDING))
        .filter(any)
        .exec(db)
        .await?
        .rows_affected)
}

// ---------------------------------------------------------------------------------------
// Who hears

/// Who hears about a family: the accounts of its living members who use the app, or, for
/// a family none of whom does, its household account (made on first need), so that the
/// message still reaches it by SMS or its cadre's call and waits in an inbox.
pub async fn family_accounts(db: &impl ConnectionTrait, family: Uuid) -> Result<Vec<Uuid>, DbErr> {
    let mut ids: Vec<Uuid> = family_member::Entity::find()
        .select_only()
        .column(family_member::Column::UserId)
        .filter(family_member::Column::FamilyId.eq(family))
        .filter(family_member::Column::UserId.is_not_null())
        .filter(family_member::Column::Deceased.eq(false))
        .into_tuple::<Option<Uuid>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        ids.extend(household_account(db, family).await?);
    }
    Ok(ids)
}

/// The family's household account, made now if it has none (None: no such family). Two
/// producers making it at once keep the first one made.
async fn household_account(db: &impl ConnectionTrait, family: Uuid) -> Result<Option<Uuid>, DbErr> {
    let existing = || async {
        family_household::Entity::find_by_id(family)
            .one(db)
            .await
            .map(|h| h.map(|h| h.user_id))
    };
    if let Some(user) = existing().await? {
        return Ok(Some(user));
    }
    let Some(head) = family::Entity::find_by_id(family).one(db).await? else {
        return Ok(None);
    };
    let contact: Option<String> = family_member::Entity::find()
        .select_only()
        .column(family_member::Column::Name)
        .filter(family_member::Column::FamilyId.eq(family))
        .filter(family_member::Column::Deceased.eq(false))
        .order_by_desc(family_member::Column::PrimaryContact)
        .order_by_asc(family_member::Column::CreatedAt)
        .into_tuple()
        .one(db)
        .await?;
    let now = Utc::now();
    let user = Uuid::now_v7();
    // No phone and no WeChat: nobody logs in as the household; its number stays the
    // family's (and its members'), where the SMS adapter reads it.
    app_user::ActiveModel {
        id: Set(user),
        name: Set(contact.unwrap_or(head.head_name)),
        phone: Set(None),
        openid: Set(None),
        unionid: Set(None),
        status: Set(entity::UserStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    let made = family_household::Entity::insert(family_household::ActiveModel {
        family_id: Set(family),
        user_id: Set(user),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(family_household::Column::FamilyId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if made == 0 {
        app_user::Entity::delete_by_id(user).exec(db).await?;
        return existing().await;
    }
    Ok(Some(user))
}

/// Every coordinator and the region path their grant covers.
pub struct Coordinators(Vec<(Uuid, String)>);

impl Coordinators {
    pub async fn load(db: &impl ConnectionTrait) -> Result<Self, DbErr> {
        let grants: Vec<(Uuid, Option<Uuid>)> = role_grant::Entity::find()
            .select_only()
            .columns([role_grant::Column::UserId, role_grant::Column::RegionId])
            .filter(role_grant::Column::Role.eq(Role::Coordinator))
            .into_tuple()
            .all(db)
            .await?;
        let paths = region_paths(db, grants.iter().filter_map(|g| g.1)).await?;
        Ok(Self(
            grants
                .into_iter()
                .filter_map(|(user, region)| Some((user, paths.get(&region?)?.clone())))
                .collect(),
        ))
    }

    /// Every (coordinator, region path of their grant).
    pub fn grants(&self) -> &[(Uuid, String)] {
        &self.0
    }

    /// Who hears of a routine matter at the region at `path` (a visit missed or unclaimed,
    /// a low rating, a wish waiting): the nearest tier up with a coordinator (village,
    /// township, county, city), not every tier above it, or a city coordinator would hear
    /// of every village. Escalations go further up themselves (see `emergency`).
    pub fn of(&self, path: &str) -> Vec<Uuid> {
        super::emergency::tiers(path, &self.0)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Every coordinator whose region subtree holds the region at `path`, all tiers up:
    /// for what a tier above plans for (a festival season's shortfall, which a county
    /// meets by moving volunteers between townships).
    pub fn over(&self, path: &str) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = self
            .0
            .iter()
            .filter(|(_, p)| path.starts_with(p.as_str()))
            .map(|(u, _)| *u)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

async fn region_paths(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(1000) {
        let rows: Vec<(Uuid, String)> = region::Entity::find()
            .select_only()
            .columns([region::Column::Id, region::Column::Path])
            .filter(region::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// The region path of each family.
async fn family_paths(
    db: &impl ConnectionTrait,
    families: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    let mut ids: Vec<Uuid> = families.into_iter().collect();
    ids.sort();
    ids.dedup();
    let mut regions: Vec<(Uuid, Uuid)> = Vec::new();
    for chunk in ids.chunks(1000) {
        let rows: Vec<(Uuid, Uuid)> = family::Entity::find()
            .select_only()
            .columns([family::Column::Id, family::Column::RegionId])
            .filter(family::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        regions.extend(rows);
    }
    let paths = region_paths(db, regions.iter().map(|r| r.1)).await?;
    Ok(regions
        .into_iter()
        .filter_map(|(f, r)| Some((f, paths.get(&r)?.clone())))
        .collect())
}

/// The coordinators of one family: the nearest tier up with one ([`Coordinators::of`]).
pub async fn coordinators_of(db: &impl ConnectionTrait, family: Uuid) -> Result<Vec<Uuid>, DbErr> {
    let paths = family_paths(db, [family]).await?;
    let Some(path) = paths.get(&family) else {
        return Ok(Vec::new());
    };
    Ok(Coordinators::load(db).await?.of(path))
}

fn day_of(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).date_naive().to_string()
}

/// What every message about one visit carries: the visit, its first day, and the window
/// it was computed for (a moved visit's old messages are recognisably stale).
fn visit_payload(task: &visit_task::Model, tz: Tz) -> Value {
    json!({
        "task_id": task.id,
        "date": day_of(task.window_start, tz),
        "window_start": task.window_start.to_rfc3339(),
        "when": remind::when_text(task.window_start, task.window_end, task.preferred_time.as_deref(), tz),
    })
}

fn with(mut payload: Value, extra: Value) -> Value {
    if let (Some(p), Value::Object(e)) = (payload.as_object_mut(), extra) {
        p.extend(e);
    }
    payload
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

// ---------------------------------------------------------------------------------------
// The visit's life

/// A volunteer's reminders of a visit they hold (the evening before, two hours before).
fn reminders_of(
    volunteer: Uuid,
    task: &visit_task::Model,
    base: &Value,
    now: DateTime<Utc>,
    c: &RemindersConfig,
    tz: Tz,
) -> Vec<Msg> {
    remind::holder_reminders(
        task.window_start,
        task.preferred_time.as_deref(),
        now,
        c,
        tz,
    )
    .into_iter()
    .map(|(template, at)| Msg {
        to: volunteer,
        template,
        payload: base.clone(),
        key: key(template, task.id, volunteer, at.timestamp()),
        at,
    })
    .collect()
}

/// The family's "who is coming" now (its key `tag` and this moment) and its day-before
/// reminder, for each of its accounts.
#[allow(clippy::too_many_arguments)]
fn family_told(
    members: &[Uuid],
    task: &visit_task::Model,
    coming: &Value,
    base: &Value,
    tag: &str,
    now: DateTime<Utc>,
    c: &RemindersConfig,
    tz: Tz,
) -> Vec<Msg> {
    let day_before = remind::family_day_before(task.window_start, now, c, tz);
    let mut msgs = Vec::new();
    for &member in members {
        msgs.push(Msg {
            to: member,
            template: remind::VISIT_COMING,
            payload: coming.clone(),
            key: key(
                remind::VISIT_COMING,
                task.id,
                member,
                format!("{tag}:{}", micros(now)),
            ),
            at: now,
        });
        if let Some(at) = day_before {
            msgs.push(Msg {
                to: member,
                template: remind::FAMILY_DAY_BEFORE,
                payload: base.clone(),
                key: key(remind::FAMILY_DAY_BEFORE, task.id, member, at.timestamp()),
                at,
            });
        }
    }
    msgs
}

/// A volunteer took a visit at `now`: their confirmation and reminders, and the family's
/// "who is coming" and day-before reminder.
pub async fn claimed(
    db: &impl ConnectionTrait,
    c: &RemindersConfig,
    tz: Tz,
    task: &visit_task::Model,
    volunteer_user: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let base = visit_payload(task, tz);
    let mut msgs = vec![Msg {
        to: volunteer_user,
        template: remind::CLAIM_CONFIRMED,
        payload: base.clone(),
        key: key(
            remind::CLAIM_CONFIRMED,
            task.id,
            volunteer_user,
            micros(now),
        ),
        at: now,
    }];
    msgs.extend(reminders_of(volunteer_user, task, &base, now, c, tz));

    // Who is coming, as a locked screen may show it: surname and team.
    let (name, team_name, members) = coming_and_told(db, volunteer_user, task.family_id).await?;
    let coming = with(
        base.clone(),
        json!({"volunteer": remind::surname(&name), "team": team_name}),
    );
    let tag = volunteer_user.to_string();
    msgs.extend(family_told(
        &members, task, &coming, &base, &tag, now, c, tz,
    ));
    // One statement: the confirmation and notice carry this moment in their keys, so only
    // the reminders can meet a row of an earlier claim (dropped when it was given back).
    queue_again(db, msgs, now).await
}

/// A volunteer's name and team name ("" without one), and the family's accounts that hear
/// of them ([`family_accounts`]), in one round trip: a claim waits for it.
async fn coming_and_told(
    db: &impl ConnectionTrait,
    user: Uuid,
    family: Uuid,
) -> Result<(String, String, Vec<Uuid>), DbErr> {
    let query = Query::select()
        .column((app_user::Entity, app_user::Column::Name))
        .column((team::Entity, team::Column::Name))
        .column((family_member::Entity, family_member::Column::UserId))
        .from(app_user::Entity)
        .left_join(
            family_member::Entity,
            Condition::all()
                .add(Expr::col((family_member::Entity, family_member::Column::FamilyId)).eq(family))
                .add(
                    Expr::col((family_member::Entity, family_member::Column::UserId)).is_not_null(),
                )
                .add(Expr::col((family_member::Entity, family_member::Column::Deceased)).eq(false)),
        )
        .left_join(
            volunteer::Entity,
            Expr::col((volunteer::Entity, volunteer::Column::UserId))
                .equals((app_user::Entity, app_user::Column::Id)),
        )
        .left_join(
            team::Entity,
            Expr::col((team::Entity, team::Column::Id))
                .equals((volunteer::Entity, volunteer::Column::TeamId)),
        )
        .and_where(Expr::col((app_user::Entity, app_user::Column::Id)).eq(user))
        .to_owned();
    let rows = db.query_all(&query).await?;
    let Some(first) = rows.first() else {
        return Ok((
            String::new(),
            String::new(),
            family_accounts(db, family).await?,
        ));
    };
    let name: String = first.try_get_by_index(0)?;
    let team: Option<String> = first.try_get_by_index(1)?;
    let mut members = Vec::new();
    for row in &rows {
        members.extend(row.try_get_by_index::<Option<Uuid>>(2)?);
    }
    members.sort();
    members.dedup();
    if members.is_empty() {
        members.extend(household_account(db, family).await?);
    }
    Ok((name, team.unwrap_or_default(), members))
}

/// A volunteer gave a visit back or was released from it (`task` as it is after): their
/// pending confirmation and reminders are dropped, so are the family's "who is coming"
/// naming them, and the family's day-before reminder when nobody holds the visit now.
pub async fn released(
    db: &impl ConnectionTrait,
    task: &visit_task::Model,
    volunteer_user: Uuid,
) -> Result<u64, DbErr> {
    let why = "the volunteer no longer holds the visit";
    let mine: Vec<String> = remind::HOLDER_REMINDERS
        .iter()
        .map(|t| key_prefix(t, task.id, volunteer_user))
        .collect();
    let mut dropped = drop_pending(db, volunteer_user, &mine, why).await?;
    let nobody = task.claims_count <= 0 && task.assigned_cadre_id.is_none();
    for member in family_accounts(db, task.family_id).await? {
        let mut theirs = vec![format!(
            "{}{volunteer_user}:",
            key_prefix(remind::VISIT_COMING, task.id, member)
        )];
        if nobody {
            theirs.push(key_prefix(remind::FAMILY_DAY_BEFORE, task.id, member));
        }
        dropped += drop_pending(db, member, &theirs, why).await?;
    }
    Ok(dropped)
}

/// A visit was moved to another window (`task` as it is after): each holder hears of it,
/// the reminders queued for the old window are dropped and queued again for the new one
/// (the holders' and, when someone holds it, the family's day-before). Returns the
/// messages queued and the volunteers holding it.
pub async fn moved(
    db: &impl ConnectionTrait,
    c: &RemindersConfig,
    tz: Tz,
    task: &visit_task::Model,
    now: DateTime<Utc>,
) -> Result<(u64, Vec<Uuid>), DbErr> {
    let why = "the visit was moved: its messages for the new time replace it";
    let base = visit_payload(task, tz);
    let volunteers: Vec<Uuid> = task_claim::Entity::find()
        .select_only()
        .column(task_claim::Column::VolunteerId)
        .filter(task_claim::Column::TaskId.eq(task.id))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .into_tuple()
        .all(db)
        .await?;
    let mut msgs = Vec::new();
    let mut holders = volunteers.clone();
    holders.extend(task.assigned_cadre_id.filter(|c| !volunteers.contains(c)));
    for holder in &holders {
        let old: Vec<String> = remind::HOLDER_REMINDERS
            .iter()
            .map(|t| key_prefix(t, task.id, holder))
            .collect();
        drop_pending(db, *holder, &old, why).await?;
        msgs.push(Msg {
            to: *holder,
            template: remind::VISIT_MOVED,
            payload: base.clone(),
            key: key(remind::VISIT_MOVED, task.id, holder, micros(now)),
            at: now,
        });
    }
    // Reminders are a volunteer's (a cadre's arrangements are their own, as at the claim).
    for volunteer in &volunteers {
        msgs.extend(reminders_of(*volunteer, task, &base, now, c, tz));
    }
    if let Some(first) = volunteers.first() {
        // The family hears the new time with who is coming, as at the claim.
        let (name, team_name, members) = coming_and_told(db, *first, task.family_id).await?;
        let coming = with(
            base.clone(),
            json!({"volunteer": remind::surname(&name), "team": team_name, "moved": true}),
        );
        for member in &members {
            let old = [
                key_prefix(remind::VISIT_COMING, task.id, member),
                key_prefix(remind::FAMILY_DAY_BEFORE, task.id, member),
            ];
            drop_pending(db, *member, &old, why).await?;
        }
        msgs.extend(family_told(
            &members, task, &coming, &base, "moved", now, c, tz,
        ));
    }
    Ok((queue_again(db, msgs, now).await?, volunteers))
}

/// A volunteer declined the visit a coordinator assigned them (proposal `proposal`): the
/// nearest coordinators and whoever applied it hear, in the inbox as usual (quiet hours
/// and the daily cap apply).
pub async fn declined(
    db: &impl ConnectionTrait,
    tz: Tz,
    task: &visit_task::Model,
    proposal: Uuid,
    applied_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut to = coordinators_of(db, task.family_id).await?;
    to.extend(applied_by);
    to.sort();
    to.dedup();
    let date = task.window_start.with_timezone(&tz).date_naive();
    let template = super::templates::ASSIGNMENT_DECLINED;
    let msgs = to
        .into_iter()
        .map(|to| Msg {
            to,
            template,
            payload: json!({"task_id": task.id, "date": date.to_string()}),
            key: key(template, proposal, to, "once"),
            at: now,
        })
        .collect();
    queue(db, msgs, now).await
}

/// The report is in: the family is asked to confirm, and the coordinators hear of risk
/// signs (never which: the message may show on a locked screen).
pub async fn reported(
    db: &impl ConnectionTrait,
    tz: Tz,
    task: &visit_task::Model,
    risk_signs: &[String],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let base = visit_payload(task, tz);
    let mut msgs: Vec<Msg> = family_accounts(db, task.family_id)
        .await?
        .into_iter()
        .map(|member| Msg {
            to: member,
            template: remind::PLEASE_CONFIRM,
            payload: base.clone(),
            key: key(remind::PLEASE_CONFIRM, task.id, member, "report"),
            at: now,
        })
        .collect();
    if !risk_signs.is_empty() {
        msgs.extend(to_coordinators(db, task, remind::RISK_SIGNS, base, "report", now).await?);
    }
    queue(db, msgs, now).await
}

/// The family confirmed with a rating: a low one reaches the coordinators.
pub async fn rated(
    db: &impl ConnectionTrait,
    c: &RemindersConfig,
    tz: Tz,
    task: &visit_task::Model,
    rating: Option<i32>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let Some(r) = rating.filter(|r| *r <= c.low_rating) else {
        return Ok(0);
    };
    let payload = with(visit_payload(task, tz), json!({"rating": r}));
    let msgs = to_coordinators(db, task, remind::LOW_RATING, payload, "confirm", now).await?;
    queue(db, msgs, now).await
}

async fn to_coordinators(
    db: &impl ConnectionTrait,
    task: &visit_task::Model,
    template: &'static str,
    payload: Value,
    moment: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Msg>, DbErr> {
    Ok(coordinators_of(db, task.family_id)
        .await?
        .into_iter()
        .map(|to| Msg {
            to,
            template,
            payload: payload.clone(),
            key: key(template, task.id, to, moment),
            at: now,
        })
        .collect())
}

/// Visits the unconfirmed job just flagged: the coordinators are told, once per visit.
pub async fn unconfirmed(
    db: &impl ConnectionTrait,
    tz: Tz,
    tasks: &[visit_task::Model],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    per_visit_to_coordinators(db, tz, tasks, remind::VISIT_UNCONFIRMED, now).await
}

async fn per_visit_to_coordinators(
    db: &impl ConnectionTrait,
    tz: Tz,
    tasks: &[visit_task::Model],
    template: &'static str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if tasks.is_empty() {
        return Ok(0);
    }
    let coordinators = Coordinators::load(db).await?;
    let paths = family_paths(db, tasks.iter().map(|t| t.family_id)).await?;
    let mut msgs = Vec::new();
    for t in tasks {
        let Some(path) = paths.get(&t.family_id) else {
            continue;
        };
        let payload = visit_payload(t, tz);
        for to in coordinators.of(path) {
            msgs.push(Msg {
                to,
                template,
                payload: payload.clone(),
                key: key(template, t.id, to, "once"),
                at: now,
            });
        }
    }
    queue(db, msgs, now).await
}

/// Marks visits whose window passed unfulfilled as missed and tells the coordinators of
/// each, in one transaction (the hourly `missed` job). Returns how many were missed.
pub async fn mark_missed(
    db: &DatabaseConnection,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    let missed = scheduler::generate::mark_missed(&txn, now).await?;
    per_visit_to_coordinators(&txn, tz, &missed, remind::VISIT_MISSED, now).await?;
    scheduler::generate::flag_overdue_calls(&txn, now).await?;
    txn.commit().await?;
    Ok(missed.len() as u64)
}

// ---------------------------------------------------------------------------------------
// Wishes and help

/// A wish was answered: the family hears (call where an answer is written; no API writes
/// answers yet).
pub async fn wish_answered(
    db: &impl ConnectionTrait,
    tz: Tz,
    w: &wish::Model,
    answer: &wish_answer::Model,
) -> Result<u64, DbErr> {
    let payload = json!({"wish_id": w.id, "date": day_of(answer.created_at, tz)});
    let msgs = family_accounts(db, w.family_id)
        .await?
        .into_iter()
        .map(|to| Msg {
            to,
            template: remind::WISH_ANSWERED,
            payload: payload.clone(),
            key: key(remind::WISH_ANSWERED, answer.id, to, "once"),
            at: answer.created_at,
        })
        .collect();
    queue(db, msgs, answer.created_at).await
}

/// A help request came in: the family is told it was received, and its first responders
/// are alerted at once, marked `"emergency": true` so that quiet hours and caps do not
/// hold it back (see [`super::emergency`] for who they are and how the alerts are sent
/// without waiting for the dispatcher). Returns the alerts to send now; `claim` is how
/// long they are ours before a dispatcher may take them.
pub async fn help_requested(
    db: &impl ConnectionTrait,
    tz: Tz,
    h: &help_request::Model,
    claim: Duration,
) -> Result<Vec<Uuid>, DbErr> {
    super::emergency::queue_alerts(db, h, 0, h.created_at, claim, tz).await
}

/// The festival surge warning (daily job): when the next season is `surge.warn_weeks` or
/// less away, every township whose volunteers will not cover it is told to the
/// coordinators over it, once per township, season and coordinator. Returns the warnings
/// queued.
pub async fn surge_warnings(
    db: &DatabaseConnection,
    opts: &scheduler::generate::GenerateOptions,
    c: &scheduler::surge::SurgeConfig,
    today: chrono::NaiveDate,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use scheduler::surge;
    let spec = c.spec().map_err(DbErr::Custom)?;
    let Some(season) = surge::next_season(spec, today) else {
        return Ok(0);
    };
    if !surge::warn_now(&season, today, c.warn_weeks) {
        return Ok(0);
    }
    let loads = surge::demand(db, opts, "", &season).await?;
    let short: Vec<surge::Forecast> = surge::assess(&loads, season.days())
        .into_iter()
        .filter(|f| f.shortfall > 0)
        .collect();
    let ids: Vec<Uuid> = short.iter().filter_map(|f| last_id(&f.path)).collect();
    let names: HashMap<Uuid, String> = region::Entity::find()
        .select_only()
        .columns([region::Column::Id, region::Column::Name])
        .filter(region::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let coordinators = Coordinators::load(db).await?;
    let mut msgs = Vec::new();
    for f in short {
        let Some(id) = last_id(&f.path) else { continue };
        let payload = json!({
            "region_id": id,
            "region": names.get(&id).cloned().unwrap_or_default(),
            "required": f.required,
            "capacity": f.capacity,
            "shortfall": f.shortfall,
            "season": season.year,
            "date": season.start.to_string(),
        });
        for to in coordinators.over(&f.path) {
            msgs.push(Msg {
                to,
                template: super::templates::SURGE_WARNING,
                payload: payload.clone(),
                key: key(
                    super::templates::SURGE_WARNING,
                    format!("{id}:{}", season.year),
                    to,
                    "once",
                ),
                at: now,
            });
        }
    }
    queue(db, msgs, now).await
}

/// The region a path ends with.
pub fn last_id(path: &str) -> Option<Uuid> {
    path.split('/').rfind(|s| !s.is_empty())?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// The daily job

/// What one daily run queued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Daily {
    /// Coordinators told of visits short of volunteers.
    pub unclaimed: u64,
    /// Coordinators told of unanswered wishes.
    pub wishes: u64,
    /// Volunteers sent a digest of new visits.
    pub digests: u64,
}

/// The daily job: escalations to coordinators (a count each, once a day) and the
/// volunteers' digest of new visits they could take (at most one a day). Running it again
/// the same day queues nothing more.
pub async fn daily(
    db: &DatabaseConnection,
    c: &RemindersConfig,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Daily, DbErr> {
    let today = now.with_timezone(&tz).date_naive();
    let coordinators = Coordinators::load(db).await?;
    let mut msgs = Vec::new();

    // Visits opening within `unclaimed_days` (local days) still short of volunteers.
    let horizon = today
        .checked_add_days(Days::new(c.unclaimed_days as u64 + 1))
        .unwrap_or(today);
    let short: Vec<(Uuid, Uuid, DateTime<Utc>)> = visit_task::Entity::find()
        .select_only()
        .columns([
            visit_task::Column::Id,
            visit_task::Column::FamilyId,
            visit_task::Column::WindowStart,
        ])
        .filter(visit_task::Column::Status.eq(status::OPEN))
        .filter(visit_task::Column::AssignToCadre.eq(false))
        .filter(visit_task::Column::AssignedCadreId.is_null())
        .filter(
            Expr::col(visit_task::Column::ClaimsCount)
                .lt(Expr::col(visit_task::Column::VolunteersNeeded)),
        )
        .filter(visit_task::Column::WindowEnd.gt(now))
        .filter(visit_task::Column::WindowStart.lt(eligibility::local_midnight(tz, horizon)))
        .into_tuple()
        .all(db)
        .await?;
    let paths = family_paths(db, short.iter().map(|v| v.1)).await?;
    let mut per: BTreeMap<Uuid, (u64, DateTime<Utc>)> = BTreeMap::new();
    for (_, family, start) in &short {
        for to in paths
            .get(family)
            .map(|p| coordinators.of(p))
            .unwrap_or_default()
        {
            let e = per.entry(to).or_insert((0, *start));
            e.0 += 1;
            e.1 = Ord::min(e.1, *start);
        }
    }
    for (to, (count, earliest)) in per {
        msgs.push(Msg {
            to,
            template: remind::VISITS_UNCLAIMED,
            payload: json!({"count": count, "days": c.unclaimed_days, "date": day_of(earliest, tz)}),
            key: key(remind::VISITS_UNCLAIMED, "daily", to, today),
            at: now,
        });
    }
    let unclaimed = msgs.len() as u64;

    // Wishes open and unanswered after `wish_days`.
    let answered = Query::select()
        .column(wish_answer::Column::WishId)
        .from(wish_answer::Entity)
        .to_owned();
    let waiting: Vec<Uuid> = wish::Entity::find()
        .select_only()
        .column(wish::Column::FamilyId)
        .filter(wish::Column::Status.eq("open"))
        .filter(wish::Column::CreatedAt.lt(now - Duration::days(c.wish_days)))
        .filter(wish::Column::Id.not_in_subquery(answered))
        .into_tuple()
        .all(db)
        .await?;
    let paths = family_paths(db, waiting.iter().copied()).await?;
    let mut per: BTreeMap<Uuid, u64> = BTreeMap::new();
    for family in &waiting {
        for to in paths
            .get(family)
            .map(|p| coordinators.of(p))
            .unwrap_or_default()
        {
            *per.entry(to).or_default() += 1;
        }
    }
    for (to, count) in per {
        msgs.push(Msg {
            to,
            template: remind::WISHES_UNANSWERED,
            payload: json!({"count": count, "days": c.wish_days, "date": today.to_string()}),
            key: key(remind::WISHES_UNANSWERED, "daily", to, today),
            at: now,
        });
    }
    let wishes = msgs.len() as u64 - unclaimed;

    let digests = new_visits(db, tz, now, &mut msgs).await?;
    queue(db, msgs, now).await?;
    Ok(Daily {
        unclaimed,
        wishes,
        digests,
    })
}

/// The volunteers' digest: for each approved volunteer with a home, the visits created
/// in the last day that they could take now (the feed's rules, [`eligibility::check`]).
async fn new_visits(
    db: &DatabaseConnection,
    tz: Tz,
    now: DateTime<Utc>,
    msgs: &mut Vec<Msg>,
) -> Result<u64, DbErr> {
    let today = now.with_timezone(&tz).date_naive();
    let fresh = visit_task::Entity::find()
        .filter(visit_task::Column::Status.eq(status::OPEN))
        .filter(visit_task::Column::AssignToCadre.eq(false))
        .filter(visit_task::Column::AssignedCadreId.is_null())
        .filter(visit_task::Column::CreatedAt.gte(now - Duration::days(1)))
        .filter(visit_task::Column::WindowEnd.gt(now))
        .all(db)
        .await?;
    if fresh.is_empty() {
        return Ok(0);
    }
    let mut homes: HashMap<Uuid, Point> = HashMap::new();
    let families: Vec<Uuid> = fresh.iter().map(|t| t.family_id).collect();
    for chunk in families.chunks(1000) {
        let rows: Vec<(Uuid, Option<f64>, Option<f64>)> = family::Entity::find()
            .select_only()
            .columns([family::Column::Id, family::Column::Lat, family::Column::Lng])
            .filter(family::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        homes.extend(
            rows.into_iter()
                .filter_map(|(id, lat, lng)| Some((id, Point::from_opt(lat, lng)?))),
        );
    }
    // Only visits somebody could reach (a family without a location is nobody's).
    let mut offers: Vec<Offer> = fresh
        .iter()
        .filter_map(|t| {
            let at = *homes.get(&t.family_id)?;
            Some(Offer {
                id: t.id,
                status: t.status.clone(),
                window: Window::new(t.window_start, t.window_end),
                volunteers_needed: t.volunteers_needed,
                claims_count: t.claims_count,
                required_skills: t.required_skills.0.clone(),
                assign_to_cadre: t.assign_to_cadre,
                assigned_cadre_id: t.assigned_cadre_id,
                family_at: Some(at),
            })
        })
        .collect();
    offers.sort_by(|a, b| lat_of(a).total_cmp(&lat_of(b)));

    let volunteers = volunteer::Entity::find()
        .filter(volunteer::Column::Status.eq(VolunteerStatus::Approved))
        .filter(volunteer::Column::HomeLat.is_not_null())
        .filter(volunteer::Column::HomeLng.is_not_null())
        .all(db)
        .await?;
    // What each holds ahead (their capacity and overlaps count).
    let claims: Vec<(Uuid, Uuid)> = task_claim::Entity::find()
        .select_only()
        .columns([task_claim::Column::VolunteerId, task_claim::Column::TaskId])
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .into_tuple()
        .all(db)
        .await?;
    let mut windows: HashMap<Uuid, Window> = HashMap::new();
    let ids: Vec<Uuid> = claims.iter().map(|c| c.1).collect();
    for chunk in ids.chunks(1000) {
        let rows: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = visit_task::Entity::find()
            .select_only()
            .columns([
                visit_task::Column::Id,
                visit_task::Column::WindowStart,
                visit_task::Column::WindowEnd,
            ])
            .filter(visit_task::Column::Id.is_in(chunk.iter().copied()))
            .filter(visit_task::Column::Status.is_in([
                status::OPEN,
                status::CLAIMED,
                status::IN_PROGRESS,
            ]))
            .filter(visit_task::Column::WindowEnd.gt(now - Duration::days(8)))
            .into_tuple()
            .all(db)
            .await?;
        windows.extend(rows.into_iter().map(|(id, s, e)| (id, Window::new(s, e))));
    }
    let mut held: HashMap<Uuid, Vec<Held>> = HashMap::new();
    for (user, id) in claims {
        if let Some(window) = windows.get(&id) {
            held.entry(user).or_default().push(Held {
                id,
                window: *window,
            });
        }
    }

    let mut queued = 0;
    for v in volunteers {
        let taker = Taker {
            skills: v.skills.0.clone(),
            home: Point::from_opt(v.home_lat, v.home_lng),
            max_distance_km: v.max_distance_km,
            weekly_capacity: v.weekly_capacity,
        };
        let Some(home) = taker.home else { continue };
        // Latitude bounds the search: a degree is about 111 km.
        let span = taker.reach_m() / 110_000.0 + 0.01;
        let lo = offers.partition_point(|o| lat_of(o) < home.lat - span);
        let mine = held.get(&v.user_id).map(Vec::as_slice).unwrap_or_default();
        let mut count = 0u64;
        let mut nearest = f64::MAX;
        for o in offers[lo..]
            .iter()
            .take_while(|o| lat_of(o) <= home.lat + span)
        {
            if let Ok(d) = eligibility::check(&taker, mine, o, tz) {
                count += 1;
                nearest = nearest.min(d.unwrap_or(f64::MAX));
            }
        }
        if count == 0 {
            continue;
        }
        let km = (nearest < f64::MAX).then(|| eligibility::approx_km(nearest));
        msgs.push(Msg {
            to: v.user_id,
            template: remind::NEW_VISITS,
            payload: json!({"count": count, "km": km, "date": today.to_string()}),
            key: key(remind::NEW_VISITS, "daily", v.user_id, today),
            at: now,
        });
        queued += 1;
    }
    Ok(queued)
}

fn lat_of(o: &Offer) -> f64 {
    o.family_at.map_or(f64::MAX, |p| p.lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_matters_reach_the_nearest_tier_with_a_coordinator_only() {
        let (city, county, town, village) = (
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Uuid::from_u128(3),
            Uuid::from_u128(4),
        );
        let c = Coordinators(vec![
            (city, "/c/".into()),
            (county, "/c/k/".into()),
            (town, "/c/k/t/".into()),
            (village, "/c/k/t/v/".into()),
        ]);
        assert_eq!(c.of("/c/k/t/v/"), vec![village]);
        // A village without its own coordinator: its township; then the county, the city.
        assert_eq!(c.of("/c/k/t/v2/"), vec![town]);
        assert_eq!(c.of("/c/k/t2/v/"), vec![county]);
        assert_eq!(c.of("/c/k2/"), vec![city]);
        assert!(c.of("/elsewhere/").is_empty());
        assert_eq!(c.over("/c/k/t/v2/"), vec![city, county, town]);
    }
}

//! The dispatcher: takes due messages from the outbox in batches and delivers each one.
//!
//! - Taking a batch is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)` that
//!   marks the rows `sending` until `now + notify.claim_secs` and counts the attempt: on
//!   PostgreSQL several dispatchers take disjoint batches; on SQLite the statement is atomic
//!   on its own. A dispatcher that dies leaves its rows to be taken again after the claim.
//! - Every later write is fenced by the attempt count it took the row with, so a row taken
//!   over by another dispatcher is not overwritten.
//! - One message at a time per person (and, through the cache, per openid across
//!   instances: a batch locks its openids together, in one round trip, and gives them
//!   back together): WeChat refuses concurrent sends to one openid (43108).
//! - Right after WeChat accepts, the row is marked sent and the grant spent in one short
//!   transaction: a crash can repeat at most the sends in flight at that moment.
//! - Before any channel: a message no longer true, or a reminder too late, is dropped; in
//!   quiet hours it waits (emergencies do not); past the person's daily cap it stays in
//!   the inbox and a digest is queued for the next morning; on a bereaved family's
//!   sensitive day good wishes are dropped and the rest speaks gently ([`super::timing`]).
//! - The chain: WeChat (a grant left) → SMS (the family consented, or an emergency; the
//!   per-number limits allow) → for a family, a phone-call visit for its paired cadre →
//!   the inbox alone. `channel` says what reached the person, `trail` every step tried.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration as StdDuration, Instant},
};

use chrono::{DateTime, Duration, Timelike, Utc};
use entity::{
    StringList, UserStatus, app_user, family, family_household, family_member,
    notification::{self, Column as C, channel},
    pairing, sms_message, task_claim, visit_task,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
    sea_query::{Expr, Func, LockBehavior, LockType, OnConflict, Order, Query},
};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    NotifyConfig, ledger,
    policy::{self, Failure, VisitNow},
    sms::{self, Sms, SmsError},
    templates::{self, Tone},
    timing,
};
use crate::{app::AppState, wechat::SubscribeMessage};

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Messages taken.
    pub taken: u32,
    /// Delivered as a WeChat subscribe message (and in the inbox).
    pub wechat: u32,
    /// Delivered to the inbox only: no grant, no WeChat account, no template, or WeChat
    /// failed too often.
    pub inbox: u32,
    /// WeChat failed for a passing reason: tried again later.
    pub retried: u32,
    /// WeChat refused for good (our bug): dead letters, still in the inbox.
    pub dead: u32,
    /// No longer true: not sent.
    pub dropped: u32,
    /// Not tried this time (another send to the person in flight, shutting down).
    pub put_back: u32,
    /// Delivered as an SMS (and in the inbox).
    pub sms: u32,
    /// Handed to the family's cadre as a phone-call visit (and in the inbox).
    pub call: u32,
    /// Waiting for quiet hours to end, or for the number's SMS limit.
    pub deferred: u32,
    /// Past the person's daily cap: in the inbox, with a digest the next morning.
    pub capped: u32,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.taken += o.taken;
        self.wechat += o.wechat;
        self.inbox += o.inbox;
        self.retried += o.retried;
        self.dead += o.dead;
        self.dropped += o.dropped;
        self.put_back += o.put_back;
        self.sms += o.sms;
        self.call += o.call;
        self.deferred += o.deferred;
        self.capped += o.capped;
    }
}

/// The dispatcher running in the background of `serve` or `nuanxin jobs`.
pub struct Dispatcher {
    stop: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    /// Sends due messages every `notify.interval_ms` (at once again while batches come
    /// back full).
    pub fn start(state: Arc<AppState>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(tokio::sync::Notify::new());
        let (s, w) = (stop.clone(), wake.clone());
        let task = tokio::spawn(async move {
            let config = &state.config.notify;
            let rest = StdDuration::from_millis(config.interval_ms.max(10));
            tracing::info!("notification dispatcher started");
            while !s.load(Ordering::SeqCst) {
                let full = match run_batch_until(&state, Utc::now(), &s).await {
                    Ok(stats) => u64::from(stats.taken) >= config.batch,
                    Err(e) => {
                        tracing::error!(error = %e, "dispatching notifications failed");
                        false
                    }
                };
                if !full {
                    tokio::select! {
                        _ = tokio::time::sleep(rest) => {}
                        _ = w.notified() => {}
                    }
                }
            }
        });
        Self { stop, wake, task }
    }

    /// Finishes the sends in flight, puts the rest of the batch back, and stops.
    pub async fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if tokio::time::timeout(StdDuration::from_secs(30), self.task)
            .await
            .is_err()
        {
            tracing::warn!("notification dispatcher still busy at shutdown");
        }
    }
}

/// Takes one batch of messages due at `now` and delivers them. Tests pass a later `now`
/// to reach retries.
pub async fn run_batch(state: &Arc<AppState>, now: DateTime<Utc>) -> Result<Stats, DbErr> {
    run_batch_until(state, now, &Arc::new(AtomicBool::new(false))).await
}

async fn run_batch_until(
    state: &Arc<AppState>,
    now: DateTime<Utc>,
    stop: &Arc<AtomicBool>,
) -> Result<Stats, DbErr> {
    let config = &state.config.notify;
    let started = Instant::now();
    let now = micros(now);
    let taken = take(&state.db, now, config.batch, config.claim_secs).await?;
    if taken.is_empty() {
        return Ok(Stats::default());
    }
    let t_take = started.elapsed();
    let facts = Facts::load(&state.db, &taken, now, state.tz, config.daily_cap).await?;
    let t_facts = started.elapsed();

    // Leave a margin before the claim runs out, so that no row is sent by two
    // dispatchers; what is not reached by then is put back.
    let claim = StdDuration::from_secs(config.claim_secs.max(1) as u64);
    let margin = StdDuration::from_millis(2 * state.config.wechat.timeout_ms);
    let deadline = started + claim.saturating_sub(margin).max(claim / 2);

    let mut by_person: BTreeMap<Uuid, Vec<notification::Model>> = BTreeMap::new();
    for m in taken {
        by_person.entry(m.recipient_id).or_default().push(m);
    }
    // One send in flight per openid, across dispatchers too: the openids of the batch are
    // locked together in one round trip, for as long as the batch may send (a dispatcher
    // that dies leaves them to expire with its claim), and each is given back as soon as
    // that person's messages are done, so an emergency waits for one person's sends at
    // most. Within the batch one task per person keeps their sends one after the other.
    let locks: Vec<(Uuid, String)> = by_person
        .keys()
        .filter(|p| {
            facts
                .grants
                .get(*p)
                .is_some_and(|g| g.values().any(|n| *n > 0))
        })
        .filter_map(|p| {
            let openid = facts.people.get(p)?.openid.as_deref()?;
            (!openid.is_empty()).then(|| (*p, format!("wechat_send:{openid}")))
        })
        .collect();
    let keys: Vec<String> = locks.iter().map(|(_, k)| k.clone()).collect();
    let holder: Arc<str> = Uuid::new_v4().to_string().into();
    let taken_locks = state.cache.put_many_if_absent(&keys, &holder, claim).await;
    let mut locked: HashMap<Uuid, String> = locks
        .into_iter()
        .zip(taken_locks)
        .filter_map(|(lock, ok)| ok.then_some(lock))
        .collect();
    let facts = Arc::new(facts);
    let (recorder, recording) = SentRecorder::start(&state.db, now);
    let permits = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    for (person, messages) in by_person {
        let (state, facts, permits, stop, recorder) = (
            state.clone(),
            facts.clone(),
            permits.clone(),
            stop.clone(),
            recorder.clone(),
        );
        let lock = locked.remove(&person);
        let holder = holder.clone();
        running.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let batch = Batch {
                state: &state,
                facts: &facts,
                recorder: &recorder,
                now,
            };
            let stats =
                deliver_to_one_person(&batch, messages, deadline, &stop, lock.is_some()).await;
            if let Some(key) = lock {
                state.cache.remove_if(&key, &holder).await;
            }
            stats
        });
    }
    drop(recorder);
    let mut stats = Stats::default();
    while let Some(done) = running.join_next().await {
        match done {
            Ok(s) => stats.add(&s),
            Err(e) => tracing::error!(error = %e, "a notification task failed"),
        }
    }
    if let Some(recording) = recording {
        recording.await.ok();
    }
    tracing::info!(
        ?stats,
        take_ms = t_take.as_millis() as u64,
        facts_ms = (t_facts - t_take).as_millis() as u64,
        sends_ms = (started.elapsed() - t_facts).as_millis() as u64,
        "notifications dispatched"
    );
    Ok(stats)
}

/// Timestamps with microsecond precision, so they compare equal after a round trip
/// through PostgreSQL (the inbox's cursor uses them).
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

/// Claims up to `batch` due messages for `claim_secs`, counting the attempt; a message
/// taken for the first time enters the inbox now.
async fn take(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    batch: u64,
    claim_secs: i64,
) -> Result<Vec<notification::Model>, DbErr> {
    use sea_orm::sea_query::ExprTrait;
    let due = Query::select()
        .column(C::Id)
        .from(notification::Entity)
        // Word for word the predicate of the index of waiting messages (migration 000015),
        // as a literal: a bound parameter would keep the planner from using it.
        .and_where(Expr::cust("status IN ('pending', 'sending')"))
        .and_where(Expr::col(C::NextAttemptAt).lte(now))
        .order_by(C::NextAttemptAt, Order::Asc)
        .limit(batch)
        // SQLite has no row locks (and needs none: the statement is atomic there).
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    let update = Query::update()
        .table(notification::Entity)
        .value(C::Status, notification::SENDING)
        .value(C::Attempts, Expr::col(C::Attempts).add(1))
        .value(
            C::NextAttemptAt,
            now + Duration::seconds(Ord::max(claim_secs, 1)),
        )
        .value(
            C::InboxAt,
            Func::coalesce([Expr::col(C::InboxAt), Expr::value(now)]),
        )
        // The moment it was meant for: SET reads the row as it was before the update.
        .value(
            C::DueAt,
            Func::coalesce([Expr::col(C::DueAt), Expr::col(C::NextAttemptAt)]),
        )
        .and_where(Expr::col(C::Id).in_subquery(due))
        .returning_all()
        .to_owned();
    let rows = db.query_all(&update).await?;
    let mut taken = rows
        .iter()
        .map(|r| notification::Model::from_query_result(r, ""))
        .collect::<Result<Vec<_>, _>>()?;
    // Oldest first within each person.
    taken.sort_by_key(|m| m.id);
    Ok(taken)
}

/// What deciding about a batch needs, read once for the whole batch.
struct Facts {
    people: HashMap<Uuid, app_user::Model>,
    visits: HashMap<Uuid, visit_task::Model>,
    /// (visit, person) with an active claim.
    claims: HashSet<(Uuid, Uuid)>,
    /// Person → WeChat template id → grants left.
    grants: HashMap<Uuid, HashMap<String, i32>>,
    /// The recipients who are family members → their family.
    families: HashMap<Uuid, FamilyFacts>,
    /// Messages pushed to each recipient on the batch's local day.
    pushed_today: HashMap<Uuid, u32>,
}

/// A family member's family, as reaching them needs it.
struct FamilyFacts {
    family: family::Model,
    /// The member's own number, if any.
    member_phone: Option<String>,
    /// The children the family lost: its sensitive days.
    losses: Vec<timing::Loss>,
    /// The family's own quiet hours, on top of the association's.
    quiet: Option<timing::QuietHours>,
}

fn visit_of(m: &notification::Model) -> Option<Uuid> {
    m.payload.get("task_id")?.as_str()?.parse().ok()
}

fn is_emergency(m: &notification::Model) -> bool {
    m.payload.get("emergency").and_then(Value::as_bool) == Some(true)
}

/// Channels that push a message to a person (the cap counts them).
const PUSHED: [&str; 3] = [channel::WECHAT, channel::SMS, channel::CALL];

impl Facts {
    async fn load(
        db: &DatabaseConnection,
        taken: &[notification::Model],
        now: DateTime<Utc>,
        tz: chrono_tz::Tz,
        daily_cap: u32,
    ) -> Result<Self, DbErr> {
        let people: HashSet<Uuid> = taken.iter().map(|m| m.recipient_id).collect();
        let visits: HashSet<Uuid> = taken.iter().filter_map(visit_of).collect();
        let people_rows = app_user::Entity::find()
            .filter(app_user::Column::Id.is_in(people.iter().copied()))
            .all(db)
            .await?;
        let visit_rows = visit_task::Entity::find()
            .filter(visit_task::Column::Id.is_in(visits.iter().copied()))
            .all(db)
            .await?;
        let claims: Vec<(Uuid, Uuid)> = task_claim::Entity::find()
            .select_only()
            .columns([task_claim::Column::TaskId, task_claim::Column::VolunteerId])
            .filter(task_claim::Column::TaskId.is_in(visits.iter().copied()))
            .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
            .into_tuple()
            .all(db)
            .await?;
        // Today's pushes matter to the cap alone.
        let pushed: Vec<(Uuid, i64)> = if daily_cap == 0 {
            Vec::new()
        } else {
            notification::Entity::find()
                .select_only()
                .column(C::RecipientId)
                .column_as(sea_orm::sea_query::ExprTrait::count(Expr::col(C::Id)), "n")
                .filter(C::RecipientId.is_in(people.iter().copied()))
                .filter(C::Status.eq(notification::SENT))
                .filter(C::Channel.is_in(PUSHED))
                .filter(C::SentAt.gte(timing::day_start(now, tz)))
                .group_by(C::RecipientId)
                .into_tuple()
                .all(db)
                .await?
        };
        Ok(Self {
            people: people_rows.into_iter().map(|u| (u.id, u)).collect(),
            visits: visit_rows.into_iter().map(|v| (v.id, v)).collect(),
            claims: claims.into_iter().collect(),
            grants: ledger::balances(db, people.iter().copied())
                .await?
                .into_iter()
                .fold(HashMap::new(), |mut by, ((person, template), n)| {
                    by.entry(person)
                        .or_insert_with(HashMap::new)
                        .insert(template, n);
                    by
                }),
            families: family_facts(db, &people).await?,
            pushed_today: pushed
                .into_iter()
                .map(|(p, n)| (p, n.max(0) as u32))
                .collect(),
        })
    }

    fn visit_now(&self, m: &notification::Model) -> Option<VisitNow<'_>> {
        let v = self.visits.get(&visit_of(m)?)?;
        Some(VisitNow {
            status: &v.status,
            recipient_holds: v.assigned_cadre_id == Some(m.recipient_id)
                || self.claims.contains(&(v.id, m.recipient_id)),
            moved: super::remind::window_moved(
                m.payload.get("window_start").and_then(Value::as_str),
                v.window_start,
            ),
        })
    }
}

/// The families of those recipients who are family members or a family's household
/// account, with their losses.
async fn family_facts(
    db: &DatabaseConnection,
    people: &HashSet<Uuid>,
) -> Result<HashMap<Uuid, FamilyFacts>, DbErr> {
    let members = family_member::Entity::find()
        .filter(family_member::Column::UserId.is_in(people.iter().copied()))
        .all(db)
        .await?;
    let households = family_household::Entity::find()
        .filter(family_household::Column::UserId.is_in(people.iter().copied()))
        .all(db)
        .await?;
    if members.is_empty() && households.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: HashSet<Uuid> = members
        .iter()
        .map(|m| m.family_id)
        .chain(households.iter().map(|h| h.family_id))
        .collect();
    let families: HashMap<Uuid, family::Model> = family::Entity::find()
        .filter(family::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
    let mut lost: HashMap<Uuid, Vec<family_member::Model>> = HashMap::new();
    // A household is reached on its contact's own number when there is one.
    let mut contact_phone: HashMap<Uuid, String> = HashMap::new();
    for m in family_member::Entity::find()
        .filter(family_member::Column::FamilyId.is_in(ids.iter().copied()))
        .order_by_desc(family_member::Column::PrimaryContact)
        .order_by_asc(family_member::Column::CreatedAt)
        .all(db)
        .await?
    {
        if m.deceased {
            lost.entry(m.family_id).or_default().push(m);
        } else if let Some(phone) = m.phone {
            contact_phone.entry(m.family_id).or_insert(phone);
        }
    }
    let facts = |family_id: Uuid, member_phone: Option<String>| {
        let family = families.get(&family_id)?.clone();
        let losses =
            timing::Loss::of_members(lost.get(&family_id).map(Vec::as_slice).unwrap_or(&[]));
        Some(FamilyFacts {
            quiet: timing::family_quiet(&family.do_not_disturb),
            family,
            member_phone,
            losses,
        })
    };
    let mut out = HashMap::new();
    for m in members {
        if let (Some(user), Some(f)) = (m.user_id, facts(m.family_id, m.phone)) {
            out.insert(user, f);
        }
    }
    for h in households {
        if let Some(f) = facts(h.family_id, contact_phone.get(&h.family_id).cloned()) {
            out.insert(h.user_id, f);
        }
    }
    Ok(out)
}

/// Why a message is no longer worth sending at `now`, if it is not.
fn dropped_because(
    config: &NotifyConfig,
    facts: &Facts,
    m: &notification::Model,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    quiet: timing::QuietHours,
) -> Option<String> {
    let Some(person) = facts.people.get(&m.recipient_id) else {
        return Some("the recipient is gone".into());
    };
    if person.status == UserStatus::Disabled {
        return Some("the recipient's account is disabled".into());
    }
    let names_visit = visit_of(m).is_some();
    if let Some(why) = policy::stale_because(&m.template, names_visit, facts.visit_now(m).as_ref())
    {
        return Some(why);
    }
    if is_emergency(m) {
        return None;
    }
    let due = m.due_at.unwrap_or(m.created_at);
    let quiet = quiet_for(facts.families.get(&m.recipient_id), quiet);
    timing::too_late(due, now, config.tolerance(&m.template), tz, &quiet)
}

/// The quiet hours a recipient keeps: the association's, and their family's own.
fn quiet_for(family: Option<&FamilyFacts>, global: timing::QuietHours) -> Vec<timing::QuietHours> {
    let mut all = vec![global];
    all.extend(family.and_then(|f| f.quiet));
    all
}

/// The message as WeChat would carry it, or why it cannot.
pub(crate) fn wechat_message(
    config: &NotifyConfig,
    person: &app_user::Model,
    m: &notification::Model,
    message: &templates::Message,
) -> Result<SubscribeMessage, &'static str> {
    let Some(template) = config.wechat_template(&m.template) else {
        return Err("no WeChat template configured");
    };
    let Some(openid) = person.openid.clone().filter(|o| !o.is_empty()) else {
        return Err("no WeChat account");
    };
    let page = match (template.page.trim(), message.visit_id) {
        ("", _) => None,
        (page, Some(id)) => Some(format!("{page}?id={id}")),
        (page, None) => Some(page.to_string()),
    };
    Ok(SubscribeMessage {
        touser: openid,
        template_id: template.template_id.clone(),
        page,
        data: templates::wechat_data(message, &template.keys),
        miniprogram_state: config.miniprogram_state.clone(),
    })
}

/// One person's messages, one after the other.
async fn deliver_to_one_person(
    batch: &Batch<'_>,
    messages: Vec<notification::Model>,
    deadline: Instant,
    stop: &AtomicBool,
    wechat_lock: bool,
) -> Stats {
    let (state, facts, now) = (batch.state, batch.facts, batch.now);
    let mut stats = Stats::default();
    let Some(person) = messages.first().map(|m| m.recipient_id) else {
        return stats;
    };
    // This person's grants and today's pushes, kept up to date as messages go out.
    let mut who = Recipient {
        grants: facts.grants.get(&person).cloned().unwrap_or_default(),
        pushed_today: facts.pushed_today.get(&person).copied().unwrap_or(0),
        wechat_lock,
    };
    for m in messages {
        stats.taken += 1;
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            put_back(&state.db, &m, now).await;
            stats.put_back += 1;
            continue;
        }
        let result = deliver(batch, &m, &mut who, &mut stats).await;
        if let Err(e) = result {
            // The row stays taken and is retried when its claim runs out.
            tracing::error!(id = %m.id, error = %e, "recording a notification's delivery failed");
        }
    }
    stats
}

/// What changes about a person while their messages go out.
struct Recipient {
    grants: HashMap<String, i32>,
    pushed_today: u32,
    /// This batch holds the lock of the person's openid.
    wechat_lock: bool,
}

/// The steps tried for a message, kept in `notification.trail` (with the earlier attempts').
struct Trail {
    steps: Vec<Value>,
    attempt: i32,
}

impl Trail {
    fn of(m: &notification::Model) -> Self {
        let steps = match &m.trail {
            Some(Value::Array(steps)) => steps.clone(),
            _ => Vec::new(),
        };
        Self {
            steps,
            attempt: m.attempts,
        }
    }

    fn step(&mut self, channel: &str, result: impl Into<String>) {
        self.steps.push(json!({
            "attempt": self.attempt,
            "channel": channel,
            "result": result.into(),
        }));
    }

    /// This attempt's steps in a line: "wechat: no WeChat grant left; sms: …".
    fn summary(&self) -> String {
        self.steps
            .iter()
            .filter(|s| s["attempt"].as_i64() == Some(i64::from(self.attempt)))
            .map(|s| {
                format!(
                    "{}: {}",
                    s["channel"].as_str().unwrap_or_default(),
                    s["result"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn value(&self) -> Value {
        Value::Array(self.steps.clone())
    }
}

/// How trying one channel ended.
enum Tried {
    /// It reached the person; the row is finished.
    Reached,
    /// The row is settled for now (retried later, dead-lettered, put back).
    Later,
    /// This channel cannot carry it: the next one.
    No,
}

async fn deliver(
    batch: &Batch<'_>,
    m: &notification::Model,
    who: &mut Recipient,
    stats: &mut Stats,
) -> Result<(), DbErr> {
    let (state, facts, now) = (batch.state, batch.facts, batch.now);
    let db = &state.db;
    let config = &state.config.notify;
    let tz = state.tz;
    let quiet = config.quiet_hours().unwrap_or(timing::QuietHours {
        start: chrono::NaiveTime::MIN,
        end: chrono::NaiveTime::MIN,
    });
    let mut trail = Trail::of(m);
    if let Some(why) = dropped_because(config, facts, m, now, tz, quiet) {
        tracing::info!(id = %m.id, template = %m.template, why, "notification dropped");
        stats.dropped += 1;
        return finish(db, m, notification::DROPPED, None, Some(why), &trail).await;
    }
    let Some(person) = facts.people.get(&m.recipient_id) else {
        return Ok(());
    };
    let emergency = is_emergency(m);
    let family = facts.families.get(&m.recipient_id);
    let today = now.with_timezone(&tz).date_naive();
    let sad_day = family.and_then(|f| timing::sensitive_day(today, &f.losses));
    if let Some(day) = sad_day
        && config.is_festive(&m.template, &m.payload)
    {
        stats.dropped += 1;
        let why = format!("no good wishes on a sensitive day of the family ({day})");
        return finish(db, m, notification::DROPPED, None, Some(why), &trail).await;
    }
    if !emergency && let Some(until) = timing::quiet_until_all(now, tz, &quiet_for(family, quiet)) {
        stats.deferred += 1;
        put_back(db, m, until).await;
        return Ok(());
    }
    if !emergency
        && m.template != templates::DIGEST
        && config.daily_cap > 0
        && who.pushed_today >= config.daily_cap
    {
        stats.capped += 1;
        queue_digest(db, m.recipient_id, now, tz, quiet).await?;
        trail.step(
            "cap",
            format!(
                "{} messages pushed today: in tomorrow's digest",
                who.pushed_today
            ),
        );
        let note = "daily cap reached: in the inbox, and in tomorrow's digest".to_string();
        return finish_sent(db, m, channel::INBOX, Some(note), &trail, now).await;
    }

    let tone = if sad_day.is_some() {
        Tone::Gentle
    } else {
        Tone::Usual
    };
    let queued_on = m.created_at.with_timezone(&tz).date_naive();
    let message = templates::render_with(&m.template, &m.payload, queued_on, tone);

    match try_wechat(batch, person, m, &message, who, stats, &mut trail).await? {
        Tried::Reached => {
            who.pushed_today += 1;
            return Ok(());
        }
        Tried::Later => return Ok(()),
        Tried::No => {}
    }
    let sms = SmsTarget::of(config, person, family, emergency);
    match try_sms(state, sms, m, &message, now, stats, &mut trail).await? {
        Tried::Reached => {
            who.pushed_today += 1;
            return Ok(());
        }
        Tried::Later => return Ok(()),
        Tried::No => {}
    }
    if let Some(family) = family
        && m.template != templates::DIGEST
    {
        let task = call_task(db, family, m, &message, now, tz, tone).await?;
        stats.call += 1;
        who.pushed_today += 1;
        trail.step(
            channel::CALL,
            format!("phone-call visit {task} for the family's cadre"),
        );
        return finish_sent(db, m, channel::CALL, None, &trail, now).await;
    }
    stats.inbox += 1;
    let why = trail.summary();
    finish_sent(db, m, channel::INBOX, Some(why), &trail, now).await
}

#[allow(clippy::too_many_arguments)]
async fn try_wechat(
    batch: &Batch<'_>,
    person: &app_user::Model,
    m: &notification::Model,
    message: &templates::Message,
    who: &mut Recipient,
    stats: &mut Stats,
    trail: &mut Trail,
) -> Result<Tried, DbErr> {
    let (state, now) = (batch.state, batch.now);
    let db = &state.db;
    let config = &state.config.notify;
    let send = match wechat_message(config, person, m, message) {
        Ok(send) => send,
        Err(why) => {
            trail.step(channel::WECHAT, why);
            return Ok(Tried::No);
        }
    };
    if who.grants.get(&send.template_id).copied().unwrap_or(0) <= 0 {
        trail.step(channel::WECHAT, "no WeChat grant left");
        return Ok(Tried::No);
    }

    // Another dispatcher (or an emergency) is sending to this openid: later.
    if !who.wechat_lock {
        stats.put_back += 1;
        put_back(db, m, now + Duration::seconds(2)).await;
        return Ok(Tried::Later);
    }
    let sent = state.wechat.send_subscribe(&send).await;

    match sent {
        Ok(_) => {
            stats.wechat += 1;
            if let Some(n) = who.grants.get_mut(&send.template_id) {
                *n -= 1;
            }
            trail.step(channel::WECHAT, "sent");
            batch
                .recorder
                .sent_on_wechat(db, m, &send.template_id, trail, now)
                .await?;
            Ok(Tried::Reached)
        }
        Err(e) => match policy::classify(&e) {
            Failure::NoGrant => {
                who.grants.insert(send.template_id.clone(), 0);
                ledger::zero(db, m.recipient_id, &send.template_id).await?;
                trail.step(channel::WECHAT, format!("no grant left ({e})"));
                Ok(Tried::No)
            }
            Failure::Permanent => {
                tracing::error!(
                    id = %m.id,
                    template = %m.template,
                    error = %e,
                    "WeChat refused a notification for good: a bug in our template or settings; dead-lettered"
                );
                stats.dead += 1;
                trail.step(channel::WECHAT, format!("refused for good: {e}"));
                finish(
                    db,
                    m,
                    notification::DEAD,
                    Some(channel::INBOX),
                    Some(e.to_string()),
                    trail,
                )
                .await?;
                Ok(Tried::Later)
            }
            Failure::Transient if m.attempts >= config.max_attempts => {
                trail.step(
                    channel::WECHAT,
                    format!("failed {} times, last: {e}", m.attempts),
                );
                Ok(Tried::No)
            }
            Failure::Transient => {
                stats.retried += 1;
                let delay = policy::retry_delay(
                    m.attempts,
                    config.retry_base_secs,
                    config.retry_max_secs,
                    rand::random(),
                );
                tracing::warn!(id = %m.id, error = %e, attempt = m.attempts, "notification will be retried");
                trail.step(channel::WECHAT, format!("will retry: {e}"));
                retry(db, m, now + delay, e.to_string(), trail).await?;
                Ok(Tried::Later)
            }
        },
    }
}

/// Where an SMS may go for a message, or why none may.
enum SmsTarget {
    To { phone: String, replies: bool },
    Not(&'static str),
}

impl SmsTarget {
    fn of(
        config: &NotifyConfig,
        person: &app_user::Model,
        family: Option<&FamilyFacts>,
        emergency: bool,
    ) -> Self {
        if !config.sms.enabled {
            return Self::Not("SMS not configured");
        }
        let number = match family {
            Some(f) if f.family.consent_sms || emergency => f
                .member_phone
                .as_deref()
                .and_then(sms::normalise_phone)
                .or_else(|| person.phone.as_deref().and_then(sms::normalise_phone))
                .or_else(|| f.family.phone.as_deref().and_then(sms::normalise_phone)),
            Some(_) => return Self::Not("the family has not agreed to SMS"),
            None if emergency => person.phone.as_deref().and_then(sms::normalise_phone),
            None => return Self::Not("SMS only for families who agreed, and emergencies"),
        };
        match number {
            Some(phone) => Self::To {
                phone,
                replies: family.is_some(),
            },
            None => Self::Not("no mobile number"),
        }
    }
}

async fn try_sms(
    state: &AppState,
    target: SmsTarget,
    m: &notification::Model,
    message: &templates::Message,
    now: DateTime<Utc>,
    stats: &mut Stats,
    trail: &mut Trail,
) -> Result<Tried, DbErr> {
    let db = &state.db;
    let config = &state.config.notify;
    let (phone, replies) = match target {
        SmsTarget::To { phone, replies } => (phone, replies),
        SmsTarget::Not(why) => {
            trail.step(channel::SMS, why);
            return Ok(Tried::No);
        }
    };
    // One send at a time per number, so that the limits below count every send.
    let lock = format!("sms_send:{phone}");
    let holder = Uuid::new_v4().to_string();
    let hold = StdDuration::from_millis(config.sms.timeout_ms + 1000);
    if !state.cache.put_if_absent(&lock, &holder, hold).await {
        stats.put_back += 1;
        put_back(db, m, now + Duration::seconds(2)).await;
        return Ok(Tried::Later);
    }
    let tried = send_sms(state, &phone, replies, m, message, now, stats, trail).await;
    state.cache.remove_if(&lock, &holder).await;
    tried
}

#[allow(clippy::too_many_arguments)]
async fn send_sms(
    state: &AppState,
    phone: &str,
    replies: bool,
    m: &notification::Model,
    message: &templates::Message,
    now: DateTime<Utc>,
    stats: &mut Stats,
    trail: &mut Trail,
) -> Result<Tried, DbErr> {
    let db = &state.db;
    let config = &state.config.notify;
    // The database's record of sends decides the limits, whatever a cache holds.
    let sent: Vec<DateTime<Utc>> = sms_message::Entity::find()
        .select_only()
        .column(sms_message::Column::SentAt)
        .filter(sms_message::Column::Phone.eq(phone))
        .filter(sms_message::Column::SentAt.gt(now - Duration::days(1)))
        .into_tuple()
        .all(db)
        .await?;
    if let Err(free_at) = sms::limit_allows(&sent, now, &config.sms) {
        if free_at - now <= Duration::minutes(config.sms.max_wait_minutes) {
            stats.deferred += 1;
            put_back(db, m, free_at).await;
            return Ok(Tried::Later);
        }
        trail.step(channel::SMS, "the number's SMS limit for today is reached");
        return Ok(Tried::No);
    }
    let task_id = visit_of(m);
    let replies = replies && task_id.is_some();
    let sms = Sms {
        phone: phone.to_string(),
        template_code: if replies {
            config.sms.reply_template_code.clone()
        } else {
            config.sms.template_code.clone()
        },
        params: templates::sms_params(message),
    };
    match state.sms.send(&sms).await {
        Ok(provider_id) => {
            stats.sms += 1;
            trail.step(channel::SMS, "sent");
            let txn = db.begin().await?;
            sms_message::Entity::insert(sms_message::ActiveModel {
                id: Set(Uuid::now_v7()),
                phone: Set(phone.to_string()),
                notification_id: Set(m.id),
                recipient_id: Set(m.recipient_id),
                task_id: Set(task_id.filter(|_| replies)),
                template: Set(m.template.clone()),
                provider_id: Set(Some(provider_id).filter(|p| !p.is_empty())),
                sent_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
            finish_sent(&txn, m, channel::SMS, None, trail, now).await?;
            txn.commit().await?;
            Ok(Tried::Reached)
        }
        Err(SmsError::Transient(e)) if m.attempts < config.max_attempts => {
            stats.retried += 1;
            let delay = policy::retry_delay(
                m.attempts,
                config.retry_base_secs,
                config.retry_max_secs,
                rand::random(),
            );
            tracing::warn!(id = %m.id, error = %e, "SMS failed; the message will be retried");
            trail.step(channel::SMS, format!("will retry: {e}"));
            retry(db, m, now + delay, e, trail).await?;
            Ok(Tried::Later)
        }
        Err(e) => {
            if matches!(e, SmsError::Refused(_)) {
                tracing::error!(id = %m.id, error = %e, "the SMS provider refused a message");
            }
            trail.step(channel::SMS, e.to_string());
            Ok(Tried::No)
        }
    }
}

/// How long the cadre has to make the call.
const CALL_DAYS: i64 = 2;

/// A phone-call visit for the family's paired cadre (一帮一), who tells the family what
/// the message says; without a cadre it is flagged for the coordinators. One per message.
async fn call_task(
    db: &DatabaseConnection,
    family: &FamilyFacts,
    m: &notification::Model,
    message: &templates::Message,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    tone: Tone,
) -> Result<Uuid, DbErr> {
    let today = now.with_timezone(&tz).date_naive();
    let cadre: Option<Uuid> = pairing::Entity::find()
        .select_only()
        .column(pairing::Column::CadreId)
        .filter(pairing::Column::FamilyId.eq(family.family.id))
        .filter(
            Condition::any()
                .add(pairing::Column::EndedOn.is_null())
                .add(pairing::Column::EndedOn.gte(today)),
        )
        .order_by_desc(pairing::Column::StartedOn)
        .into_tuple()
        .one(db)
        .await?;
    let key = format!(
        "{}{}call:{}",
        family.family.id,
        scheduler::generate::FOLLOWUP_KEY_MARK,
        m.id
    );
    visit_task::Entity::insert(visit_task::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family.family.id),
        rule_id: Set(None),
        kind: Set(visit_task::MESSAGE_CALL.into()),
        channel: Set("phone_call".into()),
        unique_key: Set(key.clone()),
        window_start: Set(now),
        window_end: Set(now + Duration::days(CALL_DAYS)),
        status: Set(visit_task::status::OPEN.into()),
        volunteers_needed: Set(1),
        claims_count: Set(0),
        required_skills: Set(StringList(Vec::new())),
        assigned_cadre_id: Set(cadre),
        planned_date: Set(Some(today)),
        kinds: Set(Some(StringList(vec![visit_task::MESSAGE_CALL.into()]))),
        reasons: Set(Some(StringList(vec![
            format!("电话转告：{}", message.title),
            message.body.clone(),
        ]))),
        components: Set(Some(StringList(vec![key.clone()]))),
        gentle: Set(tone == Tone::Gentle),
        first_visit: Set(false),
        assign_to_cadre: Set(true),
        preferred_time: Set(None),
        visitor_gender: Set(None),
        status_reason: Set(cadre
            .is_none()
            .then(|| "未配对责任干部：请安排人电话转告家庭".to_string())),
        needs_attention: Set(cadre.is_none()),
        created_at: Set(now),
        updated_at: Set(now),
        rescheduled_at: Set(None),
    })
    .on_conflict(
        OnConflict::column(visit_task::Column::UniqueKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let id: Option<Uuid> = visit_task::Entity::find()
        .select_only()
        .column(visit_task::Column::Id)
        .filter(visit_task::Column::UniqueKey.eq(key))
        .into_tuple()
        .one(db)
        .await?;
    id.ok_or_else(|| DbErr::RecordNotFound("the phone-call visit just written".into()))
}

/// One digest for the person the next morning, however many messages the cap held back.
async fn queue_digest(
    db: &DatabaseConnection,
    to: Uuid,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    quiet: timing::QuietHours,
) -> Result<(), DbErr> {
    let at = timing::digest_at(now, tz, quiet);
    let day = at.with_timezone(&tz).date_naive();
    notification::Entity::insert(notification::ActiveModel::pending(
        to,
        templates::DIGEST,
        json!({"date": day.to_string()}),
        format!("{}:{to}:{day}", templates::DIGEST),
        at,
        now,
    ))
    .on_conflict(OnConflict::column(C::DedupeKey).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Messages pushed to a person today (for tests and the cap).
pub async fn pushed_today(
    db: &DatabaseConnection,
    person: Uuid,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<u64, DbErr> {
    notification::Entity::find()
        .filter(C::RecipientId.eq(person))
        .filter(C::Status.eq(notification::SENT))
        .filter(C::Channel.is_in(PUSHED))
        .filter(C::SentAt.gte(timing::day_start(now, tz)))
        .count(db)
        .await
}

/// The fenced update of a taken row: only if it is still ours (same attempt).
fn fenced(m: &notification::Model) -> sea_orm::UpdateMany<notification::Entity> {
    notification::Entity::update_many()
        .filter(C::Id.eq(m.id))
        .filter(C::Status.eq(notification::SENDING))
        .filter(C::Attempts.eq(m.attempts))
}

fn check_fence(m: &notification::Model, rows: u64) {
    if rows != 1 {
        tracing::warn!(
            id = %m.id,
            "a notification was taken over by another dispatcher (it outlived notify.claim_secs)"
        );
    }
}

async fn finish_sent(
    db: &impl ConnectionTrait,
    m: &notification::Model,
    channel: &str,
    note: Option<String>,
    trail: &Trail,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let done = fenced(m)
        .col_expr(C::Status, Expr::value(notification::SENT))
        .col_expr(C::Channel, Expr::value(channel))
        .col_expr(C::SentAt, Expr::value(now))
        .col_expr(C::LastError, Expr::value(note))
        .col_expr(C::Trail, Expr::value(trail.value()))
        .exec(db)
        .await?;
    check_fence(m, done.rows_affected);
    Ok(())
}

/// What the tasks of one batch share.
struct Batch<'a> {
    state: &'a AppState,
    facts: &'a Facts,
    recorder: &'a SentRecorder,
    now: DateTime<Utc>,
}

/// A WeChat acceptance waiting to be written, and the worker waiting for it.
struct SentWrite {
    id: Uuid,
    attempts: i32,
    template_id: String,
    trail: Value,
    /// Whether the row was still ours, once committed.
    done: tokio::sync::oneshot::Sender<Result<bool, String>>,
}

/// Records WeChat's acceptances: the row marked sent and the grant spent together, right
/// away (a crash before this repeats the send). On PostgreSQL the batch's workers hand
/// them to one writer, which writes all that are waiting in one statement (one commit),
/// while the next ones gather behind it; each worker waits for its own commit before its
/// next send, so a crash still repeats at most one send per worker. Elsewhere (SQLite: one
/// writer anyway) each is one short transaction.
#[derive(Clone)]
struct SentRecorder {
    writes: Option<tokio::sync::mpsc::UnboundedSender<SentWrite>>,
}

/// Acceptances written in one statement at most (4 parameters each).
const SENT_GROUP: usize = 500;

impl SentRecorder {
    /// The recorder of a batch taken at `now`, and on PostgreSQL its writer, which ends
    /// once every clone of the recorder is dropped and what they handed over is written.
    fn start(
        db: &DatabaseConnection,
        now: DateTime<Utc>,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        if db.get_database_backend() != DbBackend::Postgres {
            return (Self { writes: None }, None);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SentWrite>();
        let db = db.clone();
        let writer = tokio::spawn(async move {
            let mut group = Vec::with_capacity(SENT_GROUP);
            while rx.recv_many(&mut group, SENT_GROUP).await > 0 {
                let written = mark_sent_on_wechat(&db, &group, now).await;
                for w in group.drain(..) {
                    let ours = match &written {
                        Ok(ids) => Ok(ids.contains(&w.id)),
                        Err(e) => Err(e.to_string()),
                    };
                    w.done.send(ours).ok();
                }
            }
        });
        (Self { writes: Some(tx) }, Some(writer))
    }

    async fn sent_on_wechat(
        &self,
        db: &DatabaseConnection,
        m: &notification::Model,
        template_id: &str,
        trail: &Trail,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let Some(writes) = &self.writes else {
            let txn = db.begin().await?;
            finish_sent(&txn, m, channel::WECHAT, None, trail, now).await?;
            ledger::spend(&txn, m.recipient_id, template_id).await?;
            return txn.commit().await;
        };
        let (done, written) = tokio::sync::oneshot::channel();
        let write = SentWrite {
            id: m.id,
            attempts: m.attempts,
            template_id: template_id.to_string(),
            trail: trail.value(),
            done,
        };
        let gone = || DbErr::Custom("the writer of sent notifications stopped".into());
        writes.send(write).map_err(|_| gone())?;
        let ours = written.await.map_err(|_| gone())?.map_err(DbErr::Custom)?;
        check_fence(m, u64::from(ours));
        Ok(())
    }
}

/// One statement, atomic on its own, for a group of acceptances: each row still ours
/// (same attempt) is marked sent and its grant spent. Returns the rows marked.
async fn mark_sent_on_wechat(
    db: &DatabaseConnection,
    group: &[SentWrite],
    now: DateTime<Utc>,
) -> Result<HashSet<Uuid>, DbErr> {
    let mut values: Vec<sea_orm::Value> = vec![
        now.into(),
        notification::SENT.into(),
        channel::WECHAT.into(),
        notification::SENDING.into(),
    ];
    let mut rows = Vec::with_capacity(group.len());
    for w in group {
        let n = values.len();
        rows.push(format!(
            "(${}::uuid, ${}::int4, ${}::jsonb, ${}::text)",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        ));
        values.extend([
            w.id.into(),
            w.attempts.into(),
            w.trail.clone().into(),
            w.template_id.clone().into(),
        ]);
    }
    let sql = format!(
        "WITH v (id, attempts, trail, template_id) AS (VALUES {}),
        sent AS (
            UPDATE notification n
            SET status = $2, channel = $3, sent_at = $1, last_error = NULL, trail = v.trail
            FROM v
            WHERE n.id = v.id AND n.status = $4 AND n.attempts = v.attempts
            RETURNING n.id, n.recipient_id, v.template_id),
        spent AS (
            UPDATE subscription_quota q SET balance = q.balance - 1, updated_at = $1
            FROM sent
            WHERE q.user_id = sent.recipient_id AND q.template_id = sent.template_id
                AND q.balance > 0)
        SELECT id FROM sent",
        rows.join(", ")
    );
    let written = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    written
        .iter()
        .map(|r| r.try_get::<Uuid>("", "id"))
        .collect()
}

async fn finish(
    db: &impl ConnectionTrait,
    m: &notification::Model,
    status: &str,
    channel: Option<&str>,
    note: Option<String>,
    trail: &Trail,
) -> Result<(), DbErr> {
    let done = fenced(m)
        .col_expr(C::Status, Expr::value(status))
        .col_expr(C::Channel, Expr::value(channel.map(str::to_string)))
        .col_expr(C::LastError, Expr::value(note))
        .col_expr(C::Trail, Expr::value(trail.value()))
        .exec(db)
        .await?;
    check_fence(m, done.rows_affected);
    Ok(())
}

async fn retry(
    db: &DatabaseConnection,
    m: &notification::Model,
    at: DateTime<Utc>,
    error: String,
    trail: &Trail,
) -> Result<(), DbErr> {
    let done = fenced(m)
        .col_expr(C::Status, Expr::value(notification::PENDING))
        .col_expr(C::NextAttemptAt, Expr::value(at))
        .col_expr(C::LastError, Expr::value(error))
        .col_expr(C::Trail, Expr::value(trail.value()))
        .exec(db)
        .await?;
    check_fence(m, done.rows_affected);
    Ok(())
}

/// Gives a taken message back untried: due at `at`, the attempt not counted.
async fn put_back(db: &DatabaseConnection, m: &notification::Model, at: DateTime<Utc>) {
    use sea_orm::sea_query::ExprTrait;
    let result = fenced(m)
        .col_expr(C::Status, Expr::value(notification::PENDING))
        .col_expr(C::NextAttemptAt, Expr::value(at))
        .col_expr(C::Attempts, Expr::col(C::Attempts).sub(1))
        .exec(db)
        .await;
    if let Err(e) = result {
        tracing::warn!(id = %m.id, error = %e, "putting a notification back failed; it is taken again later");
    }
}

//! The dispatcher: takes due messages from the outbox in batches and delivers each one.
//!
//! - Taking a batch is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)` that
//!   marks the rows `sending` until `now + notify.claim_secs` and counts the attempt: on
//!   PostgreSQL several dispatchers take disjoint batches; on SQLite the statement is atomic
//!   on its own. A dispatcher that dies leaves its rows to be taken again after the claim.
//! - Every later write is fenced by the attempt count it took the row with, so a row taken
//!   over by another dispatcher is not overwritten.
//! - One message at a time per person (and, through the cache, per openid across
//!   instances): WeChat refuses concurrent sends to one openid (43108).
//! - Right after WeChat accepts, the row is marked sent and the grant spent in one short
//!   transaction: a crash can repeat at most the sends in flight at that moment.

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
    UserStatus, app_user,
    notification::{self, Column as C, channel},
    task_claim, visit_task,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect, TransactionTrait,
    sea_query::{Expr, Func, LockBehavior, LockType, Order, Query},
};
use serde::Serialize;
use uuid::Uuid;

use super::{
    NotifyConfig, ledger,
    policy::{self, Failure, VisitNow},
    templates,
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
    let facts = Facts::load(&state.db, &taken).await?;

    // Leave a margin before the claim runs out, so that no row is sent by two
    // dispatchers; what is not reached by then is put back.
    let claim = StdDuration::from_secs(config.claim_secs.max(1) as u64);
    let margin = StdDuration::from_millis(2 * state.config.wechat.timeout_ms);
    let deadline = started + claim.saturating_sub(margin).max(claim / 2);

    let mut by_person: BTreeMap<Uuid, Vec<notification::Model>> = BTreeMap::new();
    for m in taken {
        by_person.entry(m.recipient_id).or_default().push(m);
    }
    let facts = Arc::new(facts);
    let permits = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    for (_, messages) in by_person {
        let (state, facts, permits, stop) =
            (state.clone(), facts.clone(), permits.clone(), stop.clone());
        running.spawn(async move {
            let _permit = permits.acquire_owned().await;
            deliver_to_one_person(&state, &facts, messages, now, deadline, &stop).await
        });
    }
    let mut stats = Stats::default();
    while let Some(done) = running.join_next().await {
        match done {
            Ok(s) => stats.add(&s),
            Err(e) => tracing::error!(error = %e, "a notification task failed"),
        }
    }
    tracing::info!(?stats, "notifications dispatched");
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
        .and_where(Expr::col(C::Status).is_in([notification::PENDING, notification::SENDING]))
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
    /// (person, WeChat template id) → grants left.
    grants: HashMap<(Uuid, String), i32>,
}

fn visit_of(m: &notification::Model) -> Option<Uuid> {
    m.payload.get("task_id")?.as_str()?.parse().ok()
}

impl Facts {
    async fn load(db: &DatabaseConnection, taken: &[notification::Model]) -> Result<Self, DbErr> {
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
        Ok(Self {
            people: people_rows.into_iter().map(|u| (u.id, u)).collect(),
            visits: visit_rows.into_iter().map(|v| (v.id, v)).collect(),
            claims: claims.into_iter().collect(),
            grants: ledger::balances(db, people).await?,
        })
    }

    fn visit_now(&self, m: &notification::Model) -> Option<VisitNow<'_>> {
        let v = self.visits.get(&visit_of(m)?)?;
        Some(VisitNow {
            status: &v.status,
            recipient_holds: v.assigned_cadre_id == Some(m.recipient_id)
                || self.claims.contains(&(v.id, m.recipient_id)),
        })
    }
}

/// How a message will go, before any grant is spent.
#[derive(Debug)]
enum Route {
    /// Not sent, with the reason.
    Drop(String),
    /// The inbox only, with the reason it is not pushed.
    Inbox(String),
    WeChat(SubscribeMessage),
}

fn route(
    config: &NotifyConfig,
    facts: &Facts,
    m: &notification::Model,
    tz: chrono_tz::Tz,
) -> Route {
    let Some(person) = facts.people.get(&m.recipient_id) else {
        return Route::Drop("the recipient is gone".into());
    };
    if person.status == UserStatus::Disabled {
        return Route::Drop("the recipient's account is disabled".into());
    }
    let names_visit = visit_of(m).is_some();
    if let Some(why) = policy::stale_because(&m.template, names_visit, facts.visit_now(m).as_ref())
    {
        return Route::Drop(why);
    }
    let Some(template) = config.wechat_template(&m.template) else {
        return Route::Inbox("no WeChat template configured".into());
    };
    let Some(openid) = person.openid.clone().filter(|o| !o.is_empty()) else {
        return Route::Inbox("no WeChat account".into());
    };
    let queued_on = m.created_at.with_timezone(&tz).date_naive();
    let message = templates::render(&m.template, &m.payload, queued_on);
    let page = match (template.page.trim(), message.visit_id) {
        ("", _) => None,
        (page, Some(id)) => Some(format!("{page}?id={id}")),
        (page, None) => Some(page.to_string()),
    };
    Route::WeChat(SubscribeMessage {
        touser: openid,
        template_id: template.template_id.clone(),
        page,
        data: templates::wechat_data(&message, &template.keys),
        miniprogram_state: config.miniprogram_state.clone(),
    })
}

/// One person's messages, one after the other.
async fn deliver_to_one_person(
    state: &AppState,
    facts: &Facts,
    messages: Vec<notification::Model>,
    now: DateTime<Utc>,
    deadline: Instant,
    stop: &AtomicBool,
) -> Stats {
    let mut stats = Stats::default();
    let Some(person) = messages.first().map(|m| m.recipient_id) else {
        return stats;
    };
    // This person's grants, kept up to date as messages go out.
    let mut grants: HashMap<String, i32> = facts
        .grants
        .iter()
        .filter(|((user, _), _)| *user == person)
        .map(|((_, t), n)| (t.clone(), *n))
        .collect();
    for m in messages {
        stats.taken += 1;
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            put_back(&state.db, &m, now).await;
            stats.put_back += 1;
            continue;
        }
        let result = deliver(state, facts, &m, now, &mut grants, &mut stats).await;
        if let Err(e) = result {
            // The row stays taken and is retried when its claim runs out.
            tracing::error!(id = %m.id, error = %e, "recording a notification's delivery failed");
        }
    }
    stats
}

async fn deliver(
    state: &AppState,
    facts: &Facts,
    m: &notification::Model,
    now: DateTime<Utc>,
    grants: &mut HashMap<String, i32>,
    stats: &mut Stats,
) -> Result<(), DbErr> {
    let db = &state.db;
    let config = &state.config.notify;
    let send = match route(config, facts, m, state.tz) {
        Route::Drop(why) => {
            tracing::info!(id = %m.id, template = %m.template, why, "notification dropped");
            stats.dropped += 1;
            return finish(db, m, notification::DROPPED, None, Some(why)).await;
        }
        Route::Inbox(why) => {
            stats.inbox += 1;
            return fall_back(db, m, why).await;
        }
        Route::WeChat(send) => send,
    };
    if grants.get(&send.template_id).copied().unwrap_or(0) <= 0 {
        stats.inbox += 1;
        return fall_back(db, m, "no WeChat grant left".into()).await;
    }

    // One send in flight per openid, across instances too.
    let lock = format!("wechat_send:{}", send.touser);
    let holder = Uuid::new_v4().to_string();
    let hold = StdDuration::from_millis(state.config.wechat.timeout_ms + 1000);
    if !state.cache.put_if_absent(&lock, &holder, hold).await {
        stats.put_back += 1;
        put_back(db, m, now + Duration::seconds(2)).await;
        return Ok(());
    }
    let sent = state.wechat.send_subscribe(&send).await;
    state.cache.remove_if(&lock, &holder).await;

    match sent {
        Ok(_) => {
            stats.wechat += 1;
            if let Some(n) = grants.get_mut(&send.template_id) {
                *n -= 1;
            }
            let txn = db.begin().await?;
            finish_sent(&txn, m, channel::WECHAT, None).await?;
            ledger::spend(&txn, m.recipient_id, &send.template_id).await?;
            txn.commit().await
        }
        Err(e) => match policy::classify(&e) {
            Failure::NoGrant => {
                grants.insert(send.template_id.clone(), 0);
                ledger::zero(db, m.recipient_id, &send.template_id).await?;
                stats.inbox += 1;
                fall_back(db, m, format!("WeChat: no grant left ({e})")).await
            }
            Failure::Permanent => {
                tracing::error!(
                    id = %m.id,
                    template = %m.template,
                    error = %e,
                    "WeChat refused a notification for good: a bug in our template or settings; dead-lettered"
                );
                stats.dead += 1;
                finish(
                    db,
                    m,
                    notification::DEAD,
                    Some(channel::INBOX),
                    Some(e.to_string()),
                )
                .await
            }
            Failure::Transient if m.attempts >= config.max_attempts => {
                stats.inbox += 1;
                let why = format!("WeChat failed {} times, last: {e}", m.attempts);
                fall_back(db, m, why).await
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
                retry(db, m, now + delay, e.to_string()).await
            }
        },
    }
}

/// Where a message goes when WeChat cannot carry it: the inbox (where every message is
/// anyway). The next channels (SMS for people who consented, then a phone-call task for
/// the family's cadre) are to be tried here, in that order, before settling for it.
async fn fall_back(
    db: &DatabaseConnection,
    m: &notification::Model,
    why: String,
) -> Result<(), DbErr> {
    finish_sent(db, m, channel::INBOX, Some(why)).await
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
) -> Result<(), DbErr> {
    let done = fenced(m)
        .col_expr(C::Status, Expr::value(notification::SENT))
        .col_expr(C::Channel, Expr::value(channel))
        .col_expr(C::SentAt, Expr::value(Utc::now()))
        .col_expr(C::LastError, Expr::value(note))
        .exec(db)
        .await?;
    check_fence(m, done.rows_affected);
    Ok(())
}

async fn finish(
    db: &impl ConnectionTrait,
    m: &notification::Model,
    status: &str,
    channel: Option<&str>,
    note: Option<String>,
) -> Result<(), DbErr> {
    let done = fenced(m)
        .col_expr(C::Status, Expr::value(status))
        .col_expr(C::Channel, Expr::value(channel.map(str::to_string)))
        .col_expr(C::LastError, Expr::value(note))
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
) -> Result<(), DbErr> {
    let done = fenced(m)
        .col_expr(C::Status, Expr::value(notification::PENDING))
        .col_expr(C::NextAttemptAt, Expr::value(at))
        .col_expr(C::LastError, Expr::value(error))
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

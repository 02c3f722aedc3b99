//! Emergency help (紧急求助): the request itself sends its alerts, on every channel at once
//! (WeChat when the person granted it, SMS, the inbox), quiet hours and caps ignored, and
//! escalates one tier of coordinators up when nobody acknowledges in time.
//!
//! Nothing here waits for the scheduler or needs Redis:
//! - the alerts are written to the outbox already taken (`sending`, with the dispatcher's
//!   claim), in the request's transaction, and sent by [`send`] right after the commit. A
//!   process that dies mid-send leaves them to be taken again when the claim runs out, by
//!   the [`Watch`] of any instance (or the dispatcher, which sends one channel);
//! - the escalation is a tokio task started with the request ([`follow`]), and the
//!   [`Watch`] of every instance (a plain loop, started with the server) escalates what a
//!   dead process left behind. Escalating is a conditional update of
//!   `help_request.escalation_level`, so however many try, each tier is alerted once.
//!
//! Who hears (level 0): the family's paired cadre (一帮一), the nearest tier of coordinators
//! of the family's village (the village's own, else the township's, and so on up), and
//! the volunteer on duty for the family: the one holding its current or next visit. Each
//! escalation: the next tier of coordinators up.

use std::{collections::BTreeMap, sync::Arc, time::Duration as StdDuration};

use chrono::{DateTime, Duration, Utc};
use entity::{
    app_user, family, help_request, notification, notification::channel, pairing, region,
    sms_message, task_claim, visit_task,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    ledger,
    produce::{Coordinators, family_accounts},
    remind::{self, key},
    sms::{self, Sms},
    templates,
};
use crate::app::AppState;

/// `[help]`: how emergency help escalates.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HelpConfig {
    /// Seconds without an acknowledgement before a request goes one tier of coordinators
    /// up (and again after as long, while there are tiers above).
    pub escalate_after_secs: u64,
    /// How often every instance looks for alerts and escalations a dead process left.
    pub sweep_secs: u64,
    /// Pressing help again within this many minutes of an unanswered request returns it
    /// instead of alerting everyone again.
    pub repeat_minutes: i64,
}

impl Default for HelpConfig {
    fn default() -> Self {
        Self {
            escalate_after_secs: 600,
            sweep_secs: 60,
            repeat_minutes: 60,
        }
    }
}

impl HelpConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.escalate_after_secs > 0 && self.sweep_secs > 0,
            "help.escalate_after_secs and help.sweep_secs must be positive"
        );
        Ok(())
    }

    fn after(&self) -> Duration {
        Duration::seconds(self.escalate_after_secs as i64)
    }
}

// ---------------------------------------------------------------------------------------
// Pure logic

/// The coordinators over the region at `path`, by tier, nearest first: one tier per
/// ancestor region (or the region itself) holding coordinators' grants. Someone with grants
/// on two levels is in the nearest only.
pub fn tiers(path: &str, coordinators: &[(Uuid, String)]) -> Vec<Vec<Uuid>> {
    let mut by_path: BTreeMap<usize, (String, Vec<Uuid>)> = BTreeMap::new();
    for (user, grant) in coordinators {
        if path.starts_with(grant.as_str()) {
            let e = by_path
                .entry(grant.len())
                .or_insert_with(|| (grant.clone(), Vec::new()));
            e.1.push(*user);
        }
    }
    let mut seen = std::collections::HashSet::new();
    by_path
        .into_values()
        .rev()
        .map(|(_, mut users)| {
            users.sort();
            users.dedup();
            users.retain(|u| seen.insert(*u));
            users
        })
        .filter(|t| !t.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Who hears

/// The volunteer holding the family's current or next visit (the earliest still ahead).
pub async fn on_duty(
    db: &impl ConnectionTrait,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, DbErr> {
    use visit_task::{Column as T, status};
    let tasks: Vec<Uuid> = visit_task::Entity::find()
        .select_only()
        .column(T::Id)
        .filter(T::FamilyId.eq(family))
        .filter(T::Status.is_in([status::OPEN, status::CLAIMED, status::IN_PROGRESS]))
        .filter(T::WindowEnd.gt(now))
        .order_by_asc(T::WindowStart)
        .limit(5)
        .into_tuple()
        .all(db)
        .await?;
    for task in tasks {
        let holder: Option<Uuid> = task_claim::Entity::find()
            .select_only()
            .column(task_claim::Column::VolunteerId)
            .filter(task_claim::Column::TaskId.eq(task))
            .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
            .order_by_asc(task_claim::Column::ClaimedAt)
            .into_tuple()
            .one(db)
            .await?;
        if holder.is_some() {
            return Ok(holder);
        }
    }
    Ok(None)
}

/// The family's paired cadre (一帮一), while the pairing lasts.
async fn cadres(
    db: &impl ConnectionTrait,
    family: Uuid,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<Vec<Uuid>, DbErr> {
    let today = now.with_timezone(&tz).date_naive();
    pairing::Entity::find()
        .select_only()
        .column(pairing::Column::CadreId)
        .filter(pairing::Column::FamilyId.eq(family))
        .filter(pairing::Column::StartedOn.lte(today))
        .filter(
            Condition::any()
                .add(pairing::Column::EndedOn.is_null())
                .add(pairing::Column::EndedOn.gte(today)),
        )
        .into_tuple()
        .all(db)
        .await
}

async fn family_path(db: &impl ConnectionTrait, family: Uuid) -> Result<Option<String>, DbErr> {
    let region: Option<Uuid> = family::Entity::find_by_id(family)
        .select_only()
        .column(family::Column::RegionId)
        .into_tuple()
        .one(db)
        .await?;
    let Some(region) = region else {
        return Ok(None);
    };
    region::Entity::find_by_id(region)
        .select_only()
        .column(region::Column::Path)
        .into_tuple()
        .one(db)
        .await
}

/// Who is alerted at `level`: see the module docs. Empty: nobody is left above.
pub async fn responders(
    db: &impl ConnectionTrait,
    h: &help_request::Model,
    level: i32,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<Vec<Uuid>, DbErr> {
    let path = family_path(db, h.family_id).await?.unwrap_or_default();
    let coordinators = Coordinators::load(db).await?;
    let tiers = tiers(&path, coordinators.grants());
    let mut out = tiers.get(level as usize).cloned().unwrap_or_default();
    if level == 0 {
        out.extend(cadres(db, h.family_id, now, tz).await?);
        out.extend(on_duty(db, h.family_id, now).await?);
    }
    // The family itself is told separately (its request was received).
    let family = family_accounts(db, h.family_id).await?;
    out.retain(|u| !family.contains(u));
    out.sort();
    out.dedup();
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Queuing

fn payload(h: &help_request::Model, level: i32, tz: chrono_tz::Tz) -> Value {
    json!({
        "help_id": h.id,
        "date": h.created_at.with_timezone(&tz).date_naive().to_string(),
        "emergency": true,
        "level": level,
    })
}

/// Writes the alerts of `level` to the outbox, taken for sending now (see the module
/// docs), and the family's "received" at level 0 for the dispatcher. Returns the alerts'
/// ids (none for a recipient alerted at this level before).
pub async fn queue_alerts(
    db: &impl ConnectionTrait,
    h: &help_request::Model,
    level: i32,
    now: DateTime<Utc>,
    claim: Duration,
    tz: chrono_tz::Tz,
) -> Result<Vec<Uuid>, DbErr> {
    use notification::Column as C;
    let mut rows = Vec::new();
    for to in responders(db, h, level, now, tz).await? {
        let moment = if level == 0 {
            "once".to_string()
        } else {
            format!("level{level}")
        };
        rows.push(notification::ActiveModel {
            status: Set(notification::SENDING.into()),
            attempts: Set(1),
            next_attempt_at: Set(now + claim),
            inbox_at: Set(Some(now)),
            due_at: Set(Some(now)),
            ..notification::ActiveModel::pending(
                to,
                remind::HELP_EMERGENCY,
                payload(h, level, tz),
                key(remind::HELP_EMERGENCY, h.id, to, moment),
                now,
                now,
            )
        });
    }
    if level == 0 {
        for to in family_accounts(db, h.family_id).await? {
            rows.push(notification::ActiveModel::pending(
                to,
                remind::HELP_RECEIVED,
                json!({"help_id": h.id, "date": h.created_at.with_timezone(&tz).date_naive().to_string(), "emergency": true}),
                key(remind::HELP_RECEIVED, h.id, to, "once"),
                now,
                now,
            ));
        }
    }
    let ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.template.as_ref() == remind::HELP_EMERGENCY)
        .map(|r| *r.id.as_ref())
        .collect();
    if rows.is_empty() {
        return Ok(ids);
    }
    notification::Entity::insert_many(rows)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(C::DedupeKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    // Those already queued before kept their row: only the new ones are ours to send.
    notification::Entity::find()
        .select_only()
        .column(C::Id)
        .filter(C::Id.is_in(ids))
        .into_tuple()
        .all(db)
        .await
}

// ---------------------------------------------------------------------------------------
// Sending

/// What [`send`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub wechat: u32,
    pub sms: u32,
    /// Reached by no push channel (inbox only, and handed to the dispatcher to retry when
    /// a channel failed for a passing reason).
    pub inbox_only: u32,
}

fn step(trail: &mut Vec<Value>, attempt: i32, channel: &str, result: impl Into<String>) {
    trail.push(json!({"attempt": attempt, "channel": channel, "result": result.into()}));
}

/// Sends taken alerts on every channel the person can be reached by: WeChat (with a
/// grant left), SMS (a mobile number), and the inbox, which they are in already.
pub async fn send(state: &AppState, ids: &[Uuid]) -> Result<Sent, DbErr> {
    use notification::Column as C;
    let db = &state.db;
    let mut out = Sent::default();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = notification::Entity::find()
        .filter(C::Id.is_in(ids.iter().copied()))
        .filter(C::Status.eq(notification::SENDING))
        .all(db)
        .await?;
    let people: BTreeMap<Uuid, app_user::Model> = app_user::Entity::find()
        .filter(app_user::Column::Id.is_in(rows.iter().map(|r| r.recipient_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let grants = ledger::balances(db, people.keys().copied()).await?;
    let config = &state.config.notify;
    let now = Utc::now();
    for m in rows {
        let Some(person) = people.get(&m.recipient_id) else {
            continue;
        };
        let message = templates::render(
            &m.template,
            &m.payload,
            m.created_at.with_timezone(&state.tz).date_naive(),
        );
        let mut trail = match &m.trail {
            Some(Value::Array(steps)) => steps.clone(),
            _ => Vec::new(),
        };
        let mut reached: Vec<&str> = Vec::new();
        let mut passing_failure = false;

        match super::dispatch::wechat_message(config, person, &m, &message) {
            Err(why) => step(&mut trail, m.attempts, channel::WECHAT, why),
            Ok(msg)
                if grants
                    .get(&(person.id, msg.template_id.clone()))
                    .copied()
                    .unwrap_or(0)
                    <= 0 =>
            {
                step(
                    &mut trail,
                    m.attempts,
                    channel::WECHAT,
                    "no WeChat grant left",
                )
            }
            Ok(msg) => match send_alone(state, &msg).await {
                Ok(_) => {
                    ledger::spend(db, person.id, &msg.template_id).await?;
                    step(&mut trail, m.attempts, channel::WECHAT, "sent");
                    reached.push(channel::WECHAT);
                    out.wechat += 1;
                }
                Err(e) => {
                    passing_failure |= matches!(
                        super::policy::classify(&e),
                        super::policy::Failure::Transient
                    );
                    step(&mut trail, m.attempts, channel::WECHAT, e.to_string());
                }
            },
        }

        let phone = person.phone.as_deref().and_then(sms::normalise_phone);
        match phone {
            _ if !config.sms.enabled => {
                step(&mut trail, m.attempts, channel::SMS, "SMS not configured")
            }
            None => step(&mut trail, m.attempts, channel::SMS, "no mobile number"),
            Some(phone) => {
                let sent = state
                    .sms
                    .send(&Sms {
                        phone: phone.clone(),
                        template_code: config.sms.template_code.clone(),
                        params: templates::sms_params(&message),
                    })
                    .await;
                match sent {
                    Ok(provider_id) => {
                        sms_message::Entity::insert(sms_message::ActiveModel {
                            id: Set(Uuid::now_v7()),
                            phone: Set(phone),
                            notification_id: Set(m.id),
                            recipient_id: Set(m.recipient_id),
                            task_id: Set(None),
                            template: Set(m.template.clone()),
                            provider_id: Set(Some(provider_id).filter(|p| !p.is_empty())),
                            sent_at: Set(now),
                        })
                        .exec_without_returning(db)
                        .await?;
                        step(&mut trail, m.attempts, channel::SMS, "sent");
                        reached.push(channel::SMS);
                        out.sms += 1;
                    }
                    Err(e) => {
                        passing_failure |= matches!(e, sms::SmsError::Transient(_));
                        step(&mut trail, m.attempts, channel::SMS, e.to_string());
                    }
                }
            }
        }
        step(&mut trail, m.attempts, channel::INBOX, "in the inbox");

        let fenced = notification::Entity::update_many()
            .filter(C::Id.eq(m.id))
            .filter(C::Status.eq(notification::SENDING))
            .filter(C::Attempts.eq(m.attempts))
            .col_expr(C::Trail, Expr::value(Value::Array(trail)));
        let done = if let Some(first) = reached.first() {
            fenced
                .col_expr(C::Status, Expr::value(notification::SENT))
                .col_expr(C::Channel, Expr::value(*first))
                .col_expr(C::SentAt, Expr::value(now))
        } else if passing_failure && m.attempts < config.max_attempts {
            // Tried again soon, down the dispatcher's chain.
            out.inbox_only += 1;
            fenced
                .col_expr(C::Status, Expr::value(notification::PENDING))
                .col_expr(
                    C::NextAttemptAt,
                    Expr::value(now + Duration::seconds(config.retry_base_secs)),
                )
        } else {
            out.inbox_only += 1;
            fenced
                .col_expr(C::Status, Expr::value(notification::SENT))
                .col_expr(C::Channel, Expr::value(channel::INBOX))
                .col_expr(C::SentAt, Expr::value(now))
        };
        done.exec(db).await?;
    }
    Ok(out)
}

/// Takes alerts whose sending was interrupted (their claim ran out) or handed back to be
/// retried, and sends them.
async fn resend_due(state: &AppState, now: DateTime<Utc>) -> Result<Sent, DbErr> {
    use notification::Column as C;
    let db = &state.db;
    let due: Vec<(Uuid, i32)> = notification::Entity::find()
        .select_only()
        .columns([C::Id, C::Attempts])
        .filter(C::Template.eq(remind::HELP_EMERGENCY))
        .filter(C::Status.is_in([notification::PENDING, notification::SENDING]))
        .filter(C::NextAttemptAt.lte(now))
        .limit(100)
        .into_tuple()
        .all(db)
        .await?;
    let claim = Duration::seconds(Ord::max(state.config.notify.claim_secs, 1));
    let mut taken = Vec::new();
    for (id, attempts) in due {
        let won = notification::Entity::update_many()
            .col_expr(C::Status, Expr::value(notification::SENDING))
            .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
            .col_expr(C::NextAttemptAt, Expr::value(now + claim))
            .filter(C::Id.eq(id))
            .filter(C::Attempts.eq(attempts))
            .filter(C::Status.is_in([notification::PENDING, notification::SENDING]))
            .exec(db)
            .await?;
        if won.rows_affected == 1 {
            taken.push(id);
        }
    }
    send(state, &taken).await
}

// ---------------------------------------------------------------------------------------
// Escalating

/// Escalates the request one tier up if it is still unacknowledged at `level` and due;
/// returns whether this call did it. Only one caller can move a level on.
pub async fn escalate(
    state: &AppState,
    id: Uuid,
    level: i32,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    use help_request::Column as H;
    let db = &state.db;
    let Some(h) = help_request::Entity::find_by_id(id).one(db).await? else {
        return Ok(false);
    };
    if h.status != help_request::OPEN || h.escalation_level != level {
        return Ok(false);
    }
    let next = level + 1;
    if responders(db, &h, next, now, state.tz).await?.is_empty() {
        return Ok(false);
    }
    let claim = Duration::seconds(Ord::max(state.config.notify.claim_secs, 1));
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    let moved = help_request::Entity::update_many()
        .col_expr(H::EscalationLevel, Expr::value(next))
        .col_expr(H::EscalatedAt, Expr::value(now))
        .filter(H::Id.eq(id))
        .filter(H::Status.eq(help_request::OPEN))
        .filter(H::EscalationLevel.eq(level))
        .exec(&txn)
        .await?;
    if moved.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    let ids = queue_alerts(&txn, &h, next, now, claim, state.tz).await?;
    crate::audit::record(
        &txn,
        None,
        "escalate_help",
        "help_request",
        Some(id),
        json!({"level": next, "alerted": ids.len()}),
    )
    .await
    .map_err(|e| DbErr::Custom(e.to_string()))?;
    txn.commit().await?;
    tracing::warn!(help = %id, level = next, "help request not acknowledged in time: escalated");
    send(state, &ids).await?;
    Ok(true)
}

/// Follows one request from its making: escalates it each time its delay passes without
/// an acknowledgement, while there is a tier above. Started with the request.
pub fn follow(state: Arc<AppState>, id: Uuid) {
    tokio::spawn(async move {
        loop {
            let h = match help_request::Entity::find_by_id(id).one(&state.db).await {
                Ok(Some(h)) => h,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(help = %id, error = %e, "following a help request failed; the sweep takes over");
                    return;
                }
            };
            if h.status != help_request::OPEN {
                return;
            }
            let since = h.escalated_at.unwrap_or(h.created_at);
            let due = since + state.config.help.after();
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            match escalate(&state, id, h.escalation_level, Utc::now()).await {
                Ok(true) => continue,
                Ok(false) => {
                    // Acknowledged, escalated by someone else, or nobody left above.
                    let again = help_request::Entity::find_by_id(id).one(&state.db).await;
                    match again {
                        Ok(Some(now)) if now.escalation_level != h.escalation_level => continue,
                        _ => return,
                    }
                }
                Err(e) => {
                    tracing::error!(help = %id, error = %e, "escalating a help request failed; the sweep retries");
                    return;
                }
            }
        }
    });
}

/// One sweep: alerts left unsent and escalations left undone by a process that died.
pub async fn sweep(state: &AppState, now: DateTime<Utc>) -> Result<(Sent, u32), DbErr> {
    use help_request::Column as H;
    let sent = resend_due(state, now).await?;
    let after = state.config.help.after();
    let open = help_request::Entity::find()
        .filter(H::Status.eq(help_request::OPEN))
        .filter(H::CreatedAt.lte(now - after))
        .order_by_asc(H::CreatedAt)
        .limit(500)
        .all(&state.db)
        .await?;
    let mut escalated = 0;
    for h in open {
        let since = h.escalated_at.unwrap_or(h.created_at);
        if since + after <= now && escalate(state, h.id, h.escalation_level, now).await? {
            escalated += 1;
        }
    }
    Ok((sent, escalated))
}

/// The sweep of this instance: once at start (requests pending when a process died), then
/// every `help.sweep_secs`.
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub fn start(state: Arc<AppState>) -> Self {
        let every = StdDuration::from_secs(Ord::max(state.config.help.sweep_secs, 1));
        let task = tokio::spawn(async move {
            loop {
                match sweep(&state, Utc::now()).await {
                    Ok((sent, escalated)) if sent != Sent::default() || escalated > 0 => {
                        tracing::warn!(?sent, escalated, "help sweep took over left work");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "help sweep failed"),
                }
                tokio::time::sleep(every).await;
            }
        });
        Self { task }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// Sends one emergency message on WeChat holding the person's openid lock, like the
/// dispatcher: WeChat refuses concurrent sends to one openid (43108). A send already in
/// flight is waited for, up to the time one send may take; past it, it counts as a
/// passing failure and is tried again.
async fn send_alone(
    state: &AppState,
    msg: &crate::wechat::SubscribeMessage,
) -> Result<u64, crate::wechat::WeChatError> {
    let lock = format!("wechat_send:{}", msg.touser);
    let holder = Uuid::new_v4().to_string();
    let hold = StdDuration::from_millis(state.config.wechat.timeout_ms + 1000);
    let give_up = std::time::Instant::now() + hold;
    while !state.cache.put_if_absent(&lock, &holder, hold).await {
        if std::time::Instant::now() >= give_up {
            return Err(crate::wechat::WeChatError::Transport(
                "another send to this person was in flight".into(),
            ));
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let sent = state.wechat.send_subscribe(msg).await;
    state.cache.remove_if(&lock, &holder).await;
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_go_from_the_nearest_region_up() {
        let (v, t, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let other = Uuid::from_u128(4);
        let both = Uuid::from_u128(5);
        let grants = vec![
            (c, "/city/county/".to_string()),
            (t, "/city/county/town/".to_string()),
            (v, "/city/county/town/village/".to_string()),
            (other, "/city/county/town2/".to_string()),
            (both, "/city/county/".to_string()),
            (both, "/city/county/town/".to_string()),
        ];
        assert_eq!(
            tiers("/city/county/town/village/", &grants),
            vec![vec![v], vec![t, both], vec![c]]
        );
        // A village without its own coordinator: the township is the first tier.
        assert_eq!(
            tiers("/city/county/town/village2/", &grants),
            vec![vec![t, both], vec![c]]
        );
        assert!(tiers("/elsewhere/", &grants).is_empty());
    }
}

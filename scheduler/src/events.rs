//! Life events — a death in the family, a move to another region, a case closed — and
//! what they do to the visits ahead: every future visit of the family is cancelled at
//! once with the reason, claims on them are released, and each person who held one (the
//! volunteers who claimed it, the cadre it was assigned to) gets a message in the outbox
//! (`notification`, template [`TEMPLATE_VISIT_CANCELLED`]) for the notification work to
//! deliver. The caller then re-plans the family ([`crate::generate::replan_family`]): a
//! family that is still cared for gets fresh, unclaimed visits for what it is still owed
//! (the generator reopens tasks cancelled with these reasons), a closed one gets none.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use entity::{notification, task_claim, visit_task, visit_task::status};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::generate::{REASON_CLOSED, REASON_DEATH, REASON_MOVED};

/// The outbox template telling a holder that a visit they held will not happen.
pub const TEMPLATE_VISIT_CANCELLED: &str = "visit_cancelled";
/// The outbox template telling a holder that a visit they hold is at another time now.
pub const TEMPLATE_VISIT_MOVED: &str = "visit_moved";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifeEvent {
    /// A member of the family died.
    Death,
    /// The family moved to another region: the volunteers of the old one cannot go.
    Moved,
    /// The association closed the family's case (销册).
    Closed,
}

impl LifeEvent {
    /// The `status_reason` of the cancelled visits.
    pub fn reason(self) -> &'static str {
        match self {
            LifeEvent::Death => REASON_DEATH,
            LifeEvent::Moved => REASON_MOVED,
            LifeEvent::Closed => REASON_CLOSED,
        }
    }

    /// A short code for messages (no family details: they may show on a locked screen).
    pub fn code(self) -> &'static str {
        match self {
            LifeEvent::Death => "death",
            LifeEvent::Moved => "moved",
            LifeEvent::Closed => "closed",
        }
    }
}

/// What [`cancel_ahead`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cancelled {
    /// Visits cancelled.
    pub visits: u64,
    /// Claims released.
    pub claims: u64,
    /// Messages queued for the holders.
    pub messages: u64,
}

/// Cancels every visit of `family` whose window has not ended by `now` and that nobody has
/// completed (`open` or `claimed`), releases their claims and queues a message to each
/// holder, inside the caller's transaction, so that the change that caused it and the
/// cancellation commit together. Running it twice changes nothing more.
pub async fn cancel_ahead(
    txn: &DatabaseTransaction,
    family: Uuid,
    event: LifeEvent,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<Cancelled, DbErr> {
    use visit_task::Column as T;
    let tasks: Vec<(Uuid, DateTime<Utc>, Option<Uuid>)> = visit_task::Entity::find()
        .select_only()
        .columns([T::Id, T::WindowStart, T::AssignedCadreId])
        .filter(T::FamilyId.eq(family))
        .filter(T::Status.is_in([status::OPEN, status::CLAIMED]))
        .filter(T::WindowEnd.gt(now))
        .into_tuple()
        .all(txn)
        .await?;
    if tasks.is_empty() {
        return Ok(Cancelled::default());
    }
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.0).collect();

    // Who holds them: the volunteers with a live claim, and the pre-assigned cadre.
    let claims: Vec<(Uuid, Uuid)> = task_claim::Entity::find()
        .select_only()
        .columns([task_claim::Column::TaskId, task_claim::Column::VolunteerId])
        .filter(task_claim::Column::TaskId.is_in(ids.iter().copied()))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .into_tuple()
        .all(txn)
        .await?;
    // `task_claim.volunteer_id` is the volunteer's account.
    let mut holders: Vec<(Uuid, Uuid)> = claims.clone();
    holders.extend(tasks.iter().filter_map(|t| t.2.map(|cadre| (t.0, cadre))));
    holders.sort();
    holders.dedup();

    let visits = visit_task::Entity::update_many()
        .col_expr(T::Status, Expr::value(status::CANCELLED))
        .col_expr(T::StatusReason, Expr::value(event.reason()))
        .col_expr(T::ClaimsCount, Expr::value(0))
        .col_expr(T::NeedsAttention, Expr::value(false))
        .col_expr(T::UpdatedAt, Expr::value(now))
        .filter(T::Id.is_in(ids.iter().copied()))
        .filter(T::Status.is_in([status::OPEN, status::CLAIMED]))
        .exec(txn)
        .await?
        .rows_affected;
    let claims = task_claim::Entity::update_many()
        .col_expr(
            task_claim::Column::Status,
            Expr::value(task_claim::RELEASED),
        )
        .col_expr(task_claim::Column::ReleasedAt, Expr::value(now))
        .filter(task_claim::Column::TaskId.is_in(ids.iter().copied()))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .exec(txn)
        .await?
        .rows_affected;

    let starts: HashMap<Uuid, DateTime<Utc>> = tasks.iter().map(|t| (t.0, t.1)).collect();
    let messages: Vec<notification::ActiveModel> = holders
        .iter()
        .map(|(task, user)| {
            let date = starts[task].with_timezone(&tz).date_naive();
            notification::ActiveModel::pending(
                *user,
                TEMPLATE_VISIT_CANCELLED,
                json!({
                    "task_id": task,
                    "date": date.to_string(),
                    "event": event.code(),
                }),
                format!("{TEMPLATE_VISIT_CANCELLED}:{task}:{user}"),
                now,
                now,
            )
        })
        .collect();
    let mut queued = 0;
    if !messages.is_empty() {
        queued = notification::Entity::insert_many(messages)
            .on_conflict(
                OnConflict::column(notification::Column::DedupeKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    tracing::info!(
        %family,
        event = event.code(),
        visits,
        claims,
        messages = queued,
        "future visits cancelled"
    );
    Ok(Cancelled {
        visits,
        claims,
        messages: queued,
    })
}

//! Who holds a visit: the volunteers with a live claim on it, or the cadre it was
//! assigned to. Shared by every endpoint that acts on a held visit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{family, region, task_claim, visit_task, visit_task::status};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Query, UnionType},
};
use uuid::Uuid;

pub use entity::visit_task::care_visits;

/// Whether `user` holds `task`: an active claim (`task_claim.volunteer_id` is the
/// volunteer's account), or the pre-assignment to their cadre.
pub async fn holds<C: ConnectionTrait>(
    db: &C,
    task: &visit_task::Model,
    user: Uuid,
) -> Result<bool, DbErr> {
    if task.assigned_cadre_id == Some(user) {
        return Ok(true);
    }
    let claims = task_claim::Entity::find()
        .filter(task_claim::Column::TaskId.eq(task.id))
        .filter(task_claim::Column::VolunteerId.eq(user))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .count(db)
        .await?;
    Ok(claims > 0)
}

/// Visits `user` holds: an active claim, or the pre-assignment to their cadre. One
/// `id IN (… UNION ALL …)`: each half uses its index, where an OR of the two would read
/// every visit.
pub fn held_by(user: Uuid) -> Condition {
    let assigned = Query::select()
        .column(visit_task::Column::Id)
        .from(visit_task::Entity)
        .and_where(visit_task::Column::AssignedCadreId.eq(user))
        .to_owned();
    let held = Query::select()
        .column(task_claim::Column::TaskId)
        .from(task_claim::Entity)
        .and_where(task_claim::Column::VolunteerId.eq(user))
        .and_where(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .union(UnionType::All, assigned)
        .to_owned();
    Condition::all().add(visit_task::Column::Id.in_subquery(held))
}

/// The names of these regions (villages, for the masked view of a family).
pub async fn village_names(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    let mut ids: Vec<Uuid> = ids.into_iter().collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
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

/// The visits `user` holds whose window overlaps `[from, to)`, not cancelled or missed,
/// soonest first, with their family's village name.
pub async fn held<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<(visit_task::Model, String)>, DbErr> {
    let tasks = visit_task::Entity::find()
        .filter(held_by(user))
        .filter(visit_task::Column::Status.is_not_in([status::CANCELLED, status::MISSED]))
        .filter(visit_task::Column::WindowEnd.gt(from))
        .filter(visit_task::Column::WindowStart.lt(to))
        .order_by_asc(visit_task::Column::WindowStart)
        .order_by_asc(visit_task::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let regions: HashMap<Uuid, Uuid> = family::Entity::find()
        .select_only()
        .columns([family::Column::Id, family::Column::RegionId])
        .filter(family::Column::Id.is_in(tasks.iter().map(|t| t.family_id)))
        .into_tuple::<(Uuid, Uuid)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let names = village_names(db, regions.values().copied()).await?;
    Ok(tasks
        .into_iter()
        .map(|t| {
            let village = regions
                .get(&t.family_id)
                .and_then(|r| names.get(r))
                .cloned()
                .unwrap_or_default();
            (t, village)
        })
        .collect())
}

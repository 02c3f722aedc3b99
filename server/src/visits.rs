//! Who holds a visit: the volunteers with a live claim on it, or the cadre it was
//! assigned to. Shared by every endpoint that acts on a held visit.

use entity::{task_claim, visit_task};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

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

/// The visits `user` holds whose window overlaps `[from, to)`, not cancelled or missed,
/// soonest first, with their family's village name.
pub async fn held<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    limit: u64,
) -> Result<Vec<(visit_task::Model, String)>, DbErr> {
    use entity::{family, region, visit_task::status};
    use sea_orm::{Condition, QueryOrder, QuerySelect};
    // Two indexed reads (a claim list, a cadre's assignments) rather than one OR, which
    // PostgreSQL answers by reading every visit.
    let claimed: Vec<Uuid> = task_claim::Entity::find()
        .select_only()
        .column(task_claim::Column::TaskId)
        .filter(task_claim::Column::VolunteerId.eq(user))
        .filter(task_claim::Column::Status.eq(task_claim::ACTIVE))
        .into_tuple()
        .all(db)
        .await?;
    let window = || {
        Condition::all()
            .add(visit_task::Column::Status.is_not_in([status::CANCELLED, status::MISSED]))
            .add(visit_task::Column::WindowEnd.gt(from))
            .add(visit_task::Column::WindowStart.lt(to))
    };
    let mut tasks = visit_task::Entity::find()
        .filter(visit_task::Column::AssignedCadreId.eq(user))
        .filter(window())
        .order_by_asc(visit_task::Column::WindowStart)
        .limit(limit)
        .all(db)
        .await?;
    for chunk in claimed.chunks(500) {
        tasks.extend(
            visit_task::Entity::find()
                .filter(visit_task::Column::Id.is_in(chunk.iter().copied()))
                .filter(window())
                .all(db)
                .await?,
        );
    }
    tasks.sort_by_key(|t| (t.window_start, t.id));
    tasks.dedup_by_key(|t| t.id);
    tasks.truncate(limit as usize);
    let families: Vec<(Uuid, Uuid)> = family::Entity::find()
        .select_only()
        .columns([family::Column::Id, family::Column::RegionId])
        .filter(family::Column::Id.is_in(tasks.iter().map(|t| t.family_id)))
        .into_tuple()
        .all(db)
        .await?;
    let names: std::collections::HashMap<Uuid, String> = region::Entity::find()
        .select_only()
        .columns([region::Column::Id, region::Column::Name])
        .filter(region::Column::Id.is_in(families.iter().map(|f| f.1)))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let villages: std::collections::HashMap<Uuid, String> = families
        .into_iter()
        .filter_map(|(f, r)| names.get(&r).map(|n| (f, n.clone())))
        .collect();
    Ok(tasks
        .into_iter()
        .map(|t| {
            let village = villages.get(&t.family_id).cloned().unwrap_or_default();
            (t, village)
        })
        .collect())
}

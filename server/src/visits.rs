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

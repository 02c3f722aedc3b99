//! The audit trail: who read or changed what, when. Append-only.

use chrono::Utc;
use entity::audit_log;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use uuid::Uuid;

use crate::error::ApiResult;

pub async fn record(
    db: &impl ConnectionTrait,
    actor: Option<Uuid>,
    action: &str,
    entity: &str,
    entity_id: Option<Uuid>,
    detail: serde_json::Value,
) -> ApiResult<()> {
    audit_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        actor_id: Set(actor),
        action: Set(action.into()),
        entity: Set(entity.into()),
        entity_id: Set(entity_id),
        detail: Set(detail),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

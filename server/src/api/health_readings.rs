//! Blood pressure over time per family member, from the visit reports, beside the
//! thresholds that raise a health follow-up (`[health]`). Health data: coordinators of the
//! family's region only, and each read is audited.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{family_member, visit_record, visit_task};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Query as SqlQuery};
use serde_json::json;
use uuid::Uuid;

use super::{Page, Paging, Tag, families::find_in_scope};
use crate::{
    app::AppState,
    audit,
    auth::Manager,
    crypto::mask_name,
    error::{ApiError, ApiResult},
    oversight::{self, HealthConfig},
};

pub struct Api(pub Arc<AppState>);

/// The readings that raise a follow-up.
#[derive(Object)]
pub struct Thresholds {
    /// At or above (mmHg).
    pub systolic_high: i32,
    pub diastolic_high: i32,
    /// Below (mmHg).
    pub systolic_low: i32,
}

impl From<&HealthConfig> for Thresholds {
    fn from(c: &HealthConfig) -> Self {
        Self {
            systolic_high: c.systolic_high,
            diastolic_high: c.diastolic_high,
            systolic_low: c.systolic_low,
        }
    }
}

#[derive(Object)]
pub struct Reading {
    pub visit_id: Uuid,
    /// When the visitor checked in (else when the report came).
    pub measured_at: Option<DateTime<Utc>>,
    /// Absent when the report did not say whose it is.
    pub member_id: Option<Uuid>,
    /// "父亲 孙*海"; "未注明" when the report did not say.
    pub member: String,
    pub systolic: i32,
    pub diastolic: i32,
    /// `normal`, `high` or `low` by the thresholds.
    pub level: String,
}

#[derive(Object)]
pub struct Readings {
    pub family_id: Uuid,
    pub thresholds: Thresholds,
    /// Newest first.
    pub readings: Page<Reading>,
}

#[OpenApi(tag = "Tag::Families")]
impl Api {
    /// A family's blood-pressure readings from visit reports, newest first; `member_id`
    /// keeps one member's. Each marked against the thresholds that raise a follow-up.
    #[oai(path = "/families/:id/health-readings", method = "get")]
    async fn readings(
        &self,
        auth: Manager,
        id: Path<Uuid>,
        member_id: Query<Option<Uuid>>,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Readings>> {
        let paging = Paging::new(page.0, per_page.0)?;
        let db = &self.0.db;
        let scope = auth.0.manager_scope()?;
        let fam = find_in_scope(db, &scope, id.0).await?;
        let members: HashMap<Uuid, family_member::Model> = family_member::Entity::find()
            .filter(family_member::Column::FamilyId.eq(fam.id))
            .all(db)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        if let Some(m) = member_id.0
            && !members.contains_key(&m)
        {
            return Err(ApiError::field("member_id", "不是该家庭的成员"));
        }
        let mut select = visit_record::Entity::find()
            .filter(
                visit_record::Column::TaskId.in_subquery(
                    SqlQuery::select()
                        .column(visit_task::Column::Id)
                        .from(visit_task::Entity)
                        .and_where(visit_task::Column::FamilyId.eq(fam.id))
                        .to_owned(),
                ),
            )
            .filter(visit_record::Column::BpSystolic.is_not_null())
            .filter(visit_record::Column::SubmittedAt.is_not_null());
        if let Some(m) = member_id.0 {
            select = select.filter(visit_record::Column::BpMemberId.eq(m));
        }
        let select = select
            .order_by_desc(visit_record::Column::SubmittedAt)
            .order_by_desc(visit_record::Column::Id);
        let (rows, total) = paging.fetch(db, select).await?;
        let c = &self.0.config.health;
        let items = rows
            .into_iter()
            .filter_map(|r| {
                let (sys, dia) = (r.bp_systolic?, r.bp_diastolic?);
                let member = r.bp_member_id.and_then(|m| members.get(&m)).map_or_else(
                    || "未注明".to_string(),
                    |m| format!("{} {}", m.relation.label(), mask_name(&m.name)),
                );
                Some(Reading {
                    visit_id: r.task_id,
                    measured_at: r.checkin_at.or(r.submitted_at),
                    member_id: r.bp_member_id,
                    member,
                    systolic: sys,
                    diastolic: dia,
                    level: oversight::bp_level(sys, dia, c).code().into(),
                })
            })
            .collect();
        audit::record(
            db,
            Some(auth.0.user_id),
            "read_health_readings",
            "family",
            Some(fam.id),
            json!({"member_id": member_id.0}),
        )
        .await?;
        Ok(Json(Readings {
            family_id: fam.id,
            thresholds: c.into(),
            readings: paging.wrap(items, total),
        }))
    }
}

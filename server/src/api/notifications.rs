//! Dead letters, for coordinators: messages a channel refused for good (WeChat's 47003 for
//! a value it rejects, a wrong template id…). They are still in the person's inbox; the
//! coordinator sees what failed and why, and sends one again once the cause is fixed.
//!
//! A coordinator sees the dead letters of people in their region subtree (a family member
//! by the family's region, a volunteer by theirs); administrators see all. Names are
//! masked ("王*"); the text is what the person would have read.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{app_user, family, family_household, family_member, notification, volunteer};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, Query as SqlQuery},
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Page, Paging, Tag, in_scope};
use crate::{
    app::AppState,
    audit,
    auth::{Manager, Scope},
    error::{ApiError, ApiResult},
    notify::templates,
};

pub struct Api(pub Arc<AppState>);

/// One step tried for a message.
#[derive(Object)]
pub struct Step {
    pub attempt: i32,
    /// wechat, sms, call, cap, retry.
    pub channel: String,
    pub result: String,
}

/// A message that could not be delivered.
#[derive(Object)]
pub struct DeadLetter {
    pub id: Uuid,
    pub template: String,
    /// What the person would have read.
    pub title: String,
    pub body: String,
    /// The recipient's surname ("王*").
    pub recipient: String,
    pub status: String,
    pub attempts: i32,
    /// Why it failed.
    pub error: Option<String>,
    /// Every channel tried, oldest first.
    pub trail: Vec<Step>,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub visit_id: Option<Uuid>,
}

/// Recipients in the scope: family members by their family's region, volunteers by theirs.
fn recipients_in(scope: &Scope) -> Condition {
    if *scope == Scope::All {
        return Condition::all();
    }
    let members = SqlQuery::select()
        .column(family_member::Column::UserId)
        .from(family_member::Entity)
        .and_where(family_member::Column::UserId.is_not_null())
        .and_where(
            family_member::Column::FamilyId.in_subquery(
                SqlQuery::select()
                    .column(family::Column::Id)
                    .from(family::Entity)
                    .cond_where(in_scope(scope, family::Column::RegionId))
                    .to_owned(),
            ),
        )
        .to_owned();
    let households = SqlQuery::select()
        .column(family_household::Column::UserId)
        .from(family_household::Entity)
        .and_where(
            family_household::Column::FamilyId.in_subquery(
                SqlQuery::select()
                    .column(family::Column::Id)
                    .from(family::Entity)
                    .cond_where(in_scope(scope, family::Column::RegionId))
                    .to_owned(),
            ),
        )
        .to_owned();
    let volunteers = SqlQuery::select()
        .column(volunteer::Column::UserId)
        .from(volunteer::Entity)
        .cond_where(in_scope(scope, volunteer::Column::RegionId))
        .to_owned();
    Condition::any()
        .add(notification::Column::RecipientId.in_subquery(members))
        .add(notification::Column::RecipientId.in_subquery(households))
        .add(notification::Column::RecipientId.in_subquery(volunteers))
}

fn steps(trail: Option<&Value>) -> Vec<Step> {
    trail
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .map(|s| Step {
                    attempt: s["attempt"].as_i64().unwrap_or(0) as i32,
                    channel: s["channel"].as_str().unwrap_or_default().into(),
                    result: s["result"].as_str().unwrap_or_default().into(),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Api {
    fn letter(&self, m: notification::Model, name: &str) -> DeadLetter {
        let tz = self.0.tz;
        let message = templates::render(
            &m.template,
            &m.payload,
            m.created_at.with_timezone(&tz).date_naive(),
        );
        DeadLetter {
            id: m.id,
            template: m.template,
            title: message.title,
            body: message.body,
            recipient: templates::masked_name(name),
            status: m.status,
            attempts: m.attempts,
            error: m.last_error,
            trail: steps(m.trail.as_ref()),
            created_at: m.created_at,
            visit_id: message.visit_id,
        }
    }

    async fn names(&self, ids: impl IntoIterator<Item = Uuid>) -> ApiResult<Vec<(Uuid, String)>> {
        Ok(app_user::Entity::find()
            .filter(app_user::Column::Id.is_in(ids))
            .all(&self.0.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect())
    }
}

#[OpenApi(tag = "Tag::Inbox")]
impl Api {
    /// Dead letters in my region subtree, newest first: messages a channel refused for
    /// good, with what was tried. Paginated (`page` from 1, `per_page` up to 100).
    #[oai(path = "/notifications/dead", method = "get")]
    async fn dead(
        &self,
        auth: Manager,
        page: Query<Option<u64>>,
        per_page: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<DeadLetter>>> {
        let scope = auth.0.manager_scope()?;
        let paging = Paging::new(page.0, per_page.0)?;
        let select = notification::Entity::find()
            .filter(notification::Column::Status.eq(notification::DEAD))
            .filter(recipients_in(&scope))
            .order_by_desc(notification::Column::CreatedAt)
            .order_by_desc(notification::Column::Id);
        let (rows, total) = paging.fetch(&self.0.db, select).await?;
        let names = self.names(rows.iter().map(|m| m.recipient_id)).await?;
        let name_of = |id: Uuid| {
            names
                .iter()
                .find(|(u, _)| *u == id)
                .map(|(_, n)| n.as_str())
                .unwrap_or("")
        };
        let items = rows
            .into_iter()
            .map(|m| {
                let name = name_of(m.recipient_id).to_string();
                self.letter(m, &name)
            })
            .collect();
        Ok(Json(paging.wrap(items, total)))
    }

    /// Send a dead letter again (after its cause was fixed): it goes down the channels
    /// afresh. Only a dead letter can be retried (409 otherwise). Audited.
    #[oai(path = "/notifications/:id/retry", method = "post")]
    async fn retry(&self, auth: Manager, id: Path<Uuid>) -> ApiResult<Json<DeadLetter>> {
        let scope = auth.0.manager_scope()?;
        let db = &self.0.db;
        let m = notification::Entity::find_by_id(id.0)
            .filter(recipients_in(&scope))
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("消息"))?;
        if m.status != notification::DEAD {
            return Err(ApiError::state(
                "not_dead",
                m.status,
                "只有发送失败的消息可以重发",
            ));
        }
        let now = Utc::now();
        let mut trail = match m.trail.clone() {
            Some(Value::Array(steps)) => steps,
            _ => Vec::new(),
        };
        trail.push(json!({
            "attempt": m.attempts,
            "channel": "retry",
            "result": "sent again by a coordinator",
        }));
        // Conditional on still being dead: two coordinators retrying at once send once.
        let done = notification::Entity::update_many()
            .col_expr(
                notification::Column::Status,
                Expr::value(notification::PENDING),
            )
            .col_expr(notification::Column::Attempts, Expr::value(0))
            .col_expr(notification::Column::NextAttemptAt, Expr::value(now))
            .col_expr(notification::Column::Channel, Expr::value(None::<String>))
            .col_expr(
                notification::Column::Trail,
                Expr::value(Value::Array(trail)),
            )
            .filter(notification::Column::Id.eq(m.id))
            .filter(notification::Column::Status.eq(notification::DEAD))
            .exec(db)
            .await?;
        if done.rows_affected != 1 {
            return Err(ApiError::state(
                "not_dead",
                notification::PENDING,
                "该消息已在重发",
            ));
        }
        audit::record(
            db,
            Some(auth.0.user_id),
            "notification_retry",
            "notification",
            Some(m.id),
            json!({"template": m.template, "error": m.last_error}),
        )
        .await?;
        let m = notification::Entity::find_by_id(m.id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("消息"))?;
        let name = self
            .names([m.recipient_id])
            .await?
            .pop()
            .map(|(_, n)| n)
            .unwrap_or_default();
        Ok(Json(self.letter(m, &name)))
    }
}

//! My messages: the in-app inbox, where every notification arrives whatever WeChat did,
//! and the WeChat subscription grants the mini-program reports after
//! `wx.requestSubscribeMessage`.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use entity::notification::{self, Column as C};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Tag;
use crate::{
    app::AppState,
    auth::Auth,
    error::{ApiError, ApiResult},
    input::{Input, Validate},
    notify::{ledger, templates},
};

pub struct Api(pub Arc<AppState>);

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 50;
/// `wx.requestSubscribeMessage` asks for at most this many templates at once.
const MAX_ACCEPTED: usize = 5;

#[derive(Object)]
pub struct InboxItem {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    /// When it arrived.
    pub at: DateTime<Utc>,
    pub read: bool,
    /// The visit it is about, to open its page.
    #[oai(skip_serializing_if_is_none)]
    pub visit_id: Option<Uuid>,
}

#[derive(Object)]
pub struct InboxPage {
    /// Newest first.
    pub items: Vec<InboxItem>,
    /// Unread messages in the whole inbox.
    pub unread: u64,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct Unread {
    pub unread: u64,
}

#[derive(Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The WeChat template ids the person accepted in `wx.requestSubscribeMessage`
    /// (the keys whose value was "accept"); each allows one message.
    pub accepted: Vec<String>,
}

impl Validate for Accepted {
    fn validate(&self) -> ApiResult<()> {
        if self.accepted.len() > MAX_ACCEPTED {
            return Err(ApiError::field(
                "accepted",
                format!("一次最多上报 {MAX_ACCEPTED} 个模板"),
            ));
        }
        for (i, id) in self.accepted.iter().enumerate() {
            let field = format!("accepted[{i}]");
            if id.trim().is_empty() || id.len() > 64 {
                return Err(ApiError::field(field, "模板 ID 无效"));
            }
            if self.accepted[..i].contains(id) {
                return Err(ApiError::field(field, "模板 ID 重复"));
            }
        }
        Ok(())
    }
}

#[derive(Object)]
pub struct Grant {
    /// A WeChat template id this server sends messages with.
    pub template_id: String,
    /// Messages of it the person may still receive on WeChat.
    pub balance: i32,
}

#[derive(Object)]
pub struct Subscriptions {
    /// Every template the server sends with: ask for the ones with a low balance at the
    /// next natural tap (claiming, confirming, reporting).
    pub templates: Vec<Grant>,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// inbox_at, nanoseconds since the epoch.
    t: i64,
    i: Uuid,
}

fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).expect("cursor serialises"))
}

fn decode_cursor(s: &str) -> ApiResult<Cursor> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::field("cursor", "cursor 无效，请从第一页重新开始"))
}

/// My messages that are in the inbox: due, and not dropped as out of date.
fn inbox_of(user: Uuid) -> Condition {
    Condition::all()
        .add(C::RecipientId.eq(user))
        .add(C::InboxAt.is_not_null())
        .add(C::Status.ne(notification::DROPPED))
}

#[OpenApi(tag = "Tag::Inbox")]
impl Api {
    /// My inbox, newest first, with the number of unread messages. Every message is here,
    /// whether or not it also reached me on WeChat.
    #[oai(path = "/me/inbox", method = "get")]
    async fn inbox(
        &self,
        auth: Auth,
        /// From the previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Messages per page, 1 to 50 (default 20).
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<InboxPage>> {
        let state = &self.0;
        let user = auth.0.user_id;
        let limit = limit.0.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::field(
                "limit",
                format!("limit 应在 1 到 {MAX_LIMIT} 之间"),
            ));
        }
        let cursor = cursor.0.as_deref().map(decode_cursor).transpose()?;
        let mut select = notification::Entity::find().filter(inbox_of(user));
        if let Some(c) = &cursor {
            let t = DateTime::from_timestamp_nanos(c.t);
            select = select.filter(
                Condition::any()
                    .add(C::InboxAt.lt(t))
                    .add(Condition::all().add(C::InboxAt.eq(t)).add(C::Id.lt(c.i))),
            );
        }
        let mut rows = select
            .order_by_desc(C::InboxAt)
            .order_by_desc(C::Id)
            .limit(u64::from(limit) + 1)
            .all(&state.db)
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some(m)) => m.inbox_at.map(|at| {
                encode_cursor(&Cursor {
                    t: at.timestamp_nanos_opt().unwrap_or_default(),
                    i: m.id,
                })
            }),
            _ => None,
        };
        let items = rows.into_iter().map(|m| item(m, state.tz)).collect();
        Ok(Json(InboxPage {
            items,
            unread: unread(state, user).await?,
            next_cursor,
        }))
    }

    /// Marks one of my messages read. Someone else's message answers 404.
    #[oai(path = "/me/inbox/:id/read", method = "post")]
    async fn read(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<Unread>> {
        let state = &self.0;
        let user = auth.0.user_id;
        let id: Uuid =
            id.0.parse()
                .map_err(|_| ApiError::field("id", "消息 ID 无效"))?;
        let found = notification::Entity::find_by_id(id)
            .filter(inbox_of(user))
            .count(&state.db)
            .await?;
        if found == 0 {
            return Err(ApiError::NotFound("消息"));
        }
        notification::Entity::update_many()
            .col_expr(C::ReadAt, Expr::value(Utc::now()))
            .filter(C::Id.eq(id))
            .filter(C::ReadAt.is_null())
            .exec(&state.db)
            .await?;
        Ok(Json(Unread {
            unread: unread(state, user).await?,
        }))
    }

    /// Marks all my messages read.
    #[oai(path = "/me/inbox/read-all", method = "post")]
    async fn read_all(&self, auth: Auth) -> ApiResult<Json<Unread>> {
        notification::Entity::update_many()
            .col_expr(C::ReadAt, Expr::value(Utc::now()))
            .filter(inbox_of(auth.0.user_id))
            .filter(C::ReadAt.is_null())
            .exec(&self.0.db)
            .await?;
        Ok(Json(Unread { unread: 0 }))
    }

    /// The WeChat templates this server sends with, and how many messages of each I may
    /// still receive on WeChat.
    #[oai(path = "/me/subscriptions", method = "get")]
    async fn subscriptions(&self, auth: Auth) -> ApiResult<Json<Subscriptions>> {
        Ok(Json(subscriptions(&self.0, auth.0.user_id).await?))
    }

    /// After `wx.requestSubscribeMessage`, the mini-program reports the templates I
    /// accepted: each acceptance allows one more message of it on WeChat (they add up
    /// and do not expire). Ask only at a tap, never on page load.
    #[oai(path = "/me/subscriptions", method = "post")]
    async fn accept(&self, auth: Auth, body: Input<Accepted>) -> ApiResult<Json<Subscriptions>> {
        let state = &self.0;
        let known = state.config.notify.wechat_template_ids();
        for (i, id) in body.0.accepted.iter().enumerate() {
            if !known.contains(id) {
                return Err(ApiError::field(
                    format!("accepted[{i}]"),
                    "本服务不使用这个消息模板",
                ));
            }
        }
        ledger::add(&state.db, auth.0.user_id, &body.0.accepted).await?;
        Ok(Json(subscriptions(state, auth.0.user_id).await?))
    }
}

fn item(m: notification::Model, tz: chrono_tz::Tz) -> InboxItem {
    let queued_on = m.created_at.with_timezone(&tz).date_naive();
    let rendered = templates::render(&m.template, &m.payload, queued_on);
    InboxItem {
        id: m.id,
        title: rendered.title,
        body: rendered.body,
        at: m.inbox_at.unwrap_or(m.created_at),
        read: m.read_at.is_some(),
        visit_id: rendered.visit_id,
    }
}

async fn unread(state: &AppState, user: Uuid) -> ApiResult<u64> {
    Ok(notification::Entity::find()
        .filter(inbox_of(user))
        .filter(C::ReadAt.is_null())
        .count(&state.db)
        .await?)
}

async fn subscriptions(state: &AppState, user: Uuid) -> ApiResult<Subscriptions> {
    let balances = ledger::balances(&state.db, [user]).await?;
    let templates = state
        .config
        .notify
        .wechat_template_ids()
        .into_iter()
        .map(|t| Grant {
            balance: balances.get(&(user, t.clone())).copied().unwrap_or(0),
            template_id: t,
        })
        .collect();
    Ok(Subscriptions { templates })
}

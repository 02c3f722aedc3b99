//! A secret address phone calendars subscribe to, listing the visits a person holds. The
//! address is the only key (calendar apps cannot log in), so it can be replaced or turned
//! off at any time, and the events name the kind of visit and the village only.

use std::sync::Arc;

use chrono::{Days, Utc};
use entity::calendar_link;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use super::{Tag, auth::Done};
use crate::{
    app::AppState,
    audit,
    auth::Auth,
    crypto::{random_token, sha256_hex},
    error::{ApiError, ApiResult},
    ics,
};

pub struct Api(pub Arc<AppState>);

/// The held visits from this many days back to this many ahead.
const DAYS_BACK: u64 = 30;
const DAYS_AHEAD: u64 = 120;

#[derive(Object)]
pub struct FeedLink {
    /// Subscribe to this address (on this server) in the phone's calendar. Anyone who
    /// has it can read the visit times: replace it if it leaks.
    pub path: String,
}

#[derive(ApiResponse)]
pub enum IcsResponse {
    #[oai(status = 200, content_type = "text/calendar; charset=utf-8")]
    Ok(poem_openapi::payload::PlainText<String>),
}

#[OpenApi(tag = "Tag::Visits")]
impl Api {
    /// A new calendar address for my visits; the previous one stops working.
    #[oai(path = "/me/calendar-feed", method = "post")]
    async fn create(&self, auth: Auth) -> ApiResult<Json<FeedLink>> {
        let db = &self.0.db;
        let token = random_token();
        calendar_link::Entity::delete_by_id(auth.0.user_id)
            .exec(db)
            .await?;
        calendar_link::ActiveModel {
            user_id: Set(auth.0.user_id),
            token_hash: Set(sha256_hex(&token)),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
        audit::record(
            db,
            Some(auth.0.user_id),
            "create_calendar_feed",
            "app_user",
            Some(auth.0.user_id),
            json!({}),
        )
        .await?;
        Ok(Json(FeedLink {
            path: format!("/api/calendar/{token}.ics"),
        }))
    }

    /// Turn my calendar address off.
    #[oai(path = "/me/calendar-feed", method = "delete")]
    async fn delete(&self, auth: Auth) -> ApiResult<Json<Done>> {
        calendar_link::Entity::delete_by_id(auth.0.user_id)
            .exec(&self.0.db)
            .await?;
        Ok(Json(Done { ok: true }))
    }

    /// The calendar itself (iCalendar), for phone calendars; no login, the address is
    /// the key.
    #[oai(path = "/calendar/:file", method = "get")]
    async fn feed(&self, file: Path<String>) -> ApiResult<IcsResponse> {
        let state = &self.0;
        let token = file.0.strip_suffix(".ics").unwrap_or(&file.0);
        let link = calendar_link::Entity::find()
            .filter(calendar_link::Column::TokenHash.eq(sha256_hex(token)))
            .one(&state.db)
            .await?
            .ok_or(ApiError::NotFound("日历"))?;
        let now = Utc::now();
        let from = now - Days::new(DAYS_BACK);
        let to = now + Days::new(DAYS_AHEAD);
        let held = crate::visits::held(&state.db, link.user_id, from, to, 500).await?;
        let tz = state.tz;
        let events: Vec<ics::Event> = held
            .into_iter()
            .map(|(t, village)| {
                let what = match (t.channel.as_str(), t.gentle) {
                    ("phone_call", _) => "电话问候",
                    (_, true) => "关怀走访",
                    _ => "入户走访",
                };
                let (start, end) = (
                    t.window_start.with_timezone(&tz).date_naive(),
                    (t.window_end - chrono::TimeDelta::seconds(1))
                        .with_timezone(&tz)
                        .date_naive(),
                );
                ics::Event {
                    uid: format!("{}@nuanxin", t.id),
                    summary: format!("{what} · {village}"),
                    description: format!(
                        "可在 {} 至 {} 之间进行。详情请在暖心小程序中查看。",
                        start.format("%-m月%-d日"),
                        end.format("%-m月%-d日")
                    ),
                    day: t.planned_date,
                    start: t.window_start,
                    end: t.window_end,
                    updated: t.updated_at,
                }
            })
            .collect();
        Ok(IcsResponse::Ok(poem_openapi::payload::PlainText(
            ics::calendar("暖心走访", &events),
        )))
    }
}

//! Doing visits through the API for the tests of what coordinators see: a visit open
//! today, claimed, checked in at the door, reported, and confirmed by the family.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{TestApp, visits::VisitSpec};

/// Where the test families live (and the test volunteers, so they can reach them).
pub const HOME: (f64, f64) = (31.82, 117.23);

pub fn today() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive()
}

/// Local midnight of today, in UTC.
pub fn today_start() -> DateTime<Utc> {
    server::eligibility::local_midnight(chrono_tz::Asia::Shanghai, today())
}

impl TestApp {
    /// A visit of `kind` for `family` whose window opened at local midnight today and
    /// lasts until tomorrow: it counts in today's week and month, and can be done now.
    pub async fn visit_today(&self, family: Uuid, kind: &str) -> Uuid {
        let start = today_start();
        let hours = (Utc::now() + Duration::days(1) - start).num_hours();
        self.visit(VisitSpec::new(family, start, hours).kind(kind))
            .await
    }

    /// The volunteer claims the visit through the API.
    pub async fn claim(&self, token: &str, visit: Uuid) {
        self.post(
            &format!("/api/visits/{visit}/claims"),
            Some(token),
            json!({}),
        )
        .await
        .ok();
    }

    /// Claims (when `claim`), checks in at the door and reports; the report's body.
    pub async fn do_visit(&self, token: &str, visit: Uuid, report: Value) -> Value {
        self.claim(token, visit).await;
        self.post(
            &format!("/api/visits/{visit}/checkin"),
            Some(token),
            json!({"lat": HOME.0, "lng": HOME.1}),
        )
        .await
        .ok();
        self.post(&format!("/api/visits/{visit}/report"), Some(token), report)
            .await
            .ok()
    }

    /// A member of the family bound to a new WeChat account through an invite code (the
    /// member is added through the API); their token.
    pub async fn family_member_token(&self, coordinator: &str, family: Uuid) -> String {
        let token = self.token_for(coordinator).await;
        let member = self
            .post(
                &format!("/api/families/{family}/members"),
                Some(&token),
                json!({"name": "周桂兰", "relation": "mother"}),
            )
            .await
            .ok();
        let member_id = member["id"].clone();
        let code = self
            .post(
                &format!("/api/families/{family}/invites"),
                Some(&token),
                json!({"member_id": member_id}),
            )
            .await
            .ok()["code"]
            .as_str()
            .unwrap()
            .to_string();
        let openid = format!("o-oversight-{}", Uuid::new_v4().simple());
        let ticket = self.wechat_login(&openid).await.ok()["ticket"]
            .as_str()
            .unwrap()
            .to_string();
        self.post(
            "/api/auth/bind",
            None,
            json!({"ticket": ticket, "code": code}),
        )
        .await
        .ok()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

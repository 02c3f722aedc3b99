use std::sync::Once;

use chrono::{DateTime, Utc};
use miniapp_stub::{FakeConfig, FakeWeChat, TEMPLATE_LONG_TERM_NOTICE, TEMPLATE_VISIT_REMINDER};
use serde_json::{Value, json};

pub const APPID: &str = "wxdemo0000000000";
pub const SECRET: &str = "demo-secret";
/// An openid with a long-term credit, used by `token_errcode` to probe a token.
const PROBE_OPENID: &str = "o-token-probe";

/// A reqwest client; the first call installs rustls' ring provider, which reqwest
/// needs before any client is built (tests run in any order).
pub fn client() -> reqwest::Client {
    static RUSTLS: Once = Once::new();
    RUSTLS.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}

pub struct TestApp {
    pub fake: FakeWeChat,
    pub base: String,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let fake = FakeWeChat::spawn("127.0.0.1:0", FakeConfig::default())
            .await
            .expect("spawn fake");
        let base = fake.base_url();
        fake.grant_credits(PROBE_OPENID, TEMPLATE_LONG_TERM_NOTICE, 1);
        TestApp {
            fake,
            base,
            client: client(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{}", self.base, path);
        self.client.get(url).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON body")
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let url = format!("{}{}", self.base, path);
        self.client.post(url).body(body).send().await.expect("POST")
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        let response = self.post_raw(path, body.to_string()).await;
        assert_eq!(response.status(), 200, "POST {path}");
        response.json().await.expect("JSON body")
    }

    /// `POST /__fake/<path>`.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        self.post_json(&format!("/__fake/{path}"), body).await
    }

    pub async fn mint_code(&self, openid: &str, unionid: Option<&str>) -> String {
        let body = self
            .control("codes", json!({ "openid": openid, "unionid": unionid }))
            .await;
        body["code"].as_str().expect("code").to_owned()
    }

    pub async fn advance_clock(&self, secs: i64) {
        self.control("clock", json!({ "advance_secs": secs })).await;
    }

    /// Moves the fake clock so that it reads `secs_of_day` seconds after a Beijing midnight
    /// (the day of WeChat's daily quotas), keeping tests away from day and minute edges.
    pub async fn set_beijing_time_of_day(&self, secs_of_day: i64) {
        let clock = self.get_json("/__fake/clock").await;
        let now: DateTime<Utc> = clock["now"].as_str().unwrap().parse().unwrap();
        let beijing = now.timestamp() + 8 * 3600;
        let shift = secs_of_day - beijing.rem_euclid(86_400);
        self.advance_clock(shift).await;
    }

    pub async fn login_with(&self, appid: &str, secret: &str, code: &str) -> Value {
        let path = format!(
            "/sns/jscode2session?appid={appid}&secret={secret}&js_code={code}&grant_type=authorization_code"
        );
        // The body is JSON whatever the content type says (text/plain here).
        let text = self.get(&path).await.text().await.expect("body");
        serde_json::from_str(&text).expect("JSON body")
    }

    pub async fn login(&self, code: &str) -> Value {
        self.login_with(APPID, SECRET, code).await
    }

    pub async fn stable_token(&self, force_refresh: bool) -> Value {
        let body = json!({
            "grant_type": "client_credential",
            "appid": APPID,
            "secret": SECRET,
            "force_refresh": force_refresh,
        });
        self.post_json("/cgi-bin/stable_token", body).await
    }

    pub async fn legacy_token(&self) -> Value {
        self.get_json(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
        ))
        .await
    }

    pub async fn send(&self, token: &str, body: Value) -> Value {
        self.post_json(
            &format!("/cgi-bin/message/subscribe/send?access_token={token}"),
            body,
        )
        .await
    }

    /// The errcode a send with `token` gets, using a long-term template so that probing
    /// never uses up a credit: 0 means the token is accepted.
    pub async fn token_errcode(&self, token: &str) -> i64 {
        let body = json!({
            "touser": PROBE_OPENID,
            "template_id": TEMPLATE_LONG_TERM_NOTICE,
            "data": { "thing1": { "value": "令牌检查" }, "time2": { "value": "15:01" } },
        });
        errcode(&self.send(token, body).await)
    }

    pub async fn stats(&self) -> Value {
        self.get_json("/__fake/stats").await
    }
}

/// A missing errcode means success (WECHAT.md §0).
pub fn errcode(body: &Value) -> i64 {
    body.get("errcode")
        .map_or(0, |c| c.as_i64().expect("integer errcode"))
}

pub fn errmsg(body: &Value) -> &str {
    body["errmsg"].as_str().expect("errmsg")
}

pub fn token_of(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {body}"))
        .to_owned()
}

/// A valid visit-reminder send to `openid`.
pub fn visit_reminder(openid: &str) -> Value {
    json!({
        "touser": openid,
        "template_id": TEMPLATE_VISIT_REMINDER,
        "page": "pages/visit/detail?id=123",
        "miniprogram_state": "developer",
        "lang": "zh_CN",
        "data": {
            "thing1": { "value": "上门走访提醒" },
            "time2": { "value": "2025年10月1日 15:01" },
            "thing3": { "value": "幸福社区3栋" },
            "phrase4": { "value": "待出发" },
        },
    })
}

/// Checks the `rid: xxxxxxxx-xxxxxxxx-xxxxxxxx` suffix every error carries.
pub fn assert_rid(errmsg: &str) {
    let (_, rid) = errmsg
        .rsplit_once("rid: ")
        .unwrap_or_else(|| panic!("no rid in {errmsg:?}"));
    let groups: Vec<&str> = rid.split('-').collect();
    assert_eq!(groups.len(), 3, "rid {rid:?}");
    assert!(
        groups
            .iter()
            .all(|g| g.len() == 8 && g.chars().all(|c| c.is_ascii_hexdigit())),
        "rid {rid:?}"
    );
}

//! `GET /sns/jscode2session` (WECHAT.md §1): trades a one-time `js_code` for an openid.
//!
//! Codes exist only when a test mints them (`POST /__fake/codes` or
//! [`crate::FakeWeChat::mint_code`]); each is bound to an appid, an openid and an optional
//! unionid, is single use and lives 300 s on the fake clock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use poem::web::{Data, Query};
use poem::{Response, handler};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use crate::FakeConfig;
use crate::errors::{TEXT_PLAIN, WxError, reply};
use crate::state::{Api, AppState, State};

pub const CODE_TTL_SECS: i64 = 300;
/// Documented frequency limit: 100 calls per user per minute.
pub const LOGIN_LIMIT_PER_MINUTE: u32 = 100;

#[derive(Default)]
pub struct LoginState {
    codes: HashMap<String, Code>,
    /// openid → (minute number on the fake clock, calls in that minute).
    per_minute: HashMap<String, (i64, u32)>,
    blocked: HashSet<String>,
    /// Counts successes so that every second one carries `"errcode":0` (see `success_body`).
    successes: u64,
}

struct Code {
    appid: String,
    openid: String,
    unionid: Option<String>,
    minted_at: DateTime<Utc>,
    used: bool,
}

impl LoginState {
    pub fn mint(
        &mut self,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
        now: DateTime<Utc>,
    ) -> String {
        // Real codes are 32 characters of [0-9A-Za-z].
        let code: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        self.codes.insert(
            code.clone(),
            Code {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
                unionid: unionid.map(str::to_owned),
                minted_at: now,
                used: false,
            },
        );
        code
    }

    pub fn set_blocked(&mut self, openid: &str, blocked: bool) {
        if blocked {
            self.blocked.insert(openid.to_owned());
        } else {
            self.blocked.remove(openid);
        }
    }

    /// Pretends `openid` already made `count` calls in the current minute.
    pub fn set_minute_count(&mut self, openid: &str, count: u32, now: DateTime<Utc>) {
        self.per_minute
            .insert(openid.to_owned(), (minute_of(now), count));
    }

    /// Counts one call for `openid`; false once the minute's limit is exceeded.
    fn count_call(&mut self, openid: &str, now: DateTime<Utc>) -> bool {
        let minute = minute_of(now);
        let entry = self
            .per_minute
            .entry(openid.to_owned())
            .or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1 <= LOGIN_LIMIT_PER_MINUTE
    }

    /// Success bodies alternate between the current form (no errcode) and the documented
    /// sample form (`"errcode":0`), so clients must accept both (WECHAT.md §0), yet tests
    /// stay deterministic: the first success after start or reset has no errcode.
    fn success_body(&mut self, openid: &str, unionid: Option<&str>) -> Value {
        self.successes += 1;
        let mut key = [0u8; 16];
        rand::rng().fill(&mut key);
        let mut body = json!({
            "openid": openid,
            "session_key": base64::engine::general_purpose::STANDARD.encode(key),
        });
        if let Some(unionid) = unionid {
            body["unionid"] = json!(unionid);
        }
        if self.successes.is_multiple_of(2) {
            body["errcode"] = json!(0);
            body["errmsg"] = json!("ok");
        }
        body
    }
}

fn minute_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(60)
}

#[handler]
pub async fn jscode2session(
    Data(app): Data<&Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        app.enter(Api::Jscode2session).await?;
        code2session(&mut app.lock(), &app.config, &query)
    };
    reply(result.await, app.now_unix(), TEXT_PLAIN)
}

fn code2session(
    state: &mut State,
    config: &FakeConfig,
    query: &HashMap<String, String>,
) -> Result<Value, WxError> {
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    if param("grant_type") != "authorization_code" {
        return Err(WxError::new(40002));
    }
    let (appid, secret, js_code) = (param("appid"), param("secret"), param("js_code"));
    if appid.is_empty() {
        return Err(WxError::new(41002));
    }
    if secret.is_empty() {
        return Err(WxError::new(41004));
    }
    if js_code.is_empty() {
        return Err(WxError::new(41008));
    }
    if appid != config.appid {
        return Err(WxError::new(40013));
    }
    if secret != config.secret {
        return Err(WxError::new(40125));
    }

    let now = state.now();
    let login = &mut state.login;
    let Some(code) = login.codes.get_mut(js_code) else {
        return Err(WxError::new(40029));
    };
    if (now - code.minted_at).num_seconds() >= CODE_TTL_SECS {
        login.codes.remove(js_code);
        return Err(WxError::new(40029));
    }
    if code.used {
        return Err(WxError::new(40163));
    }
    if code.appid != appid {
        // Observed: a code used with the wrong app gets 40029 and is spent (a replay is 40163).
        code.used = true;
        return Err(WxError::new(40029));
    }
    let (openid, unionid) = (code.openid.clone(), code.unionid.clone());

    // Refused calls leave the code unspent: the user may retry within its five minutes.
    if !login.count_call(&openid, now) {
        return Err(WxError::new(45011));
    }
    if login.blocked.contains(&openid) {
        return Err(WxError::new(40226));
    }
    if let Some(code) = login.codes.get_mut(js_code) {
        code.used = true;
    }
    Ok(login.success_body(&openid, unionid.as_deref()))
}

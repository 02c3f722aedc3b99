//! Server access tokens (WECHAT.md §2): legacy `GET /cgi-bin/token` and
//! `POST /cgi-bin/stable_token`, each with its own store so that they are isolated.
//!
//! A token dies at its natural expiry (→ 42001) or when rotation revokes it (→ 40001);
//! legacy fetches and stable rotations keep the old token alive 300 s, a forced stable
//! refresh kills it at once.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use poem::web::{Data, Query};
use poem::{Response, handler};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use crate::FakeConfig;
use crate::errors::{WX_JSON, WxError, reply};
use crate::state::{Api, AppState, State};

pub const DEFAULT_EXPIRES_IN: i64 = 7200;
/// After a rotation the previous token keeps working this long ("5-minute overlap").
const OVERLAP_SECS: i64 = 300;
const FORCE_MIN_GAP_SECS: i64 = 30;
pub const FORCE_REFRESH_PER_DAY: u32 = 20;
/// The legacy daily quota is account dependent (2000–10000); take the documented low end.
pub const LEGACY_FETCHES_PER_DAY: u32 = 2000;

/// Which store issued a token (recorded in the outbox of sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Legacy,
    Stable,
}

impl TokenSource {
    pub fn name(self) -> &'static str {
        match self {
            TokenSource::Legacy => "token",
            TokenSource::Stable => "stable_token",
        }
    }
}

pub struct TokenState {
    /// `expires_in` of newly issued tokens; a test hook lowers it.
    pub expires_in: i64,
    legacy: Store,
    stable: Store,
    pub legacy_today: DayCounter,
    pub forced_today: DayCounter,
    last_force: Option<DateTime<Utc>>,
}

impl Default for TokenState {
    fn default() -> Self {
        Self {
            expires_in: DEFAULT_EXPIRES_IN,
            legacy: Store::default(),
            stable: Store::default(),
            legacy_today: DayCounter::default(),
            forced_today: DayCounter::default(),
            last_force: None,
        }
    }
}

impl TokenState {
    /// Checks an `access_token` query parameter; a token from either store is accepted.
    pub fn check(&self, token: &str, now: DateTime<Utc>) -> Result<TokenSource, WxError> {
        if token.is_empty() {
            return Err(WxError::new(41001));
        }
        if let Some(t) = self.legacy.tokens.get(token) {
            return t.check(now).map(|()| TokenSource::Legacy);
        }
        if let Some(t) = self.stable.tokens.get(token) {
            return t.check(now).map(|()| TokenSource::Stable);
        }
        Err(WxError::new(40001))
    }
}

#[derive(Default)]
struct Store {
    tokens: HashMap<String, Token>,
    current: Option<String>,
}

struct Token {
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// Set when a newer token replaced this one: the moment it stops working.
    revoked_at: Option<DateTime<Utc>>,
}

impl Token {
    fn check(&self, now: DateTime<Utc>) -> Result<(), WxError> {
        match self.revoked_at {
            Some(revoked) if revoked < self.expires_at && now >= revoked => {
                Err(WxError::new(40001))
            }
            _ if now >= self.expires_at => Err(WxError::new(42001)),
            _ => Ok(()),
        }
    }

    fn remaining_secs(&self, now: DateTime<Utc>) -> i64 {
        (self.expires_at - now).num_seconds()
    }
}

impl Store {
    fn current(&self) -> Option<&Token> {
        self.tokens.get(self.current.as_deref()?)
    }

    /// Issues a new current token; the previous one keeps working `overlap_secs` more.
    fn rotate(&mut self, now: DateTime<Utc>, expires_in: i64, overlap_secs: i64) -> String {
        if let Some(old) = self.current.take().and_then(|v| self.tokens.get_mut(&v)) {
            old.revoked_at = Some(now + TimeDelta::seconds(overlap_secs));
        }
        // Real tokens are opaque and long (store ≥512 chars); 136 is a typical length.
        let value: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(136)
            .map(char::from)
            .collect();
        self.tokens.insert(
            value.clone(),
            Token {
                issued_at: now,
                expires_at: now + TimeDelta::seconds(expires_in),
                revoked_at: None,
            },
        );
        self.current = Some(value.clone());
        value
    }
}

/// A per-day counter; days are Beijing calendar days, as WeChat's quotas are.
#[derive(Default)]
pub struct DayCounter {
    day: Option<NaiveDate>,
    count: u32,
}

impl DayCounter {
    fn today(now: DateTime<Utc>) -> NaiveDate {
        (now + TimeDelta::hours(8)).date_naive()
    }

    pub fn get(&self, now: DateTime<Utc>) -> u32 {
        if self.day == Some(Self::today(now)) {
            self.count
        } else {
            0
        }
    }

    pub fn set(&mut self, now: DateTime<Utc>, count: u32) {
        self.day = Some(Self::today(now));
        self.count = count;
    }

    fn increment(&mut self, now: DateTime<Utc>) -> u32 {
        let next = self.get(now) + 1;
        self.set(now, next);
        next
    }
}

fn check_credentials(
    config: &FakeConfig,
    grant_type: &str,
    appid: &str,
    secret: &str,
) -> Result<(), WxError> {
    if grant_type != "client_credential" {
        return Err(WxError::new(40002));
    }
    if appid.is_empty() {
        return Err(WxError::new(41002));
    }
    if secret.is_empty() {
        return Err(WxError::new(41004));
    }
    if appid != config.appid {
        return Err(WxError::new(40013));
    }
    if secret != config.secret {
        return Err(WxError::new(40125));
    }
    Ok(())
}

/// `GET /cgi-bin/token?grant_type=client_credential&appid=…&secret=…`
#[handler]
pub async fn legacy_token(
    Data(app): Data<&Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        app.enter(Api::Token).await?;
        fetch_legacy(&mut app.lock(), &app.config, &query)
    };
    reply(result.await, app.now_unix(), WX_JSON)
}

fn fetch_legacy(
    state: &mut State,
    config: &FakeConfig,
    query: &HashMap<String, String>,
) -> Result<Value, WxError> {
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    check_credentials(config, param("grant_type"), param("appid"), param("secret"))?;
    let now = state.now();
    let tokens = &mut state.tokens;
    if tokens.legacy_today.increment(now) > LEGACY_FETCHES_PER_DAY {
        return Err(WxError::with_text(
            45009,
            "reach max api daily quota limit, could get access_token by getStableAccessToken",
        ));
    }
    // Every legacy fetch rotates.
    let value = tokens.legacy.rotate(now, tokens.expires_in, OVERLAP_SECS);
    Ok(json!({ "access_token": value, "expires_in": tokens.expires_in }))
}

/// `POST /cgi-bin/stable_token` with a JSON body
/// `{"grant_type":"client_credential","appid":…,"secret":…,"force_refresh":false}`.
#[handler]
pub async fn stable_token(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> Response {
    let result = async {
        app.enter(Api::StableToken).await?;
        fetch_stable(&mut app.lock(), &app.config, &body)
    };
    reply(result.await, app.now_unix(), WX_JSON)
}

fn fetch_stable(state: &mut State, config: &FakeConfig, body: &[u8]) -> Result<Value, WxError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WxError::new(44002));
    }
    let request: Value = serde_json::from_slice(body).map_err(|_| WxError::new(47001))?;
    let field = |name: &str| request.get(name).and_then(Value::as_str).unwrap_or("");
    check_credentials(config, field("grant_type"), field("appid"), field("secret"))?;
    let force = match request.get("force_refresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(force)) => *force,
        Some(_) => return Err(WxError::new(47001)),
    };

    let now = state.now();
    let tokens = &mut state.tokens;
    if force {
        if tokens.forced_today.get(now) >= FORCE_REFRESH_PER_DAY {
            return Err(WxError::new(45009));
        }
        let too_soon = tokens
            .last_force
            .is_some_and(|last| (now - last).num_seconds() < FORCE_MIN_GAP_SECS);
        // "否则不会刷新": a force call within 30 s of the last one behaves like normal mode.
        if !too_soon {
            tokens.forced_today.increment(now);
            tokens.last_force = Some(now);
            let value = tokens.stable.rotate(now, tokens.expires_in, 0);
            return Ok(json!({ "access_token": value, "expires_in": tokens.expires_in }));
        }
    }

    // Normal mode: the same token until it nears expiry, then a new one while the old one
    // lives out its remaining time. The margin is 300 s; it is halved for tokens whose test-set
    // lifetime is under 600 s, so that short-lived tokens are still reused between calls.
    let reusable = tokens.stable.current().filter(|t| {
        let lifetime = (t.expires_at - t.issued_at).num_seconds();
        t.remaining_secs(now) > OVERLAP_SECS.min(lifetime / 2)
    });
    if let (Some(token), Some(value)) = (reusable, tokens.stable.current.as_ref()) {
        return Ok(json!({ "access_token": value, "expires_in": token.remaining_secs(now) }));
    }
    let value = tokens.stable.rotate(now, tokens.expires_in, OVERLAP_SECS);
    Ok(json!({ "access_token": value, "expires_in": tokens.expires_in }))
}

//! Everything the fake remembers, behind one mutex, plus the settable clock, fault injection
//! and per-route call counters that every WeChat route goes through.
//!
//! The mutex is a `std` one and is never held across an `.await`: handlers lock, decide,
//! unlock, and only then sleep (for injected delays or the send hold).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::FakeConfig;
use crate::errors::WxError;
use crate::login::LoginState;
use crate::sms::SmsState;
use crate::subscribe::SubscribeState;
use crate::token::TokenState;

/// The WeChat routes that count calls and accept injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    Jscode2session,
    Token,
    StableToken,
    Send,
}

impl Api {
    pub const ALL: [Api; 4] = [Api::Jscode2session, Api::Token, Api::StableToken, Api::Send];

    pub fn name(self) -> &'static str {
        match self {
            Api::Jscode2session => "jscode2session",
            Api::Token => "token",
            Api::StableToken => "stable_token",
            Api::Send => "send",
        }
    }
}

/// One queued fault: the next `times` calls of a route wait `delay_ms`, then fail with
/// `errcode` (or go on normally when `errcode` is 0, which makes a pure delay), or with
/// HTTP `http_status` and no JSON body when that is set.
#[derive(Debug, Clone)]
pub struct Fault {
    pub errcode: i64,
    pub errmsg: Option<String>,
    pub times: u32,
    pub delay_ms: u64,
    pub http_status: Option<u16>,
}

/// A fault that strikes a share (`rate`, 0 to 1) of a route's calls at random, when no
/// queued fault is waiting: for load tests with a steady error rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateFault {
    pub rate: f64,
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub http_status: Option<u16>,
}

pub struct State {
    /// Added to the real time; tests move it forward instead of sleeping.
    pub clock_offset_secs: i64,
    /// Openids seen through a minted code or a credit grant; others get 40003 on send.
    pub known_openids: HashSet<String>,
    pub login: LoginState,
    pub tokens: TokenState,
    pub subscribe: SubscribeState,
    pub sms: SmsState,
    pub faults: HashMap<Api, VecDeque<Fault>>,
    pub fault_rates: HashMap<Api, Vec<RateFault>>,
    pub calls: HashMap<Api, u64>,
}

impl State {
    pub fn new() -> Self {
        Self {
            clock_offset_secs: 0,
            known_openids: HashSet::new(),
            login: LoginState::default(),
            tokens: TokenState::default(),
            subscribe: SubscribeState::default(),
            sms: SmsState::default(),
            faults: HashMap::new(),
            fault_rates: HashMap::new(),
            calls: HashMap::new(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::seconds(self.clock_offset_secs)
    }

    /// Counts the call and takes the next queued fault for `api`, if any, else draws one
    /// of the route's random faults.
    fn begin_call(&mut self, api: Api) -> Option<Fault> {
        *self.calls.entry(api).or_default() += 1;
        if let Some(queue) = self.faults.get_mut(&api)
            && let Some(fault) = queue.front_mut()
        {
            fault.times -= 1;
            let taken = fault.clone();
            if fault.times == 0 {
                queue.pop_front();
            }
            return Some(taken);
        }
        let rates = self.fault_rates.get(&api)?;
        let mut draw: f64 = rand::random();
        for r in rates {
            if draw < r.rate {
                return Some(Fault {
                    errcode: r.errcode,
                    errmsg: None,
                    times: 1,
                    delay_ms: r.delay_ms,
                    http_status: r.http_status,
                });
            }
            draw -= r.rate;
        }
        None
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

/// Shared by every handler through `poem::web::Data<&Arc<AppState>>`.
pub struct AppState {
    pub config: FakeConfig,
    state: Mutex<State>,
}

impl AppState {
    pub fn new(config: FakeConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::new()),
        }
    }

    /// A panic in one handler must not wedge the whole fake, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Entry of every WeChat route: counts the call, then applies an injected fault
    /// (the delay happens outside the lock so other requests keep flowing).
    pub async fn enter(&self, api: Api) -> Result<(), WxError> {
        let fault = self.lock().begin_call(api);
        let Some(fault) = fault else { return Ok(()) };
        if fault.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        if let Some(status) = fault.http_status {
            tracing::info!(route = api.name(), status, "injected HTTP failure");
            return Err(WxError::http(status));
        }
        if fault.errcode == 0 {
            return Ok(());
        }
        tracing::info!(
            route = api.name(),
            errcode = fault.errcode,
            "injected fault"
        );
        Err(match fault.errmsg {
            Some(text) => WxError::with_text(fault.errcode, text),
            None => WxError::new(fault.errcode),
        })
    }

    /// Unix seconds on the fake clock, for the `rid` of an error body.
    pub fn now_unix(&self) -> i64 {
        self.lock().now().timestamp()
    }
}

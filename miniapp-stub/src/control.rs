//! Test-control routes under `/__fake/` (JSON in, JSON out). Unlike the WeChat routes,
//! a bad request here is a plain HTTP 400 `{"error": "..."}`: it is a bug in the test.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use poem::web::{Data, Query};
use poem::{Response, handler};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::errors::bad_request;
use crate::state::{Api, AppState, Fault, RateFault, State};
use crate::subscribe::Template;

fn ok(body: Value) -> Response {
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> poem::Result<T> {
    serde_json::from_slice(body).map_err(|e| bad(format!("bad JSON body: {e}")))
}

fn bad(message: impl Into<String>) -> poem::Error {
    poem::Error::from_response(bad_request(message))
}

#[derive(Deserialize)]
struct MintCode {
    openid: String,
    #[serde(default)]
    unionid: Option<String>,
    /// Mint for another app's appid to provoke the wrong-app 40029.
    #[serde(default)]
    appid: Option<String>,
}

/// `POST /__fake/codes {"openid":"o1","unionid":null}` → `{"code":"..."}`
#[handler]
pub fn mint_code(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: MintCode = parse(&body)?;
    if req.openid.is_empty() {
        return Err(bad("openid is empty"));
    }
    let appid = req.appid.as_deref().unwrap_or(&app.config.appid);
    let code = mint(&mut app.lock(), appid, &req.openid, req.unionid.as_deref());
    Ok(ok(json!({ "code": code })))
}

/// Shared by the control route and [`crate::FakeWeChat::mint_code`].
pub fn mint(state: &mut State, appid: &str, openid: &str, unionid: Option<&str>) -> String {
    let now = state.now();
    state.known_openids.insert(openid.to_owned());
    state.login.mint(appid, openid, unionid, now)
}

#[derive(Deserialize)]
struct Credits {
    openid: String,
    template_id: String,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// `POST /__fake/credits/grant {"openid","template_id","count":2}` (count defaults to 1):
/// as if the user accepted the template `count` times. → `{"openid","template_id","credits"}`
#[handler]
pub fn grant_credits(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: Credits = parse(&body)?;
    let credits = grant(&mut app.lock(), &req.openid, &req.template_id, req.count).map_err(bad)?;
    Ok(credits_body(&req.openid, &req.template_id, credits))
}

/// Shared by the control route and [`crate::FakeWeChat::grant_credits`].
pub fn grant(
    state: &mut State,
    openid: &str,
    template_id: &str,
    count: u32,
) -> Result<u32, String> {
    if !state.subscribe.templates.contains_key(template_id) {
        return Err(format!("unknown template {template_id:?}"));
    }
    state.known_openids.insert(openid.to_owned());
    let key = (openid.to_owned(), template_id.to_owned());
    let credits = state.subscribe.credits.entry(key).or_default();
    *credits = credits.saturating_add(count);
    Ok(*credits)
}

/// `POST /__fake/credits/revoke {"openid","template_id"}`: the user set the template to
/// "reject"; the balance drops to 0. → `{"openid","template_id","credits":0}`
#[handler]
pub fn revoke_credits(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: Credits = parse(&body)?;
    let key = (req.openid.clone(), req.template_id.clone());
    app.lock().subscribe.credits.insert(key, 0);
    Ok(credits_body(&req.openid, &req.template_id, 0))
}

#[derive(Deserialize)]
struct CreditsQuery {
    openid: String,
    template_id: String,
}

/// `GET /__fake/credits?openid=o1&template_id=T` → `{"openid","template_id","credits"}`
#[handler]
pub fn get_credits(Data(app): Data<&Arc<AppState>>, Query(q): Query<CreditsQuery>) -> Response {
    let credits = app.lock().subscribe.credits(&q.openid, &q.template_id);
    credits_body(&q.openid, &q.template_id, credits)
}

fn credits_body(openid: &str, template_id: &str, credits: u32) -> Response {
    ok(json!({ "openid": openid, "template_id": template_id, "credits": credits }))
}

/// `POST /__fake/templates {"template_id","kind":"one_time"|"long_term","keys":[...],
/// "enums":{"enum3":[...]}}` registers or replaces a template; echoes it back.
#[handler]
pub fn register_template(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let template: Template = parse(&body)?;
    template.validate().map_err(bad)?;
    let echo = json!(template);
    app.lock()
        .subscribe
        .templates
        .insert(template.template_id.clone(), template);
    Ok(ok(echo))
}

/// `GET /__fake/templates` → `[template, ...]`
#[handler]
pub fn list_templates(Data(app): Data<&Arc<AppState>>) -> Response {
    let templates: Vec<Template> = app.lock().subscribe.templates.values().cloned().collect();
    ok(json!(templates))
}

#[derive(Deserialize)]
struct Clock {
    offset_secs: Option<i64>,
    advance_secs: Option<i64>,
}

/// `POST /__fake/clock {"offset_secs":301}` sets the offset, `{"advance_secs":60}` adds to
/// it; `GET` reads it. → `{"offset_secs","now"}`
#[handler]
pub fn set_clock(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: Clock = parse(&body)?;
    let mut state = app.lock();
    if let Some(offset) = req.offset_secs {
        state.clock_offset_secs = offset;
    }
    state.clock_offset_secs += req.advance_secs.unwrap_or(0);
    Ok(clock_body(&state))
}

#[handler]
pub fn get_clock(Data(app): Data<&Arc<AppState>>) -> Response {
    clock_body(&app.lock())
}

fn clock_body(state: &State) -> Response {
    ok(json!({ "offset_secs": state.clock_offset_secs, "now": state.now() }))
}

#[derive(Deserialize)]
struct TokenTtl {
    expires_in: i64,
}

/// `POST /__fake/token_ttl {"expires_in":600}`: lifetime of tokens issued from now on,
/// in both stores. → `{"expires_in"}`
#[handler]
pub fn set_token_ttl(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: TokenTtl = parse(&body)?;
    if req.expires_in <= 0 {
        return Err(bad("expires_in must be positive"));
    }
    app.lock().tokens.expires_in = req.expires_in;
    Ok(ok(json!({ "expires_in": req.expires_in })))
}

#[derive(Deserialize)]
struct InjectFault {
    route: Api,
    #[serde(default = "system_error")]
    errcode: i64,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(default = "one")]
    times: u32,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    http_status: Option<u16>,
}

fn system_error() -> i64 {
    -1
}

/// `POST /__fake/faults {"route":"jscode2session|token|stable_token|send","errcode":-1,
/// "times":2,"delay_ms":0,"errmsg":null,"http_status":null}`: the next `times` calls of
/// the route wait `delay_ms` and then fail with `errcode` (0 = only delay), or answer
/// HTTP `http_status` (e.g. 502) without a JSON body. Faults queue up per route.
/// → `{"route","pending":<calls still to be faulted>}`
#[handler]
pub fn inject_fault(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: InjectFault = parse(&body)?;
    if req.times == 0 {
        return Err(bad("times must be at least 1"));
    }
    let mut state = app.lock();
    let queue = state.faults.entry(req.route).or_insert_with(VecDeque::new);
    queue.push_back(Fault {
        errcode: req.errcode,
        errmsg: req.errmsg,
        times: req.times,
        delay_ms: req.delay_ms,
        http_status: req.http_status,
    });
    let pending: u32 = queue.iter().map(|f| f.times).sum();
    Ok(ok(json!({ "route": req.route, "pending": pending })))
}

#[derive(Deserialize)]
struct FaultRates {
    route: Api,
    faults: Vec<RateFault>,
}

/// `POST /__fake/fault_rates {"route":"send","faults":[{"rate":0.05,"errcode":-1},
/// {"rate":0.02,"http_status":502},{"rate":0.01,"errcode":45009},
/// {"rate":0.01,"errcode":-1,"delay_ms":6000}]}`: each call of the route that has no
/// queued fault draws one of these at random (at most one; the rates add up to at most
/// 1). An empty list turns them off. → `{"route","faults":[...]}`
#[handler]
pub fn set_fault_rates(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: FaultRates = parse(&body)?;
    let total: f64 = req.faults.iter().map(|f| f.rate).sum();
    if req.faults.iter().any(|f| !(0.0..=1.0).contains(&f.rate)) || total > 1.0 + 1e-9 {
        return Err(bad("each rate must be within 0..1 and together at most 1"));
    }
    let echo = json!({ "route": req.route, "faults": req.faults });
    app.lock().fault_rates.insert(req.route, req.faults);
    Ok(ok(echo))
}

#[derive(Deserialize)]
struct Block {
    openid: String,
    #[serde(default = "yes")]
    blocked: bool,
}

fn yes() -> bool {
    true
}

/// `POST /__fake/blocked {"openid":"o1","blocked":true}`: login for this openid gets 40226.
/// → `{"openid","blocked"}`
#[handler]
pub fn set_blocked(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: Block = parse(&body)?;
    app.lock().login.set_blocked(&req.openid, req.blocked);
    Ok(ok(json!({ "openid": req.openid, "blocked": req.blocked })))
}

#[derive(Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
enum RateLimit {
    /// Calls this openid made to jscode2session in the current minute (limit 100).
    Jscode2session { openid: String, count: u32 },
    /// Legacy `/cgi-bin/token` fetches today (limit 2000).
    Token { count: u32 },
    /// Forced stable_token refreshes today (limit 20).
    StableForceRefresh { count: u32 },
}

/// `POST /__fake/rate_limits` with one of
/// `{"scope":"jscode2session","openid":"o1","count":100}`,
/// `{"scope":"token","count":2000}`, `{"scope":"stable_force_refresh","count":20}`:
/// sets the counter so that the next call sees it. → `{"ok":true}`
#[handler]
pub fn set_rate_limit(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: RateLimit = parse(&body)?;
    let mut state = app.lock();
    let now = state.now();
    match req {
        RateLimit::Jscode2session { openid, count } => {
            state.login.set_minute_count(&openid, count, now);
        }
        RateLimit::Token { count } => state.tokens.legacy_today.set(now, count),
        RateLimit::StableForceRefresh { count } => state.tokens.forced_today.set(now, count),
    }
    Ok(ok(json!({ "ok": true })))
}

#[derive(Deserialize)]
struct SendOptions {
    reject_concurrent: Option<bool>,
    hold_ms: Option<u64>,
}

/// `POST /__fake/send_options {"reject_concurrent":true,"hold_ms":300}`: with
/// `reject_concurrent`, a send to an openid whose previous send is still held gets 43108;
/// `hold_ms` delays each successful send's answer. Omitted fields are unchanged.
/// → `{"reject_concurrent","hold_ms"}`
#[handler]
pub fn set_send_options(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let req: SendOptions = parse(&body)?;
    let mut state = app.lock();
    let subscribe = &mut state.subscribe;
    if let Some(reject) = req.reject_concurrent {
        subscribe.reject_concurrent = reject;
    }
    if let Some(hold_ms) = req.hold_ms {
        subscribe.hold_ms = hold_ms;
    }
    Ok(ok(json!({
        "reject_concurrent": subscribe.reject_concurrent,
        "hold_ms": subscribe.hold_ms,
    })))
}

/// `GET /__fake/outbox` → `[{"msgid","touser","template_id","page","miniprogram_state",
/// "lang","data":{key: value},"sent_at","token_source"}, ...]` in send order.
#[handler]
pub fn outbox(Data(app): Data<&Arc<AppState>>) -> Response {
    ok(json!(app.lock().subscribe.outbox))
}

/// `GET /__fake/counts` → `[{"openid","template_id","sent":N}, ...]`: successful sends
/// per person and template, ordered by openid then template (to check exactly-once).
#[handler]
pub fn counts(Data(app): Data<&Arc<AppState>>) -> Response {
    let counts: Vec<Value> = app
        .lock()
        .subscribe
        .sent_counts()
        .into_iter()
        .map(|((openid, template_id), sent)| {
            json!({ "openid": openid, "template_id": template_id, "sent": sent })
        })
        .collect();
    ok(json!(counts))
}

/// `GET /__fake/stats` → `{"jscode2session":N,"token":N,"stable_token":N,"send":N}`:
/// every request that reached the route, failed or not.
#[handler]
pub fn stats(Data(app): Data<&Arc<AppState>>) -> Response {
    let state = app.lock();
    let calls: BTreeMap<&str, u64> = Api::ALL
        .iter()
        .map(|api| (api.name(), state.calls.get(api).copied().unwrap_or(0)))
        .collect();
    ok(json!(calls))
}

/// `POST /__fake/reset`: back to the start state (default templates, no codes, tokens,
/// credits, faults, counters; clock offset 0). → `{"ok":true}`
#[handler]
pub fn reset(Data(app): Data<&Arc<AppState>>) -> Response {
    *app.lock() = State::new();
    ok(json!({ "ok": true }))
}

//! `POST /cgi-bin/message/subscribe/send?access_token=…` (WECHAT.md §3): the template
//! registry, the (openid, template) credit ledger, the outbox and the send route.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::web::{Data, Query};
use poem::{Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::errors::{WX_JSON, WxError, reply};
use crate::state::{Api, AppState, State};
use crate::value_rules::ValueType;

/// Default templates registered at start and after a reset (ids are readable on purpose).
pub const TEMPLATE_VISIT_REMINDER: &str = "TPL_VISIT_REMINDER";
/// A notice about a visit on a day (a `date` key rather than a `time` one).
pub const TEMPLATE_VISIT_NOTICE: &str = "TPL_VISIT_NOTICE";
pub const TEMPLATE_TASK_ASSIGNED: &str = "TPL_TASK_ASSIGNED";
pub const TEMPLATE_ACTIVITY_NOTICE: &str = "TPL_ACTIVITY_NOTICE";
pub const TEMPLATE_LONG_TERM_NOTICE: &str = "TPL_LONG_TERM_NOTICE";

/// Above 2^53 like real msgids, so a client that parses them as f64 loses digits.
const FIRST_MSGID: u64 = 1_988_810_812_324_364_291;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// Each accepted subscription allows one send.
    OneTime,
    /// One subscription allows any number of sends (credits are not decremented).
    LongTerm,
}

/// A template: its data keys (type given by the key prefix) and allowed `enum` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub template_id: String,
    pub kind: TemplateKind,
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub enums: BTreeMap<String, Vec<String>>,
}

impl Template {
    fn new(template_id: &str, kind: TemplateKind, keys: &[&str]) -> Self {
        Self {
            template_id: template_id.to_owned(),
            kind,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            enums: BTreeMap::new(),
        }
    }

    /// Refuses templates WeChat could not have: no keys, unknown key types, empty enums.
    pub fn validate(&self) -> Result<(), String> {
        if self.template_id.is_empty() {
            return Err("template_id is empty".into());
        }
        if self.keys.is_empty() {
            return Err("a template needs at least one key".into());
        }
        for key in &self.keys {
            match ValueType::of_key(key) {
                None => return Err(format!("key {key:?} has no known type prefix")),
                Some(ValueType::Enum) if self.enums.get(key).is_none_or(Vec::is_empty) => {
                    return Err(format!("enum key {key:?} needs values in \"enums\""));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn check_data(&self, data: Option<&Value>) -> Result<BTreeMap<String, String>, WxError> {
        let mut values = BTreeMap::new();
        for key in &self.keys {
            let value = data.and_then(|d| d.get(key)).and_then(|k| k.get("value"));
            let text = match value {
                None | Some(Value::Null) => return Err(WxError::value_empty(key)),
                Some(Value::String(s)) if s.trim().is_empty() => {
                    return Err(WxError::value_empty(key));
                }
                Some(Value::String(s)) => s,
                // Observed: a bare number (`{"value":0}`) is refused; values must be strings.
                Some(_) => return Err(WxError::value_invalid(key)),
            };
            let value_type = ValueType::of_key(key).ok_or_else(|| WxError::value_invalid(key))?;
            let enum_values = self.enums.get(key).map(Vec::as_slice).unwrap_or(&[]);
            if !value_type.accepts(text, enum_values) {
                return Err(WxError::value_invalid(key));
            }
            values.insert(key.clone(), text.clone());
        }
        Ok(values)
    }
}

pub fn default_templates() -> Vec<Template> {
    use TemplateKind::*;
    vec![
        Template::new(
            TEMPLATE_VISIT_REMINDER,
            OneTime,
            &["thing1", "time2", "thing3", "phrase4"],
        ),
        Template::new(
            TEMPLATE_VISIT_NOTICE,
            OneTime,
            &["thing1", "date2", "thing3", "phrase4"],
        ),
        Template::new(
            TEMPLATE_TASK_ASSIGNED,
            OneTime,
            &["thing1", "name2", "date3", "character_string4"],
        ),
        Template::new(
            TEMPLATE_ACTIVITY_NOTICE,
            OneTime,
            &["thing1", "time2", "thing3", "number4"],
        ),
        Template::new(TEMPLATE_LONG_TERM_NOTICE, LongTerm, &["thing1", "time2"]),
    ]
}

/// One successful send, as `GET /__fake/outbox` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    pub msgid: u64,
    pub touser: String,
    pub template_id: String,
    pub page: Option<String>,
    pub miniprogram_state: String,
    pub lang: String,
    /// Template key → value.
    pub data: BTreeMap<String, String>,
    /// On the fake clock.
    pub sent_at: DateTime<Utc>,
    /// `"token"` or `"stable_token"`: which store issued the access token used.
    pub token_source: String,
}

pub struct SubscribeState {
    pub templates: BTreeMap<String, Template>,
    /// (openid, template_id) → remaining sends.
    pub credits: HashMap<(String, String), u32>,
    pub outbox: Vec<SentMessage>,
    next_msgid: u64,
    /// Openids with a send in progress (held for `hold_ms`).
    in_flight: HashSet<String>,
    /// When set, a send to an openid that has one in flight gets 43108.
    pub reject_concurrent: bool,
    /// How long a successful send is held before answering, to provoke concurrency.
    pub hold_ms: u64,
}

impl Default for SubscribeState {
    fn default() -> Self {
        Self {
            templates: default_templates()
                .into_iter()
                .map(|t| (t.template_id.clone(), t))
                .collect(),
            credits: HashMap::new(),
            outbox: Vec::new(),
            next_msgid: FIRST_MSGID,
            in_flight: HashSet::new(),
            reject_concurrent: false,
            hold_ms: 0,
        }
    }
}

impl SubscribeState {
    pub fn credits(&self, openid: &str, template_id: &str) -> u32 {
        let key = (openid.to_owned(), template_id.to_owned());
        self.credits.get(&key).copied().unwrap_or(0)
    }

    /// Successful sends per (openid, template_id).
    pub fn sent_counts(&self) -> BTreeMap<(String, String), u64> {
        let mut counts = BTreeMap::new();
        for m in &self.outbox {
            *counts
                .entry((m.touser.clone(), m.template_id.clone()))
                .or_default() += 1;
        }
        counts
    }
}

/// Removes the openid from the in-flight set even if the client goes away mid-hold.
struct InFlight {
    app: Arc<AppState>,
    openid: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.app.lock().subscribe.in_flight.remove(&self.openid);
    }
}

#[handler]
pub async fn send(
    Data(app): Data<&Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    body: Vec<u8>,
) -> Response {
    let result = async {
        app.enter(Api::Send).await?;
        let token = query.get("access_token").map(String::as_str).unwrap_or("");
        let (msgid, openid, hold_ms) =
            send_locked(&mut app.lock(), &app.config.pages, token, &body)?;
        let _in_flight = InFlight {
            app: Arc::clone(app),
            openid,
        };
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
        Ok(json!({ "errcode": 0, "errmsg": "ok", "msgid": msgid }))
    };
    reply(result.await, app.now_unix(), WX_JSON)
}

/// `GET` on the send route: WeChat wants POST.
#[handler]
pub async fn send_not_post(Data(app): Data<&Arc<AppState>>) -> Response {
    reply(Err(WxError::new(43002)), app.now_unix(), WX_JSON)
}

/// Every check and the whole effect of a send, under one lock: the credit is taken, the
/// message recorded and the openid marked in flight atomically; only the hold is later.
/// Returns (msgid, openid, hold_ms).
fn send_locked(
    state: &mut State,
    pages: &[String],
    token: &str,
    body: &[u8],
) -> Result<(u64, String, u64), WxError> {
    let now = state.now();
    let source = state.tokens.check(token, now)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WxError::new(44002));
    }
    let request: Value = serde_json::from_slice(body).map_err(|_| WxError::new(47001))?;
    let field = |name: &str| request.get(name).and_then(Value::as_str);

    let touser = field("touser").unwrap_or("");
    if touser.is_empty() || !state.known_openids.contains(touser) {
        return Err(WxError::new(40003));
    }
    let template_id = field("template_id").unwrap_or("");
    let Some(template) = state.subscribe.templates.get(template_id) else {
        return Err(WxError::new(40037));
    };
    let page = field("page").filter(|p| !p.is_empty());
    if let Some(page) = page {
        let path = page.split_once('?').map_or(page, |(path, _)| path);
        if !pages.iter().any(|p| p == path) {
            return Err(WxError::new(41030));
        }
    }
    // The enums are documented; the error code for a bad one is not (47001 is a guess).
    let miniprogram_state = field("miniprogram_state").unwrap_or("formal");
    let lang = field("lang").unwrap_or("zh_CN");
    if !["developer", "trial", "formal"].contains(&miniprogram_state)
        || !["zh_CN", "en_US", "zh_HK", "zh_TW"].contains(&lang)
    {
        return Err(WxError::new(47001));
    }
    let data = template.check_data(request.get("data"))?;
    let kind = template.kind;

    let subscribe = &mut state.subscribe;
    if subscribe.reject_concurrent && subscribe.in_flight.contains(touser) {
        return Err(WxError::new(43108));
    }
    let key = (touser.to_owned(), template_id.to_owned());
    let credits = subscribe.credits.entry(key).or_default();
    if *credits == 0 {
        return Err(WxError::new(43101));
    }
    if kind == TemplateKind::OneTime {
        *credits -= 1;
    }
    let msgid = subscribe.next_msgid;
    subscribe.next_msgid += 1;
    subscribe.in_flight.insert(touser.to_owned());
    subscribe.outbox.push(SentMessage {
        msgid,
        touser: touser.to_owned(),
        template_id: template_id.to_owned(),
        page: page.map(str::to_owned),
        miniprogram_state: miniprogram_state.to_owned(),
        lang: lang.to_owned(),
        data,
        sent_at: now,
        token_source: source.name().to_owned(),
    });
    tracing::info!(msgid, touser, template_id, "subscribe message sent");
    Ok((msgid, touser.to_owned(), subscribe.hold_ms))
}

//! A fake SMS provider, answering like Aliyun's `SendSms` (WECHAT.md §7.1) as JSON:
//! `POST /sms/send` with `PhoneNumbers`, `SignName`, `TemplateCode` and `TemplateParam`
//! (a JSON string of string values) and the access key in `x-sms-key-id`;
//! `{"Code":"OK","Message":"OK","BizId":…,"RequestId":…}` back, or an error code.
//!
//! Test control: `GET /__fake/sms/outbox` (what was sent), `GET /__fake/sms/counts` (per
//! number and template), `POST /__fake/sms/faults` (`{"code": "isp.SYSTEM_ERROR",
//! "times": 2}` or `{"http_status": 503, "times": 1}`), `POST /__fake/sms/blacklist`
//! (`{"phone": "138…"}`: the number opted out).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::AppState;

/// One SMS the fake accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentSms {
    pub phone: String,
    pub sign_name: String,
    pub template_code: String,
    pub params: BTreeMap<String, String>,
    pub biz_id: String,
    pub at: DateTime<Utc>,
}

/// A queued failure for the next `times` sends.
#[derive(Debug, Clone, Deserialize)]
pub struct SmsFault {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default)]
pub struct SmsState {
    pub outbox: Vec<SentSms>,
    pub faults: VecDeque<SmsFault>,
    pub blacklist: HashSet<String>,
    /// Every request that reached `/sms/send`.
    pub calls: u64,
}

impl SmsState {
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for s in &self.outbox {
            *out.entry((s.phone.clone(), s.template_code.clone()))
                .or_default() += 1;
        }
        out
    }

    fn next_fault(&mut self) -> Option<SmsFault> {
        let fault = self.faults.front_mut()?;
        fault.times = fault.times.saturating_sub(1);
        let taken = fault.clone();
        if fault.times == 0 {
            self.faults.pop_front();
        }
        Some(taken)
    }
}

fn answer(code: &str, message: &str, biz_id: Option<&str>) -> Response {
    let mut body = json!({
        "Code": code,
        "Message": message,
        "RequestId": format!("FAKE-{}", rand::random::<u32>()),
    });
    if let Some(id) = biz_id {
        body["BizId"] = json!(id);
    }
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

fn mobile(phone: &str) -> bool {
    phone.len() == 11 && phone.starts_with('1') && phone.chars().all(|c| c.is_ascii_digit())
}

/// `POST /sms/send`.
#[handler]
pub fn send(Data(app): Data<&Arc<AppState>>, req: &Request, body: Vec<u8>) -> Response {
    let mut state = app.lock();
    let sms = &mut state.sms;
    sms.calls += 1;
    if let Some(fault) = sms.next_fault() {
        if let Some(status) = fault.http_status {
            return Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .body("fake SMS gateway failure");
        }
        if let Some(code) = fault.code {
            return answer(&code, "injected", None);
        }
    }
    let key = req
        .headers()
        .get("x-sms-key-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if key.is_empty() {
        return answer(
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
            None,
        );
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return answer("isv.INVALID_PARAMETERS", "body is not JSON", None);
    };
    let text = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (phone, sign_name, template_code) =
        (text("PhoneNumbers"), text("SignName"), text("TemplateCode"));
    if !mobile(&phone) {
        return answer("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号", None);
    }
    if sign_name.is_empty() {
        return answer("isv.SMS_SIGNATURE_ILLEGAL", "签名不合法", None);
    }
    if template_code.is_empty() {
        return answer("isv.SMS_TEMPLATE_ILLEGAL", "模板不合法", None);
    }
    let Ok(params) = serde_json::from_str::<BTreeMap<String, String>>(&text("TemplateParam"))
    else {
        return answer(
            "isv.INVALID_JSON_PARAM",
            "JSON参数不合法，只接受字符串值",
            None,
        );
    };
    // Aliyun: a variable holds at most 35 characters.
    if params.values().any(|v| v.chars().count() > 35) {
        return answer("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制", None);
    }
    if sms.blacklist.contains(&phone) {
        return answer("isv.BLACK_KEY_CONTROL_LIMIT", "黑名单管控", None);
    }
    let biz_id = format!("{}^0", 700_000_000_000u64 + sms.outbox.len() as u64);
    sms.outbox.push(SentSms {
        phone,
        sign_name,
        template_code,
        params,
        biz_id: biz_id.clone(),
        at: Utc::now(),
    });
    answer("OK", "OK", Some(&biz_id))
}

/// `GET /__fake/sms/outbox`.
#[handler]
pub fn outbox(Data(app): Data<&Arc<AppState>>) -> Response {
    let body = json!(app.lock().sms.outbox);
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

/// `GET /__fake/sms/counts` → `[{"phone","template_code","sent"}]`.
#[handler]
pub fn counts(Data(app): Data<&Arc<AppState>>) -> Response {
    let counts: Vec<Value> = app
        .lock()
        .sms
        .counts()
        .into_iter()
        .map(|((phone, template_code), sent)| {
            json!({"phone": phone, "template_code": template_code, "sent": sent})
        })
        .collect();
    Response::builder()
        .content_type("application/json")
        .body(json!(counts).to_string())
}

/// `POST /__fake/sms/faults`.
#[handler]
pub fn inject(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let fault: SmsFault = serde_json::from_slice(&body)
        .map_err(|e| poem::Error::from_string(e.to_string(), StatusCode::BAD_REQUEST))?;
    app.lock().sms.faults.push_back(fault);
    Ok(Response::builder()
        .content_type("application/json")
        .body(r#"{"ok":true}"#))
}

#[derive(Deserialize)]
struct Blacklist {
    phone: String,
}

/// `POST /__fake/sms/blacklist`.
#[handler]
pub fn blacklist(Data(app): Data<&Arc<AppState>>, body: Vec<u8>) -> poem::Result<Response> {
    let b: Blacklist = serde_json::from_slice(&body)
        .map_err(|e| poem::Error::from_string(e.to_string(), StatusCode::BAD_REQUEST))?;
    app.lock().sms.blacklist.insert(b.phone);
    Ok(Response::builder()
        .content_type("application/json")
        .body(r#"{"ok":true}"#))
}

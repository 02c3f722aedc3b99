//! The WeChat error envelope and the response helpers every route shares.
//!
//! WeChat answers business errors with HTTP 200 and
//! `{"errcode":N,"errmsg":"<text> rid: xxxxxxxx-xxxxxxxx-xxxxxxxx"}` (WECHAT.md §0).

use poem::{Response, http::StatusCode};
use rand::Rng;
use serde_json::{Value, json};

/// `/sns/jscode2session` really answers JSON as `text/plain` (WECHAT.md §0).
pub const TEXT_PLAIN: &str = "text/plain";
/// What the other endpoints send, per a WxJava comment (WECHAT.md §0).
pub const WX_JSON: &str = "application/json; encoding=utf-8";

/// A WeChat business error: an errcode and the errmsg text before the ` rid: …` suffix.
/// With `http_status`, an injected gateway failure instead: that HTTP status and no JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxError {
    pub errcode: i64,
    pub text: String,
    pub http_status: Option<u16>,
}

impl WxError {
    /// The error with the text WeChat is observed to send for `errcode`.
    pub fn new(errcode: i64) -> Self {
        Self::with_text(errcode, default_text(errcode))
    }

    pub fn with_text(errcode: i64, text: impl Into<String>) -> Self {
        Self {
            errcode,
            text: text.into(),
            http_status: None,
        }
    }

    /// A failure in front of WeChat's servers (a 502 from a gateway, say).
    pub fn http(status: u16) -> Self {
        Self {
            errcode: 0,
            text: String::new(),
            http_status: Some(status),
        }
    }

    /// 47003 for a data value that is missing or empty (the typo "emtpy" is WeChat's).
    pub fn value_empty(key: &str) -> Self {
        Self::with_text(
            47003,
            format!("argument invalid! data.{key}.value is emtpy"),
        )
    }

    /// 47003 for a data value that breaks the rule of its type.
    pub fn value_invalid(key: &str) -> Self {
        Self::with_text(47003, format!("argument invalid! data.{key}.value invalid"))
    }

    pub fn body(&self, now_unix: i64) -> Value {
        json!({
            "errcode": self.errcode,
            "errmsg": format!("{} rid: {}", self.text, rid(now_unix)),
        })
    }
}

/// errmsg texts as documented or observed. The separator before `rid` really does vary
/// ("invalid code, rid:" but "invalid grant_type rid:"), so each text carries its own.
pub fn default_text(errcode: i64) -> &'static str {
    match errcode {
        -1 => "system error",
        40001 => {
            "invalid credential, access_token is invalid or not latest, could get access_token by getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r"
        }
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40013 => "invalid appid",
        40029 => "invalid code,",
        40037 => "invalid template_id",
        40125 => "invalid appsecret",
        40163 => "code been used,",
        40226 => "code blocked",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41008 => "missing code,",
        41030 => "invalid weapp pagepath",
        42001 => "access_token expired",
        43002 => "require POST method",
        43101 => "user refuse to accept the msg",
        43108 => "Cannot make concurrent calls to the same OpenID, please try again",
        44002 => "empty post data",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit mustslower retry next minute",
        47001 => "data format error",
        47003 => "argument invalid!",
        _ => "error",
    }
}

/// A request id shaped like WeChat's: the first group is the unix time in hex, as in the
/// observed `668f2aa4-51c08c03-3d141241`.
fn rid(now_unix: i64) -> String {
    let mut rng = rand::rng();
    format!(
        "{:08x}-{:08x}-{:08x}",
        now_unix as u32,
        rng.random::<u32>(),
        rng.random::<u32>()
    )
}

/// A JSON body with an explicit content type and HTTP 200, as WeChat does for errors too.
pub fn wx_response(body: &Value, content_type: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type(content_type)
        .body(body.to_string())
}

/// Control-route failure: plain HTTP 400 with `{"error": "..."}`, unlike the WeChat routes.
pub fn bad_request(message: impl Into<String>) -> Response {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type("application/json")
        .body(json!({ "error": message.into() }).to_string())
}

/// Renders a WeChat route's outcome: the success body, or the error envelope with a fresh rid.
pub fn reply(result: Result<Value, WxError>, now_unix: i64, content_type: &str) -> Response {
    match result {
        Ok(body) => wx_response(&body, content_type),
        Err(WxError {
            http_status: Some(status),
            ..
        }) => {
            tracing::info!(status, "injected HTTP failure");
            Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .content_type("text/html")
                .body(format!("<html><body><h1>{status}</h1></body></html>"))
        }
        Err(err) => {
            tracing::info!(errcode = err.errcode, errmsg = %err.text, "wechat error reply");
            wx_response(&err.body(now_unix), content_type)
        }
    }
}

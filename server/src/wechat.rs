//! A thin client of the WeChat server APIs (see shared WECHAT.md). Branches on `errcode`
//! only; parses JSON whatever the content type says (jscode2session answers text/plain).

use std::time::Duration;

use serde::Deserialize;

use crate::config::WeChatConfig;

#[derive(Clone)]
pub struct WeChatClient {
    http: reqwest::Client,
    config: WeChatConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum WeChatError {
    #[error("WeChat answered errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("WeChat could not be reached: {0}")]
    Transport(String),
}

#[derive(Debug)]
pub struct Session {
    pub openid: String,
    pub unionid: Option<String>,
}

#[derive(Deserialize)]
struct SessionBody {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    openid: Option<String>,
    unionid: Option<String>,
    // session_key is deliberately not read: it must never leave the server, and we do not
    // decrypt client data with it.
}

impl WeChatClient {
    pub fn new(config: WeChatConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        Ok(Self { http, config })
    }

    /// Exchanges a `wx.login` code for the user's openid.
    pub async fn code2session(&self, code: &str) -> Result<Session, WeChatError> {
        let url = reqwest::Url::parse_with_params(
            &format!(
                "{}/sns/jscode2session",
                self.config.api_base.trim_end_matches('/')
            ),
            [
                ("appid", self.config.appid.as_str()),
                ("secret", self.config.secret.as_str()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ],
        )
        .map_err(|e| WeChatError::Transport(format!("bad api_base: {e}")))?;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| WeChatError::Transport(e.without_url().to_string()))?;
        let text = response
            .text()
            .await
            .map_err(|e| WeChatError::Transport(e.to_string()))?;
        let body: SessionBody = serde_json::from_str(&text)
            .map_err(|e| WeChatError::Transport(format!("unreadable answer: {e}")))?;
        match (body.errcode, body.openid) {
            (0, Some(openid)) => Ok(Session {
                openid,
                unionid: body.unionid,
            }),
            (0, None) => Err(WeChatError::Transport("answer without openid".into())),
            (errcode, _) => Err(WeChatError::Api {
                errcode,
                errmsg: body.errmsg,
            }),
        }
    }
}

//! A thin client of the WeChat server APIs. Branches on `errcode` only; parses JSON
//! whatever the content type says (jscode2session answers text/plain).
//!
//! The server's access token comes from `stable_token` (normal mode: never force-refreshed,
//! so no instance invalidates another's token), is shared through the cache (Redis when
//! configured) and is refreshed ahead of expiry by one caller at a time.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::{cache::Cache, config::WeChatConfig};

pub struct WeChatClient {
    http: reqwest::Client,
    config: WeChatConfig,
    cache: Arc<Cache>,
    /// The token this process holds; the lock makes refreshing single-flight.
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

#[derive(Clone, Debug, PartialEq)]
struct AccessToken {
    value: String,
    /// When to fetch again: before WeChat's own renewal window (its last 5 minutes).
    refresh_at: DateTime<Utc>,
}

impl AccessToken {
    fn encode(&self) -> String {
        format!("{}\n{}", self.refresh_at.timestamp(), self.value)
    }

    fn decode(s: &str) -> Option<Self> {
        let (at, value) = s.split_once('\n')?;
        Some(Self {
            value: value.to_string(),
            refresh_at: DateTime::from_timestamp(at.parse().ok()?, 0)?,
        })
    }
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    expires_in: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum WeChatError {
    #[error("WeChat answered errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("WeChat could not be reached: {0}")]
    Transport(String),
}

/// One subscribe message (WECHAT.md §3.1). Values are strings already fitted to their
/// keys' rules (see `notify::templates`).
#[derive(Clone, Debug)]
pub struct SubscribeMessage {
    pub touser: String,
    pub template_id: String,
    /// The page the message opens, with its query; None: the message opens nothing.
    pub page: Option<String>,
    pub data: BTreeMap<String, String>,
    /// developer, trial or formal.
    pub miniprogram_state: String,
}

#[derive(Deserialize)]
struct SendBody {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    // Larger than 2^53: read as an integer, never as a float.
    msgid: Option<u64>,
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
    pub fn new(config: WeChatConfig, cache: Arc<Cache>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        Ok(Self {
            http,
            config,
            cache,
            token: tokio::sync::Mutex::new(None),
        })
    }

    fn base(&self) -> &str {
        self.config.api_base.trim_end_matches('/')
    }

    fn token_key(&self) -> String {
        format!("wechat_token:{}", self.config.appid)
    }

    /// A valid server access token. Concurrent callers share one fetch; instances share
    /// the token through the cache.
    pub async fn access_token(&self) -> Result<String, WeChatError> {
        let mut held = self.token.lock().await;
        let now = Utc::now();
        if let Some(t) = held.as_ref().filter(|t| t.refresh_at > now) {
            return Ok(t.value.clone());
        }
        let key = self.token_key();
        let shared = self
            .cache
            .get(&key)
            .await
            .as_deref()
            .and_then(AccessToken::decode);
        let token = match shared.filter(|t| t.refresh_at > now) {
            Some(t) => t,
            None => {
                let t = self.fetch_stable_token().await?;
                let ttl = (t.refresh_at - now).num_seconds().max(1) as u64;
                self.cache
                    .put(&key, &t.encode(), Duration::from_secs(ttl))
                    .await;
                t
            }
        };
        *held = Some(token.clone());
        Ok(token.value)
    }

    /// Forgets a token WeChat called invalid (40001/42001), here and in the shared cache,
    /// unless a newer one has already replaced it.
    pub async fn invalidate_token(&self, stale: &str) {
        let mut held = self.token.lock().await;
        if held.as_ref().is_some_and(|t| t.value == stale) {
            *held = None;
        }
        let key = self.token_key();
        if let Some(encoded) = self.cache.get(&key).await
            && AccessToken::decode(&encoded).is_some_and(|t| t.value == stale)
        {
            self.cache.remove_if(&key, &encoded).await;
        }
    }

    async fn fetch_stable_token(&self) -> Result<AccessToken, WeChatError> {
        let body = json!({
            "grant_type": "client_credential",
            "appid": self.config.appid,
            "secret": self.config.secret,
            "force_refresh": false,
        });
        let response = self
            .http
            .post(format!("{}/cgi-bin/stable_token", self.base()))
            .json(&body)
            .send()
            .await
            .map_err(|e| WeChatError::Transport(e.without_url().to_string()))?;
        let text = response
            .text()
            .await
            .map_err(|e| WeChatError::Transport(e.to_string()))?;
        let body: TokenBody = serde_json::from_str(&text)
            .map_err(|e| WeChatError::Transport(format!("unreadable answer: {e}")))?;
        match (body.errcode, body.access_token, body.expires_in) {
            (0, Some(value), Some(expires_in)) => {
                // WeChat renews in the last 300 s; fetch before that (or halfway, for
                // short-lived test tokens).
                let margin = expires_in.min(600) / 2;
                Ok(AccessToken {
                    value,
                    refresh_at: Utc::now() + chrono::Duration::seconds(expires_in - margin),
                })
            }
            (0, ..) => Err(WeChatError::Transport("answer without a token".into())),
            (errcode, ..) => {
                tracing::error!(errcode, errmsg = %body.errmsg, "WeChat refused the access token request");
                Err(WeChatError::Api {
                    errcode,
                    errmsg: body.errmsg,
                })
            }
        }
    }

    /// Sends a subscribe message; the msgid on success. A token WeChat calls invalid or
    /// expired (40001/42001) is refreshed once and the send retried once. Failing to get a
    /// token at all is a transport error: the message should be tried again later.
    pub async fn send_subscribe(&self, message: &SubscribeMessage) -> Result<u64, WeChatError> {
        let token = self.access_token().await.map_err(token_unavailable)?;
        match self.post_subscribe(&token, message).await {
            Err(WeChatError::Api {
                errcode: 40001 | 42001,
                ..
            }) => {
                self.invalidate_token(&token).await;
                let token = self.access_token().await.map_err(token_unavailable)?;
                self.post_subscribe(&token, message).await
            }
            sent => sent,
        }
    }

    async fn post_subscribe(
        &self,
        token: &str,
        message: &SubscribeMessage,
    ) -> Result<u64, WeChatError> {
        let data: serde_json::Map<String, serde_json::Value> = message
            .data
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "value": v })))
            .collect();
        let mut body = json!({
            "touser": message.touser,
            "template_id": message.template_id,
            "miniprogram_state": message.miniprogram_state,
            "lang": "zh_CN",
            "data": data,
        });
        if let Some(page) = &message.page {
            body["page"] = json!(page);
        }
        let url = reqwest::Url::parse_with_params(
            &format!("{}/cgi-bin/message/subscribe/send", self.base()),
            [("access_token", token)],
        )
        .map_err(|e| WeChatError::Transport(format!("bad api_base: {e}")))?;
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            // Without the URL: it carries the access token.
            .map_err(|e| WeChatError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(WeChatError::Transport(format!("HTTP {status}")));
        }
        let text = response
            .text()
            .await
            .map_err(|e| WeChatError::Transport(e.without_url().to_string()))?;
        let body: SendBody = serde_json::from_str(&text)
            .map_err(|e| WeChatError::Transport(format!("unreadable answer: {e}")))?;
        match body.errcode {
            0 => Ok(body.msgid.unwrap_or_default()),
            errcode => Err(WeChatError::Api {
                errcode,
                errmsg: body.errmsg,
            }),
        }
    }

    /// True when `api_base` is not WeChat itself (the fake server, in development).
    pub fn is_fake(&self) -> bool {
        !self.base().ends_with("api.weixin.qq.com")
    }

    /// Development only: a login code from the fake WeChat server for `openid`, as
    /// `wx.login()` gives the mini-program one (see `POST /__fake/codes`).
    pub async fn fake_login_code(&self, openid: &str) -> Result<String, WeChatError> {
        #[derive(Deserialize)]
        struct Minted {
            code: String,
        }
        let response = self
            .http
            .post(format!("{}/__fake/codes", self.base()))
            .json(&json!({ "openid": openid }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| WeChatError::Transport(e.without_url().to_string()))?;
        let minted: Minted = response
            .json()
            .await
            .map_err(|e| WeChatError::Transport(format!("unreadable answer: {e}")))?;
        Ok(minted.code)
    }

    /// Exchanges a `wx.login` code for the user's openid.
    pub async fn code2session(&self, code: &str) -> Result<Session, WeChatError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/sns/jscode2session", self.base()),
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

fn token_unavailable(e: WeChatError) -> WeChatError {
    WeChatError::Transport(format!("no access token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_tokens_round_trip_through_the_cache_format() {
        let t = AccessToken {
            value: "ACCESS_TOKEN-with odd chars".into(),
            refresh_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        assert_eq!(AccessToken::decode(&t.encode()), Some(t));
        assert_eq!(AccessToken::decode("garbage"), None);
    }
}

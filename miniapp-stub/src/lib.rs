//! A fake WeChat platform server for development and tests, answering as WeChat's server
//! APIs do (the team's WECHAT.md notes, §0–3): `jscode2session`, the legacy and stable
//! access tokens, and subscribe-message sends, plus test-control routes under `/__fake/`;
//! and a fake SMS provider shaped like Aliyun's `SendSms` (§7) at `/sms/send`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use miniapp_stub::{FakeConfig, FakeWeChat};
//! let fake = FakeWeChat::spawn("127.0.0.1:0", FakeConfig::default()).await?;
//! let code = fake.mint_code("o-user-1", None);
//! // point the client under test at fake.base_url() and log in with `code`
//! # Ok(()) }
//! ```

mod control;
mod errors;
mod login;
mod sms;
mod state;
mod subscribe;
mod token;
mod value_rules;

use std::net::SocketAddr;
use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::listener::TcpAcceptor;
use poem::{Endpoint, EndpointExt, Response, Route, Server, get, post};

pub use subscribe::{
    SentMessage, TEMPLATE_ACTIVITY_NOTICE, TEMPLATE_LONG_TERM_NOTICE, TEMPLATE_TASK_ASSIGNED,
    TEMPLATE_VISIT_NOTICE, TEMPLATE_VISIT_REMINDER, Template, TemplateKind,
};

pub use sms::{SentSms, SmsFault};
pub use state::RateFault;
pub use value_rules::ValueType;

use state::AppState;

/// The one mini-program the fake serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeConfig {
    pub appid: String,
    pub secret: String,
    /// Pages a subscribe message may open (path without query); others give 41030.
    pub pages: Vec<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            appid: "wxdemo0000000000".into(),
            secret: "demo-secret".into(),
            pages: [
                "pages/index/index",
                "pages/visit/detail",
                "pages/task/detail",
                "pages/activity/detail",
                "pages/me/index",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// A running fake, serving in a background task; dropping it stops the server.
pub struct FakeWeChat {
    addr: SocketAddr,
    app: Arc<AppState>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeWeChat {
    /// Binds (use "127.0.0.1:0" in tests), serves in a background tokio task, returns at once.
    pub async fn spawn(addr: &str, config: FakeConfig) -> std::io::Result<FakeWeChat> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        let app = Arc::new(AppState::new(config));
        let endpoint = routes(Arc::clone(&app));
        let server = tokio::spawn(async move {
            if let Err(err) = Server::new_with_acceptor(acceptor).run(endpoint).await {
                tracing::error!(%err, "fake WeChat server stopped");
            }
        });
        tracing::info!(%addr, "fake WeChat server listening");
        Ok(FakeWeChat { addr, app, server })
    }

    /// e.g. "http://127.0.0.1:43210"; use it as the WeChat API base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// In-process shortcut of `POST /__fake/codes`: a fresh login code for this openid.
    pub fn mint_code(&self, openid: &str, unionid: Option<&str>) -> String {
        let mut state = self.app.lock();
        control::mint(&mut state, &self.app.config.appid, openid, unionid)
    }

    /// In-process shortcut of `POST /__fake/credits/grant`; returns the new balance.
    /// Panics on an unknown template, which is a bug in the calling test.
    pub fn grant_credits(&self, openid: &str, template_id: &str, count: u32) -> u32 {
        control::grant(&mut self.app.lock(), openid, template_id, count)
            .unwrap_or_else(|err| panic!("grant_credits: {err}"))
    }

    /// In-process shortcut of `GET /__fake/outbox`.
    pub fn outbox(&self) -> Vec<SentMessage> {
        self.app.lock().subscribe.outbox.clone()
    }

    /// In-process shortcut of `GET /__fake/counts`: successful sends per (openid,
    /// template_id).
    pub fn sent_counts(&self) -> std::collections::BTreeMap<(String, String), u64> {
        self.app.lock().subscribe.sent_counts()
    }

    /// In-process shortcut of `GET /__fake/sms/outbox`: every SMS accepted.
    pub fn sms_outbox(&self) -> Vec<SentSms> {
        self.app.lock().sms.outbox.clone()
    }

    /// SMS accepted per (number, template code).
    pub fn sms_counts(&self) -> std::collections::BTreeMap<(String, String), u64> {
        self.app.lock().sms.counts()
    }

    /// In-process shortcut of `POST /__fake/sms/faults`.
    pub fn inject_sms_fault(&self, fault: SmsFault) {
        self.app.lock().sms.faults.push_back(fault);
    }

    /// Credits WeChat still holds for this person and template.
    pub fn credits(&self, openid: &str, template_id: &str) -> u32 {
        self.app.lock().subscribe.credits(openid, template_id)
    }
}

impl Drop for FakeWeChat {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The fake as an endpoint with its own fresh state, for embedding in another server.
pub fn app(config: FakeConfig) -> impl Endpoint<Output = Response> {
    routes(Arc::new(AppState::new(config)))
}

fn routes(app: Arc<AppState>) -> BoxEndpoint<'static, Response> {
    Route::new()
        .at("/sns/jscode2session", get(login::jscode2session))
        .at("/cgi-bin/token", get(token::legacy_token))
        .at("/cgi-bin/stable_token", post(token::stable_token))
        .at(
            "/cgi-bin/message/subscribe/send",
            post(subscribe::send).get(subscribe::send_not_post),
        )
        .at("/sms/send", post(sms::send))
        .nest("/__fake", control_routes())
        .data(app)
        .map_to_response()
        .boxed()
}

fn control_routes() -> Route {
    use control::*;
    Route::new()
        .at("/codes", post(mint_code))
        .at("/credits", get(get_credits))
        .at("/credits/grant", post(grant_credits))
        .at("/credits/revoke", post(revoke_credits))
        .at("/templates", get(list_templates).post(register_template))
        .at("/clock", get(get_clock).post(set_clock))
        .at("/token_ttl", post(set_token_ttl))
        .at("/faults", post(inject_fault))
        .at("/fault_rates", post(set_fault_rates))
        .at("/blocked", post(set_blocked))
        .at("/rate_limits", post(set_rate_limit))
        .at("/send_options", post(set_send_options))
        .at("/outbox", get(outbox))
        .at("/counts", get(counts))
        .at("/stats", get(stats))
        .at("/reset", post(reset))
        .at("/sms/outbox", get(crate::sms::outbox))
        .at("/sms/counts", get(crate::sms::counts))
        .at("/sms/faults", post(crate::sms::inject))
        .at("/sms/blacklist", post(crate::sms::blacklist))
}

//! Starting the real system for a test: the server on a random port with its own fresh
//! database (a SQLite file, or a new PostgreSQL database when `DATABASE_URL` is set), Redis
//! when `REDIS_URL` is set, and the fake WeChat server, all over real HTTP.

use std::sync::Arc;

use miniapp_stub::{FakeConfig, FakeWeChat};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use server::{
    app::{AppState, Application},
    config::Config,
};

pub use reqwest;
pub use serde_json;

pub mod community;
pub mod oversight;
pub mod visits;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub wechat: FakeWeChat,
    pub state: Arc<AppState>,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A response: status and JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn ok(self) -> Value {
        assert!(
            self.status.is_success(),
            "expected success, got {} {}",
            self.status,
            self.body
        );
        self.body
    }

    /// Asserts the error shape and returns the body.
    pub fn error(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "body: {}",
            self.body
        );
        self.body
    }

    /// Asserts a validation error naming `field`.
    pub fn invalid(self, field: &str) -> Value {
        assert!(
            self.status.is_client_error(),
            "expected 4xx, got {} {}",
            self.status,
            self.body
        );
        assert_eq!(self.body["field"], field, "body: {}", self.body);
        self.body
    }
}

pub struct Options {
    /// Load the demo data set (regions, staff, volunteers, families).
    pub demo_families: Option<usize>,
    pub login_per_minute: u64,
    pub dev_login: bool,
    /// Run the scheduled jobs in the server (off by default: the scheduler's own tests
    /// cover them).
    pub jobs: bool,
    /// Changes to the configuration before the server starts.
    pub configure: Option<fn(&mut Config)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            demo_families: Some(30),
            login_per_minute: 10_000,
            dev_login: true,
            jobs: false,
            configure: None,
        }
    }
}

/// What the fake SMS provider presents to `POST /api/sms/inbound`.
pub const SMS_INBOUND_SECRET: &str = "test-inbound-secret";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let wechat = FakeWeChat::spawn("127.0.0.1:0", FakeConfig::default())
        .await
        .expect("fake WeChat starts");
    let fake = FakeConfig::default();
    let mut config = Config {
        addr: "127.0.0.1:0".into(),
        database_url: database_url(&dir).await,
        redis_url: std::env::var("REDIS_URL").ok().filter(|s| !s.is_empty()),
        demo_data: Some(false),
        dev_login: options.dev_login,
        secret_key: Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into()),
        login_per_minute: options.login_per_minute,
        cache_prefix: format!("nuanxin-test-{}", uuid::Uuid::new_v4().simple()),
        ..Config::default()
    };
    config.jobs.enabled = options.jobs;
    // Tests write visits straight into the database and read the feed at once.
    config.visits.feed_refresh_ms = 0;
    config.visits.feed_volunteer_ttl_ms = 0;
    // Every message template goes out through the fake's visit notice; the dispatcher
    // runs with the jobs, and tests call it directly otherwise.
    config.notify.miniprogram_state = "developer".into();
    for name in server::notify::templates::KNOWN {
        config.notify.templates.insert(
            name.into(),
            server::notify::WeChatTemplate {
                template_id: miniapp_stub::TEMPLATE_VISIT_NOTICE.into(),
                ..Default::default()
            },
        );
    }
    // Tests choose their moments: no quiet hours and no daily cap unless a test sets them.
    config.notify.quiet_start = "00:00".into();
    config.notify.quiet_end = "00:00".into();
    config.notify.daily_cap = 0;
    // SMS through the fake provider, which the fake WeChat server also serves.
    config.notify.sms.enabled = true;
    config.notify.sms.api_base = wechat.base_url();
    config.notify.sms.access_key_id = "test-key".into();
    config.notify.sms.access_key_secret = "test-secret".into();
    config.notify.sms.inbound_secret = SMS_INBOUND_SECRET.into();
    config.wechat.api_base = wechat.base_url();
    config.wechat.appid = fake.appid;
    config.wechat.secret = fake.secret;
    if let Some(configure) = options.configure {
        configure(&mut config);
    }
    start(config, wechat, dir, options.demo_families).await
}

async fn start(
    config: Config,
    wechat: FakeWeChat,
    dir: tempfile::TempDir,
    demo_families: Option<usize>,
) -> TestApp {
    let app = Application::build(config).await.expect("server builds");
    let state = app.state();
    if let Some(n) = demo_families {
        server::demo::seed(&state, n)
            .await
            .expect("demo data loads");
    }
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        http: reqwest::Client::new(),
        wechat,
        state,
        _dir: dir,
        _shutdown: tx,
    }
}

/// A fresh database for one test: a SQLite file in `dir`, or a new PostgreSQL database
/// `nx_test_<uuid>` when `DATABASE_URL` (an administrative connection) is set.
pub async fn database_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()) {
        None => format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
        Some(admin_url) => {
            let name = format!("nx_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("PostgreSQL reachable");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            admin.close().await.ok();
            let (base, _) = admin_url
                .rsplit_once('/')
                .expect("DATABASE_URL ends in /dbname");
            format!("{base}/{name}")
        }
    }
}

impl TestApp {
    /// A second API instance on this one's database (as behind a load balancer), with
    /// this one's configuration changed by `configure`.
    pub async fn another_instance(&self, configure: fn(&mut Config)) -> TestApp {
        let mut config = self.state.config.clone();
        config.addr = "127.0.0.1:0".into();
        configure(&mut config);
        let wechat = FakeWeChat::spawn("127.0.0.1:0", FakeConfig::default())
            .await
            .expect("fake WeChat starts");
        start(config, wechat, tempfile::tempdir().expect("temp dir"), None).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    fn with_token(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Self::with_token(self.http.get(self.url(path)), token))
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Self::with_token(
            self.http.post(self.url(path)).json(&body),
            token,
        ))
        .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Self::with_token(
            self.http.patch(self.url(path)).json(&body),
            token,
        ))
        .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Self::with_token(
            self.http.put(self.url(path)).json(&body),
            token,
        ))
        .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Self::with_token(self.http.delete(self.url(path)), token))
            .await
    }

    /// Sends a raw body with a content type, for malformed-input tests.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self
            .http
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body);
        self.send(Self::with_token(req, token)).await
    }

    /// An access token for a demo user, through the development login.
    pub async fn token_for(&self, phone: &str) -> String {
        let body = self
            .post("/api/auth/dev", None, json!({"phone": phone}))
            .await
            .ok();
        body["access_token"]
            .as_str()
            .expect("access token")
            .to_string()
    }

    /// Logs in through the fake WeChat server like the mini-program does.
    pub async fn wechat_login(&self, openid: &str) -> Reply {
        let code = self.wechat.mint_code(openid, None);
        self.post("/api/auth/wechat", None, json!({"code": code}))
            .await
    }

    /// The id of a region by name.
    pub async fn region(&self, name: &str) -> String {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        entity::region::Entity::find()
            .filter(entity::region::Column::Name.eq(name))
            .one(&self.state.db)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("no region {name}"))
            .id
            .to_string()
    }

    /// Counts audit rows of an action.
    pub async fn audit_count(&self, action: &str) -> u64 {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        entity::audit_log::Entity::find()
            .filter(entity::audit_log::Column::Action.eq(action))
            .count(&self.state.db)
            .await
            .expect("query")
    }
}

/// Demo people, by phone (see server::demo).
pub mod people {
    pub const ADMIN: &str = "13800000000";
    pub const CITY: &str = "13800000001";
    /// Coordinator of 东城县 (townships 桃源镇, 青石乡, 柳河镇).
    pub const EAST_COUNTY: &str = "13800000011";
    /// Coordinator of 西山县 (白云乡, 金山镇, 松溪乡; villages from 丰收村 on).
    pub const WEST_COUNTY: &str = "13800000012";
    /// Coordinator of 桃源镇 (first township of 东城县).
    pub const TAOYUAN: &str = "13800000021";
    /// Coordinator of 杨柳村 (first village of 桃源镇).
    pub const YANGLIU: &str = "13800000200";
    /// Cadre of 桃源镇.
    pub const TAOYUAN_CADRE: &str = "13800000100";
    /// An approved volunteer.
    pub const VOLUNTEER: &str = "13900000000";
}

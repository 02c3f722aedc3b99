//! Building the application: state, routes, and the listener. Tests start it on port 0.

use std::{future::Future, sync::Arc, time::Duration};

use poem::{
    EndpointExt, Route, Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    middleware::Tracing,
};
use sea_orm::DatabaseConnection;

use crate::{
    api,
    cache::Cache,
    config::Config,
    crypto::Secrets,
    db, demo,
    error::to_json_error,
    metrics::{Metrics, track},
    wechat::WeChatClient,
};

pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Config,
    pub secrets: Secrets,
    pub cache: Arc<Cache>,
    pub wechat: WeChatClient,
    /// The SMS provider (`notify.sms`).
    pub sms: crate::notify::sms::SmsClient,
    pub metrics: Arc<Metrics>,
    pub tz: chrono_tz::Tz,
    /// The deployment's festival visits (`care.festivals`).
    pub festivals: scheduler::rules::FestivalSet,
    /// Totals and pages of the family list (see `list_cache`).
    pub family_lists: crate::list_cache::ListCache<Arc<[u8]>>,
    /// Access tokens already verified (see `auth::VerifiedTokens`).
    pub verified_tokens: crate::auth::VerifiedTokens,
    /// The open visits volunteers can take, in memory (see `feed_index`); loaded and kept
    /// fresh by the server.
    pub feed: Arc<crate::feed_index::FeedIndex>,
    /// A volunteer's profile and held visits as the feed last read them, by account, for
    /// `visits.feed_volunteer_ttl_ms`; this instance's claims, gives back, releases and
    /// profile changes drop the entry.
    pub feed_takers:
        crate::list_cache::TtlCache<(entity::volunteer::Model, Vec<crate::eligibility::Held>)>,
}

impl AppState {
    /// Connects to the database (migrating it) and to Redis when configured.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config.database_url, config.database_pool).await?;
        db::migrate(&db).await?;
        let cache = Arc::new(match &config.redis_url {
            Some(url) => Cache::connect(url, &config.cache_prefix).await?,
            None => Cache::memory(),
        });
        config.notify.check()?;
        config.reminders.check()?;
        config.health.check()?;
        config.help.check()?;
        config.surge.spec().map_err(anyhow::Error::msg)?;
        if !config.wechat.appid.is_empty() && config.notify.templates.is_empty() {
            tracing::warn!(
                "no notify.templates configured: notifications reach people through the inbox only"
            );
        }
        if config.dev_login {
            tracing::warn!("development login is ENABLED: anyone can log in as a demo user");
        }
        Ok(Self {
            secrets: Secrets::new(config.master_secret()?),
            wechat: WeChatClient::new(config.wechat.clone(), cache.clone())?,
            sms: crate::notify::sms::SmsClient::new(config.notify.sms.clone())?,
            tz: config.tz()?,
            festivals: config.festivals()?,
            metrics: Arc::default(),
            family_lists: Default::default(),
            verified_tokens: Default::default(),
            feed: Arc::new(crate::feed_index::FeedIndex::new(
                crate::feed_index::Freshness {
                    refresh: Duration::from_millis(config.visits.feed_refresh_ms),
                    margin: chrono::Duration::milliseconds(config.visits.feed_margin_ms as i64),
                    full_reload: Duration::from_secs(config.visits.feed_full_reload_s),
                },
            )),
            feed_takers: crate::list_cache::TtlCache::new(Duration::from_millis(
                config.visits.feed_volunteer_ttl_ms,
            )),
            db,
            cache,
            config,
        })
    }
}

impl AppState {
    /// Options of a planning run from `from` over the configured horizon.
    pub fn plan_options(&self, from: chrono::NaiveDate) -> scheduler::generate::GenerateOptions {
        let mut opts = scheduler::generate::GenerateOptions::new(from, self.tz);
        opts.to = from
            .checked_add_days(chrono::Days::new(self.config.jobs.horizon_days))
            .unwrap_or(from);
        opts.festivals = self.festivals.clone();
        opts
    }

    /// Today in the deployment's time zone.
    pub fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now().with_timezone(&self.tz).date_naive()
    }

    /// Demo data into an empty database, when configured (the embedded default).
    pub async fn load_demo_data_if_wanted(&self) -> anyhow::Result<()> {
        if self.config.load_demo_data() && demo::load_if_empty(self).await? {
            tracing::info!("loaded the demo data set");
        }
        Ok(())
    }
}

pub struct Application {
    acceptor: TcpAcceptor,
    state: Arc<AppState>,
}

impl Application {
    /// Everything up to accepting connections: database, demo data, Redis, the port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let addr = config.addr.clone();
        let state = Arc::new(AppState::new(config).await?);
        state.load_demo_data_if_wanted().await?;
        let acceptor = TcpListener::bind(addr.as_str()).into_acceptor().await?;
        Ok(Self { acceptor, state })
    }

    pub fn port(&self) -> u16 {
        self.acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .unwrap_or_default()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let jobs = if self.state.config.jobs.enabled {
            Some(
                crate::jobs::start(&self.state)
                    .await
                    .map_err(std::io::Error::other)?,
            )
        } else {
            None
        };
        // Emergency help needs neither the jobs nor Redis: every API instance watches it.
        let help = crate::notify::emergency::Watch::start(self.state.clone());
        // Until it has loaded, the feed asks the database.
        let feed = self.state.feed.spawn(self.state.db.clone());
        let routes = routes(self.state);
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(routes, signal, Some(Duration::from_secs(10)))
            .await;
        help.stop();
        if let Some(jobs) = jobs {
            jobs.shutdown().await;
        }
        if let Some(feed) = feed {
            feed.abort();
        }
        served
    }
}

pub fn routes(state: Arc<AppState>) -> impl poem::Endpoint {
    let service = api::service(state.clone());
    let metrics = state.metrics.clone();
    let max_body = state.config.max_body_bytes;
    Route::new()
        .at("/openapi.json", service.spec_endpoint())
        .nest("/docs", service.swagger_ui())
        .at("/healthz", poem::get(api::health::healthz))
        .at("/readyz", poem::get(api::health::readyz))
        .at("/metrics", poem::get(api::health::metrics))
        .nest("/api", service)
        .nest("/app", crate::h5::endpoint())
        .at(
            "/",
            poem::endpoint::make_sync(|_| poem::web::Redirect::see_other("/app/")),
        )
        .around(move |ep, req| async move { limit_body(ep, req, max_body).await })
        .data(state)
        .catch_all_error(to_json_error)
        .with(Tracing)
        .around(move |ep, req| {
            let metrics = metrics.clone();
            async move { track(&metrics, &ep, req).await }
        })
}

/// Refuses bodies over `max` bytes with 413, whether or not the client sent a length.
async fn limit_body<E: poem::Endpoint>(
    ep: Arc<E>,
    mut req: poem::Request,
    max: usize,
) -> poem::Result<poem::Response> {
    use poem::{IntoResponse, http::header::CONTENT_LENGTH};
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if n > max => return Err(poem::error::SizedLimitError::PayloadTooLarge.into()),
        Some(_) => {}
        None => {
            let body = req.take_body().into_bytes_limit(max).await?;
            req.set_body(body);
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

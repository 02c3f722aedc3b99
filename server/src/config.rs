//! Configuration: defaults that work locally, then an optional TOML file
//! (`nuanxin.toml`, or the path in `NUANXIN_CONFIG`), then `NUANXIN_*` environment
//! variables (and the conventional `DATABASE_URL` / `REDIS_URL`). Secrets are never logged.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the server listens.
    pub addr: String,
    pub database_url: String,
    /// Connections to PostgreSQL. Unset: four per core. More than that only makes
    /// queries wait on each other inside the database (a feed under load answered 40%
    /// more requests with 8 than with 32 on two cores).
    pub database_pool: Option<u32>,
    pub redis_url: Option<String>,
    /// Load the demo data set into an empty database on start. Unset: yes on SQLite (the
    /// embedded default), no on PostgreSQL (production).
    pub demo_data: Option<bool>,
    /// Allow logging in as a demo user without WeChat. Never in production.
    pub dev_login: bool,
    /// 32 bytes, base64. Signs access tokens and (derived) encrypts ID numbers at rest.
    /// When unset on SQLite, a key file beside the database is created and reused.
    pub secret_key: Option<String>,
    pub access_token_minutes: i64,
    pub refresh_token_days: i64,
    /// Largest request body accepted, in bytes (imports are the big ones).
    pub max_body_bytes: usize,
    pub timezone: String,
    /// Logins (and invite-code bindings) allowed per client address per minute.
    pub login_per_minute: u64,
    /// Behind a load balancer: take the client address from `X-Forwarded-For`.
    pub behind_proxy: bool,
    /// Prefix of every Redis key, so that deployments can share a Redis.
    pub cache_prefix: String,
    pub wechat: WeChatConfig,
    pub jobs: crate::jobs::JobsConfig,
    /// Sending the outbox: WeChat templates, batches, retries.
    pub notify: crate::notify::NotifyConfig,
    pub care: CareConfig,
    pub visits: VisitsConfig,
    /// When reminders go out and coordinators are told (`[reminders]`).
    pub reminders: crate::notify::remind::RemindersConfig,
    /// Blood-pressure readings that call for a health follow-up (`[health]`).
    pub health: crate::oversight::HealthConfig,
    /// The 慰问金 ledger (`[gifts]`).
    pub gifts: crate::oversight::GiftsConfig,
    /// Proposing holders for visits nobody claimed (`[assign]`).
    pub assign: crate::assignments::AssignConfig,
    /// Emergency help: escalation (`[help]`).
    pub help: crate::notify::emergency::HelpConfig,
    /// What a wish on the wall may say (`[wishes]`).
    pub wishes: crate::content_check::WishesConfig,
    /// The festival surge warning (`[surge]`).
    pub surge: scheduler::surge::SurgeConfig,
}

/// How volunteers take and do visits.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VisitsConfig {
    /// A volunteer may give a visit back up to this many hours before its window opens;
    /// later only a coordinator can release them.
    pub unclaim_cutoff_hours: i64,
    /// A check-in by position must be within this many metres of the family's home.
    pub checkin_radius_m: f64,
    /// The family's details stay visible to the holders this many hours after the window.
    pub details_grace_hours: i64,
    /// Service hours credited for one visit at most (minutes).
    pub max_credit_minutes: i64,
    /// A reported visit the family has not confirmed after this many hours is flagged.
    pub confirm_within_hours: i64,
    /// The feed reads open visits from memory (`feed_index`); every this many milliseconds
    /// each instance reads the visits changed in the database since it last looked. 0:
    /// before every feed request (for tests; costly under load).
    pub feed_refresh_ms: u64,
    /// Each such read goes back this far before the previous one began, for transactions
    /// that commit late (milliseconds).
    pub feed_margin_ms: u64,
    /// Every this many seconds all open visits are read again (0: never after the first).
    pub feed_full_reload_s: u64,
    /// The feed keeps a volunteer's profile and held visits this long (milliseconds; 0:
    /// reads them for every request). Their claims through this instance drop them at once;
    /// through another, a visit that no longer fits may show that long (its claim says why).
    pub feed_volunteer_ttl_ms: u64,
}

impl Default for VisitsConfig {
    fn default() -> Self {
        Self {
            unclaim_cutoff_hours: 24,
            checkin_radius_m: 500.0,
            details_grace_hours: 24,
            max_credit_minutes: 240,
            confirm_within_hours: 48,
            feed_refresh_ms: 500,
            feed_margin_ms: 2_000,
            feed_full_reload_s: 600,
            feed_volunteer_ttl_ms: 5_000,
        }
    }
}

/// What families are owed beyond the category rules.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CareConfig {
    /// Festivals every family is visited for (Chinese names: 春节, 中秋, 端午…).
    pub festivals: Vec<String>,
    /// Festivals families with a parent aged 60 or older are also visited for.
    pub elderly_festivals: Vec<String>,
}

impl Default for CareConfig {
    fn default() -> Self {
        let set = scheduler::rules::FestivalSet::default();
        let names = |v: &[scheduler::calendar::Festival]| {
            v.iter().map(|f| f.chinese_name().to_string()).collect()
        };
        Self {
            festivals: names(&set.all),
            elderly_festivals: names(&set.elderly),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeChatConfig {
    pub api_base: String,
    pub appid: String,
    pub secret: String,
    pub timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            database_url: "sqlite://nuanxin.db?mode=rwc".into(),
            database_pool: None,
            redis_url: None,
            demo_data: None,
            dev_login: false,
            secret_key: None,
            access_token_minutes: 15,
            refresh_token_days: 30,
            max_body_bytes: 8 * 1024 * 1024,
            timezone: "Asia/Shanghai".into(),
            login_per_minute: 30,
            behind_proxy: false,
            cache_prefix: "nuanxin".into(),
            wechat: WeChatConfig::default(),
            jobs: Default::default(),
            notify: Default::default(),
            care: Default::default(),
            visits: Default::default(),
            reminders: Default::default(),
            health: Default::default(),
            gifts: Default::default(),
            assign: Default::default(),
            help: Default::default(),
            wishes: Default::default(),
            surge: Default::default(),
        }
    }
}

impl Default for WeChatConfig {
    fn default() -> Self {
        Self {
            api_base: "https://api.weixin.qq.com".into(),
            appid: String::new(),
            secret: String::new(),
            timeout_ms: 5000,
        }
    }
}

impl Config {
    /// Defaults, then the file, then the environment.
    pub fn load() -> anyhow::Result<Self> {
        let path = std::env::var("NUANXIN_CONFIG").unwrap_or_else(|_| "nuanxin.toml".into());
        let mut config = if Path::new(&path).exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            toml::from_str(&text).with_context(|| format!("parsing {path}"))?
        } else {
            Config::default()
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let flag = |k: &str, v: String| -> anyhow::Result<bool> {
            match v.as_str() {
                "1" | "true" | "yes" => Ok(true),
                "0" | "false" | "no" => Ok(false),
                _ => anyhow::bail!("{k} must be true or false, not {v:?}"),
            }
        };
        if let Some(v) = var("NUANXIN_ADDR") {
            self.addr = v;
        }
        if let Some(v) = var("NUANXIN_DATABASE_URL").or_else(|| var("DATABASE_URL")) {
            self.database_url = v;
        }
        if let Some(v) = var("NUANXIN_REDIS_URL").or_else(|| var("REDIS_URL")) {
            self.redis_url = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = var("NUANXIN_CACHE_PREFIX").filter(|s| !s.is_empty()) {
            self.cache_prefix = v;
        }
        if let Some(v) = var("NUANXIN_DEMO_DATA") {
            self.demo_data = Some(flag("NUANXIN_DEMO_DATA", v)?);
        }
        if let Some(v) = var("NUANXIN_DEV_LOGIN") {
            self.dev_login = flag("NUANXIN_DEV_LOGIN", v)?;
        }
        if let Some(v) = var("NUANXIN_BEHIND_PROXY") {
            self.behind_proxy = flag("NUANXIN_BEHIND_PROXY", v)?;
        }
        if let Some(v) = var("NUANXIN_JOBS") {
            self.jobs.enabled = flag("NUANXIN_JOBS", v)?;
        }
        if let Some(v) = var("NUANXIN_NOTIFY") {
            self.notify.enabled = flag("NUANXIN_NOTIFY", v)?;
        }
        if let Some(v) = var("NUANXIN_SMS") {
            self.notify.sms.enabled = flag("NUANXIN_SMS", v)?;
        }
        if let Some(v) = var("NUANXIN_SMS_API_BASE") {
            self.notify.sms.api_base = v;
        }
        if let Some(v) = var("NUANXIN_SMS_ACCESS_KEY_ID") {
            self.notify.sms.access_key_id = v;
        }
        if let Some(v) = var("NUANXIN_SMS_ACCESS_KEY_SECRET") {
            self.notify.sms.access_key_secret = v;
        }
        if let Some(v) = var("NUANXIN_SMS_INBOUND_SECRET") {
            self.notify.sms.inbound_secret = v;
        }
        if let Some(v) = var("NUANXIN_NOTIFY_MINIPROGRAM_STATE") {
            self.notify.miniprogram_state = v;
        }
        let list = |v: String| -> Vec<String> {
            v.split([',', '，'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        if let Some(v) = var("NUANXIN_FESTIVALS") {
            self.care.festivals = list(v);
        }
        if let Some(v) = var("NUANXIN_ELDERLY_FESTIVALS") {
            self.care.elderly_festivals = list(v);
        }
        if let Some(v) = var("NUANXIN_DATABASE_POOL") {
            let n: u32 = v.parse().unwrap_or(0);
            anyhow::ensure!(
                n > 0,
                "NUANXIN_DATABASE_POOL must be a positive number, not {v:?}"
            );
            self.database_pool = Some(n);
        }
        if let Some(v) = var("NUANXIN_FEED_REFRESH_MS") {
            self.visits.feed_refresh_ms = v.parse().map_err(|_| {
                anyhow::anyhow!("NUANXIN_FEED_REFRESH_MS must be a number, not {v:?}")
            })?;
        }
        if let Some(v) = var("NUANXIN_FEED_VOLUNTEER_TTL_MS") {
            self.visits.feed_volunteer_ttl_ms = v.parse().map_err(|_| {
                anyhow::anyhow!("NUANXIN_FEED_VOLUNTEER_TTL_MS must be a number, not {v:?}")
            })?;
        }
        if let Some(v) = var("NUANXIN_LOGIN_PER_MINUTE") {
            self.login_per_minute = v.parse().map_err(|_| {
                anyhow::anyhow!("NUANXIN_LOGIN_PER_MINUTE must be a number, not {v:?}")
            })?;
        }
        if let Some(v) = var("NUANXIN_SECRET_KEY") {
            self.secret_key = Some(v);
        }
        if let Some(v) = var("NUANXIN_WECHAT_API_BASE") {
            self.wechat.api_base = v;
        }
        if let Some(v) = var("NUANXIN_WECHAT_APPID") {
            self.wechat.appid = v;
        }
        if let Some(v) = var("NUANXIN_WECHAT_SECRET") {
            self.wechat.secret = v;
        }
        Ok(())
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub fn load_demo_data(&self) -> bool {
        self.demo_data.unwrap_or_else(|| self.is_sqlite())
    }

    /// The festival visits of this deployment; a bad name stops the start-up.
    pub fn festivals(&self) -> anyhow::Result<scheduler::rules::FestivalSet> {
        scheduler::rules::FestivalSet::parse(&self.care.festivals, &self.care.elderly_festivals)
            .map_err(|e| anyhow::anyhow!("care.{e}"))
    }

    pub fn tz(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.timezone
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown time zone {:?}", self.timezone))
    }

    /// The 32-byte master secret. On SQLite without one configured, it lives in a file
    /// beside the database so that encrypted ID numbers survive restarts.
    pub fn master_secret(&self) -> anyhow::Result<[u8; 32]> {
        let encoded = match &self.secret_key {
            Some(s) => s.clone(),
            None if self.is_sqlite() => {
                let file = self.key_file_path();
                if let Ok(s) = std::fs::read_to_string(&file) {
                    s.trim().to_string()
                } else {
                    let key: [u8; 32] = rand::random();
                    let s = base64::engine::general_purpose::STANDARD.encode(key);
                    write_private(&file, &s).with_context(|| format!("writing {file}"))?;
                    tracing::info!(file, "created a new secret key file");
                    s
                }
            }
            None => anyhow::bail!(
                "NUANXIN_SECRET_KEY must be set (32 bytes, base64) when the database is not SQLite"
            ),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .context("secret_key is not valid base64")?;
        bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("secret_key must decode to exactly 32 bytes"))
    }

    fn key_file_path(&self) -> String {
        let db = self
            .database_url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let db = db.split('?').next().unwrap_or(db);
        if db.is_empty() || db.starts_with(":memory:") {
            "nuanxin.secret".into()
        } else {
            format!("{db}.secret")
        }
    }
}

fn write_private(path: &str, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "NUANXIN_ADDR" => Some("0.0.0.0:9000".into()),
            "DATABASE_URL" => Some("postgres://x/y".into()),
            "NUANXIN_DEV_LOGIN" => Some("true".into()),
            "NUANXIN_CACHE_PREFIX" => Some("nuanxin-staging".into()),
            "NUANXIN_DATABASE_POOL" => Some("12".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.database_pool, Some(12));
        assert_eq!(c.addr, "0.0.0.0:9000");
        assert_eq!(c.cache_prefix, "nuanxin-staging");
        assert_eq!(c.database_url, "postgres://x/y");
        assert!(c.dev_login);
        assert!(!c.is_sqlite());
    }

    #[test]
    fn festivals_come_from_the_environment_and_bad_ones_are_named() {
        let mut c = Config::default();
        assert_eq!(c.festivals().unwrap(), Default::default());
        c.apply_env(|k| (k == "NUANXIN_FESTIVALS").then(|| "春节， 端午,".into()))
            .unwrap();
        assert_eq!(c.care.festivals, ["春节", "端午"]);
        c.care.elderly_festivals = vec!["重阳节".into()];
        let err = c.festivals().unwrap_err().to_string();
        assert!(
            err.contains("care.elderly_festivals[0]") && err.contains("重阳节"),
            "{err}"
        );
    }

    #[test]
    fn a_pool_of_no_connections_is_refused() {
        for bad in ["0", "many", "-3"] {
            let err = Config::default()
                .apply_env(|k| (k == "NUANXIN_DATABASE_POOL").then(|| bad.into()))
                .unwrap_err()
                .to_string();
            assert!(err.contains("NUANXIN_DATABASE_POOL"), "{err}");
        }
    }

    #[test]
    fn a_notify_template_needs_only_its_id_in_the_file() {
        let c: Config = toml::from_str(
            "[notify]\nbatch = 50\n[notify.templates.visit_cancelled]\ntemplate_id = \"T1\"\n",
        )
        .unwrap();
        c.notify.check().unwrap();
        let t = c.notify.wechat_template("visit_cancelled").unwrap();
        assert_eq!(t.keys["date"], "date2");
        assert_eq!(t.page, "pages/visit/detail");
        assert_eq!(c.notify.batch, 50);
        assert!(c.notify.wechat_template("claim_released").is_none());
        let mut c = c;
        c.apply_env(|k| (k == "NUANXIN_NOTIFY").then(|| "false".into()))
            .unwrap();
        assert!(!c.notify.enabled);
    }

    #[test]
    fn a_bad_flag_is_refused_with_its_name() {
        let mut c = Config::default();
        let err = c
            .apply_env(|k| (k == "NUANXIN_DEMO_DATA").then(|| "maybe".into()))
            .unwrap_err();
        assert!(err.to_string().contains("NUANXIN_DEMO_DATA"));
    }

    #[test]
    fn postgres_without_a_secret_refuses_to_start() {
        let c = Config {
            database_url: "postgres://localhost/x".into(),
            ..Config::default()
        };
        assert!(c.master_secret().is_err());
    }

    #[test]
    fn key_file_sits_beside_the_database() {
        let c = Config {
            database_url: "sqlite://data/x.db?mode=rwc".into(),
            ..Config::default()
        };
        assert_eq!(c.key_file_path(), "data/x.db.secret");
    }
}

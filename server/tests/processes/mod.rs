#![allow(dead_code)] // each process test uses its own part of this
//! Real `nuanxin` processes for the process tests: a world (a directory, a fresh
//! database, a Redis key prefix), processes that are killed when dropped, their logs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

pub const SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const LOG_FILTER: &str = "info,scheduler=debug,sqlx=warn,sea_orm=warn";

pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// One test's surroundings: a directory (logs, SQLite files), the database the processes
/// share, Redis under a fresh key prefix when configured.
pub struct World {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub redis: Option<String>,
    pub prefix: String,
    /// PostgreSQL databases to drop at the end.
    pub created: Vec<String>,
    /// More environment for the processes (configuration beyond the database).
    pub extra_env: Vec<(String, String)>,
}

impl World {
    pub async fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = tests::database_url(&dir).await;
        let created = pg_name(&url).into_iter().collect();
        World {
            dir,
            url,
            redis: env("REDIS_URL"),
            prefix: format!("nx_test_{}", uuid::Uuid::new_v4().simple()),
            created,
            extra_env: Vec::new(),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// `nuanxin <args>` on database `url`, configured only by what is set here (not by the
    /// test's own environment, whose `DATABASE_URL` is the administrative one), logging
    /// to `<dir>/<name>.log`.
    pub fn command(&self, url: &str, args: &[&str], name: &str) -> (Command, PathBuf) {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        // `nuanxin-jobs` is the jobs' own binary; anything else is a `nuanxin` command.
        let (program, args) = match args {
            ["nuanxin-jobs", rest @ ..] => (env!("CARGO_BIN_EXE_nuanxin-jobs"), rest),
            _ => (env!("CARGO_BIN_EXE_nuanxin"), args),
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("NUANXIN_CONFIG", self.dir.path().join("none.toml"))
            .env("NUANXIN_DATABASE_URL", url)
            .env("NUANXIN_SECRET_KEY", SECRET_KEY)
            .env("NUANXIN_DEMO_DATA", "false")
            .env("NUANXIN_CACHE_PREFIX", &self.prefix)
            .env("RUST_LOG", LOG_FILTER)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file);
        if let Some(redis) = &self.redis {
            cmd.env("NUANXIN_REDIS_URL", redis);
        }
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        (cmd, log)
    }

    /// Starts `nuanxin <args>`; it is killed when the returned guard is dropped.
    pub fn spawn(&self, url: &str, args: &[&str], name: &str) -> Proc {
        let (mut cmd, log) = self.command(url, args, name);
        cmd.stdout(Stdio::null());
        let child = cmd.spawn().expect("nuanxin starts");
        Proc {
            child,
            name: name.to_owned(),
            log,
        }
    }

    /// Runs `nuanxin <args>` to its end, asserts it succeeded, and returns its standard
    /// output.
    pub async fn run(&self, url: &str, args: &[&str], name: &str) -> String {
        let (mut cmd, log) = self.command(url, args, name);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .expect("nuanxin runs");
        assert!(
            out.status.success(),
            "nuanxin {args:?} failed ({}):\n{}",
            out.status,
            tail(&log)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// A copy of the database at `url`, which nobody may be using.
    pub async fn copy_database(&mut self, url: &str, name: &str) -> String {
        if let Some(path) = sqlite_path(url) {
            let copy = self.dir.path().join(format!("{name}.db"));
            std::fs::copy(&path, &copy).expect("copy the database");
            // A process that ended without closing its pool may leave committed pages in
            // the write-ahead log.
            let wal = PathBuf::from(format!("{path}-wal"));
            if wal.exists() {
                std::fs::copy(&wal, format!("{}-wal", copy.display())).expect("copy the WAL");
            }
            return format!("sqlite://{}?mode=rwc", copy.display());
        }
        let source = pg_name(url).expect("a PostgreSQL URL");
        let target = format!("nx_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(env("DATABASE_URL").expect("DATABASE_URL"))
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {target} TEMPLATE {source}"))
            .await
            .expect("copy the database");
        admin.close().await.ok();
        self.created.push(target.clone());
        let (base, _) = url.rsplit_once('/').expect("URL ends in /dbname");
        format!("{base}/{target}")
    }

    /// Drops the PostgreSQL databases and the Redis keys of this test (best effort; the
    /// CI script drops leftover `nx_test_*` databases).
    pub async fn finish(self) {
        if let Some(admin_url) = env("DATABASE_URL")
            && let Ok(admin) = Database::connect(admin_url).await
        {
            for name in &self.created {
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok();
            }
            admin.close().await.ok();
        }
        if let Some(mut redis) = self.redis_conn().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query_async(&mut redis)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut redis).await;
            }
        }
    }

    pub async fn redis_conn(&self) -> Option<redis::aio::ConnectionManager> {
        let client = redis::Client::open(self.redis.as_deref()?).expect("REDIS_URL parses");
        Some(
            redis::aio::ConnectionManager::new(client)
                .await
                .expect("Redis reachable"),
        )
    }
}

pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://")?;
    Some(rest.split('?').next().unwrap_or(rest).to_owned())
}

pub fn pg_name(url: &str) -> Option<String> {
    (!url.starts_with("sqlite:")).then(|| url.rsplit_once('/').expect("/dbname").1.to_owned())
}

/// The end of a log, for failure messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!("--- {}\n{}", log.display(), lines[from..].join("\n"))
}

/// A running `nuanxin`, killed (SIGKILL) and reaped when dropped, so that a failing test
/// leaves no process behind.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// SIGKILL (on Unix), then reap. The status tells whether it had ended on its own.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }

    pub fn log(&self) -> String {
        tail(&self.log)
    }

    pub fn logged(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|log| log.contains(text))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    Database::connect(options).await.expect("database connects")
}

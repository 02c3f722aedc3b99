//! A leader lease: with several instances running the same cron jobs, exactly one of them
//! acts at a time.
//!
//! A lease has a name, a holder and a fencing token. The token grows every time the lease
//! is newly acquired (by another holder, or by the same holder after it had lapsed) and
//! stays the same while one holder keeps renewing it, so a writer can check with
//! [`Lease::is_current`] that nobody has taken over since it started.
//!
//! Two back ends:
//! - Redis (production): the key `<prefix>:lease:<name>` holds `holder:token` with a TTL,
//!   tokens come from the counter `<prefix>:lease:<name>:token`; acquiring, renewing and
//!   releasing are Lua scripts, so each is atomic.
//! - The database (the embedded default, or no Redis): one `job_lease` row per name taken
//!   by a conditional UPDATE; works on SQLite and PostgreSQL.
//!
//! The lease only decides who acts; correctness does not rest on it (the `job_run` ledger's
//! unique key makes a second run of the same period a no-op).

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use entity::job_lease;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

/// Where the lease lives.
#[derive(Clone)]
pub enum Lease {
    Redis {
        conn: redis::aio::ConnectionManager,
        /// Prefixes every key, e.g. "nuanxin".
        key_prefix: String,
    },
    Database(DatabaseConnection),
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lease::Redis { key_prefix, .. } => f
                .debug_struct("Lease::Redis")
                .field("key_prefix", key_prefix)
                .finish(),
            Lease::Database(_) => f.write_str("Lease::Database"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("lease {0}: unexpected value in store")]
    Corrupt(String),
}

/// KEYS[1] lease key, KEYS[2] token counter; ARGV[1] holder, ARGV[2] ttl in ms.
/// Returns the token if `holder` holds the lease afterwards, else false (nil).
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v then
  local i = string.find(v, ':[^:]*$')
  if i and string.sub(v, 1, i - 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(v, i + 1))
  end
  return false
end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. t, 'PX', ARGV[2])
return t
",
    )
});

/// KEYS[1] lease key; ARGV[1] holder. Deletes the lease if `holder` holds it; 1 if it did.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v then
  local i = string.find(v, ':[^:]*$')
  if i and string.sub(v, 1, i - 1) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
return 0
",
    )
});

/// An id for this process as a lease holder and in `job_run.holder`: hostname-pid-random,
/// at most 64 characters and without ':'.
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let host = if host.is_empty() {
        "host".to_owned()
    } else {
        host
    };
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

fn ttl_ms(ttl: Duration) -> u64 {
    std::cmp::max(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX), 1)
}

fn chrono_ttl(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(365))
}

impl Lease {
    fn redis_key(prefix: &str, name: &str) -> String {
        format!("{prefix}:lease:{name}")
    }

    /// Takes the lease `name` for `holder` for `ttl`, or extends it if `holder` already
    /// has it. `Some(token)` if `holder` holds it now (the same token as before when it was
    /// renewed, a larger one when newly acquired); `None` if another live holder has it.
    pub async fn acquire_or_renew(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, LeaseError> {
        match self {
            Lease::Redis { conn, key_prefix } => {
                let key = Self::redis_key(key_prefix, name);
                let mut conn = conn.clone();
                let token: Option<i64> = ACQUIRE
                    .key(&key)
                    .key(format!("{key}:token"))
                    .arg(holder)
                    .arg(ttl_ms(ttl))
                    .invoke_async(&mut conn)
                    .await?;
                token
                    .map(|t| u64::try_from(t).map_err(|_| LeaseError::Corrupt(name.to_owned())))
                    .transpose()
            }
            Lease::Database(db) => db_acquire(db, name, holder, ttl).await,
        }
    }

    /// Gives the lease up if `holder` holds it, so another instance can take it at once.
    /// The token counter is kept: the next holder gets a larger token. True if it was held.
    pub async fn release(&self, name: &str, holder: &str) -> Result<bool, LeaseError> {
        match self {
            Lease::Redis { conn, key_prefix } => {
                let mut conn = conn.clone();
                let n: i64 = RELEASE
                    .key(Self::redis_key(key_prefix, name))
                    .arg(holder)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(n == 1)
            }
            Lease::Database(db) => {
                use job_lease::Column as C;
                let past = Utc::now() - chrono::Duration::seconds(1);
                let stmt = Query::update()
                    .table(job_lease::Entity)
                    .value(C::ExpiresAt, past)
                    .and_where(Expr::col(C::Name).eq(name))
                    .and_where(Expr::col(C::Holder).eq(holder))
                    .and_where(Expr::col(C::ExpiresAt).gte(Utc::now()))
                    .to_owned();
                Ok(db.execute(&stmt).await?.rows_affected() == 1)
            }
        }
    }

    /// Whether `token` is still the token of a live lease `name`: a writer checks this
    /// right before committing work done under the lease. Errors count as "no".
    pub async fn is_current(&self, name: &str, token: u64) -> bool {
        match self.current_token(name).await {
            Ok(current) => current == Some(token),
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "lease check failed");
                false
            }
        }
    }

    /// The token of the live lease `name`, if anyone holds it.
    pub async fn current_token(&self, name: &str) -> Result<Option<u64>, LeaseError> {
        match self {
            Lease::Redis { conn, key_prefix } => {
                let mut conn = conn.clone();
                let v: Option<String> = redis::cmd("GET")
                    .arg(Self::redis_key(key_prefix, name))
                    .query_async(&mut conn)
                    .await?;
                let Some(v) = v else { return Ok(None) };
                let token = v
                    .rsplit_once(':')
                    .and_then(|(_, t)| t.parse::<u64>().ok())
                    .ok_or_else(|| LeaseError::Corrupt(name.to_owned()))?;
                Ok(Some(token))
            }
            Lease::Database(db) => {
                use job_lease::Column as C;
                let stmt = Query::select()
                    .column(C::Token)
                    .from(job_lease::Entity)
                    .and_where(Expr::col(C::Name).eq(name))
                    .and_where(Expr::col(C::ExpiresAt).gt(Utc::now()))
                    .to_owned();
                match db.query_one(&stmt).await? {
                    None => Ok(None),
                    Some(row) => {
                        let t: i64 = row.try_get("", "token")?;
                        Ok(Some(
                            u64::try_from(t).map_err(|_| LeaseError::Corrupt(name.to_owned()))?,
                        ))
                    }
                }
            }
        }
    }
}

async fn db_acquire(
    db: &DatabaseConnection,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<u64>, LeaseError> {
    use job_lease::Column as C;
    let now = Utc::now();
    let expires = now + chrono_ttl(ttl);
    // The first ever: create the row (a concurrent creator makes this a no-op).
    let insert = Query::insert()
        .into_table(job_lease::Entity)
        .columns([C::Name, C::Holder, C::Token, C::ExpiresAt])
        .values_panic([name.into(), holder.into(), 1i64.into(), expires.into()])
        .on_conflict(OnConflict::column(C::Name).do_nothing().to_owned())
        .to_owned();
    if db.execute(&insert).await?.rows_affected() == 1 {
        return Ok(Some(1));
    }
    // Take it if it lapsed, or extend it if it is ours. The token is kept only when we are
    // renewing a live lease; every new acquisition, ours after a lapse too, increments it.
    // (SET expressions see the row as it was before the update.)
    let renewing = Expr::col(C::Holder)
        .eq(holder)
        .and(Expr::col(C::ExpiresAt).gte(now));
    let update = Query::update()
        .table(job_lease::Entity)
        .value(
            C::Token,
            Expr::case(renewing, Expr::col(C::Token)).finally(Expr::col(C::Token).add(1)),
        )
        .value(C::Holder, holder)
        .value(C::ExpiresAt, expires)
        .and_where(Expr::col(C::Name).eq(name))
        .and_where(
            Expr::col(C::Holder)
                .eq(holder)
                .or(Expr::col(C::ExpiresAt).lt(now)),
        )
        .returning_col(C::Token)
        .to_owned();
    match db.query_one(&update).await? {
        None => Ok(None),
        Some(row) => {
            let t: i64 = row.try_get("", "token")?;
            Ok(Some(
                u64::try_from(t).map_err(|_| LeaseError::Corrupt(name.to_owned()))?,
            ))
        }
    }
}

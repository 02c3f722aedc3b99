//! Rate-limit counters and short-lived shared values (the WeChat access token): in Redis
//! when it is configured, shared by every instance; in process memory otherwise. Nothing
//! here is needed for correctness: when Redis fails, callers get the permissive answer
//! (no limit, no cached value) and a warning is logged.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{AsyncCommands, aio::ConnectionManager};

pub enum Cache {
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
    Memory(Mutex<Memory>),
}

#[derive(Default)]
pub struct Memory {
    counters: HashMap<String, (u64, Instant)>,
    values: HashMap<String, (String, Instant)>,
}

impl Cache {
    pub fn memory() -> Self {
        Cache::Memory(Mutex::default())
    }

    /// Connects to Redis; a dead server fails within a few seconds instead of retrying on.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
            .await
            .map_err(|_| anyhow::anyhow!("Redis at {} did not answer within 5 s", redact(url)))??;
        Ok(Cache::Redis {
            conn,
            prefix: prefix.to_string(),
        })
    }

    /// Counts one hit on `key` in a fixed window and returns the count so far.
    pub async fn hit(&self, key: &str, window: Duration) -> u64 {
        match self {
            Cache::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let key = format!("{prefix}:rl:{key}");
                // NX: the window starts with the first hit and is not extended by later ones.
                let result: redis::RedisResult<(u64,)> = redis::pipe()
                    .atomic()
                    .incr(&key, 1u64)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(window.as_secs().max(1))
                    .arg("NX")
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                result.map(|(n,)| n).unwrap_or_else(|err| {
                    tracing::warn!(%err, "Redis unavailable; rate limit not applied");
                    0
                })
            }
            Cache::Memory(memory) => {
                let mut memory = memory.lock().expect("cache lock");
                let now = Instant::now();
                if memory.counters.len() > 100_000 {
                    memory.counters.retain(|_, (_, until)| *until > now);
                }
                let entry = memory
                    .counters
                    .entry(key.to_string())
                    .or_insert((0, now + window));
                if entry.1 <= now {
                    *entry = (0, now + window);
                }
                entry.0 += 1;
                entry.0
            }
        }
    }

    pub async fn get(&self, key: &str) -> Option<String> {
        match self {
            Cache::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let got: redis::RedisResult<Option<String>> =
                    conn.get(format!("{prefix}:kv:{key}")).await;
                got.unwrap_or_else(|err| {
                    tracing::warn!(%err, "Redis unavailable; cached value not read");
                    None
                })
            }
            Cache::Memory(memory) => {
                let memory = memory.lock().expect("cache lock");
                memory
                    .values
                    .get(key)
                    .filter(|(_, until)| *until > Instant::now())
                    .map(|(v, _)| v.clone())
            }
        }
    }

    pub async fn put(&self, key: &str, value: &str, ttl: Duration) {
        match self {
            Cache::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let set: redis::RedisResult<()> = conn
                    .set_ex(format!("{prefix}:kv:{key}"), value, ttl.as_secs().max(1))
                    .await;
                if let Err(err) = set {
                    tracing::warn!(%err, "Redis unavailable; value not cached");
                }
            }
            Cache::Memory(memory) => {
                let mut memory = memory.lock().expect("cache lock");
                memory
                    .values
                    .insert(key.to_string(), (value.to_string(), Instant::now() + ttl));
            }
        }
    }

    /// Stores `value` unless `key` holds an unexpired value; whether it was stored. A
    /// short lock between instances. When Redis fails the answer is yes: the lock only
    /// spares work, it never guards correctness.
    pub async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> bool {
        match self {
            Cache::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                    .arg(format!("{prefix}:kv:{key}"))
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .query_async(&mut conn)
                    .await;
                set.map(|ok| ok.is_some()).unwrap_or_else(|err| {
                    tracing::warn!(%err, "Redis unavailable; lock not taken");
                    true
                })
            }
            Cache::Memory(memory) => {
                let mut memory = memory.lock().expect("cache lock");
                let now = Instant::now();
                if memory
                    .values
                    .get(key)
                    .is_some_and(|(_, until)| *until > now)
                {
                    return false;
                }
                memory
                    .values
                    .insert(key.to_string(), (value.to_string(), now + ttl));
                true
            }
        }
    }

    /// [`Self::put_if_absent`] for several keys in one round trip: whether each was stored.
    pub async fn put_many_if_absent(
        &self,
        keys: &[String],
        value: &str,
        ttl: Duration,
    ) -> Vec<bool> {
        match self {
            Cache::Redis { conn, prefix } if !keys.is_empty() => {
                let mut conn = conn.clone();
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.cmd("SET")
                        .arg(format!("{prefix}:kv:{key}"))
                        .arg(value)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl.as_millis().max(1) as u64);
                }
                let set: redis::RedisResult<Vec<Option<String>>> =
                    pipe.query_async(&mut conn).await;
                set.map(|all| all.into_iter().map(|ok| ok.is_some()).collect())
                    .unwrap_or_else(|err| {
                        tracing::warn!(%err, "Redis unavailable; locks not taken");
                        vec![true; keys.len()]
                    })
            }
            Cache::Redis { .. } => Vec::new(),
            Cache::Memory(_) => {
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    out.push(self.put_if_absent(key, value, ttl).await);
                }
                out
            }
        }
    }

    /// Removes `key` if it still holds `value` (so a newer value someone else stored stays).
    pub async fn remove_if(&self, key: &str, value: &str) {
        match self {
            Cache::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let script = redis::Script::new(
                    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
                );
                let r: redis::RedisResult<i64> = script
                    .key(format!("{prefix}:kv:{key}"))
                    .arg(value)
                    .invoke_async(&mut conn)
                    .await;
                if let Err(err) = r {
                    tracing::warn!(%err, "Redis unavailable; value not removed");
                }
            }
            Cache::Memory(memory) => {
                let mut memory = memory.lock().expect("cache lock");
                if memory.values.get(key).is_some_and(|(v, _)| v == value) {
                    memory.values.remove(key);
                }
            }
        }
    }

    pub async fn ping(&self) -> Result<(), String> {
        match self {
            Cache::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<String>(&mut conn);
                match tokio::time::timeout(Duration::from_secs(2), ping).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timeout".into()),
                }
            }
            Cache::Memory(_) => Ok(()),
        }
    }
}

/// A URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_counter_resets_after_its_window() {
        let c = Cache::memory();
        assert_eq!(c.hit("k", Duration::from_millis(50)).await, 1);
        assert_eq!(c.hit("k", Duration::from_millis(50)).await, 2);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(c.hit("k", Duration::from_millis(50)).await, 1);
    }

    #[tokio::test]
    async fn several_locks_are_taken_together() {
        let c = Cache::memory();
        let ttl = Duration::from_secs(5);
        assert!(c.put_if_absent("b", "other", ttl).await);
        let keys = ["a".to_string(), "b".to_string()];
        assert_eq!(c.put_many_if_absent(&keys, "me", ttl).await, [true, false]);
        for key in &keys {
            c.remove_if(key, "me").await;
        }
        assert_eq!(c.get("a").await, None);
        assert_eq!(c.get("b").await.as_deref(), Some("other"));
    }

    #[tokio::test]
    async fn memory_values_expire_and_are_removed_only_when_unchanged() {
        let c = Cache::memory();
        c.put("t", "a", Duration::from_millis(50)).await;
        assert_eq!(c.get("t").await.as_deref(), Some("a"));
        c.remove_if("t", "b").await;
        assert_eq!(c.get("t").await.as_deref(), Some("a"));
        c.remove_if("t", "a").await;
        assert_eq!(c.get("t").await, None);
        c.put("t", "a", Duration::from_millis(20)).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(c.get("t").await, None);
    }

    #[tokio::test]
    async fn put_if_absent_takes_a_free_or_expired_key_only() {
        let c = Cache::memory();
        assert!(c.put_if_absent("l", "a", Duration::from_millis(30)).await);
        assert!(!c.put_if_absent("l", "b", Duration::from_millis(30)).await);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(c.put_if_absent("l", "b", Duration::from_millis(30)).await);
        c.remove_if("l", "b").await;
        assert!(c.put_if_absent("l", "c", Duration::from_millis(30)).await);
    }

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(redact("redis://:s3cret@host:6379"), "redis://***@host:6379");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}

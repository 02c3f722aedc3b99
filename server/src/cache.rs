//! Rate-limit counters: in Redis when it is configured (shared by every
//! instance), in process memory otherwise. Nothing here is needed for correctness: when
//! Redis fails, callers get the permissive answer and a warning is logged.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;

pub enum Cache {
    Redis(ConnectionManager, String),
    Memory(Mutex<HashMap<String, (u64, Instant)>>),
}

impl Cache {
    pub fn memory() -> Self {
        Cache::Memory(Mutex::new(HashMap::new()))
    }

    /// Connects to Redis; a dead server fails within a few seconds instead of retrying on.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let manager = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
            .await
            .map_err(|_| anyhow::anyhow!("Redis at {} did not answer within 5 s", redact(url)))??;
        Ok(Cache::Redis(manager, prefix.to_string()))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Cache::Redis(..) => "redis",
            Cache::Memory(_) => "memory",
        }
    }

    /// Counts one hit on `key` in a fixed window and returns the count so far.
    pub async fn hit(&self, key: &str, window: Duration) -> u64 {
        match self {
            Cache::Redis(conn, prefix) => {
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
                match result {
                    Ok((n,)) => n,
                    Err(err) => {
                        tracing::warn!(%err, "Redis unavailable; rate limit not applied");
                        0
                    }
                }
            }
            Cache::Memory(map) => {
                let mut map = map.lock().expect("cache lock");
                let now = Instant::now();
                if map.len() > 100_000 {
                    map.retain(|_, (_, until)| *until > now);
                }
                let entry = map.entry(key.to_string()).or_insert((0, now + window));
                if entry.1 <= now {
                    *entry = (0, now + window);
                }
                entry.0 += 1;
                entry.0
            }
        }
    }

    pub async fn ping(&self) -> Result<(), String> {
        match self {
            Cache::Redis(conn, _) => {
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

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(redact("redis://:s3cret@host:6379"), "redis://***@host:6379");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}

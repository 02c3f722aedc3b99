//! Short-lived caches for the family list. Counting every family of a city on every page
//! view costs more than the page itself, and a city's first page is what every coordinator
//! opens: a total a few seconds old, or a page a second or two old, is fine on a list
//! screen. Writes through this instance clear both at once; other instances see them within
//! the time to live.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

const MAX_ENTRIES: usize = 10_000;

/// Values by key (what decides a query's rows, the caller's scope included), each kept
/// for `ttl`.
pub struct TtlCache<V> {
    map: Mutex<HashMap<String, (V, Instant)>>,
    ttl: Duration,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let map = self.map.lock().expect("list cache lock");
        map.get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    pub fn put(&self, key: String, value: V) {
        let mut map = self.map.lock().expect("list cache lock");
        if map.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (value, Instant::now()));
    }

    pub fn clear(&self) {
        self.map.lock().expect("list cache lock").clear();
    }

    pub fn remove(&self, key: &str) {
        self.map.lock().expect("list cache lock").remove(key);
    }
}

/// A list's totals and pages (`P`: the family list keeps a page's items serialized).
pub struct ListCache<P> {
    pub totals: TtlCache<u64>,
    pub pages: TtlCache<P>,
}

impl<P: Clone> Default for ListCache<P> {
    fn default() -> Self {
        Self {
            totals: TtlCache::new(Duration::from_secs(10)),
            pages: TtlCache::new(Duration::from_secs(2)),
        }
    }
}

impl<P: Clone> ListCache<P> {
    /// After a write: totals and pages may have changed.
    pub fn clear(&self) {
        self.totals.clear();
        self.pages.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_until_cleared() {
        let c: ListCache<Vec<u32>> = ListCache::default();
        assert_eq!(c.totals.get("q"), None);
        c.totals.put("q".into(), 7);
        c.pages.put("q|1".into(), vec![1, 2]);
        assert_eq!(c.totals.get("q"), Some(7));
        assert_eq!(c.pages.get("q|1"), Some(vec![1, 2]));
        c.clear();
        assert_eq!(c.totals.get("q"), None);
        assert_eq!(c.pages.get("q|1"), None);
    }

    #[test]
    fn values_expire() {
        let c = TtlCache::new(Duration::from_millis(20));
        c.put("q".into(), 1u64);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.get("q"), None);
    }
}

//! A short-lived cache of list totals. Counting every family in a city on every page view
//! costs more than the page itself; a total a few seconds old is fine on a list screen.
//! Writes through this instance clear it at once; other instances see them within `TTL`.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

const TTL: Duration = Duration::from_secs(10);
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct CountCache {
    map: Mutex<HashMap<String, (u64, Instant)>>,
}

impl CountCache {
    /// The cached total of the query `key` (its SQL), if fresh.
    pub fn get(&self, key: &str) -> Option<u64> {
        let map = self.map.lock().expect("count cache lock");
        map.get(key)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(n, _)| *n)
    }

    pub fn put(&self, key: String, total: u64) {
        let mut map = self.map.lock().expect("count cache lock");
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (total, Instant::now()));
    }

    /// After a write: totals may have changed.
    pub fn clear(&self) {
        self.map.lock().expect("count cache lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_kept_until_cleared() {
        let c = CountCache::default();
        assert_eq!(c.get("q"), None);
        c.put("q".into(), 7);
        assert_eq!(c.get("q"), Some(7));
        c.clear();
        assert_eq!(c.get("q"), None);
    }
}

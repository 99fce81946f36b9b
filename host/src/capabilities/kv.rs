//! A small per-connection key-value cache with expiry.
//!
//! Connectors use it for things such as a login session id (Clarizen) so they
//! do not log in on every call. It lives in host memory, is shared by all calls
//! of one connection, and is bounded: key and value sizes, number of entries and
//! time to live are capped. Being a cache, it may forget: when full, the entry
//! closest to expiry is evicted. Never put secret values here (a connector never
//! has them anyway).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Caps of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Longest key, bytes.
    pub max_key_bytes: usize,
    /// Largest value, bytes.
    pub max_value_bytes: usize,
    /// Most entries.
    pub max_entries: usize,
    /// Longest time to live.
    pub max_ttl: Duration,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_entries: 256,
            max_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// The cache of one connection.
#[derive(Debug, Default)]
pub struct KvCache {
    limits: KvLimits,
    entries: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new(limits: KvLimits) -> Self {
        KvCache {
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A live value.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut map = self.entries.lock().ok()?;
        match map.get(key) {
            Some((v, exp)) if *exp > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Store a value; returns why it was not stored, if it was not.
    pub fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), String> {
        if key.len() > self.limits.max_key_bytes {
            return Err(format!(
                "kv key of {} bytes exceeds {}",
                key.len(),
                self.limits.max_key_bytes
            ));
        }
        if value.len() > self.limits.max_value_bytes {
            return Err(format!(
                "kv value of {} bytes exceeds {}",
                value.len(),
                self.limits.max_value_bytes
            ));
        }
        let now = Instant::now();
        let expires = now + ttl.min(self.limits.max_ttl);
        let Ok(mut map) = self.entries.lock() else {
            return Err("kv cache unavailable".to_string());
        };
        map.retain(|_, (_, exp)| *exp > now);
        if !map.contains_key(key)
            && map.len() >= self.limits.max_entries
            && let Some(victim) = map
                .iter()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(k, _)| k.clone())
        {
            map.remove(&victim);
        }
        map.insert(key.to_string(), (value, expires));
        Ok(())
    }

    /// Remove a value.
    pub fn delete(&self, key: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_delete_expire() {
        let kv = KvCache::new(KvLimits::default());
        kv.set("a", b"1".to_vec(), Duration::from_secs(60)).unwrap();
        assert_eq!(kv.get("a").as_deref(), Some(&b"1"[..]));
        kv.delete("a");
        assert_eq!(kv.get("a"), None);
        kv.set("b", b"2".to_vec(), Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(kv.get("b"), None);
    }

    #[test]
    fn caps_are_enforced() {
        let kv = KvCache::new(KvLimits {
            max_entries: 2,
            max_value_bytes: 4,
            ..KvLimits::default()
        });
        assert!(kv.set("big", vec![0; 5], Duration::from_secs(1)).is_err());
        assert!(
            kv.set(&"k".repeat(300), vec![], Duration::from_secs(1))
                .is_err()
        );
        kv.set("x", vec![1], Duration::from_secs(10)).unwrap();
        kv.set("y", vec![2], Duration::from_secs(100)).unwrap();
        kv.set("z", vec![3], Duration::from_secs(100)).unwrap();
        assert_eq!(kv.get("x"), None, "entry closest to expiry is evicted");
        assert!(kv.get("y").is_some() && kv.get("z").is_some());
    }
}

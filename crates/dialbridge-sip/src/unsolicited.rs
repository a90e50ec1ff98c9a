//! Requests that belong to nothing we started — scanners' INVITEs and OPTIONS, customers
//! calling a caller id back, stray in-dialog requests — are answered at most a few times a
//! second per source address and dropped beyond that, so that a flood costs one table lookup per
//! message and never a reply, a dialog or a media port. Pure: the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy)]
pub struct UnsolicitedSettings {
    /// Answers allowed per source per second, sustained.
    pub per_second: u32,
    /// Answers a source may get in a burst.
    pub burst: u32,
    /// Sources tracked at once; beyond, unknown sources are dropped until idle ones expire.
    pub max_sources: usize,
}

impl Default for UnsolicitedSettings {
    fn default() -> Self {
        Self {
            per_second: 10,
            burst: 20,
            max_sources: 10_000,
        }
    }
}

/// A token bucket per source address.
pub struct SourceLimiter {
    settings: UnsolicitedSettings,
    buckets: HashMap<IpAddr, Bucket>,
}

struct Bucket {
    tokens_milli: u64,
    updated_ms: u64,
}

impl SourceLimiter {
    pub fn new(settings: UnsolicitedSettings) -> Self {
        Self {
            settings,
            buckets: HashMap::new(),
        }
    }

    /// Whether this source may be answered now (and takes its token if so).
    pub fn allow(&mut self, source: IpAddr, now_ms: u64) -> bool {
        let capacity = u64::from(self.settings.burst) * 1000;
        if !self.buckets.contains_key(&source) {
            if self.buckets.len() >= self.settings.max_sources {
                self.sweep(now_ms);
            }
            if self.buckets.len() >= self.settings.max_sources {
                return false;
            }
        }
        let per_second = u64::from(self.settings.per_second);
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            tokens_milli: capacity,
            updated_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(bucket.updated_ms);
        bucket.tokens_milli = (bucket.tokens_milli + elapsed * per_second).min(capacity);
        bucket.updated_ms = now_ms;
        if bucket.tokens_milli >= 1000 {
            bucket.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }

    /// Forgets sources whose bucket has refilled (they are as if never seen).
    pub fn sweep(&mut self, now_ms: u64) {
        let capacity = u64::from(self.settings.burst) * 1000;
        let per_second = u64::from(self.settings.per_second).max(1);
        self.buckets.retain(|_, b| {
            let refilled = b.tokens_milli + now_ms.saturating_sub(b.updated_ms) * per_second;
            refilled < capacity
        });
    }

    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
#[path = "unsolicited_test.rs"]
mod tests;

//! Failure budgets for credentials: how many failed attempts a key (a source and an account,
//! or a source alone) may make within a window before its attempts are refused without being
//! evaluated, until the window ends. Time is given (milliseconds of any monotonic clock); the
//! HTTP families and the SIP registrar keep one each.

use std::collections::HashMap;
use std::hash::Hash;

/// At most `max_failures` failures within `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_failures: u32,
    pub window_ms: u64,
}

/// The failures of every key lately.
#[derive(Debug, Clone)]
pub struct FailureBudgets<K> {
    budget: Budget,
    /// Per key: failures counted, and when its window began.
    failures: HashMap<K, (u32, u64)>,
    /// Most keys kept: past it those that failed least are dropped first (a flood of fresh keys
    /// cannot grow memory, nor wash out the keys that are locked out).
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> FailureBudgets<K> {
    pub fn new(budget: Budget, max_keys: usize) -> Self {
        Self {
            budget,
            failures: HashMap::new(),
            max_keys,
        }
    }

    /// How long until `key` may try again; `None` while it is within its budget.
    pub fn retry_after_ms(&self, key: &K, now_ms: u64) -> Option<u64> {
        let (count, since) = self.failures.get(key)?;
        let ends = since.saturating_add(self.budget.window_ms);
        (*count >= self.budget.max_failures && now_ms < ends).then(|| ends - now_ms)
    }

    /// `key` failed once more.
    pub fn failed(&mut self, key: &K, now_ms: u64) {
        if !self.failures.contains_key(key) && self.failures.len() >= self.max_keys {
            self.sweep(now_ms);
            if self.failures.len() >= self.max_keys {
                self.drop_least();
            }
        }
        let window = self.budget.window_ms;
        let entry = self.failures.entry(key.clone()).or_insert((0, now_ms));
        if now_ms.saturating_sub(entry.1) >= window {
            *entry = (0, now_ms);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// `key` proved itself: its failures are forgotten.
    pub fn succeeded(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// Forgets windows that have ended.
    pub fn sweep(&mut self, now_ms: u64) {
        let window = self.budget.window_ms;
        self.failures
            .retain(|_, (_, since)| now_ms.saturating_sub(*since) < window);
    }

    /// Keys counted now.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    /// Drops the half of the keys that failed least (the oldest first among equals): a flood of
    /// fresh keys must not wash out the lockouts that matter.
    fn drop_least(&mut self) {
        let mut ranked: Vec<(u32, u64)> = self.failures.values().copied().collect();
        ranked.sort_unstable();
        let Some(&cut) = ranked.get(ranked.len() / 2) else {
            return;
        };
        self.failures.retain(|_, entry| *entry > cut);
    }
}

#[cfg(test)]
#[path = "budget_test.rs"]
mod tests;

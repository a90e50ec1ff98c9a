//! What guards every HTTP credential family (agent `pwd`, admin seed, admin password, the event
//! stream's session): failure budgets per (source, account) and per source, checked before a
//! credential is evaluated; and the password hash run off the async threads, a few at a time,
//! with a bounded queue, so that guessing cannot starve accepted calls.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dialbridge_core::budget::{Budget, FailureBudgets};
use dialbridge_service::Metrics;
use dialbridge_store::PasswordHashing;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Wrong credentials one source may give for one account before that pair is refused unheard.
const ACCOUNT_BUDGET: Budget = Budget {
    max_failures: 10,
    window_ms: 300_000,
};
/// Requests for unknown accounts and malformed credentials one source may send.
const SOURCE_BUDGET: Budget = Budget {
    max_failures: 100,
    window_ms: 300_000,
};
const MAX_KEYS: usize = 100_000;
/// Hashes waiting for a thread, per core, before a new one is refused as busy.
const QUEUE_PER_CORE: usize = 4;

/// The outcome of checking a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    /// Not evaluated: this source failed too often for this account (or, for an unknown
    /// account, at all) lately; it may try again after this long.
    Throttled(Duration),
    /// Not evaluated: the password hash's queue is full.
    Busy,
}

pub struct Credentials {
    accounts: Mutex<FailureBudgets<(IpAddr, String)>>,
    sources: Mutex<FailureBudgets<IpAddr>>,
    hashing: PasswordHashing,
    hash_threads: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Verified against for an unknown account, so that it costs what a known one costs.
    dummy_hash: OnceLock<String>,
    started: Instant,
    metrics: Arc<Metrics>,
}

impl Credentials {
    pub fn new(hashing: PasswordHashing, metrics: Arc<Metrics>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            accounts: Mutex::new(FailureBudgets::new(ACCOUNT_BUDGET, MAX_KEYS)),
            sources: Mutex::new(FailureBudgets::new(SOURCE_BUDGET, MAX_KEYS)),
            hashing,
            hash_threads: Arc::new(Semaphore::new(cores)),
            waiting: AtomicUsize::new(0),
            max_waiting: cores * QUEUE_PER_CORE,
            dummy_hash: OnceLock::new(),
            started: Instant::now(),
            metrics,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether `account` (`None`: unknown, or the request is malformed) may be evaluated for
    /// `source` now; the throttled verdict otherwise.
    pub fn admit(&self, source: IpAddr, account: Option<&str>) -> Option<Verdict> {
        let now = self.now_ms();
        let retry = match account {
            Some(account) => lock(&self.accounts).retry_after_ms(&(source, account.to_owned()), now),
            None => lock(&self.sources).retry_after_ms(&source, now),
        };
        retry.map(|ms| {
            self.metrics.http_auth_throttled.inc();
            Verdict::Throttled(Duration::from_millis(ms))
        })
    }

    /// Records what an evaluation found: a failure counts against the pair (or, for an
    /// unknown account, the source); a success forgets the pair's failures.
    pub fn record(&self, source: IpAddr, account: Option<&str>, verdict: Verdict) {
        let now = self.now_ms();
        match (account, verdict) {
            (Some(account), Verdict::Valid) => lock(&self.accounts).succeeded(&(source, account.to_owned())),
            (Some(account), Verdict::Invalid) => lock(&self.accounts).failed(&(source, account.to_owned()), now),
            (None, Verdict::Invalid) => lock(&self.sources).failed(&source, now),
            _ => {}
        }
    }

    /// Checks `pwd_md5` against an agent's stored hash (`None`: no such agent, checked against
    /// a dummy hash all the same), on a blocking thread, at most one per core at once.
    pub async fn verify_hash(&self, pwd_md5: &str, stored: Option<&str>) -> Verdict {
        let known = stored.is_some();
        let stored = match stored {
            Some(stored) => stored.to_owned(),
            None => self.dummy_hash().to_owned(),
        };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.metrics.http_auth_busy.inc();
            return Verdict::Busy;
        }
        let permit = self.hash_threads.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(permit) = permit else {
            return Verdict::Busy;
        };
        self.metrics.http_password_checks.inc();
        let hashing = self.hashing.clone();
        let pwd_md5 = pwd_md5.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hashing.verify(&pwd_md5, &stored)
        })
        .await
        .unwrap_or(false);
        if matched && known {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }

    fn dummy_hash(&self) -> &str {
        self.dummy_hash
            .get_or_init(|| self.hashing.hash("dialbridge: no such account").unwrap_or_default())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "credentials_test.rs"]
mod tests;

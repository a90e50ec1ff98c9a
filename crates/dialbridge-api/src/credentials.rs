//! What guards every HTTP credential family (agent `pwd`, admin seed, admin password, the event
//! stream's session): failure budgets per (source, account) and per source, checked before a
//! credential is evaluated; and the password hash run off the async threads, a few at a time,
//! with a bounded queue, so that guessing cannot starve accepted calls.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dialbridge_core::budget::{Budget, FailureBudgets};
use dialbridge_service::Metrics;
use dialbridge_store::PasswordHashing;
use tokio::sync::{watch, Semaphore};
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

/// A check running now: its answer once known (`Some(None)`: it could not run).
type RunningCheck = watch::Receiver<Option<Option<bool>>>;

pub struct Credentials {
    accounts: Mutex<FailureBudgets<(IpAddr, String)>>,
    sources: Mutex<FailureBudgets<IpAddr>>,
    hashing: PasswordHashing,
    hash_threads: Arc<Semaphore>,
    /// Places for checks running or waiting for a thread: taken without waiting, so a full
    /// queue answers busy at once; given back however the check ends.
    queue: Arc<Semaphore>,
    /// Verified against for an unknown account, so that it costs what a known one costs.
    dummy_hash: OnceLock<String>,
    /// The checks running now, by (password md5, stored hash): their answer, once known.
    in_flight: Mutex<HashMap<(String, String), RunningCheck>>,
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
            queue: Arc::new(Semaphore::new(cores * (QUEUE_PER_CORE + 1))),
            dummy_hash: OnceLock::new(),
            in_flight: Mutex::new(HashMap::new()),
            started: Instant::now(),
            metrics,
        }
    }

    /// The key a source is counted under: an IPv4 address, an IPv6 address's /64 (one host
    /// holds a whole /64).
    fn source_key(source: IpAddr) -> IpAddr {
        match source {
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
            v4 => v4,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether `account` may be evaluated for `source` now; the throttled verdict otherwise. An
    /// account is named the same whether it exists or not, so the throttle tells nothing of
    /// which names exist. `None`: the source's own budget (malformed requests, unknown names).
    /// A failure is counted once evaluated ([`failed`](Self::failed)): requests running side by
    /// side can pass the budget by at most the hash queue's places, and a CRM's racing requests
    /// with the right password are never throttled by each other.
    pub fn admit(&self, source: IpAddr, account: Option<&str>) -> Option<Verdict> {
        let now = self.now_ms();
        let source = Self::source_key(source);
        let retry = match account {
            Some(account) => lock(&self.accounts).retry_after_ms(&(source, account.to_owned()), now),
            None => lock(&self.sources).retry_after_ms(&source, now),
        };
        retry.map(|ms| {
            self.metrics.http_auth_throttled.inc();
            Verdict::Throttled(Duration::from_millis(ms))
        })
    }

    /// `account` was evaluated and its credential was wrong.
    pub fn failed(&self, source: IpAddr, account: &str) {
        lock(&self.accounts).failed(&(Self::source_key(source), account.to_owned()), self.now_ms());
    }

    /// A malformed request, or a name that does not exist: counted against its source.
    pub fn malformed(&self, source: IpAddr) {
        lock(&self.sources).failed(&Self::source_key(source), self.now_ms());
    }

    /// A credential proved valid: its failures are forgiven.
    pub fn succeeded(&self, source: IpAddr, account: &str) {
        lock(&self.accounts).succeeded(&(Self::source_key(source), account.to_owned()));
    }

    /// Checks `pwd_md5` against an agent's stored hash (`None`: no such agent, checked against
    /// a dummy hash all the same), on a blocking thread, at most one per core at once. The same
    /// check asked for again while one runs (a CRM's double click, fifty racing requests)
    /// waits for that one's answer instead of hashing again.
    pub async fn verify_hash(&self, pwd_md5: &str, stored: Option<&str>) -> Verdict {
        let known = stored.is_some();
        let stored = match stored {
            Some(stored) => stored.to_owned(),
            None => self.dummy_hash().to_owned(),
        };
        let key = (pwd_md5.to_owned(), stored);
        let leader = {
            let mut in_flight = lock(&self.in_flight);
            match in_flight.get(&key) {
                Some(running) => Err(running.clone()),
                None => {
                    let (answer, running) = watch::channel(None);
                    in_flight.insert(key.clone(), running);
                    Ok(answer)
                }
            }
        };
        let matched = match leader {
            Ok(answer) => {
                let _done = InFlight {
                    credentials: self,
                    key: &key,
                };
                let matched = self.hash(&key.0, &key.1).await;
                let _ = answer.send(Some(matched));
                matched
            }
            Err(mut running) => loop {
                if let Some(matched) = *running.borrow_and_update() {
                    break matched;
                }
                if running.changed().await.is_err() {
                    break None;
                }
            },
        };
        match matched {
            None => Verdict::Busy,
            Some(true) if known => Verdict::Valid,
            Some(_) => Verdict::Invalid,
        }
    }

    /// Runs one hash check (`None`: the queue was full, or the check could not run).
    async fn hash(&self, pwd_md5: &str, stored: &str) -> Option<bool> {
        let Ok(_place) = self.queue.clone().try_acquire_owned() else {
            self.metrics.http_auth_busy.inc();
            return None;
        };
        let permit = self.hash_threads.clone().acquire_owned().await.ok()?;
        self.metrics.http_password_checks.inc();
        let hashing = self.hashing.clone();
        let (pwd_md5, stored) = (pwd_md5.to_owned(), stored.to_owned());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hashing.verify(&pwd_md5, &stored)
        })
        .await
        .ok()
    }

    fn dummy_hash(&self) -> &str {
        self.dummy_hash
            .get_or_init(|| self.hashing.hash("dialbridge: no such account").unwrap_or_default())
    }
}

/// A running check's place in `in_flight`, given up however the check ends (a client that
/// hangs up drops it half way).
struct InFlight<'a> {
    credentials: &'a Credentials,
    key: &'a (String, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.credentials.in_flight).remove(self.key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "credentials_test.rs"]
mod tests;

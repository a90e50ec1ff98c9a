//! Watching carriers between calls: one task per trunk that wants it sends keepalive OPTIONS
//! and keeps our registration with the carrier, feeding the replies to the core's pure
//! [`Keepalive`] and [`TrunkRegistration`] machines. Calls read the result through
//! [`crate::Engine::trunk_status`]; the set of watched trunks is replaced as a whole by
//! [`crate::Engine::watch_trunks`] whenever the configuration is read again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dialbridge_core::trunk_watch::{CarrierReply, Health, Keepalive, RegisterOutcome, TrunkRegistration};
use dialbridge_sip::{CarrierTarget, RegisterAnswer, SipStack};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a keepalive OPTIONS waits for its answer (over UDP, four transmissions).
pub const PROBE_WAIT: Duration = Duration::from_secs(4);
/// How long a REGISTER waits, challenge and answer included.
const REGISTER_WAIT: Duration = Duration::from_secs(32);
/// How long the un-REGISTER of a trunk that stops being watched (or of a server stopping) may
/// take.
const UNREGISTER_WAIT: Duration = Duration::from_secs(3);

/// What to watch of one trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkWatch {
    pub name: String,
    pub target: CarrierTarget,
    /// Send OPTIONS this often; `None`: no keepalive, the trunk is always tried.
    pub keepalive: Option<Duration>,
    pub registration: Option<TrunkAccount>,
}

/// The account a trunk registers as.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkAccount {
    pub user: String,
    pub password: String,
    pub expires_secs: u32,
}

impl std::fmt::Debug for TrunkAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkAccount")
            .field("user", &self.user)
            .field("expires_secs", &self.expires_secs)
            .finish_non_exhaustive()
    }
}

/// What is known of a watched trunk now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrunkStatus {
    /// The keepalive's verdict; `None` when the trunk has no keepalive.
    pub health: Option<Health>,
    /// Whether our last REGISTER succeeded; `None` when the trunk does not register.
    pub registered: Option<bool>,
}

impl TrunkStatus {
    /// Whether calls may be sent to the trunk: not when its keepalive says it is down.
    pub fn usable(&self) -> bool {
        self.health != Some(Health::Down)
    }
}

/// How a watched trunk's tasks are stopped: cancelled, the registration un-registering first
/// when `withdraw` is set.
#[derive(Clone)]
struct Stop {
    cancel: CancellationToken,
    withdraw: Arc<AtomicBool>,
}

impl Stop {
    fn child_of(parent: &CancellationToken) -> Self {
        Self {
            cancel: parent.child_token(),
            withdraw: Arc::new(AtomicBool::new(true)),
        }
    }

    fn withdraws(&self) -> bool {
        self.withdraw.load(Ordering::SeqCst)
    }
}

struct Watched {
    watch: TrunkWatch,
    stop: Stop,
}

impl Watched {
    /// Stops the tasks; a trunk that is only reconfigured keeps its registration (the new
    /// task registers the same binding again, and a late un-REGISTER would remove it).
    fn stop(&self, withdraw: bool) {
        if !self.stop.cancel.is_cancelled() {
            self.stop.withdraw.store(withdraw, Ordering::SeqCst);
            self.stop.cancel.cancel();
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop(true);
    }
}

type Statuses = Arc<Mutex<HashMap<String, TrunkStatus>>>;

#[derive(Default)]
pub(crate) struct TrunkWatcher {
    watched: Mutex<HashMap<String, Watched>>,
    statuses: Statuses,
    /// Parent of every trunk's [`Stop`].
    cancel: CancellationToken,
    tasks: TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TrunkWatcher {
    /// Watches exactly these trunks: new or changed ones (re)start, removed ones stop.
    pub(crate) fn replace(&self, sip: &Arc<SipStack>, trunks: Vec<TrunkWatch>) {
        let mut watched = lock(&self.watched);
        let wanted: HashMap<String, TrunkWatch> = trunks.into_iter().map(|t| (t.name.clone(), t)).collect();
        watched.retain(|name, w| match wanted.get(name) {
            Some(watch) if *watch == w.watch => true,
            Some(_) => {
                w.stop(false);
                false
            }
            None => false,
        });
        lock(&self.statuses).retain(|name, _| watched.contains_key(name));
        for (name, watch) in wanted {
            if watched.contains_key(&name) || (watch.keepalive.is_none() && watch.registration.is_none()) {
                continue;
            }
            let mut status = TrunkStatus::default();
            let stop = Stop::child_of(&self.cancel);
            if let Some(interval) = watch.keepalive {
                status.health = Some(Health::Unknown);
                self.tasks.spawn(keep_alive(
                    sip.clone(),
                    self.statuses.clone(),
                    name.clone(),
                    watch.target.clone(),
                    interval,
                    stop.clone(),
                ));
            }
            if let Some(account) = watch.registration.clone() {
                status.registered = Some(false);
                self.tasks.spawn(keep_registered(
                    sip.clone(),
                    self.statuses.clone(),
                    name.clone(),
                    watch.target.clone(),
                    account,
                    stop.clone(),
                ));
            }
            lock(&self.statuses).insert(name.clone(), status);
            watched.insert(name, Watched { watch, stop });
        }
    }

    pub(crate) fn status(&self, name: &str) -> Option<TrunkStatus> {
        lock(&self.statuses).get(name).copied()
    }

    pub(crate) fn statuses(&self) -> Vec<(String, TrunkStatus)> {
        let mut all: Vec<_> = lock(&self.statuses).iter().map(|(n, s)| (n.clone(), *s)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Stops watching every trunk, waiting (a few seconds at most) for the registrations to
    /// be withdrawn from their carriers.
    pub(crate) async fn stop(&self) {
        lock(&self.watched).drain().for_each(|(_, w)| w.stop(true));
        self.cancel.cancel();
        self.tasks.close();
        let wait = UNREGISTER_WAIT + Duration::from_secs(1);
        if tokio::time::timeout(wait, self.tasks.wait()).await.is_err() {
            tracing::warn!(tasks = self.tasks.len(), "trunk tasks still running at shutdown");
        }
    }
}

fn update(statuses: &Statuses, name: &str, change: impl FnOnce(&mut TrunkStatus)) {
    if let Some(status) = lock(statuses).get_mut(name) {
        change(status);
    }
}

async fn keep_alive(
    sip: Arc<SipStack>,
    statuses: Statuses,
    name: String,
    target: CarrierTarget,
    interval: Duration,
    stop: Stop,
) {
    let mut keepalive = Keepalive::new();
    loop {
        let probe = tokio::select! {
            probe = sip.options(&target, PROBE_WAIT) => probe,
            () = stop.cancel.cancelled() => return,
        };
        let reply = match probe {
            Ok(Some(code)) => CarrierReply::Answered(code),
            Ok(None) => CarrierReply::NoAnswer,
            Err(e) => {
                tracing::debug!(trunk = %name, error = %e, "keepalive OPTIONS not sent");
                CarrierReply::NoAnswer
            }
        };
        if let Some(health) = keepalive.record(reply) {
            match health {
                Health::Down => tracing::warn!(
                    trunk = %name, destination = %target.destination, ?reply,
                    "trunk down: calls skip it until it answers OPTIONS again"
                ),
                _ => tracing::info!(trunk = %name, destination = %target.destination, ?reply, "trunk up"),
            }
            update(&statuses, &name, |s| s.health = Some(health));
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancel.cancelled() => return,
        }
    }
}

async fn keep_registered(
    sip: Arc<SipStack>,
    statuses: Statuses,
    name: String,
    target: CarrierTarget,
    account: TrunkAccount,
    stop: Stop,
) {
    let mut machine = TrunkRegistration::new(account.expires_secs);
    let mut client = sip.carrier_registration(target, account.user, account.password);
    loop {
        let was_registered = machine.is_registered();
        let answer = tokio::select! {
            answer = client.register(machine.requested_secs(), REGISTER_WAIT) => answer,
            () = stop.cancel.cancelled() => break,
        };
        let outcome = match answer {
            Ok(RegisterAnswer::Registered { granted_secs }) => RegisterOutcome::Registered { granted_secs },
            Ok(RegisterAnswer::IntervalTooBrief { min_expires }) => RegisterOutcome::IntervalTooBrief { min_expires },
            Ok(RegisterAnswer::Refused(code)) => RegisterOutcome::Refused(code),
            Ok(RegisterAnswer::NoAnswer) => RegisterOutcome::NoAnswer,
            Err(e) => {
                tracing::debug!(trunk = %name, error = %e, "REGISTER not sent");
                RegisterOutcome::NoAnswer
            }
        };
        let wait = machine.record(outcome);
        match (was_registered, machine.is_registered()) {
            (false, true) => {
                tracing::info!(trunk = %name, aor = %client.aor(), ?outcome, "registered with the carrier")
            }
            (_, false) => tracing::warn!(
                trunk = %name, aor = %client.aor(), ?outcome, retry_in = ?wait,
                failures = machine.consecutive_failures(), "registration with the carrier failed"
            ),
            (true, true) => tracing::debug!(trunk = %name, ?outcome, "registration refreshed"),
        }
        let registered = machine.is_registered();
        update(&statuses, &name, |s| s.registered = Some(registered));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancel.cancelled() => break,
        }
    }
    // Withdrawn rather than left to lapse: the carrier stops sending to an address that may
    // not answer any more.
    if stop.withdraws() && machine.is_registered() {
        match client.register(0, UNREGISTER_WAIT).await {
            Ok(RegisterAnswer::Registered { .. }) => {
                tracing::info!(trunk = %name, aor = %client.aor(), "un-registered from the carrier")
            }
            other => {
                tracing::warn!(trunk = %name, aor = %client.aor(), ?other, "un-registering from the carrier failed")
            }
        }
    }
}

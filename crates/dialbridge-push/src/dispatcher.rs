//! Delivers the outbox: polls due deliveries (and wakes early when the store's feed says an event
//! was committed),
//! sends each one to its target — at most a few at a time per target, one at a time per
//! (target, call) so order holds — and records the result: delivered, retry later with
//! exponential backoff and jitter, or dead once the horizon has passed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialbridge_core::{PushCharset, PushFormat, PushMethod, PushTarget};
use dialbridge_store::{DueDelivery, Store, StoreError};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{fields, sign};

#[derive(Debug, Clone, Copy)]
pub struct DispatcherSettings {
    pub poll_interval: Duration,
    /// How long a delivery is retried before it is dead-lettered.
    pub horizon: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Requests in flight per target at most.
    pub per_target: usize,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            horizon: Duration::from_secs(24 * 3600),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            per_target: 4,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

type StreamKey = (i64, String, String);

#[derive(Default)]
struct InFlight {
    streams: HashSet<StreamKey>,
    per_target: HashMap<(i64, String), usize>,
    breakers: HashMap<(i64, String), Breaker>,
}

/// A per-target circuit breaker: after `TRIP_AFTER` failures in a row the target is left alone
/// for a cool-down (its deliveries stay pending), so a dead CRM costs no connections or
/// timeouts; one success closes it again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    failures_in_a_row: u32,
    open_until: Option<i64>,
}

const TRIP_AFTER: u32 = 5;
const COOL_DOWN_MS: i64 = 30_000;

impl Breaker {
    pub fn allows(&self, now: i64) -> bool {
        self.open_until.is_none_or(|until| now >= until)
    }

    pub fn record(&mut self, success: bool, now: i64) {
        if success {
            *self = Breaker::default();
        } else {
            self.failures_in_a_row += 1;
            if self.failures_in_a_row >= TRIP_AFTER {
                self.open_until = Some(now + COOL_DOWN_MS);
            }
        }
    }
}

pub struct Dispatcher {
    stop: CancellationToken,
    task: JoinHandle<()>,
    deliveries: TaskTracker,
}

/// How long [`Dispatcher::stop`] lets deliveries in flight finish.
const DRAIN: Duration = Duration::from_secs(5);

impl Dispatcher {
    pub fn start(store: Store, settings: DispatcherSettings) -> Self {
        let stop = CancellationToken::new();
        let deliveries = TaskTracker::new();
        let task = tokio::spawn(run(store, settings, stop.clone(), deliveries.clone()));
        Self { stop, task, deliveries }
    }

    /// Takes no new delivery, and lets those in flight finish for up to [`DRAIN`]. One still
    /// in flight then is left to the outbox: still pending there, it is sent again (at least
    /// once) by the next start.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        self.deliveries.close();
        if tokio::time::timeout(DRAIN, self.deliveries.wait()).await.is_err() {
            tracing::warn!(
                deliveries = self.deliveries.len(),
                "push deliveries still in flight at shutdown are left to the outbox"
            );
        }
    }
}

async fn run(store: Store, settings: DispatcherSettings, stop: CancellationToken, deliveries: TaskTracker) {
    // Woken by every committed event, and by its own deliveries finishing (a stream's next
    // event may be due then); the poll picks up retries whose time came.
    let mut events = store.subscribe_events();
    let wake = Arc::new(Notify::new());
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "pushes are off: no HTTP client");
            return;
        }
    };
    let in_flight = Arc::new(Mutex::new(InFlight::default()));
    loop {
        tokio::select! {
            () = tokio::time::sleep(settings.poll_interval) => {}
            () = wake.notified() => {}
            event = events.recv() => {
                if matches!(event, Err(RecvError::Closed)) {
                    return;
                }
                // One look at the outbox covers every event committed so far.
                while !matches!(events.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
            }
            () = stop.cancelled() => return,
        }
        let due = match store.begin_read().await {
            Ok(mut tx) => tx.due_deliveries(now_ms(), 500).await,
            Err(e) => Err(e),
        };
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                continue;
            }
        };
        for delivery in due {
            let stream: StreamKey = (
                delivery.enterprise_id.get(),
                delivery.target_name.clone(),
                delivery.stream_key.clone(),
            );
            let target_key = (delivery.enterprise_id.get(), delivery.target_name.clone());
            {
                let mut f = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                let busy = f.per_target.get(&target_key).copied().unwrap_or(0);
                let closed = f.breakers.get(&target_key).is_none_or(|b| b.allows(now_ms()));
                if f.streams.contains(&stream) || busy >= settings.per_target || !closed {
                    continue;
                }
                f.streams.insert(stream.clone());
                *f.per_target.entry(target_key.clone()).or_default() += 1;
            }
            let (store, client, in_flight, wake) = (store.clone(), client.clone(), in_flight.clone(), wake.clone());
            deliveries.spawn(async move {
                let success = match deliver(&store, &client, &settings, &delivery).await {
                    Ok(success) => success,
                    Err(e) => {
                        tracing::warn!(event = delivery.event_id, target = %delivery.target_name, error = %e, "cannot record a push result");
                        false
                    }
                };
                let mut f = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                f.breakers
                    .entry(target_key.clone())
                    .or_default()
                    .record(success, now_ms());
                f.streams.remove(&stream);
                if let Some(n) = f.per_target.get_mut(&target_key) {
                    *n = n.saturating_sub(1);
                }
                drop(f);
                // The stream's next event may be due now.
                wake.notify_one();
            });
        }
    }
}

/// The request for one delivery: URL (the target's own query kept), body, signed content.
fn request(
    target: &PushTarget,
    delivery: &DueDelivery,
    params: &[(String, String)],
) -> (String, Option<String>, String) {
    match (target.format, target.method) {
        (PushFormat::Json, _) => {
            let data: serde_json::Value = serde_json::from_str(&delivery.payload).unwrap_or_default();
            let body = serde_json::json!({
                "type": delivery.event_type,
                "id": format!("evt_{}", delivery.event_id),
                "stream": delivery.stream_key,
                "time": delivery.created_at,
                "data": data,
            })
            .to_string();
            (target.url.clone(), Some(body.clone()), body)
        }
        (PushFormat::Legacy, PushMethod::Post) => {
            let body = form(params, target.charset);
            (target.url.clone(), Some(body.clone()), body)
        }
        (PushFormat::Legacy, PushMethod::Get) => {
            let query = form(params, target.charset);
            let separator = if target.url.contains('?') { '&' } else { '?' };
            (format!("{}{separator}{query}", target.url), None, query)
        }
    }
}

/// The fields form-encoded, their bytes in `charset`.
fn form(params: &[(String, String)], charset: PushCharset) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    if charset == PushCharset::Gbk {
        serializer.encoding_override(Some(&gbk_bytes));
    }
    serializer.extend_pairs(params).finish()
}

fn gbk_bytes(text: &str) -> std::borrow::Cow<'_, [u8]> {
    encoding_rs::GBK.encode(text).0
}

/// The `Content-Type` of a push, naming the charset of a form when it is not UTF-8.
fn content_type(target: &PushTarget) -> &'static str {
    match (target.format, target.charset) {
        (PushFormat::Json, _) => "application/json",
        (PushFormat::Legacy, PushCharset::Utf8) => "application/x-www-form-urlencoded",
        (PushFormat::Legacy, PushCharset::Gbk) => "application/x-www-form-urlencoded; charset=GBK",
    }
}

/// Sends one delivery and records the result; `Ok(true)` when the target answered 2xx (or there
/// was nothing to send).
async fn deliver(
    store: &Store,
    client: &reqwest::Client,
    settings: &DispatcherSettings,
    d: &DueDelivery,
) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    if !tx.delivery_pending(d.event_id, d.enterprise_id, &d.target_name).await? {
        return Ok(true);
    }
    let target = tx
        .push_targets(d.enterprise_id)
        .await?
        .into_iter()
        .find(|t| t.name == d.target_name);
    let Some(target) = target else {
        tx.mark_failed(d.event_id, d.enterprise_id, &d.target_name, "push target removed", None)
            .await?;
        tx.commit().await?;
        return Ok(true);
    };
    let (secret, previous_secret) = tx.push_target_secrets(d.enterprise_id, &d.target_name).await?;
    tx.commit().await?;

    let params = fields::parameters(&d.payload, &target.name_mapping);
    let (url, body, signed) = request(&target, d, &params);
    let id = format!("evt_{}", d.event_id);
    let timestamp = now_ms() / 1000;
    let mut builder = match body {
        Some(body) => client
            .post(&url)
            .header("content-type", content_type(&target))
            .body(body),
        None => client.get(&url),
    }
    .timeout(Duration::from_millis(u64::from(target.timeout_ms)))
    .header("webhook-id", &id)
    .header("webhook-timestamp", timestamp.to_string());
    // During a rotation both secrets sign (space-separated, as Standard Webhooks allows).
    let signatures: Vec<String> = std::iter::once(&secret)
        .chain(previous_secret.as_ref())
        .filter_map(|key| sign::signature(key, &id, timestamp, &signed))
        .collect();
    if !signatures.is_empty() {
        builder = builder.header("webhook-signature", signatures.join(" "));
    }
    let outcome = match builder.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
        Err(e) if e.is_timeout() => Err("timed out".to_owned()),
        Err(e) => Err(format!("connection: {e}")),
    };
    let mut tx = store.begin().await?;
    let success = outcome.is_ok();
    match outcome {
        Ok(()) => {
            tracing::debug!(event = d.event_id, target = %d.target_name, "push delivered");
            tx.mark_delivered(d.event_id, d.enterprise_id, &d.target_name).await?;
        }
        Err(error) => {
            let next = next_attempt(settings, d.attempts, d.created_at, now_ms());
            tracing::info!(event = d.event_id, target = %d.target_name, %error, attempt = d.attempts + 1, dead = next.is_none(), "push failed");
            tx.mark_failed(d.event_id, d.enterprise_id, &d.target_name, &error, next)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(success)
}

/// When to try again after `attempts` failures: exponential backoff with ±20 % jitter, or
/// `None` once the event is older than the horizon.
pub fn next_attempt(settings: &DispatcherSettings, attempts: u32, created_at: i64, now: i64) -> Option<i64> {
    let horizon = i64::try_from(settings.horizon.as_millis()).unwrap_or(i64::MAX);
    if now.saturating_sub(created_at) >= horizon {
        return None;
    }
    let base = settings.first_backoff.as_millis() as f64 * 2f64.powi(attempts.min(30) as i32);
    let capped = base.min(settings.max_backoff.as_millis() as f64);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    Some(now + (capped * jitter) as i64)
}

#[cfg(test)]
#[path = "dispatcher_test.rs"]
mod tests;

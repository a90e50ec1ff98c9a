//! The accept loop: caps per source and in all, each connection served by hyper through a
//! [`Guarded`] stream, the client's address given to the application as axum's `ConnectInfo`
//! (from `X-Forwarded-For` when the connection comes from a trusted proxy), and a graceful stop.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::guard::{Guarded, Timeouts};

/// Builds the whole HTTP response (status line, headers, body) to an over-long head, from the
/// head's first bytes (its request line's start): the application knows what its paths answer.
pub type Rejection = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// What one server lets its clients hold.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections open at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one address (trusted proxies count only against the
    /// total).
    pub max_connections_per_source: usize,
    /// From a head's first byte to its end.
    pub header_timeout: Duration,
    /// From the end of a head to the end of its body.
    pub body_timeout: Duration,
    /// Without a byte either way between requests (or while a response is awaited).
    pub idle_timeout: Duration,
    /// The longest head (request line and headers) taken.
    pub max_head_bytes: usize,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
}

/// How long the connections in flight may take to finish once told to stop.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// At most one warning per this long about refused connections or exhausted descriptors.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves; then takes no more connections, lets
/// those in flight finish their request (at most [`STOP_WAIT`]) and returns.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    reject: Rejection,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let counts = Arc::new(Counts::default());
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut warned = Warnings::default();
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of descriptors (or memory): wait for connections to close rather than spin.
                backoff = (backoff * 2).clamp(Duration::from_millis(20), Duration::from_secs(1));
                warned.maybe(
                    || tracing::warn!(error = %e, open = counts.total(), "cannot accept HTTP connections; backing off"),
                );
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let trusted = limits.trusted_proxies.iter().any(|net| net.contains(&peer.ip()));
        let per_source_cap = if trusted {
            usize::MAX
        } else {
            limits.max_connections_per_source
        };
        let Some(slot) = counts.take(peer.ip(), limits.max_connections, per_source_cap) else {
            warned.maybe(|| tracing::warn!(source = %peer.ip(), open = counts.total(), "HTTP connection cap reached: connections refused"));
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let timeouts = Timeouts {
            header: limits.header_timeout,
            body: limits.body_timeout,
            idle: limits.idle_timeout,
        };
        let io = TokioIo::new(Guarded::new(stream, limits.max_head_bytes, timeouts, reject.clone()));
        let proxies = limits.clone();
        let service = app
            .clone()
            .map_request(move |mut request: axum::extract::Request<Incoming>| {
                let client = if trusted {
                    forwarded_client(&request, &proxies.trusted_proxies).unwrap_or(peer)
                } else {
                    peer
                };
                request.extensions_mut().insert(ConnectInfo(client));
                request
            });
        let stop = stop.clone();
        let header_timeout = limits.header_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(io, TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
    stop.cancel();
    connections.close();
    if tokio::time::timeout(STOP_WAIT, connections.wait()).await.is_err() {
        tracing::warn!("HTTP connections still open at shutdown: closed");
    }
    Ok(())
}

/// Errors of one connection that came and went (the listener itself is fine).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

/// The client a trusted proxy names: the last address in `X-Forwarded-For` that is not itself
/// a trusted proxy (what came before it could be forged by the client).
fn forwarded_client<B>(request: &axum::extract::Request<B>, proxies: &[IpNet]) -> Option<SocketAddr> {
    let mut addresses: Vec<IpAddr> = Vec::new();
    for value in request.headers().get_all("x-forwarded-for") {
        for part in value.to_str().ok()?.split(',') {
            addresses.push(part.trim().parse().ok()?);
        }
    }
    addresses
        .into_iter()
        .rev()
        .find(|ip| !proxies.iter().any(|net| net.contains(ip)))
        .map(|ip| SocketAddr::new(ip, 0))
}

/// Open connections, in all and per source.
#[derive(Default)]
struct Counts {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl Counts {
    fn total(&self) -> usize {
        self.open.lock().map_or(0, |open| open.total)
    }

    /// A slot for one more connection from `source`, if both caps allow it.
    fn take(self: &Arc<Self>, source: IpAddr, max_total: usize, max_per_source: usize) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let from_source = open.by_source.get(&source).copied().unwrap_or(0);
        if open.total >= max_total || from_source >= max_per_source {
            return None;
        }
        open.total += 1;
        open.by_source.insert(source, from_source + 1);
        Some(Slot {
            counts: self.clone(),
            source,
        })
    }
}

/// One open connection, given back when dropped.
struct Slot {
    counts: Arc<Counts>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(count) = open.by_source.get_mut(&self.source) {
                *count -= 1;
                if *count == 0 {
                    open.by_source.remove(&self.source);
                }
            }
        }
    }
}

/// Rate-limits a warning that a flood would otherwise repeat for every connection.
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
}

impl Warnings {
    fn maybe(&mut self, warn: impl FnOnce()) {
        let now = Instant::now();
        if self.last.is_none_or(|last| now.duration_since(last) >= WARN_EVERY) {
            self.last = Some(now);
            warn();
        }
    }
}

//! The accept loop: caps per source and in all, each connection served by hyper through a
//! [`Guarded`] stream, the client's address given to the application as axum's `ConnectInfo`
//! (from `X-Forwarded-For` when the connection comes from a trusted proxy), and a graceful stop.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use dialbridge_core::caps::{AcceptBackoff, AcceptError, Caps, ConnectionCaps};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::guard::{Guarded, Timeouts};
use crate::tls::Tls;

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
const WARN_EVERY_MS: u64 = 10_000;

/// Serves `app` on `listener` until `shutdown` resolves; then takes no more connections, lets
/// those in flight finish their request (at most [`STOP_WAIT`]) and returns.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    tls: Option<Tls>,
    reject: Rejection,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let counts = ConnectionCaps::new();
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let started = Instant::now();
    let now_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut errors = AcceptBackoff::new(WARN_EVERY_MS);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                errors.accepted();
                accepted
            }
            Err(e) => match errors.failed(e.raw_os_error(), now_ms()) {
                AcceptError::Skip => continue,
                AcceptError::BackOff { wait, warn } => {
                    // Out of descriptors (or memory): wait for connections to close rather than spin.
                    if warn {
                        tracing::warn!(error = %e, open = counts.open(), "cannot accept HTTP connections; backing off");
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
        };
        let trusted = limits.trusted_proxies.iter().any(|net| net.contains(&peer.ip()));
        let caps = Caps {
            total: limits.max_connections,
            per_source: if trusted {
                usize::MAX
            } else {
                limits.max_connections_per_source
            },
        };
        let Some(slot) = counts.take(peer.ip(), caps) else {
            if errors.may_warn(now_ms()) {
                tracing::warn!(source = %peer.ip(), open = counts.open(), "HTTP connection cap reached: connections refused");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let timeouts = Timeouts {
            header: limits.header_timeout,
            body: limits.body_timeout,
            idle: limits.idle_timeout,
        };
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
        let (reject, max_head_bytes, tls) = (reject.clone(), limits.max_head_bytes, tls.clone());
        connections.spawn(async move {
            let Some(Tls(acceptor)) = tls else {
                let io = Guarded::new(stream, max_head_bytes, timeouts, reject, slot);
                return serve_connection(io, service, stop, peer).await;
            };
            // The handshake is timed like a head: a stranger cannot hold a connection by
            // starting one and stopping.
            match tokio::time::timeout(timeouts.header, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let io = Guarded::new(stream, max_head_bytes, timeouts, reject, slot);
                    serve_connection(io, service, stop, peer).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
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

/// Serves one connection's requests until it ends, or gracefully once `stop` is cancelled.
async fn serve_connection<S, A>(io: Guarded<S>, service: A, stop: CancellationToken, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    A: tower::Service<
            axum::extract::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    A::Future: Send + 'static,
{
    // No timer of hyper's: the guarded stream times every phase (hyper's header timeout would
    // also close idle keep-alive connections).
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
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
}

/// The client a trusted proxy names: read from the right, the first address that is not one
/// of our proxies (what lies left of it could be written by the client itself); `None` when that
/// entry is not an address.
fn forwarded_client<B>(request: &axum::extract::Request<B>, proxies: &[IpNet]) -> Option<SocketAddr> {
    let values: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    for entry in values.iter().rev().flat_map(|value| value.rsplit(',')) {
        let ip: IpAddr = entry.trim().parse().ok()?;
        if !proxies.iter().any(|net| net.contains(&ip)) {
            return Some(SocketAddr::new(ip, 0));
        }
    }
    None
}

#[cfg(test)]
#[path = "listener_test.rs"]
mod tests;

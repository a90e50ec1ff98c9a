//! SIP over TCP accepted by dialbridge rather than by the SIP library, whose own loop has no
//! cap and spins when descriptors run out: a global and a per-source cap, a connection that
//! sends nothing within the first-message time closed before the library ever sees it (it
//! allocates two 64 KiB buffers for each connection it serves), one that has not completed a
//! message by then shut down, and a full descriptor table met with a back-off and one warning
//! every 10 s. The library still owns each connection once handed over: it reads, parses,
//! answers and retires it (and closes it after its own idle timeout).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialbridge_core::caps::{Caps, ConnectionCaps, Slot, Throttle};
use rsipstack::platform::CancellationToken;
use rsipstack::transaction::endpoint::{EndpointInner, TransportEventInspector};
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What SIP-over-TCP clients may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    /// How long a new connection may take to send its first complete message.
    pub first_message: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 2048,
            max_connections_per_source: 256,
            first_message: Duration::from_secs(5),
        }
    }
}

const WARN_EVERY_MS: u64 = 10_000;

/// The connections that have not completed a message yet, by their stream's identity: the
/// library's transport events mark them done.
#[derive(Default, Clone)]
pub(crate) struct AwaitingFirstMessage(Arc<Mutex<HashMap<usize, CancellationToken>>>);

impl AwaitingFirstMessage {
    fn key(connection: &TcpConnection) -> usize {
        Arc::as_ptr(&connection.inner) as usize
    }

    fn watch(&self, connection: &TcpConnection) -> CancellationToken {
        let done = CancellationToken::new();
        if let Ok(mut awaiting) = self.0.lock() {
            awaiting.insert(Self::key(connection), done.clone());
        }
        done
    }

    fn forget(&self, connection: &TcpConnection) {
        if let Ok(mut awaiting) = self.0.lock() {
            awaiting.remove(&Self::key(connection));
        }
    }
}

/// Sees each complete message the library parsed (it runs inline in the library's event
/// loop: a map lookup, nothing more) and passes every event on unchanged.
#[async_trait::async_trait]
impl TransportEventInspector for AwaitingFirstMessage {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        if let TransportEvent::Incoming(_, SipConnection::Tcp(connection), _) = &event {
            if let Some(done) = self.0.lock().ok().and_then(|mut a| a.remove(&Self::key(connection))) {
                done.cancel();
            }
        }
        Some(event)
    }
}

/// Accepts until `stop`, handing each connection within the caps to the library.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    endpoint: Arc<EndpointInner>,
    advertised: SipAddr,
    limits: TcpLimits,
    awaiting: AwaitingFirstMessage,
    stop: CancellationToken,
) {
    let open = ConnectionCaps::new();
    let caps = Caps {
        total: limits.max_connections,
        per_source: limits.max_connections_per_source,
    };
    let started = Instant::now();
    let mut warned = Throttle::new(WARN_EVERY_MS);
    let mut warn_now = move || warned.allow(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(20), Duration::from_secs(1));
                if warn_now() {
                    tracing::warn!(error = %e, open = open.open(), "cannot accept SIP TCP connections; backing off");
                }
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Some(slot) = open.take(peer.ip(), caps) else {
            if warn_now() {
                tracing::warn!(source = %peer.ip(), open = open.open(), "SIP TCP connection cap reached: connections refused");
            }
            continue;
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            slot,
            endpoint.clone(),
            advertised.clone(),
            limits.first_message,
            awaiting.clone(),
            stop.clone(),
        ));
    }
}

/// One connection: handed to the library once it sends something, shut down if no complete
/// message came within `first_message`, its place given back when the library retires it.
#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    _slot: Slot,
    endpoint: Arc<EndpointInner>,
    advertised: SipAddr,
    first_message: Duration,
    awaiting: AwaitingFirstMessage,
    stop: CancellationToken,
) {
    let deadline = Instant::now() + first_message;
    // Silent (or gone): closed here, never given the library's buffers. A peek, because
    // readiness alone is reported for a socket with nothing to read.
    let mut first_byte = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first_byte)).await {
        Ok(Ok(1..)) => {}
        Ok(_) => return,
        Err(_) => {
            tracing::debug!(%peer, "SIP TCP connection sent nothing: closed");
            return;
        }
    }
    // A second handle on the socket, to shut it down from here: the library has no call
    // that ends a connection it serves.
    let Ok((stream, ours)) = split_handle(stream) else {
        return;
    };
    let retired = stop.child_token();
    let Ok(connection) = TcpConnection::from_stream(stream, advertised, Some(retired.clone())) else {
        return;
    };
    let completed = awaiting.watch(&connection);
    endpoint
        .transport_layer
        .add_connection(SipConnection::Tcp(connection.clone()));
    tokio::select! {
        () = completed.cancelled() => {}
        () = retired.cancelled() => {}
        () = tokio::time::sleep_until(deadline) => {
            tracing::debug!(%peer, "SIP TCP connection sent no complete message in time: closed");
            let _ = ours.shutdown(std::net::Shutdown::Both);
        }
    }
    awaiting.forget(&connection);
    // The library cancels the connection's token when it retires it (or everything stops).
    retired.cancelled().await;
}

/// The stream, and a duplicate of its socket.
fn split_handle(stream: TcpStream) -> io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let ours = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, ours))
}

/// Errors of one connection that came and went (the listener itself is fine).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

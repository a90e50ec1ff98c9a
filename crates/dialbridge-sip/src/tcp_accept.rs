//! SIP over TCP accepted by dialbridge rather than by the SIP library, whose own loop has no
//! cap and spins when descriptors run out: a global and a per-source cap, a connection that
//! sends nothing within the first-message time closed before the library ever sees it (it
//! allocates two 64 KiB buffers for each connection it serves), one that has not completed a
//! message by then shut down, one no phone is registered over shut down once it goes without a
//! message for the idle time, and a full descriptor table met with a back-off and one warning
//! every 10 s. The library still owns each connection once handed over: it reads, parses,
//! answers and retires it (and closes it after its own idle timeout).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialbridge_core::caps::{AcceptBackoff, AcceptError, Caps, ConnectionCaps, Slot};
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
    /// How long a connection no phone is registered over may go without a complete message
    /// (keepalive line breaks do not count).
    pub idle_unregistered: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 2048,
            max_connections_per_source: 256,
            first_message: Duration::from_secs(5),
            idle_unregistered: Duration::from_secs(60),
        }
    }
}

/// Whether a phone is registered over the connection from this peer.
pub(crate) type Registered = Arc<dyn Fn(SocketAddr) -> bool + Send + Sync>;

/// How often a connection no phone is registered over is checked for idleness.
const IDLE_CHECK: Duration = Duration::from_secs(2);

const WARN_EVERY_MS: u64 = 10_000;

/// What the library's transport events tell of each connection handed to it, by its stream's
/// identity: when it completed its first message, and its latest.
#[derive(Default, Clone)]
pub(crate) struct ConnectionWatch(Arc<Mutex<HashMap<usize, Watched>>>);

struct Watched {
    first_message: CancellationToken,
    last_message: Instant,
}

impl ConnectionWatch {
    fn key(connection: &TcpConnection) -> usize {
        Arc::as_ptr(&connection.inner) as usize
    }

    fn watch(&self, connection: &TcpConnection) -> CancellationToken {
        let first_message = CancellationToken::new();
        if let Ok(mut watched) = self.0.lock() {
            watched.insert(
                Self::key(connection),
                Watched {
                    first_message: first_message.clone(),
                    last_message: Instant::now(),
                },
            );
        }
        first_message
    }

    fn last_message(&self, connection: &TcpConnection) -> Option<Instant> {
        self.0.lock().ok()?.get(&Self::key(connection)).map(|w| w.last_message)
    }

    fn forget(&self, connection: &TcpConnection) {
        if let Ok(mut watched) = self.0.lock() {
            watched.remove(&Self::key(connection));
        }
    }
}

/// Sees each complete message the library parsed (it runs inline in the library's event
/// loop: a map lookup, nothing more) and passes every event on unchanged.
#[async_trait::async_trait]
impl TransportEventInspector for ConnectionWatch {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        if let TransportEvent::Incoming(_, SipConnection::Tcp(connection), _) = &event {
            if let Some(watched) = self
                .0
                .lock()
                .ok()
                .as_mut()
                .and_then(|w| w.get_mut(&Self::key(connection)))
            {
                watched.first_message.cancel();
                watched.last_message = Instant::now();
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
    watch: ConnectionWatch,
    registered: Registered,
    stop: CancellationToken,
) {
    let open = ConnectionCaps::new();
    let caps = Caps {
        total: limits.max_connections,
        per_source: limits.max_connections_per_source,
    };
    let started = Instant::now();
    let now_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut errors = AcceptBackoff::new(WARN_EVERY_MS);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
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
                        tracing::warn!(error = %e, open = open.open(), "cannot accept SIP TCP connections; backing off");
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
        };
        let Some(slot) = open.take(peer.ip(), caps) else {
            if errors.may_warn(now_ms()) {
                tracing::warn!(source = %peer.ip(), open = open.open(), "SIP TCP connection cap reached: connections refused");
            }
            continue;
        };
        tokio::spawn(serve_connection(
            Accepted { stream, peer, slot },
            endpoint.clone(),
            advertised.clone(),
            limits,
            (watch.clone(), registered.clone()),
            stop.clone(),
        ));
    }
}

/// An accepted connection and its place under the caps.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
}

/// One connection: handed to the library once it sends something, shut down if no complete
/// message came within the first-message time, or later if no phone is registered over it and
/// it stays without a message for the idle time; its place given back when the library
/// retires it.
async fn serve_connection(
    accepted: Accepted,
    endpoint: Arc<EndpointInner>,
    advertised: SipAddr,
    limits: TcpLimits,
    (watch, registered): (ConnectionWatch, Registered),
    stop: CancellationToken,
) {
    let Accepted {
        stream,
        peer,
        slot: _slot,
    } = accepted;
    let deadline = Instant::now() + limits.first_message;
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
    let first_message = watch.watch(&connection);
    endpoint
        .transport_layer
        .add_connection(SipConnection::Tcp(connection.clone()));
    let shut = || {
        let _ = ours.shutdown(std::net::Shutdown::Both);
    };
    tokio::select! {
        () = first_message.cancelled() => {}
        () = retired.cancelled() => {}
        () = tokio::time::sleep_until(deadline) => {
            tracing::debug!(%peer, "SIP TCP connection sent no complete message in time: closed");
            shut();
        }
    }
    while !retired.is_cancelled() {
        tokio::select! {
            () = retired.cancelled() => {}
            () = tokio::time::sleep(IDLE_CHECK) => {
                let idle = watch.last_message(&connection).map_or(Duration::MAX, |at| at.elapsed());
                if idle >= limits.idle_unregistered && !registered(peer) {
                    tracing::debug!(%peer, "SIP TCP connection idle with no phone registered over it: closed");
                    shut();
                    break;
                }
            }
        }
    }
    watch.forget(&connection);
    drop(ours);
    // The library cancels the connection's token when it retires it (or everything stops).
    retired.cancelled().await;
}

/// The stream, and a duplicate of its socket.
fn split_handle(stream: TcpStream) -> io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let ours = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, ours))
}

//! With `client.rs`, the place that knows rsipstack: starting the endpoint on UDP/TCP, routing
//! incoming requests (REGISTER to the registrar, in-dialog requests to their dialog), and
//! placing outgoing INVITE legs. Nothing outside these two modules sees an rsipstack type, so
//! an upgrade or a swap of the library touches them only.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use ipnet::IpNet;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{Dialog, DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::{InviteAsyncResult, InviteOption};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::{HasHeaders, Header, HeadersExt, Method, StatusCode};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::tcp_listener::TcpListenerConnection;

use crate::tcp_accept::{ConnectionWatch, TcpLimits};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

pub use crate::message::InfoDigit;
use crate::message::{info_digit, parse_contacts, uri_user};
pub use crate::message::{Refresher, SessionExpires, SessionTimer};
use crate::registrar::{
    Contacts, RegisterReply, RegisterRequest, Registrar, RegistrarSettings, RegistrationRefusal, SendTarget,
    SipTransport,
};
use crate::unsolicited::{SourceLimiter, UnsolicitedSettings};

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot listen on {address} ({transport:?}): {message}")]
    Listen {
        address: SocketAddr,
        transport: SipTransport,
        message: String,
    },
    #[error("bad SIP URI {0:?}")]
    BadUri(String),
    #[error("SIP: {0}")]
    Stack(String),
}

impl From<rsipstack::Error> for SipError {
    fn from(e: rsipstack::Error) -> Self {
        SipError::Stack(e.to_string())
    }
}

/// Looks up SIP accounts (the registrar's passwords) and keeps their registrations. The SIP
/// layer knows no tenants: the engine maps an address-of-record to whatever owns it.
pub trait AccountDirectory: Send + Sync + 'static {
    fn sip_password(&self, aor: &str) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>>;

    /// An address-of-record's bindings changed (a REGISTER added, refreshed or removed some):
    /// these are all its live bindings now. Called on the SIP path: it must not wait (keep the
    /// latest and write it elsewhere). By default registrations live in memory only.
    fn bindings_changed(&self, aor: &str, bindings: Vec<KeptBinding>) {
        let _ = (aor, bindings);
    }
}

/// A registration binding as it is kept across restarts ([`SipStack::restore_bindings`]).
pub type KeptBinding = crate::registrar::Binding<SocketAddr>;

#[derive(Debug, Clone)]
pub struct SipConfig {
    pub listen: SocketAddr,
    pub transports: Vec<SipTransport>,
    /// The address written into Via, Contact and SDP; `None`: the listen address.
    pub public_ip: Option<IpAddr>,
    pub user_agent: String,
    /// The domain part of our Call-IDs.
    pub call_id_domain: String,
    pub registrar: RegistrarSettings,
    /// RFC 3261 T1; INVITE and non-INVITE timeouts are 64·T1. Tests shorten it.
    pub t1: Duration,
    pub server_key: [u8; 32],
    pub unsolicited: UnsolicitedSettings,
    /// What SIP-over-TCP clients may hold.
    pub tcp: TcpLimits,
}

/// Where a registered phone is, as the registrar learnt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The Contact URI exactly as registered: the Request-URI of calls to the phone.
    pub contact: String,
    /// Where to send: the REGISTER's source (UDP) or its connection's peer (TCP).
    pub destination: SocketAddr,
    pub transport: SipTransport,
}

/// Counts that must return to zero when no call is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipCounts {
    pub dialogs: usize,
    pub legs: usize,
    pub bindings: usize,
    /// Requests outside any dialog of ours (not REGISTER) answered with a refusal, and those
    /// dropped unanswered because their source sent too many, since the start.
    pub unsolicited_answered: u64,
    pub unsolicited_dropped: u64,
    /// REGISTERs refused, by [`RegistrationRefusal::index`].
    pub registrations_refused: [u64; RegistrationRefusal::ALL.len()],
    /// Requests inside a carrier's call refused (403) for not coming from its addresses.
    pub requests_from_wrong_source: u64,
}

struct Shared {
    dialog_layer: Arc<DialogLayer>,
    registrar: Mutex<Registrar<SocketAddr>>,
    directory: Arc<dyn AccountDirectory>,
    legs: std::sync::atomic::AtomicUsize,
    unsolicited: Mutex<SourceLimiter>,
    unsolicited_answered: AtomicU64,
    unsolicited_dropped: AtomicU64,
    registrations_refused: [AtomicU64; RegistrationRefusal::ALL.len()],
    /// Legs whose far end may only send from these addresses (carriers), by Call-ID.
    guarded_legs: Mutex<HashMap<String, Vec<IpNet>>>,
    /// Where carriers send from: their requests outside calls are answered without the
    /// unsolicited-traffic limit.
    carrier_sources: Mutex<Vec<IpNet>>,
    requests_from_wrong_source: AtomicU64,
}

pub struct SipStack {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    local: SocketAddr,
    public_ip: IpAddr,
    tasks: TaskTracker,
}

/// A panic while holding one of the stack's locks would be a bug in pure code; what it guards
/// stays usable rather than poisoning every later request.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn port_free_for_udp_and_tcp(ip: IpAddr) -> Option<u16> {
    (0..50).find_map(|_| {
        let udp = std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).ok()?;
        let port = udp.local_addr().ok()?.port();
        std::net::TcpListener::bind(SocketAddr::new(ip, port))
            .ok()
            .map(|_| port)
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn to_library_transport(t: SipTransport) -> rsipstack::sip::Transport {
    match t {
        SipTransport::Udp => rsipstack::sip::Transport::Udp,
        SipTransport::Tcp => rsipstack::sip::Transport::Tcp,
    }
}

impl Shared {
    fn count_refusal(&self, refusal: RegistrationRefusal) {
        self.registrations_refused[refusal.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn limiter(&self) -> MutexGuard<'_, SourceLimiter> {
        lock(&self.unsolicited)
    }

    /// Whether an unsolicited request may be answered (its source is under its limit); counts
    /// it as answered or dropped.
    fn may_answer_unsolicited(&self, tx: &Transaction) -> bool {
        let allowed = request_source(tx).is_some_and(|(source, _)| self.limiter().allow(source.ip(), now_millis()));
        let counter = if allowed {
            &self.unsolicited_answered
        } else {
            &self.unsolicited_dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        allowed
    }

    /// Whether a request inside a leg's dialog comes from where its far end may send from;
    /// counts it when not.
    fn sent_from_allowed_source(&self, tx: &Transaction) -> bool {
        let Ok(call_id) = tx.original.call_id_header() else {
            return true;
        };
        let allowed = match lock(&self.guarded_legs).get(call_id.value()) {
            None => return true,
            Some(ranges) => {
                request_source(tx).is_some_and(|(source, _)| ranges.iter().any(|r| r.contains(&source.ip())))
            }
        };
        if !allowed {
            self.requests_from_wrong_source.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                method = %tx.original.method, call_id = %call_id.value(), source = ?request_source(tx).map(|s| s.0),
                "request inside a call refused: not from the trunk's addresses"
            );
        }
        allowed
    }

    fn sent_by_a_carrier(&self, tx: &Transaction) -> bool {
        request_source(tx)
            .is_some_and(|(source, _)| lock(&self.carrier_sources).iter().any(|r| r.contains(&source.ip())))
    }

    fn registrar(&self) -> MutexGuard<'_, Registrar<SocketAddr>> {
        lock(&self.registrar)
    }
}

impl SipStack {
    pub async fn start(config: SipConfig, directory: Arc<dyn AccountDirectory>) -> Result<Self, SipError> {
        let cancel = CancellationToken::new();
        let transport_layer = TransportLayer::new(cancel.child_token());
        let mut local = config.listen;
        if local.port() == 0 && config.transports.contains(&SipTransport::Tcp) {
            // Port 0 (tests): UDP and TCP must share one port, so pick one free for both now
            // rather than let UDP choose one that a TCP socket may already hold.
            local.set_port(port_free_for_udp_and_tcp(local.ip()).ok_or_else(|| SipError::Listen {
                address: local,
                transport: SipTransport::Tcp,
                message: "no port free for both UDP and TCP".into(),
            })?);
        }
        // An external address only when it differs from the one bound (a public IP in front
        // of a private or wildcard listen address); the port is the listen port.
        let external = config
            .public_ip
            .filter(|ip| *ip != config.listen.ip())
            .map(|ip| SocketAddr::new(ip, config.listen.port()));
        // SIP over TCP is accepted by our own loop (`tcp_accept`): the listener is bound here.
        // The library still needs its listener entry (its address goes into Via and Contact);
        // the library's own attempt to bind it then fails, and only that.
        let mut tcp_accept = None;
        for transport in &config.transports {
            let listen_error = |message: String| SipError::Listen {
                address: local,
                transport: *transport,
                message,
            };
            match transport {
                SipTransport::Udp => {
                    let udp = UdpConnection::create_connection(local, external, Some(cancel.child_token()))
                        .await
                        .map_err(|e| listen_error(e.to_string()))?;
                    // Port 0 (tests): the TCP listener takes the port UDP was given.
                    if let Ok(bound) = udp.get_addr().get_socketaddr() {
                        local = bound;
                    }
                    transport_layer.add_transport(udp.into());
                }
                SipTransport::Tcp => {
                    let listener = tokio::net::TcpListener::bind(local)
                        .await
                        .map_err(|e| listen_error(e.to_string()))?;
                    let tcp = TcpListenerConnection::new(local, external)
                        .await
                        .map_err(|e| listen_error(e.to_string()))?;
                    tcp_accept = Some((listener, tcp.get_addr().clone()));
                    transport_layer.add_transport(tcp.into());
                }
            }
        }
        let option = EndpointOption {
            t1: config.t1,
            t1x64: config.t1 * 64,
            callid_suffix: Some(config.call_id_domain.clone()),
            ..EndpointOption::default()
        };
        let connection_watch = ConnectionWatch::default();
        let endpoint = EndpointBuilder::new()
            .with_transport_inspector(Box::new(connection_watch.clone()))
            .with_user_agent(&config.user_agent)
            .with_cancel_token(cancel.child_token())
            .with_transport_layer(transport_layer)
            .with_option(option)
            .build();
        let mut incoming = endpoint.incoming_transactions()?;
        let dialog_layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let shared = Arc::new(Shared {
            dialog_layer,
            registrar: Mutex::new(Registrar::new(config.registrar, &config.server_key)),
            directory,
            legs: std::sync::atomic::AtomicUsize::new(0),
            unsolicited: Mutex::new(SourceLimiter::new(config.unsolicited)),
            unsolicited_answered: AtomicU64::new(0),
            unsolicited_dropped: AtomicU64::new(0),
            registrations_refused: Default::default(),
            guarded_legs: Mutex::new(HashMap::new()),
            carrier_sources: Mutex::new(Vec::new()),
            requests_from_wrong_source: AtomicU64::new(0),
        });

        let tasks = TaskTracker::new();
        let endpoint_inner = endpoint.inner.clone();
        tasks.spawn(async move {
            if let Err(e) = endpoint_inner.serve().await {
                tracing::error!(error = %e, "SIP endpoint stopped");
            }
        });
        if let Some((listener, advertised)) = tcp_accept {
            let registrar = shared.clone();
            tasks.spawn(crate::tcp_accept::accept_loop(
                listener,
                endpoint.inner.clone(),
                advertised,
                config.tcp,
                connection_watch,
                Arc::new(move |peer| registrar.registrar().has_stream_binding(peer, now_secs())),
                cancel.child_token(),
            ));
        }
        let dispatcher = shared.clone();
        let incoming_cancel = cancel.clone();
        tasks.spawn(async move {
            loop {
                let tx = tokio::select! {
                    tx = incoming.recv() => tx,
                    () = incoming_cancel.cancelled() => None,
                };
                let Some(tx) = tx else { break };
                let shared = dispatcher.clone();
                // One short task per request: a REGISTER waits for the account lookup, and an
                // in-dialog request for its dialog, without holding up the others.
                tokio::spawn(async move { handle_incoming(shared, tx).await });
            }
        });
        let sweeper = shared.clone();
        let sweep_cancel = cancel.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        sweeper.registrar().sweep(now_secs());
                        sweeper.limiter().sweep(now_millis());
                    }
                    () = sweep_cancel.cancelled() => break,
                }
            }
        });
        tracing::info!(address = %local, transports = ?config.transports, "listening for SIP");
        Ok(Self {
            shared,
            cancel,
            local,
            public_ip: config.public_ip.unwrap_or(local.ip()),
            tasks,
        })
    }

    pub(crate) fn dialog_layer(&self) -> &DialogLayer {
        &self.shared.dialog_layer
    }

    /// Where carriers send from, replacing what was set before.
    pub fn set_carrier_sources(&self, ranges: Vec<IpNet>) {
        *lock(&self.shared.carrier_sources) = ranges;
    }

    /// The address SIP listens on (the actual port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn public_ip(&self) -> IpAddr {
        self.public_ip
    }

    /// Takes back the bindings a previous process kept (see [`AccountDirectory::bindings_changed`]),
    /// so that registered phones are reachable at once after a restart; over TCP they are not
    /// (the connection is gone). Returns how many were taken back.
    pub fn restore_bindings(&self, kept: Vec<(String, Vec<KeptBinding>)>) -> usize {
        let now = now_secs();
        let mut registrar = self.shared.registrar();
        kept.into_iter()
            .map(|(aor, bindings)| registrar.restore(&aor, bindings, now))
            .sum()
    }

    /// The newest live registration of an address-of-record.
    pub fn registration(&self, aor: &str) -> Option<Registration> {
        let binding = self.shared.registrar().bindings(aor, now_secs()).into_iter().next()?;
        let (destination, transport) = match binding.send_target() {
            SendTarget::Connection(peer) => (peer, SipTransport::Tcp),
            SendTarget::Address(address, transport) => (address, transport),
        };
        Some(Registration {
            contact: binding.contact,
            destination,
            transport,
        })
    }

    pub fn counts(&self) -> SipCounts {
        SipCounts {
            dialogs: self.shared.dialog_layer.len(),
            legs: self.shared.legs.load(std::sync::atomic::Ordering::Relaxed),
            bindings: self.shared.registrar().binding_count(),
            unsolicited_answered: self.shared.unsolicited_answered.load(Ordering::Relaxed),
            unsolicited_dropped: self.shared.unsolicited_dropped.load(Ordering::Relaxed),
            registrations_refused: self
                .shared
                .registrations_refused
                .each_ref()
                .map(|count| count.load(Ordering::Relaxed)),
            requests_from_wrong_source: self.shared.requests_from_wrong_source.load(Ordering::Relaxed),
        }
    }

    /// Sends an INVITE and returns the leg at once; its progress comes from [`Leg::next_event`].
    pub fn invite(&self, spec: LegSpec) -> Result<Leg, SipError> {
        let host = format!("{}:{}", self.public_ip, self.local.port());
        let uri = |text: String| rsipstack::sip::Uri::try_from(text.as_str()).map_err(|_| SipError::BadUri(text));
        let caller = uri(format!("sip:{}@{host}", spec.from_user))?;
        let callee = uri(spec.request_uri.clone())?;
        let transport_param = match spec.transport {
            SipTransport::Udp => "",
            SipTransport::Tcp => ";transport=tcp",
        };
        let contact = uri(format!("sip:dialbridge@{host}{transport_param}"))?;
        // RFC 4028: we take session timers either way round (we refresh, or we hold the far
        // end to its refreshes), without asking for an interval, so no far end answers 422.
        let mut headers = vec![Header::Supported("timer".into())];
        if let Some(pai) = &spec.asserted_identity {
            headers.push(Header::Other(
                "P-Asserted-Identity".into(),
                format!("<sip:{pai}@{host}>"),
            ));
        }
        let option = InviteOption {
            caller_display_name: spec.from_display.clone(),
            caller,
            callee,
            destination: Some(SipAddr {
                r#type: Some(to_library_transport(spec.transport)),
                addr: spec.destination.into(),
            }),
            content_type: Some("application/sdp".into()),
            offer: Some(spec.sdp_offer),
            contact,
            credential: spec.credential.map(|(username, password)| Credential {
                username,
                password,
                realm: None,
                auth_username: None,
            }),
            headers: Some(headers),
            ..InviteOption::default()
        };
        let (sender, states) = self.shared.dialog_layer.new_dialog_state_channel();
        let (dialog, join) = self.shared.dialog_layer.do_invite_async(option, sender)?;
        self.shared.legs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let guarded_call_id = spec.allowed_sources.map(|ranges| {
            let call_id = dialog.id().call_id;
            lock(&self.shared.guarded_legs).insert(call_id.clone(), ranges);
            call_id
        });
        Ok(Leg {
            request_uri: spec.request_uri,
            destination: spec.destination,
            transport: spec.transport,
            first_provisional: None,
            guarded_call_id,
            refresh_by_reinvite: Arc::default(),
            answers_in_acks: mpsc::unbounded_channel(),
            shared: self.shared.clone(),
            dialog,
            states,
            join: Some(join),
            confirmed: None,
            finished: false,
        })
    }

    /// Stops listening and ends every task of the stack.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(tasks = self.tasks.len(), "SIP tasks still running after a shutdown");
        }
    }
}

/// One outgoing INVITE.
#[derive(Debug, Clone)]
pub struct LegSpec {
    pub request_uri: String,
    /// Where to send it.
    pub destination: SocketAddr,
    pub transport: SipTransport,
    /// The From user (the caller id the far end sees).
    pub from_user: String,
    pub from_display: Option<String>,
    /// A `P-Asserted-Identity` user, if any.
    pub asserted_identity: Option<String>,
    pub sdp_offer: Vec<u8>,
    /// Digest credentials for a 401/407 challenge: (user, password).
    pub credential: Option<(String, String)>,
    /// Where the far end may send its requests inside the call from (a carrier's addresses);
    /// `None`: anywhere (a phone).
    pub allowed_sources: Option<Vec<IpNet>>,
}

#[derive(Debug)]
pub enum LegEvent {
    /// 18x; `sdp` when it carried a session description (early media).
    Provisional { code: u16, sdp: Option<Vec<u8>> },
    Answered {
        sdp: Option<Vec<u8>>,
        /// The answer's RFC 4028 session timer: who refreshes the session, and when.
        session_timer: Option<SessionTimer>,
    },
    /// A final non-2xx answer, or no answer at all (408), or a transport failure (503).
    Failed { code: u16 },
    /// The far end hung up with BYE.
    RemoteBye,
    /// The leg ended after our CANCEL or BYE (or for any other reason once answered).
    Ended,
    /// A re-INVITE or UPDATE from the far end (hold, resume, a moved stream, a session
    /// refresh), to be answered here: the media is anchored, nothing crosses to the other leg.
    Renegotiate(Renegotiation),
    /// A key pressed, sent by SIP INFO (`application/dtmf-relay` or `application/dtmf`),
    /// already answered 200.
    Digit(InfoDigit),
    /// The far end's answer to the description we offered in reply to its re-INVITE without
    /// one, as its ACK carried it.
    AnswerInAck { sdp: Vec<u8> },
}

/// A far end's re-INVITE or UPDATE waiting for our answer.
#[derive(Debug)]
pub struct Renegotiation {
    handle: TransactionHandle,
    /// Its session description, if it carried one.
    pub offer: Option<Vec<u8>>,
    /// A re-INVITE without a description wants ours as an offer; an UPDATE without one is a
    /// plain refresh.
    pub is_invite: bool,
    /// Its `Session-Expires` (RFC 4028); `None` when it carries none (the far end turns the
    /// session timer off). Its `refresher`, if named, is relative to this request: `Uas` is us.
    pub session_expires: Option<SessionExpires>,
    /// Who refreshes from now on, as our 200 will say: as the request named it, else its
    /// sender, unless [`Renegotiation::keep_refreshing`] keeps it with us.
    refresher: Refresher,
    /// For a re-INVITE without a description: where its ACK (which carries the far end's
    /// answer to our offer) is found, and where that answer goes.
    answer_in_ack: Option<AnswerInAck>,
}

struct AnswerInAck {
    dialog: InviteDialog,
    cseq: u32,
    answers: mpsc::UnboundedSender<Vec<u8>>,
}

impl std::fmt::Debug for AnswerInAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerInAck")
            .field("cseq", &self.cseq)
            .finish_non_exhaustive()
    }
}

/// How long the answer in an ACK is waited for (the ACK of a 2xx is retransmitted for 64*T1;
/// a far end that sends none is ended by the dialog layer).
const ACK_ANSWER_WAIT: Duration = Duration::from_secs(8);

impl AnswerInAck {
    /// rsipstack keeps the last ACK of the dialog without telling anyone: look for ours.
    async fn forward(self) {
        let deadline = tokio::time::Instant::now() + ACK_ANSWER_WAIT;
        while tokio::time::Instant::now() < deadline {
            let ack = self
                .dialog
                .last_remote_ack()
                .filter(|ack| ack.cseq_header().ok().and_then(|c| c.seq().ok()) == Some(self.cseq));
            if let Some(ack) = ack {
                if !ack.body.is_empty() {
                    let _ = self.answers.send(ack.body);
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::debug!(cseq = self.cseq, "no ACK with an answer to our re-INVITE offer");
    }
}

impl Renegotiation {
    /// Our 200 will say that we refresh the session.
    pub fn keep_refreshing(&mut self) {
        self.refresher = Refresher::Uas;
    }

    /// 200 OK, with our session description when there is one to give. A request that asked
    /// for a session interval gets it confirmed (RFC 4028 §9), or its sender would take the
    /// session timer for off and stop refreshing.
    pub fn accept(self, sdp: Option<Vec<u8>>) {
        let mut headers = Vec::new();
        if sdp.is_some() {
            headers.push(Header::ContentType("application/sdp".into()));
        }
        if let Some(expires) = self.session_expires {
            let refresher = match self.refresher {
                Refresher::Uac => "uac",
                Refresher::Uas => "uas",
            };
            headers.push(Header::Other(
                "Session-Expires".into(),
                format!("{};refresher={refresher}", expires.seconds),
            ));
            headers.push(Header::Require("timer".into()));
        }
        let headers = (!headers.is_empty()).then_some(headers);
        tokio::spawn(async move {
            let _ = self.handle.respond(StatusCode::OK, headers, sdp).await;
            if let Some(waiting) = self.answer_in_ack {
                waiting.forward().await;
            }
        });
    }

    /// 488: a description we cannot use.
    pub fn refuse(self) {
        tokio::spawn(async move {
            let _ = self.handle.reply(StatusCode::NotAcceptableHere).await;
        });
    }
}

/// A message's `Session-Expires` value (or its compact form `x`).
fn session_expires_value(headers: &rsipstack::sip::Headers) -> Option<&str> {
    headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("Session-Expires") || h.name().eq_ignore_ascii_case("x"))
        .map(|h| h.value())
}

/// An in-dialog request that needs no decision of the call: OPTIONS and INFO are answered 200
/// (an INFO's digit then goes to the call), what we never take (REFER, MESSAGE, NOTIFY) 405.
fn answer_in_dialog(handle: TransactionHandle, status: StatusCode) {
    tokio::spawn(async move {
        let _ = handle.reply(status).await;
    });
}

/// An outgoing call leg. Dropping it forgets the dialog: hang it up first.
pub struct Leg {
    shared: Arc<Shared>,
    request_uri: String,
    destination: SocketAddr,
    transport: SipTransport,
    /// The first provisional answer: what a CANCEL of the INVITE is built from.
    first_provisional: Option<rsipstack::sip::Response>,
    /// Set when the far end's requests are checked against its addresses.
    guarded_call_id: Option<String>,
    /// Whether session refreshes go by re-INVITE: the far end's answer listed what it allows,
    /// without UPDATE, or it refused an UPDATE with 405/501.
    refresh_by_reinvite: Arc<std::sync::atomic::AtomicBool>,
    answers_in_acks: (mpsc::UnboundedSender<Vec<u8>>, mpsc::UnboundedReceiver<Vec<u8>>),
    dialog: InviteDialog,
    states: DialogStateReceiver,
    join: Option<JoinHandle<InviteAsyncResult>>,
    confirmed: Option<rsipstack::dialog::DialogId>,
    finished: bool,
}

impl Leg {
    /// The next event of the leg; `None` once it has ended. Cancel-safe (for `select!`).
    pub async fn next_event(&mut self) -> Option<LegEvent> {
        while !self.finished {
            let state = match &mut self.join {
                Some(join) => tokio::select! {
                    biased;
                    state = self.states.recv() => state,
                    Some(sdp) = self.answers_in_acks.1.recv() => return Some(LegEvent::AnswerInAck { sdp }),
                    result = join => {
                        self.join = None;
                        match result {
                            Ok(Ok((_, Some(response)))) if response.status_code.kind() != rsipstack::sip::StatusCodeKind::Successful => {
                                return Some(self.finish(LegEvent::Failed { code: response.status_code.code() }));
                            }
                            Ok(Ok((_, None))) if self.confirmed.is_none() => {
                                return Some(self.finish(LegEvent::Failed { code: 408 }));
                            }
                            Ok(Err(e)) if self.confirmed.is_none() => {
                                tracing::debug!(error = %e, "INVITE failed");
                                return Some(self.finish(LegEvent::Failed { code: 503 }));
                            }
                            _ => continue,
                        }
                    }
                },
                None => tokio::select! {
                    state = self.states.recv() => state,
                    Some(sdp) = self.answers_in_acks.1.recv() => return Some(LegEvent::AnswerInAck { sdp }),
                },
            };
            let Some(state) = state else {
                return Some(self.finish(if self.confirmed.is_some() {
                    LegEvent::Ended
                } else {
                    LegEvent::Failed { code: 503 }
                }));
            };
            match state {
                DialogState::Early(_, response) => {
                    let code = response.status_code.code();
                    if code > 100 {
                        if self.first_provisional.is_none() {
                            self.first_provisional = Some(response.clone());
                        }
                        let sdp = (!response.body.is_empty()).then(|| response.body.clone());
                        return Some(LegEvent::Provisional { code, sdp });
                    }
                }
                DialogState::Confirmed(id, response) if self.confirmed.is_none() => {
                    self.confirmed = Some(id);
                    let allow: Vec<String> = response
                        .headers()
                        .iter()
                        .filter(|h| h.name().eq_ignore_ascii_case("Allow"))
                        .map(|h| h.value().to_ascii_uppercase())
                        .collect();
                    let takes_update =
                        allow.is_empty() || allow.iter().any(|v| v.split(',').any(|m| m.trim() == "UPDATE"));
                    self.refresh_by_reinvite.store(!takes_update, Ordering::Relaxed);
                    let sdp = (!response.body.is_empty()).then(|| response.body.clone());
                    let session_timer = session_expires_value(response.headers()).and_then(SessionTimer::of_answer);
                    return Some(LegEvent::Answered { sdp, session_timer });
                }
                DialogState::Updated(_, request, handle) => {
                    let session_expires = session_expires_value(request.headers()).and_then(SessionExpires::parse);
                    let is_invite = request.method == Method::Invite;
                    let answer_in_ack = (is_invite && request.body.is_empty()).then(|| AnswerInAck {
                        dialog: self.dialog.clone(),
                        cseq: request.cseq_header().ok().and_then(|c| c.seq().ok()).unwrap_or(0),
                        answers: self.answers_in_acks.0.clone(),
                    });
                    return Some(LegEvent::Renegotiate(Renegotiation {
                        handle,
                        offer: (!request.body.is_empty()).then(|| request.body.clone()),
                        is_invite,
                        session_expires,
                        refresher: session_expires.and_then(|e| e.refresher).unwrap_or(Refresher::Uac),
                        answer_in_ack,
                    }));
                }
                DialogState::Options(_, _, handle) => answer_in_dialog(handle, StatusCode::OK),
                DialogState::Info(_, request, handle) => {
                    answer_in_dialog(handle, StatusCode::OK);
                    let content_type = request
                        .headers()
                        .iter()
                        .find(|h| matches!(h, Header::ContentType(_)))
                        .map(|h| h.value().to_owned())
                        .unwrap_or_default();
                    if let Some(digit) = info_digit(&content_type, &request.body) {
                        return Some(LegEvent::Digit(digit));
                    }
                }
                DialogState::Refer(_, _, handle)
                | DialogState::Message(_, _, handle)
                | DialogState::Notify(_, _, handle)
                | DialogState::Publish(_, _, handle) => {
                    answer_in_dialog(handle, StatusCode::MethodNotAllowed);
                }
                DialogState::Terminated(_, reason) => {
                    if self.confirmed.is_some() {
                        let event = if matches!(reason, TerminatedReason::UasBye) {
                            LegEvent::RemoteBye
                        } else {
                            LegEvent::Ended
                        };
                        return Some(self.finish(event));
                    }
                    if let Some(code) = failure_code(&reason) {
                        return Some(self.finish(LegEvent::Failed { code }));
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn finish(&mut self, event: LegEvent) -> LegEvent {
        if !self.finished {
            self.finished = true;
            if let Some(id) = self.confirmed.take() {
                self.shared.dialog_layer.remove_dialog(&id);
            }
        }
        event
    }

    /// What ends this leg from a fresh process, as it stands now: a CANCEL of the INVITE once
    /// a provisional answer came, a BYE once it answered; `None` before any answer (no CANCEL
    /// can be built before the INVITE's answer echoes its Via) and once it ended.
    pub fn ending(&self) -> Option<crate::LegEnding> {
        if self.finished {
            return None;
        }
        let request = if self.confirmed.is_some() {
            let dialog = self.dialog.snapshot();
            let target = dialog
                .remote_contact
                .as_ref()
                .and_then(|c| rsipstack::sip::ToTypedHeader::typed(c).ok())
                .map_or_else(|| dialog.remote_uri.to_string(), |c| c.uri.to_string());
            let routes: Vec<String> = dialog.route_set.iter().map(ToString::to_string).collect();
            crate::ending::bye_of(
                &target,
                &dialog.from.to_string(),
                &dialog.to.to_string(),
                &dialog.id.call_id,
                dialog.local_cseq,
                &routes,
            )
        } else {
            crate::ending::cancel_of(&self.request_uri, self.first_provisional.as_ref()?, &[])?
        };
        Some(crate::LegEnding {
            request,
            destination: self.destination,
            transport: self.transport,
        })
    }

    /// CANCEL before an answer, BYE after. Not cancel-safe: await it outside `select!`.
    pub async fn hang_up(&self) {
        if let Err(e) = self.dialog.hangup().await {
            tracing::debug!(error = %e, "hang-up of a leg failed");
        }
    }

    /// A handle that can refresh the leg's session from another task.
    pub fn refresh_handle(&self) -> LegRefresh {
        LegRefresh {
            dialog: self.dialog.clone(),
            by_reinvite: self.refresh_by_reinvite.clone(),
        }
    }

    /// A handle that can hang up the leg from another task.
    pub fn hang_up_handle(&self) -> LegHangUp {
        LegHangUp {
            dialog: self.dialog.clone(),
        }
    }
}

/// RFC 3261 §9.1: a cancelled INVITE that gets no final answer is given up 64·T1 (T1 = 500 ms,
/// the stack's) after the CANCEL. rsipstack's client transaction waits for that answer forever
/// once a provisional came, keeping its early dialog registered.
const CANCELLED_INVITE_GIVE_UP: Duration = Duration::from_secs(32);

impl Drop for Leg {
    fn drop(&mut self) {
        if let Some(call_id) = self.guarded_call_id.take() {
            lock(&self.shared.guarded_legs).remove(&call_id);
        }
        if let Some(id) = self.confirmed.take() {
            self.shared.dialog_layer.remove_dialog(&id);
        }
        // The INVITE transaction still runs (a leg ends with its CANCEL, before the far end's
        // final answer): it may finish on its own, and is aborted when the far end never
        // answers, which removes its early dialog (rsipstack's guard of an unconfirmed dialog).
        if let Some(mut invite) = self.join.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if tokio::time::timeout(CANCELLED_INVITE_GIVE_UP, &mut invite)
                            .await
                            .is_err()
                        {
                            tracing::debug!("a cancelled INVITE got no final answer: given up");
                            invite.abort();
                        }
                    });
                }
                Err(_) => invite.abort(),
            }
        }
        self.shared.legs.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Refreshes a leg's session from another task.
#[derive(Clone)]
pub struct LegRefresh {
    dialog: InviteDialog,
    by_reinvite: Arc<std::sync::atomic::AtomicBool>,
}

fn refresh_result(sent: Result<Option<rsipstack::sip::Response>, rsipstack::Error>) -> Result<(), u16> {
    match sent {
        Ok(Some(response)) if response.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => Ok(()),
        Ok(Some(response)) => Err(response.status_code.code()),
        Ok(None) | Err(_) => Err(408),
    }
}

impl LegRefresh {
    /// Refreshes the session (RFC 4028 §7.4): an UPDATE without a body, or a re-INVITE with
    /// `sdp` (our current description, unchanged) to a far end that does not take UPDATE.
    /// `Err` with the status that refused it, or 408 when nothing answered.
    pub async fn refresh(&self, sdp: Option<Vec<u8>>) -> Result<(), u16> {
        if !self.by_reinvite.load(Ordering::Relaxed) {
            match refresh_result(self.dialog.update(None, None).await) {
                Err(405 | 501) if sdp.is_some() => self.by_reinvite.store(true, Ordering::Relaxed),
                result => return result,
            }
        }
        let Some(sdp) = sdp else {
            return Err(405);
        };
        let headers = vec![Header::ContentType("application/sdp".into())];
        refresh_result(self.dialog.reinvite(Some(headers), Some(sdp)).await)
    }
}

/// Hangs up a leg from another task (the call task keeps the [`Leg`] itself).
#[derive(Clone)]
pub struct LegHangUp {
    dialog: InviteDialog,
}

impl LegHangUp {
    pub async fn hang_up(&self) {
        if let Err(e) = self.dialog.hangup().await {
            tracing::debug!(error = %e, "hang-up of a leg failed");
        }
    }
}

fn failure_code(reason: &TerminatedReason) -> Option<u16> {
    Some(match reason {
        TerminatedReason::Timeout => 408,
        TerminatedReason::UacCancel => 487,
        TerminatedReason::UacBusy | TerminatedReason::UasBusy => 486,
        TerminatedReason::UasDecline => 603,
        TerminatedReason::ProxyAuthRequired => 407,
        TerminatedReason::ProxyError(code) | TerminatedReason::UacOther(code) | TerminatedReason::UasOther(code) => {
            code.code()
        }
        TerminatedReason::UacBye | TerminatedReason::UasBye => return None,
    })
}

/// What a request that cannot be taken as it stands must be answered (RFC 3261 §18.3: a UDP
/// body shorter than its Content-Length is 400; §8.2.x: a SIP version other than 2.0 is 505).
pub(crate) fn refusal_of_malformed(request: &rsipstack::sip::Request) -> Option<StatusCode> {
    if request.version != rsipstack::sip::Version::V2 {
        return Some(StatusCode::VersionNotSupported);
    }
    let declared = request
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("Content-Length") || h.name() == "l")
        .and_then(|h| h.value().trim().parse::<usize>().ok());
    declared
        .is_some_and(|length| length > request.body.len())
        .then_some(StatusCode::BadRequest)
}

async fn handle_incoming(shared: Arc<Shared>, mut tx: Transaction) {
    if let Some(status) = refusal_of_malformed(&tx.original) {
        if tx.original.method != Method::Ack && shared.may_answer_unsolicited(&tx) {
            let _ = tx.reply(status).await;
        }
        return;
    }
    let result = match tx.original.method {
        Method::Register => handle_register(&shared, &mut tx).await,
        Method::Ack => Ok(()),
        _ => match shared.dialog_layer.match_dialog(&tx) {
            Some(Dialog::Invite(_)) if !shared.sent_from_allowed_source(&tx) => {
                tx.reply(StatusCode::Forbidden).await.map_err(SipError::from)
            }
            Some(Dialog::Invite(mut dialog)) => dialog.handle(&mut tx).await.map_err(SipError::from),
            Some(_) => tx.reply(StatusCode::MethodNotAllowed).await.map_err(SipError::from),
            // Dropping the transaction unanswered: no reply, nothing kept for it. A carrier's
            // requests (its keepalive, a customer calling a caller id back) are always answered.
            None if !shared.sent_by_a_carrier(&tx) && !shared.may_answer_unsolicited(&tx) => Ok(()),
            None => match tx.original.method {
                Method::Options => tx.reply(StatusCode::OK).await.map_err(SipError::from),
                Method::Invite => tx
                    .reply_with(
                        StatusCode::Forbidden,
                        vec![Header::Other(
                            "Warning".into(),
                            "399 dialbridge \"incoming calls are not taken\"".into(),
                        )],
                        None,
                    )
                    .await
                    .map_err(SipError::from),
                _ => tx
                    .reply(StatusCode::CallTransactionDoesNotExist)
                    .await
                    .map_err(SipError::from),
            },
        },
    };
    if let Err(e) = result {
        tracing::debug!(method = %tx.original.method, error = %e, "incoming request not handled");
    }
}

/// Where a request came from: the Via's received/rport for UDP, the connection's peer for TCP.
fn request_source(tx: &Transaction) -> Option<(SocketAddr, SipTransport)> {
    let connection = tx.connection.as_ref()?;
    match connection.transport() {
        rsipstack::sip::Transport::Udp => {
            let via = tx.original.via_header().ok()?;
            let (_, host_with_port) = SipConnection::parse_target_from_via(via).ok()?;
            let address = SipAddr {
                r#type: Some(rsipstack::sip::Transport::Udp),
                addr: host_with_port,
            };
            Some((address.get_socketaddr().ok()?, SipTransport::Udp))
        }
        rsipstack::sip::Transport::Tcp => {
            Some((connection.get_remote_addr()?.get_socketaddr().ok()?, SipTransport::Tcp))
        }
        _ => None,
    }
}

fn header_values(tx: &Transaction, name: &str) -> Vec<String> {
    tx.original
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name) || (name == "Contact" && h.name() == "m"))
        .map(|h| h.value().to_owned())
        .collect()
}

async fn handle_register(shared: &Shared, tx: &mut Transaction) -> Result<(), SipError> {
    let now = now_secs();
    let Some((source, transport)) = request_source(tx) else {
        return tx.reply(StatusCode::BadRequest).await.map_err(SipError::from);
    };
    let aor = tx.original.to_header().ok().and_then(|to| uri_user(to.value()));
    let contacts = parse_contacts(&header_values(tx, "Contact"));
    let (Some(aor), Some(contacts)) = (aor, contacts) else {
        return tx.reply(StatusCode::BadRequest).await.map_err(SipError::from);
    };
    if shared.registrar().is_blocked(source.ip(), &aor, now) {
        // This account from this source (or this source guessing accounts) failed too often:
        // refused without a lookup.
        return refuse_registration(shared, tx, &aor, source, RegistrationRefusal::LockedOut).await;
    }
    let cseq = tx.original.cseq_header().ok().and_then(|c| c.seq().ok()).unwrap_or(0);
    let call_id = tx
        .original
        .call_id_header()
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let expires_header = header_values(tx, "Expires")
        .first()
        .and_then(|v| v.trim().parse::<u32>().ok());
    let authorization = header_values(tx, "Authorization").into_iter().next();
    let password = if authorization.is_some() {
        shared.directory.sip_password(&aor).await
    } else {
        None
    };
    let changes_bindings = contacts != Contacts::Query;
    let request = RegisterRequest {
        aor: aor.clone(),
        authorization,
        call_id,
        cseq,
        contacts,
        expires_header,
        source,
        transport,
        connection: source,
    };
    let reply = shared.registrar().register(request, password.as_deref(), now);
    match reply {
        RegisterReply::Challenge { values, refused } => {
            if let Some(refusal) = refused {
                shared.count_refusal(refusal);
                tracing::info!(%aor, %source, reason = refusal.as_str(), "REGISTER challenged again");
            }
            let headers = values.into_iter().map(|v| Header::WwwAuthenticate(v.into())).collect();
            tx.reply_with(StatusCode::Unauthorized, headers, None).await?;
        }
        RegisterReply::Refused(refusal) => {
            return refuse_registration(shared, tx, &aor, source, refusal).await;
        }
        RegisterReply::IntervalTooBrief { min_expires } => {
            tx.reply_with(
                StatusCode::IntervalTooBrief,
                vec![Header::MinExpires(min_expires.to_string().into())],
                None,
            )
            .await?;
        }
        RegisterReply::BadRequest(why) => {
            tx.reply_with(StatusCode::BadRequest, vec![warning(why)], None).await?;
        }
        RegisterReply::Ok(bindings) => {
            tracing::debug!(%aor, %source, bindings = bindings.len(), "registered");
            if changes_bindings {
                let kept = shared.registrar().bindings(&aor, now);
                shared.directory.bindings_changed(&aor, kept);
            }
            let headers = bindings
                .into_iter()
                .map(|(contact, expires)| Header::Contact(format!("<{contact}>;expires={expires}").into()))
                .collect();
            tx.reply_with(StatusCode::OK, headers, None).await?;
        }
    }
    Ok(())
}

/// Answers a refused REGISTER, counted and logged with its reason. A source that failed too
/// often is answered (and logged) only within its rate: an answer keeps a transaction for 32 s,
/// and a flood must not fill the log.
async fn refuse_registration(
    shared: &Shared,
    tx: &mut Transaction,
    aor: &str,
    source: SocketAddr,
    refusal: RegistrationRefusal,
) -> Result<(), SipError> {
    shared.count_refusal(refusal);
    if refusal == RegistrationRefusal::LockedOut {
        // Logged once, when the lockout begins (below); each request refused unheard after
        // that is only counted, and answered only within the source's rate.
        tracing::debug!(%aor, %source, reason = refusal.as_str(), "REGISTER refused");
        if !shared.may_answer_unsolicited(tx) {
            return Ok(());
        }
    } else {
        tracing::info!(%aor, %source, reason = refusal.as_str(), "REGISTER refused");
        if shared.registrar().is_blocked(source.ip(), aor, now_secs()) {
            tracing::info!(%aor, %source, reason = RegistrationRefusal::LockedOut.as_str(), "REGISTER failed too often: this user is refused from this address for a while");
        }
    }
    let status = match refusal {
        RegistrationRefusal::Malformed => StatusCode::BadRequest,
        _ => StatusCode::Forbidden,
    };
    tx.reply_with(status, vec![warning(refusal.public_text())], None)
        .await?;
    Ok(())
}

fn warning(text: &str) -> Header {
    Header::Warning(format!("399 dialbridge \"{text}\"").into())
}

//! The registrar's decisions (RFC 3261 §10.3), apart from the wire: given a parsed REGISTER,
//! the account's password and the time, what to answer and how the bindings change.
//!
//! A binding remembers the Contact exactly as the phone wrote it, and where the REGISTER came
//! from (source address, transport, and an opaque handle on the connection it arrived on), so
//! the choice of where to send a call is made explicitly by [`Binding::send_target`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dialbridge_core::budget::{Budget, FailureBudgets};

use crate::digest::{self, DigestOffer, DigestResponse, NonceCounts, NonceIssuer, RejectReason, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
}

/// One Contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    /// The URI exactly as registered (without `<>` and header parameters).
    pub uri: String,
    /// The contact's own `expires` parameter.
    pub expires: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// No Contact header: a query for the current bindings.
    Query,
    /// `Contact: *` (valid only with `Expires: 0`).
    All,
    List(Vec<ContactSpec>),
}

/// A REGISTER as the registrar needs it.
#[derive(Debug, Clone)]
pub struct RegisterRequest<C> {
    /// The address of record: the To header's user part.
    pub aor: String,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    pub contacts: Contacts,
    pub expires_header: Option<u32>,
    pub source: SocketAddr,
    pub transport: SipTransport,
    /// The connection the request arrived on (for TCP, the one to send calls back over).
    pub connection: C,
}

#[derive(Debug, Clone)]
pub struct Binding<C> {
    pub contact: String,
    pub expires_at: u64,
    pub source: SocketAddr,
    pub transport: SipTransport,
    pub connection: C,
    pub call_id: String,
    pub cseq: u32,
}

/// Where to send a request for a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget<C> {
    /// Over the connection the phone registered on (stream transports: the phone's listening
    /// port is usually not reachable, its connection is).
    Connection(C),
    /// To the REGISTER's source address (UDP, right behind NAT: `received`/`rport`).
    Address(SocketAddr, SipTransport),
}

impl<C: Clone> Binding<C> {
    /// Stream transports: back over the registration's connection. UDP: to the Contact's
    /// address when it is the address the REGISTER came from (the phone is reachable as it
    /// says, possibly on another port than it sent from); otherwise the phone is behind NAT
    /// and only the REGISTER's source reaches it.
    pub fn send_target(&self) -> SendTarget<C> {
        match self.transport {
            SipTransport::Tcp => SendTarget::Connection(self.connection.clone()),
            SipTransport::Udp => match contact_address(&self.contact) {
                Some(contact) if contact.ip() == self.source.ip() => SendTarget::Address(contact, SipTransport::Udp),
                _ => SendTarget::Address(self.source, SipTransport::Udp),
            },
        }
    }
}

/// The `host:port` of a SIP URI when the host is an IP address (port 5060 when absent).
fn contact_address(uri: &str) -> Option<SocketAddr> {
    let rest = uri.strip_prefix("sip:")?;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split([';', '?']).next()?;
    if let Some(v6) = host_port.strip_prefix('[') {
        let (ip, port) = v6.split_once(']')?;
        let port = port.strip_prefix(':').map_or(Some(5060), |p| p.parse().ok())?;
        return Some(SocketAddr::new(ip.parse().ok()?, port));
    }
    let (ip, port) = match host_port.split_once(':') {
        Some((ip, port)) => (ip, port.parse().ok()?),
        None => (host_port, 5060),
    };
    Some(SocketAddr::new(ip.parse::<IpAddr>().ok()?, port))
}

/// Why a REGISTER was refused: logged, and counted by it in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationRefusal {
    UnknownUser,
    WrongPassword,
    /// Right password on an expired nonce: challenged again with `stale=true`.
    StaleNonce,
    /// A nonce we did not issue, one replayed, or a response without `qop=auth`: challenged
    /// again.
    BadNonce,
    /// An algorithm we do not offer, or a realm not ours.
    UnsupportedChallenge,
    /// Too many failures for this account from this source (or names guessed from it).
    LockedOut,
    /// Authenticated, but as another user than the To header's.
    WrongToUser,
    /// An `Authorization` header that does not parse.
    Malformed,
}

impl RegistrationRefusal {
    pub const ALL: [RegistrationRefusal; 8] = [
        RegistrationRefusal::UnknownUser,
        RegistrationRefusal::WrongPassword,
        RegistrationRefusal::StaleNonce,
        RegistrationRefusal::BadNonce,
        RegistrationRefusal::UnsupportedChallenge,
        RegistrationRefusal::LockedOut,
        RegistrationRefusal::WrongToUser,
        RegistrationRefusal::Malformed,
    ];

    /// The metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationRefusal::UnknownUser => "unknown_user",
            RegistrationRefusal::WrongPassword => "wrong_password",
            RegistrationRefusal::StaleNonce => "stale_nonce",
            RegistrationRefusal::BadNonce => "bad_nonce",
            RegistrationRefusal::UnsupportedChallenge => "unsupported_challenge",
            RegistrationRefusal::LockedOut => "locked_out",
            RegistrationRefusal::WrongToUser => "wrong_to_user",
            RegistrationRefusal::Malformed => "malformed",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// What the phone is told (the `Warning` of a 403): an unknown user and a wrong password
    /// read the same, so that accounts cannot be enumerated.
    pub fn public_text(self) -> &'static str {
        match self {
            RegistrationRefusal::LockedOut => "too many failed attempts",
            RegistrationRefusal::WrongToUser => "To user is not the authenticated user",
            RegistrationRefusal::Malformed => "malformed Authorization",
            _ => "bad credentials",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterReply {
    /// 401 with these `WWW-Authenticate` values; `refused` when the credentials given were
    /// not accepted (a stale or bad nonce), `None` for a first challenge.
    Challenge {
        values: Vec<String>,
        refused: Option<RegistrationRefusal>,
    },
    /// 403 (or 400 for [`RegistrationRefusal::Malformed`]).
    Refused(RegistrationRefusal),
    /// 423 with `Min-Expires`.
    IntervalTooBrief { min_expires: u32 },
    /// 400.
    BadRequest(&'static str),
    /// 200 with the current bindings of the AOR: (contact, seconds left).
    Ok(Vec<(String, u32)>),
}

#[derive(Debug, Clone, Copy)]
pub struct RegistrarSettings {
    pub realm: &'static str,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub nonce_lifetime: Duration,
    /// Failed authentications allowed per (source IP, account) within `failure_window`:
    /// past them that account is refused from that source, the right password included,
    /// while other accounts behind the same address keep registering.
    pub max_failures: u32,
    /// Failures allowed per source IP for accounts that do not exist and malformed
    /// credentials (what guessing names looks like), within the same window.
    pub max_source_failures: u32,
    pub failure_window: Duration,
    /// The digest algorithms challenged with and accepted.
    pub digest: DigestOffer,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        Self {
            realm: "dialbridge",
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_lifetime: Duration::from_secs(300),
            max_failures: 20,
            max_source_failures: 200,
            failure_window: Duration::from_secs(60),
            digest: DigestOffer::default(),
        }
    }
}

pub struct Registrar<C> {
    settings: RegistrarSettings,
    issuer: NonceIssuer,
    counts: NonceCounts,
    bindings: HashMap<String, Vec<Binding<C>>>,
    /// Failures per (source, account), in milliseconds.
    account_failures: FailureBudgets<(IpAddr, String)>,
    /// Failures per source for unknown accounts and malformed credentials.
    source_failures: FailureBudgets<IpAddr>,
}

/// What an unknown account's credentials are checked against: random bytes no phone is
/// configured with (and were one to match, the account still does not exist).
const NO_ONES_PASSWORD: &str = "\u{1}dialbridge:no-such-account:5f0c9e2a7d41b8366a1e";

/// Most (source, account) and source failure counters kept at once.
const MAX_FAILURE_KEYS: usize = 100_000;

/// Seconds to the milliseconds of the failure budgets.
fn ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

impl<C: Clone> Registrar<C> {
    pub fn new(settings: RegistrarSettings, server_key: &[u8; 32]) -> Self {
        Self {
            issuer: NonceIssuer::new(server_key, settings.nonce_lifetime),
            settings,
            counts: NonceCounts::default(),
            bindings: HashMap::new(),
            account_failures: FailureBudgets::new(
                Budget {
                    max_failures: settings.max_failures,
                    window_ms: ms(settings.failure_window.as_secs()),
                },
                MAX_FAILURE_KEYS,
            ),
            source_failures: FailureBudgets::new(
                Budget {
                    max_failures: settings.max_source_failures,
                    window_ms: ms(settings.failure_window.as_secs()),
                },
                MAX_FAILURE_KEYS,
            ),
        }
    }

    pub fn settings(&self) -> &RegistrarSettings {
        &self.settings
    }

    /// Whether REGISTERs for `aor` from this source are refused for now (too many failures for
    /// that name from there, whether it exists or not); checked before looking anything up.
    pub fn is_blocked(&self, source: IpAddr, aor: &str, now: u64) -> bool {
        self.account_failures
            .retry_after_ms(&(source, aor.to_owned()), ms(now))
            .is_some()
    }

    /// Whether this source has sent too many malformed credentials or names that do not
    /// exist: such requests from it are refused unheard (those for accounts that exist are not).
    fn source_guessed_too_much(&self, source: IpAddr, now: u64) -> bool {
        self.source_failures.retry_after_ms(&source, ms(now)).is_some()
    }

    fn account_failed(&mut self, source: IpAddr, aor: &str, now: u64) {
        self.account_failures.failed(&(source, aor.to_owned()), ms(now));
    }

    fn source_failed(&mut self, source: IpAddr, now: u64) {
        self.source_failures.failed(&source, ms(now));
    }

    fn challenge(&self, now: u64, refused: Option<RegistrationRefusal>) -> RegisterReply {
        let stale = refused == Some(RegistrationRefusal::StaleNonce);
        RegisterReply::Challenge {
            values: digest::challenges(
                self.settings.realm,
                &self.issuer.issue(now),
                stale,
                self.settings.digest,
            ),
            refused,
        }
    }

    /// Decides on a REGISTER. `password` is the account's SIP password (`None`: no such
    /// account). `now` is unix seconds.
    pub fn register(&mut self, request: RegisterRequest<C>, password: Option<&str>, now: u64) -> RegisterReply {
        let source_ip = request.source.ip();
        if self.is_blocked(source_ip, &request.aor, now) {
            return RegisterReply::Refused(RegistrationRefusal::LockedOut);
        }
        let Some(authorization) = request.authorization.as_deref() else {
            return self.challenge(now, None);
        };
        let Ok(creds) = DigestResponse::parse(authorization) else {
            if self.source_guessed_too_much(source_ip, now) {
                return RegisterReply::Refused(RegistrationRefusal::LockedOut);
            }
            self.source_failed(source_ip, now);
            return RegisterReply::Refused(RegistrationRefusal::Malformed);
        };
        // An unknown account goes through the same checks as one that exists, against a
        // password nobody has, so that its answers (a new challenge for a bad nonce, 403 for
        // the rest) cannot tell the two apart; it is counted per name as one that exists is,
        // and also against the source.
        let known = password.is_some();
        if !known {
            if self.source_guessed_too_much(source_ip, now) {
                return RegisterReply::Refused(RegistrationRefusal::LockedOut);
            }
            self.source_failed(source_ip, now);
        }
        let verdict = digest::verify(
            &self.issuer,
            &mut self.counts,
            digest::Expected {
                realm: self.settings.realm,
                offer: self.settings.digest,
                method: "REGISTER",
            },
            &creds,
            password.unwrap_or(NO_ONES_PASSWORD),
            now,
        );
        let wrong_password = if known {
            RegistrationRefusal::WrongPassword
        } else {
            RegistrationRefusal::UnknownUser
        };
        let refusal = match verdict {
            Verdict::Accepted if known => None,
            Verdict::Stale if known => return self.challenge(now, Some(RegistrationRefusal::StaleNonce)),
            Verdict::Accepted | Verdict::Stale => Some(RegistrationRefusal::UnknownUser),
            Verdict::Rejected(RejectReason::ForgedNonce | RejectReason::QopRequired | RejectReason::Replayed) => {
                self.account_failed(source_ip, &request.aor, now);
                return self.challenge(now, Some(RegistrationRefusal::BadNonce));
            }
            Verdict::Rejected(RejectReason::UnsupportedAlgorithm | RejectReason::WrongRealm) => {
                Some(RegistrationRefusal::UnsupportedChallenge)
            }
            Verdict::Rejected(RejectReason::WrongPassword) => Some(wrong_password),
        };
        if let Some(refusal) = refusal {
            self.account_failed(source_ip, &request.aor, now);
            return RegisterReply::Refused(refusal);
        }
        if creds.username != request.aor {
            self.account_failed(source_ip, &request.aor, now);
            return RegisterReply::Refused(RegistrationRefusal::WrongToUser);
        }
        self.account_failures.succeeded(&(source_ip, request.aor.clone()));
        self.update_bindings(request, now)
    }

    fn update_bindings(&mut self, request: RegisterRequest<C>, now: u64) -> RegisterReply {
        let s = self.settings;
        match &request.contacts {
            Contacts::Query => {}
            Contacts::All => {
                if request.expires_header != Some(0) {
                    return RegisterReply::BadRequest("Contact: * needs Expires: 0");
                }
                self.bindings.remove(&request.aor);
            }
            Contacts::List(list) => {
                for contact in list {
                    let expires = contact.expires.or(request.expires_header).unwrap_or(s.default_expires);
                    if expires != 0 && expires < s.min_expires {
                        return RegisterReply::IntervalTooBrief {
                            min_expires: s.min_expires,
                        };
                    }
                }
                let bindings = self.bindings.entry(request.aor.clone()).or_default();
                for contact in list {
                    let expires = contact
                        .expires
                        .or(request.expires_header)
                        .unwrap_or(s.default_expires)
                        .min(s.max_expires);
                    bindings.retain(|b| b.contact != contact.uri);
                    if expires > 0 {
                        bindings.push(Binding {
                            contact: contact.uri.clone(),
                            expires_at: now + u64::from(expires),
                            source: request.source,
                            transport: request.transport,
                            connection: request.connection.clone(),
                            call_id: request.call_id.clone(),
                            cseq: request.cseq,
                        });
                    }
                }
                if bindings.is_empty() {
                    self.bindings.remove(&request.aor);
                }
            }
        }
        RegisterReply::Ok(
            self.bindings(&request.aor, now)
                .iter()
                .map(|b| {
                    (
                        b.contact.clone(),
                        u32::try_from(b.expires_at.saturating_sub(now)).unwrap_or(u32::MAX),
                    )
                })
                .collect(),
        )
    }

    /// Whether a phone is registered over the stream connection from `peer` (such a connection
    /// is kept open: calls to the phone go over it).
    pub fn has_stream_binding(&self, peer: SocketAddr, now: u64) -> bool {
        self.bindings
            .values()
            .flatten()
            .any(|b| b.transport != SipTransport::Udp && b.source == peer && b.expires_at > now)
    }

    /// The live bindings of an AOR, newest first.
    pub fn bindings(&self, aor: &str, now: u64) -> Vec<Binding<C>> {
        let mut live: Vec<Binding<C>> = self
            .bindings
            .get(aor)
            .map(|list| list.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        live.reverse();
        live
    }

    /// Drops expired bindings, old nonce counts and old failure counters.
    pub fn sweep(&mut self, now: u64) {
        self.bindings.retain(|_, list| {
            list.retain(|b| b.expires_at > now);
            !list.is_empty()
        });
        self.counts.sweep(now, self.issuer.lifetime());
        self.account_failures.sweep(ms(now));
        self.source_failures.sweep(ms(now));
    }

    /// Takes back the bindings a previous process kept (its [`Binding`]s as stored), so phones
    /// are reachable at once after a restart. A binding over TCP is not taken back: its
    /// connection died with that process, and the phone is unreachable until it registers
    /// again. Expired bindings are dropped. Returns how many were taken back.
    pub fn restore(&mut self, aor: &str, kept: Vec<Binding<C>>, now: u64) -> usize {
        let live: Vec<Binding<C>> = kept
            .into_iter()
            .filter(|b| b.transport == SipTransport::Udp && b.expires_at > now)
            .collect();
        let restored = live.len();
        if restored > 0 {
            let bindings = self.bindings.entry(aor.to_owned()).or_default();
            for binding in live {
                bindings.retain(|b| b.contact != binding.contact);
                bindings.push(binding);
            }
        }
        restored
    }

    pub fn binding_count(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
#[path = "registrar_test.rs"]
mod tests;

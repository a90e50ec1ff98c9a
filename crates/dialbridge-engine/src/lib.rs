//! The call engine: turns a preview-outcall request into a call. One task per call owns both
//! SIP legs and the media session, feeds their events (and timers, and hang-up requests) to the
//! core's [`CallMachine`], carries out the effects it returns, and reports progress and the
//! final record.
//!
//! Architecture invariant: the engine decides nothing itself: every decision is the state
//! machine's; the engine only does I/O. It knows tenants only as opaque fields it carries.

mod call;
mod softphones;
mod trunks;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use dialbridge_core::call::{CallRecord, CallTimers, EndReason, Outcome, Phase, Progress, Side};
pub use dialbridge_core::trunk_watch::Health;
pub use dialbridge_media::RelayStats;
use dialbridge_media::{MediaError, PortPool};
use dialbridge_sip::{AccountDirectory, SipStack};
pub use dialbridge_sip::{CarrierTarget, LegEnding};
pub use dialbridge_sip::{
    DigestOffer, KeptBinding, RegistrarSettings, RegistrationRefusal, SipConfig, SipTransport, TcpLimits,
};
pub use softphones::{SoftphoneAttachment, SoftphoneSignal};
use tokio::sync::mpsc;
pub use trunks::{TrunkAccount, TrunkStatus, TrunkWatch};

/// The relay's answer to a browser's offer, to come.
type MediaAnswer = tokio::sync::oneshot::Receiver<Result<String, dialbridge_media::WebRtcError>>;

/// Why a browser's answer to its call was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoftphoneError {
    #[error("no such call")]
    NoSuchCall,
    #[error("the call's agent is no softphone, or it answered already")]
    NotRinging,
    #[error("{0}")]
    Media(dialbridge_media::WebRtcError),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("a call with uniqueId {0} is already running")]
    DuplicateCall(String),
    #[error("media: {0}")]
    Media(#[from] MediaError),
    #[error("{0}")]
    Sip(#[from] dialbridge_sip::SipError),
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub sip: SipConfig,
    /// The address RTP sockets bind to and SDP advertises.
    pub rtp_ip: IpAddr,
    pub rtp_ports: RangeInclusive<u16>,
    /// No RTP from a bridged leg for this long ends the call.
    pub rtp_inactivity: Duration,
}

/// How the agent is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentPhone {
    /// A SIP phone registered as this address-of-record (`<enterpriseId>-<extension>`).
    Extension { aor: String },
    /// A telephone number called through the enterprise's trunk.
    Telephone { number: String },
    /// The agent's browser, attached as this address-of-record (`<enterpriseId>-<cno>`): a
    /// WebRTC session the page offers when it answers.
    Softphone { aor: String },
}

/// A carrier trunk, as the engine needs it to place a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkRoute {
    pub name: String,
    pub address: SocketAddr,
    /// The host written into Request-URIs (the carrier's name or address).
    pub host: String,
    pub transport: SipTransport,
    pub credential: Option<(String, String)>,
    /// How the carrier wants the numbers it is asked to call written.
    pub number_format: dialbridge_core::NumberFormat,
    /// How the carrier wants the caller id written.
    pub caller_id_format: dialbridge_core::NumberFormat,
    /// Where the carrier may send its requests inside the call from; empty: `address` only.
    pub sources: Vec<ipnet::IpNet>,
}

/// One preview outcall, everything decided: the engine only places it.
#[derive(Debug, Clone)]
pub struct PreviewOutcall {
    pub unique_id: String,
    pub agent_phone: AgentPhone,
    pub customer_number: String,
    /// Shown to the customer (From and P-Asserted-Identity), and to a telephone agent unless
    /// `agent_caller_id` says otherwise.
    pub caller_id: String,
    /// Shown to an agent reached as a telephone through the trunk.
    pub agent_caller_id: Option<String>,
    pub trunk: TrunkRoute,
    /// Further trunks for the customer, in order, when one answers 503 or 408, cannot be sent
    /// to, or does not answer at all.
    pub fallback_trunks: Vec<TrunkRoute>,
    pub timers: CallTimers,
    /// How the call is recorded; `None`: it is not.
    pub recording: Option<dialbridge_media::RecordingPlan>,
}

impl PreviewOutcall {
    /// The trunk of the customer's `attempt`th INVITE (from 0): the main trunk first, then
    /// each fallback in turn.
    pub(crate) fn customer_route(&self, attempt: usize) -> &TrunkRoute {
        match attempt {
            0 => &self.trunk,
            n => self.fallback_trunks.get(n - 1).unwrap_or(&self.trunk),
        }
    }
}

/// What a call reports, in order: progress events, then exactly one `Finished`.
#[derive(Debug, Clone)]
pub enum CallUpdate {
    Progress {
        progress: Progress,
        at_ms: i64,
    },
    /// The customer is being called through this fallback trunk (the one before failed), so
    /// the trunk's channels count this call from now on.
    CustomerTrunk {
        trunk: String,
    },
    /// How a restarted server would end this leg now (a CANCEL while it rings, a BYE once it
    /// answered), sent before the progress it comes with.
    LegEnding {
        leg: dialbridge_core::call::Leg,
        ending: LegEnding,
    },
    /// The bridged call's paid minutes run out soon: extend its credit hold and answer with
    /// [`Engine::credit_renewed`], or it ends when they do (asked again every few seconds).
    RenewCredit {
        paid_minutes: u32,
    },
    Finished(Box<CallReport>),
}

/// Everything a CDR needs about a call that ended.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub unique_id: String,
    pub outcome: Outcome,
    pub record: CallRecord,
    pub media: RelayStats,
    /// The trunk the customer was last called through (after a failover, not the first one);
    /// `None` when the customer was never called.
    pub customer_trunk: Option<String>,
}

pub struct CallHandle {
    pub unique_id: String,
    pub updates: mpsc::UnboundedReceiver<CallUpdate>,
}

/// Counts that must all return to zero when no call is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineCounts {
    pub calls: usize,
    pub sip_legs: usize,
    pub sip_dialogs: usize,
    pub rtp_port_pairs: usize,
    pub sip_unsolicited_answered: u64,
    pub sip_unsolicited_dropped: u64,
    /// By [`dialbridge_sip::RegistrationRefusal::index`].
    pub sip_registrations_refused: [u64; RegistrationRefusal::ALL.len()],
    pub sip_requests_from_wrong_source: u64,
}

enum Control {
    HangUp(dialbridge_core::call::PlatformCause),
    /// The call's credit hold now pays this many minutes.
    CreditRenewed(u32),
    /// Put the customer on hold (`true`) or take them off it.
    Hold(bool),
    /// The agent's browser answers with its offer (the call's softphone leg).
    SoftphoneOffer {
        offer: String,
        answer: tokio::sync::oneshot::Sender<Result<MediaAnswer, SoftphoneError>>,
    },
    /// The agent's browser declined the call.
    SoftphoneDeclined,
    /// The agent's browser page went away (closed, lost, replaced).
    SoftphoneGone,
    /// Pause the call's recording (`true`) or resume it.
    RecordingPaused(bool),
    /// A DTMF digit (RFC 4733 event code) to play into the customer's stream.
    Digit {
        event: u8,
        duration: std::time::Duration,
    },
}

struct Shared {
    sip: Arc<SipStack>,
    trunks: trunks::TrunkWatcher,
    ports: PortPool,
    config: EngineConfig,
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<Control>>>,
    accepting: AtomicBool,
    softphones: softphones::Softphones,
}

impl Shared {
    fn calls(&self) -> MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Control>>> {
        self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    pub async fn start(config: EngineConfig, directory: Arc<dyn AccountDirectory>) -> Result<Self, EngineError> {
        let sip = SipStack::start(config.sip.clone(), directory).await?;
        let ports = PortPool::new(config.rtp_ip, config.rtp_ports.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                sip: Arc::new(sip),
                trunks: trunks::TrunkWatcher::default(),
                ports,
                config,
                calls: Mutex::new(HashMap::new()),
                accepting: AtomicBool::new(true),
                softphones: softphones::Softphones::default(),
            }),
        })
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.shared.sip.local_addr()
    }

    /// Takes back the registrations a previous process kept, so registered phones are
    /// reachable at once after a restart (over UDP; a TCP phone must register again). Returns
    /// how many bindings were taken back.
    pub fn restore_registrations(&self, kept: Vec<(String, Vec<KeptBinding>)>) -> usize {
        self.shared.sip.restore_bindings(kept)
    }

    /// Sends a kept [`LegEnding`] of a call a previous process left up; the far end's final
    /// status, `None` when none came within `wait`.
    pub async fn end_leg(&self, ending: &LegEnding, wait: Duration) -> Result<Option<u16>, EngineError> {
        Ok(self.shared.sip.end_leg(ending, wait).await?)
    }

    /// Whether an extension's phone is registered now.
    pub fn is_registered(&self, aor: &str) -> bool {
        self.shared.sip.registration(aor).is_some()
    }

    /// Watches exactly these trunks from now on (keepalive OPTIONS, registration with the
    /// carrier); trunks not listed stop being watched.
    pub fn watch_trunks(&self, trunks: Vec<TrunkWatch>) {
        self.shared.trunks.replace(&self.shared.sip, trunks);
    }

    /// The addresses carriers send from: their requests outside calls (keepalives, calls to a
    /// caller id) are answered without the limit unsolicited traffic gets.
    pub fn set_carrier_sources(&self, ranges: Vec<ipnet::IpNet>) {
        self.shared.sip.set_carrier_sources(ranges);
    }

    /// What is known of a watched trunk; `None` when it is not watched.
    pub fn trunk_status(&self, name: &str) -> Option<TrunkStatus> {
        self.shared.trunks.status(name)
    }

    /// Every watched trunk's status, by name.
    pub fn trunk_statuses(&self) -> Vec<(String, TrunkStatus)> {
        self.shared.trunks.statuses()
    }

    /// Starts a call and returns at once; progress arrives on the handle.
    pub fn start_preview_outcall(&self, request: PreviewOutcall) -> Result<CallHandle, EngineError> {
        if !self.shared.accepting.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        {
            let mut calls = self.shared.calls();
            if calls.contains_key(&request.unique_id) {
                return Err(EngineError::DuplicateCall(request.unique_id));
            }
            calls.insert(request.unique_id.clone(), control_tx);
        }
        let media = dialbridge_media::MediaSession::start(
            &self.shared.ports,
            dialbridge_media::RelaySettings {
                inactivity_timeout: self.shared.config.rtp_inactivity,
            },
            request.recording.clone(),
        );
        let (media, media_events) = match media {
            Ok(m) => m,
            Err(e) => {
                self.shared.calls().remove(&request.unique_id);
                return Err(e.into());
            }
        };
        let (updates_tx, updates) = mpsc::unbounded_channel();
        let unique_id = request.unique_id.clone();
        let shared = self.shared.clone();
        tokio::spawn(call::run(shared, request, media, media_events, control_rx, updates_tx));
        Ok(CallHandle { unique_id, updates })
    }

    /// Pauses a running call's recording (silence in the file, marked in its sidecar) or
    /// resumes it; false when there is no such call.
    pub fn pause_recording(&self, unique_id: &str, paused: bool) -> bool {
        self.shared
            .calls()
            .get(unique_id)
            .is_some_and(|c| c.send(Control::RecordingPaused(paused)).is_ok())
    }

    /// Hangs up a running call (both legs); false when there is no such call.
    pub fn hang_up(&self, unique_id: &str) -> bool {
        self.shared.calls().get(unique_id).is_some_and(|c| {
            c.send(Control::HangUp(dialbridge_core::call::PlatformCause::Api))
                .is_ok()
        })
    }

    /// Plays a DTMF digit (`0`-`9`, `*`, `#`, `A`-`D`) into the customer's stream as RFC 4733
    /// events, while the call is bridged; false when there is no such call or it is no digit.
    pub fn send_digit(&self, unique_id: &str, digit: char) -> bool {
        let event = match digit.to_ascii_uppercase() {
            d @ '0'..='9' => d as u8 - b'0',
            '*' => 10,
            '#' => 11,
            d @ 'A'..='D' => d as u8 - b'A' + 12,
            _ => return false,
        };
        let duration = std::time::Duration::from_millis(160);
        self.shared
            .calls()
            .get(unique_id)
            .is_some_and(|c| c.send(Control::Digit { event, duration }).is_ok())
    }

    /// Puts the bridged call's customer on hold (they hear the hold tone, the agent hears
    /// nothing, nothing is relayed) or takes them off it; answered by a
    /// [`Progress::OnHold`] / [`Progress::Resumed`] update when it changed something. False when
    /// there is no such call.
    pub fn hold(&self, unique_id: &str, on_hold: bool) -> bool {
        self.shared
            .calls()
            .get(unique_id)
            .is_some_and(|c| c.send(Control::Hold(on_hold)).is_ok())
    }

    /// Attaches the agent's browser page as its softphone (`aor` `<enterpriseId>-<cno>`): calls
    /// for it are signalled on the receiver until the attachment is dropped (which tells a call
    /// it was rung with or carried that its agent is gone). A later attachment replaces it.
    pub fn attach_softphone(&self, aor: &str) -> (SoftphoneAttachment, mpsc::UnboundedReceiver<SoftphoneSignal>) {
        softphones::attach(&self.shared, aor)
    }

    /// Whether a page is attached as this softphone.
    pub fn softphone_attached(&self, aor: &str) -> bool {
        self.shared.softphones.is_attached(aor)
    }

    /// The agent's browser answers the call it was rung with: its SDP offer in, dialbridge's
    /// answer out (ICE-lite, one host candidate at the public address).
    pub async fn answer_softphone(&self, unique_id: &str, offer: String) -> Result<String, SoftphoneError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let sent = self
            .shared
            .calls()
            .get(unique_id)
            .is_some_and(|c| c.send(Control::SoftphoneOffer { offer, answer }).is_ok());
        if !sent {
            return Err(SoftphoneError::NoSuchCall);
        }
        let media = answered.await.map_err(|_| SoftphoneError::NoSuchCall)??;
        match media.await {
            Ok(result) => result.map_err(SoftphoneError::Media),
            Err(_) => Err(SoftphoneError::NoSuchCall),
        }
    }

    /// The agent's browser declines the call it was rung with.
    pub fn decline_softphone(&self, unique_id: &str) -> bool {
        self.shared
            .calls()
            .get(unique_id)
            .is_some_and(|c| c.send(Control::SoftphoneDeclined).is_ok())
    }

    /// The answer to a call's [`CallUpdate::RenewCredit`]: its credit hold now pays
    /// `paid_minutes`, so it runs until they are used up. False when there is no such call.
    pub fn credit_renewed(&self, unique_id: &str, paid_minutes: u32) -> bool {
        self.shared
            .calls()
            .get(unique_id)
            .is_some_and(|c| c.send(Control::CreditRenewed(paid_minutes)).is_ok())
    }

    pub fn counts(&self) -> EngineCounts {
        let sip = self.shared.sip.counts();
        EngineCounts {
            calls: self.shared.calls().len(),
            sip_legs: sip.legs,
            sip_dialogs: sip.dialogs,
            rtp_port_pairs: self.shared.ports.in_use(),
            sip_unsolicited_answered: sip.unsolicited_answered,
            sip_unsolicited_dropped: sip.unsolicited_dropped,
            sip_registrations_refused: sip.registrations_refused,
            sip_requests_from_wrong_source: sip.requests_from_wrong_source,
        }
    }

    /// Whether new calls are taken (not once a shutdown has begun).
    pub fn is_accepting(&self) -> bool {
        self.shared.accepting.load(Ordering::SeqCst)
    }

    /// Stops taking calls, lets the running ones end for up to `grace`, hangs up the rest,
    /// and stops SIP.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.accepting.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        while !self.shared.calls().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let remaining: Vec<_> = self.shared.calls().values().cloned().collect();
        if !remaining.is_empty() {
            tracing::info!(calls = remaining.len(), "hanging up the calls still up");
        }
        for control in remaining {
            let _ = control.send(Control::HangUp(dialbridge_core::call::PlatformCause::Shutdown));
        }
        let hard_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.shared.calls().is_empty() && tokio::time::Instant::now() < hard_deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.trunks.stop().await;
        self.shared.sip.shutdown().await;
    }
}

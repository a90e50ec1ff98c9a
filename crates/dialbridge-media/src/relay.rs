//! The per-call media relay: one task owns both legs' sockets (no lock or channel per packet,
//! buffers allocated once), latches onto where each far end really sends from (symmetric
//! RTP), relays according to the call's phase, converts between µ-law and A-law when the legs
//! negotiated different laws, plays ringback to the agent and the hold tone to the customer,
//! terminates RTCP, and reports a leg that went silent.
//!
//! [`MediaSession`] is the interface the engine uses; a kernel forwarding path could sit
//! behind the same methods for calls that need no tone, transcoding or recording.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::g711::Law;
use crate::ports::{PortPool, RtpPorts};
use crate::recording::{RecordingPlan, BATCH_PERIOD};
use crate::relay_core::{Digit, RelayCore};
use crate::webrtc::{GoneBecause, WebRtcError, WebRtcLeg, WebRtcNews, WebRtcOutput};
use crate::MediaError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaLeg {
    Agent,
    Customer,
}

/// What the relay does with packets, by phase of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// Nothing is forwarded (the agent's phone is ringing, or the customer is being dialled).
    Silent,
    /// The agent hears a generated ringback tone.
    Ringback,
    /// The agent hears the carrier's early media; nothing goes to the customer yet.
    EarlyMedia,
    /// Both ways.
    Bridged,
    /// The agent put the customer on hold: nothing is forwarded either way (the customer must
    /// not hear the agent's room); the customer hears the hold tone.
    OnHold,
}

impl RelayMode {
    /// Both legs are up (bridged, on hold or not): a silent leg is a lost one.
    pub fn is_connected(self) -> bool {
        matches!(self, RelayMode::Bridged | RelayMode::OnHold)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// No RTP from this leg for the inactivity timeout while bridged.
    Inactive(MediaLeg),
    /// The agent's browser (a WebRTC leg) has its media up, in this law.
    WebRtcConnected(Law),
    /// The agent's browser is gone.
    WebRtcGone(GoneBecause),
}

/// Packets and bytes per direction, for the call record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub received_from_agent: u64,
    pub received_from_customer: u64,
    pub agent_to_customer_packets: u64,
    pub agent_to_customer_bytes: u64,
    pub customer_to_agent_packets: u64,
    pub customer_to_agent_bytes: u64,
    pub ringback_packets: u64,
    pub hold_tone_packets: u64,
    /// Telephone-event (DTMF) packets forwarded, both ways.
    pub telephone_events: u64,
    /// Recording batches the recorder had no room for (silence in the file).
    pub recording_batches_dropped: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    pub inactivity_timeout: Duration,
}

enum Command {
    Remote(MediaLeg, RemoteLeg),
    Mode(RelayMode),
    Digit(Digit),
    StartRecording,
    RecordingPaused(bool),
    /// The agent's browser offers its WebRTC session: answered on the agent's port.
    WebRtcOffer {
        offer: String,
        candidate: SocketAddr,
        answer: oneshot::Sender<Result<String, WebRtcError>>,
    },
}

/// The media of one call. Dropping it stops the relay; [`MediaSession::finish`] stops it and
/// returns its counters.
pub struct MediaSession {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<RelayStats>,
    agent_port: u16,
    customer_port: u16,
}

impl MediaSession {
    /// Takes two port pairs from the pool and starts the relay task; the call is recorded as
    /// `recording` says once [`MediaSession::start_recording`] is called.
    pub fn start(
        pool: &PortPool,
        settings: RelaySettings,
        recording: Option<RecordingPlan>,
    ) -> Result<(Self, mpsc::Receiver<MediaEvent>), MediaError> {
        let agent = pool.allocate()?;
        let customer = pool.allocate()?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::channel(8);
        let agent_port = agent.port;
        let customer_port = customer.port;
        let relay = Relay::new(agent, customer, settings, recording, event_tx);
        let task = tokio::spawn(relay.run(command_rx));
        Ok((
            Self {
                commands,
                task,
                agent_port,
                customer_port,
            },
            events,
        ))
    }

    /// The RTP port offered to the agent's phone.
    pub fn agent_port(&self) -> u16 {
        self.agent_port
    }

    /// The RTP port offered to the carrier.
    pub fn customer_port(&self) -> u16 {
        self.customer_port
    }

    /// What a leg's SDP says, at the answer and again at each re-INVITE or UPDATE.
    pub fn set_remote(&self, leg: MediaLeg, remote: RemoteLeg) {
        let _ = self.commands.send(Command::Remote(leg, remote));
    }

    pub fn set_mode(&self, mode: RelayMode) {
        let _ = self.commands.send(Command::Mode(mode));
    }

    /// Starts the call's recording (once; nothing when it has none).
    pub fn start_recording(&self) {
        let _ = self.commands.send(Command::StartRecording);
    }

    /// Pauses the recording (silence in the file, marked) or resumes it.
    pub fn set_recording_paused(&self, paused: bool) {
        let _ = self.commands.send(Command::RecordingPaused(paused));
    }

    /// Plays a key (RFC 4733 event code) to a leg as telephone events under the payload type
    /// it takes them with, continuing the stream it is sent; only while the call is bridged,
    /// and not to a leg that takes none. For a phone that sends its keys by SIP INFO.
    pub fn send_digit(&self, to: MediaLeg, event: u8, duration: Duration) {
        let _ = self.commands.send(Command::Digit(Digit { to, event, duration }));
    }

    /// Makes the agent's leg a WebRTC session: answers the browser's `offer` with one host
    /// candidate, the agent's port at `candidate_ip` (the address browsers reach this server
    /// at). From then on the agent's port speaks ICE, DTLS and SRTP; [`MediaEvent::WebRtcConnected`]
    /// says when its media is up.
    pub async fn accept_webrtc(&self, offer: String, candidate_ip: std::net::IpAddr) -> Result<String, WebRtcError> {
        self.offer_webrtc(offer, candidate_ip)
            .await
            .map_err(|_| WebRtcError::Ended)?
    }

    /// [`MediaSession::accept_webrtc`] without waiting: the answer comes on the receiver (which
    /// closes if the call ends first).
    pub fn offer_webrtc(
        &self,
        offer: String,
        candidate_ip: std::net::IpAddr,
    ) -> oneshot::Receiver<Result<String, WebRtcError>> {
        let (answer, answered) = oneshot::channel();
        let candidate = SocketAddr::new(candidate_ip, self.agent_port);
        let _ = self.commands.send(Command::WebRtcOffer {
            offer,
            candidate,
            answer,
        });
        answered
    }

    /// Stops the relay, releases its ports, and returns the counters.
    pub async fn finish(self) -> RelayStats {
        drop(self.commands);
        self.task.await.unwrap_or_default()
    }
}

struct Relay {
    core: RelayCore,
    agent: RtpPorts,
    customer: RtpPorts,
    events: mpsc::Sender<MediaEvent>,
    /// The agent's leg when it is a browser's WebRTC session, and when it next wants the time.
    webrtc: Option<(WebRtcLeg, tokio::time::Instant)>,
    webrtc_output: WebRtcOutput,
}

const MAX_PACKET: usize = 1500;

impl Relay {
    fn new(
        agent: RtpPorts,
        customer: RtpPorts,
        settings: RelaySettings,
        recording: Option<RecordingPlan>,
        events: mpsc::Sender<MediaEvent>,
    ) -> Self {
        Self {
            core: RelayCore::new(settings, std::time::Instant::now()).with_recording(recording),
            agent,
            customer,
            events,
            webrtc: None,
            webrtc_output: WebRtcOutput::default(),
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) -> RelayStats {
        let mut agent_buf = vec![0u8; MAX_PACKET];
        let mut customer_buf = vec![0u8; MAX_PACKET];
        let mut agent_rtcp_buf = vec![0u8; MAX_PACKET];
        let mut customer_rtcp_buf = vec![0u8; MAX_PACKET];
        let mut tone_tick = tokio::time::interval(Duration::from_millis(20));
        tone_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let watchdog_period =
            (self.core.inactivity_timeout() / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut digit_tick = tokio::time::interval(Duration::from_millis(20));
        digit_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut watchdog = tokio::time::interval(watchdog_period);
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut record_tick = tokio::time::interval(BATCH_PERIOD);
        record_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Remote(leg, remote)) => self.core.set_remote(leg, remote, std::time::Instant::now()),
                    Some(Command::Digit(digit)) => {
                        if self.core.queue_digit(digit) {
                            digit_tick.reset_immediately();
                        }
                    }
                    Some(Command::Mode(mode)) => self.core.set_mode(mode, std::time::Instant::now()),
                    Some(Command::StartRecording) => {
                        self.core.start_recording(std::time::Instant::now());
                        record_tick.reset();
                    }
                    Some(Command::RecordingPaused(paused)) => {
                        self.core.set_recording_paused(paused, std::time::Instant::now());
                    }
                    Some(Command::WebRtcOffer { offer, candidate, answer }) => {
                        let _ = answer.send(self.accept_webrtc(&offer, candidate).await);
                    }
                    None => break,
                },
                received = self.agent.rtp.recv_from(&mut agent_buf) => {
                    if let Ok((len, source)) = received {
                        match self.webrtc.as_mut() {
                            Some((leg, _)) => {
                                leg.receive(std::time::Instant::now(), source, &agent_buf[..len]);
                                self.drive_webrtc().await;
                            }
                            None => self.relay(MediaLeg::Agent, &mut agent_buf[..len], source).await,
                        }
                    }
                }
                () = sleep_until_webrtc(self.webrtc.as_ref().map(|(_, due)| *due)) => {
                    if let Some((leg, _)) = self.webrtc.as_mut() {
                        leg.tick(std::time::Instant::now());
                    }
                    self.drive_webrtc().await;
                }
                received = self.customer.rtp.recv_from(&mut customer_buf) => {
                    if let Ok((len, source)) = received {
                        self.relay(MediaLeg::Customer, &mut customer_buf[..len], source).await;
                    }
                }
                // RTCP is terminated here: each leg's reports describe its own hop.
                _ = self.agent.rtcp.recv_from(&mut agent_rtcp_buf) => {}
                _ = self.customer.rtcp.recv_from(&mut customer_rtcp_buf) => {}
                _ = tone_tick.tick(), if self.core.plays_tone() => {
                    if self.core.announcing() {
                        self.announce().await;
                        continue;
                    }
                    if let Some((to, remote, packet)) = self.core.next_tone(std::time::Instant::now()) {
                        let sent = match (to, self.webrtc.as_mut()) {
                            (MediaLeg::Agent, Some((leg, _))) => {
                                leg.send(std::time::Instant::now(), packet);
                                true
                            }
                            (MediaLeg::Agent, None) => self.agent.rtp.send_to(packet, remote).await.is_ok(),
                            (MediaLeg::Customer, _) => self.customer.rtp.send_to(packet, remote).await.is_ok(),
                        };
                        if sent {
                            self.core.tone_sent(to);
                        }
                        if to == MediaLeg::Agent {
                            self.drive_webrtc().await;
                        }
                    }
                    if let Some((remote, packet)) = self.core.next_hold_silence() {
                        match self.webrtc.as_mut() {
                            Some((leg, _)) => leg.send(std::time::Instant::now(), packet),
                            None => {
                                let _ = self.agent.rtp.send_to(packet, remote).await;
                            }
                        }
                    }
                }
                _ = digit_tick.tick(), if self.core.digits_pending() => {
                    if let Some((to, Some(remote), packet)) = self.core.next_digit_packet() {
                        let socket = match to {
                            MediaLeg::Agent => &self.agent.rtp,
                            MediaLeg::Customer => &self.customer.rtp,
                        };
                        if socket.send_to(packet, remote).await.is_ok() {
                            self.core.digit_sent();
                        }
                    }
                }
                _ = record_tick.tick(), if self.core.recording() => {
                    self.core.hand_over_recording(std::time::Instant::now());
                }
                _ = watchdog.tick(), if self.core.mode().is_connected() => {
                    for leg in self.core.newly_inactive(std::time::Instant::now()) {
                        let _ = self.events.try_send(MediaEvent::Inactive(leg));
                    }
                }
            }
        }
        self.core.finish_recording(std::time::Instant::now());
        self.core.stats()
    }

    /// 20 ms of the consent announcement to both legs.
    async fn announce(&mut self) {
        let now = std::time::Instant::now();
        if let Some((remote, packet)) = self.core.next_announcement(MediaLeg::Customer) {
            let _ = self.customer.rtp.send_to(packet, remote).await;
        }
        if let Some((remote, packet)) = self.core.next_announcement(MediaLeg::Agent) {
            match self.webrtc.as_mut() {
                Some((leg, _)) => leg.send(now, packet),
                None => {
                    let _ = self.agent.rtp.send_to(packet, remote).await;
                }
            }
        }
        self.core.announcement_advanced(now);
        self.drive_webrtc().await;
    }

    /// One packet from a leg: what the core decides, sent.
    async fn relay(&mut self, from: MediaLeg, packet: &mut [u8], source: SocketAddr) {
        let now = std::time::Instant::now();
        let Some(forward) = self.core.on_packet(from, packet, source, now) else {
            return;
        };
        let sent = match (forward.to, self.webrtc.as_mut()) {
            (MediaLeg::Agent, Some((leg, _))) => {
                leg.send(now, packet);
                true
            }
            (MediaLeg::Agent, None) => self.agent.rtp.send_to(packet, forward.remote).await.is_ok(),
            (MediaLeg::Customer, _) => self.customer.rtp.send_to(packet, forward.remote).await.is_ok(),
        };
        if sent {
            self.core.forwarded(&forward, packet.len());
        }
        if forward.to == MediaLeg::Agent {
            self.drive_webrtc().await;
        }
    }

    /// The browser's offer: the agent's leg becomes its WebRTC session (once; a second offer
    /// is refused: one browser per call).
    async fn accept_webrtc(&mut self, offer: &str, candidate: SocketAddr) -> Result<String, WebRtcError> {
        if self.webrtc.is_some() {
            return Err(WebRtcError::AlreadyAnswered);
        }
        let (leg, answer) = match WebRtcLeg::accept(offer, candidate, std::time::Instant::now()) {
            Ok(accepted) => accepted,
            Err(e) => {
                // The call is told too: it waits for this browser's media otherwise.
                let _ = self.events.send(MediaEvent::WebRtcGone(GoneBecause::Failed)).await;
                return Err(e);
            }
        };
        self.webrtc = Some((leg, tokio::time::Instant::now()));
        self.drive_webrtc().await;
        Ok(answer)
    }

    /// Does what the WebRTC session says: its datagrams sent, its news told (the agent's
    /// address and law given to the core once its media is up), the agent's audio relayed.
    async fn drive_webrtc(&mut self) {
        let Some((leg, due)) = self.webrtc.as_mut() else {
            return;
        };
        let now = std::time::Instant::now();
        let next = leg.poll(now, &mut self.webrtc_output);
        *due = tokio::time::Instant::from_std(next);
        let address = leg.address();
        let mut output = std::mem::take(&mut self.webrtc_output);
        for (to, datagram) in &output.transmit {
            let _ = self.agent.rtp.send_to(datagram, *to).await;
        }
        for news in &output.news {
            let event = match *news {
                WebRtcNews::Connected(law) => {
                    let remote = RemoteLeg {
                        address,
                        law,
                        telephone_event: None,
                        sends: true,
                    };
                    self.core.set_remote(MediaLeg::Agent, remote, now);
                    MediaEvent::WebRtcConnected(law)
                }
                WebRtcNews::Gone(because) => MediaEvent::WebRtcGone(because),
            };
            // Never dropped: the call waits for these (a full channel waits for the engine).
            let _ = self.events.send(event).await;
        }
        for packet in &mut output.audio {
            let Some(forward) = self.core.on_packet(MediaLeg::Agent, packet, address, now) else {
                continue;
            };
            if self.customer.rtp.send_to(packet, forward.remote).await.is_ok() {
                self.core.forwarded(&forward, packet.len());
            }
        }
        output.clear();
        self.webrtc_output = output;
    }
}

/// Sleeps until the WebRTC session wants the time; forever when the agent's leg is no browser.
async fn sleep_until_webrtc(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a leg's session description says about its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteLeg {
    pub address: SocketAddr,
    pub law: Law,
    /// The payload type it takes telephone events under (`None`: it takes none).
    pub telephone_event: Option<u8>,
    /// Whether it sends RTP (not `recvonly` or `inactive`).
    pub sends: bool,
}

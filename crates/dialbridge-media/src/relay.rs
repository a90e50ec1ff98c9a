//! The per-call media relay: one task owns both legs' sockets (no lock or channel per packet,
//! buffers allocated once), latches onto where each far end really sends from (symmetric
//! RTP), relays according to the call's phase, converts between µ-law and A-law when the legs
//! negotiated different laws, plays ringback to the agent, terminates RTCP, and reports a leg
//! that went silent.
//!
//! [`MediaSession`] is the interface the engine uses; a kernel forwarding path could sit
//! behind the same methods for calls that need no tone, transcoding or recording.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::g711::{self, Law};
use crate::ports::{PortPool, RtpPorts};
use crate::sdp;
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// No RTP from this leg for the inactivity timeout while bridged.
    Inactive(MediaLeg),
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
    /// Telephone-event (DTMF) packets forwarded, both ways.
    pub telephone_events: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    pub inactivity_timeout: Duration,
}

enum Command {
    Remote(MediaLeg, RemoteLeg),
    Mode(RelayMode),
    Digit(Digit),
}

/// A key to play to a leg as RFC 4733 telephone events.
#[derive(Debug, Clone, Copy)]
struct Digit {
    to: MediaLeg,
    event: u8,
    duration: Duration,
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
    /// Takes two port pairs from the pool and starts the relay task.
    pub fn start(pool: &PortPool, settings: RelaySettings) -> Result<(Self, mpsc::Receiver<MediaEvent>), MediaError> {
        let agent = pool.allocate()?;
        let customer = pool.allocate()?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::channel(4);
        let agent_port = agent.port;
        let customer_port = customer.port;
        let relay = Relay::new(agent, customer, settings);
        let task = tokio::spawn(relay.run(command_rx, event_tx));
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

    /// Plays a key (RFC 4733 event code) to a leg as telephone events under the payload type
    /// it takes them with, continuing the stream it is sent; only while the call is bridged,
    /// and not to a leg that takes none. For a phone that sends its keys by SIP INFO.
    pub fn send_digit(&self, to: MediaLeg, event: u8, duration: Duration) {
        let _ = self.commands.send(Command::Digit(Digit { to, event, duration }));
    }

    /// Stops the relay, releases its ports, and returns the counters.
    pub async fn finish(self) -> RelayStats {
        drop(self.commands);
        self.task.await.unwrap_or_default()
    }
}

struct Side {
    ports: RtpPorts,
    /// Where to send: the SDP address until the first packet, then where packets come from.
    remote: Option<SocketAddr>,
    latched: bool,
    law: Law,
    telephone_event: Option<u8>,
    /// The address its SDP gave, to tell a moved stream from a refresh.
    described: Option<SocketAddr>,
    /// Whether its SDP says it sends RTP (on hold with `inactive` it does not: no timeout).
    sends: bool,
    last_received: Instant,
    inactive_reported: bool,
    sent: SentStream,
}

/// The RTP stream this leg is sent, so that packets we make up (a key pressed by INFO)
/// continue it: relayed packets' sequence numbers are shifted by how many we inserted.
#[derive(Debug, Clone, Copy, Default)]
struct SentStream {
    ssrc: Option<u32>,
    next_sequence: u16,
    last_timestamp: u32,
    sequence_shift: u16,
}

impl SentStream {
    /// Shifts a relayed packet's sequence number and remembers where the stream is.
    fn relay(&mut self, packet: &mut [u8]) {
        if packet.len() < RTP_HEADER || packet[0] >> 6 != 2 {
            return;
        }
        let sequence = u16::from_be_bytes([packet[2], packet[3]]).wrapping_add(self.sequence_shift);
        packet[2..4].copy_from_slice(&sequence.to_be_bytes());
        self.next_sequence = sequence.wrapping_add(1);
        self.last_timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        self.ssrc = Some(u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]));
    }

    /// Takes the next sequence number for a packet of ours.
    fn insert(&mut self) -> u16 {
        let sequence = self.next_sequence;
        self.next_sequence = sequence.wrapping_add(1);
        self.sequence_shift = self.sequence_shift.wrapping_add(1);
        sequence
    }
}

/// A key being played: RFC 4733 §2.5 — one packet per 20 ms with the event's start timestamp
/// and the duration so far, the first marked, the last (end bit set) sent three times.
struct Playing {
    to: MediaLeg,
    packet: [u8; RTP_HEADER + 4],
    total_samples: u32,
    elapsed_samples: u32,
    ends_left: u8,
}

const SAMPLES_PER_TICK: u32 = 160;
const END_REPEATS: u8 = 3;
/// The volume field of the events we generate (-10 dBm0).
const EVENT_VOLUME: u8 = 10;

impl Playing {
    fn start(digit: Digit, payload_type: u8, stream: &SentStream) -> Self {
        let samples = u32::try_from(digit.duration.as_millis().saturating_mul(8)).unwrap_or(u32::MAX);
        let mut packet = [0u8; RTP_HEADER + 4];
        packet[0] = 0x80;
        packet[1] = 0x80 | (payload_type & 0x7F);
        let timestamp = match stream.ssrc {
            Some(_) => stream.last_timestamp.wrapping_add(SAMPLES_PER_TICK),
            None => rand::random(),
        };
        packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
        packet[8..12].copy_from_slice(&stream.ssrc.unwrap_or_else(rand::random).to_be_bytes());
        packet[RTP_HEADER] = digit.event;
        Self {
            to: digit.to,
            packet,
            total_samples: samples.clamp(SAMPLES_PER_TICK, u32::from(u16::MAX)),
            elapsed_samples: 0,
            ends_left: END_REPEATS,
        }
    }

    /// The next packet, with its sequence number from the stream; `None` once done.
    fn next_packet(&mut self, stream: &mut SentStream) -> Option<&[u8]> {
        if self.ends_left == 0 {
            return None;
        }
        if self.elapsed_samples > 0 {
            self.packet[1] &= 0x7F;
        }
        self.elapsed_samples = (self.elapsed_samples + SAMPLES_PER_TICK).min(self.total_samples);
        let ended = self.elapsed_samples >= self.total_samples;
        if ended {
            self.ends_left -= 1;
        }
        self.packet[RTP_HEADER + 1] = if ended { 0x80 } else { 0 } | EVENT_VOLUME;
        let duration = u16::try_from(self.elapsed_samples).unwrap_or(u16::MAX);
        self.packet[RTP_HEADER + 2..].copy_from_slice(&duration.to_be_bytes());
        self.packet[2..4].copy_from_slice(&stream.insert().to_be_bytes());
        Some(&self.packet)
    }
}

impl Side {
    fn new(ports: RtpPorts) -> Self {
        Self {
            ports,
            remote: None,
            latched: false,
            law: Law::Mu,
            telephone_event: None,
            described: None,
            sends: true,
            last_received: Instant::now(),
            inactive_reported: false,
            sent: SentStream::default(),
        }
    }

    /// Symmetric RTP: the first packet fixes the far end; packets from elsewhere are dropped so
    /// a stranger cannot take over the stream.
    fn accept_from(&mut self, source: SocketAddr) -> bool {
        if !self.latched {
            self.latched = true;
            self.remote = Some(source);
        }
        self.remote == Some(source)
    }
}

struct Relay {
    agent: Side,
    customer: Side,
    mode: RelayMode,
    settings: RelaySettings,
    stats: RelayStats,
    ringback: Ringback,
    digits: VecDeque<Digit>,
    playing: Option<Playing>,
}

const MAX_PACKET: usize = 1500;
const RTP_HEADER: usize = 12;

impl Relay {
    fn new(agent: RtpPorts, customer: RtpPorts, settings: RelaySettings) -> Self {
        Self {
            agent: Side::new(agent),
            customer: Side::new(customer),
            mode: RelayMode::Silent,
            settings,
            stats: RelayStats::default(),
            ringback: Ringback::new(),
            digits: VecDeque::new(),
            playing: None,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::Sender<MediaEvent>,
    ) -> RelayStats {
        let mut agent_buf = vec![0u8; MAX_PACKET];
        let mut customer_buf = vec![0u8; MAX_PACKET];
        let mut agent_rtcp_buf = vec![0u8; MAX_PACKET];
        let mut customer_rtcp_buf = vec![0u8; MAX_PACKET];
        let mut ringback_tick = tokio::time::interval(Duration::from_millis(20));
        ringback_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let watchdog_period =
            (self.settings.inactivity_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut digit_tick = tokio::time::interval(Duration::from_millis(20));
        digit_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut watchdog = tokio::time::interval(watchdog_period);
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Remote(leg, remote)) => {
                        let side = self.side(leg);
                        // A new address (a re-INVITE moved the stream): send there, and latch
                        // again onto where its packets come from. The same address: a refresh.
                        if side.described != Some(remote.address) {
                            side.described = Some(remote.address);
                            side.remote = Some(remote.address);
                            side.latched = false;
                        }
                        side.law = remote.law;
                        side.telephone_event = remote.telephone_event;
                        if remote.sends && !side.sends {
                            side.last_received = Instant::now();
                            side.inactive_reported = false;
                        }
                        side.sends = remote.sends;
                    }
                    Some(Command::Digit(digit)) => {
                        if self.digits.is_empty() && self.playing.is_none() {
                            digit_tick.reset_immediately();
                        }
                        self.digits.push_back(digit);
                    }
                    Some(Command::Mode(mode)) => {
                        if mode == RelayMode::Bridged && self.mode != RelayMode::Bridged {
                            let now = Instant::now();
                            self.agent.last_received = now;
                            self.customer.last_received = now;
                        }
                        self.mode = mode;
                    }
                    None => break,
                },
                received = self.agent.ports.rtp.recv_from(&mut agent_buf) => {
                    if let Ok((len, source)) = received {
                        self.on_packet(MediaLeg::Agent, &mut agent_buf[..len], source).await;
                    }
                }
                received = self.customer.ports.rtp.recv_from(&mut customer_buf) => {
                    if let Ok((len, source)) = received {
                        self.on_packet(MediaLeg::Customer, &mut customer_buf[..len], source).await;
                    }
                }
                // RTCP is terminated here: each leg's reports describe its own hop.
                _ = self.agent.ports.rtcp.recv_from(&mut agent_rtcp_buf) => {}
                _ = self.customer.ports.rtcp.recv_from(&mut customer_rtcp_buf) => {}
                _ = ringback_tick.tick(), if self.mode == RelayMode::Ringback => {
                    if let Some(remote) = self.agent.remote {
                        let packet = self.ringback.next_packet(self.agent.law);
                        if self.agent.ports.rtp.send_to(packet, remote).await.is_ok() {
                            self.stats.ringback_packets += 1;
                        }
                    }
                }
                _ = digit_tick.tick(), if self.playing.is_some() || !self.digits.is_empty() => {
                    self.play_digits().await;
                }
                _ = watchdog.tick(), if self.mode == RelayMode::Bridged => {
                    for leg in [MediaLeg::Agent, MediaLeg::Customer] {
                        let timeout = self.settings.inactivity_timeout;
                        let side = self.side(leg);
                        if side.sends && !side.inactive_reported && side.last_received.elapsed() >= timeout {
                            side.inactive_reported = true;
                            let _ = events.try_send(MediaEvent::Inactive(leg));
                        }
                    }
                }
            }
        }
        self.stats
    }

    /// Sends the next packet of the key being played, starting the next queued one when
    /// none is. A key for a leg that takes no telephone events, or while the call is not
    /// bridged, is dropped.
    async fn play_digits(&mut self) {
        if self.playing.is_none() {
            let Some(digit) = self.digits.pop_front() else { return };
            let bridged = self.mode == RelayMode::Bridged;
            let to = self.side(digit.to);
            match (to.telephone_event, bridged) {
                (Some(payload_type), true) => self.playing = Some(Playing::start(digit, payload_type, &to.sent)),
                _ => {
                    tracing::debug!(
                        ?digit,
                        bridged,
                        "key not played: not bridged, or the leg takes no events"
                    );
                    return;
                }
            }
        }
        let Some(playing) = self.playing.as_mut() else { return };
        let to = match playing.to {
            MediaLeg::Agent => &mut self.agent,
            MediaLeg::Customer => &mut self.customer,
        };
        let Some(packet) = playing.next_packet(&mut to.sent) else {
            self.playing = None;
            return;
        };
        if let Some(remote) = to.remote {
            if to.ports.rtp.send_to(packet, remote).await.is_ok() {
                self.stats.telephone_events += 1;
            }
        }
    }

    fn side(&mut self, leg: MediaLeg) -> &mut Side {
        match leg {
            MediaLeg::Agent => &mut self.agent,
            MediaLeg::Customer => &mut self.customer,
        }
    }

    async fn on_packet(&mut self, from: MediaLeg, packet: &mut [u8], source: SocketAddr) {
        let side = self.side(from);
        if !side.accept_from(source) {
            return;
        }
        side.last_received = Instant::now();
        let from_law = side.law;
        match from {
            MediaLeg::Agent => self.stats.received_from_agent += 1,
            MediaLeg::Customer => self.stats.received_from_customer += 1,
        }
        let forward = matches!(
            (self.mode, from),
            (RelayMode::Bridged, _) | (RelayMode::EarlyMedia, MediaLeg::Customer)
        );
        if !forward {
            return;
        }
        let (to, to_leg) = match from {
            MediaLeg::Agent => (&mut self.customer, MediaLeg::Customer),
            MediaLeg::Customer => (&mut self.agent, MediaLeg::Agent),
        };
        let Some(remote) = to.remote else { return };
        let event = match map_telephone_event(packet, to.telephone_event) {
            EventMapping::NotAnEvent => {
                if from_law != to.law {
                    convert_law(packet, from_law, to.law);
                }
                false
            }
            EventMapping::Mapped => true,
            EventMapping::NotTaken => return,
        };
        to.sent.relay(packet);
        if to.ports.rtp.send_to(packet, remote).await.is_ok() {
            if event {
                self.stats.telephone_events += 1;
            }
            let bytes = packet.len() as u64;
            match to_leg {
                MediaLeg::Customer => {
                    self.stats.agent_to_customer_packets += 1;
                    self.stats.agent_to_customer_bytes += bytes;
                }
                MediaLeg::Agent => {
                    self.stats.customer_to_agent_packets += 1;
                    self.stats.customer_to_agent_bytes += bytes;
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum EventMapping {
    NotAnEvent,
    /// Now under the receiving leg's payload type.
    Mapped,
    /// The receiving leg takes no telephone events: drop it.
    NotTaken,
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

/// Telephone events reach us under the payload type of our offers; each far end takes them
/// under the one it answered with, which may differ: rewrite it in place.
fn map_telephone_event(packet: &mut [u8], to_event_type: Option<u8>) -> EventMapping {
    if packet.len() < RTP_HEADER || packet[1] & 0x7F != sdp::TELEPHONE_EVENT_PT {
        return EventMapping::NotAnEvent;
    }
    match to_event_type {
        Some(pt) => {
            packet[1] = (packet[1] & 0x80) | (pt & 0x7F);
            EventMapping::Mapped
        }
        None => EventMapping::NotTaken,
    }
}

/// Rewrites a G.711 RTP packet of one law into the other, in place. Packets of other payload
/// types (DTMF, comfort noise) and malformed ones are left as they are.
fn convert_law(packet: &mut [u8], from: Law, to: Law) {
    let Some(offset) = rtp_payload_offset(packet) else {
        return;
    };
    if packet[1] & 0x7F != from.payload_type() {
        return;
    }
    packet[1] = (packet[1] & 0x80) | to.payload_type();
    for byte in &mut packet[offset..] {
        *byte = g711::transcode(from, *byte);
    }
}

/// Where the payload of an RTP packet starts (after CSRCs and any header extension).
fn rtp_payload_offset(packet: &[u8]) -> Option<usize> {
    if packet.len() < RTP_HEADER || packet[0] >> 6 != 2 {
        return None;
    }
    let csrc_count = usize::from(packet[0] & 0x0F);
    let mut offset = RTP_HEADER + 4 * csrc_count;
    if packet[0] & 0x10 != 0 {
        let words = packet.get(offset + 2..offset + 4)?;
        offset += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    let padding = if packet[0] & 0x20 != 0 {
        usize::from(*packet.last()?)
    } else {
        0
    };
    (offset + padding <= packet.len()).then_some(offset)
}

/// The Chinese ringback tone: 450 Hz, one second on, four off, as 20 ms RTP packets.
struct Ringback {
    packet: [u8; RTP_HEADER + 160],
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    frame: u64,
}

impl Ringback {
    fn new() -> Self {
        Self {
            packet: [0; RTP_HEADER + 160],
            sequence: rand::random(),
            timestamp: rand::random(),
            ssrc: rand::random(),
            frame: 0,
        }
    }

    fn next_packet(&mut self, law: Law) -> &[u8] {
        const FRAMES_ON: u64 = 50;
        const FRAMES_PER_CYCLE: u64 = 250;
        let on = self.frame % FRAMES_PER_CYCLE < FRAMES_ON;
        let header = &mut self.packet[..RTP_HEADER];
        header[0] = 0x80;
        header[1] = law.payload_type() | if self.frame == 0 { 0x80 } else { 0 };
        header[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        header[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        for (i, byte) in self.packet[RTP_HEADER..].iter_mut().enumerate() {
            let sample = if on {
                let n = (self.frame * 160 + i as u64) as f64;
                (0.25 * 32767.0 * (2.0 * std::f64::consts::PI * 450.0 * n / 8000.0).sin()) as i16
            } else {
                0
            };
            *byte = law.encode(sample);
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(160);
        self.frame += 1;
        &self.packet
    }
}

#[cfg(test)]
#[path = "relay_test.rs"]
mod tests;

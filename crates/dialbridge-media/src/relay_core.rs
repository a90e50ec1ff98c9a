//! The relay's decisions, sans I/O: for each packet a leg sends, whether it is taken (symmetric
//! RTP latching), whether the call's phase forwards it, and how it is rewritten for the other
//! leg (µ-law/A-law, the telephone-event payload type, sequence numbers continued past the
//! packets we inserted); which keys and ringback packets to send next; which leg went silent.
//! Time is passed in. [`crate::relay`]'s task owns the sockets and does what this says, with
//! no channel or lock per packet.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::g711::{self, Law};
use crate::recording::{Channel, Mark, RecordingPlan, Tap};
use crate::relay::{MediaLeg, RelayMode, RelaySettings, RelayStats, RemoteLeg};
use crate::sdp;

/// A key to play to a leg as RFC 4733 telephone events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Digit {
    pub(crate) to: MediaLeg,
    pub(crate) event: u8,
    pub(crate) duration: Duration,
}

/// Where a packet goes, once [`RelayCore::on_packet`] has rewritten it for that leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Forward {
    pub(crate) to: MediaLeg,
    pub(crate) remote: SocketAddr,
    /// A telephone event (counted apart).
    pub(crate) event: bool,
}

/// What the relay knows of one leg.
struct LegState {
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

impl LegState {
    fn new(now: Instant) -> Self {
        Self {
            remote: None,
            latched: false,
            law: Law::Mu,
            telephone_event: None,
            described: None,
            sends: true,
            last_received: now,
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

pub(crate) struct RelayCore {
    agent: LegState,
    customer: LegState,
    mode: RelayMode,
    settings: RelaySettings,
    stats: RelayStats,
    ringback: Ringback,
    hold_tone: HoldTone,
    silence: [u8; RTP_HEADER + 160],
    digits: VecDeque<Digit>,
    playing: Option<Playing>,
    recording: Option<RecordingPlan>,
    tap: Option<Tap>,
    /// The consent announcement being played, before the parties are bridged.
    announcing: Option<Announcing>,
    announced: bool,
    /// Whether the recording is to be paused: asked before it starts (the customer's phone
    /// still ringing), it starts paused.
    recording_paused: bool,
}

/// The consent announcement under way: the next 20 ms frame, and where on the recording's
/// timeline it began.
struct Announcing {
    samples: Arc<[i16]>,
    frame: usize,
    from: u64,
    packet: [u8; RTP_HEADER + 160],
}

pub(crate) const RTP_HEADER: usize = 12;

impl RelayCore {
    pub(crate) fn new(settings: RelaySettings, now: Instant) -> Self {
        Self {
            agent: LegState::new(now),
            customer: LegState::new(now),
            mode: RelayMode::Silent,
            settings,
            stats: RelayStats::default(),
            ringback: Ringback::new(),
            hold_tone: HoldTone::new(),
            silence: [0; RTP_HEADER + 160],
            digits: VecDeque::new(),
            playing: None,
            recording: None,
            tap: None,
            announcing: None,
            announced: false,
            recording_paused: false,
        }
    }

    /// The call is to be recorded as `plan` says, from when [`RelayCore::start_recording`] is
    /// called.
    pub(crate) fn with_recording(mut self, plan: Option<RecordingPlan>) -> Self {
        self.recording = plan;
        self
    }

    /// Starts the recording (once), if the call has one.
    pub(crate) fn start_recording(&mut self, now: Instant) {
        if self.tap.is_none() {
            if let Some(plan) = &self.recording {
                let mut tap = Tap::start(plan, now);
                tap.set_paused(self.recording_paused, now);
                self.tap = Some(tap);
            }
        }
    }

    /// Whether a recording runs (started, and not stopped at its maximum length).
    pub(crate) fn recording(&self) -> bool {
        self.tap.as_ref().is_some_and(Tap::running)
    }

    pub(crate) fn set_recording_paused(&mut self, paused: bool, now: Instant) {
        self.recording_paused = paused;
        if let Some(tap) = &mut self.tap {
            tap.set_paused(paused, now);
        }
    }

    /// Every [`crate::recording::BATCH_PERIOD`]: what was gathered goes to the recorder.
    pub(crate) fn hand_over_recording(&mut self, now: Instant) {
        if let Some(tap) = &mut self.tap {
            let before = tap.dropped_batches;
            tap.hand_over(now);
            self.stats.recording_batches_dropped += tap.dropped_batches - before;
        }
    }

    /// The call ended: the recording gets its last batch (or is discarded: it never started).
    pub(crate) fn finish_recording(&mut self, now: Instant) {
        if self.tap.is_none() {
            if let Some(plan) = &self.recording {
                plan.sink.discard();
            }
        }
        if let Some(tap) = &mut self.tap {
            if let Some(announcing) = self.announcing.take() {
                tap.mark(Mark::Announcement {
                    from: announcing.from,
                    to: tap.position(now),
                });
            }
            tap.finish(now);
        }
    }

    pub(crate) fn announcing(&self) -> bool {
        self.announcing.is_some()
    }

    /// The announcement's next 20 ms for `leg`, continuing the stream it is sent, and where
    /// to; `None` when none is playing or the leg has no address yet.
    pub(crate) fn next_announcement(&mut self, leg: MediaLeg) -> Option<(SocketAddr, &[u8])> {
        let announcing = self.announcing.as_mut()?;
        let side = match leg {
            MediaLeg::Agent => &mut self.agent,
            MediaLeg::Customer => &mut self.customer,
        };
        let remote = side.remote?;
        let start = announcing.frame * 160;
        let (header, payload) = announcing.packet.split_at_mut(RTP_HEADER);
        side.sent
            .continue_with(header, side.law.payload_type(), announcing.frame == 0);
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte = side.law.encode(announcing.samples.get(start + i).copied().unwrap_or(0));
        }
        Some((remote, &announcing.packet))
    }

    /// A frame of the announcement was sent to both legs; after its last, the parties are
    /// bridged (their streams go on from where the announcement left them).
    pub(crate) fn announcement_advanced(&mut self, now: Instant) {
        let Some(announcing) = self.announcing.as_mut() else {
            return;
        };
        announcing.frame += 1;
        if announcing.frame * 160 < announcing.samples.len() {
            return;
        }
        let from = announcing.from;
        self.announcing = None;
        self.agent.sent.resume();
        self.customer.sent.resume();
        if let Some(tap) = &mut self.tap {
            tap.mark(Mark::Announcement {
                from,
                to: tap.position(now),
            });
        }
    }

    fn leg(&mut self, leg: MediaLeg) -> &mut LegState {
        match leg {
            MediaLeg::Agent => &mut self.agent,
            MediaLeg::Customer => &mut self.customer,
        }
    }

    pub(crate) fn mode(&self) -> RelayMode {
        self.mode
    }

    pub(crate) fn stats(&self) -> RelayStats {
        self.stats
    }

    /// What a leg's SDP says. A new address (a re-INVITE moved the stream): send there, and
    /// latch again onto where its packets come from. The same address: a refresh.
    pub(crate) fn set_remote(&mut self, leg: MediaLeg, remote: RemoteLeg, now: Instant) {
        let side = self.leg(leg);
        if side.described != Some(remote.address) {
            side.described = Some(remote.address);
            side.remote = Some(remote.address);
            side.latched = false;
        }
        side.law = remote.law;
        side.telephone_event = remote.telephone_event;
        if remote.sends && !side.sends {
            side.last_received = now;
            side.inactive_reported = false;
        }
        side.sends = remote.sends;
    }

    /// Entering the bridge starts both legs' inactivity clocks afresh (not coming back from
    /// hold: they ran through it). The hold tone starts from its beginning each time.
    pub(crate) fn set_mode(&mut self, mode: RelayMode, now: Instant) {
        if mode.is_connected() && !self.mode.is_connected() {
            self.agent.last_received = now;
            self.customer.last_received = now;
        }
        if mode == RelayMode::OnHold && self.mode != RelayMode::OnHold {
            self.hold_tone = HoldTone::new();
        }
        if mode == RelayMode::Bridged && !self.announced {
            self.announced = true;
            let announcement = self.recording.as_ref().and_then(|plan| plan.announcement.clone());
            if let (Some(samples), Some(tap)) = (announcement, &self.tap) {
                if !samples.is_empty() {
                    self.announcing = Some(Announcing {
                        samples,
                        frame: 0,
                        from: tap.position(now),
                        packet: [0; RTP_HEADER + 160],
                    });
                }
            }
        }
        if mode == RelayMode::OnHold {
            // Holding ends the announcement: the customer hears the hold tone instead.
            self.announcement_advanced_to_end(now);
        }
        if self.mode == RelayMode::OnHold && mode != RelayMode::OnHold {
            // What each leg sent during the hold was dropped: the streams go on from where
            // ours left them, not with a gap as long as the hold.
            self.agent.sent.resume();
            self.customer.sent.resume();
        }
        self.mode = mode;
    }

    fn announcement_advanced_to_end(&mut self, now: Instant) {
        if let Some(announcing) = self.announcing.as_mut() {
            announcing.frame = announcing.samples.len().div_ceil(160).max(1) - 1;
            self.announcement_advanced(now);
        }
    }

    /// Queues a key; `true` when none was queued or playing (the 20 ms clock starts now).
    pub(crate) fn queue_digit(&mut self, digit: Digit) -> bool {
        let idle = !self.digits_pending();
        self.digits.push_back(digit);
        idle
    }

    pub(crate) fn digits_pending(&self) -> bool {
        self.playing.is_some() || !self.digits.is_empty()
    }

    /// A packet `from` a leg, from `source`: counted, rewritten in place for the other leg, and
    /// where to send it; `None` when it is dropped (a stranger's, the phase forwards nothing
    /// that way, the other leg has no address yet or takes no telephone events).
    pub(crate) fn on_packet(
        &mut self,
        from: MediaLeg,
        packet: &mut [u8],
        source: SocketAddr,
        now: Instant,
    ) -> Option<Forward> {
        let side = self.leg(from);
        if !side.accept_from(source) {
            return None;
        }
        side.last_received = now;
        let from_law = side.law;
        match from {
            MediaLeg::Agent => self.stats.received_from_agent += 1,
            MediaLeg::Customer => self.stats.received_from_customer += 1,
        }
        if let Some(tap) = &mut self.tap {
            tap.capture(channel_of(from), from_law, packet, now);
        }
        let forward = match (self.mode, from) {
            (RelayMode::Bridged, _) => self.announcing.is_none(),
            (RelayMode::EarlyMedia, MediaLeg::Customer) => true,
            _ => false,
        };
        if !forward {
            return None;
        }
        let to_leg = match from {
            MediaLeg::Agent => MediaLeg::Customer,
            MediaLeg::Customer => MediaLeg::Agent,
        };
        let to = self.leg(to_leg);
        let remote = to.remote?;
        let event = match map_telephone_event(packet, to.telephone_event) {
            EventMapping::NotAnEvent => {
                if from_law != to.law {
                    convert_law(packet, from_law, to.law);
                }
                false
            }
            EventMapping::Mapped => true,
            EventMapping::NotTaken => return None,
        };
        to.sent.relay(packet);
        Some(Forward {
            to: to_leg,
            remote,
            event,
        })
    }

    /// A forwarded packet of `bytes` went out.
    pub(crate) fn forwarded(&mut self, forward: &Forward, bytes: usize) {
        if forward.event {
            self.stats.telephone_events += 1;
        }
        let bytes = bytes as u64;
        match forward.to {
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

    /// Whether the phase plays a tone of ours (every 20 ms).
    pub(crate) fn plays_tone(&self) -> bool {
        matches!(self.mode, RelayMode::Ringback | RelayMode::OnHold) || self.announcing.is_some()
    }

    /// The next 20 ms of the phase's tone, the leg it goes to and its address: ringback for
    /// the agent, or the hold tone for the customer (continuing the stream the customer is
    /// sent, so the carrier sees one stream); `None` when the phase plays none or the leg has
    /// no address yet.
    pub(crate) fn next_tone(&mut self, now: Instant) -> Option<(MediaLeg, SocketAddr, &[u8])> {
        match self.mode {
            RelayMode::Ringback => {
                let remote = self.agent.remote?;
                let packet = self.ringback.next_packet(self.agent.law);
                if let Some(tap) = &mut self.tap {
                    // What the agent hears while the customer's phone rings.
                    tap.capture(Channel::Customer, self.agent.law, packet, now);
                }
                Some((MediaLeg::Agent, remote, packet))
            }
            RelayMode::OnHold => {
                let remote = self.customer.remote?;
                let packet = self.hold_tone.next_packet(self.customer.law, &mut self.customer.sent);
                Some((MediaLeg::Customer, remote, packet))
            }
            _ => None,
        }
    }

    /// While on hold, 20 ms of silence for the agent's leg (continuing its stream), so that a
    /// carrier carrying a telephone agent does not take the silent stream for a dead call.
    pub(crate) fn next_hold_silence(&mut self) -> Option<(SocketAddr, &[u8])> {
        if self.mode != RelayMode::OnHold {
            return None;
        }
        let remote = self.agent.remote?;
        let law = self.agent.law;
        self.agent
            .sent
            .continue_with(&mut self.silence[..RTP_HEADER], law.payload_type(), false);
        tone_frame(&mut self.silence[RTP_HEADER..], law, 0.0, None);
        Some((remote, &self.silence))
    }

    pub(crate) fn tone_sent(&mut self, to: MediaLeg) {
        match to {
            MediaLeg::Agent => self.stats.ringback_packets += 1,
            MediaLeg::Customer => self.stats.hold_tone_packets += 1,
        }
    }

    /// The next packet of the key being played, starting the next queued one when none is,
    /// with the leg and address it goes to (no address yet: the packet is spent). A key
    /// for a leg that takes no telephone events, or while the call is not bridged, is dropped.
    pub(crate) fn next_digit_packet(&mut self) -> Option<(MediaLeg, Option<SocketAddr>, &[u8])> {
        if self.playing.is_none() {
            let digit = self.digits.pop_front()?;
            let bridged = self.mode == RelayMode::Bridged;
            let to = self.leg(digit.to);
            match (to.telephone_event, bridged) {
                (Some(payload_type), true) => self.playing = Some(Playing::start(digit, payload_type, &to.sent)),
                _ => {
                    tracing::debug!(
                        ?digit,
                        bridged,
                        "key not played: not bridged, or the leg takes no events"
                    );
                    return None;
                }
            }
        }
        let playing = self.playing.as_mut()?;
        let to = match playing.to {
            MediaLeg::Agent => &mut self.agent,
            MediaLeg::Customer => &mut self.customer,
        };
        if playing.next_packet(&mut to.sent).is_none() {
            self.playing = None;
            return None;
        }
        let remote = to.remote;
        self.playing.as_ref().map(|p| (p.to, remote, &p.packet[..]))
    }

    pub(crate) fn inactivity_timeout(&self) -> Duration {
        self.settings.inactivity_timeout
    }

    pub(crate) fn digit_sent(&mut self) {
        self.stats.telephone_events += 1;
    }

    /// The legs found silent for the inactivity timeout while bridged (on hold or not), each
    /// reported once (until its SDP says it sends again).
    pub(crate) fn newly_inactive(&mut self, now: Instant) -> Vec<MediaLeg> {
        if !self.mode.is_connected() {
            return Vec::new();
        }
        let timeout = self.settings.inactivity_timeout;
        let mut silent = Vec::new();
        for leg in [MediaLeg::Agent, MediaLeg::Customer] {
            let side = self.leg(leg);
            if side.sends && !side.inactive_reported && now.saturating_duration_since(side.last_received) >= timeout {
                side.inactive_reported = true;
                silent.push(leg);
            }
        }
        silent
    }
}

/// The RTP stream this leg is sent, so that packets we make up (a key pressed by INFO)
/// continue it: relayed packets' sequence numbers are shifted by how many we inserted.
#[derive(Debug, Clone, Copy, Default)]
struct SentStream {
    ssrc: Option<u32>,
    next_sequence: u16,
    last_timestamp: u32,
    sequence_shift: u16,
    /// The next relayed packet follows a hold: it continues from our last one, marked.
    resuming: bool,
}

impl SentStream {
    /// Shifts a relayed packet's sequence number and remembers where the stream is.
    fn relay(&mut self, packet: &mut [u8]) {
        if packet.len() < RTP_HEADER || packet[0] >> 6 != 2 {
            return;
        }
        let original = u16::from_be_bytes([packet[2], packet[3]]);
        if std::mem::take(&mut self.resuming) && self.ssrc.is_some() {
            self.sequence_shift = self.next_sequence.wrapping_sub(original);
            packet[1] |= 0x80;
        }
        let sequence = original.wrapping_add(self.sequence_shift);
        packet[2..4].copy_from_slice(&sequence.to_be_bytes());
        self.next_sequence = sequence.wrapping_add(1);
        self.last_timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        self.ssrc = Some(u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]));
    }

    /// The header of a 20 ms packet of ours continuing the stream: its sequence number, the
    /// timestamp 160 samples on, the stream's SSRC (one of our own before anything was relayed).
    fn continue_with(&mut self, header: &mut [u8], payload_type: u8, marker: bool) {
        let sequence = self.insert();
        self.last_timestamp = self.last_timestamp.wrapping_add(SAMPLES_PER_TICK);
        let ssrc = *self.ssrc.get_or_insert_with(rand::random);
        header[0] = 0x80;
        header[1] = payload_type | if marker { 0x80 } else { 0 };
        header[2..4].copy_from_slice(&sequence.to_be_bytes());
        header[4..8].copy_from_slice(&self.last_timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }

    fn resume(&mut self) {
        self.resuming = true;
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

#[derive(Debug, PartialEq, Eq)]
enum EventMapping {
    NotAnEvent,
    /// Now under the receiving leg's payload type.
    Mapped,
    /// The receiving leg takes no telephone events: drop it.
    NotTaken,
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

fn channel_of(leg: MediaLeg) -> Channel {
    match leg {
        MediaLeg::Agent => Channel::Agent,
        MediaLeg::Customer => Channel::Customer,
    }
}

/// Where the payload of an RTP packet starts (after CSRCs and any header extension).
pub(crate) fn rtp_payload_offset(packet: &[u8]) -> Option<usize> {
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
        tone_frame(&mut self.packet[RTP_HEADER..], law, 450.0, on.then_some(self.frame));
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(160);
        self.frame += 1;
        &self.packet
    }
}

/// One 20 ms frame of a sine at `hz` (quarter scale) at `frame`'s place in it, or silence.
fn tone_frame(payload: &mut [u8], law: Law, hz: f64, frame: Option<u64>) {
    for (i, byte) in payload.iter_mut().enumerate() {
        let sample = frame.map_or(0, |frame| {
            let n = (frame * 160 + i as u64) as f64;
            (0.25 * 32767.0 * (2.0 * std::f64::consts::PI * hz * n / 8000.0).sin()) as i16
        });
        *byte = law.encode(sample);
    }
}

/// What a customer on hold hears: a 425 Hz beep of 200 ms every 3 s, so they know the line is
/// still up (no music file to ship or license).
struct HoldTone {
    packet: [u8; RTP_HEADER + 160],
    frame: u64,
}

impl HoldTone {
    const HZ: f64 = 425.0;
    const FRAMES_ON: u64 = 10;
    const FRAMES_PER_CYCLE: u64 = 150;

    fn new() -> Self {
        Self {
            packet: [0; RTP_HEADER + 160],
            frame: 0,
        }
    }

    fn next_packet(&mut self, law: Law, stream: &mut SentStream) -> &[u8] {
        let on = self.frame % Self::FRAMES_PER_CYCLE < Self::FRAMES_ON;
        stream.continue_with(&mut self.packet[..RTP_HEADER], law.payload_type(), self.frame == 0);
        tone_frame(&mut self.packet[RTP_HEADER..], law, Self::HZ, on.then_some(self.frame));
        self.frame += 1;
        &self.packet
    }
}

#[cfg(test)]
#[path = "relay_core_test.rs"]
mod tests;

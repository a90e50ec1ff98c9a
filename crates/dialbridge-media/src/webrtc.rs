//! The agent's leg as a WebRTC session dialbridge terminates, for an agent whose phone is the
//! browser (binding type 3, the softphone): ICE-lite, DTLS-SRTP, rtcp-mux and BUNDLE on one UDP
//! port, G.711 only, so the customer's audio is relayed without transcoding.
//!
//! str0m does the protocols, sans I/O: this adapter feeds it the datagrams of the leg's socket
//! and the time, and turns what it says into what the relay knows — RTP packets from the agent
//! (made up from its frames, so the relay's per-packet decisions stay the same for every kind of
//! leg), datagrams to send, and whether the browser's media is up or gone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::relay_core::RTP_HEADER;
use crate::Law;

/// How long a browser has to bring its media up (ICE, then DTLS) after its offer was answered.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebRtcError {
    #[error("the browser's offer: {0}")]
    Offer(String),
    #[error("the offer has no G.711 audio (PCMU or PCMA) to answer with")]
    NoG711,
    #[error("the call's browser session was answered already")]
    AlreadyAnswered,
    #[error("the call has ended")]
    Ended,
}

/// What changed about the browser's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebRtcNews {
    /// ICE and DTLS are up and the audio track is there: it sends and takes this law.
    Connected(Law),
    /// The browser is gone: it closed the session, its consent lapsed, or it never connected.
    Gone(GoneBecause),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneBecause {
    Closed,
    ConsentLapsed,
    NeverConnected,
    Failed,
}

/// What a [`WebRtcLeg::poll`] produced, in buffers kept from one poll to the next.
#[derive(Default)]
pub(crate) struct WebRtcOutput {
    /// Datagrams for the browser.
    pub(crate) transmit: Vec<(SocketAddr, Vec<u8>)>,
    /// RTP packets of the agent's audio (PCMU or PCMA), for the relay.
    pub(crate) audio: Vec<Vec<u8>>,
    pub(crate) news: Vec<WebRtcNews>,
}

impl WebRtcOutput {
    pub(crate) fn clear(&mut self) {
        self.transmit.clear();
        self.audio.clear();
        self.news.clear();
    }
}

pub(crate) struct WebRtcLeg {
    rtc: Rtc,
    /// The leg's one host candidate: every datagram of its socket is for it.
    candidate: SocketAddr,
    /// The audio track, its payload type and law, once the media is up.
    audio: Option<(Mid, Pt, Law)>,
    /// Our clock of the audio sent to the browser (8 kHz samples).
    sent_samples: u64,
    /// The RTP stream the browser's frames become for the relay.
    received_sequence: u16,
    received_ssrc: u32,
    answered_at: Instant,
    gone: bool,
}

impl WebRtcLeg {
    /// Answers the browser's offer with one host candidate, `candidate` (the address the
    /// browser reaches the leg's socket at).
    pub(crate) fn accept(offer: &str, candidate: SocketAddr, now: Instant) -> Result<(Self, String), WebRtcError> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| WebRtcError::Offer(e.to_string()))?;
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_pcmu(true, false)
            .enable_pcma(true, false)
            // Every packet on at once: the far phone or carrier has its own jitter buffer, and
            // waiting for a lost one would delay the audio after it.
            .set_reordering_size_audio(0)
            // Only the mid (BUNDLE's demultiplexing): transport-wide congestion control and the
            // other header extensions serve video and bandwidth estimation, and cost per packet.
            .clear_extension_map()
            .set_extension(4, Extension::RtpMid)
            .build(now);
        let host = Candidate::host(candidate, "udp").map_err(|e| WebRtcError::Offer(e.to_string()))?;
        rtc.add_local_candidate(host);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Offer(e.to_string()))?;
        let answer = answer.to_sdp_string();
        if !answer.contains("PCMU/8000") && !answer.contains("PCMA/8000") {
            return Err(WebRtcError::NoG711);
        }
        Ok((
            Self {
                rtc,
                candidate,
                audio: None,
                sent_samples: 0,
                received_sequence: rand::random(),
                received_ssrc: rand::random(),
                answered_at: now,
                gone: false,
            },
            answer,
        ))
    }

    /// A datagram from the browser (STUN, DTLS or SRTP; anything else is dropped).
    pub(crate) fn receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.candidate, datagram) else {
            return;
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, receive)) {
            tracing::debug!(error = %e, "a datagram the WebRTC session could not take");
        }
    }

    /// Time passed.
    pub(crate) fn tick(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(error = %e, "WebRTC timeout");
        }
    }

    /// Sends an RTP packet the relay made for the agent (audio, in the leg's law) as a frame of
    /// the browser's track; dropped before the media is up or if it is no G.711 of that law.
    pub(crate) fn send(&mut self, now: Instant, packet: &[u8]) {
        let Some((mid, pt, law)) = self.audio else {
            return;
        };
        if packet.len() <= RTP_HEADER || packet[1] & 0x7F != law.payload_type() {
            return;
        }
        let payload = &packet[RTP_HEADER..];
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let time = MediaTime::new(self.sent_samples, Frequency::EIGHT_KHZ);
        self.sent_samples += payload.len() as u64;
        if let Err(e) = writer.write(pt, now, time, payload) {
            tracing::debug!(error = %e, "a frame for the browser not sent");
        }
    }

    /// Drains what the session has to say into `out`; returns when it next wants the time.
    pub(crate) fn poll(&mut self, now: Instant, out: &mut WebRtcOutput) -> Instant {
        if !self.gone && self.audio.is_none() && now.saturating_duration_since(self.answered_at) >= CONNECT_TIMEOUT {
            self.go(GoneBecause::NeverConnected, out);
        }
        loop {
            let output = match self.rtc.poll_output() {
                Ok(output) => output,
                Err(e) => {
                    tracing::info!(error = %e, "the WebRTC session failed");
                    self.go(GoneBecause::Failed, out);
                    return now + Duration::from_secs(1);
                }
            };
            match output {
                Output::Timeout(at) => {
                    let connect_by = self.answered_at + CONNECT_TIMEOUT;
                    return if self.audio.is_none() && !self.gone {
                        at.min(connect_by)
                    } else {
                        at
                    };
                }
                Output::Transmit(transmit) => out.transmit.push((transmit.destination, transmit.contents.to_vec())),
                Output::Event(event) => self.on_event(event, out),
            }
        }
    }

    fn on_event(&mut self, event: Event, out: &mut WebRtcOutput) {
        match event {
            // Session events wait for SRTP: the track is usable when it is announced.
            Event::MediaAdded(added) => {
                let Some(writer) = self.rtc.writer(added.mid) else {
                    return;
                };
                let pick = |codec| {
                    writer
                        .payload_params()
                        .find(|p| p.spec().codec == codec)
                        .map(|p| p.pt())
                };
                let chosen = pick(Codec::PCMU)
                    .map(|pt| (pt, Law::Mu))
                    .or_else(|| pick(Codec::PCMA).map(|pt| (pt, Law::A)));
                match chosen {
                    Some((pt, law)) if self.audio.is_none() => {
                        self.audio = Some((added.mid, pt, law));
                        out.news.push(WebRtcNews::Connected(law));
                    }
                    Some(_) => {}
                    None => self.go(GoneBecause::Failed, out),
                }
            }
            Event::MediaData(frame) => {
                let Some((_, _, law)) = self.audio else {
                    return;
                };
                let codec = frame.params.spec().codec;
                let frame_law = match codec {
                    Codec::PCMU => Law::Mu,
                    Codec::PCMA => Law::A,
                    _ => return,
                };
                if frame_law != law {
                    return;
                }
                // RTP timestamps wrap: the low 32 bits of the 8 kHz clock are the timestamp.
                let timestamp = frame.time.rebase(Frequency::EIGHT_KHZ).numer() as u32;
                out.audio.push(self.rtp_packet(law, timestamp, &frame.data));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.go(GoneBecause::ConsentLapsed, out);
            }
            Event::Closed => self.go(GoneBecause::Closed, out),
            _ => {}
        }
    }

    /// The browser's frame as an RTP packet of a stream of our own numbering.
    fn rtp_packet(&mut self, law: Law, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        let mut packet = Vec::with_capacity(RTP_HEADER + payload.len());
        packet.extend_from_slice(&[0x80, law.payload_type()]);
        packet.extend_from_slice(&self.received_sequence.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&self.received_ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.received_sequence = self.received_sequence.wrapping_add(1);
        packet
    }

    fn go(&mut self, because: GoneBecause, out: &mut WebRtcOutput) {
        if !self.gone {
            self.gone = true;
            tracing::info!(?because, "the browser's media is gone");
            out.news.push(WebRtcNews::Gone(because));
            self.rtc.disconnect();
        }
    }

    /// The address the relay knows the agent's leg by (the browser's own is str0m's business).
    pub(crate) fn address(&self) -> SocketAddr {
        self.candidate
    }
}

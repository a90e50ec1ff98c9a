//! What the relay copies for a call's recording, sans I/O: each leg's payloads with where they
//! fall on the recording's timeline, gathered in a buffer the relay task owns and handed over
//! in one batch every [`BATCH_PERIOD`] (no lock or channel per packet). Decoding and writing
//! are the recorder's ([`RecordingSink`]), on threads of its own: the relay never waits for
//! them, and a batch the recorder has no room for is dropped, counted and marked.
//!
//! Timing: a leg's packets are placed by their RTP timestamps (a lost packet leaves silence
//! and the two channels stay aligned), anchored to when the stream's first packet arrived and
//! anchored again when the stream changes (new SSRC) or its timestamps stray more than
//! [`MAX_STRAY`] from the arrival clock (a jump, or a sender's clock drifting over an hour).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::g711::Law;

/// 8 kHz: G.711's clock, the recording's sample rate.
pub const SAMPLE_RATE: u64 = 8000;
/// How often the relay hands the recorder what it gathered.
pub const BATCH_PERIOD: Duration = Duration::from_millis(200);
/// How far a packet's timestamp may put it from when it arrived before the stream is anchored
/// again; the recorder keeps this much of the timeline open for late packets.
pub const MAX_STRAY: Duration = Duration::from_millis(1000);

/// One party per channel: the agent left, the customer right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Agent,
    Customer,
}

/// When a call's recording starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFrom {
    /// When the customer answers.
    #[default]
    Bridge,
    /// When the agent answers: ringback and early media are in it.
    AgentAnswer,
}

/// Something the recording's sidecar tells, at a place on the timeline (samples from its start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Paused {
        at: u64,
    },
    Resumed {
        at: u64,
    },
    /// The consent announcement played to both parties over this span (not in the file: the
    /// parties' own audio is).
    Announcement {
        from: u64,
        to: u64,
    },
    /// The recording reached its maximum length here and stopped.
    LimitReached {
        at: u64,
    },
    /// A batch the recorder had no room for: this span is silence in the file.
    Dropped {
        from: u64,
        to: u64,
    },
}

/// A leg's payload placed on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub channel: Channel,
    /// Where its first sample falls (samples from the recording's start).
    pub at: u64,
    pub law: Law,
    /// Its bytes in [`RecordBatch::payload`], one per sample.
    pub offset: u32,
    pub len: u16,
}

/// What the relay hands the recorder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBatch {
    pub chunks: Vec<Chunk>,
    pub payload: Vec<u8>,
    pub marks: Vec<Mark>,
    /// Where the timeline stood when the batch was handed over.
    pub end: u64,
}

impl RecordBatch {
    pub fn samples_of(&self, chunk: &Chunk) -> &[u8] {
        let start = chunk.offset as usize;
        self.payload
            .get(start..start + usize::from(chunk.len))
            .unwrap_or_default()
    }

    /// Drops the audio, keeps the marks (they are told with the next batch).
    fn drop_audio(&mut self) {
        self.chunks.clear();
        self.payload.clear();
    }
}

/// Where a call's batches go: the recorder. Called from the relay task, so it must not block.
pub trait RecordingSink: Send + Sync + fmt::Debug {
    /// Takes a batch, or gives it back when the recorder has no room for it (it is then
    /// dropped: the call never waits).
    fn offer(&self, batch: RecordBatch) -> Result<(), RecordBatch>;
    /// The recording's last batch: always taken (the file is finished with it).
    fn close(&self, last: RecordBatch);
    /// The call ended before its recording started: there is no file.
    fn discard(&self);
}

/// A call's recording, as decided when the call was accepted.
#[derive(Clone)]
pub struct RecordingPlan {
    pub from: RecordFrom,
    /// The longest the recording runs.
    pub max_length: Duration,
    /// Played to both parties when the customer answers, before they are bridged (8 kHz
    /// linear samples).
    pub announcement: Option<Arc<[i16]>>,
    pub sink: Arc<dyn RecordingSink>,
}

impl fmt::Debug for RecordingPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingPlan")
            .field("from", &self.from)
            .field("max_length", &self.max_length)
            .field("announcement_samples", &self.announcement.as_ref().map(|a| a.len()))
            .finish_non_exhaustive()
    }
}

/// Where one leg's stream is anchored on the timeline.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    timestamp: u32,
    at: u64,
}

/// A running recording's capture, owned by the relay core.
pub(crate) struct Tap {
    started: Instant,
    max_samples: u64,
    paused: bool,
    stopped: bool,
    agent: Option<Anchor>,
    customer: Option<Anchor>,
    batch: RecordBatch,
    /// Where the last batch handed over ended: a dropped batch is silence from there.
    handed_up_to: u64,
    pub(crate) dropped_batches: u64,
    sink: Arc<dyn RecordingSink>,
}

impl Tap {
    pub(crate) fn start(plan: &RecordingPlan, now: Instant) -> Self {
        Self {
            started: now,
            max_samples: samples_in(plan.max_length),
            paused: false,
            stopped: false,
            agent: None,
            customer: None,
            batch: RecordBatch::default(),
            handed_up_to: 0,
            dropped_batches: 0,
            sink: plan.sink.clone(),
        }
    }

    /// Whether it still records (not closed at its maximum length).
    pub(crate) fn running(&self) -> bool {
        !self.stopped
    }

    /// Where `now` falls on the timeline.
    pub(crate) fn position(&self, now: Instant) -> u64 {
        samples_in(now.saturating_duration_since(self.started))
    }

    /// Copies a G.711 packet a leg sent (or one we played it) into the batch. Other payload
    /// types (telephone events, comfort noise) and malformed packets are left out.
    pub(crate) fn capture(&mut self, channel: Channel, law: Law, packet: &[u8], now: Instant) {
        if self.paused || self.stopped {
            return;
        }
        let Some(payload_at) = crate::relay_core::rtp_payload_offset(packet) else {
            return;
        };
        if packet[1] & 0x7F != law.payload_type() {
            return;
        }
        let payload = &packet[payload_at..packet.len() - padding_of(packet)];
        let Ok(len) = u16::try_from(payload.len()) else {
            return;
        };
        let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let arrived = self.position(now);
        let anchor = match channel {
            Channel::Agent => &mut self.agent,
            Channel::Customer => &mut self.customer,
        };
        let at = place(anchor, ssrc, timestamp, arrived);
        if at >= self.max_samples {
            return;
        }
        let Ok(offset) = u32::try_from(self.batch.payload.len()) else {
            return;
        };
        self.batch.payload.extend_from_slice(payload);
        self.batch.chunks.push(Chunk {
            channel,
            at,
            law,
            offset,
            len,
        });
    }

    pub(crate) fn set_paused(&mut self, paused: bool, now: Instant) {
        if self.stopped || self.paused == paused {
            return;
        }
        self.paused = paused;
        let at = self.position(now);
        self.batch.marks.push(if paused {
            Mark::Paused { at }
        } else {
            Mark::Resumed { at }
        });
    }

    pub(crate) fn mark(&mut self, mark: Mark) {
        if !self.stopped {
            self.batch.marks.push(mark);
        }
    }

    /// Hands the batch over (every [`BATCH_PERIOD`]); `false` once the recording reached its
    /// maximum length and was closed.
    pub(crate) fn hand_over(&mut self, now: Instant) -> bool {
        if self.stopped {
            return false;
        }
        let end = self.position(now);
        if end >= self.max_samples {
            self.batch.marks.push(Mark::LimitReached { at: self.max_samples });
            self.close_at(self.max_samples);
            return false;
        }
        self.batch.end = end;
        let batch = std::mem::take(&mut self.batch);
        match self.sink.offer(batch) {
            Ok(()) => {}
            Err(mut refused) => {
                self.dropped_batches += 1;
                refused.drop_audio();
                refused.marks.push(Mark::Dropped {
                    from: self.handed_up_to,
                    to: end,
                });
                // The buffer is kept: the next batch says where the silence is.
                self.batch = refused;
            }
        }
        self.handed_up_to = end;
        true
    }

    /// The call ended: the last batch, up to now (or the maximum length).
    pub(crate) fn finish(&mut self, now: Instant) {
        if !self.stopped {
            let end = self.position(now).min(self.max_samples);
            self.close_at(end);
        }
    }

    fn close_at(&mut self, end: u64) {
        self.stopped = true;
        self.batch.end = end;
        self.sink.close(std::mem::take(&mut self.batch));
    }
}

/// Where a packet's first sample falls: by its timestamp from the stream's anchor, or where it
/// arrived when the stream is new, changed, or strayed.
fn place(anchor: &mut Option<Anchor>, ssrc: u32, timestamp: u32, arrived: u64) -> u64 {
    if let Some(a) = anchor.filter(|a| a.ssrc == ssrc) {
        let by_timestamp =
            i64::try_from(a.at).unwrap_or(i64::MAX) + i64::from(timestamp.wrapping_sub(a.timestamp) as i32);
        let stray = by_timestamp - i64::try_from(arrived).unwrap_or(i64::MAX);
        if by_timestamp >= 0 && stray.unsigned_abs() <= samples_in(MAX_STRAY) {
            return by_timestamp as u64;
        }
    }
    *anchor = Some(Anchor {
        ssrc,
        timestamp,
        at: arrived,
    });
    arrived
}

fn padding_of(packet: &[u8]) -> usize {
    if packet[0] & 0x20 != 0 {
        packet.last().map_or(0, |&n| usize::from(n))
    } else {
        0
    }
}

pub fn samples_in(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "recording_test.rs"]
mod tests;

//! A recording's sidecar (`<name>.json`): what a listener cannot tell from the audio — where it
//! was paused, where batches were lost, when the consent announcement played, whether it hit
//! its maximum length or was cut by a crash. Times are milliseconds from the file's start.

use dialbridge_media::recording::Mark;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub from_ms: u64,
    pub to_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    pub unique_id: String,
    pub sample_rate: u32,
    /// The file's channels, in order.
    pub channels: [String; 2],
    pub duration_ms: u64,
    /// Silence in the file: the recording was paused.
    pub pauses: Vec<Span>,
    /// Silence in the file: the recorder fell behind and dropped these batches.
    pub gaps: Vec<Span>,
    pub announcement: Option<Span>,
    pub limit_reached_at_ms: Option<u64>,
    /// The server stopped during the call: the file ends at its last batch before that.
    pub interrupted: bool,
}

fn ms(samples: u64) -> u64 {
    samples / 8
}

impl Sidecar {
    pub fn new(unique_id: &str) -> Self {
        Self {
            unique_id: unique_id.to_owned(),
            sample_rate: crate::wav::SAMPLE_RATE,
            channels: ["agent".to_owned(), "customer".to_owned()],
            duration_ms: 0,
            pauses: Vec::new(),
            gaps: Vec::new(),
            announcement: None,
            limit_reached_at_ms: None,
            interrupted: false,
        }
    }

    /// Takes in what a batch marked (a pause still open at the end closes there: [`Sidecar::end`]).
    pub fn note(&mut self, mark: &Mark) {
        match *mark {
            Mark::Paused { at } => self.pauses.push(Span {
                from_ms: ms(at),
                to_ms: u64::MAX,
            }),
            Mark::Resumed { at } => {
                if let Some(open) = self.pauses.last_mut().filter(|p| p.to_ms == u64::MAX) {
                    open.to_ms = ms(at);
                }
            }
            Mark::Announcement { from, to } => {
                self.announcement = Some(Span {
                    from_ms: ms(from),
                    to_ms: ms(to),
                })
            }
            Mark::LimitReached { at } => self.limit_reached_at_ms = Some(ms(at)),
            Mark::Dropped { from, to } => self.gaps.push(Span {
                from_ms: ms(from),
                to_ms: ms(to),
            }),
        }
    }

    /// The file ended `frames` in.
    pub fn end(&mut self, frames: u64) {
        self.duration_ms = ms(frames);
        for pause in &mut self.pauses {
            pause.to_ms = pause.to_ms.min(self.duration_ms);
        }
    }
}

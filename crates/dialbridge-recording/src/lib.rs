//! dialbridge's call recorder. The relay hands each recorded call's audio over in batches
//! ([`dialbridge_media::recording`]); here worker threads decode them, place them on the
//! call's timeline and append them to one dual-channel WAV file per call (agent left,
//! customer right), rewriting the header's sizes after every batch so that a file being
//! written is always playable up to its last batch. At the end the file gets its sidecar
//! (`<name>.json`: pauses, gaps, the announcement) and the caller a [`RecordingSummary`].
//!
//! Invariant: nothing here is awaited by the media path. A call's batches queue on its worker
//! up to a bound; beyond it [`RecordingSink::offer`] gives the batch back at once.

pub mod announcement;
mod sidecar;
mod storage;
pub mod wav;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use dialbridge_media::recording::{RecordBatch, RecordingSink};
use tokio::sync::oneshot;

pub use sidecar::{Sidecar, Span};
pub use storage::{LocalStorage, RecordingKey, RecordingStorage};
pub use wav::{MonoView, Side};

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0:?} is not a recording key")]
    BadKey(String),
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub key: RecordingKey,
    /// Frames (one sample per channel) in the file.
    pub frames: u64,
    pub bytes: u64,
    /// Batches the recorder had no room for (silence in the file).
    pub gaps: u64,
}

impl RecordingSummary {
    pub fn duration_ms(&self) -> u64 {
        self.frames / 8
    }
}

/// What went wrong in the recorder since it started, for the operator's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderTotals {
    /// Recordings whose file could not be created: those calls are not recorded.
    pub files_not_created: u64,
    /// Recordings whose file could not be written to the end (a full disk): each keeps what
    /// was written before.
    pub files_cut_short: u64,
}

/// [`RecorderTotals`] as the workers count them.
#[derive(Debug, Default)]
struct Failures {
    files_not_created: AtomicU64,
    files_cut_short: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct RecorderSettings {
    /// Threads that decode and write (each call's batches go to one of them).
    pub workers: usize,
    /// Batches a call may have waiting on its worker before further ones are dropped (at one
    /// every 200 ms: how long a worker may fall behind).
    pub queue_batches: usize,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            queue_batches: 25,
        }
    }
}

enum Job {
    Batch {
        call: Arc<CallTarget>,
        batch: RecordBatch,
    },
    Close {
        call: Arc<CallTarget>,
        batch: RecordBatch,
        done: Option<oneshot::Sender<RecordingSummary>>,
    },
}

/// One call's file, as its worker knows it.
struct CallTarget {
    id: u64,
    key: RecordingKey,
    path: PathBuf,
    unique_id: String,
    in_flight: AtomicUsize,
}

/// The recorder: its workers and where they write.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

#[derive(Debug)]
struct RecorderInner {
    storage: LocalStorage,
    workers: Vec<mpsc::Sender<Job>>,
    next_call: AtomicUsize,
    queue_batches: usize,
    failures: Arc<Failures>,
}

impl Recorder {
    /// Starts the worker threads, writing under `storage`.
    pub fn start(storage: LocalStorage, settings: &RecorderSettings) -> Result<Self, RecordingError> {
        let failures = Arc::new(Failures::default());
        let mut workers = Vec::new();
        for n in 0..settings.workers.max(1) {
            let (tx, rx) = mpsc::channel();
            let failures = failures.clone();
            std::thread::Builder::new()
                .name(format!("recorder-{n}"))
                .spawn(move || worker::run(rx, &failures))?;
            workers.push(tx);
        }
        Ok(Self {
            inner: Arc::new(RecorderInner {
                storage,
                workers,
                next_call: AtomicUsize::new(0),
                queue_batches: settings.queue_batches.max(1),
                failures,
            }),
        })
    }

    pub fn totals(&self) -> RecorderTotals {
        let failures = &self.inner.failures;
        RecorderTotals {
            files_not_created: failures.files_not_created.load(Ordering::Relaxed),
            files_cut_short: failures.files_cut_short.load(Ordering::Relaxed),
        }
    }

    pub fn storage(&self) -> &LocalStorage {
        &self.inner.storage
    }

    /// A call's recording to `key`: the sink for its relay, and its summary once the relay
    /// closed it (the receiver errs when the call never started recording: no file).
    pub fn begin(
        &self,
        key: RecordingKey,
        unique_id: &str,
    ) -> (Arc<dyn RecordingSink>, oneshot::Receiver<RecordingSummary>) {
        let n = self.inner.next_call.fetch_add(1, Ordering::Relaxed);
        let worker = self.inner.workers[n % self.inner.workers.len()].clone();
        let (done, summary) = oneshot::channel();
        let sink = CallSink {
            call: Arc::new(CallTarget {
                id: n as u64,
                path: self.inner.storage.path_of(&key),
                key,
                unique_id: unique_id.to_owned(),
                in_flight: AtomicUsize::new(0),
            }),
            worker,
            queue_batches: self.inner.queue_batches,
            done: Mutex::new(Some(done)),
        };
        (Arc::new(sink), summary)
    }
}

/// Makes a recording the server was writing when it stopped a valid file again: its header
/// gets the sizes of what reached the disk (up to the last batch written) and it gets a sidecar
/// saying it was interrupted. `None` when the call never wrote one.
pub fn recover(
    storage: &LocalStorage,
    key: &RecordingKey,
    unique_id: &str,
) -> Result<Option<RecordingSummary>, RecordingError> {
    let path = storage.path_of(key);
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let frames = wav::repair_stereo(&file)?;
    file.sync_data()?;
    let sidecar_path = storage.sidecar_of(key);
    if !sidecar_path.exists() {
        let mut sidecar = Sidecar::new(unique_id);
        sidecar.interrupted = true;
        sidecar.end(frames);
        let json = serde_json::to_vec_pretty(&sidecar).map_err(std::io::Error::other)?;
        let out = storage::create_private(&sidecar_path)?;
        std::os::unix::fs::FileExt::write_all_at(&out, &json, 0)?;
        out.sync_data()?;
    }
    Ok(Some(RecordingSummary {
        key: key.clone(),
        frames,
        bytes: wav::HEADER_LEN + frames * 4,
        gaps: 0,
    }))
}

/// Runs file work on the runtime's blocking threads (never on a thread the relays share); a
/// panic there is an I/O error here.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

struct CallSink {
    call: Arc<CallTarget>,
    worker: mpsc::Sender<Job>,
    queue_batches: usize,
    done: Mutex<Option<oneshot::Sender<RecordingSummary>>>,
}

impl std::fmt::Debug for CallSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSink")
            .field("key", &self.call.key)
            .finish_non_exhaustive()
    }
}

impl CallSink {
    fn take_done(&self) -> Option<oneshot::Sender<RecordingSummary>> {
        self.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

impl RecordingSink for CallSink {
    fn offer(&self, batch: RecordBatch) -> Result<(), RecordBatch> {
        if self.call.in_flight.load(Ordering::Acquire) >= self.queue_batches {
            return Err(batch);
        }
        self.call.in_flight.fetch_add(1, Ordering::AcqRel);
        let call = self.call.clone();
        self.worker
            .send(Job::Batch { call, batch })
            .map_err(|refused| match refused.0 {
                Job::Batch { batch, .. } | Job::Close { batch, .. } => batch,
            })
    }

    fn discard(&self) {
        // The summary's sender goes: whoever waits for it hears at once there is no file.
        drop(self.take_done());
    }

    fn close(&self, last: RecordBatch) {
        let done = self.take_done();
        let _ = self.worker.send(Job::Close {
            call: self.call.clone(),
            batch: last,
            done,
        });
    }
}

#[cfg(test)]
#[path = "lib_test.rs"]
mod tests;

//! A recorder thread: decodes each call's batches onto its timeline and writes the call's file
//! up to where the relay's clock stood, then rewrites the header's sizes, so the file on disk
//! is always a valid WAV holding the call up to its last batch. The last [`MAX_STRAY`] stays in
//! memory too: a late packet placed there is written again in place.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use dialbridge_media::recording::{samples_in, Channel, RecordBatch, MAX_STRAY};

use crate::sidecar::Sidecar;
use crate::storage::{create_private, sidecar_path};
use crate::wav::{self, HEADER_LEN};
use crate::{CallTarget, Failures, Job, RecordingSummary};

/// How far ahead of what is written a packet may be placed (anything further is a sender's
/// nonsense, not worth the memory).
const MAX_AHEAD_FRAMES: u64 = 60 * 8000;

pub(crate) fn run(jobs: mpsc::Receiver<Job>, failures: &Failures) {
    let mut open: HashMap<u64, OpenFile> = HashMap::new();
    // Calls whose file could not be created: told once, not at every batch.
    let mut failed: HashSet<u64> = HashSet::new();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Batch { call, batch } => {
                if let Some(file) = open_or_create(&mut open, &mut failed, &call, failures) {
                    file.take(&batch);
                    file.write_up_to(batch.end, &call, failures);
                }
                call.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            Job::Close { call, batch, done } => {
                if open_or_create(&mut open, &mut failed, &call, failures).is_none() {
                    failed.remove(&call.id);
                    continue;
                }
                let Some(mut file) = open.remove(&call.id) else {
                    continue;
                };
                file.take(&batch);
                let summary = file.finish(batch.end, &call, failures);
                if let (Some(done), Some(summary)) = (done, summary) {
                    let _ = done.send(summary);
                }
            }
        }
    }
}

fn open_or_create<'a>(
    open: &'a mut HashMap<u64, OpenFile>,
    failed: &mut HashSet<u64>,
    call: &CallTarget,
    failures: &Failures,
) -> Option<&'a mut OpenFile> {
    if failed.contains(&call.id) {
        return None;
    }
    match open.entry(call.id) {
        Entry::Occupied(file) => Some(file.into_mut()),
        Entry::Vacant(slot) => match OpenFile::create(call) {
            Ok(file) => Some(slot.insert(file)),
            Err(e) => {
                tracing::error!(unique_id = %call.unique_id, path = %call.path.display(), error = %e, "cannot create the recording: the call is not recorded");
                failures.files_not_created.fetch_add(1, Ordering::Relaxed);
                failed.insert(call.id);
                None
            }
        },
    }
}

struct OpenFile {
    file: File,
    /// Frames in the file (up to where the relay's clock stood at the last batch).
    written: u64,
    /// The frame `pending` starts at: what is older can no longer change.
    base: u64,
    /// Interleaved samples (agent, customer) from `base` on: the last [`MAX_STRAY`] of the file,
    /// still open to late packets, and whatever was placed beyond it.
    pending: Vec<i16>,
    /// The first frame a batch changed (what must be written again).
    dirty_from: u64,
    sidecar: Sidecar,
    failed: bool,
}

impl OpenFile {
    fn create(call: &CallTarget) -> io::Result<Self> {
        let file = create_private(&call.path)?;
        if let Err(e) = file.write_all_at(&wav::header(2, 0), 0) {
            // No empty file is left behind: the call is not recorded, so nothing would ever
            // delete it.
            let _ = std::fs::remove_file(&call.path);
            return Err(e);
        }
        Ok(Self {
            file,
            written: 0,
            base: 0,
            pending: Vec::new(),
            dirty_from: u64::MAX,
            sidecar: Sidecar::new(&call.unique_id),
            failed: false,
        })
    }

    /// Places a batch's payloads on the timeline and notes its marks.
    fn take(&mut self, batch: &RecordBatch) {
        for mark in &batch.marks {
            self.sidecar.note(mark);
        }
        for chunk in &batch.chunks {
            let channel = match chunk.channel {
                Channel::Agent => 0,
                Channel::Customer => 1,
            };
            for (i, &byte) in batch.samples_of(chunk).iter().enumerate() {
                let at = chunk.at + i as u64;
                if at < self.base || at - self.base >= MAX_AHEAD_FRAMES {
                    continue;
                }
                let index = usize::try_from(at - self.base).unwrap_or(usize::MAX) * 2;
                if index >= self.pending.len() {
                    self.pending.resize(index + 2, 0);
                }
                self.pending[index + channel] = chunk.law.decode(byte);
                self.dirty_from = self.dirty_from.min(at);
            }
        }
    }

    /// Writes the file up to frame `end` (silence where nothing was placed), again from the
    /// first frame a late packet changed, updates the header, and lets go of what can no
    /// longer change.
    fn write_up_to(&mut self, end: u64, call: &CallTarget, failures: &Failures) {
        if self.failed {
            return;
        }
        let from = self.dirty_from.min(self.written).max(self.base);
        self.dirty_from = u64::MAX;
        if end > from {
            let frames_needed = usize::try_from(end - self.base).unwrap_or(0);
            if self.pending.len() < frames_needed * 2 {
                self.pending.resize(frames_needed * 2, 0);
            }
            let first = usize::try_from(from - self.base).unwrap_or(0) * 2;
            let mut bytes = Vec::with_capacity((frames_needed * 2).saturating_sub(first) * 2);
            for sample in &self.pending[first..frames_needed * 2] {
                bytes.extend_from_slice(&sample.to_le_bytes());
            }
            let written = self.written.max(end);
            let data_len = u32::try_from(written * 4).unwrap_or(u32::MAX);
            let result = self
                .file
                .write_all_at(&bytes, HEADER_LEN + from * 4)
                .and_then(|()| wav::write_sizes(&self.file, data_len));
            match result {
                Ok(()) => self.written = written,
                Err(e) => {
                    tracing::error!(
                        unique_id = %call.unique_id,
                        path = %call.path.display(),
                        kept_ms = self.written / 8,
                        error = %e,
                        "recording write failed: the file ends where it was written up to"
                    );
                    failures.files_cut_short.fetch_add(1, Ordering::Relaxed);
                    self.failed = true;
                    return;
                }
            }
        }
        let settled = end.saturating_sub(samples_in(MAX_STRAY)).max(self.base);
        let drop = usize::try_from(settled - self.base).unwrap_or(0) * 2;
        self.pending.drain(..drop.min(self.pending.len()));
        self.base = settled;
    }

    fn finish(mut self, end: u64, call: &CallTarget, failures: &Failures) -> Option<RecordingSummary> {
        self.write_up_to(end, call, failures);
        self.sidecar.end(self.written);
        let synced = self.file.sync_data();
        let sidecar_path = sidecar_path(&call.path);
        let sidecar = serde_json::to_vec_pretty(&self.sidecar)
            .map_err(io::Error::other)
            .and_then(|json| {
                let file = create_private(&sidecar_path)?;
                file.write_all_at(&json, 0)?;
                file.sync_data()
            })
            .inspect_err(|_| {
                // A sidecar cut short would not parse: none is better.
                let _ = std::fs::remove_file(&sidecar_path);
            });
        if let Err(e) = synced.and(sidecar) {
            tracing::error!(unique_id = %call.unique_id, error = %e, "recording not finished cleanly");
        }
        Some(RecordingSummary {
            key: call.key.clone(),
            frames: self.written,
            bytes: HEADER_LEN + self.written * 4,
            gaps: u64::try_from(self.sidecar.gaps.len()).unwrap_or(u64::MAX),
        })
    }
}

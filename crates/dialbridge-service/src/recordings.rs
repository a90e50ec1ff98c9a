//! Call recordings around the calls: the plan a recorded call starts with, its file's end (in
//! the CDR as `recordFile`), its recovery after a crash, pause and resume, downloads checked
//! and recorded, deletion by an operator and by retention (each recorded, never silent).

use std::sync::Arc;
use std::time::Duration;

use dialbridge_core::recording::RecordingName;
use dialbridge_core::{EnterpriseId, EnterpriseSettings, RecordingMode};
use dialbridge_media::{RecordFrom, RecordingPlan};
use dialbridge_recording::{LocalStorage, Recorder, RecordingKey, RecordingStorage, RecordingSummary};
use dialbridge_store::{RecordingAccess, RecordingRow, RecordingState, Store, StoreError, Tx};
use tokio::sync::oneshot;

use crate::{now_ms, CallService};

/// The recorder and what recording URLs start with.
#[derive(Clone)]
pub struct Recordings {
    pub recorder: Recorder,
    /// The server's public origin (`https://calls.example.com`), for `record_file_form = url`.
    pub public_origin: Option<String>,
}

/// How a call's recording ended, as its close sees it.
pub(crate) enum RecordingEnd {
    Kept(RecordingSummary),
    /// The call had no recording, or ended before it started.
    NotRecorded,
    /// The recorder had not finished the file in time: its plan stays until it has.
    Late(oneshot::Receiver<RecordingSummary>),
}

impl RecordingEnd {
    pub(crate) fn recorded(&self) -> RecordingFate<'_> {
        match self {
            RecordingEnd::Kept(summary) => RecordingFate::Kept(summary),
            RecordingEnd::NotRecorded => RecordingFate::Forgotten,
            RecordingEnd::Late(_) => RecordingFate::Pending,
        }
    }
}

/// What a call's close writes of its recording.
#[derive(Clone, Copy)]
pub(crate) enum RecordingFate<'a> {
    /// Kept, and named in the CDR.
    Kept(&'a RecordingSummary),
    /// The plan is forgotten (there is no file).
    Forgotten,
    /// Left planned: settled when the recorder finishes (or at the next start).
    Pending,
}

/// Keeps or forgets the call's recording row as `recorded` says (in the caller's transaction).
pub(crate) async fn apply_recording_end(
    tx: &mut Tx<'_>,
    unique_id: &str,
    recorded: RecordingFate<'_>,
) -> Result<(), StoreError> {
    match recorded {
        RecordingFate::Kept(summary) => {
            tx.keep_recording(unique_id, summary.frames, summary.bytes, summary.gaps, now_ms())
                .await
        }
        RecordingFate::Forgotten => tx.drop_planned_recording(unique_id).await,
        RecordingFate::Pending => Ok(()),
    }
}

/// Why a recording is not handed out or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordingRefusal {
    #[error("no such recording")]
    NotFound,
    #[error("the recording is another enterprise's")]
    OtherEnterprise,
    #[error("no such running call")]
    NoCall,
    #[error("the call is not recorded")]
    NotRecorded,
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for RecordingRefusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error about a recording");
        RecordingRefusal::Internal
    }
}

/// A recording a download may read.
#[derive(Debug)]
pub struct Downloadable {
    pub row: RecordingRow,
    pub file: std::fs::File,
}

/// Recordings deleted per enterprise per sweep.
const SWEEP_BATCH: u32 = 500;

/// How long a call's end waits for its recorder to finish the file.
const FINISH_WAIT: Duration = Duration::from_secs(10);

impl CallService {
    pub fn recording_storage(&self) -> &LocalStorage {
        self.inner.recordings.recorder.storage()
    }

    /// `recordFile` as the enterprise wants it shown: the name, or its download URL.
    pub fn shown_record_file(&self, settings: &EnterpriseSettings, file_name: &str) -> String {
        dialbridge_core::recording::shown_record_file(
            settings.record_file_form,
            self.inner.recordings.public_origin.as_deref(),
            file_name,
        )
    }

    /// The recording of a call about to be placed: its recorder, started at the bridge or the
    /// agent's answer as `mode` says.
    pub(crate) fn begin_recording(
        &self,
        mode: RecordingMode,
        settings: &EnterpriseSettings,
        enterprise: EnterpriseId,
        announcement: Option<Arc<[i16]>>,
        name: &RecordingName,
        unique_id: &str,
    ) -> Option<(RecordingPlan, oneshot::Receiver<RecordingSummary>)> {
        let from = match mode {
            RecordingMode::Off => return None,
            RecordingMode::FromBridge => RecordFrom::Bridge,
            RecordingMode::FromAgentAnswer => RecordFrom::AgentAnswer,
        };
        let key = RecordingKey::new(&name.day, &enterprise.to_string(), &name.file_name).ok()?;
        let (sink, summary) = self.inner.recordings.recorder.begin(key, unique_id);
        Some((
            RecordingPlan {
                from,
                max_length: Duration::from_secs(u64::from(settings.recording_max_minutes) * 60),
                announcement,
                sink,
            },
            summary,
        ))
    }

    /// How the call's recording ended: waits (at most [`FINISH_WAIT`]) for the recorder's
    /// summary of its file.
    pub(crate) async fn recording_end(&self, summary: Option<oneshot::Receiver<RecordingSummary>>) -> RecordingEnd {
        let Some(mut summary) = summary else {
            return RecordingEnd::NotRecorded;
        };
        match tokio::time::timeout(FINISH_WAIT, &mut summary).await {
            Ok(Ok(finished)) => RecordingEnd::Kept(finished),
            Ok(Err(_)) => RecordingEnd::NotRecorded,
            Err(_) => {
                self.inner.metrics.recordings_late.inc();
                RecordingEnd::Late(summary)
            }
        }
    }

    /// Counts a recording once its row is kept (committed).
    pub(crate) fn count_kept(&self, finished: &RecordingSummary) {
        self.inner.metrics.recordings_kept.inc();
        self.inner.metrics.recording_gaps.inc_by(finished.gaps);
    }

    /// The recorder's totals (files it could not create or write to the end).
    pub fn recorder_totals(&self) -> dialbridge_recording::RecorderTotals {
        self.inner.recordings.recorder.totals()
    }

    /// A recorder that was late at the call's end: its file is named in the CDR when it is
    /// finished (the hang-up push went without it), or the plan forgotten if none came.
    pub(crate) async fn keep_late_recording(&self, unique_id: &str, summary: oneshot::Receiver<RecordingSummary>) {
        tracing::warn!(%unique_id, "the recorder was late finishing the call's file: the CDR names it once it is done");
        let finished = summary.await.ok();
        if self.settle_recording(unique_id, finished.as_ref()).await {
            if let Some(finished) = &finished {
                self.count_kept(finished);
            }
        }
    }

    /// Keeps a finished recording (its row, its name in the CDR) or forgets a plan that has no
    /// file, for a call already closed; whether that was written.
    async fn settle_recording(&self, unique_id: &str, finished: Option<&RecordingSummary>) -> bool {
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            apply_recording_end(
                &mut tx,
                unique_id,
                finished.map_or(RecordingFate::Forgotten, RecordingFate::Kept),
            )
            .await?;
            if let Some(summary) = finished {
                tx.set_cdr_record_file(unique_id, &summary.key.file_name).await?;
            }
            tx.commit().await
        }
        .await;
        result
            .inspect_err(|e| tracing::error!(%unique_id, error = %e, "cannot record how the call's recording ended"))
            .is_ok()
    }

    /// At start: recordings whose recorder was late when their call closed and the server
    /// stopped before it finished: repaired and named in their CDR, or forgotten.
    pub(crate) async fn settle_stale_recordings(&self) {
        let stale = match self.inner.store.begin_read().await {
            Ok(mut tx) => tx.planned_recordings_of_ended_calls(self.inner.node.as_str()).await,
            Err(e) => Err(e),
        };
        let stale = match stale {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for recordings left unfinished");
                return;
            }
        };
        for row in stale {
            let recovered = self.recover_recording(&row.unique_id).await;
            self.settle_recording(&row.unique_id, recovered.as_ref()).await;
        }
    }

    /// After a crash: the recording the call was writing, repaired (`None`: none was written).
    pub(crate) async fn recover_recording(&self, unique_id: &str) -> Option<RecordingSummary> {
        let row = match self.inner.store.begin_read().await {
            Ok(mut tx) => tx.recording_of_call(unique_id).await,
            Err(e) => Err(e),
        };
        let row = match row {
            Ok(Some(row)) if row.state == RecordingState::Planned => row,
            Ok(_) => return None,
            Err(e) => {
                tracing::error!(%unique_id, error = %e, "cannot read the call's recording");
                return None;
            }
        };
        let key = key_of(&row).ok()?;
        let storage = self.recording_storage().clone();
        let id = unique_id.to_owned();
        let recovered = dialbridge_recording::blocking(move || {
            dialbridge_recording::recover(&storage, &key, &id).map_err(std::io::Error::other)
        })
        .await;
        match recovered {
            Ok(summary) => {
                if let Some(s) = &summary {
                    tracing::warn!(%unique_id, frames = s.frames, "recovered a recording left open by a restart");
                }
                summary
            }
            Err(e) => {
                tracing::error!(%unique_id, error = %e, "cannot recover the call's recording");
                None
            }
        }
    }

    /// Pauses (silence in the file, marked in its sidecar) or resumes the recording of one of
    /// the enterprise's running calls.
    /// `agent`: only that agent's call (an agent's token); `None`: any of the enterprise's.
    pub async fn pause_recording(
        &self,
        enterprise: EnterpriseId,
        agent: Option<i64>,
        unique_id: &str,
        paused: bool,
    ) -> Result<(), RecordingRefusal> {
        let mut tx = self.inner.store.begin_read().await?;
        let cdr = tx.cdr(unique_id).await?.ok_or(RecordingRefusal::NoCall)?;
        let theirs = cdr.start.enterprise_id == enterprise && agent.is_none_or(|id| id == cdr.start.agent_id);
        if !theirs || cdr.end.is_some() {
            return Err(RecordingRefusal::NoCall);
        }
        tx.recording_of_call(unique_id)
            .await?
            .ok_or(RecordingRefusal::NotRecorded)?;
        drop(tx);
        if !self.inner.engine.pause_recording(unique_id, paused) {
            return Err(RecordingRefusal::NoCall);
        }
        tracing::info!(%unique_id, paused, "recording paused or resumed");
        // For a toolbar that reloads during the call (the recording itself is the relay's).
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            tx.mark_recording_paused(unique_id, paused.then(now_ms)).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%unique_id, error = %e, "cannot record that the recording is paused");
        }
        Ok(())
    }

    /// The kept recording `day/file_name`, for a download by `enterprise`.
    pub async fn recording_for_download(
        &self,
        enterprise: EnterpriseId,
        day: &str,
        file_name: &str,
    ) -> Result<Downloadable, RecordingRefusal> {
        let row = self
            .inner
            .store
            .begin_read()
            .await?
            .recording_by_file(file_name)
            .await?
            .filter(|row| row.day == day && row.state == RecordingState::Kept)
            .ok_or(RecordingRefusal::NotFound)?;
        if row.enterprise_id != enterprise {
            return Err(RecordingRefusal::OtherEnterprise);
        }
        let key = key_of(&row)?;
        let storage = self.recording_storage().clone();
        let opened = dialbridge_recording::blocking(move || storage.open(&key)).await;
        let file = opened.map_err(|e| {
            tracing::error!(file = %row.file_name, error = %e, "a kept recording cannot be opened");
            RecordingRefusal::NotFound
        })?;
        Ok(Downloadable { row, file })
    }

    /// Records who downloaded what; an access that cannot be recorded must not happen.
    pub async fn note_recording_access(
        &self,
        row: &RecordingRow,
        action: &str,
        actor: &str,
        detail: &str,
    ) -> Result<(), RecordingRefusal> {
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            tx.record_recording_access(&RecordingAccess {
                unique_id: &row.unique_id,
                enterprise_id: row.enterprise_id,
                file_name: &row.file_name,
                action,
                actor,
                detail,
                at: now_ms(),
            })
            .await?;
            tx.commit().await
        }
        .await;
        result.map_err(|e| {
            tracing::error!(file = %row.file_name, action, error = %e, "cannot record an access to a recording");
            RecordingRefusal::Internal
        })
    }

    /// Deletes a call's recording (its file, its sidecar) and records by whom and why.
    pub async fn delete_recording(
        &self,
        unique_id: &str,
        by: &str,
        reason: &str,
    ) -> Result<RecordingRow, RecordingRefusal> {
        delete_recording(&self.inner.store, self.recording_storage(), unique_id, by, reason).await
    }

    /// Every `period`, deletes the recordings past their enterprise's retention (each deletion
    /// recorded), until `stop`.
    pub async fn run_recording_sweeper(self, period: Duration, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => match self.sweep_recordings(now_ms(), SWEEP_BATCH).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "recordings past their retention deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot sweep recordings past their retention"),
                },
            }
        }
    }

    /// Deletes the recordings older than their enterprise's retention, up to `limit` per
    /// enterprise; how many went.
    pub async fn sweep_recordings(&self, now: i64, limit: u32) -> Result<usize, StoreError> {
        let configuration = self.configuration().await?;
        let mut deleted = 0;
        for id in configuration.enterprise_ids() {
            let Some(days) = configuration
                .enterprise(id)
                .and_then(|c| c.enterprise.settings.recording_retention_days)
            else {
                continue;
            };
            let before = now - i64::from(days) * 86_400_000;
            let expired = self
                .inner
                .store
                .begin_read()
                .await?
                .expired_recordings(id, before, limit)
                .await?;
            for row in expired {
                let reason = format!("older than the enterprise's retention of {days} days");
                if self
                    .delete_recording(&row.unique_id, "retention", &reason)
                    .await
                    .is_ok()
                {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

/// Deletes a call's recording (its file, its sidecar) and records by whom and why (also for
/// the admin command, which runs without a server).
pub async fn delete_recording(
    store: &Store,
    storage: &LocalStorage,
    unique_id: &str,
    by: &str,
    reason: &str,
) -> Result<RecordingRow, RecordingRefusal> {
    let row = store
        .begin_read()
        .await?
        .recording_of_call(unique_id)
        .await?
        .filter(|row| row.state == RecordingState::Kept)
        .ok_or(RecordingRefusal::NotFound)?;
    let key = key_of(&row)?;
    let files = storage.clone();
    dialbridge_recording::blocking(move || files.delete(&key))
        .await
        .map_err(|e| {
            tracing::error!(file = %row.file_name, error = %e, "cannot delete a recording");
            RecordingRefusal::Internal
        })?;
    let now = now_ms();
    let mut tx = store.begin().await?;
    tx.mark_recording_deleted(unique_id, by, reason, now).await?;
    tx.record_recording_access(&RecordingAccess {
        unique_id,
        enterprise_id: row.enterprise_id,
        file_name: &row.file_name,
        action: "delete",
        actor: by,
        detail: reason,
        at: now,
    })
    .await?;
    tx.commit().await?;
    tracing::info!(%unique_id, file = %row.file_name, by, reason, "recording deleted");
    Ok(row)
}

/// Where a recording's row says its file is (a row that names no valid place has no file).
fn key_of(row: &RecordingRow) -> Result<RecordingKey, RecordingRefusal> {
    RecordingKey::new(&row.day, &row.enterprise_id.to_string(), &row.file_name).map_err(|_| RecordingRefusal::NotFound)
}

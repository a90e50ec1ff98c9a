//! Recordings: the row of each call planned to be recorded (its file, what the file holds, its
//! deletion), who downloaded or deleted which, and each enterprise's consent announcement.

use base64::Engine as _;
use dialbridge_core::EnterpriseId;

use crate::db::{query, Row};
use crate::{corrupt, StoreError, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingState {
    /// The call runs (or ran when the server stopped).
    Planned,
    /// The file is there.
    Kept,
    /// The file was deleted (retention or an operator).
    Deleted,
}

impl RecordingState {
    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "planned" => Ok(RecordingState::Planned),
            "kept" => Ok(RecordingState::Kept),
            "deleted" => Ok(RecordingState::Deleted),
            other => Err(StoreError::Corrupt(format!("recording state {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    pub unique_id: String,
    pub enterprise_id: EnterpriseId,
    pub day: String,
    pub file_name: String,
    pub state: RecordingState,
    pub frames: u64,
    pub bytes: u64,
    pub gaps: u64,
    pub created_at: i64,
    /// Since when the running call's recording is paused.
    pub paused_since: Option<i64>,
}

/// A download or a deletion, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingAccess<'a> {
    pub unique_id: &'a str,
    pub enterprise_id: EnterpriseId,
    pub file_name: &'a str,
    /// `download` or `delete`.
    pub action: &'a str,
    /// Who: `admin:<userName>`, `operator`, `retention`.
    pub actor: &'a str,
    /// What: the side downloaded and the range, or why it was deleted.
    pub detail: &'a str,
    pub at: i64,
}

const COLUMNS: &str = "unique_id, enterprise_id, day, file_name, state, frames, bytes, gaps, created_at, paused_since";

fn from_row(row: &Row) -> Result<RecordingRow, StoreError> {
    let count = |name: &str| -> Result<u64, StoreError> { Ok(u64::try_from(row.try_get::<i64>(name)?).unwrap_or(0)) };
    Ok(RecordingRow {
        unique_id: row.try_get("unique_id")?,
        enterprise_id: EnterpriseId::new(row.try_get("enterprise_id")?).map_err(corrupt)?,
        day: row.try_get("day")?,
        file_name: row.try_get("file_name")?,
        state: RecordingState::parse(&row.try_get::<String>("state")?)?,
        frames: count("frames")?,
        bytes: count("bytes")?,
        gaps: count("gaps")?,
        created_at: row.try_get("created_at")?,
        paused_since: row.try_get("paused_since")?,
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Tx<'_> {
    /// The call `unique_id` is to be recorded to `day/enterprise/file_name` (written with its CDR).
    pub async fn plan_recording(
        &mut self,
        unique_id: &str,
        enterprise: EnterpriseId,
        day: &str,
        file_name: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO recordings (unique_id, enterprise_id, day, file_name, state, created_at) \
             VALUES ($1, $2, $3, $4, 'planned', $5)",
        )
        .bind(unique_id)
        .bind(enterprise.get())
        .bind(day)
        .bind(file_name)
        .bind(at)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// The call's recording is finished and its file holds this much.
    pub async fn keep_recording(
        &mut self,
        unique_id: &str,
        frames: u64,
        bytes: u64,
        gaps: u64,
        at: i64,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE recordings SET state = 'kept', frames = $2, bytes = $3, gaps = $4, finished_at = $5, \
             paused_since = NULL WHERE unique_id = $1 AND state = 'planned'",
        )
        .bind(unique_id)
        .bind(to_i64(frames))
        .bind(to_i64(bytes))
        .bind(to_i64(gaps))
        .bind(at)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// The running call's recording was paused (`Some(since)`) or resumed.
    pub async fn mark_recording_paused(&mut self, unique_id: &str, since: Option<i64>) -> Result<(), StoreError> {
        query("UPDATE recordings SET paused_since = $2 WHERE unique_id = $1 AND state = 'planned'")
            .bind(unique_id)
            .bind(since)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// The call never reached its recording: there is no file.
    pub async fn drop_planned_recording(&mut self, unique_id: &str) -> Result<(), StoreError> {
        query("DELETE FROM recordings WHERE unique_id = $1 AND state = 'planned'")
            .bind(unique_id)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Recordings still planned whose call this node has closed: their recorder was late at
    /// the call's end, and the server stopped before it finished.
    pub async fn planned_recordings_of_ended_calls(&mut self, node: &str) -> Result<Vec<RecordingRow>, StoreError> {
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM recordings r JOIN cdrs c ON c.unique_id = r.unique_id \
             WHERE r.state = 'planned' AND c.ended_at IS NOT NULL AND c.node = $1"
        );
        let rows = query(&sql).bind(node).fetch_all(&mut self.conn).await?;
        rows.iter().map(from_row).collect()
    }

    /// Names a recording finished after its call's CDR was written.
    pub async fn set_cdr_record_file(&mut self, unique_id: &str, file_name: &str) -> Result<(), StoreError> {
        query("UPDATE cdrs SET record_file = $2 WHERE unique_id = $1")
            .bind(unique_id)
            .bind(file_name)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    pub async fn recording_of_call(&mut self, unique_id: &str) -> Result<Option<RecordingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM recordings WHERE unique_id = $1");
        let row = query(&sql).bind(unique_id).fetch_optional(&mut self.conn).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn recording_by_file(&mut self, file_name: &str) -> Result<Option<RecordingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM recordings WHERE file_name = $1");
        let row = query(&sql).bind(file_name).fetch_optional(&mut self.conn).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Up to `limit` of an enterprise's kept recordings made before `before`, oldest first.
    pub async fn expired_recordings(
        &mut self,
        enterprise: EnterpriseId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM recordings WHERE enterprise_id = $1 AND state = 'kept' AND created_at < $2 \
             ORDER BY created_at LIMIT $3"
        );
        let rows = query(&sql)
            .bind(enterprise.get())
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&mut self.conn)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The recording's file is gone: by whom and why (the row stays, for the record).
    pub async fn mark_recording_deleted(
        &mut self,
        unique_id: &str,
        by: &str,
        reason: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE recordings SET state = 'deleted', deleted_at = $2, deleted_by = $3, delete_reason = $4 \
             WHERE unique_id = $1 AND state = 'kept'",
        )
        .bind(unique_id)
        .bind(at)
        .bind(by)
        .bind(reason)
        .execute(&mut self.conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn record_recording_access(&mut self, access: &RecordingAccess<'_>) -> Result<(), StoreError> {
        let id = self.next_id("recording_access").await?;
        query(
            "INSERT INTO recording_access (id, unique_id, enterprise_id, file_name, action, actor, detail, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(access.unique_id)
        .bind(access.enterprise_id.get())
        .bind(access.file_name)
        .bind(access.action)
        .bind(access.actor)
        .bind(access.detail)
        .bind(access.at)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// Who downloaded or deleted the call's recording, oldest first: (action, actor, detail, at).
    pub async fn recording_accesses(
        &mut self,
        unique_id: &str,
    ) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        let rows = query("SELECT action, actor, detail, at FROM recording_access WHERE unique_id = $1 ORDER BY at, id")
            .bind(unique_id)
            .fetch_all(&mut self.conn)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("action")?,
                    r.try_get("actor")?,
                    r.try_get("detail")?,
                    r.try_get("at")?,
                ))
            })
            .collect()
    }

    /// Sets (or with `None` removes) the enterprise's consent announcement (8 kHz samples).
    pub async fn set_recording_announcement(
        &mut self,
        enterprise: EnterpriseId,
        samples: Option<&[i16]>,
        at: i64,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        query("DELETE FROM recording_announcements WHERE enterprise_id = $1")
            .bind(enterprise.get())
            .execute(&mut self.conn)
            .await?;
        if let Some(samples) = samples {
            let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            query("INSERT INTO recording_announcements (enterprise_id, samples, updated_at) VALUES ($1, $2, $3)")
                .bind(enterprise.get())
                .bind(base64::engine::general_purpose::STANDARD.encode(bytes))
                .bind(at)
                .execute(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    /// Every enterprise's announcement (for the configuration cache).
    pub async fn recording_announcements(&mut self) -> Result<Vec<(EnterpriseId, Vec<i16>)>, StoreError> {
        let rows = query("SELECT enterprise_id, samples FROM recording_announcements ORDER BY enterprise_id")
            .fetch_all(&mut self.conn)
            .await?;
        rows.iter()
            .map(|r| {
                let id = EnterpriseId::new(r.try_get("enterprise_id")?).map_err(corrupt)?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(r.try_get::<String>("samples")?)
                    .map_err(|e| StoreError::Corrupt(format!("announcement of {id}: {e}")))?;
                let samples = bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                Ok((id, samples))
            })
            .collect()
    }
}

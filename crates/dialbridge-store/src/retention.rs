//! Deleting what is past its retention, in small batches (each its own short transaction, so
//! a sweep never holds the writer for long): outbox events whose deliveries are all done,
//! completed CDRs, refusal records.

use crate::db::{query, query_as};
use crate::{StoreError, Tx};

/// The condition of an outbox event that may go: created before `$1` with no delivery still
/// pending (a pending one is kept, however old, until it is delivered or dead).
const SWEEPABLE_EVENT: &str = "e.created_at < $1 AND NOT EXISTS \
    (SELECT 1 FROM push_deliveries p WHERE p.event_id = e.id AND p.state = 'pending')";

impl Tx<'_> {
    /// Deletes up to `limit` of the oldest outbox events created before `before` whose
    /// deliveries are done, with their deliveries, and raises the mark the live stream reads
    /// ([`Tx::push_events_swept_through`]). Returns how many events went.
    pub async fn sweep_push_events(&mut self, before: i64, limit: u32) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT MAX(id) FROM (SELECT e.id FROM push_events e WHERE {SWEEPABLE_EVENT} ORDER BY e.id LIMIT $2) batch"
        );
        let (through,): (Option<i64>,) = query_as(&sql)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_one(&mut self.conn)
            .await?;
        let Some(through) = through else {
            return Ok(0);
        };
        let sql = format!(
            "DELETE FROM push_deliveries WHERE event_id IN \
             (SELECT e.id FROM push_events e WHERE e.id <= $2 AND {SWEEPABLE_EVENT})"
        );
        query(&sql).bind(before).bind(through).execute(&mut self.conn).await?;
        let deleted = query(
            "DELETE FROM push_events WHERE id <= $2 AND created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM push_deliveries p WHERE p.event_id = push_events.id)",
        )
        .bind(before)
        .bind(through)
        .execute(&mut self.conn)
        .await?
        .rows_affected();
        query("UPDATE retention_marks SET value = $1 WHERE name = 'push_events' AND value < $1")
            .bind(through)
            .execute(&mut self.conn)
            .await?;
        Ok(deleted)
    }

    /// The highest outbox event id a sweep has reached (0 before any): events up to it may be
    /// gone.
    pub async fn push_events_swept_through(&mut self) -> Result<i64, StoreError> {
        let (value,): (i64,) = query_as("SELECT value FROM retention_marks WHERE name = 'push_events'")
            .fetch_one(&mut self.conn)
            .await?;
        Ok(value)
    }

    /// Deletes up to `limit` of the oldest CDRs of calls requested before `before` that have
    /// ended (a running call's row is never deleted). Returns how many went.
    pub async fn sweep_cdrs(&mut self, before: i64, limit: u32) -> Result<u64, StoreError> {
        Ok(query(
            "DELETE FROM cdrs WHERE unique_id IN (SELECT unique_id FROM cdrs WHERE requested_at < $1 \
             AND ended_at IS NOT NULL ORDER BY requested_at LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut self.conn)
        .await?
        .rows_affected())
    }

    /// Deletes up to `limit` of the oldest refusal records made before `before`.
    pub async fn sweep_refusals(&mut self, before: i64, limit: u32) -> Result<u64, StoreError> {
        Ok(query(
            "DELETE FROM refused_requests WHERE id IN (SELECT id FROM refused_requests WHERE at < $1 \
             ORDER BY at LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut self.conn)
        .await?
        .rows_affected())
    }
}

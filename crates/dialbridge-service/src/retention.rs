//! Retention: how long delivered pushes, CDRs and refusal records are kept, and the sweeper
//! that deletes what is older, a small batch per transaction so that calls never wait long
//! behind it.

use std::time::Duration;

use dialbridge_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// How long each kind of row is kept; `None` keeps it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Outbox events (and their deliveries) once every delivery is done; the live event
    /// stream replays no further back.
    pub push_events: Option<Duration>,
    /// CDRs of calls that have ended, by the time they were requested.
    pub cdrs: Option<Duration>,
    pub refusals: Option<Duration>,
}

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub push_events: u64,
    pub cdrs: u64,
    pub refusals: u64,
}

/// Rows deleted per transaction.
const BATCH: u32 = 500;
/// Between two batches the writer is left to the calls.
const PAUSE: Duration = Duration::from_millis(5);

/// The cut-off for rows kept `kept` at `now_ms`: rows older than it go.
pub fn cutoff(now_ms: i64, kept: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(kept.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, Copy)]
enum Table {
    PushEvents,
    Cdrs,
    Refusals,
}

/// Deletes everything past its retention at `now_ms`, batch by batch.
pub async fn sweep(store: &Store, policy: &RetentionPolicy, now_ms: i64) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    for (table, kept, count) in [
        (Table::PushEvents, policy.push_events, &mut swept.push_events),
        (Table::Cdrs, policy.cdrs, &mut swept.cdrs),
        (Table::Refusals, policy.refusals, &mut swept.refusals),
    ] {
        let Some(kept) = kept else { continue };
        let before = cutoff(now_ms, kept);
        loop {
            let deleted = sweep_batch(store, table, before).await?;
            *count += deleted;
            if deleted < u64::from(BATCH) {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    Ok(swept)
}

async fn sweep_batch(store: &Store, table: Table, before: i64) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let deleted = match table {
        Table::PushEvents => tx.sweep_push_events(before, BATCH).await?,
        Table::Cdrs => tx.sweep_cdrs(before, BATCH).await?,
        Table::Refusals => tx.sweep_refusals(before, BATCH).await?,
    };
    tx.commit().await?;
    Ok(deleted)
}

/// Sweeps every `interval` until `stop`.
pub async fn run_sweeper(store: Store, policy: RetentionPolicy, interval: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
        match sweep(&store, &policy, crate::now_ms()).await {
            Ok(swept) if swept != Swept::default() => tracing::info!(?swept, "retention: old rows deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; trying again later"),
        }
    }
}

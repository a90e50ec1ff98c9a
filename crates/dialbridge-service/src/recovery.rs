//! After a crash: the far ends of the calls this node left running are ended first (a BYE to
//! every answered leg, a CANCEL to every ringing one, as kept while the call ran), then each
//! call is closed with the status of the phase it reached, `sipCause` 0, billed up to the last
//! moment known (a bridged call's last heartbeat), and its agent returned to wrap-up or idle.
//! Each enterprise's `held` is then checked against the holds of the calls still running (on
//! other nodes) and rebuilt from them if it drifted.
//!
//! What is not ended: a leg whose INVITE got no answer at all before the crash (no CANCEL can
//! be built before the answer echoes the INVITE's Via: the far end gives up on its own timer,
//! 32 s), and a leg whose answer came in the moment between the crash and its progress commit
//! (the far end ends it when its session timer or media timeout runs out).

use std::time::Duration;

use dialbridge_core::call::{EndReason, Outcome, Phase, Side};
use dialbridge_engine::{CallReport, LegEnding, SipTransport};
use dialbridge_store::StoreError;

use crate::close::CallContext;
use crate::recordings::RecordingFate;
use crate::CallService;

impl CallService {
    /// After a crash: closes every call this node left running, with the status of the phase it
    /// reached, `sipCause` 0, billed up to the last moment known, and returns its agent to
    /// wrap-up or idle. Returns how many calls were closed.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let open: Vec<_> = self
            .inner
            .store
            .begin_read()
            .await?
            .open_cdrs()
            .await?
            .into_iter()
            .filter(|c| c.start.node == self.inner.node.as_str())
            .collect();
        self.end_far_ends(open.iter().map(|c| c.start.unique_id.as_str()))
            .await?;
        let mut closed = 0;
        for cdr in open {
            let mut tx = self.inner.store.begin_read().await?;
            let progress = tx.cdr_progress(&cdr.start.unique_id).await?;
            let (agent_answered_at, bridged_at) = (progress.agent_answered_at, progress.bridged_at);
            let Some(enterprise) = tx.enterprise(cdr.start.enterprise_id).await? else {
                continue;
            };
            let wrapup_secs = match tx
                .agent(
                    enterprise.id,
                    &dialbridge_core::Cno::parse(&cdr.start.cno).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                )
                .await?
            {
                Some(agent) => agent.settings.wrapup_secs.unwrap_or(enterprise.settings.wrapup_secs),
                None => enterprise.settings.wrapup_secs,
            };
            drop(tx);
            let phase = match (agent_answered_at, bridged_at) {
                (_, Some(_)) => Phase::Bridged,
                (Some(_), None) => Phase::CustomerLeg,
                _ => Phase::AgentLeg,
            };
            // Billed up to the last heartbeat of a bridged call.
            let last_known = progress
                .alive_at
                .or(bridged_at)
                .or(agent_answered_at)
                .unwrap_or(cdr.start.requested_at);
            let report = CallReport {
                unique_id: cdr.start.unique_id.clone(),
                outcome: Outcome {
                    reason: EndReason::Shutdown,
                    side: Side::Platform,
                    phase,
                    sip_code: Some(0),
                },
                record: dialbridge_core::call::CallRecord {
                    started_at: cdr.start.requested_at,
                    agent_answered_at,
                    bridged_at,
                    ended_at: Some(last_known),
                    ..Default::default()
                },
                media: Default::default(),
                customer_trunk: None,
            };
            let context = CallContext {
                enterprise,
                agent_id: cdr.start.agent_id,
                cno: cdr.start.cno.clone(),
                customer_number: cdr.start.customer_number.clone(),
                wrapup_secs,
                trunk_name: cdr.start.trunk_name.clone(),
            };
            tracing::warn!(unique_id = %cdr.start.unique_id, ?phase, "closing a call left running by a restart");
            let recorded = self.recover_recording(&cdr.start.unique_id).await;
            let recorded = recorded.as_ref().map_or(RecordingFate::Forgotten, RecordingFate::Kept);
            self.close(&context, &report, recorded).await;
            closed += 1;
        }
        self.settle_stale_recordings().await;
        self.reconcile_holds().await;
        Ok(closed)
    }

    /// Deletes holds whose call is no longer running and rebuilds each enterprise's `held`
    /// from the holds left, one enterprise per transaction; a failure is logged, not fatal
    /// (every call left by the crash is closed by now: this is a safety net).
    async fn reconcile_holds(&self) {
        let enterprises = match self.inner.store.begin_read().await {
            Ok(mut tx) => tx.enterprises_to_reconcile().await,
            Err(e) => Err(e),
        };
        let enterprises = match enterprises {
            Ok(enterprises) => enterprises,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the credit held by running calls");
                return;
            }
        };
        for enterprise in enterprises {
            let result = async {
                let mut tx = self.inner.store.begin().await?;
                let reconciled = tx.reconcile_held(enterprise).await?;
                tx.commit().await?;
                Ok::<_, StoreError>(reconciled)
            }
            .await;
            match result {
                Ok((orphans, corrected)) => tracing::warn!(
                    %enterprise,
                    orphan_holds_released = orphans,
                    held_rebuilt = corrected,
                    "the credit held by running calls had drifted from their holds: rebuilt from them"
                ),
                Err(e) => tracing::warn!(%enterprise, error = %e, "cannot rebuild the credit held by running calls"),
            }
        }
    }

    /// Sends every kept leg ending of these calls at once, each waiting at most a few seconds
    /// for its answer (a far end that is gone delays the start no longer than that).
    async fn end_far_ends<'a>(&self, calls: impl Iterator<Item = &'a str>) -> Result<(), StoreError> {
        const WAIT: Duration = Duration::from_secs(4);
        let mut sends = tokio::task::JoinSet::new();
        let mut tx = self.inner.store.begin_read().await?;
        for unique_id in calls {
            for kept in tx.leg_endings(unique_id).await? {
                let engine = self.inner.engine.clone();
                let unique_id = unique_id.to_owned();
                let ending = LegEnding {
                    request: kept.request,
                    destination: kept.destination,
                    transport: if kept.over_tcp {
                        SipTransport::Tcp
                    } else {
                        SipTransport::Udp
                    },
                };
                sends.spawn(async move {
                    let method = ending.request.split_whitespace().next().unwrap_or("").to_owned();
                    match engine.end_leg(&ending, WAIT).await {
                        Ok(Some(code)) => {
                            tracing::info!(%unique_id, leg = ?kept.leg, %method, code, "ended a far end left up by the last run")
                        }
                        Ok(None) => {
                            tracing::warn!(%unique_id, leg = ?kept.leg, %method, "a far end left up by the last run did not answer")
                        }
                        Err(e) => {
                            tracing::warn!(%unique_id, leg = ?kept.leg, %method, error = %e, "cannot end a far end left up by the last run")
                        }
                    }
                });
            }
        }
        drop(tx);
        while sends.join_next().await.is_some() {}
        Ok(())
    }
}

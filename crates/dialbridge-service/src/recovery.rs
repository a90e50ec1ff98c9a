//! After a crash: the calls this node left running are closed at start, each with the status
//! of the phase it reached, `sipCause` 0, billed up to the last moment known (a bridged call's
//! last heartbeat), and its agent returned to wrap-up or idle.

use dialbridge_core::call::{EndReason, Outcome, Phase, Side};
use dialbridge_engine::CallReport;
use dialbridge_store::StoreError;

use crate::close::CallContext;
use crate::CallService;

impl CallService {
    /// After a crash: closes every call this node left running, with the status of the phase it
    /// reached, `sipCause` 0, billed up to the last moment known, and returns its agent to
    /// wrap-up or idle. Returns how many calls were closed.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let open = self.inner.store.begin_read().await?.open_cdrs().await?;
        let mut closed = 0;
        for cdr in open.into_iter().filter(|c| c.start.node == self.inner.node.as_str()) {
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
            self.close(&context, &report).await;
            closed += 1;
        }
        Ok(closed)
    }
}

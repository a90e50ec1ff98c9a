//! A call's end: its CDR, its charge (the settlement of its credit hold) and the agent's return
//! to wrap-up or idle, written in one transaction and retried until it commits (a CDR is never
//! lost, a call never charged twice), with the hang-up push.
//!
//! The CDR row keeps the legacy interface's numbering of a call's status and SIP cause (the
//! schema the CDR endpoints and pushes read), so those two mappings live with the record here.

use std::time::Duration;

use dialbridge_core::agent::AgentState;
use dialbridge_core::call::{EndReason, Outcome, Phase};
use dialbridge_core::{Enterprise, Hold, Money};
use dialbridge_engine::CallReport;
use dialbridge_store::{CdrEnd, StoreError};

use crate::recordings::{apply_recording_end, RecordingFate};
use crate::{now_ms, CallService};

/// What the service keeps of a call while it runs, for its end.
pub(crate) struct CallContext {
    pub(crate) enterprise: Enterprise,
    pub(crate) agent_id: i64,
    pub(crate) cno: String,
    pub(crate) customer_number: String,
    pub(crate) wrapup_secs: u32,
    /// The trunk its CDR names (the one chosen at the request).
    pub(crate) trunk_name: String,
}

impl CallService {
    /// Reads, changes and writes the agent's state, retrying when a concurrent change won.
    pub(crate) async fn update_agent(
        &self,
        context: &CallContext,
        change: impl Fn(&AgentState, i64) -> Option<AgentState>,
    ) {
        let agent_id = context.agent_id;
        for _ in 0..20 {
            let result: Result<bool, StoreError> = async {
                let mut tx = self.inner.store.begin().await?;
                let stored = tx.agent_state(agent_id).await?;
                let Some(next) = change(&stored.state, now_ms()) else {
                    return Ok(true);
                };
                if tx.save_agent_state(agent_id, &next, stored.version).await? {
                    self.push_status(
                        &mut tx,
                        context.enterprise.id,
                        agent_id,
                        &context.cno,
                        &next,
                        &context.customer_number,
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(true);
                }
                Ok(false)
            }
            .await;
            match result {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, agent_id, "cannot update the agent's state");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The call ended: CDR, settlement and the agent's state in one transaction (retried until
    /// it commits: a CDR is never lost).
    /// `recorded`: what becomes of the call's recording (kept and named in the CDR, forgotten,
    /// or left for a late recorder).
    pub(crate) async fn close(&self, context: &CallContext, report: &CallReport, recorded: RecordingFate<'_>) {
        let agent_answered = report.record.agent_answered_at.is_some();
        for attempt in 0u32.. {
            // The CDR this close wrote (none when the call was closed already: not counted again).
            let mut written = None;
            let result: Result<bool, StoreError> = async {
                let mut tx = self.inner.store.begin().await?;
                let hold = tx.release_hold(&report.unique_id).await?;
                let mut end = cdr_end(report, hold);
                if let RecordingFate::Kept(summary) = recorded {
                    end.record_file = summary.key.file_name.clone();
                }
                apply_recording_end(&mut tx, &report.unique_id, recorded).await?;
                if !tx.finish_cdr(&report.unique_id, &end).await? {
                    // Closed already: a hold left behind is released, a recording kept or
                    // forgotten, all the same.
                    if let RecordingFate::Kept(summary) = recorded {
                        tx.set_cdr_record_file(&report.unique_id, &summary.key.file_name)
                            .await?;
                    }
                    tx.commit().await?;
                    return Ok(true);
                }
                if let Some(trunk) = report.customer_trunk.as_ref().filter(|t| **t != context.trunk_name) {
                    tx.set_cdr_trunk(&report.unique_id, trunk).await?;
                }
                tx.settle_call(context.enterprise.id, &report.unique_id, end.cost)
                    .await?;
                tx.forget_leg_endings(&report.unique_id).await?;
                let stored = tx.agent_state(context.agent_id).await?;
                let next = stored
                    .state
                    .end_call(&report.unique_id, agent_answered, context.wrapup_secs, now_ms());
                if !tx.save_agent_state(context.agent_id, &next, stored.version).await? {
                    return Ok(false);
                }
                self.push_status(
                    &mut tx,
                    context.enterprise.id,
                    context.agent_id,
                    &context.cno,
                    &next,
                    &context.customer_number,
                )
                .await?;
                if let Some(mut cdr) = tx.cdr(&report.unique_id).await? {
                    if let Some(end) = cdr.end.as_mut() {
                        end.record_file = self.shown_record_file(&context.enterprise.settings, &end.record_file);
                    }
                    let payload = dialbridge_push::fields::hangup(&cdr);
                    tx.enqueue_push(cdr.start.enterprise_id, "hangup", &report.unique_id, &payload)
                        .await?;
                }
                tx.commit().await?;
                if let Some(until) = next.wrapup_until {
                    self.end_wrapup_at(context.enterprise.id, context.agent_id, context.cno.clone(), until);
                }
                written = Some(end);
                Ok(true)
            }
            .await;
            match result {
                Ok(true) => {
                    if let Some(end) = written {
                        tracing::info!(unique_id = %report.unique_id, status = end.status, reason = %end.end_reason, "CDR written");
                        self.inner
                            .metrics
                            .calls_ended
                            .get_or_create(&vec![("reason".to_owned(), end.end_reason.as_str().to_owned())])
                            .inc();
                    }
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(unique_id = %report.unique_id, error = %e, attempt, "cannot write the CDR; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(25)))).await;
                }
            }
        }
    }
}

/// The legacy CDR status (§4): 28 bridged; 21 the customer did not answer (or the agent, the
/// API or a shutdown ended it while it rang); 22 the customer leg failed; 24 the agent's phone
/// did not answer.
pub fn cdr_status(outcome: &Outcome) -> u8 {
    match outcome.phase {
        Phase::Bridged => 28,
        Phase::CustomerLeg => match outcome.reason {
            EndReason::CustomerBusy
            | EndReason::CustomerDeclined
            | EndReason::CustomerUnreachable
            | EndReason::CustomerFailed => 22,
            _ => 21,
        },
        Phase::AgentLeg => 24,
    }
}

/// The SIP status that decided the ending (§4 `sipCause`).
pub fn sip_cause(outcome: &Outcome) -> u16 {
    outcome.sip_code.unwrap_or(match outcome.reason {
        EndReason::AgentNoAnswer | EndReason::CustomerNoAnswer => 487,
        EndReason::AgentUnreachable | EndReason::CustomerUnreachable => 408,
        EndReason::AgentNotRegistered => 480,
        _ if outcome.phase == Phase::Bridged => 200,
        _ => 487,
    })
}

/// The CDR's end; its cost is the settlement of the call's credit hold. A call that held none
/// costs nothing: it was free when it was accepted, whatever the rate is now.
fn cdr_end(report: &CallReport, hold: Option<Hold>) -> CdrEnd {
    let r = &report.record;
    let ended_at = r.ended_at.unwrap_or_else(now_ms);
    // A bridged call has started its first minute, however short (or unknown, after a crash).
    let bridge_seconds = r.bridged_at.map_or(0, |b| {
        u64::try_from((ended_at - b).max(0)).unwrap_or(0).div_ceil(1000).max(1)
    });
    let cost = hold.map_or(Money::ZERO, |hold| hold.settle(bridge_seconds));
    CdrEnd {
        agent_ringing_at: r.agent_ringing_at,
        agent_answered_at: r.agent_answered_at,
        customer_ringing_at: r.customer_ringing_at,
        bridged_at: r.bridged_at,
        ended_at,
        status: cdr_status(&report.outcome),
        end_reason: report.outcome.reason,
        hung_up_by: report.outcome.side,
        sip_cause: sip_cause(&report.outcome),
        agent_sip_code: r.agent_final_code,
        customer_sip_code: r.customer_final_code,
        bridge_seconds,
        cost,
        packets_agent_to_customer: report.media.agent_to_customer_packets,
        packets_customer_to_agent: report.media.customer_to_agent_packets,
        record_file: String::new(),
    }
}

#[cfg(test)]
#[path = "close_test.rs"]
mod tests;

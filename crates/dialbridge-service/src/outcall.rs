//! A preview outcall from acceptance to its end: the snapshot the policy decides over, the
//! outbound lock + `uniqueId` + CDR row in one transaction before any INVITE, the engine's call,
//! and its progress recorded as it goes (so a restart knows the phase reached); the end is
//! [`crate::close`]'s.

use std::time::Duration;

use dialbridge_core::call::{EndReason, Outcome, Phase, Side};
use dialbridge_core::{Enterprise, Hold, PhoneType, RecordingMode};
use dialbridge_engine::{AgentPhone, CallReport, CallTimers, CallUpdate, PreviewOutcall, Progress};
use dialbridge_store::{AgentRecord, CdrStart, Extension, KeptLegEnding, StoreError};
use tokio::sync::oneshot;

use crate::close::CallContext;
use crate::configuration::{Configuration, EnterpriseConfig};
use crate::policy::{self, OutcallRequest, Refusal, Snapshot, TrunkOption};
use crate::recordings::{RecordingEnd, RecordingFate};
use crate::{now_ms, CallService};

pub struct Accepted {
    pub unique_id: String,
    /// Resolves to whether the agent answered (sync mode waits for it).
    pub agent_answered: oneshot::Receiver<bool>,
    /// The agent ring timeout, so a sync caller knows how long to wait.
    pub agent_ring_timeout: Duration,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error while placing a call");
        Refusal::Internal
    }
}

impl CallService {
    /// Decides the request ([`policy::check`]), then takes the lock and starts the call.
    pub async fn preview_outcall(
        &self,
        configuration: &Configuration,
        configured: &EnterpriseConfig,
        agent: &AgentRecord,
        request: OutcallRequest,
    ) -> Result<Accepted, Refusal> {
        let s = &configured.enterprise.settings;
        let resolved = crate::routing::trunks_for(configuration.trunks(), configured.enterprise.id).await;
        let customer = policy::Customer::of(s, &request);

        let mut tx = self.inner.store.begin().await?;
        // The caps hold under a race: nothing counted below changes until this commits.
        let counted_trunks: Vec<&str> = resolved
            .iter()
            .filter(|(_, route)| route.is_some())
            .map(|(trunk, _)| trunk.name.as_str())
            .collect();
        let hold = Hold::first(customer.rate);
        let counts_enterprise = s.concurrency_cap.is_some() || s.number_limit.is_some() || hold.is_some();
        tx.lock_for_admission(counts_enterprise.then_some(configured.enterprise.id), &counted_trunks)
            .await?;
        let now = now_ms();
        // Money is not configuration: the balance, credit limit and holds as this transaction
        // sees them.
        let credit = tx.money(configured.enterprise.id).await?.ok_or(Refusal::Internal)?;
        let mut enterprise = Enterprise {
            balance: credit.balance,
            held: credit.held,
            ..configured.enterprise.clone()
        };
        enterprise.settings.credit_limit = credit.credit_limit;
        let enterprise = &enterprise;
        let caller_ids = &configured.caller_ids;
        let blacklist = &configured.blacklist;
        let calls_to_number = match (s.number_limit, &customer.number) {
            (Some(limit), Ok(number)) => {
                let since = now - i64::from(limit.window_minutes) * 60_000;
                tx.calls_to_number_since(enterprise.id, number.digits(), since).await?
            }
            _ => 0,
        };
        let stored = tx.agent_state(agent.id).await?;
        let bound_phone = tx.bound_phone(agent.id).await?;
        let running_calls = match s.concurrency_cap {
            Some(_) => tx.running_calls(Some(enterprise.id), None).await?,
            None => 0,
        };
        let mut trunks = Vec::with_capacity(resolved.len());
        for (trunk, route) in resolved {
            let running_calls = match route {
                Some(_) => tx.running_calls(None, Some(&trunk.name)).await?,
                None => 0,
            };
            let up = self
                .inner
                .engine
                .trunk_status(&trunk.name)
                .is_none_or(|status| status.usable());
            trunks.push(TrunkOption {
                trunk,
                up,
                running_calls,
                route,
            });
        }
        let snapshot = Snapshot {
            enterprise,
            customer: &customer,
            agent: &agent.settings,
            agent_state: &stored.state,
            caller_ids,
            blacklist,
            calls_to_number,
            bound_phone: bound_phone.as_ref(),
            phone_reachable: self.phone_reachable(enterprise.id, bound_phone.as_ref()),
            running_calls,
            trunks: &trunks,
        };
        let plan = policy::check(&snapshot, &request, now)?;
        if !plan.skipped.is_empty() {
            tracing::info!(enterprise = %enterprise.id, skipped = ?plan.skipped, "trunks passed over");
        }
        let mut routes = plan.routes;
        let route = routes.remove(0);
        let trunk_name = route.name.clone();
        let (phone_type, phone_number) = plan.phone;
        let number = plan.customer;

        // Accept: allocate the uniqueId, take the lock, write the CDR row, in one transaction.
        let seq = tx.next_id(&format!("unique_id:{}", self.inner.node)).await?;
        let unique_id = format!("{}-{}.{seq}", self.inner.node, now / 1000);
        // The first minute is held before anything is written; a race lost here (a hold
        // committed since the snapshot) writes nothing and places no call.
        if let Some(hold) = hold {
            if !tx.take_hold(enterprise.id, &unique_id, hold).await? {
                return Err(Refusal::BalanceExhausted);
            }
        }
        let locked = stored.state.start_call(&unique_id, now).map_err(Refusal::Agent)?;
        if !tx.save_agent_state(agent.id, &locked, stored.version).await? {
            return Err(Refusal::LockLost);
        }
        let recording_mode = dialbridge_core::recording::mode_for(s, &agent.settings);
        let recording_name = (recording_mode != RecordingMode::Off).then(|| {
            dialbridge_core::recording::recording_name(enterprise.id, &s.time_zone, now, number.digits(), &unique_id)
        });
        tx.insert_cdr(&CdrStart {
            unique_id: unique_id.clone(),
            enterprise_id: enterprise.id,
            agent_id: agent.id,
            cno: agent.cno.to_string(),
            agent_phone: phone_number.clone(),
            agent_phone_type: phone_type,
            customer_number: number.digits().to_owned(),
            customer_area_code: number.area_code().map(str::to_owned),
            customer_number_type: number.legacy_number_type(),
            caller_id: plan.caller_id.number.clone(),
            trunk_name: trunk_name.clone(),
            user_field: request.user_field.clone(),
            node: self.inner.node.to_string(),
            requested_at: now,
        })
        .await?;
        if let Some(name) = &recording_name {
            tx.plan_recording(&unique_id, enterprise.id, &name.day, &name.file_name, now)
                .await?;
        }
        self.push_status(
            &mut tx,
            enterprise.id,
            agent.id,
            agent.cno.as_str(),
            &locked,
            number.digits(),
        )
        .await?;
        tx.commit().await?;
        let (recording_plan, recording) = recording_name
            .as_ref()
            .and_then(|name| {
                self.begin_recording(
                    recording_mode,
                    s,
                    enterprise.id,
                    configured.announcement.clone(),
                    name,
                    &unique_id,
                )
            })
            .unzip();

        let agent_phone = match phone_type {
            PhoneType::Extension => AgentPhone::Extension {
                aor: format!("{}-{phone_number}", enterprise.id),
            },
            PhoneType::Telephone | PhoneType::RemotePhone => AgentPhone::Telephone { number: phone_number },
            PhoneType::Softphone => AgentPhone::Softphone {
                aor: format!("{}-{phone_number}", enterprise.id),
            },
        };
        let (agent_ring_secs, customer_ring_secs) = request
            .ring_limits
            .apply(s.agent_ring_timeout_secs, s.customer_ring_timeout_secs);
        let timers = CallTimers {
            agent_ring: Duration::from_secs(u64::from(agent_ring_secs)),
            customer_ring: Duration::from_secs(u64::from(customer_ring_secs)),
            max_duration: s
                .max_call_minutes
                .map(|minutes| Duration::from_secs(u64::from(minutes) * 60)),
            paid_minutes: hold.map(|h| h.minutes),
            ..CallTimers::default()
        };
        // The number an agent's telephone is shown, while it is still one of the enterprise's.
        let agent_caller_id = s
            .agent_caller_id
            .as_ref()
            .filter(|clid| caller_ids.iter().any(|c| c.number == **clid))
            .cloned();
        if s.agent_caller_id.is_some() && agent_caller_id.is_none() {
            tracing::warn!(enterprise = %enterprise.id, "agent_caller_id is no longer one of the enterprise's numbers: the call's caller id is shown");
        }
        let call = PreviewOutcall {
            unique_id: unique_id.clone(),
            agent_phone,
            customer_number: number.digits().to_owned(),
            caller_id: plan.caller_id.number,
            agent_caller_id,
            trunk: route,
            fallback_trunks: routes,
            timers,
            recording: recording_plan,
        };
        let (answered_tx, agent_answered) = oneshot::channel();
        let context = CallContext {
            enterprise: enterprise.clone(),
            agent_id: agent.id,
            cno: agent.cno.to_string(),
            customer_number: number.digits().to_owned(),
            wrapup_secs: agent.settings.wrapup_secs.unwrap_or(s.wrapup_secs),
            trunk_name,
        };
        match self.inner.engine.start_preview_outcall(call) {
            Ok(handle) => {
                self.inner
                    .calls
                    .spawn(self.clone().follow(handle, context, answered_tx, recording));
            }
            Err(e) => {
                // Accepted but not placed: the call still gets its CDR and the agent its lock back.
                tracing::warn!(%unique_id, error = %e, "the engine refused the call");
                let report = CallReport {
                    unique_id: unique_id.clone(),
                    outcome: Outcome {
                        reason: EndReason::AgentFailed,
                        side: Side::Platform,
                        phase: Phase::AgentLeg,
                        sip_code: None,
                    },
                    record: dialbridge_core::call::CallRecord {
                        started_at: now,
                        ended_at: Some(now_ms()),
                        ..Default::default()
                    },
                    media: Default::default(),
                    customer_trunk: None,
                };
                let _ = answered_tx.send(false);
                self.close(&context, &report, RecordingFate::Forgotten).await;
            }
        }
        Ok(Accepted {
            unique_id,
            agent_answered,
            agent_ring_timeout: timers.agent_ring,
        })
    }

    async fn follow(
        self,
        mut handle: dialbridge_engine::CallHandle,
        context: CallContext,
        answered: oneshot::Sender<bool>,
        recording: Option<oneshot::Receiver<dialbridge_recording::RecordingSummary>>,
    ) {
        let mut answered = Some(answered);
        let mut heartbeat = tokio::time::interval(self.inner.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bridged = false;
        // How to end each leg after a crash, written with the progress it comes before.
        let mut endings: Vec<KeptLegEnding> = Vec::new();
        loop {
            let update = tokio::select! {
                update = handle.updates.recv() => match update {
                    Some(update) => update,
                    None => break,
                },
                _ = heartbeat.tick(), if bridged => {
                    self.mark_alive(&handle.unique_id).await;
                    continue;
                }
            };
            match update {
                CallUpdate::LegEnding { leg, ending } => {
                    endings.retain(|kept| kept.leg != leg);
                    endings.push(KeptLegEnding {
                        leg,
                        request: ending.request,
                        destination: ending.destination,
                        over_tcp: ending.transport == dialbridge_engine::SipTransport::Tcp,
                    });
                }
                CallUpdate::Progress {
                    progress: Progress::AgentRinging,
                    ..
                } => {
                    self.keep_endings(&handle.unique_id, std::mem::take(&mut endings)).await;
                }
                CallUpdate::Progress {
                    progress: Progress::AgentAnswered,
                    at_ms,
                } => {
                    self.mark_progress(&handle.unique_id, Some(at_ms), None, std::mem::take(&mut endings))
                        .await;
                    self.update_agent(&context, |s, _| Some(s.call_connected(&handle.unique_id)))
                        .await;
                    // Only now: a CRM that calls again right after a sync `res` 0 must find the
                    // agent's lock past setup (13), not still in it (33).
                    if let Some(tx) = answered.take() {
                        let _ = tx.send(true);
                    }
                }
                CallUpdate::Progress {
                    progress: Progress::CustomerRinging,
                    at_ms,
                } => {
                    self.push_ringing(&handle.unique_id, &context, at_ms, std::mem::take(&mut endings))
                        .await;
                }
                CallUpdate::Progress {
                    progress: Progress::CustomerAnswered,
                    at_ms,
                } => {
                    self.mark_progress(&handle.unique_id, None, Some(at_ms), std::mem::take(&mut endings))
                        .await;
                    bridged = true;
                    heartbeat.reset();
                }
                CallUpdate::Progress {
                    progress: progress @ (Progress::OnHold | Progress::Resumed),
                    at_ms,
                } => {
                    self.mark_on_hold(
                        &handle.unique_id,
                        &context,
                        (progress == Progress::OnHold).then_some(at_ms),
                    )
                    .await;
                }
                CallUpdate::CustomerTrunk { trunk } => self.move_to_trunk(&handle.unique_id, &trunk).await,
                CallUpdate::RenewCredit { paid_minutes } => self.renew_credit(&handle.unique_id, paid_minutes).await,
                CallUpdate::Finished(report) => {
                    if let Some(tx) = answered.take() {
                        let _ = tx.send(false);
                    }
                    let recorded = self.recording_end(recording).await;
                    self.close(&context, &report, recorded.recorded()).await;
                    if let RecordingEnd::Kept(finished) = &recorded {
                        self.count_kept(finished);
                    }
                    if let RecordingEnd::Late(summary) = recorded {
                        self.keep_late_recording(&handle.unique_id, summary).await;
                    }
                    return;
                }
            }
        }
    }
    /// The bridged call's paid minutes run out soon: another minute is held if the
    /// enterprise's credit pays it, and the call told how long it may now run. Refused, the
    /// call asks again in a few seconds and ends when its paid time does.
    async fn renew_credit(&self, unique_id: &str, paid_minutes: u32) {
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            let extension = tx.extend_hold(unique_id, paid_minutes).await?;
            // Only an extension is committed; every other answer changed nothing.
            if let Extension::Extended(_) = extension {
                tx.commit().await?;
            }
            Ok::<_, StoreError>(extension)
        }
        .await;
        match result {
            Ok(Extension::Extended(hold) | Extension::AlreadyExtended(hold)) if hold.minutes > paid_minutes => {
                tracing::debug!(%unique_id, minutes = hold.minutes, "credit hold extended");
                self.inner.engine.credit_renewed(unique_id, hold.minutes);
            }
            Ok(Extension::Refused(_)) => {
                tracing::info!(%unique_id, paid_minutes, "the available credit does not pay another minute: the call ends when its paid time does unless credit is added");
            }
            Ok(Extension::Extended(hold) | Extension::AlreadyExtended(hold)) => {
                tracing::warn!(%unique_id, paid_minutes, held_minutes = hold.minutes, "a renewal for fewer minutes than the call holds: ignored");
            }
            Ok(Extension::NotHeld) => {
                tracing::warn!(%unique_id, paid_minutes, "a renewal for a call that holds no credit: ignored");
            }
            Err(e) => tracing::warn!(%unique_id, error = %e, "cannot extend the call's credit hold; asking again"),
        }
    }

    /// The agent's phone rings: how to end its leg after a crash (a CANCEL) is kept.
    async fn keep_endings(&self, unique_id: &str, endings: Vec<KeptLegEnding>) {
        if endings.is_empty() {
            return;
        }
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            for ending in &endings {
                tx.keep_leg_ending(unique_id, ending).await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%unique_id, error = %e, "cannot keep how to end the call's legs");
        }
    }

    /// The customer's phone rings: the ringing push, and how to end its leg after a crash.
    async fn push_ringing(&self, unique_id: &str, context: &CallContext, at_ms: i64, endings: Vec<KeptLegEnding>) {
        let zone = context
            .enterprise
            .settings
            .time_zone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai);
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            for ending in &endings {
                tx.keep_leg_ending(unique_id, ending).await?;
            }
            if let Some(cdr) = tx.cdr(unique_id).await? {
                let payload = dialbridge_push::fields::ringing(&cdr.start, at_ms, zone);
                tx.enqueue_push(cdr.start.enterprise_id, "ringing", unique_id, &payload)
                    .await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%unique_id, error = %e, "cannot write the ringing push");
        }
    }

    /// The customer was put on hold (since `since`) or taken off it: recorded on the call (a
    /// reloaded toolbar reads it) and told on the event stream, in one transaction. No push
    /// type carries it: the legacy pushes have none.
    async fn mark_on_hold(&self, unique_id: &str, context: &CallContext, since: Option<i64>) {
        let on_hold = since.is_some();
        // Retried a while: the toolbar shows the hold (and offers to resume it) from this event.
        for attempt in 0u32..10 {
            let result = async {
                let mut tx = self.inner.store.begin().await?;
                tx.mark_cdr_on_hold(unique_id, since).await?;
                let payload = dialbridge_push::fields::hold(on_hold, &context.cno, unique_id, &context.customer_number);
                let event = if on_hold { "hold" } else { "unhold" };
                tx.enqueue_push(context.enterprise.id, event, unique_id, &payload)
                    .await?;
                tx.commit().await
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::info!(%unique_id, on_hold, "the agent changed the call's hold");
                    return;
                }
                Err(e) => {
                    tracing::warn!(%unique_id, attempt, error = %e, "cannot record the call's hold; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The bridged call is still up: a restart after a crash bills it up to now.
    async fn mark_alive(&self, unique_id: &str) {
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            tx.mark_cdr_alive(unique_id, now_ms()).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%unique_id, error = %e, "cannot record the call's heartbeat");
        }
    }

    /// After a failover: the CDR (which the trunks' channel counts read) names the trunk now
    /// carrying the customer's leg.
    async fn move_to_trunk(&self, unique_id: &str, trunk: &str) {
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            tx.set_cdr_trunk(unique_id, trunk).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%unique_id, %trunk, error = %e, "cannot record the trunk after a failover");
        }
    }

    /// Records the call's progress, with how to end its legs after a crash; at the bridge, with
    /// the bridge push in the same transaction.
    async fn mark_progress(
        &self,
        unique_id: &str,
        agent_answered_at: Option<i64>,
        bridged_at: Option<i64>,
        endings: Vec<KeptLegEnding>,
    ) {
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            tx.mark_cdr_progress(unique_id, agent_answered_at, bridged_at).await?;
            for ending in &endings {
                tx.keep_leg_ending(unique_id, ending).await?;
            }
            if bridged_at.is_some() {
                if let Some(cdr) = tx.cdr(unique_id).await? {
                    let payload = dialbridge_push::fields::bridge(&cdr.start);
                    tx.enqueue_push(cdr.start.enterprise_id, "bridge", unique_id, &payload)
                        .await?;
                }
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => tracing::debug!(%unique_id, ?agent_answered_at, ?bridged_at, "call progress recorded"),
            Err(e) => tracing::warn!(%unique_id, error = %e, "cannot record the call's progress"),
        }
    }
}

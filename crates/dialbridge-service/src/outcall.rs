//! Placing a preview outcall for an authenticated agent, apart from any wire format: the
//! policy checks in the legacy interface's order, the outbound lock and the CDR row taken in one
//! transaction before any INVITE, the engine's call, and — when it ends — the CDR, the charge
//! and the agent's return to wrap-up or idle, in one transaction.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialbridge_core::agent::{AgentRefusal, AgentState};
use dialbridge_core::call::{EndReason, Outcome, Phase, Side};
use dialbridge_core::{
    BlacklistPattern, Enterprise, EnterpriseStatus, Money, NodeName, NumberClass, PhoneNumber, PhoneType,
};
use dialbridge_engine::{
    AgentPhone, CallReport, CallTimers, CallUpdate, CarrierTarget, Engine, PreviewOutcall, Progress, SipTransport,
    TrunkAccount, TrunkRoute, TrunkWatch,
};
use dialbridge_store::{AgentRecord, CdrEnd, CdrStart, Store, StoreError, Tx};
use tokio::sync::{oneshot, Notify};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Why a call is refused: the legacy `res` code (the modern API maps it) and a reason for the
/// operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub res: &'static str,
    pub reason: String,
}

fn refuse(res: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        res,
        reason: reason.into(),
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error while placing a call");
        refuse("10", "internal error")
    }
}

/// A request, its parameters already well-formed and its agent authenticated.
#[derive(Debug, Clone)]
pub struct OutcallRequest {
    pub customer_number: String,
    pub user_field: String,
    /// `clidLeftNumber`: empty = the enterprise's default.
    pub caller_id: Option<String>,
}

pub struct Accepted {
    pub unique_id: String,
    /// Resolves to whether the agent answered (sync mode waits for it).
    pub agent_answered: oneshot::Receiver<bool>,
    /// The agent ring timeout, so a sync caller knows how long to wait.
    pub agent_ring_timeout: Duration,
}

#[derive(Clone)]
pub struct CallService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Engine,
    node: NodeName,
    /// How often a bridged call's CDR row is marked alive (what a restart bills it up to).
    heartbeat: Duration,
    metrics: Arc<crate::Metrics>,
    /// Wakes the push dispatcher after an event was written to the outbox.
    push_wake: Arc<Notify>,
}

impl CallService {
    pub fn new(
        store: Store,
        engine: Engine,
        node: NodeName,
        push_wake: Arc<Notify>,
        heartbeat: Duration,
        metrics: Arc<crate::Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                engine,
                node,
                heartbeat,
                metrics,
                push_wake,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Writes the agent-status push of an agent's state, in the caller's transaction (the one
    /// that changed the state).
    pub async fn push_status(
        &self,
        tx: &mut Tx<'_>,
        enterprise: dialbridge_core::EnterpriseId,
        agent_id: i64,
        cno: &str,
        state: &AgentState,
        customer_number: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let state = state.clone().at(now);
        let phone = tx.bound_phone(agent_id).await?;
        let reachable = self.phone_reachable(enterprise, phone.as_ref());
        let payload = dialbridge_push::fields::status(&dialbridge_push::fields::AgentStatus {
            enterprise_id: enterprise.get(),
            cno,
            bind_tel: phone.as_ref().map_or("", |(_, n)| n.as_str()),
            login_status: state.login.as_str(),
            device_status: state.device(reachable).as_str(),
            pause_description: state.pause_description.as_deref().unwrap_or(""),
            customer_number,
            unique_id: state.call.as_ref().map_or("", |c| c.unique_id.as_str()),
            wrapup_secs_left: state.wrapup_seconds_left(now),
        });
        tx.enqueue_push(enterprise, "agent_status", &format!("agent:{agent_id}"), &payload)
            .await?;
        Ok(())
    }

    pub fn wake_pushes(&self) {
        self.inner.push_wake.notify_one();
    }

    /// Whether the agent's bound phone can be reached now (an extension must be registered).
    pub fn phone_reachable(
        &self,
        enterprise: dialbridge_core::EnterpriseId,
        phone: Option<&(PhoneType, String)>,
    ) -> bool {
        match phone {
            Some((PhoneType::Extension, number)) => self.inner.engine.is_registered(&format!("{enterprise}-{number}")),
            Some(_) => true,
            None => false,
        }
    }

    /// Checks (41, 4, 6, 5, 7, 11, 14, 40, 12, 33/13, 9, 10), takes the lock and starts the call.
    pub async fn preview_outcall(
        &self,
        enterprise: &Enterprise,
        agent: &AgentRecord,
        request: OutcallRequest,
    ) -> Result<Accepted, Refusal> {
        let s = &enterprise.settings;
        if s.status != EnterpriseStatus::Active {
            return Err(refuse("41", format!("enterprise is {}", s.status)));
        }
        if !agent.settings.active {
            return Err(refuse("4", "agent disabled"));
        }
        if !s.outbound_enabled || !s.interface_enabled || !agent.settings.outbound_allowed {
            return Err(refuse("6", "outbound calling or the interface is not enabled"));
        }
        let mut tx = self.inner.store.begin().await?;
        let caller_ids = tx.caller_ids(Some(enterprise.id)).await?;
        if caller_ids.is_empty() {
            return Err(refuse("6", "the enterprise has no caller id to call out with"));
        }
        if !enterprise.balance.is_positive() {
            return Err(refuse("5", "balance exhausted"));
        }
        let number = PhoneNumber::parse(&request.customer_number)
            .map_err(|e| refuse("7", format!("customer number: {}", e.reason)))?;
        if matches!(number.class(), NumberClass::Extension) {
            return Err(refuse("7", "an extension is not a customer number"));
        }
        if !agent
            .settings
            .call_power
            .permits_customer(&number, agent.settings.area_code.as_deref(), None)
        {
            return Err(refuse(
                "7",
                format!(
                    "call power {} does not allow {number}",
                    agent.settings.call_power.as_str()
                ),
            ));
        }
        let blacklist: Vec<BlacklistPattern> = tx.blacklist(enterprise.id).await?;
        if let Some(entry) = blacklist.iter().find(|p| p.matches(&number)) {
            return Err(refuse("11", format!("blacklisted by {entry}")));
        }
        let caller_id = match request.caller_id.as_deref().filter(|c| !c.is_empty()) {
            Some(given) => {
                let normalised = PhoneNumber::parse(given)
                    .map(|n| n.digits().to_owned())
                    .unwrap_or_default();
                caller_ids
                    .iter()
                    .find(|c| c.number == normalised)
                    .cloned()
                    .ok_or_else(|| refuse("14", format!("{given} is not one of the enterprise's numbers")))?
            }
            None => {
                let default = s.default_caller_id.as_deref().unwrap_or(caller_ids[0].number.as_str());
                caller_ids
                    .iter()
                    .find(|c| c.number == default)
                    .cloned()
                    .ok_or_else(|| refuse("6", "the default caller id is not one of the enterprise's numbers"))?
            }
        };
        let now = now_ms();
        if let Some(limit) = s.number_limit {
            let since = now - i64::from(limit.window_minutes) * 60_000;
            if tx.calls_to_number_since(enterprise.id, number.digits(), since).await? >= u64::from(limit.count) {
                return Err(refuse(
                    "40",
                    format!(
                        "{number} called {} times in {} minutes",
                        limit.count, limit.window_minutes
                    ),
                ));
            }
        }
        let stored = tx.agent_state(agent.id).await?;
        stored.state.may_call(now).map_err(agent_refusal)?;
        let phone = tx.bound_phone(agent.id).await?;
        if !self.phone_reachable(enterprise.id, phone.as_ref()) {
            return Err(refuse("9", "the agent's phone is not reachable"));
        }
        let Some((phone_type, phone_number)) = phone else {
            return Err(refuse("9", "the agent has no bound phone"));
        };
        if let Some(cap) = s.concurrency_cap {
            if tx.running_calls(Some(enterprise.id), None).await? >= u64::from(cap) {
                return Err(refuse("10", "the enterprise's concurrency cap is reached"));
            }
        }
        // The caller id's trunk first, then the enterprise's other trunks by priority (then
        // name) as fallbacks; a trunk that is full, down by its keepalive, or cannot be
        // resolved is skipped.
        let mut all_trunks = tx.trunks().await?;
        all_trunks.sort_by(|a, b| (a.trunk.priority, &a.trunk.name).cmp(&(b.trunk.priority, &b.trunk.name)));
        let primary = all_trunks
            .iter()
            .find(|t| t.trunk.name == caller_id.trunk)
            .ok_or_else(|| refuse("6", format!("trunk {} is gone", caller_id.trunk)))?;
        let candidates = std::iter::once(primary).chain(
            all_trunks
                .iter()
                .filter(|t| t.trunk.name != primary.trunk.name && t.trunk.enterprises.contains(&enterprise.id)),
        );
        let mut routes = Vec::new();
        let mut skipped = Vec::new();
        for candidate in candidates {
            if self
                .inner
                .engine
                .trunk_status(&candidate.trunk.name)
                .is_some_and(|status| !status.usable())
            {
                skipped.push(format!("{} is down (no answer to OPTIONS)", candidate.trunk.name));
                continue;
            }
            if tx.running_calls(None, Some(&candidate.trunk.name)).await? >= u64::from(candidate.trunk.max_channels) {
                skipped.push(format!("{} is full", candidate.trunk.name));
                continue;
            }
            match self.route(&mut tx, &candidate.trunk).await {
                Ok(route) => routes.push(route),
                Err(refusal) => skipped.push(refusal.reason),
            }
        }
        if routes.is_empty() {
            return Err(refuse(
                "10",
                format!("no trunk can take the call: {}", skipped.join("; ")),
            ));
        }
        let route = routes.remove(0);
        let trunk_name = route.name.clone();

        // Accept: allocate the uniqueId, take the lock, write the CDR row, in one transaction.
        let seq = tx.next_id(&format!("unique_id:{}", self.inner.node)).await?;
        let unique_id = format!("{}-{}.{seq}", self.inner.node, now / 1000);
        let locked = stored.state.start_call(&unique_id, now).map_err(agent_refusal)?;
        if !tx.save_agent_state(agent.id, &locked, stored.version).await? {
            // Another request changed the agent between our read and write: it won the lock.
            return Err(refuse("33", "another call for this agent is being set up"));
        }
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
            caller_id: caller_id.number.clone(),
            trunk_name: trunk_name.clone(),
            user_field: request.user_field.clone(),
            node: self.inner.node.to_string(),
            requested_at: now,
        })
        .await?;
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

        let agent_phone = match phone_type {
            PhoneType::Extension => AgentPhone::Extension {
                aor: format!("{}-{phone_number}", enterprise.id),
            },
            PhoneType::Telephone | PhoneType::RemotePhone => AgentPhone::Telephone { number: phone_number },
        };
        let timers = CallTimers {
            agent_ring: Duration::from_secs(u64::from(s.agent_ring_timeout_secs)),
            customer_ring: Duration::from_secs(u64::from(s.customer_ring_timeout_secs)),
            max_duration: enterprise
                .balance
                .affordable_seconds(s.rate_per_minute)
                .map(Duration::from_secs),
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
            caller_id: caller_id.number,
            agent_caller_id,
            trunk: route,
            fallback_trunks: routes,
            timers,
        };
        let (answered_tx, agent_answered) = oneshot::channel();
        let context = CallContext {
            enterprise: enterprise.clone(),
            agent_id: agent.id,
            cno: agent.cno.to_string(),
            customer_number: number.digits().to_owned(),
            wrapup_secs: agent.settings.wrapup_secs.unwrap_or(s.wrapup_secs),
            trunk_name: trunk_name.clone(),
        };
        match self.inner.engine.start_preview_outcall(call) {
            Ok(handle) => {
                tokio::spawn(self.clone().follow(handle, context, answered_tx));
            }
            Err(e) => {
                // Accepted but not placed: the call still gets its CDR and the agent its lock back.
                tracing::warn!(%unique_id, error = %e, "the engine refused the call");
                let outcome = Outcome {
                    reason: EndReason::AgentFailed,
                    side: Side::Platform,
                    phase: Phase::AgentLeg,
                    sip_code: None,
                };
                let report = CallReport {
                    unique_id: unique_id.clone(),
                    outcome,
                    record: dialbridge_core::call::CallRecord {
                        started_at: now,
                        ended_at: Some(now_ms()),
                        ..Default::default()
                    },
                    media: Default::default(),
                    customer_trunk: None,
                };
                let _ = answered_tx.send(false);
                self.close(&context, &report).await;
            }
        }
        Ok(Accepted {
            unique_id,
            agent_answered,
            agent_ring_timeout: timers.agent_ring,
        })
    }

    async fn route(&self, tx: &mut Tx<'_>, trunk: &dialbridge_core::Trunk) -> Result<TrunkRoute, Refusal> {
        let target = carrier_target(trunk).await.ok_or_else(|| {
            refuse(
                "10",
                format!("trunk {}: cannot resolve {}", trunk.name, trunk_destination(trunk)),
            )
        })?;
        let credential = match (&trunk.auth_username, tx.trunk_password(&trunk.name).await?) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            _ => None,
        };
        Ok(TrunkRoute {
            name: trunk.name.clone(),
            address: target.destination,
            host: target.host,
            transport: target.transport,
            credential,
            number_format: trunk.customer_number_format.clone(),
            caller_id_format: trunk.caller_id_format.clone(),
            sources: trunk.sources.clone(),
        })
    }

    /// Keeps the engine watching the trunks the store configures for it (keepalive OPTIONS,
    /// registration with the carrier) and knowing where carriers send from, reading them again
    /// every `every`, so a change made with `dialbridge admin` or `provision` takes effect
    /// without a restart.
    pub async fn watch_trunks(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match self.trunk_watches().await {
                Ok((watches, sources)) => {
                    self.inner.engine.watch_trunks(watches);
                    self.inner.engine.set_carrier_sources(sources);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the trunks to watch"),
            }
        }
    }

    /// The trunks to watch, and the addresses all carriers send from.
    async fn trunk_watches(&self) -> Result<(Vec<TrunkWatch>, Vec<ipnet::IpNet>), StoreError> {
        let mut tx = self.inner.store.begin_read().await?;
        let mut watches = Vec::new();
        let mut sources = Vec::new();
        for record in tx.trunks().await? {
            let trunk = record.trunk;
            let target = carrier_target(&trunk).await;
            match &target {
                _ if !trunk.sources.is_empty() => sources.extend(trunk.sources.iter().copied()),
                Some(target) => sources.push(ipnet::IpNet::from(target.destination.ip())),
                None => {}
            }
            if trunk.keepalive_secs == 0 && trunk.register_secs == 0 {
                continue;
            }
            let Some(target) = target else {
                tracing::warn!(trunk = %trunk.name, address = %trunk_destination(&trunk), "cannot resolve the trunk to watch it");
                continue;
            };
            let registration = match (&trunk.auth_username, trunk.register_secs) {
                (Some(user), secs) if secs > 0 => Some(TrunkAccount {
                    user: user.clone(),
                    password: tx.trunk_password(&trunk.name).await?.unwrap_or_default(),
                    expires_secs: secs,
                }),
                _ => None,
            };
            watches.push(TrunkWatch {
                name: trunk.name.clone(),
                target,
                keepalive: (trunk.keepalive_secs > 0).then(|| Duration::from_secs(u64::from(trunk.keepalive_secs))),
                registration,
            });
        }
        Ok((watches, sources))
    }

    async fn follow(
        self,
        mut handle: dialbridge_engine::CallHandle,
        context: CallContext,
        answered: oneshot::Sender<bool>,
    ) {
        let mut answered = Some(answered);
        let mut heartbeat = tokio::time::interval(self.inner.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bridged = false;
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
                CallUpdate::Progress {
                    progress: Progress::AgentAnswered,
                    at_ms,
                } => {
                    self.mark_progress(&handle.unique_id, Some(at_ms), None).await;
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
                    self.push_ringing(&handle.unique_id, &context, at_ms).await;
                }
                CallUpdate::Progress {
                    progress: Progress::CustomerAnswered,
                    at_ms,
                } => {
                    self.mark_progress(&handle.unique_id, None, Some(at_ms)).await;
                    self.limit_to_balance(&handle.unique_id, &context).await;
                    bridged = true;
                    heartbeat.reset();
                }
                CallUpdate::Progress { .. } => {}
                CallUpdate::CustomerTrunk { trunk } => self.move_to_trunk(&handle.unique_id, &trunk).await,
                CallUpdate::Finished(report) => {
                    if let Some(tx) = answered.take() {
                        let _ = tx.send(false);
                    }
                    self.close(&context, &report).await;
                    return;
                }
            }
        }
    }

    /// At the bridge: the call may last what the enterprise's balance pays for now.
    async fn limit_to_balance(&self, unique_id: &str, context: &CallContext) {
        let balance = match self.inner.store.begin_read().await {
            Ok(mut tx) => tx
                .enterprise(context.enterprise.id)
                .await
                .ok()
                .flatten()
                .map(|e| e.balance),
            Err(_) => None,
        };
        let rate = context.enterprise.settings.rate_per_minute;
        if let Some(seconds) = balance.and_then(|b| b.affordable_seconds(rate)) {
            self.inner
                .engine
                .limit_duration(unique_id, Duration::from_secs(seconds));
        }
    }

    /// The customer's phone rings: the ringing push.
    async fn push_ringing(&self, unique_id: &str, context: &CallContext, at_ms: i64) {
        let zone = context
            .enterprise
            .settings
            .time_zone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai);
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            if let Some(cdr) = tx.cdr(unique_id).await? {
                let payload = dialbridge_push::fields::ringing(&cdr.start, at_ms, zone);
                tx.enqueue_push(cdr.start.enterprise_id, "ringing", unique_id, &payload)
                    .await?;
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => self.inner.push_wake.notify_one(),
            Err(e) => tracing::warn!(%unique_id, error = %e, "cannot write the ringing push"),
        }
    }

    /// Records the call's progress; at the bridge, with the bridge push in the same transaction.
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

    async fn mark_progress(&self, unique_id: &str, agent_answered_at: Option<i64>, bridged_at: Option<i64>) {
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            tx.mark_cdr_progress(unique_id, agent_answered_at, bridged_at).await?;
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
        if result.is_ok() && bridged_at.is_some() {
            self.inner.push_wake.notify_one();
        }
        match result {
            Ok(()) => tracing::debug!(%unique_id, ?agent_answered_at, ?bridged_at, "call progress recorded"),
            Err(e) => tracing::warn!(%unique_id, error = %e, "cannot record the call's progress"),
        }
    }

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
                    &dialbridge_core::Cno::parse(&cdr.start.cno).map_err(StoreError::from)?,
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

    /// Reads, changes and writes the agent's state, retrying when a concurrent change won.
    async fn update_agent(&self, context: &CallContext, change: impl Fn(&AgentState, i64) -> Option<AgentState>) {
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
                    self.inner.push_wake.notify_one();
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

    /// The call ended: CDR, charge and the agent's state in one transaction (retried until it
    /// commits: a CDR is never lost).
    async fn close(&self, context: &CallContext, report: &CallReport) {
        let end = cdr_end(report, context.enterprise.settings.rate_per_minute);
        let agent_answered = report.record.agent_answered_at.is_some();
        for attempt in 0u32.. {
            // Whether this close wrote the CDR (a call closed already is not counted again).
            let mut written = false;
            let result: Result<bool, StoreError> = async {
                let mut tx = self.inner.store.begin().await?;
                if !tx.finish_cdr(&report.unique_id, &end).await? {
                    return Ok(true);
                }
                written = true;
                if let Some(trunk) = report.customer_trunk.as_ref().filter(|t| **t != context.trunk_name) {
                    tx.set_cdr_trunk(&report.unique_id, trunk).await?;
                }
                if end.cost.is_positive() {
                    tx.charge_call(context.enterprise.id, end.cost, &report.unique_id)
                        .await?;
                }
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
                if let Some(cdr) = tx.cdr(&report.unique_id).await? {
                    let payload = dialbridge_push::fields::hangup(&cdr);
                    tx.enqueue_push(cdr.start.enterprise_id, "hangup", &report.unique_id, &payload)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }
            .await;
            match result {
                Ok(true) => {
                    if written {
                        tracing::info!(unique_id = %report.unique_id, status = end.status, reason = %end.end_reason, "CDR written");
                        self.inner
                            .metrics
                            .calls_ended
                            .get_or_create(&vec![("reason".to_owned(), end.end_reason.clone())])
                            .inc();
                    }
                    self.inner.push_wake.notify_one();
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

struct CallContext {
    enterprise: Enterprise,
    agent_id: i64,
    cno: String,
    customer_number: String,
    wrapup_secs: u32,
    /// The trunk its CDR names (the one chosen at the request).
    trunk_name: String,
}

fn agent_refusal(r: AgentRefusal) -> Refusal {
    match r {
        AgentRefusal::Offline | AgentRefusal::AlreadyOnline => refuse("12", "agent offline"),
        AgentRefusal::AlreadyCalling => refuse("33", "already calling"),
        AgentRefusal::InCall => refuse("13", "agent in a call"),
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

fn cdr_end(report: &CallReport, rate: Money) -> CdrEnd {
    let r = &report.record;
    let ended_at = r.ended_at.unwrap_or_else(now_ms);
    // A bridged call has started its first minute, however short (or unknown, after a crash).
    let bridge_seconds = r.bridged_at.map_or(0, |b| {
        u64::try_from((ended_at - b).max(0)).unwrap_or(0).div_ceil(1000).max(1)
    });
    let cost = Money::charge_per_started_minute(rate, bridge_seconds).unwrap_or(Money::ZERO);
    CdrEnd {
        agent_ringing_at: r.agent_ringing_at,
        agent_answered_at: r.agent_answered_at,
        customer_ringing_at: r.customer_ringing_at,
        bridged_at: r.bridged_at,
        ended_at,
        status: cdr_status(&report.outcome),
        end_reason: format!("{:?}", report.outcome.reason),
        hung_up_by: match report.outcome.side {
            Side::Agent => "agent",
            Side::Customer => "customer",
            Side::Platform => "platform",
        }
        .to_owned(),
        sip_cause: sip_cause(&report.outcome),
        agent_sip_code: r.agent_final_code,
        customer_sip_code: r.customer_final_code,
        bridge_seconds,
        cost,
        packets_agent_to_customer: report.media.agent_to_customer_packets,
        packets_customer_to_agent: report.media.customer_to_agent_packets,
    }
}

#[cfg(test)]
#[path = "calls_test.rs"]
mod tests;

/// Where a trunk's requests go: its outbound proxy when it has one.
fn trunk_destination(trunk: &dialbridge_core::Trunk) -> &dialbridge_core::SipAddress {
    trunk.outbound_proxy.as_ref().unwrap_or(&trunk.address)
}

/// The trunk's carrier with its destination resolved; `None` when it does not resolve.
async fn carrier_target(trunk: &dialbridge_core::Trunk) -> Option<CarrierTarget> {
    let destination = tokio::net::lookup_host(trunk_destination(trunk).to_string())
        .await
        .ok()?
        .next()?;
    Some(CarrierTarget {
        destination,
        transport: match trunk.transport {
            dialbridge_core::Transport::Udp => SipTransport::Udp,
            dialbridge_core::Transport::Tcp => SipTransport::Tcp,
        },
        host: trunk.address.to_string(),
    })
}

//! Agent sessions apart from any wire: going online on a phone, pausing, changing phone, going
//! offline, hanging up an agent's call. The legacy `/interface/client/*` handlers and the
//! toolbar's WebSocket commands both come here, authenticated already; each change of state is
//! one transaction with its status push.

use dialbridge_core::agent::{AgentRefusal, AgentState, Availability, LoginStatus};
use dialbridge_core::{Cno, EnterpriseId, ExtensionNumber, PhoneType};
use dialbridge_store::{AgentRecord, StoreError, Tx};

use crate::{now_ms, CallService};

/// Why a session request is refused. The wire crates map each to their code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    #[error("no such agent")]
    NoSuchAgent,
    #[error("{0}")]
    BadPhone(String),
    #[error("the phone is bound to another agent")]
    PhoneBoundToAnother,
    #[error("{}", agent_refusal_text(*.0))]
    Agent(AgentRefusal),
    /// Another request changed the agent between this one's read and write.
    #[error("the agent changed meanwhile; try again")]
    ChangedMeanwhile,
    /// A phone cannot change during a call.
    #[error("agent not idle")]
    NotIdle,
    #[error("no call")]
    NoCall,
    #[error("{0:?} is not a DTMF digit (0-9, *, #, A-D)")]
    NotADigit(char),
    #[error("no wrap-up is running")]
    NotInWrapup,
    /// Hold needs a bridged call.
    #[error("the customer has not answered")]
    NotBridged,
    #[error("the call is not recorded")]
    NotRecorded,
    /// A softphone's answer for a call it is not ringing with.
    #[error("{0}")]
    Softphone(String),
    #[error("internal error")]
    Internal,
}

fn agent_refusal_text(refusal: AgentRefusal) -> &'static str {
    match refusal {
        AgentRefusal::AlreadyOnline => "already online",
        AgentRefusal::Offline => "agent offline",
        AgentRefusal::AlreadyCalling | AgentRefusal::InCall => "agent in a call",
    }
}

impl From<StoreError> for SessionRefusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error in an agent session request");
        SessionRefusal::Internal
    }
}

/// A phone as a request names it: its kind and the number as written.
#[derive(Debug, Clone, Copy)]
pub struct PhoneChoice<'a> {
    pub phone_type: PhoneType,
    pub number: &'a str,
}

/// Which call to hang up.
#[derive(Debug, Clone, Copy)]
pub enum CallOf<'a> {
    UniqueId(&'a str),
    Agent(&'a Cno),
}

impl CallService {
    /// Goes online (or paused) on a phone.
    pub async fn log_in(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        availability: Availability,
        phone: PhoneChoice<'_>,
    ) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        let (phone_type, number) = checked_phone(&mut tx, enterprise, &agent, phone).await?;
        change_agent(&mut tx, &agent, |s| s.log_in(availability, now_ms())).await?;
        bind(&mut tx, enterprise, &agent, phone_type, &number).await?;
        self.finish(tx, enterprise, &agent).await
    }

    /// Joins the agent's state as it is (the toolbar attaches to a session a CRM may have
    /// started): online on `phone` when offline; when online already, the phone changes, by
    /// [`CallService::change_phone`]'s rules, only if another one is named.
    pub async fn attach(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        phone: Option<PhoneChoice<'_>>,
    ) -> Result<(), SessionRefusal> {
        let (online, bound) = {
            let mut tx = self.store().begin_read().await?;
            let agent = agent(&mut tx, enterprise, cno).await?;
            let online = tx.agent_state(agent.id).await?.state.login != LoginStatus::Offline;
            (online, tx.bound_phone(agent.id).await?)
        };
        let same_phone = |phone: &PhoneChoice<'_>| {
            bound.as_ref().is_some_and(|(phone_type, number)| {
                *phone_type == phone.phone_type
                    && phone
                        .phone_type
                        .normalise_number(phone.number)
                        .is_ok_and(|n| n == *number)
            })
        };
        match (online, phone) {
            (false, Some(phone)) => self.log_in(enterprise, cno, Availability::Online, phone).await,
            (false, None) => Err(SessionRefusal::BadPhone("a phone is required to go online".into())),
            // During a call the phone stays (ChangeBindTel's rule); the toolbar still attaches.
            (true, Some(phone)) if !same_phone(&phone) => match self.change_phone(enterprise, cno, phone).await {
                Err(SessionRefusal::NotIdle) => Ok(()),
                other => other,
            },
            (true, _) => Ok(()),
        }
    }

    /// Whether the agent is online (or paused) now: what a reconnecting toolbar joins; it brings
    /// no agent back online.
    pub async fn attach_if_online(&self, enterprise: EnterpriseId, cno: &Cno) -> Result<bool, SessionRefusal> {
        let mut tx = self.store().begin_read().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        Ok(tx.agent_state(agent.id).await?.state.login != LoginStatus::Offline)
    }

    /// Goes offline; `unbind` also releases the phone.
    pub async fn log_out(&self, enterprise: EnterpriseId, cno: &Cno, unbind: bool) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        change_agent(&mut tx, &agent, |s| s.log_out(now_ms())).await?;
        if unbind {
            tx.unbind_phone(agent.id).await?;
        }
        self.finish(tx, enterprise, &agent).await
    }

    /// Online or paused (with its description).
    pub async fn change_status(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        availability: Availability,
    ) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        change_agent(&mut tx, &agent, |s| s.change_status(availability, now_ms())).await?;
        self.finish(tx, enterprise, &agent).await
    }

    /// Binds a phone, never during a call.
    pub async fn change_phone(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        phone: PhoneChoice<'_>,
    ) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        let (phone_type, number) = checked_phone(&mut tx, enterprise, &agent, phone).await?;
        if tx.agent_state(agent.id).await?.state.call.is_some() {
            return Err(SessionRefusal::NotIdle);
        }
        bind(&mut tx, enterprise, &agent, phone_type, &number).await?;
        self.finish(tx, enterprise, &agent).await
    }

    /// Hangs up a running call of the enterprise (another enterprise's is "no call").
    pub async fn hang_up_call(&self, enterprise: EnterpriseId, call: CallOf<'_>) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin_read().await?;
        let unique_id = match call {
            CallOf::UniqueId(unique_id) => tx
                .cdr(unique_id)
                .await?
                .filter(|c| c.start.enterprise_id == enterprise && c.end.is_none())
                .map(|c| c.start.unique_id),
            CallOf::Agent(cno) => {
                let agent = agent(&mut tx, enterprise, cno).await?;
                tx.agent_state(agent.id).await?.state.call.map(|c| c.unique_id)
            }
        };
        drop(tx);
        match unique_id {
            Some(id) if self.engine().hang_up(&id) => Ok(()),
            _ => Err(SessionRefusal::NoCall),
        }
    }

    /// Plays a digit of the agent's keypad to the customer of its call (RFC 4733 events, while
    /// the call is bridged).
    pub async fn send_digit(&self, enterprise: EnterpriseId, cno: &Cno, digit: char) -> Result<(), SessionRefusal> {
        if !matches!(digit.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D') {
            return Err(SessionRefusal::NotADigit(digit));
        }
        let mut tx = self.store().begin_read().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        let call = tx.agent_state(agent.id).await?.state.call.map(|c| c.unique_id);
        drop(tx);
        match call {
            Some(id) if self.engine().send_digit(&id, digit) => Ok(()),
            _ => Err(SessionRefusal::NoCall),
        }
    }

    /// Puts the customer of the agent's bridged call on hold (`true`: the customer hears the
    /// hold tone, neither hears the other) or takes them off it. The change is told on the
    /// event stream (`hold` / `unhold`) once the call made it.
    pub async fn hold_call(&self, enterprise: EnterpriseId, cno: &Cno, on_hold: bool) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin_read().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        let Some(call) = tx.agent_state(agent.id).await?.state.call.map(|c| c.unique_id) else {
            return Err(SessionRefusal::NoCall);
        };
        let bridged = tx.cdr_progress(&call).await?.bridged_at.is_some();
        drop(tx);
        if !bridged {
            return Err(SessionRefusal::NotBridged);
        }
        if self.engine().hold(&call, on_hold) {
            Ok(())
        } else {
            Err(SessionRefusal::NoCall)
        }
    }

    /// Pauses (or resumes) the recording of the agent's own call.
    pub async fn pause_agent_recording(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        paused: bool,
    ) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin_read().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        let Some(call) = tx.agent_state(agent.id).await?.state.call.map(|c| c.unique_id) else {
            return Err(SessionRefusal::NoCall);
        };
        drop(tx);
        self.pause_recording(enterprise, Some(agent.id), &call, paused)
            .await
            .map_err(|refusal| match refusal {
                crate::RecordingRefusal::NotRecorded => SessionRefusal::NotRecorded,
                crate::RecordingRefusal::Internal => SessionRefusal::Internal,
                _ => SessionRefusal::NoCall,
            })
    }

    /// The agent's softphone (its browser) answers the call it rings with: its SDP offer in,
    /// the answer out. Only the agent's own call, on a softphone.
    pub async fn answer_softphone(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        unique_id: &str,
        offer: String,
    ) -> Result<String, SessionRefusal> {
        self.softphone_call(enterprise, cno, unique_id).await?;
        self.engine()
            .answer_softphone(unique_id, offer)
            .await
            .map_err(|e| SessionRefusal::Softphone(e.to_string()))
    }

    /// The agent's softphone declines the call it rings with.
    pub async fn decline_softphone(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        unique_id: &str,
    ) -> Result<(), SessionRefusal> {
        self.softphone_call(enterprise, cno, unique_id).await?;
        if self.engine().decline_softphone(unique_id) {
            Ok(())
        } else {
            Err(SessionRefusal::NoCall)
        }
    }

    /// Whether `unique_id` is the call of the agent's softphone.
    async fn softphone_call(&self, enterprise: EnterpriseId, cno: &Cno, unique_id: &str) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin_read().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        let call = tx.agent_state(agent.id).await?.state.call.map(|c| c.unique_id);
        let phone = tx.bound_phone(agent.id).await?;
        match (call, phone) {
            (Some(call), Some((PhoneType::Softphone, _))) if call == unique_id => Ok(()),
            (_, Some((PhoneType::Softphone, _))) => Err(SessionRefusal::NoCall),
            _ => Err(SessionRefusal::Softphone("the agent's phone is no softphone".into())),
        }
    }

    /// Attaches a toolbar page as the softphone `aor` ([`CallService::softphone_of`]).
    pub fn attach_softphone(
        &self,
        aor: &str,
    ) -> (
        dialbridge_engine::SoftphoneAttachment,
        tokio::sync::mpsc::UnboundedReceiver<dialbridge_engine::SoftphoneSignal>,
    ) {
        self.engine().attach_softphone(aor)
    }

    /// Pushes the agent's status as it is now (its softphone page came or went, which changes
    /// its `deviceStatus`).
    pub async fn tell_status(&self, enterprise: EnterpriseId, cno: &Cno) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        self.finish(tx, enterprise, &agent).await
    }

    /// The address-of-record the agent's softphone attaches as, while the agent is logged in
    /// on a softphone; `None` otherwise.
    pub async fn softphone_of(&self, enterprise: EnterpriseId, cno: &Cno) -> Result<Option<String>, SessionRefusal> {
        let mut tx = self.store().begin_read().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        let online = tx.agent_state(agent.id).await?.state.login != LoginStatus::Offline;
        Ok(match tx.bound_phone(agent.id).await? {
            Some((PhoneType::Softphone, number)) if online => Some(format!("{enterprise}-{number}")),
            _ => None,
        })
    }

    /// Makes the agent's running wrap-up `seconds` longer.
    pub async fn prolong_wrapup(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        seconds: u32,
    ) -> Result<(), SessionRefusal> {
        let mut tx = self.store().begin().await?;
        let agent = agent(&mut tx, enterprise, cno).await?;
        let stored = tx.agent_state(agent.id).await?;
        let next = stored
            .state
            .prolong_wrapup(seconds, now_ms())
            .ok_or(SessionRefusal::NotInWrapup)?;
        if !tx.save_agent_state(agent.id, &next, stored.version).await? {
            return Err(SessionRefusal::ChangedMeanwhile);
        }
        self.finish(tx, enterprise, &agent).await?;
        if let Some(until) = next.wrapup_until {
            self.end_wrapup_at(enterprise, agent.id, agent.cno.as_str().to_owned(), until);
        }
        Ok(())
    }

    /// When the wrap-up ending at `until` is over, the agent's state says so and its status is
    /// told (to the toolbar and to the CRM's status push), unless the wrap-up was prolonged or
    /// ended meanwhile: then whoever changed it told it, and watches the new end if any. A
    /// server that starts tells the ends of the wrap-ups running ([`CallService::watch_wrapups`]).
    pub(crate) fn end_wrapup_at(&self, enterprise: EnterpriseId, agent_id: i64, cno: String, until: i64) {
        let service = self.clone();
        tokio::spawn(async move {
            // Bounded: a store that stays down gives up after about a minute of retries.
            for attempt in 0u32..60 {
                let wait = u64::try_from(until - now_ms()).unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_millis(wait + 20)).await;
                match service.tell_wrapup_end(enterprise, agent_id, &cno, until).await {
                    Ok(true) => return,
                    // Woken early (the wall clock was set back) or another change won a race.
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(agent_id, attempt, error = %e, "cannot tell the end of the agent's wrap-up; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    /// Tells the end of the wrap-up ending at `until` if it is over now: `true` when told (or
    /// it is no longer that wrap-up), `false` when it is not over yet or the state changed
    /// between the read and the write.
    async fn tell_wrapup_end(
        &self,
        enterprise: EnterpriseId,
        agent_id: i64,
        cno: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store().begin().await?;
        let stored = tx.agent_state(agent_id).await?;
        if stored.state.wrapup_until != Some(until) {
            return Ok(true);
        }
        let next = stored.state.clone().at(now_ms());
        if next.wrapup_until.is_some() || !tx.save_agent_state(agent_id, &next, stored.version).await? {
            return Ok(false);
        }
        self.push_status(&mut tx, enterprise, agent_id, cno, &next, "").await?;
        tx.commit().await?;
        Ok(true)
    }

    /// When the server starts: the end of each wrap-up running is told when it comes (at once
    /// for those that ended while no server ran).
    pub async fn watch_wrapups(&self) -> Result<usize, StoreError> {
        let running = self.store().begin_read().await?.agents_in_wrapup().await?;
        let count = running.len();
        for (enterprise, agent_id, cno, until) in running {
            self.end_wrapup_at(enterprise, agent_id, cno, until);
        }
        Ok(count)
    }

    /// The agent's last `limit` calls, newest first.
    pub async fn last_calls(
        &self,
        enterprise: EnterpriseId,
        cno: &Cno,
        limit: u32,
    ) -> Result<Vec<dialbridge_store::Cdr>, SessionRefusal> {
        let mut tx = self.store().begin_read().await?;
        Ok(tx
            .cdrs(&dialbridge_store::CdrQuery {
                enterprise_id: Some(enterprise),
                cno: Some(cno.to_string()),
                limit,
                ..Default::default()
            })
            .await?)
    }

    /// The agent's status push for its state now, in the same transaction, then the commit.
    async fn finish(
        &self,
        mut tx: Tx<'_>,
        enterprise: EnterpriseId,
        agent: &AgentRecord,
    ) -> Result<(), SessionRefusal> {
        let state = tx.agent_state(agent.id).await?.state;
        self.push_status(&mut tx, enterprise, agent.id, agent.cno.as_str(), &state, "")
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn agent(tx: &mut Tx<'_>, enterprise: EnterpriseId, cno: &Cno) -> Result<AgentRecord, SessionRefusal> {
    tx.agent(enterprise, cno).await?.ok_or(SessionRefusal::NoSuchAgent)
}

/// The phone, normalised and checked against the enterprise (an extension must exist).
async fn checked_phone(
    tx: &mut Tx<'_>,
    enterprise: EnterpriseId,
    agent: &AgentRecord,
    phone: PhoneChoice<'_>,
) -> Result<(PhoneType, String), SessionRefusal> {
    let number = phone
        .phone_type
        .normalise_number(phone.number)
        .map_err(|e| SessionRefusal::BadPhone(e.reason))?;
    match phone.phone_type {
        PhoneType::Extension => {
            let extension = ExtensionNumber::parse(&number).map_err(|e| SessionRefusal::BadPhone(e.reason))?;
            if tx.extension_password(enterprise, &extension).await?.is_none() {
                return Err(SessionRefusal::BadPhone(format!("no extension {extension}")));
            }
        }
        PhoneType::Softphone if number != agent.cno.as_str() => {
            return Err(SessionRefusal::BadPhone(format!(
                "a softphone's bindTel is the agent's own cno ({})",
                agent.cno
            )));
        }
        _ => {}
    }
    Ok((phone.phone_type, number))
}

/// Applies a change to the agent's state within `tx` (the version check makes it atomic).
async fn change_agent(
    tx: &mut Tx<'_>,
    agent: &AgentRecord,
    change: impl FnOnce(&AgentState) -> Result<AgentState, AgentRefusal>,
) -> Result<(), SessionRefusal> {
    let stored = tx.agent_state(agent.id).await?;
    let next = change(&stored.state).map_err(SessionRefusal::Agent)?;
    if !tx.save_agent_state(agent.id, &next, stored.version).await? {
        return Err(SessionRefusal::ChangedMeanwhile);
    }
    Ok(())
}

/// Binds a phone; one bound to another agent is refused.
async fn bind(
    tx: &mut Tx<'_>,
    enterprise: EnterpriseId,
    agent: &AgentRecord,
    phone_type: PhoneType,
    number: &str,
) -> Result<(), SessionRefusal> {
    match tx.bind_phone(enterprise, agent.id, phone_type, number).await {
        Err(StoreError::Conflict(_)) => Err(SessionRefusal::PhoneBoundToAnother),
        other => Ok(other?),
    }
}

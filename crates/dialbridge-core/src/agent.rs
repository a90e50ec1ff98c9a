//! The agent's state (the spec's §3): `loginStatus` × `deviceStatus`, wrap-up, the manual pause
//! an agent returns to, a status change asked for during a call, and the agent's one outbound
//! call. Pure: each operation takes the time and returns the new state or a refusal, so the
//! store can apply it with a conditional update (the outbound lock) and tests are transcripts.

use crate::call::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginStatus {
    Offline,
    Online,
    Pause,
}

impl LoginStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginStatus::Offline => "offline",
            LoginStatus::Online => "online",
            LoginStatus::Pause => "pause",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    Idle,
    Ringing,
    Busy,
    /// The bound phone cannot be reached (an extension that is not registered).
    Unavailable,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Idle => "idle",
            DeviceStatus::Ringing => "ringing",
            DeviceStatus::Busy => "busy",
            DeviceStatus::Unavailable => "unavailable",
        }
    }
}

/// The longest wrap-up an agent can prolong to, from now: an hour.
pub const MAX_WRAPUP_LEFT_MS: Millis = 3_600_000;

/// The system pause reasons of the legacy interface.
pub const PAUSE_WRAPUP: &str = "pauseWrapup";
pub const PAUSE_OUT_CALLING: &str = "pauseOutCalling";

/// How far the agent's outbound call is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallPhase {
    /// Accepted; the agent's phone has not answered yet.
    Setup,
    /// The agent answered; the customer is being called or talked to.
    Connected,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentCall {
    pub unique_id: String,
    pub phase: CallPhase,
}

/// A status an agent asks for: online, or a pause with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Availability {
    Online,
    Pause(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentState {
    pub login: LoginStatus,
    /// The pause reason while `login` is `Pause`.
    pub pause_description: Option<String>,
    /// Where the agent goes after a call (and its wrap-up): online or its manual pause.
    pub after_call: Availability,
    /// End of the current wrap-up.
    pub wrapup_until: Option<Millis>,
    pub call: Option<AgentCall>,
}

/// Why an operation is refused, in the legacy interface's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRefusal {
    /// 12: not logged in (PreviewOutcall), or already online (ClientOnline).
    Offline,
    AlreadyOnline,
    /// 33: a call is in setup.
    AlreadyCalling,
    /// 13: the agent's call is past setup.
    InCall,
}

impl Default for AgentState {
    fn default() -> Self {
        Self::offline()
    }
}

impl AgentState {
    pub fn offline() -> Self {
        Self {
            login: LoginStatus::Offline,
            pause_description: None,
            after_call: Availability::Online,
            wrapup_until: None,
            call: None,
        }
    }

    /// The state as it is at `now`: a wrap-up that has run out is over.
    pub fn at(mut self, now: Millis) -> Self {
        if self.call.is_none() && self.wrapup_until.is_some_and(|until| until <= now) {
            self.wrapup_until = None;
            self.become_available(self.after_call.clone());
        }
        self
    }

    pub fn in_wrapup(&self) -> bool {
        self.wrapup_until.is_some()
    }

    /// The wrap-up running at `now` made `seconds` longer (the agent asked for more time), at
    /// most [`MAX_WRAPUP_LEFT_MS`] from now; `None` when no wrap-up is running.
    pub fn prolong_wrapup(&self, seconds: u32, now: Millis) -> Option<Self> {
        let mut next = self.clone().at(now);
        let until = next.wrapup_until?;
        next.wrapup_until = Some((until + i64::from(seconds) * 1000).min(now + MAX_WRAPUP_LEFT_MS));
        Some(next)
    }

    /// Seconds of wrap-up left at `now` (the events' `wrapupTime`).
    pub fn wrapup_seconds_left(&self, now: Millis) -> u64 {
        self.wrapup_until.map_or(0, |until| {
            u64::try_from((until - now).max(0)).unwrap_or(0).div_ceil(1000)
        })
    }

    fn become_available(&mut self, availability: Availability) {
        match availability {
            Availability::Online => {
                self.login = LoginStatus::Online;
                self.pause_description = None;
            }
            Availability::Pause(reason) => {
                self.login = LoginStatus::Pause;
                self.pause_description = Some(reason);
            }
        }
    }

    /// The device status, given whether the bound phone is reachable now.
    pub fn device(&self, phone_reachable: bool) -> DeviceStatus {
        match &self.call {
            Some(AgentCall {
                phase: CallPhase::Setup,
                ..
            }) => DeviceStatus::Ringing,
            Some(AgentCall {
                phase: CallPhase::Connected,
                ..
            }) => DeviceStatus::Busy,
            None if !phone_reachable => DeviceStatus::Unavailable,
            None => DeviceStatus::Idle,
        }
    }

    /// ClientOnline: logs the agent in, online or in a pause.
    pub fn log_in(&self, availability: Availability, now: Millis) -> Result<Self, AgentRefusal> {
        let current = self.clone().at(now);
        if current.login != LoginStatus::Offline {
            return Err(AgentRefusal::AlreadyOnline);
        }
        let mut next = current;
        next.after_call = availability.clone();
        next.become_available(availability);
        Ok(next)
    }

    /// ClientOffline: refused while the agent has a call.
    pub fn log_out(&self, now: Millis) -> Result<Self, AgentRefusal> {
        let current = self.clone().at(now);
        if current.call.is_some() {
            return Err(AgentRefusal::InCall);
        }
        Ok(Self::offline())
    }

    /// ChangeStatus: applied at once, or when the call ends if there is one. A change during
    /// wrap-up ends the wrap-up.
    pub fn change_status(&self, availability: Availability, now: Millis) -> Result<Self, AgentRefusal> {
        let current = self.clone().at(now);
        if current.login == LoginStatus::Offline {
            return Err(AgentRefusal::Offline);
        }
        let mut next = current;
        next.after_call = availability.clone();
        if next.call.is_none() {
            next.wrapup_until = None;
            next.become_available(availability);
        }
        Ok(next)
    }

    /// Whether the agent may place a preview outcall now (the device check — a phone that is
    /// not reachable — is the caller's, with the registrar's knowledge).
    pub fn may_call(&self, now: Millis) -> Result<(), AgentRefusal> {
        let current = self.clone().at(now);
        match (&current.login, &current.call) {
            (LoginStatus::Offline, _) => Err(AgentRefusal::Offline),
            (
                _,
                Some(AgentCall {
                    phase: CallPhase::Setup,
                    ..
                }),
            ) => Err(AgentRefusal::AlreadyCalling),
            (
                _,
                Some(AgentCall {
                    phase: CallPhase::Connected,
                    ..
                }),
            ) => Err(AgentRefusal::InCall),
            _ => Ok(()),
        }
    }

    /// A preview outcall was accepted: takes the outbound lock. An agent online or in wrap-up
    /// shows `pauseOutCalling`; a manual pause is kept.
    pub fn start_call(&self, unique_id: &str, now: Millis) -> Result<Self, AgentRefusal> {
        self.may_call(now)?;
        let mut next = self.clone().at(now);
        next.wrapup_until = None;
        let manual_pause = next.login == LoginStatus::Pause
            && next
                .pause_description
                .as_deref()
                .is_some_and(|d| d != PAUSE_WRAPUP && d != PAUSE_OUT_CALLING);
        if !manual_pause {
            next.login = LoginStatus::Pause;
            next.pause_description = Some(PAUSE_OUT_CALLING.to_owned());
        }
        next.call = Some(AgentCall {
            unique_id: unique_id.to_owned(),
            phase: CallPhase::Setup,
        });
        Ok(next)
    }

    /// The agent's phone answered its call.
    pub fn call_connected(&self, unique_id: &str) -> Self {
        let mut next = self.clone();
        if let Some(call) = next.call.as_mut().filter(|c| c.unique_id == unique_id) {
            call.phase = CallPhase::Connected;
        }
        next
    }

    /// The agent's call ended: after a call the agent answered, wrap-up for `wrapup_secs`
    /// (none when 0); then, or at once, back to where the agent goes after calls. Ending
    /// another call than the agent's changes nothing.
    pub fn end_call(&self, unique_id: &str, agent_answered: bool, wrapup_secs: u32, now: Millis) -> Self {
        let mut next = self.clone();
        if next.call.as_ref().is_none_or(|c| c.unique_id != unique_id) {
            return next;
        }
        next.call = None;
        if next.login == LoginStatus::Offline {
            return next;
        }
        if agent_answered && wrapup_secs > 0 {
            next.login = LoginStatus::Pause;
            next.pause_description = Some(PAUSE_WRAPUP.to_owned());
            next.wrapup_until = Some(now + i64::from(wrapup_secs) * 1000);
        } else {
            next.become_available(next.after_call.clone());
        }
        next
    }
}

#[cfg(test)]
#[path = "agent_test.rs"]
mod tests;

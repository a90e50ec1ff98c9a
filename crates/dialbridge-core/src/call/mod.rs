//! The preview-outcall state machine: agent leg first, then the customer leg, then the bridge.
//!
//! Pure: [`CallMachine::apply`] takes an event (a SIP outcome of a leg, an API command, a media
//! timeout) and returns the effects the engine must carry out. The machine owns its timers'
//! deadlines: the engine sleeps until [`CallMachine::next_deadline`] and then calls
//! [`CallMachine::on_deadline`]. Times come in with the events, so the machine reads no clock
//! and a call can be replayed from its events. The machine also keeps the call's record (times,
//! SIP codes per leg) for the CDR.

use std::time::Duration;

/// Milliseconds since the unix epoch, given by the engine with each event.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    Agent,
    Customer,
}

/// The timers a call runs, their deadlines kept by the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// No response at all from the agent's phone: it is unreachable.
    AgentNoResponse,
    /// The agent's phone rang too long.
    AgentRing,
    /// No response at all from the carrier.
    CustomerNoResponse,
    /// The customer's phone rang too long.
    CustomerRing,
    /// The bridged call reached the maximum duration the enterprise configured.
    MaxDuration,
    /// The bridged call used up the minutes its credit hold pays for.
    PaidTime,
    /// Time to ask for another minute of credit, before the paid time runs out.
    CreditRenewal,
}

impl Timer {
    pub const ALL: [Timer; 7] = [
        Timer::AgentNoResponse,
        Timer::AgentRing,
        Timer::CustomerNoResponse,
        Timer::CustomerRing,
        Timer::MaxDuration,
        Timer::PaidTime,
        Timer::CreditRenewal,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// When each running timer is due (unix milliseconds, the clock of the events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Deadlines([Option<Millis>; Timer::ALL.len()]);

/// `after` from `now`, on the machine's clock.
fn later(now: Millis, after: Duration) -> Millis {
    now.saturating_add(Millis::try_from(after.as_millis()).unwrap_or(Millis::MAX))
}

impl Deadlines {
    fn start(&mut self, timer: Timer, now: Millis, after: Duration) {
        self.0[timer.index()] = Some(later(now, after));
    }

    fn set(&mut self, timer: Timer, at: Millis) {
        self.0[timer.index()] = Some(at);
    }

    fn stop(&mut self, timer: Timer) {
        self.0[timer.index()] = None;
    }

    fn get(&self, timer: Timer) -> Option<Millis> {
        self.0[timer.index()]
    }

    /// The running timer due first, and when.
    fn earliest(&self) -> Option<(Timer, Millis)> {
        Timer::ALL
            .iter()
            .filter_map(|t| Some((*t, self.get(*t)?)))
            .min_by_key(|(_, at)| *at)
    }
}

/// How long each timer runs; the engine fills it from the enterprise's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallTimers {
    pub agent_no_response: Duration,
    pub agent_ring: Duration,
    pub customer_no_response: Duration,
    pub customer_ring: Duration,
    /// The enterprise's cap on a bridged call's length; `None`: no cap.
    pub max_duration: Option<Duration>,
    /// The minutes of bridged time the call's credit hold pays for when it starts
    /// ([`crate::credit`]); `None`: the call costs nothing and its credit sets no limit.
    pub paid_minutes: Option<u32>,
}

impl Default for CallTimers {
    fn default() -> Self {
        Self {
            agent_no_response: Duration::from_secs(4),
            agent_ring: Duration::from_secs(30),
            customer_no_response: Duration::from_secs(8),
            customer_ring: Duration::from_secs(60),
            max_duration: None,
            paid_minutes: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The agent's phone cannot be reached at all (an extension with no registration).
    AgentUnroutable,
    /// A provisional response (1xx other than 100) on a leg; `early_media` when it carried SDP.
    Provisional { leg: Leg, early_media: bool },
    /// A 2xx on a leg.
    Answered { leg: Leg },
    /// A final non-2xx response on a leg, or a transport failure (`code` 0 when no response).
    Failed { leg: Leg, code: u16 },
    /// The far end of a leg sent BYE.
    HungUp { leg: Leg },
    /// No RTP from a leg for the configured time.
    MediaTimeout { leg: Leg },
    /// A session refresh we sent on a leg (RFC 4028) was refused or never answered: the far
    /// end no longer holds the call.
    SessionRefreshFailed { leg: Leg, code: u16 },
    /// Hang-up asked through the engine's API (HangUp, shutdown).
    HangUpRequested { cause: PlatformCause },
    /// The agent puts the customer on hold (`true`) or takes them off it (`false`): only a
    /// bridged call can be, and asking for the state it is in changes nothing.
    HoldRequested { on_hold: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformCause {
    /// The HangUp API.
    Api,
    /// The server is shutting down.
    Shutdown,
}

/// What the engine must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    InviteAgent,
    InviteCustomer,
    /// CANCEL a leg that has not answered.
    Cancel(Leg),
    /// BYE a leg that answered.
    Bye(Leg),
    /// The agent hears the carrier's early media while the customer's phone rings.
    RelayEarlyMedia,
    /// The agent hears a locally generated ringback tone.
    PlayRingback,
    /// Relay media both ways between the legs (also: taken off hold).
    Bridge,
    /// Relay nothing; the customer hears the hold tone.
    PutOnHold,
    Emit(Progress),
    /// Ask for another minute of credit: the hold pays `paid_minutes` now. The answer comes
    /// back as [`CallMachine::credit_renewed`]; without it the call ends when they run out.
    RenewCredit {
        paid_minutes: u32,
    },
    /// The call is over; the record is complete. Emitted exactly once.
    Finished(Outcome),
}

/// The progress events of a call, in the order they can happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    AgentRinging,
    AgentAnswered,
    CustomerRinging,
    CustomerAnswered,
    /// The bridged call was put on hold, or taken off it (any number of times).
    OnHold,
    Resumed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    AgentNotRegistered,
    AgentBusy,
    AgentDeclined,
    AgentNoAnswer,
    AgentUnreachable,
    AgentFailed,
    CustomerBusy,
    CustomerDeclined,
    CustomerNoAnswer,
    CustomerUnreachable,
    CustomerFailed,
    /// The agent hung up (before or after the customer answered).
    AgentHungUp,
    /// The customer hung up after answering.
    CustomerHungUp,
    /// The HangUp API, during any phase.
    HangUpRequested,
    MediaTimeout,
    /// A session refresh was refused or unanswered.
    SessionRefreshFailed,
    MaxDuration,
    /// The call used up the credit it held and could not extend it.
    BalanceExhausted,
    Shutdown,
}

impl EndReason {
    /// Every reason.
    pub const ALL: [EndReason; 19] = [
        EndReason::AgentNotRegistered,
        EndReason::AgentBusy,
        EndReason::AgentDeclined,
        EndReason::AgentNoAnswer,
        EndReason::AgentUnreachable,
        EndReason::AgentFailed,
        EndReason::CustomerBusy,
        EndReason::CustomerDeclined,
        EndReason::CustomerNoAnswer,
        EndReason::CustomerUnreachable,
        EndReason::CustomerFailed,
        EndReason::AgentHungUp,
        EndReason::CustomerHungUp,
        EndReason::HangUpRequested,
        EndReason::MediaTimeout,
        EndReason::SessionRefreshFailed,
        EndReason::MaxDuration,
        EndReason::BalanceExhausted,
        EndReason::Shutdown,
    ];

    /// The name it is stored under (the CDR's `end_reason`), labelled with (the metrics'
    /// `reason`) and shown as: fixed text, so renaming a variant changes no stored row.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::AgentNotRegistered => "AgentNotRegistered",
            EndReason::AgentBusy => "AgentBusy",
            EndReason::AgentDeclined => "AgentDeclined",
            EndReason::AgentNoAnswer => "AgentNoAnswer",
            EndReason::AgentUnreachable => "AgentUnreachable",
            EndReason::AgentFailed => "AgentFailed",
            EndReason::CustomerBusy => "CustomerBusy",
            EndReason::CustomerDeclined => "CustomerDeclined",
            EndReason::CustomerNoAnswer => "CustomerNoAnswer",
            EndReason::CustomerUnreachable => "CustomerUnreachable",
            EndReason::CustomerFailed => "CustomerFailed",
            EndReason::AgentHungUp => "AgentHungUp",
            EndReason::CustomerHungUp => "CustomerHungUp",
            EndReason::HangUpRequested => "HangUpRequested",
            EndReason::MediaTimeout => "MediaTimeout",
            EndReason::SessionRefreshFailed => "SessionRefreshFailed",
            EndReason::MaxDuration => "MaxDuration",
            EndReason::BalanceExhausted => "BalanceExhausted",
            EndReason::Shutdown => "Shutdown",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EndReason {
    type Err = crate::ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EndReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| crate::ValidationError::new("end_reason", format!("{s:?} is not an end reason")))
    }
}

/// Which side ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Agent,
    Customer,
    Platform,
}

impl Side {
    /// The stored name (the CDR's `hung_up_by`).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Agent => "agent",
            Side::Customer => "customer",
            Side::Platform => "platform",
        }
    }
}

impl std::str::FromStr for Side {
    type Err = crate::ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Side::Agent, Side::Customer, Side::Platform]
            .into_iter()
            .find(|side| side.as_str() == s)
            .ok_or_else(|| crate::ValidationError::new("hung_up_by", format!("{s:?} is not a side")))
    }
}

/// How far the call got before it ended: this decides the CDR status (24 / 21-22 / 28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The agent's phone was being called.
    AgentLeg,
    /// The agent answered; the customer was being called.
    CustomerLeg,
    /// The customer answered: the two were bridged.
    Bridged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outcome {
    pub reason: EndReason,
    pub side: Side,
    pub phase: Phase,
    /// The final SIP status of the leg that decided the ending; 200 for a bridged call that
    /// ended normally; `None` when no SIP answer decided it (timeouts, unroutable).
    pub sip_code: Option<u16>,
}

/// Times and codes for the CDR.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CallRecord {
    pub started_at: Millis,
    pub agent_ringing_at: Option<Millis>,
    pub agent_answered_at: Option<Millis>,
    pub customer_invited_at: Option<Millis>,
    pub customer_ringing_at: Option<Millis>,
    pub bridged_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub agent_final_code: Option<u16>,
    pub customer_final_code: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LegState {
    Idle,
    /// INVITE sent, no provisional response yet.
    Dialing,
    Ringing,
    Answered,
    /// Ended (failed, cancelled or hung up): nothing more to send on it.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallMachine {
    timers: CallTimers,
    /// Further routes (trunks) the customer may be tried on when one does not answer at all.
    customer_routes_left: u32,
    agent: LegState,
    customer: LegState,
    outcome: Option<Outcome>,
    record: CallRecord,
    deadlines: Deadlines,
    /// The agent put the bridged customer on hold.
    on_hold: bool,
}

impl CallMachine {
    /// A new call; returns the machine and the effects that start it.
    pub fn start(timers: CallTimers, now: Millis) -> (Self, Vec<Effect>) {
        let mut machine = Self {
            timers,
            customer_routes_left: 0,
            agent: LegState::Dialing,
            customer: LegState::Idle,
            outcome: None,
            record: CallRecord {
                started_at: now,
                ..CallRecord::default()
            },
            deadlines: Deadlines::default(),
            on_hold: false,
        };
        machine
            .deadlines
            .start(Timer::AgentNoResponse, now, timers.agent_no_response);
        machine.deadlines.start(Timer::AgentRing, now, timers.agent_ring);
        (machine, vec![Effect::InviteAgent])
    }

    /// The customer can be called through `routes` further trunks, in order, when one answers
    /// 503 or 408, fails to send, or does not answer at all (not when the customer is busy,
    /// declines or does not pick up).
    pub fn with_customer_fallbacks(mut self, routes: u32) -> Self {
        self.customer_routes_left = routes;
        self
    }

    /// Tries the customer on the next route, if one is left: the effects of the new attempt.
    fn fail_over(&mut self, fx: &mut Vec<Effect>, cancel_current: bool, now: Millis) -> bool {
        if self.customer_routes_left == 0 {
            return false;
        }
        self.customer_routes_left -= 1;
        if cancel_current {
            fx.push(Effect::Cancel(Leg::Customer));
        }
        if self.customer == LegState::Ringing {
            // The agent may have heard this route's early media: back to our own ringback.
            fx.push(Effect::PlayRingback);
        }
        self.customer = LegState::Dialing;
        // The record describes the route that carries the call (or failed last).
        self.record.customer_ringing_at = None;
        fx.push(Effect::InviteCustomer);
        self.deadlines
            .start(Timer::CustomerNoResponse, now, self.timers.customer_no_response);
        true
    }

    pub fn record(&self) -> &CallRecord {
        &self.record
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// Whether the agent has the customer on hold now.
    pub fn is_on_hold(&self) -> bool {
        self.on_hold
    }

    /// When the next running timer is due (`None` when none runs: always once finished).
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.earliest().map(|(_, at)| at)
    }

    /// When `timer` is due, if it runs.
    pub fn deadline(&self, timer: Timer) -> Option<Millis> {
        self.deadlines.get(timer)
    }

    /// Fires every timer due at `now`, earliest first: the effects of what they end.
    pub fn on_deadline(&mut self, now: Millis) -> Vec<Effect> {
        let mut fx = Vec::new();
        while let Some((timer, at)) = self.deadlines.earliest() {
            if at > now {
                break;
            }
            self.deadlines.stop(timer);
            // A bridged call's limits end it at their moment, not when a loaded host noticed:
            // the milliseconds after the end of its paid time must not start a minute.
            let when = match timer {
                Timer::PaidTime | Timer::MaxDuration => at,
                _ => now,
            };
            self.fire(timer, when, &mut fx);
        }
        fx
    }

    /// The call's credit hold now pays `paid_minutes` (an answer to [`Effect::RenewCredit`]):
    /// a bridged call runs until they are used up. Fewer minutes than known is stale news.
    pub fn credit_renewed(&mut self, paid_minutes: u32, now: Millis) {
        if self.outcome.is_some() || self.timers.paid_minutes.is_none_or(|known| paid_minutes <= known) {
            return;
        }
        self.timers.paid_minutes = Some(paid_minutes);
        if self.customer == LegState::Answered {
            self.arm_credit_timers(now);
        }
    }

    /// When the bridged call's paid minutes are used up.
    fn paid_until(&self) -> Option<Millis> {
        let minutes = self.timers.paid_minutes?;
        Some(later(self.record.bridged_at?, crate::credit::BILLING_MINUTE * minutes))
    }

    /// The end of the paid time, and the renewal shortly before it (at once when that moment
    /// has passed).
    fn arm_credit_timers(&mut self, now: Millis) {
        let Some(until) = self.paid_until() else {
            return;
        };
        self.deadlines.set(Timer::PaidTime, until);
        if !self.may_outlive(until) {
            self.deadlines.stop(Timer::CreditRenewal);
            return;
        }
        let renew_at = until.saturating_sub(Millis::try_from(crate::credit::RENEW_AHEAD.as_millis()).unwrap_or(0));
        self.deadlines.set(Timer::CreditRenewal, renew_at.max(now));
    }

    pub fn phase(&self) -> Phase {
        match (self.agent, self.customer) {
            (_, LegState::Answered) => Phase::Bridged,
            _ if self.record.bridged_at.is_some() => Phase::Bridged,
            _ if self.record.agent_answered_at.is_some() => Phase::CustomerLeg,
            _ => Phase::AgentLeg,
        }
    }

    pub fn apply(&mut self, event: CallEvent, now: Millis) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.outcome.is_some() {
            // Late news of a finished call: a leg that answers now (a 200 crossing our CANCEL
            // or BYE) must be hung up; everything else is moot.
            if let CallEvent::Answered { leg } = event {
                self.set_leg(leg, LegState::Gone);
                fx.push(Effect::Bye(leg));
            }
            return fx;
        }
        match event {
            CallEvent::AgentUnroutable => {
                if self.agent == LegState::Dialing {
                    self.agent = LegState::Gone;
                    self.finish(&mut fx, now, EndReason::AgentNotRegistered, Side::Platform, None);
                }
            }
            CallEvent::Provisional { leg: Leg::Agent, .. } => {
                if self.agent == LegState::Dialing {
                    self.agent = LegState::Ringing;
                    self.record.agent_ringing_at = Some(now);
                    self.deadlines.stop(Timer::AgentNoResponse);
                    fx.push(Effect::Emit(Progress::AgentRinging));
                }
            }
            CallEvent::Provisional {
                leg: Leg::Customer,
                early_media,
            } => {
                if matches!(self.customer, LegState::Dialing | LegState::Ringing) {
                    if self.customer == LegState::Dialing {
                        self.customer = LegState::Ringing;
                        self.record.customer_ringing_at = Some(now);
                        self.deadlines.stop(Timer::CustomerNoResponse);
                        fx.push(Effect::Emit(Progress::CustomerRinging));
                        fx.push(if early_media {
                            Effect::RelayEarlyMedia
                        } else {
                            Effect::PlayRingback
                        });
                    } else if early_media {
                        // A 180 first, then a 183 with SDP: switch to the carrier's media.
                        fx.push(Effect::RelayEarlyMedia);
                    }
                }
            }
            CallEvent::Answered { leg: Leg::Agent } => match self.agent {
                LegState::Dialing | LegState::Ringing => {
                    self.deadlines.stop(Timer::AgentNoResponse);
                    self.agent = LegState::Answered;
                    self.record.agent_answered_at = Some(now);
                    self.record.agent_final_code = Some(200);
                    self.customer = LegState::Dialing;
                    self.record.customer_invited_at = Some(now);
                    self.deadlines.stop(Timer::AgentRing);
                    fx.push(Effect::Emit(Progress::AgentAnswered));
                    fx.push(Effect::InviteCustomer);
                    self.deadlines
                        .start(Timer::CustomerNoResponse, now, self.timers.customer_no_response);
                    self.deadlines
                        .start(Timer::CustomerRing, now, self.timers.customer_ring);
                }
                _ => {}
            },
            CallEvent::Answered { leg: Leg::Customer } => {
                if matches!(self.customer, LegState::Dialing | LegState::Ringing) {
                    if self.customer == LegState::Dialing {
                        self.deadlines.stop(Timer::CustomerNoResponse);
                        self.record.customer_ringing_at.get_or_insert(now);
                    }
                    self.customer = LegState::Answered;
                    self.record.bridged_at = Some(now);
                    self.record.customer_final_code = Some(200);
                    self.deadlines.stop(Timer::CustomerRing);
                    fx.push(Effect::Bridge);
                    fx.push(Effect::Emit(Progress::CustomerAnswered));
                    if let Some(limit) = self.timers.max_duration {
                        self.deadlines.start(Timer::MaxDuration, now, limit);
                    }
                    self.arm_credit_timers(now);
                }
            }
            CallEvent::Failed { leg: Leg::Agent, code } => {
                if matches!(self.agent, LegState::Dialing | LegState::Ringing) {
                    self.agent = LegState::Gone;
                    self.record.agent_final_code = Some(code);
                    let reason = match code {
                        486 | 600 => EndReason::AgentBusy,
                        603 => EndReason::AgentDeclined,
                        0 | 408 | 480 | 404 | 503 => EndReason::AgentUnreachable,
                        _ => EndReason::AgentFailed,
                    };
                    self.finish(&mut fx, now, reason, Side::Agent, Some(code));
                }
            }
            CallEvent::Failed {
                leg: Leg::Customer,
                code,
            } => {
                if matches!(self.customer, LegState::Dialing | LegState::Ringing) {
                    if matches!(code, 0 | 408 | 503) && self.fail_over(&mut fx, false, now) {
                        return fx;
                    }
                    self.customer = LegState::Gone;
                    self.record.customer_final_code = Some(code);
                    let reason = match code {
                        486 | 600 => EndReason::CustomerBusy,
                        603 => EndReason::CustomerDeclined,
                        0 | 408 | 480 | 404 => EndReason::CustomerUnreachable,
                        _ => EndReason::CustomerFailed,
                    };
                    self.finish(&mut fx, now, reason, Side::Customer, Some(code));
                }
            }
            CallEvent::HungUp { leg } => {
                if self.leg(leg) == LegState::Answered {
                    self.set_leg(leg, LegState::Gone);
                    let (reason, side) = match leg {
                        Leg::Agent => (EndReason::AgentHungUp, Side::Agent),
                        Leg::Customer => (EndReason::CustomerHungUp, Side::Customer),
                    };
                    let code = if self.phase() == Phase::Bridged {
                        Some(200)
                    } else {
                        None
                    };
                    self.finish(&mut fx, now, reason, side, code);
                }
            }
            CallEvent::MediaTimeout { .. } => {
                if self.agent == LegState::Answered {
                    self.finish(&mut fx, now, EndReason::MediaTimeout, Side::Platform, None);
                }
            }
            CallEvent::SessionRefreshFailed { leg, code } => {
                let answered = match leg {
                    Leg::Agent => self.agent == LegState::Answered,
                    Leg::Customer => self.customer == LegState::Answered,
                };
                if answered {
                    self.finish(
                        &mut fx,
                        now,
                        EndReason::SessionRefreshFailed,
                        Side::Platform,
                        Some(code),
                    );
                }
            }
            CallEvent::HangUpRequested { cause } => {
                let reason = match cause {
                    PlatformCause::Api => EndReason::HangUpRequested,
                    PlatformCause::Shutdown => EndReason::Shutdown,
                };
                let code = if self.phase() == Phase::Bridged {
                    Some(200)
                } else {
                    None
                };
                self.finish(&mut fx, now, reason, Side::Platform, code);
            }
            CallEvent::HoldRequested { on_hold } => {
                let bridged = self.agent == LegState::Answered && self.customer == LegState::Answered;
                if bridged && on_hold != self.on_hold {
                    self.on_hold = on_hold;
                    if on_hold {
                        fx.push(Effect::PutOnHold);
                        fx.push(Effect::Emit(Progress::OnHold));
                    } else {
                        fx.push(Effect::Bridge);
                        fx.push(Effect::Emit(Progress::Resumed));
                    }
                }
            }
        }
        fx
    }

    /// `timer` is due: what it ends (nothing when what it watched has happened since).
    fn fire(&mut self, timer: Timer, now: Millis, fx: &mut Vec<Effect>) {
        // No answer at all from this route: the next one, if any.
        if timer == Timer::CustomerNoResponse && self.customer == LegState::Dialing && self.fail_over(fx, true, now) {
            return;
        }
        if timer == Timer::CreditRenewal {
            self.renew_credit(now, fx);
            return;
        }
        let reason = match timer {
            Timer::AgentNoResponse if self.agent == LegState::Dialing => Some(EndReason::AgentUnreachable),
            Timer::AgentRing if matches!(self.agent, LegState::Dialing | LegState::Ringing) => {
                Some(EndReason::AgentNoAnswer)
            }
            Timer::CustomerNoResponse if self.customer == LegState::Dialing => Some(EndReason::CustomerUnreachable),
            Timer::CustomerRing if matches!(self.customer, LegState::Dialing | LegState::Ringing) => {
                Some(EndReason::CustomerNoAnswer)
            }
            Timer::MaxDuration if self.customer == LegState::Answered => Some(EndReason::MaxDuration),
            Timer::PaidTime if self.customer == LegState::Answered => Some(EndReason::BalanceExhausted),
            _ => None,
        };
        if let Some(reason) = reason {
            self.finish(fx, now, reason, Side::Platform, None);
        }
    }

    /// Whether the configured cap lets the call run past `until` (else another minute of
    /// credit would be held for nothing).
    fn may_outlive(&self, until: Millis) -> bool {
        self.deadlines.get(Timer::MaxDuration).is_none_or(|cap| cap > until)
    }

    /// Asks for another minute, and asks again every [`RENEW_RETRY`](crate::credit::RENEW_RETRY)
    /// until the paid time runs out or the answer comes.
    fn renew_credit(&mut self, now: Millis, fx: &mut Vec<Effect>) {
        let (Some(paid_minutes), Some(until)) = (self.timers.paid_minutes, self.paid_until()) else {
            return;
        };
        // Asking when the paid time is over (a host that noticed late) would hold a minute for
        // a call about to be cut.
        if self.customer != LegState::Answered || now >= until || !self.may_outlive(until) {
            return;
        }
        fx.push(Effect::RenewCredit { paid_minutes });
        let retry_at = later(now, crate::credit::RENEW_RETRY);
        if retry_at < until {
            self.deadlines.set(Timer::CreditRenewal, retry_at);
        }
    }

    fn leg(&self, leg: Leg) -> LegState {
        match leg {
            Leg::Agent => self.agent,
            Leg::Customer => self.customer,
        }
    }

    fn set_leg(&mut self, leg: Leg, state: LegState) {
        match leg {
            Leg::Agent => self.agent = state,
            Leg::Customer => self.customer = state,
        }
    }

    /// Ends the call: releases every leg still up (CANCEL before an answer, BYE after), stops
    /// every timer, and reports the outcome.
    fn finish(&mut self, fx: &mut Vec<Effect>, now: Millis, reason: EndReason, side: Side, sip_code: Option<u16>) {
        let phase = self.phase();
        for leg in [Leg::Customer, Leg::Agent] {
            match self.leg(leg) {
                LegState::Dialing | LegState::Ringing => fx.push(Effect::Cancel(leg)),
                LegState::Answered => fx.push(Effect::Bye(leg)),
                LegState::Idle | LegState::Gone => {}
            }
            if self.leg(leg) != LegState::Idle {
                self.set_leg(leg, LegState::Gone);
            }
        }
        self.deadlines = Deadlines::default();
        self.on_hold = false;
        self.record.ended_at = Some(now);
        let outcome = Outcome {
            reason,
            side,
            phase,
            sip_code,
        };
        self.outcome = Some(outcome);
        fx.push(Effect::Finished(outcome));
    }
}

#[cfg(test)]
mod tests;

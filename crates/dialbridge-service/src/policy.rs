//! Whether a preview outcall may be placed, decided in one pure function over a snapshot of
//! everything the decision reads (no store, no clock, no DNS: the service gathers the snapshot,
//! time passed in). The checks run in the legacy interface's order (spec §2.1: 41, 4, 6, 5, 7, 11,
//! 14, 40, 12, 33/13, 9, 10), so when two refusals apply the earlier one is given.

use dialbridge_core::agent::{AgentRefusal, AgentState};
use dialbridge_core::{
    AgentSettings, BlacklistPattern, CallerId, Destination, Enterprise, EnterpriseSettings, EnterpriseStatus, Money,
    NumberClass, PhoneNumber, PhoneType, Trunk,
};
use dialbridge_engine::TrunkRoute;

/// Why a call is refused. The wire crates map each to their code (the legacy `res`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("enterprise is {0}")]
    EnterpriseInactive(EnterpriseStatus),
    #[error("agent disabled")]
    AgentDisabled,
    #[error("outbound calling or the interface is not enabled")]
    OutboundDisabled,
    #[error("the enterprise has no caller id to call out with")]
    NoCallerId,
    /// The enterprise's available credit (balance + credit limit − what running calls hold)
    /// does not pay a started minute at its rate.
    #[error("balance exhausted: the available credit does not pay a minute")]
    BalanceExhausted,
    #[error("customer number: {0}")]
    BadCustomerNumber(String),
    #[error("an extension is not a customer number")]
    ExtensionAsCustomer,
    /// Checked before call power: an enterprise calls abroad, and special classes, only when
    /// its destination policy names them.
    #[error("the enterprise's destination policy does not allow {0}")]
    DestinationForbidden(Destination),
    #[error("call power {power} does not allow {number}")]
    CallPowerForbids { power: String, number: String },
    #[error("blacklisted by {0}")]
    Blacklisted(String),
    #[error("the requested caller id is not one of the enterprise's numbers")]
    UnknownCallerId,
    #[error("the default caller id is not one of the enterprise's numbers")]
    DefaultCallerIdGone,
    #[error("the number was called {count} times in {window_minutes} minutes")]
    NumberLimitReached { count: u32, window_minutes: u32 },
    #[error("{}", agent_refusal_text(*.0))]
    Agent(AgentRefusal),
    #[error("the agent has no bound phone")]
    NoBoundPhone,
    #[error("the agent's phone is not reachable")]
    PhoneUnreachable,
    #[error("the enterprise's concurrency cap is reached")]
    ConcurrencyCapReached,
    #[error("trunk {0} of the caller id is gone")]
    CallerIdTrunkGone(String),
    #[error("no trunk can take the call: {}", .0.join("; "))]
    NoTrunk(Vec<String>),
    /// Another request changed the agent between this one's read and write: it won the lock.
    #[error("another call for this agent is being set up")]
    LockLost,
    #[error("internal error")]
    Internal,
}

fn agent_refusal_text(refusal: AgentRefusal) -> &'static str {
    match refusal {
        AgentRefusal::Offline | AgentRefusal::AlreadyOnline => "agent offline",
        AgentRefusal::AlreadyCalling => "already calling",
        AgentRefusal::InCall => "agent in a call",
    }
}

/// A request, its parameters already well-formed and its agent authenticated.
#[derive(Debug, Clone)]
pub struct OutcallRequest {
    pub customer_number: String,
    pub user_field: String,
    /// `clidLeftNumber`: empty = the enterprise's default.
    pub caller_id: Option<String>,
    /// Shorter rings than the enterprise's for this call (the toolbar's timeouts; never
    /// longer: the enterprise's settings are the limits).
    pub ring_limits: RingLimits,
}

/// How long this call may ring the agent's phone and the customer's, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingLimits {
    pub agent_secs: Option<u32>,
    pub customer_secs: Option<u32>,
}

impl RingLimits {
    /// The ring timeouts of a call: the enterprise's, shortened by these.
    pub fn apply(self, agent_secs: u32, customer_secs: u32) -> (u32, u32) {
        (
            self.agent_secs.map_or(agent_secs, |s| s.min(agent_secs)),
            self.customer_secs.map_or(customer_secs, |s| s.min(customer_secs)),
        )
    }
}

/// One trunk as the routing decision sees it.
#[derive(Debug, Clone)]
pub struct TrunkOption {
    pub trunk: Trunk,
    /// `false` while its keepalive finds it down.
    pub up: bool,
    /// Calls it carries now.
    pub running_calls: u64,
    /// Its route, its destination resolved; `None` when the address did not resolve.
    pub route: Option<TrunkRoute>,
}

/// The customer's number as the decision reads it, worked out before the acceptance
/// transaction: classifying a number reads the numbering metadata (tens of microseconds, behind
/// that library's one lock), which must not lengthen the time admission holds its locks.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The number, or why it is not one.
    pub number: Result<PhoneNumber, String>,
    /// Where it goes (`None` when it is not a number).
    pub destination: Option<Destination>,
    /// The price of the call's minutes, fixed when it is accepted: the destination's rate when
    /// the enterprise has one for the number, else its own (also for a number that does not
    /// parse: the refusal for it comes later, at `res` 7's place).
    pub rate: Money,
}

impl Customer {
    pub fn of(settings: &EnterpriseSettings, request: &OutcallRequest) -> Self {
        let number = PhoneNumber::parse(&request.customer_number).map_err(|e| e.reason.to_string());
        let destination = number.as_ref().ok().map(Destination::of);
        let rate = number
            .as_ref()
            .map_or(settings.rate_per_minute, |number| settings.rate_for(number));
        Self {
            number,
            destination,
            rate,
        }
    }
}

/// Everything the decision reads.
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    pub enterprise: &'a Enterprise,
    pub customer: &'a Customer,
    pub agent: &'a AgentSettings,
    pub agent_state: &'a AgentState,
    pub caller_ids: &'a [CallerId],
    pub blacklist: &'a [BlacklistPattern],
    /// Calls to the requested number within the enterprise's number-limit window (0 without a
    /// limit or a number that does not parse).
    pub calls_to_number: u64,
    pub bound_phone: Option<&'a (PhoneType, String)>,
    pub phone_reachable: bool,
    /// The enterprise's calls running now.
    pub running_calls: u64,
    /// Every trunk, whether or not it serves the enterprise.
    pub trunks: &'a [TrunkOption],
}

/// What an accepted request becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub customer: PhoneNumber,
    pub caller_id: CallerId,
    pub phone: (PhoneType, String),
    /// The routes to try in order: the caller id's trunk first, then the enterprise's others by
    /// priority (then name); never empty.
    pub routes: Vec<TrunkRoute>,
    /// Trunks passed over, and why (for the log).
    pub skipped: Vec<String>,
}

/// Decides `request` over `snapshot` at `now_ms`.
pub fn check(snapshot: &Snapshot<'_>, request: &OutcallRequest, now_ms: i64) -> Result<Plan, Refusal> {
    let enterprise = snapshot.enterprise;
    let s = &enterprise.settings;
    let agent = snapshot.agent;
    if s.status != EnterpriseStatus::Active {
        return Err(Refusal::EnterpriseInactive(s.status));
    }
    if !agent.active {
        return Err(Refusal::AgentDisabled);
    }
    if !s.outbound_enabled || !s.interface_enabled || !agent.outbound_allowed {
        return Err(Refusal::OutboundDisabled);
    }
    if snapshot.caller_ids.is_empty() {
        return Err(Refusal::NoCallerId);
    }
    if !enterprise.credit().pays_a_minute(snapshot.customer.rate) {
        return Err(Refusal::BalanceExhausted);
    }
    let customer = snapshot.customer.number.clone().map_err(Refusal::BadCustomerNumber)?;
    if matches!(customer.class(), NumberClass::Extension) {
        return Err(Refusal::ExtensionAsCustomer);
    }
    match &snapshot.customer.destination {
        Some(Destination::Invalid) => {
            return Err(Refusal::BadCustomerNumber(format!(
                "{customer} is not a valid number in any numbering plan"
            )));
        }
        Some(destination) if !s.destinations.permits(destination) => {
            return Err(Refusal::DestinationForbidden(destination.clone()));
        }
        _ => {}
    }
    if !agent
        .call_power
        .permits_customer(&customer, agent.area_code.as_deref(), None)
    {
        return Err(Refusal::CallPowerForbids {
            power: agent.call_power.as_str().to_owned(),
            number: customer.to_string(),
        });
    }
    if let Some(entry) = snapshot.blacklist.iter().find(|p| p.matches(&customer)) {
        return Err(Refusal::Blacklisted(entry.to_string()));
    }
    let caller_id = match request.caller_id.as_deref().filter(|c| !c.is_empty()) {
        Some(given) => {
            let normalised = PhoneNumber::parse(given)
                .map(|n| n.digits().to_owned())
                .unwrap_or_default();
            snapshot
                .caller_ids
                .iter()
                .find(|c| c.number == normalised)
                .ok_or(Refusal::UnknownCallerId)?
        }
        None => {
            let default = s
                .default_caller_id
                .as_deref()
                .unwrap_or(snapshot.caller_ids[0].number.as_str());
            snapshot
                .caller_ids
                .iter()
                .find(|c| c.number == default)
                .ok_or(Refusal::DefaultCallerIdGone)?
        }
    };
    if let Some(limit) = s.number_limit {
        if snapshot.calls_to_number >= u64::from(limit.count) {
            return Err(Refusal::NumberLimitReached {
                count: limit.count,
                window_minutes: limit.window_minutes,
            });
        }
    }
    snapshot.agent_state.may_call(now_ms).map_err(Refusal::Agent)?;
    if !snapshot.phone_reachable {
        return Err(match snapshot.bound_phone {
            Some(_) => Refusal::PhoneUnreachable,
            None => Refusal::NoBoundPhone,
        });
    }
    let Some(phone) = snapshot.bound_phone.cloned() else {
        return Err(Refusal::NoBoundPhone);
    };
    if let Some(cap) = s.concurrency_cap {
        if snapshot.running_calls >= u64::from(cap) {
            return Err(Refusal::ConcurrencyCapReached);
        }
    }
    let (routes, skipped) = routes(snapshot, &caller_id.trunk)?;
    Ok(Plan {
        customer,
        caller_id: caller_id.clone(),
        phone,
        routes,
        skipped,
    })
}

/// The caller id's trunk first, then the enterprise's other trunks by priority (then name). A
/// trunk is passed over when it no longer serves the enterprise (the caller id's own trunk
/// included: its calls fail over to the others), is down by its keepalive, is full, or did not
/// resolve.
fn routes(snapshot: &Snapshot<'_>, caller_id_trunk: &str) -> Result<(Vec<TrunkRoute>, Vec<String>), Refusal> {
    let enterprise = snapshot.enterprise.id;
    let primary = snapshot
        .trunks
        .iter()
        .find(|t| t.trunk.name == caller_id_trunk)
        .ok_or_else(|| Refusal::CallerIdTrunkGone(caller_id_trunk.to_owned()))?;
    let mut others: Vec<&TrunkOption> = snapshot
        .trunks
        .iter()
        .filter(|t| t.trunk.name != caller_id_trunk)
        .collect();
    others.sort_by(|a, b| (a.trunk.priority, &a.trunk.name).cmp(&(b.trunk.priority, &b.trunk.name)));
    let mut routes = Vec::new();
    let mut skipped = Vec::new();
    for option in std::iter::once(primary).chain(others) {
        let name = &option.trunk.name;
        if !option.trunk.enterprises.contains(&enterprise) {
            if option.trunk.name == caller_id_trunk {
                skipped.push(format!(
                    "{name} (the caller id's trunk) no longer serves the enterprise"
                ));
            }
            continue;
        }
        if !option.up {
            skipped.push(format!("{name} is down (no answer to OPTIONS)"));
        } else if option.running_calls >= u64::from(option.trunk.max_channels) {
            skipped.push(format!("{name} is full"));
        } else if let Some(route) = &option.route {
            routes.push(route.clone());
        } else {
            skipped.push(format!(
                "trunk {name}: cannot resolve {}",
                crate::routing::trunk_destination(&option.trunk)
            ));
        }
    }
    if routes.is_empty() {
        return Err(Refusal::NoTrunk(skipped));
    }
    Ok((routes, skipped))
}

#[cfg(test)]
#[path = "policy_test.rs"]
mod tests;

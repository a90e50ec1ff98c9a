//! What the platform knows about a trunk's carrier between calls: whether it answers keepalive
//! OPTIONS (so calls skip a dead trunk without trying it), and whether our registration with
//! it holds (for carriers that want the platform registered), with when to ask next. Pure: the
//! engine sends the requests and feeds the answers in.

use std::time::Duration;

/// How one request to the carrier went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierReply {
    /// A final response with this status code.
    Answered(u16),
    /// No final response in time, or it could not be sent.
    NoAnswer,
}

/// 503 and 408 say the carrier (or a proxy before it) cannot serve now: the same codes that
/// make a call fail over to the next trunk.
fn says_unavailable(code: u16) -> bool {
    matches!(code, 408 | 503)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet: calls may use it.
    Unknown,
    Up,
    Down,
}

/// Keepalive OPTIONS: any final answer but 408/503 means the carrier is there (a 404 or 405
/// to OPTIONS is still an answer); one failed probe marks the trunk down, since a probe over
/// UDP is already several retransmissions; one answer marks it up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    health: Health,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self::new()
    }
}

impl Keepalive {
    pub fn new() -> Self {
        Self {
            health: Health::Unknown,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Whether calls may be sent to the trunk.
    pub fn usable(&self) -> bool {
        self.health != Health::Down
    }

    /// Records a probe's reply; returns the new health when it changed.
    pub fn record(&mut self, reply: CarrierReply) -> Option<Health> {
        let next = match reply {
            CarrierReply::Answered(code) if !says_unavailable(code) => Health::Up,
            _ => Health::Down,
        };
        (next != self.health).then(|| {
            self.health = next;
            next
        })
    }
}

/// A REGISTER's outcome, as the registration needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 2xx, for this many seconds.
    Registered {
        granted_secs: u32,
    },
    /// 423 Interval Too Brief, with the carrier's `Min-Expires` when it sent one.
    IntervalTooBrief {
        min_expires: Option<u32>,
    },
    /// Any other final answer (a refused password is 401/403 after our credentials).
    Refused(u16),
    NoAnswer,
}

/// The first retry after a failure; each further failure doubles it, up to [`RETRY_CAP`].
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(60);
/// A registration is refreshed at half its granted time, but not more often than this.
pub const REFRESH_MIN: Duration = Duration::from_secs(1);
/// The longest interval we ask for after 423s without a `Min-Expires`.
const EXPIRES_CAP: u32 = 86_400;

/// The client side of a trunk's registration: what to ask for and when to ask again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkRegistration {
    requested_secs: u32,
    consecutive_failures: u32,
    registered: bool,
}

impl TrunkRegistration {
    pub fn new(expires_secs: u32) -> Self {
        Self {
            requested_secs: expires_secs.max(1),
            consecutive_failures: 0,
            registered: false,
        }
    }

    /// The `Expires` the next REGISTER asks for.
    pub fn requested_secs(&self) -> u32 {
        self.requested_secs
    }

    /// Whether the last REGISTER succeeded.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Records a REGISTER's outcome; returns how long to wait before the next one.
    pub fn record(&mut self, outcome: RegisterOutcome) -> Duration {
        match outcome {
            RegisterOutcome::Registered { granted_secs } => {
                self.registered = true;
                self.consecutive_failures = 0;
                (Duration::from_secs(u64::from(granted_secs)) / 2).max(REFRESH_MIN)
            }
            RegisterOutcome::IntervalTooBrief { min_expires } => {
                // Asking again at once with a longer interval is what 423 asks for; it is not a
                // failure unless the carrier keeps refusing the longest we would ask for.
                let longer = min_expires
                    .filter(|m| *m > self.requested_secs)
                    .unwrap_or_else(|| self.requested_secs.saturating_mul(2))
                    .min(EXPIRES_CAP);
                if longer > self.requested_secs {
                    self.requested_secs = longer;
                    Duration::ZERO
                } else {
                    self.failed()
                }
            }
            RegisterOutcome::Refused(_) | RegisterOutcome::NoAnswer => self.failed(),
        }
    }

    fn failed(&mut self) -> Duration {
        self.registered = false;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let doublings = self.consecutive_failures.saturating_sub(1).min(16);
        (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_CAP)
    }
}

#[cfg(test)]
#[path = "trunk_watch_test.rs"]
mod tests;

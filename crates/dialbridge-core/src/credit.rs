//! Credit: what an enterprise may still spend, and what a running call holds of it.
//!
//! A bridged call is billed every started minute. So that no call spends money the enterprise
//! does not have, each running call holds credit for the minutes it may use: one minute at its
//! acceptance, one more each time it is extended shortly before its paid time runs out. A call
//! that cannot extend is cut at the end of what it holds, and at its end the hold becomes the
//! charge. The call machine keeps the times ([`crate::call`]); the store keeps the holds.

use std::time::Duration;

use crate::Money;

/// The billing unit: a bridged call pays every started minute.
pub const BILLING_MINUTE: Duration = Duration::from_secs(60);

/// How long before its paid time runs out a bridged call asks for another minute: long enough
/// for a store under load to answer before the call would be cut.
pub const RENEW_AHEAD: Duration = Duration::from_secs(15);

/// How often a call whose extension was refused asks again until its paid time runs out, so a
/// top-up in those seconds keeps it up.
pub const RENEW_RETRY: Duration = Duration::from_secs(5);

/// An enterprise's money as an admission sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    /// Money paid in, less what ended calls were charged (below zero only within the credit
    /// limit, or after an operator's correction).
    pub balance: Money,
    /// How far below zero a post-paid enterprise may go (0: prepaid).
    pub credit_limit: Money,
    /// What the running calls hold.
    pub held: Money,
}

impl Credit {
    /// What may still be held: balance + credit limit − what running calls hold.
    pub fn available(&self) -> Money {
        let limit = self.balance.saturating_add(self.credit_limit);
        limit.saturating_sub(self.held)
    }

    /// Whether one more started minute at `rate` can be held. At a rate of zero a call costs
    /// nothing, yet an account with nothing available is still exhausted (the legacy `res` 5
    /// of a prepaid account at zero).
    pub fn pays_a_minute(&self, rate: Money) -> bool {
        let available = self.available();
        available.is_positive() && available >= rate
    }
}

/// What a running call holds: `minutes` of bridged time at `rate`, the enterprise's rate when
/// the call was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub rate: Money,
    pub minutes: u32,
}

impl Hold {
    /// The hold a call takes at its acceptance: its first minute; `None` at a rate of zero
    /// (nothing to hold, no limit to its length).
    pub fn first(rate: Money) -> Option<Hold> {
        rate.is_positive().then_some(Hold { rate, minutes: 1 })
    }

    pub fn amount(&self) -> Money {
        self.rate.saturating_mul(i64::from(self.minutes))
    }

    /// The hold one minute longer.
    pub fn extended(&self) -> Hold {
        Hold {
            rate: self.rate,
            minutes: self.minutes.saturating_add(1),
        }
    }

    /// The charge of a call that held this: every started minute of its bridged time, and
    /// never more than it holds. A call is cut at the end of what it holds; the milliseconds
    /// between that moment and its BYE do not start a minute it could not pay.
    pub fn settle(&self, bridged_seconds: u64) -> Money {
        // Past what money can count (a corrupt end time), the whole hold: never free.
        Money::charge_per_started_minute(self.rate, bridged_seconds)
            .unwrap_or(self.amount())
            .min(self.amount())
    }
}

#[cfg(test)]
#[path = "credit_test.rs"]
mod tests;

//! Exact money: integer ten-thousandths of the currency unit. Never floats, because balances
//! are debited per call for years and a rounding drift would be a billing dispute.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Ten-thousandths of the currency unit per unit.
const SCALE: i64 = 10_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_ten_thousandths(value: i64) -> Self {
        Self(value)
    }

    pub const fn ten_thousandths(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn checked_mul(self, factor: i64) -> Option<Money> {
        self.0.checked_mul(factor).map(Money)
    }

    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    pub fn saturating_mul(self, factor: i64) -> Money {
        Money(self.0.saturating_mul(factor))
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// The charge for a bridged call: every started minute at `rate_per_minute`.
    pub fn charge_per_started_minute(rate_per_minute: Money, bridged_seconds: u64) -> Option<Money> {
        let minutes = i64::try_from(bridged_seconds.div_ceil(60)).ok()?;
        rate_per_minute.checked_mul(minutes)
    }

    /// The legacy CDR's `cost` form: a decimal string with three places, rounded half up
    /// ("0.120").
    pub fn to_legacy_cost(self) -> String {
        let thousandths = (self.0 + self.0.signum() * 5) / 10;
        let sign = if thousandths < 0 { "-" } else { "" };
        let abs = thousandths.unsigned_abs();
        format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
    }
}

impl FromStr for Money {
    type Err = ValidationError;

    /// Parses a decimal with at most four places: "12", "12.5", "-0.0001".
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || {
            ValidationError::new(
                "amount",
                format!("{text:?} is not a decimal amount with at most 4 places"),
            )
        };
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 4 {
            return Err(err());
        }
        if unsigned.contains('.') && fraction.is_empty() {
            return Err(err());
        }
        let whole: i64 = whole.parse().map_err(|_| err())?;
        let mut fraction_value: i64 = 0;
        for (i, b) in fraction.bytes().enumerate() {
            fraction_value += i64::from(b - b'0') * 10_i64.pow(3 - i as u32);
        }
        let magnitude = whole
            .checked_mul(SCALE)
            .and_then(|w| w.checked_add(fraction_value))
            .ok_or_else(err)?;
        Ok(Money(if negative { -magnitude } else { magnitude }))
    }
}

impl TryFrom<String> for Money {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Money> for String {
    fn from(m: Money) -> String {
        m.to_string()
    }
}

impl fmt::Display for Money {
    /// Always four places, so that the text round-trips exactly: "12.3400".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:04}", abs / SCALE as u64, abs % SCALE as u64)
    }
}

#[cfg(test)]
#[path = "money_test.rs"]
mod tests;

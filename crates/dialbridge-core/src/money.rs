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

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// The charge for a bridged call: every started minute at `rate_per_minute`.
    pub fn charge_per_started_minute(rate_per_minute: Money, bridged_seconds: u64) -> Option<Money> {
        let minutes = i64::try_from(bridged_seconds.div_ceil(60)).ok()?;
        rate_per_minute.checked_mul(minutes)
    }

    /// How many whole seconds of talk `self` (a balance) pays for at `rate_per_minute`, counting
    /// every started minute as a whole one. `None` when the rate is zero (no limit).
    pub fn affordable_seconds(self, rate_per_minute: Money) -> Option<u64> {
        if rate_per_minute.0 <= 0 {
            return None;
        }
        let whole_minutes = self.0.max(0) / rate_per_minute.0;
        Some(u64::try_from(whole_minutes).unwrap_or(0) * 60)
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
mod tests {
    use super::*;

    fn m(text: &str) -> Money {
        text.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_exactly() {
        assert_eq!(m("12").ten_thousandths(), 120_000);
        assert_eq!(m("12.5").ten_thousandths(), 125_000);
        assert_eq!(m("0.0001").ten_thousandths(), 1);
        assert_eq!(m("-3.25").ten_thousandths(), -32_500);
        assert_eq!(m("12.5").to_string(), "12.5000");
        assert_eq!(m("-0.0001").to_string(), "-0.0001");
        for text in ["0.1200", "100.0000", "-7.0100"] {
            assert_eq!(m(text).to_string(), text);
        }
    }

    #[test]
    fn rejects_what_is_not_an_exact_amount() {
        for bad in [
            "",
            "1.",
            ".5",
            "1.23456",
            "1,5",
            "1e3",
            "--1",
            "abc",
            "99999999999999999",
        ] {
            assert!(bad.parse::<Money>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tenths_of_a_cent_do_not_drift() {
        let mut total = Money::ZERO;
        for _ in 0..10_000 {
            total = total.checked_add(m("0.0001")).unwrap();
        }
        assert_eq!(total, m("1"));
    }

    #[test]
    fn charges_every_started_minute() {
        let rate = m("0.12");
        assert_eq!(Money::charge_per_started_minute(rate, 0), Some(Money::ZERO));
        assert_eq!(Money::charge_per_started_minute(rate, 1), Some(m("0.12")));
        assert_eq!(Money::charge_per_started_minute(rate, 60), Some(m("0.12")));
        assert_eq!(Money::charge_per_started_minute(rate, 61), Some(m("0.24")));
        assert_eq!(
            Money::charge_per_started_minute(Money::from_ten_thousandths(i64::MAX), 120),
            None
        );
    }

    #[test]
    fn affordable_seconds_never_lets_the_balance_go_negative() {
        assert_eq!(m("1.00").affordable_seconds(m("0.12")), Some(480));
        assert_eq!(m("0.11").affordable_seconds(m("0.12")), Some(0));
        assert_eq!(m("-5").affordable_seconds(m("0.12")), Some(0));
        assert_eq!(m("5").affordable_seconds(Money::ZERO), None);
        let balance = m("1.00");
        let seconds = balance.affordable_seconds(m("0.12")).unwrap();
        let charge = Money::charge_per_started_minute(m("0.12"), seconds).unwrap();
        assert!(balance.checked_sub(charge).unwrap() >= Money::ZERO);
    }

    #[test]
    fn legacy_cost_has_three_places() {
        assert_eq!(m("0.12").to_legacy_cost(), "0.120");
        assert_eq!(m("0.0005").to_legacy_cost(), "0.001");
        assert_eq!(m("0.0004").to_legacy_cost(), "0.000");
        assert_eq!(m("12").to_legacy_cost(), "12.000");
        assert_eq!(Money::ZERO.to_legacy_cost(), "0.000");
    }
}

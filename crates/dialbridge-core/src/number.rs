//! Telephone numbers as the legacy platform (mainland China numbering) understands them:
//! normalisation, classification and the agent's call power.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// What kind of number a normalised number is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberClass {
    /// 11 digits starting with 1 (`13800138000`).
    Mobile,
    /// A 0-prefixed area code plus 7-8 digits (`01087128906`: area code `010`).
    Landline { area_code: String },
    /// 3-5 digits: an extension of the same enterprise.
    Extension,
    /// `00` followed by a country code and number (after `0086`/`+86` were removed).
    International,
    /// A national service number: `400` (shared cost) or `800` (toll free) and 7 digits.
    Service,
}

/// A number after normalisation, with its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    digits: String,
    class: NumberClass,
}

impl PhoneNumber {
    /// Strips spaces and `-`, turns `+` into `00`, removes the country prefix `0086` (or
    /// `+86`), then classifies what is left.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let err = |why: &str| ValidationError::new("number", format!("{text:?}: {why}"));
        let mut digits: String = text.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if let Some(rest) = digits.strip_prefix('+') {
            digits = format!("00{rest}");
        }
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("only digits, spaces, '-' and a leading '+' are allowed"));
        }
        if let Some(national) = digits.strip_prefix("0086") {
            digits = national.to_owned();
            // A number dialled with a country code loses its trunk prefix: +86 10 8712 8906.
            let mobile_or_service = (digits.starts_with('1') && digits.len() == 11) || is_service(&digits);
            if !mobile_or_service {
                if digits.starts_with('0') {
                    return Err(err("a number after +86 does not start with 0"));
                }
                digits.insert(0, '0');
            }
        }
        // `0400…`/`0800…` (a service number written with the trunk 0) is the same number.
        if let Some(service) = digits.strip_prefix('0').filter(|rest| is_service(rest)) {
            digits = service.to_owned();
        }
        let class = classify(&digits)
            .ok_or_else(|| err("not a mobile, landline, service, extension or international number"))?;
        Ok(Self { digits, class })
    }

    pub fn digits(&self) -> &str {
        &self.digits
    }

    pub fn class(&self) -> &NumberClass {
        &self.class
    }

    /// The legacy `customerNumberType`: 1 landline, 2 mobile; `None` otherwise.
    pub fn legacy_number_type(&self) -> Option<u8> {
        match self.class {
            NumberClass::Landline { .. } => Some(1),
            NumberClass::Mobile => Some(2),
            _ => None,
        }
    }

    /// The number in international form without its `+` (`8613800138000`, `861087128906`,
    /// `14155550100`), as rate tables are keyed; `None` for an extension.
    pub fn international_digits(&self) -> Option<String> {
        let digits = self.digits.as_str();
        match self.class {
            NumberClass::Mobile | NumberClass::Service => Some(format!("{COUNTRY_CODE}{digits}")),
            NumberClass::Landline { .. } => digits
                .strip_prefix('0')
                .map(|national| format!("{COUNTRY_CODE}{national}")),
            NumberClass::International => digits.strip_prefix("00").map(str::to_owned),
            NumberClass::Extension => None,
        }
    }

    pub fn area_code(&self) -> Option<&str> {
        match &self.class {
            NumberClass::Landline { area_code } => Some(area_code),
            _ => None,
        }
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

/// The country calling code of the numbering plan the platform normalises to (mainland China).
pub const COUNTRY_CODE: &str = "86";

fn is_service(digits: &str) -> bool {
    digits.len() == 10 && (digits.starts_with("400") || digits.starts_with("800"))
}

fn classify(digits: &str) -> Option<NumberClass> {
    let len = digits.len();
    if is_service(digits) {
        return Some(NumberClass::Service);
    }
    if digits.starts_with("00") {
        return (7..=17).contains(&len).then_some(NumberClass::International);
    }
    if let Some(national) = digits.strip_prefix('0') {
        // Beijing (10) and the 2x cities have two-digit area codes, everything else three.
        let area_len = if national.starts_with('1') || national.starts_with('2') {
            3
        } else {
            4
        };
        if len <= area_len {
            return None;
        }
        let (area_code, local) = digits.split_at(area_len);
        let local_ok = (7..=8).contains(&local.len()) && !local.starts_with('0') && !local.starts_with('1');
        return local_ok.then(|| NumberClass::Landline {
            area_code: area_code.to_owned(),
        });
    }
    if len == 11 && digits.starts_with('1') {
        return Some(NumberClass::Mobile);
    }
    if (3..=5).contains(&len) {
        return Some(NumberClass::Extension);
    }
    None
}

/// Which numbers an agent may call (the spec's §2 "call power").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallPower {
    All,
    /// No international numbers.
    National,
    /// Landlines in the agent's own area code (mobiles only with an imported prefix table).
    Local,
    /// Extensions only: such an agent cannot call a customer.
    Internal,
}

impl CallPower {
    pub const ALL: [CallPower; 4] = [
        CallPower::All,
        CallPower::National,
        CallPower::Local,
        CallPower::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallPower::All => "all",
            CallPower::National => "national",
            CallPower::Local => "local",
            CallPower::Internal => "internal",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::ALL.into_iter().find(|p| p.as_str() == text).ok_or_else(|| {
            ValidationError::new(
                "call_power",
                format!("{text:?} is not one of all, national, local, internal"),
            )
        })
    }

    /// Whether an agent with this power, in `agent_area_code`, may call `number` as a
    /// customer. Extensions are never customers. `mobile_is_local` answers, for a mobile
    /// number, whether an operator's prefix table places it in the agent's area; without a
    /// table it is `None` and a local agent may not call mobiles.
    pub fn permits_customer(
        self,
        number: &PhoneNumber,
        agent_area_code: Option<&str>,
        mobile_is_local: Option<bool>,
    ) -> bool {
        match (self, number.class()) {
            (_, NumberClass::Extension) => false,
            (CallPower::Internal, _) => false,
            (CallPower::All, _) => true,
            (CallPower::National, NumberClass::International) => false,
            (CallPower::National, _) => true,
            // A service number has no area: it is never in the agent's.
            (CallPower::Local, NumberClass::Service) => false,
            (CallPower::Local, NumberClass::Landline { area_code }) => agent_area_code == Some(area_code.as_str()),
            (CallPower::Local, NumberClass::Mobile) => mobile_is_local == Some(true),
            (CallPower::Local, NumberClass::International) => false,
        }
    }
}

#[cfg(test)]
#[path = "number_test.rs"]
mod tests;

//! Identifiers with a fixed textual form on the legacy wire.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// An enterprise (tenant) id: 7 digits, as in the legacy platform (e.g. 3000001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct EnterpriseId(i64);

impl EnterpriseId {
    pub fn new(value: i64) -> Result<Self, ValidationError> {
        if (1_000_000..=9_999_999).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "enterpriseId",
                format!("{value} is not a 7-digit enterprise id"),
            ))
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text.len() != 7 || !all_digits(text) {
            return Err(ValidationError::new(
                "enterpriseId",
                format!("{text:?} is not a 7-digit enterprise id"),
            ));
        }
        text.parse::<i64>()
            .map_err(|e| ValidationError::new("enterpriseId", e.to_string()))
            .and_then(Self::new)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for EnterpriseId {
    type Error = ValidationError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<EnterpriseId> for i64 {
    fn from(id: EnterpriseId) -> i64 {
        id.0
    }
}

impl fmt::Display for EnterpriseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! digit_string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, ValidationError> {
                if ($min..=$max).contains(&text.len()) && all_digits(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(ValidationError::new(
                        $field,
                        format!(concat!("{:?} is not ", $min, "-", $max, " digits"), text),
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

digit_string_id!(
    /// An agent's number within its enterprise: 4-6 digits ("2000"). Kept as text because
    /// a leading zero is significant to the CRM that sends it.
    Cno,
    "cno",
    4,
    6
);

digit_string_id!(
    /// An extension number within its enterprise: 3-5 digits ("801").
    ExtensionNumber,
    "extension",
    3,
    5
);

/// The node name written into every `uniqueId` (`<node>-<unixtime>.<seq>`). Clients split the
/// uniqueId on `-`, so the name must not contain one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeName(String);

impl NodeName {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(ValidationError::new(
                "node_name",
                format!("{text:?} must be 1-64 characters of [A-Za-z0-9_.]"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeName {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<NodeName> for String {
    fn from(n: NodeName) -> String {
        n.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[path = "ids_test.rs"]
mod tests;

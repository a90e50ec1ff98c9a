//! The pure domain of dialbridge: what an enterprise, an agent, an extension, a trunk and a
//! caller id are, the rules that make them valid, telephone numbers and money.
//!
//! Architecture invariant: this crate does no I/O and reads no clock. Everything here is
//! deterministic, so every rule is unit-tested without a database or a network.

pub mod agent;
pub mod budget;
pub mod call;
pub mod caps;
pub mod credit;
pub mod destination;
pub mod entities;
pub mod ids;
pub mod money;
pub mod number;
pub mod number_format;
pub mod recording;
pub mod text;
pub mod trunk_watch;

pub use credit::{Credit, Hold};
pub use destination::{Destination, DestinationPolicy, DestinationRates};
pub use entities::*;
pub use ids::*;
pub use money::Money;
pub use number::{CallPower, NumberClass, PhoneNumber};
pub use number_format::{NumberFormat, NumberStyle};

/// A value that breaks one of the domain's rules. `field` names what was wrong so that a CLI,
/// a provisioning file or an HTTP error can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: String,
}

/// The longest reason kept: reasons quote the value refused, and a value can be a megabyte.
const MAX_REASON_CHARS: usize = 200;

impl ValidationError {
    /// A refusal of `field`; the reason is cut and escaped ([`text::printable`]) so that an
    /// error message never echoes a caller's value whole.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: text::printable(&reason.into(), MAX_REASON_CHARS),
        }
    }
}

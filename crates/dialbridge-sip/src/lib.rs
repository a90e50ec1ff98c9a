//! dialbridge's SIP layer: the facade over rsipstack ([`stack`]), the registrar's decisions
//! ([`registrar`]) and server-side digest authentication ([`digest`]).
//!
//! Architecture invariant: no rsipstack type leaves this crate, and it knows no tenants: the
//! engine gives it an [`stack::AccountDirectory`] to look SIP accounts up.

mod client;
pub mod digest;
mod ending;
#[doc(hidden)]
pub mod fuzzing;
mod message;
pub mod registrar;
pub mod session_timer;
pub mod stack;
mod tcp_accept;
pub mod unsolicited;

pub use client::{CarrierRegistration, CarrierTarget, RegisterAnswer};
pub use digest::DigestOffer;
pub use ending::LegEnding;
pub use registrar::{RegistrarSettings, RegistrationRefusal, SipTransport};
pub use session_timer::{LegSessionTimer, SessionDue};
pub use stack::{
    AccountDirectory, InfoDigit, KeptBinding, Leg, LegEvent, LegHangUp, LegSpec, Refresher, Registration,
    Renegotiation, SessionExpires, SessionTimer, SipConfig, SipCounts, SipError, SipStack,
};
pub use tcp_accept::TcpLimits;
pub use unsolicited::UnsolicitedSettings;

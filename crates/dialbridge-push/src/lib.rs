//! Pushes to CRM web servers. [`fields`] builds each event's variables under their legacy
//! names; [`sign`] signs a request the Standard Webhooks way; [`dispatcher`] delivers from the
//! store's outbox — never from memory — in order per (target, call), with retries.
//!
//! Architecture invariant: nothing here runs on a call's path: events are written by the call
//! service in its own transactions, and a slow CRM only delays its own queue.

pub mod dispatcher;
pub mod fields;
pub mod sign;

pub use dispatcher::{Dispatcher, DispatcherSettings};

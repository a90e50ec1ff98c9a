//! dialbridge's own HTTP/1.1 accept loop in front of hyper and axum, so that what a stranger
//! can hold is bounded: a global and a per-source connection cap, header-read, body-read and
//! idle timeouts, and an over-long head answered by the application (hyper would answer an
//! empty 414 or 431 itself). [`framing`] follows each request's bytes (pure); `guard` is the
//! stream wrapper that applies its timeouts; `listener` accepts; `tls` makes it HTTPS.

pub mod framing;
mod guard;
mod listener;
mod tls;

pub use listener::{serve, HttpLimits, Rejection};
pub use tls::{Tls, TlsError};

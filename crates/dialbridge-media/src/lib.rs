//! dialbridge's media layer: SDP for G.711 ([`sdp`]), the RTP port pool ([`ports`]), the
//! per-call relay ([`relay`]), the browser softphone's WebRTC leg ([`webrtc`]) and the G.711
//! tables ([`g711`]).
//!
//! Architecture invariant: nothing on the media path awaits the store, the SIP stack or any
//! network but its own sockets.

pub mod g711;
pub mod ports;
pub mod recording;
pub mod relay;
mod relay_core;
pub mod sdp;
pub mod webrtc;

pub use g711::Law;
pub use ports::PortPool;
pub use recording::{RecordFrom, RecordingPlan, RecordingSink};
pub use relay::{MediaEvent, MediaLeg, MediaSession, RelayMode, RelaySettings, RelayStats, RemoteLeg};
pub use webrtc::{GoneBecause, WebRtcError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port pair in the configured range")]
    Exhausted,
    #[error("RTP socket: {0}")]
    Socket(String),
}

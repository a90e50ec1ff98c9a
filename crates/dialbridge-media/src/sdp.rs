//! The little SDP dialbridge needs (RFC 4566 / 3264): an audio offer of G.711 from our own
//! RTP port, and reading the far end's address and codecs from its answer. Written here
//! because only one audio stream with static payload types is ever negotiated, and the SDP
//! crates bring whole WebRTC stacks.

use std::net::{IpAddr, SocketAddr};

use crate::g711::Law;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    NotText,
    #[error("SDP has no audio stream")]
    NoAudio,
    #[error("SDP has no connection address")]
    NoConnection,
    #[error("SDP line {0:?} is malformed")]
    Malformed(String),
}

/// The payload type our offers give telephone events (RFC 4733): the far ends send DTMF to us
/// under it, whatever number they chose for receiving it.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Our offer: one audio stream at `ip:port`, the laws in order of preference, and
/// telephone-event (RFC 4733) so DTMF passes through.
pub fn offer(session_id: u64, ip: IpAddr, port: u16, laws: &[Law]) -> String {
    describe(session_id, session_id, ip, port, laws, Direction::SendRecv)
}

/// Which way media flows, as a description states it (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer gives to an offer of this one (hold: sendonly → recvonly).
    pub fn answered(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether the side that wrote it sends RTP.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// Our session description for a leg: `version` goes up each time it changes (RFC 3264 §8).
pub fn describe(session_id: u64, version: u64, ip: IpAddr, port: u16, laws: &[Law], direction: Direction) -> String {
    let ip_kind = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let payloads: Vec<String> = laws
        .iter()
        .map(|l| l.payload_type().to_string())
        .chain([TELEPHONE_EVENT_PT.to_string()])
        .collect();
    let mut sdp = format!(
        "v=0\r\no=dialbridge {session_id} {version} IN {ip_kind} {ip}\r\ns=dialbridge\r\nc=IN {ip_kind} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n",
        payloads.join(" ")
    );
    for law in laws {
        let name = match law {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        };
        sdp.push_str(&format!("a=rtpmap:{} {name}/8000\r\n", law.payload_type()));
    }
    sdp.push_str(&format!(
        "a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000\r\na=fmtp:{TELEPHONE_EVENT_PT} 0-16\r\na=ptime:20\r\na={}\r\n",
        direction.attribute()
    ));
    sdp
}

/// What the far end said about its media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where it wants RTP (before latching onto where it actually sends from).
    pub address: SocketAddr,
    /// The payload types of its audio stream, in its order.
    pub payload_types: Vec<u8>,
    /// The payload type under which it takes telephone events, if it takes them.
    pub telephone_event: Option<u8>,
    pub direction: Direction,
}

impl RemoteMedia {
    /// The first G.711 law it lists: the one an answer chose.
    pub fn law(&self) -> Option<Law> {
        self.payload_types.iter().find_map(|pt| Law::from_payload_type(*pt))
    }

    /// What the relay needs of it; `None` when it offers no G.711 we can relay.
    pub fn relay_leg(&self) -> Option<crate::RemoteLeg> {
        Some(crate::RemoteLeg {
            address: self.address,
            law: self.law()?,
            telephone_event: self.telephone_event,
            sends: self.direction.sends(),
        })
    }
}

pub fn parse(body: &[u8]) -> Result<RemoteMedia, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut in_audio = false;
    let mut event_types: Vec<u8> = Vec::new();
    let mut session_direction = None;
    let mut media_direction = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            in_audio = false;
            if audio.is_none() && rest.starts_with("audio ") {
                let mut fields = rest.split_whitespace().skip(1);
                let port = fields.next().and_then(|p| p.split('/').next()?.parse::<u16>().ok());
                let port = port.ok_or_else(|| SdpError::Malformed(line.to_owned()))?;
                let _profile = fields.next();
                let payloads = fields.filter_map(|p| p.parse::<u8>().ok()).collect();
                audio = Some((port, payloads));
                in_audio = true;
            }
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:").filter(|_| in_audio) {
            let mut fields = rest.split_whitespace();
            let pt = fields.next().and_then(|p| p.parse::<u8>().ok());
            let encoding = fields.next().unwrap_or("");
            if let Some(pt) = pt.filter(|_| encoding.to_ascii_lowercase().starts_with("telephone-event/8000")) {
                event_types.push(pt);
            }
        } else if let Some(direction) = line.strip_prefix("a=").and_then(parse_direction) {
            if in_audio {
                media_direction = Some(direction);
            } else if audio.is_none() {
                session_direction = Some(direction);
            }
        } else if let Some(rest) = line.strip_prefix("c=") {
            let ip = rest
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next()?.parse::<IpAddr>().ok())
                .ok_or_else(|| SdpError::Malformed(line.to_owned()))?;
            if in_audio {
                media_ip = Some(ip);
            } else if audio.is_none() {
                session_ip = Some(ip);
            }
        }
    }
    let (port, payload_types) = audio.ok_or(SdpError::NoAudio)?;
    let ip = media_ip.or(session_ip).ok_or(SdpError::NoConnection)?;
    let telephone_event = event_types.into_iter().find(|pt| payload_types.contains(pt));
    Ok(RemoteMedia {
        address: SocketAddr::new(ip, port),
        payload_types,
        telephone_event,
        direction: media_direction.or(session_direction).unwrap_or_default(),
    })
}

fn parse_direction(attribute: &str) -> Option<Direction> {
    match attribute {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    }
}

#[cfg(test)]
#[path = "sdp_test.rs"]
mod tests;

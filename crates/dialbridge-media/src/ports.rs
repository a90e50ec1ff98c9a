//! The RTP port pool: even ports from the configured range for RTP, the odd one above for
//! RTCP, each pair released when its [`RtpPorts`] is dropped.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::MediaError;

struct PoolState {
    next: u16,
    in_use: HashSet<u16>,
}

#[derive(Clone)]
pub struct PortPool {
    ip: IpAddr,
    range: RangeInclusive<u16>,
    state: Arc<Mutex<PoolState>>,
}

/// A bound RTP/RTCP socket pair; its ports go back to the pool on drop.
pub struct RtpPorts {
    pub rtp: tokio::net::UdpSocket,
    pub rtcp: tokio::net::UdpSocket,
    pub port: u16,
    pool: PortPool,
}

impl Drop for RtpPorts {
    fn drop(&mut self) {
        self.pool.state().in_use.remove(&self.port);
    }
}

impl PortPool {
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Self {
        let first_even = range.start() + range.start() % 2;
        Self {
            ip,
            range,
            state: Arc::new(Mutex::new(PoolState {
                next: first_even,
                in_use: HashSet::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Pairs currently handed out.
    pub fn in_use(&self) -> usize {
        self.state().in_use.len()
    }

    /// Binds the next free even port and the one above it. Ports another program holds are
    /// skipped; `Exhausted` when the whole range was tried.
    pub fn allocate(&self) -> Result<RtpPorts, MediaError> {
        let start = self.range.start() + self.range.start() % 2;
        let end = *self.range.end();
        if start >= end {
            return Err(MediaError::Exhausted);
        }
        let pairs = usize::from((end - start) / 2 + 1);
        let mut state = self.state();
        for _ in 0..pairs {
            let port = state.next;
            state.next = if port.saturating_add(2) >= end { start } else { port + 2 };
            if state.in_use.contains(&port) || port >= end {
                continue;
            }
            let Ok(rtp) = std::net::UdpSocket::bind(SocketAddr::new(self.ip, port)) else {
                continue;
            };
            let Ok(rtcp) = std::net::UdpSocket::bind(SocketAddr::new(self.ip, port + 1)) else {
                continue;
            };
            let (rtp, rtcp) = match (into_tokio(rtp), into_tokio(rtcp)) {
                (Ok(rtp), Ok(rtcp)) => (rtp, rtcp),
                (Err(e), _) | (_, Err(e)) => return Err(MediaError::Socket(e.to_string())),
            };
            state.in_use.insert(port);
            return Ok(RtpPorts {
                rtp,
                rtcp,
                port,
                pool: self.clone(),
            });
        }
        Err(MediaError::Exhausted)
    }
}

fn into_tokio(socket: std::net::UdpSocket) -> std::io::Result<tokio::net::UdpSocket> {
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}

#[cfg(test)]
#[path = "ports_test.rs"]
mod tests;

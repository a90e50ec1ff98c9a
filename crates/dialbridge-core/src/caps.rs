//! How many connections are open, in all and per source address, and whether one more may be:
//! the caps of the HTTP and SIP-over-TCP accept loops. A taken [`Slot`] gives its place back
//! when dropped, so a connection's end, however it comes, is counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The caps: at most `total` connections, at most `per_source` from one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub total: usize,
    pub per_source: usize,
}

/// The connections open now, shared by an accept loop and its connections.
#[derive(Debug, Default)]
pub struct ConnectionCaps {
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl ConnectionCaps {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map_or(0, |open| open.total)
    }

    /// A place for one more connection from `source`, if `caps` allow it.
    pub fn take(self: &Arc<Self>, source: IpAddr, caps: Caps) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let from_source = open.by_source.get(&source).copied().unwrap_or(0);
        if open.total >= caps.total || from_source >= caps.per_source {
            return None;
        }
        open.total += 1;
        open.by_source.insert(source, from_source + 1);
        Some(Slot {
            caps: self.clone(),
            source,
        })
    }
}

/// One open connection's place, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    caps: Arc<ConnectionCaps>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.caps.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(count) = open.by_source.get_mut(&self.source) {
                *count -= 1;
                if *count == 0 {
                    open.by_source.remove(&self.source);
                }
            }
        }
    }
}

/// Lets something through at most once per period (a warning a flood would repeat for every
/// connection); time is given in milliseconds of any monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    every_ms: u64,
    last: Option<u64>,
}

impl Throttle {
    pub fn new(every_ms: u64) -> Self {
        Self { every_ms, last: None }
    }

    pub fn allow(&mut self, now_ms: u64) -> bool {
        if self
            .last
            .is_some_and(|last| now_ms.saturating_sub(last) < self.every_ms)
        {
            return false;
        }
        self.last = Some(now_ms);
        true
    }
}

/// What an accept loop does about an error of `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// One connection's error (a reset, a pending network error): go on at once.
    Skip,
    /// Out of descriptors, buffers or memory: wait this long rather than spin, and warn when
    /// `warn` (once per period however long it lasts).
    BackOff { wait: Duration, warn: bool },
}

/// An accept loop's back-off and the throttle of its warnings (a refused connection's too).
#[derive(Debug, Clone, Copy)]
pub struct AcceptBackoff {
    wait: Duration,
    warnings: Throttle,
}

impl AcceptBackoff {
    pub fn new(warn_every_ms: u64) -> Self {
        Self {
            wait: Duration::ZERO,
            warnings: Throttle::new(warn_every_ms),
        }
    }

    /// A connection was accepted: the next exhaustion starts over from the shortest wait.
    pub fn accepted(&mut self) {
        self.wait = Duration::ZERO;
    }

    /// `accept` failed with this OS error number: skip it, or back off (20 ms, doubling, at
    /// most 1 s) on EMFILE, ENFILE, ENOBUFS or ENOMEM.
    pub fn failed(&mut self, os_error: Option<i32>, now_ms: u64) -> AcceptError {
        if !matches!(os_error, Some(24 | 23 | 105 | 12)) {
            return AcceptError::Skip;
        }
        self.wait = (self.wait * 2).clamp(Duration::from_millis(20), Duration::from_secs(1));
        AcceptError::BackOff {
            wait: self.wait,
            warn: self.warnings.allow(now_ms),
        }
    }

    /// Whether a warning may be written now (at most one per period).
    pub fn may_warn(&mut self, now_ms: u64) -> bool {
        self.warnings.allow(now_ms)
    }
}

#[cfg(test)]
#[path = "caps_test.rs"]
mod tests;

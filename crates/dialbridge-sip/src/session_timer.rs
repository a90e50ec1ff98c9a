//! One leg's RFC 4028 session timer, sans I/O: who refreshes the session, when our next refresh
//! is due, when the far end's refreshes have stopped for too long. Driven by what the leg's
//! messages say (the answer to our INVITE, the far end's re-INVITEs and UPDATEs) and by its own
//! deadline; time is passed in, as the time since the call began. The call task sends the
//! refreshes and sleeps until [`LegSessionTimer::next_deadline`].

use std::time::Duration;

use crate::message::{Refresher, SessionExpires, SessionTimer};

/// What is due at a leg's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionDue {
    /// Send a refresh now (the next one is scheduled).
    Refresh,
    /// The far end did not refresh in time: the session has expired (the timer is off).
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegSessionTimer {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Off,
    /// We refresh, every `every`; the next one at `next`.
    Refreshing { every: Duration, next: Duration },
    /// The far end refreshes; without one by `expires_at` the session has expired.
    Watching {
        expires_after: Duration,
        expires_at: Duration,
    },
}

impl LegSessionTimer {
    /// The timer the answer to our INVITE set (off when it set none).
    pub fn answered(timer: Option<SessionTimer>, now: Duration) -> Self {
        let state = match timer {
            Some(SessionTimer::WeRefresh { every }) => State::Refreshing {
                every,
                next: now + every,
            },
            Some(SessionTimer::FarEndRefreshes { expires_after }) => State::Watching {
                expires_after,
                expires_at: now + expires_after,
            },
            None => State::Off,
        };
        Self { state }
    }

    /// A re-INVITE or UPDATE of the far end refreshes the session (§10) for the interval it
    /// asks, and says who refreshes from now on: it, unless it names us (we are the server of
    /// its request) or names no one while we are refreshing. One without an interval turns the
    /// far end's refreshing off. Returns whether our answer must name us the refresher.
    pub fn far_end_request(&mut self, asked: Option<SessionExpires>, now: Duration) -> bool {
        match asked {
            Some(expires)
                if expires.refresher == Some(Refresher::Uas) || (expires.refresher.is_none() && self.we_refresh()) =>
            {
                let every = expires.refresh_every();
                self.state = State::Refreshing {
                    every,
                    next: now + every,
                };
                true
            }
            Some(expires) => {
                let expires_after = expires.expires_after();
                self.state = State::Watching {
                    expires_after,
                    expires_at: now + expires_after,
                };
                false
            }
            None => {
                if matches!(self.state, State::Watching { .. }) {
                    self.state = State::Off;
                }
                false
            }
        }
    }

    /// When [`Self::on_deadline`] has something to do; `None` while the timer is off.
    pub fn next_deadline(&self) -> Option<Duration> {
        match self.state {
            State::Off => None,
            State::Refreshing { next, .. } => Some(next),
            State::Watching { expires_at, .. } => Some(expires_at),
        }
    }

    /// What is due at `now`; nothing before the deadline.
    pub fn on_deadline(&mut self, now: Duration) -> Option<SessionDue> {
        match self.state {
            State::Refreshing { every, next } if now >= next => {
                self.state = State::Refreshing {
                    every,
                    next: now + every,
                };
                Some(SessionDue::Refresh)
            }
            State::Watching { expires_at, .. } if now >= expires_at => {
                self.state = State::Off;
                Some(SessionDue::Expired)
            }
            _ => None,
        }
    }

    /// The leg cannot be refreshed any more (it is gone): the timer is off.
    pub fn stop(&mut self) {
        self.state = State::Off;
    }

    pub fn we_refresh(&self) -> bool {
        matches!(self.state, State::Refreshing { .. })
    }
}

#[cfg(test)]
#[path = "session_timer_test.rs"]
mod tests;

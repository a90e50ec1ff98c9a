//! The stream hyper reads a connection through: it feeds [`Framing`] what the client sends,
//! closes the connection when the timeout of its phase runs out (a read error, which hyper
//! answers by closing), and answers an over-long head with the application's own response.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::framing::{Framing, Phase};
use dialbridge_core::caps::Slot;

use crate::listener::Rejection;

/// The read timeouts of each phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) body: Duration,
    pub(crate) idle: Duration,
}

/// An over-long head's answer, being written before the connection ends.
struct Answer {
    bytes: Vec<u8>,
    written: usize,
    /// Written and shut down for writing: what the client still sends is read and dropped
    /// until it closes or this long passes, so the close does not reset the connection before
    /// the client has read the answer.
    lingering: bool,
}

/// How long an answered over-long request is drained before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);

pub(crate) struct Guarded<S> {
    inner: S,
    framing: Framing,
    timeouts: Timeouts,
    phase: Phase,
    /// When the current phase began (a head's or body's timeout runs from there).
    phase_since: Instant,
    /// The last byte read or written (the idle timeout runs from there).
    last_activity: Instant,
    deadline: Pin<Box<Sleep>>,
    reject: Rejection,
    answer: Option<Answer>,
    /// The connection's place under the caps: held as long as the stream lives, an upgraded
    /// WebSocket's included.
    _slot: Slot,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, max_head: usize, timeouts: Timeouts, reject: Rejection, slot: Slot) -> Self {
        let now = Instant::now();
        Self {
            inner,
            framing: Framing::new(max_head),
            timeouts,
            phase: Phase::Idle,
            phase_since: now,
            last_activity: now,
            deadline: Box::pin(tokio::time::sleep_until(now + timeouts.idle)),
            reject,
            answer: None,
            _slot: slot,
        }
    }

    /// Notes activity and a change of phase, and moves the deadline to match.
    fn touched(&mut self) {
        let now = Instant::now();
        self.last_activity = now;
        let phase = self.framing.phase();
        if phase != self.phase {
            self.phase = phase;
            self.phase_since = now;
        }
        let deadline = match self.phase {
            Phase::Idle => now + self.timeouts.idle,
            Phase::Head => self.phase_since + self.timeouts.header,
            Phase::Body => self.phase_since + self.timeouts.body,
            // A far deadline rather than none: the application keeps an upgraded connection.
            Phase::Upgraded => now + Duration::from_secs(86_400 * 365),
        };
        self.deadline.as_mut().reset(deadline);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Guarded<S> {
    /// Writes the over-long head's answer, lingers, then ends the stream for hyper (which then
    /// closes the connection). Bounded: within the header timeout, then [`LINGER`].
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(answer) = self.answer.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        if !answer.lingering {
            while answer.written < answer.bytes.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer.bytes[answer.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                answer.written += n;
            }
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            answer.lingering = true;
            self.deadline.as_mut().reset(Instant::now() + LINGER);
            // Registers the new deadline's wake-up.
            if self.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
        }
        let mut scratch = [0u8; 4096];
        loop {
            let mut drained = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut drained)) {
                Ok(()) if !drained.filled().is_empty() => continue,
                _ => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.answer.is_some() {
            // Answered: the end of the stream for hyper.
            return this.poll_answer(cx);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let what = match this.phase {
                Phase::Head => "header read",
                Phase::Body => "body read",
                Phase::Idle | Phase::Upgraded => "idle",
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, format!("{what} timeout"))));
        }
        let filled_before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[filled_before..];
        if read.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match this.framing.read(read) {
            Ok(()) => {
                this.touched();
                Poll::Ready(Ok(()))
            }
            Err(too_large) => {
                // hyper must not see any of this head.
                buf.set_filled(filled_before);
                this.answer = Some(Answer {
                    bytes: (this.reject)(&too_large.head_start),
                    written: 0,
                    lingering: false,
                });
                let deadline = Instant::now() + this.timeouts.header;
                this.deadline.as_mut().reset(deadline);
                this.poll_answer(cx)
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, bytes))?;
        this.framing.wrote(&bytes[..written]);
        this.touched();
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

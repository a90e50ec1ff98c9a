//! Where each request on a connection begins and ends, from the bytes the client sends: the
//! head (request line and headers, up to a limit), then its body (by `Content-Length` or
//! chunked), then the next head. Pure: the guarded stream feeds it what it reads and asks which
//! timeout applies now.
//!
//! hyper parses the same bytes for real; this only follows the framing, so that an over-long
//! head is answered by the application (hyper would answer an empty 414 or 431 by itself) and
//! each phase gets its own read timeout. Whatever it cannot follow (a head hyper will refuse
//! anyway) it stops following: the connection then only has its idle timeout.

/// At most this many headers in a head (hyper's own default limit).
pub const MAX_HEADERS: usize = 100;
/// How much of an over-long head the application is shown (its request line's start).
pub const HEAD_SAMPLE: usize = 512;
/// The longest chunk-size line followed (hex size plus extensions).
const MAX_CHUNK_LINE: usize = 1024;

/// What the connection is doing, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests, or waiting for a response: the idle timeout.
    Idle,
    /// A head has begun and is not complete: the header-read timeout.
    Head,
    /// A body is being read: the body-read timeout.
    Body,
    /// Upgraded (a WebSocket): no read timeout, the application keeps it.
    Upgraded,
}

/// A head longer than the limit (or with more headers than [`MAX_HEADERS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// Its first bytes (at most [`HEAD_SAMPLE`]): the request line's start.
    pub head_start: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing of the next head read yet.
    Idle,
    Head,
    Body {
        remaining: u64,
    },
    ChunkSize,
    ChunkData {
        remaining: u64,
    },
    /// The CRLF after a chunk's data: how many of its bytes are still due.
    ChunkEnd {
        remaining: u8,
    },
    Trailers,
    /// A head asked to upgrade: the response's status line says whether it did.
    AwaitingUpgrade,
    Upgraded,
    /// Framing no longer followed (hyper refuses what came).
    Lost,
}

/// The framing of one connection's requests.
#[derive(Debug, Clone)]
pub struct Framing {
    state: State,
    /// The current head (or trailers, or chunk-size line) so far.
    buffer: Vec<u8>,
    max_head: usize,
}

impl Framing {
    pub fn new(max_head: usize) -> Self {
        Self {
            state: State::Idle,
            buffer: Vec::new(),
            max_head,
        }
    }

    /// Which timeout applies now.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle | State::AwaitingUpgrade => Phase::Idle,
            // What is no longer followed gets the strictest timeout: hyper refuses it and closes,
            // and a client that keeps the connection open anyway must not hold it long.
            State::Head | State::Trailers | State::Lost => Phase::Head,
            State::Body { .. } | State::ChunkSize | State::ChunkData { .. } | State::ChunkEnd { .. } => Phase::Body,
            State::Upgraded => Phase::Upgraded,
        }
    }

    /// The client sent `bytes`.
    pub fn read(&mut self, mut bytes: &[u8]) -> Result<(), TooLarge> {
        while !bytes.is_empty() {
            bytes = match self.state {
                // Empty lines before a request line are skipped (as hyper does).
                State::Idle => match bytes.iter().position(|&b| b != b'\r' && b != b'\n') {
                    Some(start) => {
                        self.state = State::Head;
                        &bytes[start..]
                    }
                    None => &[],
                },
                State::Head => self.read_head(bytes)?,
                State::Body { remaining } => {
                    let (taken, rest) = take(bytes, remaining);
                    self.state = match remaining - taken {
                        0 => State::Idle,
                        left => State::Body { remaining: left },
                    };
                    rest
                }
                State::ChunkSize => self.read_chunk_size(bytes),
                State::ChunkData { remaining } => {
                    let (taken, rest) = take(bytes, remaining);
                    self.state = match remaining - taken {
                        0 => State::ChunkEnd { remaining: 2 },
                        left => State::ChunkData { remaining: left },
                    };
                    rest
                }
                State::ChunkEnd { remaining } => {
                    let (taken, rest) = take(bytes, u64::from(remaining));
                    self.state = match u64::from(remaining) - taken {
                        0 => State::ChunkSize,
                        left => State::ChunkEnd {
                            remaining: u8::try_from(left).unwrap_or(0),
                        },
                    };
                    rest
                }
                State::Trailers => self.read_trailers(bytes),
                State::AwaitingUpgrade | State::Upgraded | State::Lost => &[],
            };
        }
        Ok(())
    }

    /// The server is sending `bytes` of its response: after a head that asked to upgrade, its
    /// status line says whether the connection now belongs to the application.
    pub fn wrote(&mut self, bytes: &[u8]) {
        if self.state == State::AwaitingUpgrade && !bytes.is_empty() {
            self.state = if bytes.starts_with(b"HTTP/1.1 101") {
                State::Upgraded
            } else {
                State::Idle
            };
        }
    }

    /// Adds to the head; at its end (as httparse, and so hyper, finds it: CRLF or bare LF
    /// line ends) decides what follows. Returns what is left of `bytes`.
    fn read_head<'a>(&mut self, bytes: &'a [u8]) -> Result<&'a [u8], TooLarge> {
        let before = self.buffer.len();
        let room = self.max_head.saturating_sub(before);
        let piece = &bytes[..bytes.len().min(room.saturating_add(1))];
        self.buffer.extend_from_slice(piece);
        // A head can only end at a line end: parse again only when one came.
        if !piece.contains(&b'\n') {
            return self.head_continues(bytes, piece);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&self.buffer) {
            Ok(httparse::Status::Complete(end)) if end <= self.max_head => {
                self.state = next_after_head(request.headers);
                self.buffer.clear();
                Ok(&bytes[end - before..])
            }
            Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => Err(self.too_large()),
            Ok(httparse::Status::Partial) => self.head_continues(bytes, piece),
            Err(_) => {
                self.lose();
                Ok(&[])
            }
        }
    }

    /// The head is not complete after `piece`: over the limit, or waiting for more.
    fn head_continues<'a>(&mut self, bytes: &'a [u8], piece: &[u8]) -> Result<&'a [u8], TooLarge> {
        if self.buffer.len() > self.max_head {
            return Err(self.too_large());
        }
        Ok(&bytes[piece.len()..])
    }

    fn read_chunk_size<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let line_end = bytes.iter().position(|&b| b == b'\n');
        let taken = line_end.map_or(bytes.len(), |at| at + 1);
        self.buffer.extend_from_slice(&bytes[..taken]);
        if line_end.is_none() {
            if self.buffer.len() > MAX_CHUNK_LINE {
                self.lose();
            }
            return &bytes[taken..];
        }
        self.state = match httparse::parse_chunk_size(&self.buffer) {
            Ok(httparse::Status::Complete((_, 0))) => State::Trailers,
            Ok(httparse::Status::Complete((_, size))) => State::ChunkData { remaining: size },
            _ => State::Lost,
        };
        self.buffer.clear();
        &bytes[taken..]
    }

    /// Trailer lines after the last chunk, up to the empty line that ends the request.
    fn read_trailers<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        for (at, &byte) in bytes.iter().enumerate() {
            self.buffer.push(byte);
            if byte == b'\n' {
                let line_was_empty = self.buffer == b"\r\n" || self.buffer == b"\n";
                self.buffer.clear();
                if line_was_empty {
                    self.state = State::Idle;
                    return &bytes[at + 1..];
                }
            } else if self.buffer.len() > self.max_head {
                self.lose();
                return &[];
            }
        }
        &[]
    }

    fn too_large(&mut self) -> TooLarge {
        let head_start = self.buffer[..self.buffer.len().min(HEAD_SAMPLE)].to_vec();
        self.lose();
        TooLarge { head_start }
    }

    fn lose(&mut self) {
        self.state = State::Lost;
        self.buffer = Vec::new();
    }
}

/// What follows a complete head: its body, an upgrade, or the next head.
fn next_after_head(headers: &[httparse::Header<'_>]) -> State {
    let value = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if value("transfer-encoding").is_some_and(|te| te.split(',').any(|c| c.trim() == "chunked")) {
        return State::ChunkSize;
    }
    // A request with a body is followed through its body, whatever else it asks for.
    match value("content-length").map(|length| length.parse::<u64>()) {
        Some(Ok(0)) | None if value("upgrade").is_some() => State::AwaitingUpgrade,
        Some(Ok(0)) | None => State::Idle,
        Some(Ok(remaining)) => State::Body { remaining },
        Some(Err(_)) => State::Lost,
    }
}

/// Splits off at most `limit` bytes: how many were taken, and the rest.
fn take(bytes: &[u8], limit: u64) -> (u64, &[u8]) {
    let taken = usize::try_from(limit).unwrap_or(usize::MAX).min(bytes.len());
    (taken as u64, &bytes[taken..])
}

#[cfg(test)]
#[path = "framing_test.rs"]
mod tests;

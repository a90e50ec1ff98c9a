//! The server's log: one line per event, whatever the event carries. tracing's formatter
//! writes a field's value as it is, so a value from outside with a newline would start a line
//! of its own, looking like the server wrote it. Every event is formatted whole and written at
//! once; this writer escapes each control character in it except the newline that ends it (and
//! the escape that starts a colour, when colours are on).

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Makes the writers of [`OneLine`]s over `W`'s writers.
#[derive(Debug, Clone, Copy)]
pub struct OneLinePerEvent<M> {
    inner: M,
    colours: bool,
}

impl<M> OneLinePerEvent<M> {
    pub fn new(inner: M, colours: bool) -> Self {
        Self { inner, colours }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLinePerEvent<M> {
    type Writer = OneLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLine {
            inner: self.inner.make_writer(),
            colours: self.colours,
        }
    }
}

/// Writes one formatted event, escaped.
pub struct OneLine<W> {
    inner: W,
    colours: bool,
}

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, event: &[u8]) -> io::Result<usize> {
        let (body, end) = match event.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (event, &b""[..]),
        };
        if !body.iter().any(|&b| needs_escape(b, self.colours)) {
            self.inner.write_all(event)?;
            return Ok(event.len());
        }
        let mut escaped = Vec::with_capacity(event.len() + 16);
        for &byte in body {
            if needs_escape(byte, self.colours) {
                escaped.extend(std::ascii::escape_default(byte));
            } else {
                escaped.push(byte);
            }
        }
        escaped.extend_from_slice(end);
        self.inner.write_all(&escaped)?;
        Ok(event.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn needs_escape(byte: u8, colours: bool) -> bool {
    (byte.is_ascii_control() && byte != b'\t' && !(colours && byte == 0x1b)) || byte == 0x7f
}

#[cfg(test)]
#[path = "log_lines_test.rs"]
mod tests;

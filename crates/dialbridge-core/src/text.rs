//! Text that came from outside (a request's parameter, a SIP header), made safe to show: in a
//! log line, an error message, a stored record.

/// At most `max_chars` characters of `input`, every control character escaped (`\n`, `\u{1b}`,
/// …) so it cannot start a line or steer a terminal, and `…` when something was cut.
pub fn printable(input: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max_chars + 8));
    for (taken, c) in input.chars().enumerate() {
        if taken == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How many characters of an outside value a log line or a record keeps.
pub const SHOWN_CHARS: usize = 64;

#[cfg(test)]
#[path = "text_test.rs"]
mod tests;

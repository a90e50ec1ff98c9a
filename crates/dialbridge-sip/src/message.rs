//! Reading the parts of a SIP request the registrar needs, from raw header values (the
//! library's serializer normalises URIs, and a Contact must be kept exactly as the phone
//! wrote it).

use crate::registrar::{ContactSpec, Contacts};

/// The user part of a `From`/`To` header value or a URI: `"Bob" <sip:801@host>;tag=x` → `801`.
pub fn uri_user(value: &str) -> Option<String> {
    let uri = match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if end > start => &value[start + 1..end],
        _ => value.split(';').next().unwrap_or(value),
    };
    let rest = uri
        .trim()
        .strip_prefix("sips:")
        .or_else(|| uri.trim().strip_prefix("sip:"))?;
    let at = rest.find('@')?;
    let user = &rest[..at];
    let user = user.split(':').next().unwrap_or(user);
    (!user.is_empty()).then(|| user.to_owned())
}

/// Splits a header value on commas that are not inside `<>` or quotes.
fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Parses the Contact header values of a REGISTER. `None` when a value is malformed.
pub fn parse_contacts(values: &[String]) -> Option<Contacts> {
    if values.is_empty() {
        return Some(Contacts::Query);
    }
    let entries: Vec<&str> = values.iter().flat_map(|v| split_list(v)).collect();
    if entries.len() == 1 && entries[0] == "*" {
        return Some(Contacts::All);
    }
    let mut list = Vec::new();
    for entry in entries {
        let (uri, params) = match (entry.find('<'), entry.find('>')) {
            (Some(start), Some(end)) if end > start => (&entry[start + 1..end], &entry[end + 1..]),
            _ => match entry.find(';') {
                // Without <>, parameters after the URI belong to the header, not the URI.
                Some(semi) => (&entry[..semi], &entry[semi..]),
                None => (entry, ""),
            },
        };
        let uri = uri.trim();
        if !(uri.starts_with("sip:") || uri.starts_with("sips:")) || uri.contains(char::is_whitespace) {
            return None;
        }
        let expires = params.split(';').find_map(|p| {
            let (name, value) = p.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("expires")
                .then(|| value.trim().parse::<u32>().ok())?
        });
        list.push(ContactSpec {
            uri: uri.to_owned(),
            expires,
        });
    }
    Some(Contacts::List(list))
}

#[cfg(test)]
#[path = "message_test.rs"]
mod tests;

/// Who refreshes a session, as a `Session-Expires` names it: the client or the server of the
/// transaction that carried it (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// A `Session-Expires` value such as `1800;refresher=uac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub seconds: u64,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// `None` without a positive interval; an unknown refresher counts as none named.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';').map(str::trim);
        let seconds: u64 = parts.next()?.parse().ok().filter(|s| *s > 0)?;
        let refresher = parts
            .find_map(|p| {
                let (key, value) = p.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("refresher")
                    .then(|| value.trim().to_ascii_lowercase())
            })
            .and_then(|r| match r.as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => None,
            });
        Some(Self { seconds, refresher })
    }

    /// How often the refresher refreshes: half the interval (§7.2, §10).
    pub fn refresh_every(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.seconds * 500)
    }

    /// How long without a refresh before the session has expired: the interval less a third
    /// of it, at most 32 s less (§10).
    pub fn expires_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds - (self.seconds / 3).min(32))
    }
}

/// A session timer as one leg runs it (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimer {
    /// We refresh, this often.
    WeRefresh { every: std::time::Duration },
    /// The far end refreshes; without a refresh for this long the session has expired.
    FarEndRefreshes { expires_after: std::time::Duration },
}

impl SessionTimer {
    /// The timer the answer to our INVITE sets (we are its client); `None` when it names no
    /// refresher: a 2xx must name one (§9), and we do not guess who it is.
    pub fn of_answer(value: &str) -> Option<Self> {
        let expires = SessionExpires::parse(value)?;
        Some(match expires.refresher? {
            Refresher::Uac => Self::WeRefresh {
                every: expires.refresh_every(),
            },
            Refresher::Uas => Self::FarEndRefreshes {
                expires_after: expires.expires_after(),
            },
        })
    }
}

/// A key pressed, as an INFO carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    /// The RFC 4733 event code: 0-9, `*` 10, `#` 11, A-D 12-15.
    pub event: u8,
    pub duration_ms: u32,
}

/// How long a key is held when the INFO does not say.
const DEFAULT_DIGIT_MS: u32 = 250;

/// The digit of an INFO body, by its content type: `application/dtmf-relay` (`Signal=5`,
/// `Duration=160`, as most phones send it) or `application/dtmf` (just `5`). `None` for any
/// other INFO. The duration is kept within 40 ms-5 s.
pub fn info_digit(content_type: &str, body: &[u8]) -> Option<InfoDigit> {
    let media_type = content_type.split(';').next()?.trim();
    let body = std::str::from_utf8(body).ok()?;
    let (signal, duration) = if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        let field = |name: &str| {
            body.lines().find_map(|line| {
                let (key, value) = line.split_once('=')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
            })
        };
        (field("Signal")?, field("Duration").and_then(|d| d.parse().ok()))
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        (body.trim(), None)
    } else {
        return None;
    };
    let event = match signal {
        "*" => 10,
        "#" => 11,
        s if s.len() == 1 && s.as_bytes()[0].is_ascii_digit() => s.as_bytes()[0] - b'0',
        s if s.len() == 1 && (b'A'..=b'D').contains(&s.as_bytes()[0].to_ascii_uppercase()) => {
            s.as_bytes()[0].to_ascii_uppercase() - b'A' + 12
        }
        // Some phones send the event code itself for * and # (10, 11).
        s => s.parse().ok().filter(|code| (10..=15).contains(code))?,
    };
    Some(InfoDigit {
        event,
        duration_ms: duration.unwrap_or(DEFAULT_DIGIT_MS).clamp(40, 5_000),
    })
}

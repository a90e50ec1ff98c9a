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
mod tests {
    use super::*;

    #[test]
    fn users() {
        assert_eq!(
            uri_user("\"Bob\" <sip:3000001-801@127.0.0.1:5060>;tag=1").as_deref(),
            Some("3000001-801")
        );
        assert_eq!(uri_user("sip:801@h;transport=tcp").as_deref(), Some("801"));
        assert_eq!(uri_user("<sip:u:pw@h>").as_deref(), Some("u"));
        assert_eq!(uri_user("<sip:h>"), None);
        assert_eq!(uri_user("<tel:123>"), None);
    }

    #[test]
    fn contacts() {
        assert_eq!(parse_contacts(&[]), Some(Contacts::Query));
        assert_eq!(parse_contacts(&["*".into()]), Some(Contacts::All));
        let parsed = parse_contacts(&[
            "<sip:801-0x55%41@10.0.0.1:5070;transport=TCP>;expires=120;+sip.instance=\"<urn:x,y>\"".into(),
            "sip:802@h;expires=30, \"A, B\" <sip:803@h>".into(),
        ]);
        assert_eq!(
            parsed,
            Some(Contacts::List(vec![
                ContactSpec {
                    uri: "sip:801-0x55%41@10.0.0.1:5070;transport=TCP".into(),
                    expires: Some(120)
                },
                ContactSpec {
                    uri: "sip:802@h".into(),
                    expires: Some(30)
                },
                ContactSpec {
                    uri: "sip:803@h".into(),
                    expires: None
                },
            ]))
        );
        assert_eq!(parse_contacts(&["<http://x>".into()]), None);
        assert_eq!(parse_contacts(&["<sip:a b@h>".into()]), None);
    }
}

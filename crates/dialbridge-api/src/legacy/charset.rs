//! Legacy parameters in the charset the client wrote them in. Older Chinese CRMs percent-encode
//! GBK; most say so (a `charset` parameter, or the `Content-Type`'s), some do not. Replies stay
//! UTF-8 (spec §1).
//!
//! The pairs are split and percent-decoded here, to bytes, because `serde_urlencoded` and
//! `form_urlencoded` decode straight to UTF-8 (lossily): the charset must be applied to the
//! bytes first.

use encoding_rs::{Encoding, GB18030, UTF_8, WINDOWS_1252};

/// `application/x-www-form-urlencoded` text as (name, value) byte pairs: `+` is a space, `%XX`
/// a byte, a pair without `=` has an empty value.
pub(crate) fn raw_pairs(input: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            (unescape(name), unescape(value))
        })
        .collect()
}

fn unescape(part: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = part.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// An encoding by its label, when it is one legacy parameters can be in: ASCII-compatible (a
/// declared UTF-16 would turn every parameter into garbage).
fn by_label(label: &[u8]) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim_ascii()).filter(|encoding| encoding.is_ascii_compatible())
}

/// The charset a request's `charset` parameter declares; `None` without one (or with one
/// nobody knows).
pub(crate) fn parameter<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Option<&'static Encoding> {
    pairs
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"charset"))
        .and_then(|(_, label)| by_label(label))
}

/// The `charset=` parameter of a `Content-Type` value (it describes that body only).
pub(crate) fn content_type_charset(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| by_label(value.trim().trim_matches('"').as_bytes()))
            .flatten()
    })
}

/// The charset of values that declare none, decided once for the whole request (a GBK value
/// can happen to be valid UTF-8: `贸` is `ó`): UTF-8 when they all are, else GB18030 (GBK's
/// superset) when every one that is not is that, else UTF-8 (with replacement characters).
pub(crate) fn guess<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> &'static Encoding {
    let mut not_utf8 = values
        .into_iter()
        .filter(|v| std::str::from_utf8(v).is_err())
        .peekable();
    if not_utf8.peek().is_none() {
        return UTF_8;
    }
    if not_utf8.all(|v| GB18030.decode_without_bom_handling_and_without_replacement(v).is_some()) {
        GB18030
    } else {
        UTF_8
    }
}

/// Text from a client's bytes in `encoding` (malformed sequences replaced). A Latin-1 / ASCII
/// declaration over bytes that are UTF-8 is read as UTF-8: common HTTP libraries declare
/// ISO-8859-1 by default over percent-encoded UTF-8.
pub(crate) fn decode(bytes: &[u8], encoding: &'static Encoding) -> String {
    if encoding == WINDOWS_1252 {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return text.to_owned();
        }
    }
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}

#[cfg(test)]
#[path = "charset_test.rs"]
mod tests;

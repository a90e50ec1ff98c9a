//! Legacy parameters in the charset the client wrote them in. Older Chinese CRMs percent-encode
//! GBK; most say so (a `charset` parameter, or the `Content-Type`'s), some do not. Replies stay
//! UTF-8 (spec §1).
//!
//! The pairs are split and percent-decoded here, to bytes, because `serde_urlencoded` and
//! `form_urlencoded` decode straight to UTF-8 (lossily): the charset must be applied to the
//! bytes first.

use encoding_rs::{Encoding, GB18030, UTF_8};

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

/// The charset a request declares: its `charset` parameter, else its `Content-Type`'s; `None`
/// when it declares none (or one nobody knows).
pub(crate) fn declared<'a>(
    pairs: impl IntoIterator<Item = &'a (Vec<u8>, Vec<u8>)>,
    content_type: Option<&str>,
) -> Option<&'static Encoding> {
    let parameter = pairs
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"charset"))
        .and_then(|(_, label)| Encoding::for_label(label.trim_ascii()));
    parameter.or_else(|| content_type.and_then(content_type_charset))
}

/// The `charset=` parameter of a `Content-Type` value.
pub(crate) fn content_type_charset(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| Encoding::for_label(value.trim().trim_matches('"').as_bytes()))
            .flatten()
    })
}

/// Text from a client's bytes: in the declared charset (malformed sequences replaced); without
/// one, UTF-8 when the bytes are UTF-8, else GB18030 (GBK's superset) when they are that, else
/// UTF-8 with replacement characters.
pub(crate) fn decode(bytes: &[u8], declared: Option<&'static Encoding>) -> String {
    if let Some(encoding) = declared {
        return encoding.decode_without_bom_handling(bytes).0.into_owned();
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .unwrap_or_else(|| UTF_8.decode_without_bom_handling(bytes).0)
        .into_owned()
}

#[cfg(test)]
#[path = "charset_test.rs"]
mod tests;

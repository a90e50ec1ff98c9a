//! Every reader of SIP text from outside, run over one input: the entry point of the property
//! tests and of the `cargo fuzz` target (`fuzz/`). What must hold is that none panics or hangs.

use rsipstack::sip::SipMessage;

use crate::digest::DigestResponse;
use crate::message::{info_digit, parse_contacts, uri_user, SessionExpires};

/// Parses `bytes` as a SIP message the way the stack receives one, then runs the stack's own
/// checks and header readers over what parsed.
pub fn sip_message(bytes: &[u8]) {
    let Ok(message) = SipMessage::try_from(bytes) else {
        return;
    };
    let (headers, body) = match &message {
        SipMessage::Request(request) => {
            let _ = crate::stack::refusal_of_malformed(request);
            (request.headers.iter().collect::<Vec<_>>(), &request.body)
        }
        SipMessage::Response(response) => (response.headers.iter().collect(), &response.body),
    };
    let mut contacts = Vec::new();
    let mut content_type = String::new();
    for header in headers {
        let (name, value) = (header.name(), header.value());
        let _ = uri_user(value);
        let _ = SessionExpires::parse(value);
        let _ = DigestResponse::parse(value);
        if name.eq_ignore_ascii_case("Contact") || name == "m" {
            contacts.push(value.to_owned());
        }
        if name.eq_ignore_ascii_case("Content-Type") || name == "c" {
            content_type = value.to_owned();
        }
    }
    let _ = parse_contacts(&contacts);
    let _ = info_digit(&content_type, body);
}

/// The readers of single header values, for inputs that are not whole messages.
pub fn header_value(value: &str) {
    let _ = uri_user(value);
    let _ = SessionExpires::parse(value);
    let _ = DigestResponse::parse(value);
    let _ = parse_contacts(&[value.to_owned()]);
    let _ = info_digit("application/dtmf-relay", value.as_bytes());
    let _ = info_digit("application/dtmf", value.as_bytes());
}

#[cfg(test)]
#[path = "fuzzing_test.rs"]
mod tests;

//! How a fresh process ends a leg that a crashed one left up: the request that ends it (a
//! CANCEL while it rings, a BYE once it answered), built while the leg runs and kept by the
//! service beside the call, then sent by the restarted server.
//!
//! Written by hand because rsipstack keeps its dialogs in memory only (its snapshots restore
//! confirmed dialogs into a running stack and are not serialisable); the kept form here is the
//! request's own SIP text, so nothing but SIP is needed to read it back.

use std::net::SocketAddr;
use std::time::Duration;

use rsipstack::sip::{Header, HeadersExt, Method, Request, SipMessage};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_via_branch;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;

use crate::stack::{to_library_transport, SipError, SipStack};
use crate::SipTransport;

/// A BYE's CSeq is this far above the last one known when it was built: requests sent in the
/// dialog since (session refreshes, re-INVITEs) must not make it look old (RFC 3261 §12.2.2).
const BYE_CSEQ_MARGIN: u32 = 1_000;

/// The request that ends a leg, as a restarted server sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegEnding {
    /// The request's SIP text. A CANCEL carries the INVITE's own Via (it must match the INVITE's
    /// transaction); a BYE none (the sender adds its own).
    pub request: String,
    pub destination: SocketAddr,
    pub transport: SipTransport,
}

/// A header value without the parameter `name` (`;tag=…`, `;received=…`).
fn without_param(value: &str, name: &str) -> String {
    value
        .split(';')
        .enumerate()
        .filter(|(i, part)| {
            *i == 0 || {
                let key = part.split('=').next().unwrap_or("").trim();
                !key.eq_ignore_ascii_case(name)
            }
        })
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join(";")
}

/// RFC 3261 §9.1: the CANCEL of an INVITE that got `provisional`: its Request-URI, the
/// INVITE's top Via (as echoed in the response, without what the far end added), From,
/// Call-ID, the CSeq number, and To without the far end's tag.
pub(crate) fn cancel_of(
    request_uri: &str,
    provisional: &rsipstack::sip::Response,
    routes: &[String],
) -> Option<String> {
    let via = provisional.via_header().ok()?.value().to_owned();
    let via = without_param(&without_param(&via, "received"), "rport");
    let from = provisional.from_header().ok()?.value().to_owned();
    let to = without_param(provisional.to_header().ok()?.value(), "tag");
    let call_id = provisional.call_id_header().ok()?.value().to_owned();
    let cseq = provisional.cseq_header().ok()?.value().to_owned();
    let number = cseq.split_whitespace().next()?;
    let mut text = format!(
        "CANCEL {request_uri} SIP/2.0\r\nVia: {via};rport\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {number} CANCEL\r\n"
    );
    for route in routes {
        text.push_str(&format!("Route: {route}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Some(text)
}

/// The BYE of a confirmed dialog (RFC 3261 §15.1.1, §12.2.1.1): to the far end's target
/// through its route set, with both tags.
pub(crate) fn bye_of(target: &str, from: &str, to: &str, call_id: &str, last_cseq: u32, routes: &[String]) -> String {
    let cseq = last_cseq.saturating_add(BYE_CSEQ_MARGIN);
    let mut text = format!(
        "BYE {target} SIP/2.0\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} BYE\r\n"
    );
    for route in routes {
        text.push_str(&format!("Route: {route}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}

impl SipStack {
    /// Sends a kept [`LegEnding`] and returns the far end's final status, `None` when none
    /// came within `wait`.
    pub async fn end_leg(&self, ending: &LegEnding, wait: Duration) -> Result<Option<u16>, SipError> {
        let endpoint = self.dialog_layer().endpoint.clone();
        let mut request = match SipMessage::try_from(ending.request.as_bytes()) {
            Ok(SipMessage::Request(request)) => request,
            _ => return Err(SipError::Stack("a kept leg ending is not a SIP request".into())),
        };
        let destination = SipAddr {
            r#type: Some(to_library_transport(ending.transport)),
            addr: ending.destination.into(),
        };
        if request.method != Method::Cancel {
            let (connection, _) = endpoint.transport_layer.lookup(&destination, None).await?;
            let via = endpoint.get_via(Some(connection.get_addr().clone()), Some(make_via_branch()))?;
            prepend_via(&mut request, via);
        }
        let key = TransactionKey::from_request(&request, TransactionRole::Client)?;
        let mut tx = Transaction::new_client(key, request, endpoint, None);
        tx.destination = Some(destination);
        crate::client::final_status(tx, wait).await
    }
}

fn prepend_via(request: &mut Request, via: rsipstack::sip::typed::Via) {
    let mut headers: Vec<Header> = vec![Header::Via(via.into())];
    headers.extend(request.headers.iter().cloned());
    request.headers = headers.into();
}

#[cfg(test)]
#[path = "ending_test.rs"]
mod tests;

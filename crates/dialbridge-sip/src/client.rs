//! Requests we send to carriers outside any call: keepalive OPTIONS and the REGISTER of a
//! trunk that must be registered. Like `stack.rs`, this file knows rsipstack; nothing it
//! returns does.

use std::net::SocketAddr;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::sip::{Header, Method, SipMessage};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::{make_tag, make_via_branch};
use rsipstack::transport::SipAddr;

use crate::stack::{to_library_transport, SipError, SipStack};
use crate::SipTransport;

/// A carrier as the requests of this module address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierTarget {
    /// Where to send (the resolved trunk or outbound proxy address).
    pub destination: SocketAddr,
    pub transport: SipTransport,
    /// The carrier's host (name or address, with port) written into Request-URIs.
    pub host: String,
}

impl CarrierTarget {
    fn uri(&self, user: Option<&str>) -> Result<rsipstack::sip::Uri, SipError> {
        let transport = match self.transport {
            SipTransport::Udp => "",
            SipTransport::Tcp => ";transport=tcp",
        };
        let user = user.map(|u| format!("{u}@")).unwrap_or_default();
        let text = format!("sip:{user}{}{transport}", self.host);
        rsipstack::sip::Uri::try_from(text.as_str()).map_err(|_| SipError::BadUri(text))
    }

    fn sip_addr(&self) -> SipAddr {
        SipAddr {
            r#type: Some(to_library_transport(self.transport)),
            addr: self.destination.into(),
        }
    }
}

/// The final status code of a request, or `None` when none came within `wait`.
pub(crate) async fn final_status(mut tx: Transaction, wait: Duration) -> Result<Option<u16>, SipError> {
    tx.send().await?;
    let answer = async {
        while let Some(message) = tx.receive().await {
            if let SipMessage::Response(response) = message {
                let code = u16::from(response.status_code.clone());
                if code >= 200 {
                    return Some(code);
                }
            }
        }
        None
    };
    Ok(tokio::time::timeout(wait, answer).await.ok().flatten())
}

impl SipStack {
    fn endpoint(&self) -> EndpointInnerRef {
        self.dialog_layer().endpoint.clone()
    }

    /// Sends an OPTIONS outside any dialog and returns the final status code, `None` when
    /// none came within `wait`; an error when it could not be sent.
    pub async fn options(&self, target: &CarrierTarget, wait: Duration) -> Result<Option<u16>, SipError> {
        let endpoint = self.endpoint();
        let request_uri = target.uri(None)?;
        let our_uri = {
            let text = format!("sip:dialbridge@{}:{}", self.public_ip(), self.local_addr().port());
            rsipstack::sip::Uri::try_from(text.as_str()).map_err(|_| SipError::BadUri(text))?
        };
        let (connection, _) = endpoint.transport_layer.lookup(&target.sip_addr(), None).await?;
        let via = endpoint.get_via(Some(connection.get_addr().clone()), Some(make_via_branch()))?;
        let from = rsipstack::sip::typed::From {
            display_name: None,
            uri: our_uri,
            params: vec![],
        }
        .with_tag(make_tag());
        let to = rsipstack::sip::typed::To {
            display_name: None,
            uri: request_uri.clone(),
            params: vec![],
        };
        let mut request = endpoint.make_request(Method::Options, request_uri, via, from, to, 1, None);
        request.headers.unique_push(Header::Accept("application/sdp".into()));
        let key = TransactionKey::from_request(&request, TransactionRole::Client)?;
        let mut tx = Transaction::new_client(key, request, endpoint, None);
        tx.destination = Some(target.sip_addr());
        final_status(tx, wait).await
    }

    /// A registration of ours with a carrier, as `user` with `password`.
    pub fn carrier_registration(&self, target: CarrierTarget, user: String, password: String) -> CarrierRegistration {
        let mut registration = rsipstack::dialog::registration::Registration::new(
            self.endpoint(),
            Some(Credential {
                username: user.clone(),
                password,
                realm: None,
                auth_username: None,
            }),
        );
        // Sent to the address we resolved, with the carrier's host kept in the headers.
        registration.outbound_proxy = Some(target.destination);
        CarrierRegistration {
            registration,
            target,
            user,
        }
    }
}

/// What a REGISTER got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterAnswer {
    Registered { granted_secs: u32 },
    IntervalTooBrief { min_expires: Option<u32> },
    Refused(u16),
    NoAnswer,
}

/// One registration binding with a carrier: keeps its Call-ID and CSeq across refreshes, as
/// RFC 3261 §10.2.4 asks.
pub struct CarrierRegistration {
    registration: rsipstack::dialog::registration::Registration,
    target: CarrierTarget,
    user: String,
}

impl CarrierRegistration {
    /// Sends a REGISTER asking for `expires` seconds (0 un-registers), answering a digest
    /// challenge with the credentials; waits at most `wait` for the outcome.
    pub async fn register(&mut self, expires: u32, wait: Duration) -> Result<RegisterAnswer, SipError> {
        let server = self.target.uri(None)?;
        let sent = tokio::time::timeout(wait, self.registration.register(server, Some(expires))).await;
        let response = match sent {
            Err(_) => return Ok(RegisterAnswer::NoAnswer),
            // The transaction ended without a final response (its timer fired).
            Ok(Err(rsipstack::Error::DialogError(..))) => return Ok(RegisterAnswer::NoAnswer),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(response)) => response,
        };
        let code = u16::from(response.status_code.clone());
        Ok(match code {
            200..=299 => RegisterAnswer::Registered {
                granted_secs: self.registration.expires(),
            },
            423 => RegisterAnswer::IntervalTooBrief {
                min_expires: response.headers.iter().find_map(|h| match h {
                    Header::MinExpires(v) => v.value().trim().parse().ok(),
                    _ => None,
                }),
            },
            _ => RegisterAnswer::Refused(code),
        })
    }

    /// The address-of-record registered (for logs).
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.target.host)
    }
}

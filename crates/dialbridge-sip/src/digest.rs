//! Server-side digest authentication (RFC 3261 §22, RFC 7616 algorithms, RFC 8760 for SIP).
//!
//! Written here because rsipstack only offers a hash compare: a registrar also needs nonces it
//! can trust without storing them (HMAC-signed, with an expiry, so a restart or a second node
//! accepts them), `stale=true` for an expired nonce, `qop=auth` with nonce-count replay checks,
//! and a constant-time compare.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if text.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// The algorithms a registrar challenges with, in the order offered, and the only ones it
/// accepts. MD5 alone by default: phones answer the first challenge they know, but some
/// (baresip 1.0) refuse a whole 401 that carries one they do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestOffer {
    first: Algorithm,
    second: Option<Algorithm>,
}

impl Default for DigestOffer {
    fn default() -> Self {
        Self {
            first: Algorithm::Md5,
            second: None,
        }
    }
}

impl DigestOffer {
    /// `MD5`, `SHA-256`, or both separated by a comma in the order to offer them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut algorithms = text
            .split(',')
            .map(str::trim)
            .map(|name| Algorithm::parse(name).ok_or_else(|| format!("{name:?} is not MD5 or SHA-256")));
        let first = algorithms.next().ok_or("at least one algorithm")??;
        let second = algorithms.next().transpose()?;
        if algorithms.next().is_some() || second == Some(first) {
            return Err(format!("{text:?}: each of MD5 and SHA-256 at most once"));
        }
        Ok(Self { first, second })
    }

    pub fn algorithms(self) -> impl Iterator<Item = Algorithm> {
        std::iter::once(self.first).chain(self.second)
    }

    fn offers(self, algorithm: Algorithm) -> bool {
        self.algorithms().any(|a| a == algorithm)
    }
}

impl std::fmt::Display for DigestOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.algorithms().map(Algorithm::name).collect();
        f.write_str(&names.join(","))
    }
}

/// The fields of an `Authorization` / `Proxy-Authorization` digest header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    #[error("not a Digest credential")]
    NotDigest,
    #[error("malformed Digest parameters")]
    Malformed,
    #[error("missing Digest parameter {0}")]
    Missing(&'static str),
}

impl DigestResponse {
    /// Parses `Digest username="…", realm="…", …` (quoted or token values, any order).
    pub fn parse(header_value: &str) -> Result<Self, DigestParseError> {
        let rest = header_value.trim();
        let scheme_end = rest.find(char::is_whitespace).ok_or(DigestParseError::NotDigest)?;
        if !rest[..scheme_end].eq_ignore_ascii_case("Digest") {
            return Err(DigestParseError::NotDigest);
        }
        let mut params: HashMap<String, String> = HashMap::new();
        let mut chars = rest[scheme_end..].chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut name = String::new();
            while let Some(c) = chars.peek().copied() {
                if c == '=' || c.is_whitespace() {
                    break;
                }
                name.push(c);
                chars.next();
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('=') || name.is_empty() {
                return Err(DigestParseError::Malformed);
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next().ok_or(DigestParseError::Malformed)?),
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(DigestParseError::Malformed);
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ',' || c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            params.insert(name.to_ascii_lowercase(), value);
        }
        let mut take = |name: &'static str| params.remove(name);
        Ok(Self {
            username: take("username").ok_or(DigestParseError::Missing("username"))?,
            realm: take("realm").ok_or(DigestParseError::Missing("realm"))?,
            nonce: take("nonce").ok_or(DigestParseError::Missing("nonce"))?,
            uri: take("uri").ok_or(DigestParseError::Missing("uri"))?,
            response: take("response").ok_or(DigestParseError::Missing("response"))?,
            algorithm: take("algorithm"),
            qop: take("qop"),
            nc: take("nc"),
            cnonce: take("cnonce"),
            opaque: take("opaque"),
        })
    }
}

/// The expected `response` for these credentials (RFC 7616 §3.4.1, qop `auth` or none).
pub fn expected_response(algorithm: Algorithm, password: &str, method: &str, creds: &DigestResponse) -> Option<String> {
    let ha1 = algorithm.hash(&format!("{}:{}:{password}", creds.username, creds.realm));
    let ha2 = algorithm.hash(&format!("{method}:{}", creds.uri));
    match creds.qop.as_deref() {
        Some(qop) if qop.eq_ignore_ascii_case("auth") => {
            let nc = creds.nc.as_deref()?;
            let cnonce = creds.cnonce.as_deref()?;
            Some(algorithm.hash(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", creds.nonce)))
        }
        Some(_) => None,
        None => Some(algorithm.hash(&format!("{ha1}:{}:{ha2}", creds.nonce))),
    }
}

/// Issues and checks nonces without storing them: `hex(issued_secs ‖ random ‖ HMAC)`.
pub struct NonceIssuer {
    key: [u8; 32],
    lifetime: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Ours, but expired: re-challenge with `stale=true` (the password was right, the phone
    /// just needs a fresh nonce).
    Expired,
    /// Not issued by us (or tampered with).
    Forged,
}

const NONCE_SALT: &[u8] = b"dialbridge-sip-nonce";
const MAC_LEN: usize = 16;

impl NonceIssuer {
    pub fn new(server_key: &[u8; 32], lifetime: Duration) -> Self {
        // A key of its own, so a nonce's MAC says nothing about keys used elsewhere.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(server_key).expect("HMAC takes any key length");
        mac.update(NONCE_SALT);
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Self { key, lifetime }
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    pub fn issue(&self, now_secs: u64) -> String {
        let mut body = [0u8; 16];
        body[..8].copy_from_slice(&now_secs.to_be_bytes());
        body[8..].copy_from_slice(&rand::random::<[u8; 8]>());
        let mut nonce = hex::encode(body);
        nonce.push_str(&hex::encode(self.mac(&body)));
        nonce
    }

    pub fn check(&self, nonce: &str, now_secs: u64) -> NonceCheck {
        let Ok(bytes) = hex::decode(nonce) else {
            return NonceCheck::Forged;
        };
        if bytes.len() != 16 + MAC_LEN {
            return NonceCheck::Forged;
        }
        let (body, mac) = bytes.split_at(16);
        if !bool::from(self.mac(body).ct_eq(mac)) {
            return NonceCheck::Forged;
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&body[..8]);
        let issued = u64::from_be_bytes(issued);
        if issued > now_secs.saturating_add(5) || now_secs.saturating_sub(issued) > self.lifetime.as_secs() {
            NonceCheck::Expired
        } else {
            NonceCheck::Valid
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

/// The highest nonce count accepted per nonce, so a captured request cannot be replayed.
/// Entries are dropped once their nonce has expired.
#[derive(Default)]
pub struct NonceCounts {
    seen: HashMap<String, (u32, u64)>,
}

impl NonceCounts {
    /// Records `nc` for `nonce`; false when it is not higher than one already accepted.
    pub fn accept(&mut self, nonce: &str, nc: u32, now_secs: u64) -> bool {
        match self.seen.get_mut(nonce) {
            Some((last, _)) if nc <= *last => false,
            Some((last, _)) => {
                *last = nc;
                true
            }
            None => {
                self.seen.insert(nonce.to_owned(), (nc, now_secs));
                true
            }
        }
    }

    pub fn sweep(&mut self, now_secs: u64, lifetime: Duration) {
        self.seen
            .retain(|_, (_, first)| now_secs.saturating_sub(*first) <= lifetime.as_secs() + 5);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// The verdict on one digest response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Right password, expired nonce: challenge again with `stale=true`.
    Stale,
    Rejected(RejectReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    ForgedNonce,
    WrongRealm,
    UnsupportedAlgorithm,
    QopRequired,
    Replayed,
    WrongPassword,
}

/// What a response must match besides the password: our realm, what we offered, and the
/// request's method.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub realm: &'a str,
    pub offer: DigestOffer,
    pub method: &'a str,
}

/// Checks a digest response against the account's password.
pub fn verify(
    issuer: &NonceIssuer,
    counts: &mut NonceCounts,
    expected: Expected<'_>,
    creds: &DigestResponse,
    password: &str,
    now_secs: u64,
) -> Verdict {
    let Expected { realm, offer, method } = expected;
    let nonce = issuer.check(&creds.nonce, now_secs);
    if nonce == NonceCheck::Forged {
        return Verdict::Rejected(RejectReason::ForgedNonce);
    }
    if creds.realm != realm {
        return Verdict::Rejected(RejectReason::WrongRealm);
    }
    let Some(algorithm) = Algorithm::parse(creds.algorithm.as_deref().unwrap_or("MD5")).filter(|a| offer.offers(*a))
    else {
        return Verdict::Rejected(RejectReason::UnsupportedAlgorithm);
    };
    if !creds.qop.as_deref().is_some_and(|q| q.eq_ignore_ascii_case("auth")) {
        return Verdict::Rejected(RejectReason::QopRequired);
    }
    let Some(expected) = expected_response(algorithm, password, method, creds) else {
        return Verdict::Rejected(RejectReason::QopRequired);
    };
    let given = creds.response.to_ascii_lowercase();
    if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return Verdict::Rejected(RejectReason::WrongPassword);
    }
    if nonce == NonceCheck::Expired {
        return Verdict::Stale;
    }
    let Some(nc) = creds.nc.as_deref().and_then(|nc| u32::from_str_radix(nc, 16).ok()) else {
        return Verdict::Rejected(RejectReason::QopRequired);
    };
    if !counts.accept(&creds.nonce, nc, now_secs) {
        return Verdict::Rejected(RejectReason::Replayed);
    }
    Verdict::Accepted
}

/// `WWW-Authenticate` values for a challenge: one per algorithm offered, in its order.
pub fn challenges(realm: &str, nonce: &str, stale: bool, offer: DigestOffer) -> Vec<String> {
    offer
        .algorithms()
        .map(|algorithm| {
            let mut value = format!(
                "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                algorithm.name()
            );
            if stale {
                let _ = write!(value, ", stale=true");
            }
            value
        })
        .collect()
}

#[cfg(test)]
#[path = "digest_test.rs"]
mod tests;

//! The SIP stack against real peers on 127.0.0.1: SIPp phones registering (UDP and TCP), and
//! raw datagrams for what SIPp cannot do (replaying a request, an expired nonce).

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dialbridge_sip::digest::{expected_response, Algorithm, DigestResponse};
use dialbridge_sip::{AccountDirectory, RegistrarSettings, SipConfig, SipStack, SipTransport};
use dialbridge_testkit::{skip_without_sipp, SippBuilder};

struct Accounts(HashMap<String, String>);

impl AccountDirectory for Accounts {
    fn sip_password(&self, aor: &str) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        let found = self.0.get(aor).cloned();
        Box::pin(async move { found })
    }
}

async fn start(registrar: RegistrarSettings) -> SipStack {
    start_with(registrar, Default::default()).await
}

async fn start_with(registrar: RegistrarSettings, unsolicited: dialbridge_sip::UnsolicitedSettings) -> SipStack {
    let accounts = Accounts(HashMap::from([
        ("3000001-801".to_owned(), "secret801".to_owned()),
        ("3000002-801".to_owned(), "other801".to_owned()),
    ]));
    let config = SipConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        transports: vec![SipTransport::Udp, SipTransport::Tcp],
        public_ip: None,
        user_agent: "dialbridge-test".into(),
        call_id_domain: "dialbridge.test".into(),
        registrar,
        t1: Duration::from_millis(100),
        server_key: [3; 32],
        unsolicited,
        tcp: Default::default(),
    };
    SipStack::start(config, Arc::new(accounts)).await.unwrap()
}

async fn register(
    stack: &SipStack,
    user: &str,
    auth_user: &str,
    password: &str,
    expect: u16,
    tcp: bool,
) -> (bool, String) {
    let mut builder = SippBuilder::new("register.xml", Some(stack.local_addr()))
        .args(["-s", user, "-au", auth_user, "-ap", password, "-m", "1"])
        .set("expect", expect);
    if tcp {
        builder = builder.args(["-t", "t1"]);
    }
    let mut sipp = builder.spawn_async().await;
    let ok = sipp.finish_async(Duration::from_secs(30)).await;
    (ok, sipp.logs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_register_with_digest_and_wrong_ones_are_refused() {
    if skip_without_sipp() {
        return;
    }
    let stack = start(RegistrarSettings::default()).await;
    let s = &stack;
    let (ok, logs) = register(s, "3000001-801", "3000001-801", "secret801", 200, false).await;
    assert!(ok, "{logs}");
    let registration = stack.registration("3000001-801").expect("registered");
    assert!(
        registration.contact.starts_with("sip:3000001-801@127.0.0.1:"),
        "{registration:?}"
    );
    assert_eq!(registration.transport, SipTransport::Udp);
    assert!(
        stack.registration("3000002-801").is_none(),
        "the other enterprise's 801 is another account"
    );

    let (ok, logs) = register(s, "3000002-801", "3000002-801", "secret801", 403, false).await;
    assert!(ok, "a wrong password is refused with 403: {logs}");
    assert!(stack.registration("3000002-801").is_none());

    // Valid credentials of one account, used for another account's AOR.
    let (ok, logs) = register(s, "3000002-801", "3000001-801", "secret801", 403, false).await;
    assert!(ok, "To user must be the authenticated user: {logs}");
    assert!(stack.registration("3000002-801").is_none());
    stack.shutdown().await;
}

/// One phone behind an address with a wrong password, again and again until it is locked out:
/// another extension registering from the same address is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_out_phone_does_not_lock_out_its_neighbours() {
    if skip_without_sipp() {
        return;
    }
    let stack = start(RegistrarSettings {
        max_failures: 3,
        ..RegistrarSettings::default()
    })
    .await;
    let s = &stack;
    for _ in 0..3 {
        let (ok, logs) = register(s, "3000002-801", "3000002-801", "wrong", 403, false).await;
        assert!(ok, "{logs}");
    }
    // Locked out from this address, the right password too: refused at once (no challenge,
    // which the scenario does not expect, so only the refusal is checked).
    let (_, logs) = register(s, "3000002-801", "3000002-801", "other801", 403, false).await;
    assert!(logs.contains("403 Forbidden"), "{logs}");
    assert!(stack.registration("3000002-801").is_none());
    let (ok, logs) = register(s, "3000001-801", "3000001-801", "secret801", 200, false).await;
    assert!(ok, "another extension from the same address registers: {logs}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_registers_over_tcp_and_is_reached_over_its_connection() {
    if skip_without_sipp() {
        return;
    }
    let stack = start(RegistrarSettings::default()).await;
    let s = &stack;
    let (ok, logs) = register(s, "3000001-801", "3000001-801", "secret801", 200, true).await;
    assert!(ok, "{logs}");
    let registration = stack.registration("3000001-801").expect("registered");
    assert_eq!(registration.transport, SipTransport::Tcp);
    assert!(
        registration.contact.to_ascii_lowercase().contains("transport=tcp"),
        "{registration:?}"
    );
    // SIPp over TCP advertises a port it does not listen on; the call goes back over the
    // registration's connection, whose peer address is what we keep.
    assert!(
        !registration
            .contact
            .contains(&format!(":{}", registration.destination.port())),
        "{registration:?}"
    );
    stack.shutdown().await;
}

/// A minimal phone over a raw UDP socket.
struct RawPhone {
    socket: UdpSocket,
    server: SocketAddr,
}

impl RawPhone {
    fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Self { socket, server }
    }

    fn register(&self, cseq: u32, authorization: Option<&str>) -> String {
        self.register_with_expires(cseq, authorization, 300)
    }

    fn register_with_expires(&self, cseq: u32, authorization: Option<&str>, expires: u32) -> String {
        let local = self.socket.local_addr().unwrap();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let message = format!(
            "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{cseq}-raw;rport\r\n\
             From: <sip:3000001-801@{server}>;tag=raw1\r\nTo: <sip:3000001-801@{server}>\r\nCall-ID: raw-call@test\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:3000001-801@{local}>;expires={expires}\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            server = self.server
        );
        self.socket.send_to(message.as_bytes(), self.server).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = self.socket.recv(&mut buf).expect("an answer");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 100") {
                return text;
            }
        }
    }
}

fn nonce_of(response: &str) -> String {
    let start = response.find("nonce=\"").expect("a nonce") + 7;
    response[start..].split('"').next().unwrap().to_owned()
}

fn authorization(nonce: &str, nc: u32, server: SocketAddr) -> String {
    let mut creds = DigestResponse {
        username: "3000001-801".into(),
        realm: "dialbridge".into(),
        nonce: nonce.into(),
        uri: format!("sip:{server}"),
        qop: Some("auth".into()),
        nc: Some(format!("{nc:08x}")),
        cnonce: Some("raw".into()),
        ..DigestResponse::default()
    };
    creds.response = expected_response(Algorithm::Sha256, "secret801", "REGISTER", &creds).unwrap();
    format!(
        "Digest username=\"3000001-801\", realm=\"dialbridge\", nonce=\"{nonce}\", uri=\"{}\", response=\"{}\", algorithm=SHA-256, qop=auth, nc={nc:08x}, cnonce=\"raw\"",
        creds.uri, creds.response
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_and_expired_nonces_are_challenged_again() {
    // Both algorithms offered (`sip.digest_algorithms = "MD5,SHA-256"`): SHA-256 is answered.
    let settings = RegistrarSettings {
        nonce_lifetime: Duration::from_secs(1),
        digest: dialbridge_sip::DigestOffer::parse("MD5,SHA-256").unwrap(),
        ..RegistrarSettings::default()
    };
    let stack = start(settings).await;
    let phone = RawPhone::new(stack.local_addr());
    let server = stack.local_addr();
    let nonce = tokio::task::block_in_place(|| {
        let challenge = phone.register(1, None);
        assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
        assert!(
            challenge.contains("algorithm=MD5") && challenge.contains("algorithm=SHA-256"),
            "{challenge}"
        );
        let nonce = nonce_of(&challenge);
        let auth = authorization(&nonce, 1, server);
        let ok = phone.register(2, Some(&auth));
        assert!(ok.starts_with("SIP/2.0 200"), "SHA-256 digest accepted: {ok}");
        assert!(ok.contains("expires=300"), "{ok}");

        // The same Authorization again (a replay, new CSeq): challenged, not accepted.
        let replay = phone.register(3, Some(&auth));
        assert!(
            replay.starts_with("SIP/2.0 401") && !replay.contains("stale=true"),
            "{replay}"
        );
        nonce
    });

    // After the nonce's lifetime: the right password gets stale=true.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    tokio::task::block_in_place(|| {
        let stale = phone.register(4, Some(&authorization(&nonce, 2, server)));
        assert!(
            stale.starts_with("SIP/2.0 401") && stale.contains("stale=true"),
            "{stale}"
        );

        // Expires below the minimum: 423 with Min-Expires.
        let fresh = nonce_of(&stale);
        let message_with_short_expiry = phone.register_with_expires(5, Some(&authorization(&fresh, 1, server)), 10);
        assert!(
            message_with_short_expiry.starts_with("SIP/2.0 423"),
            "{message_with_short_expiry}"
        );
        assert!(
            message_with_short_expiry.contains("Min-Expires: 60"),
            "{message_with_short_expiry}"
        );
    });
    stack.shutdown().await;
}

fn unsolicited(method: &str, n: usize, from: SocketAddr, to: SocketAddr) -> String {
    format!(
        "{method} sip:02160001234@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-scan-{n};rport\r\n\
         From: <sip:scanner@{from}>;tag=scan{n}\r\n\
         To: <sip:02160001234@{to}>\r\n\
         Call-ID: scan-{n}@{from}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:scanner@{from}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Replies read until none arrives for a while, by their status code.
fn replies(socket: &UdpSocket) -> HashMap<String, usize> {
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut codes = HashMap::new();
    let mut buffer = [0u8; 4096];
    while let Ok(len) = socket.recv(&mut buffer) {
        let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
        let code = text.split_whitespace().nth(1).unwrap_or("?").to_owned();
        *codes.entry(code).or_insert(0) += 1;
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsolicited_requests_are_refused_then_dropped_per_source_without_any_state() {
    let stack = start_with(
        RegistrarSettings::default(),
        dialbridge_sip::UnsolicitedSettings {
            per_second: 5,
            burst: 10,
            max_sources: 100,
        },
    )
    .await;
    let server = stack.local_addr();

    // A scanner on another loopback address sends 300 INVITEs at once: the first ten (its
    // burst) get a 403, the rest nothing at all, and nothing is kept for any of them.
    let scanner = UdpSocket::bind("127.0.0.2:0").unwrap();
    let from = scanner.local_addr().unwrap();
    let started = std::time::Instant::now();
    for n in 0..300 {
        scanner
            .send_to(unsolicited("INVITE", n, from, server).as_bytes(), server)
            .unwrap();
        if n % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let codes = tokio::task::block_in_place(|| replies(&scanner));
    // The bucket refills five a second while the burst is being answered: on a loaded machine
    // that can be a while (the last reply came before the reader's 500 ms of quiet).
    let answering_ms = started.elapsed().as_millis().saturating_sub(500);
    let most = 10 + 1 + usize::try_from(answering_ms * 5 / 1000).unwrap_or(usize::MAX);
    let refused = codes.get("403").copied().unwrap_or(0);
    assert!((10..=most).contains(&refused), "{codes:?}, at most {most}");
    assert_eq!(codes.len(), 1, "only 403s: {codes:?}");
    let counts = stack.counts();
    assert_eq!(counts.unsolicited_answered, refused as u64);
    // The kernel may drop a few of a burst this fast before they are read (its RcvbufErrors).
    let seen = counts.unsolicited_answered + counts.unsolicited_dropped;
    assert!((280..=300).contains(&seen), "{counts:?}");
    assert_eq!((counts.dialogs, counts.legs), (0, 0), "no dialog for any of them");

    // Another source is not held back by the scanner: its OPTIONS is answered.
    let neighbour = UdpSocket::bind("127.0.0.1:0").unwrap();
    let from = neighbour.local_addr().unwrap();
    neighbour
        .send_to(unsolicited("OPTIONS", 1, from, server).as_bytes(), server)
        .unwrap();
    let codes = tokio::task::block_in_place(|| replies(&neighbour));
    assert_eq!(codes.get("200"), Some(&1), "{codes:?}");

    // Over a second later the scanner is answered again (five a second, at most its burst).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for n in 300..320 {
        scanner
            .send_to(unsolicited("INVITE", n, from_of(&scanner), server).as_bytes(), server)
            .unwrap();
    }
    let codes = tokio::task::block_in_place(|| replies(&scanner));
    let again = codes.get("403").copied().unwrap_or(0);
    assert!((5..=10).contains(&again), "{codes:?}");

    // A carrier's address is not limited: every OPTIONS (its keepalive) and INVITE (a
    // customer calling a caller id back) of it is answered.
    stack.set_carrier_sources(vec!["127.0.0.4/32".parse().unwrap()]);
    let before = stack.counts();
    let carrier = UdpSocket::bind("127.0.0.4:0").unwrap();
    for n in 0..40 {
        for method in ["OPTIONS", "INVITE"] {
            carrier
                .send_to(
                    unsolicited(method, 1000 + n, from_of(&carrier), server).as_bytes(),
                    server,
                )
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let codes = tokio::task::block_in_place(|| replies(&carrier));
    assert_eq!(
        (codes.get("200"), codes.get("403")),
        (Some(&40), Some(&40)),
        "{codes:?}"
    );
    let after = stack.counts();
    assert_eq!(after.unsolicited_dropped, before.unsolicited_dropped);
    stack.shutdown().await;
}

fn from_of(socket: &UdpSocket) -> SocketAddr {
    socket.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_nothing_and_leave_the_stack_serving() {
    if skip_without_sipp() {
        return;
    }
    let stack = start(RegistrarSettings::default()).await;
    let server = stack.local_addr();
    let sender = UdpSocket::bind("127.0.0.5:0").unwrap();
    let from = from_of(&sender);
    let options = unsolicited("OPTIONS", 1, from, server);
    let mut malformed: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        b"hello".to_vec(),
        (0..=255u8).cycle().take(1400).collect(),
        b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec(),
        b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP [::1\r\nCall-ID: x\r\n\r\n".to_vec(),
        options.replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS").into_bytes(),
    ];
    // Refused: a body shorter than its Content-Length (400), a SIP version not 2.0 (505).
    let refused = [
        unsolicited("OPTIONS", 3, from, server).replace("Content-Length: 0", "Content-Length: 99999"),
        unsolicited("OPTIONS", 4, from, server).replacen("SIP/2.0\r\n", "SIP/9.9\r\n", 1),
    ];
    malformed.extend(refused.iter().map(|r| r.clone().into_bytes()));
    // Truncated at every length: a datagram cut anywhere.
    malformed.extend((1..options.len()).step_by(7).map(|n| options.as_bytes()[..n].to_vec()));
    for datagram in &malformed {
        let _ = sender.send_to(datagram, server);
    }
    let codes = tokio::task::block_in_place(|| replies(&sender));
    // Nothing else is answered but the CRLF keepalive (RFC 5626), whose pong has no status.
    assert_eq!(
        (codes.get("400"), codes.get("505"), codes.len()),
        (Some(&1), Some(&1), 3),
        "{codes:?}"
    );
    let counts = stack.counts();
    assert_eq!((counts.dialogs, counts.legs, counts.bindings), (0, 0, 0), "{counts:?}");

    // The same source, well-formed now, is answered, and phones still register.
    sender
        .send_to(unsolicited("OPTIONS", 5, from, server).as_bytes(), server)
        .unwrap();
    let codes = tokio::task::block_in_place(|| replies(&sender));
    assert_eq!(codes.get("200"), Some(&1), "{codes:?}");
    let (ok, logs) = register(&stack, "3000001-801", "3000001-801", "secret801", 200, false).await;
    assert!(ok, "{logs}");
    stack.shutdown().await;
}

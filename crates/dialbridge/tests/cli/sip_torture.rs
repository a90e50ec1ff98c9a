//! A corpus in the manner of RFC 4475's torture tests (each message written here after one of
//! its cases, named by it): tortuous but valid messages and invalid ones, replayed against a
//! running server over UDP (from 127.0.0.4) and TCP. The server answers what it must (400 for a
//! body shorter than its Content-Length, 505 for another SIP version), never stops, and still
//! answers an OPTIONS from another source afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::{serve, Operator};

/// The head every request of the corpus shares, after its request line.
fn head(method: &str, branch: &str) -> String {
    format!(
        "Via: SIP/2.0/UDP 127.0.0.4:5099;branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:torture@127.0.0.4>;tag={branch}\r\n\
         To: <sip:801@127.0.0.1>\r\n\
         Call-ID: {branch}@127.0.0.4\r\n\
         CSeq: 1 {method}\r\n"
    )
}

/// (name, message, the status it must be answered with if any).
fn corpus() -> Vec<(&'static str, Vec<u8>, Option<u16>)> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.4\r\ns=-\r\nc=IN IP4 127.0.0.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let mut corpus: Vec<(&'static str, String, Option<u16>)> = vec![
        // Invalid messages the stack itself must refuse.
        (
            "clerr",
            format!("OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}Content-Length: 400\r\n\r\nshort", head("OPTIONS", "clerr")),
            Some(400),
        ),
        (
            "badvers",
            format!("OPTIONS sip:127.0.0.1 SIP/7.0\r\n{}Content-Length: 0\r\n\r\n", head("OPTIONS", "badvers")),
            Some(505),
        ),
        // Valid but tortuous.
        (
            "wsinv",
            "INVITE sip:801@127.0.0.1 SIP/2.0\r\n\
             TO :\r\n sip:801@127.0.0.1 ;   tag    = 1918181833n\r\n\
             from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@127.0.0.4>\r\n  ;\r\n  tag = 98asjd8\r\n\
             MaX-fOrWaRdS: 0068\r\n\
             Call-ID: wsinv.ndaksdj@127.0.0.4\r\n\
             Content-Length   : 0\r\n\
             cseq: 0009\r\n  INVITE\r\n\
             Via  : SIP  /   2.0\r\n /UDP\r\n    127.0.0.4:5099;branch=z9hG4bK-wsinv\r\n\
             s :\r\n\
             NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
             UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
             Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
             v:  SIP  / 2.0  / TCP     127.0.0.4   ;\r\n  branch  =   z9hG4bK-wsinv2\r\n\
             m:\"Quoted string \\\"\\\"\" <sip:jdrosen@127.0.0.4> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\r\n"
                .to_owned(),
            None,
        ),
        (
            "intmeth",
            format!(
                "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@127.0.0.1 SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
                head("!interesting-Method0123456789_*+`.%indeed'~", "intmeth")
            ),
            None,
        ),
        (
            "esc01",
            format!("OPTIONS sip:sips%3Auser%40example.com@127.0.0.1 SIP/2.0\r\n{}Content-Length: 0\r\n\r\n", head("OPTIONS", "esc01")),
            None,
        ),
        (
            "escnull",
            format!("REGISTER sip:127.0.0.1 SIP/2.0\r\n{}Contact: <sip:%00@127.0.0.4>\r\nContact: <sip:%00%00@127.0.0.4>\r\nContent-Length: 0\r\n\r\n", head("REGISTER", "escnull")),
            None,
        ),
        (
            "lwsdisp",
            format!("OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}Contact: caller<sip:caller@127.0.0.4>\r\nContent-Length: 0\r\n\r\n", head("OPTIONS", "lwsdisp")),
            None,
        ),
        (
            "longreq",
            format!(
                "OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}{}X-Long: {}\r\nContent-Length: 0\r\n\r\n",
                head("OPTIONS", "longreq"),
                "Via: SIP/2.0/UDP 127.0.0.5;branch=z9hG4bK-x\r\n".repeat(40),
                "x".repeat(4_000)
            ),
            None,
        ),
        (
            "dblreq",
            format!(
                "OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}Content-Length: 0\r\n\r\nOPTIONS sip:127.0.0.1 SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
                head("OPTIONS", "dblreq1"),
                head("OPTIONS", "dblreq2")
            ),
            None,
        ),
        (
            "semiuri",
            format!("OPTIONS sip:user;par=u%40example.net@127.0.0.1 SIP/2.0\r\n{}Content-Length: 0\r\n\r\n", head("OPTIONS", "semiuri")),
            None,
        ),
        (
            "transports",
            format!(
                "OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}Via: SIP/2.0/SCTP 127.0.0.6;branch=z9hG4bK-s\r\nVia: SIP/2.0/TLS 127.0.0.7;branch=z9hG4bK-t\r\nVia: SIP/2.0/UNKNOWN 127.0.0.8;branch=z9hG4bK-u\r\nContent-Length: 0\r\n\r\n",
                head("OPTIONS", "transports")
            ),
            None,
        ),
        (
            "mpart01",
            {
                let body = format!("--boundary42\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--boundary42\r\nContent-Type: application/octet-stream\r\n\r\n\u{1}\u{2}\u{3}\r\n--boundary42--\r\n");
                format!(
                    "INVITE sip:801@127.0.0.1 SIP/2.0\r\n{}Contact: <sip:torture@127.0.0.4:5099>\r\nContent-Type: multipart/mixed;boundary=boundary42\r\nContent-Length: {}\r\n\r\n{body}",
                    head("INVITE", "mpart01"),
                    body.len()
                )
            },
            None,
        ),
        ("unreason", format!("SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое\r\n{}Content-Length: 0\r\n\r\n", head("INVITE", "unreason")), None),
        ("noreason", format!("SIP/2.0 100 \r\n{}Content-Length: 0\r\n\r\n", head("INVITE", "noreason")), None),
        // Invalid.
        (
            "badinv01",
            format!("INVITE sip:801@127.0.0.1 SIP/2.0\r\n{}Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 9999\r\n\r\n{sdp}", head("INVITE", "badinv01")),
            None,
        ),
        (
            "scalar02",
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.4;branch=z9hG4bK-scalar02\r\nMax-Forwards: 300\r\nFrom: <sip:x@127.0.0.4>;tag=1\r\nTo: <sip:x@127.0.0.4>\r\nCall-ID: scalar02@127.0.0.4\r\nCSeq: 36893488147419103232 REGISTER\r\nContact: <sip:x@127.0.0.4>;expires=280297596632815\r\nExpires: 1{}\r\nContent-Length: -999\r\n\r\n",
                "0".repeat(100)
            ),
            None,
        ),
        (
            "quotbal",
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.4;branch=z9hG4bK-quotbal\r\nMax-Forwards: 70\r\nFrom: \"Mr. J. User <sip:j.user@127.0.0.4>;tag=1\r\nTo: \"Mr. Watson <sip:801@127.0.0.1>\r\nCall-ID: quotbal@127.0.0.4\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_string(),
            None,
        ),
        ("ltgtruri", format!("OPTIONS <sip:801@127.0.0.1> SIP/2.0\r\n{}Content-Length: 0\r\n\r\n", head("OPTIONS", "ltgtruri")), None),
        ("lwsruri", format!("OPTIONS sip:801@127.0.0.1;lr ;x=1 SIP/2.0\r\n{}Content-Length: 0\r\n\r\n", head("OPTIONS", "lwsruri")), None),
        ("lwsstart", format!("OPTIONS  sip:801@127.0.0.1  SIP/2.0\r\n{}Content-Length: 0\r\n\r\n", head("OPTIONS", "lwsstart")), None),
        ("trws", format!("OPTIONS sip:801@127.0.0.1 SIP/2.0 \r\n{}Content-Length: 0\r\n\r\n", head("OPTIONS", "trws")), None),
        ("escruri", format!("OPTIONS sip:user@127.0.0.1?Route=%3Csip:example.com%3E SIP/2.0\r\n{}Content-Length: 0\r\n\r\n", head("OPTIONS", "escruri")), None),
        ("baddate", format!("OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}Date: Fri, 01 Jan 2010 16:00:00 EST\r\nContent-Length: 0\r\n\r\n", head("OPTIONS", "baddate")), None),
        ("regbadct", format!("REGISTER sip:127.0.0.1 SIP/2.0\r\n{}Contact: sip:user@127.0.0.4?Route=%3Csip:sip.example.com%3E\r\nContent-Length: 0\r\n\r\n", head("REGISTER", "regbadct")), None),
        ("badaspec", "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.4;branch=z9hG4bK-badaspec\r\nMax-Forwards: 70\r\nFrom: \"Bell, Alexander\" <sip:a.g.bell@127.0.0.4 >;tag=1\r\nTo: \"Watson, Thomas\" < sip:801@127.0.0.1 >\r\nCall-ID: badaspec@127.0.0.4\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_string(), None),
        ("baddn", "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.4;branch=z9hG4bK-baddn\r\nMax-Forwards: 70\r\nFrom: Bell, Alexander <sip:a.g.bell@127.0.0.4>;tag=1\r\nTo: Watson, Thomas <sip:801@127.0.0.1>\r\nCall-ID: baddn@127.0.0.4\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_string(), None),
        ("mismatch01", format!("OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}Content-Length: 0\r\n\r\n", head("INVITE", "mismatch01")), None),
        ("bext01", format!("OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}Require: nothingSupportsThis, nothingSupportsThisEither\r\nProxy-Require: noProxiesSupportThis\r\nContent-Length: 0\r\n\r\n", head("OPTIONS", "bext01")), None),
        ("novelsp", "INVITE sip:801@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.4;branch=z9hG4bK-novelsp\r\nMax-Forwards: 70\r\nFrom: <sip:x@127.0.0.4>;tag=1\r\nTo: <sip:801@127.0.0.1>\r\nCall-ID: novelsp@127.0.0.4\r\nCSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.4>\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n".to_string(), None),
        ("authorization", format!("REGISTER sip:127.0.0.1 SIP/2.0\r\n{}Contact: <sip:801@127.0.0.4>\r\nAuthorization: Digest username=\"3000001-801\", realm=, nonce=\"\"\"\", uri=\"sip:127.0.0.1\", response=\"zz\", algorithm=SHA-999, qop=auth, nc=zzzz\r\nContent-Length: 0\r\n\r\n", head("REGISTER", "authorization")), None),
        ("empty", String::new(), None),
        ("keepalive", "\r\n\r\n".to_owned(), None),
    ];
    let mut binary: Vec<(&'static str, Vec<u8>, Option<u16>)> = corpus
        .drain(..)
        .map(|(name, text, status)| (name, text.into_bytes(), status))
        .collect();
    binary.push(("binary", (0..=255u8).cycle().take(3_000).collect(), None));
    binary.push((
        "nulinheader",
        format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\n{}X-Nul: a\0b\r\nContent-Length: 0\r\n\r\n",
            head("OPTIONS", "nulinheader")
        )
        .into_bytes(),
        None,
    ));
    binary
}

/// The status of the first response in `bytes` (`SIP/2.0 400 …`; the stack's library echoes
/// the version of a request it refuses for its version).
fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    let (_, rest) = text.strip_prefix("SIP/")?.split_once(' ')?;
    rest.get(..3)?.parse().ok()
}

/// An OPTIONS from a source that sent nothing else, over UDP: the status it is answered with.
fn options_status(server: SocketAddr, from: &str) -> Option<u16> {
    let socket = UdpSocket::bind(format!("{from}:0")).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = socket.local_addr().unwrap().port();
    let request = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from}:{port};branch=z9hG4bK-after{port}\r\nMax-Forwards: 70\r\nFrom: <sip:check@{from}>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: after{port}@{from}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(request.as_bytes(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    status_of(&buf[..n])
}

#[test]
fn the_torture_corpus_is_answered_or_dropped_and_the_stack_stays_up() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let op = Operator::new();
    let mut server = serve(&op);
    let sip: SocketAddr = server.sip.parse().unwrap();
    // Spaced so the per-source limit on answers to strangers (10 a second) answers every one.
    let spacing = Duration::from_millis(120);

    // The port the corpus's Via headers name: answers go there (RFC 3261 §18.2.2, no rport).
    let udp = UdpSocket::bind("127.0.0.4:5099").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = vec![0u8; 65_536];
    for (name, message, expected) in corpus() {
        if let Some(expected) = expected {
            // Whatever earlier messages were answered is read past first.
            udp.set_nonblocking(true).unwrap();
            while udp.recv_from(&mut buf).is_ok() {}
            udp.set_nonblocking(false).unwrap();
            udp.send_to(&message, sip).unwrap();
            let answered = udp.recv_from(&mut buf).ok().and_then(|(n, _)| status_of(&buf[..n]));
            assert_eq!(answered, Some(expected), "UDP {name}");
        } else {
            udp.send_to(&message, sip).unwrap();
        }
        std::thread::sleep(spacing);
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server stopped after {name}"
        );
    }

    for (name, message, expected) in corpus() {
        let Ok(mut tcp) = TcpStream::connect_timeout(&sip, Duration::from_secs(3)) else {
            panic!("TCP connect for {name}");
        };
        tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = tcp.write_all(&message);
        // Over TCP a body shorter than its Content-Length is simply not complete yet.
        if let (Some(expected), true) = (expected, name != "clerr") {
            let answered = tcp.read(&mut buf).ok().and_then(|n| status_of(&buf[..n]));
            assert_eq!(answered, Some(expected), "TCP {name}");
        }
        std::thread::sleep(spacing);
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server stopped after {name} over TCP"
        );
    }

    let until = Instant::now() + Duration::from_secs(10);
    while options_status(sip, "127.0.0.5") != Some(200) {
        assert!(Instant::now() < until, "the stack no longer answers an OPTIONS");
    }
}

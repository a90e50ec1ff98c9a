use super::*;
use proptest::prelude::*;

const LIMIT: usize = 1024;

fn fed(chunks: &[&[u8]]) -> (Framing, Result<(), TooLarge>) {
    let mut framing = Framing::new(LIMIT);
    for chunk in chunks {
        if let Err(e) = framing.read(chunk) {
            return (framing, Err(e));
        }
    }
    (framing, Ok(()))
}

#[test]
fn a_head_then_its_body_then_the_next_head() {
    let mut f = Framing::new(LIMIT);
    assert_eq!(f.phase(), Phase::Idle);
    f.read(b"POST /interface/PreviewOutcall HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(f.phase(), Phase::Head);
    f.read(b"Content-Length: 5\r\n\r\nab").unwrap();
    assert_eq!(f.phase(), Phase::Body);
    f.read(b"cde").unwrap();
    assert_eq!(f.phase(), Phase::Idle);
    f.read(b"GET /healthz HTTP/1.1\r\n\r\nGET /metrics").unwrap();
    assert_eq!(f.phase(), Phase::Head, "a pipelined second request is a new head");
}

#[test]
fn chunked_bodies_with_trailers_are_followed_to_their_end() {
    let (f, r) = fed(&[
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwi",
        b"ki\r\n5;ext=1\r\npedia\r\n0\r\n",
    ]);
    r.unwrap();
    assert_eq!(f.phase(), Phase::Head, "trailers are read like a head");
    let (f, r) = fed(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\nX-T: 1\r\n\r\n"]);
    r.unwrap();
    assert_eq!(f.phase(), Phase::Idle);
}

#[test]
fn a_head_over_the_limit_is_too_large_with_its_start() {
    let long = format!(
        "GET /interface/PreviewOutcall?x={} HTTP/1.1\r\n\r\n",
        "a".repeat(2 * LIMIT)
    );
    let (_, r) = fed(&[long.as_bytes()]);
    let start = r.unwrap_err().head_start;
    assert!(start.starts_with(b"GET /interface/PreviewOutcall?x=aaa"));
    assert_eq!(start.len(), HEAD_SAMPLE);
    // Byte by byte, the same.
    let mut f = Framing::new(LIMIT);
    let first_error = long
        .as_bytes()
        .iter()
        .position(|b| f.read(std::slice::from_ref(b)).is_err());
    assert_eq!(first_error, Some(LIMIT));
    // Exactly at the limit is fine.
    let head = format!("GET /{} HTTP/1.1\r\n\r\n", "b".repeat(LIMIT - 18));
    assert_eq!(head.len(), LIMIT);
    fed(&[head.as_bytes()]).1.unwrap();
}

#[test]
fn too_many_headers_is_too_large() {
    let head = format!("GET / HTTP/1.1\r\n{}\r\n", "a: b\r\n".repeat(MAX_HEADERS + 1));
    let big = Framing::new(1 << 20).read(head.as_bytes());
    assert!(big.is_err());
}

#[test]
fn an_upgrade_belongs_to_the_application_only_when_granted() {
    let head = b"GET /api/v1/events HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let mut f = Framing::new(LIMIT);
    f.read(head).unwrap();
    f.wrote(b"HTTP/1.1 101 Switching Protocols\r\n");
    assert_eq!(f.phase(), Phase::Upgraded);
    f.read(&[0x81, 0x85, 1, 2, 3, 4]).unwrap();
    assert_eq!(f.phase(), Phase::Upgraded);
    let mut f = Framing::new(LIMIT);
    f.read(head).unwrap();
    f.wrote(b"HTTP/1.1 400 Bad Request\r\n");
    assert_eq!(f.phase(), Phase::Idle);
    f.read(b"GET / HTTP/1.1\r\n").unwrap();
    assert_eq!(f.phase(), Phase::Head);
}

#[test]
fn what_hyper_refuses_is_no_longer_followed() {
    for head in [
        &b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"[..],
        b"\x00\x01 garbage\r\n\r\nGET / HTTP/1.1\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let (f, r) = fed(&[head]);
        r.unwrap();
        assert_eq!(
            f.phase(),
            Phase::Head,
            "the strictest timeout: {:?}",
            String::from_utf8_lossy(head)
        );
    }
}

#[test]
fn empty_lines_before_a_request_and_bare_line_feeds_are_taken_as_hyper_takes_them() {
    let (f, r) = fed(&[b"\r\n\r\n", b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
    r.unwrap();
    assert_eq!(f.phase(), Phase::Idle);
    let (f, r) = fed(&[b"POST / HTTP/1.1\nContent-Length: 3\n\nab"]);
    r.unwrap();
    assert_eq!(f.phase(), Phase::Body);
    // A body past the head limit is a body, not an over-long head.
    let mut f = Framing::new(LIMIT);
    f.read(format!("POST / HTTP/1.1\nContent-Length: {}\n\n", 10 * LIMIT).as_bytes())
        .unwrap();
    f.read(&vec![b'a'; 10 * LIMIT]).unwrap();
    assert_eq!(f.phase(), Phase::Idle);
}

#[test]
fn a_request_with_a_body_is_followed_through_it_even_when_it_asks_to_upgrade() {
    let (f, r) = fed(&[b"POST / HTTP/1.1\r\nUpgrade: x\r\nContent-Length: 1000\r\n\r\nab"]);
    r.unwrap();
    assert_eq!(f.phase(), Phase::Body, "the body timeout applies");
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    let body = proptest::collection::vec(any::<u8>(), 0..64);
    (0..5u8, "[a-z/]{1,40}", body).prop_map(|(kind, path, body)| {
        let mut out = match kind {
            0 => format!("GET /{path} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes(),
            1 => format!("POST /{path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(),
            2 => format!("\r\nGET /{path} HTTP/1.1\nHost: h\n\n").into_bytes(),
            3 => format!("POST /{path} HTTP/1.1\nContent-Length: {}\n\n", body.len()).into_bytes(),
            _ => format!("POST /{path} HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n").into_bytes(),
        };
        match kind {
            0 | 2 => {}
            1 | 3 => out.extend_from_slice(&body),
            _ => {
                for piece in body.chunks(7) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        out
    })
}

proptest! {
    /// However the bytes of well-formed requests are split, each request is followed to its end.
    #[test]
    fn requests_split_anywhere_end_idle(requests in proptest::collection::vec(request(), 1..5), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let stream: Vec<u8> = requests.concat();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut f = Framing::new(LIMIT);
        for pair in points.windows(2) {
            f.read(&stream[pair[0]..pair[1]]).unwrap();
        }
        prop_assert_eq!(f.phase(), Phase::Idle);
    }

    /// Any bytes at all: no panic, and never a head sample longer than promised.
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let mut f = Framing::new(256);
        for chunk in &chunks {
            if let Err(e) = f.read(chunk) {
                prop_assert!(e.head_start.len() <= HEAD_SAMPLE);
            }
            f.wrote(chunk);
        }
    }
}

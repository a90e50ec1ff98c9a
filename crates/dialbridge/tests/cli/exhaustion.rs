//! What a stranger can hold without a credential is bounded: slow, idle and over-long HTTP
//! requests and too many connections from one source. The flooding clients come from other
//! loopback addresses (127.0.0.2, 127.0.0.3) than the checks they must not disturb.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{serve_with, try_http_get, Operator};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn connect_from(source: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))?;
    socket.connect(server).await
}

/// Reads until the server closes the connection (end of stream or reset), at most `limit`:
/// how long that took, `None` if it stayed open.
async fn closed_within(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

const SLOW: usize = 2_000;

/// 2,000 connections from 127.0.0.2 that never finish a request — idle, a head left half sent,
/// a head trickled a byte at a time, a body left half sent — are all closed within their
/// timeouts, and meanwhile `/healthz` from 127.0.0.1 keeps answering.
#[test]
fn slow_and_idle_http_clients_are_closed_while_others_are_served() {
    let op = Operator::new();
    let server = serve_with(
        &op,
        &[
            ("DIALBRIDGE_HTTP_HEADER_TIMEOUT_SECS", "3"),
            ("DIALBRIDGE_HTTP_BODY_TIMEOUT_SECS", "3"),
            ("DIALBRIDGE_HTTP_IDLE_TIMEOUT_SECS", "3"),
            ("DIALBRIDGE_HTTP_MAX_CONNECTIONS_PER_SOURCE", "5000"),
        ],
    );
    let address: SocketAddr = server.http.parse().unwrap();
    let rt = runtime();
    let closed: Vec<Option<Duration>> = rt.block_on(async {
        let mut waits = tokio::task::JoinSet::new();
        for i in 0..SLOW {
            let mut stream = connect_from("127.0.0.2", address).await.expect("connect");
            match i % 4 {
                0 => {}
                1 => stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap(),
                2 => {
                    stream
                        .write_all(
                            b"POST /interface/PreviewOutcall HTTP/1.1\r\nContent-Length: 100\r\n\r\nenterpriseId=",
                        )
                        .await
                        .unwrap();
                }
                _ => {
                    // A trickle: a byte every 500 ms never completes the head.
                    let (mut read, mut write) = stream.into_split();
                    tokio::spawn(async move {
                        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                            if write.write_all(&[*byte]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    });
                    waits.spawn(async move {
                        let started = Instant::now();
                        let mut sink = [0u8; 64];
                        tokio::time::timeout(Duration::from_secs(60), async {
                            loop {
                                match read.read(&mut sink).await {
                                    Ok(0) | Err(_) => return started.elapsed(),
                                    Ok(_) => {}
                                }
                            }
                        })
                        .await
                        .ok()
                    });
                    continue;
                }
            }
            waits.spawn(closed_within(stream, Duration::from_secs(60)));
        }
        // While they are held: the health check from another source answers, again and again.
        for _ in 0..5 {
            let http = address.to_string();
            let (status, body) = tokio::task::spawn_blocking(move || try_http_get(&http, "/healthz"))
                .await
                .unwrap()
                .expect("healthz answers while slow clients are held");
            assert_eq!(status, 200, "{body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut closed = Vec::with_capacity(SLOW);
        while let Some(result) = waits.join_next().await {
            closed.push(result.unwrap());
        }
        closed
    });
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} of {SLOW} slow connections were never closed");
    let slowest = closed.iter().flatten().max().unwrap();
    assert!(
        *slowest < Duration::from_secs(30),
        "closed within the 3 s timeouts (generously): the slowest took {slowest:?}"
    );
    let (status, _) = try_http_get(&server.http, "/healthz").unwrap();
    assert_eq!(status, 200);
}

/// An over-long URL on a legacy path is answered with the legacy "bad parameters" JSON and
/// HTTP 200 (not hyper's empty 414); on `/api`, a JSON 414.
#[test]
fn an_over_long_url_gets_the_legacy_json() {
    let op = Operator::new();
    let server = serve_with(&op, &[]);
    let long = "a".repeat(100_000);
    let (status, body) = try_http_get(
        &server.http,
        &format!("/interface/PreviewOutcall?enterpriseId=3000001&x={long}"),
    )
    .unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"res":"2"}"#));
    let (status, body) = try_http_get(&server.http, &format!("/interface/client/ClientOnline?x={long}")).unwrap();
    assert_eq!(status, 200);
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["code"], "2", "{reply}");
    let (status, body) = try_http_get(&server.http, &format!("/api/v1/session?x={long}")).unwrap();
    assert_eq!(status, 414, "{body}");
    assert!(body.contains("too long"), "{body}");
    // Below the limit a long URL is an ordinary request.
    let (status, body) = try_http_get(
        &server.http,
        &format!("/interface/PreviewOutcall?x={}", "a".repeat(20_000)),
    )
    .unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"res":"2"}"#));
}

/// One source cannot hold more than its share: past the per-source cap its connections are
/// closed at once, while another source is served.
#[test]
fn one_source_holds_no_more_than_its_cap() {
    const CAP: usize = 50;
    let op = Operator::new();
    let server = serve_with(&op, &[("DIALBRIDGE_HTTP_MAX_CONNECTIONS_PER_SOURCE", "50")]);
    let address: SocketAddr = server.http.parse().unwrap();
    runtime().block_on(async {
        let mut held = Vec::new();
        for _ in 0..CAP {
            held.push(connect_from("127.0.0.3", address).await.unwrap());
        }
        // The listener takes them in order: let it count the first fifty before the rest come.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut refused = 0;
        for _ in 0..10 {
            let stream = connect_from("127.0.0.3", address).await.unwrap();
            if closed_within(stream, Duration::from_secs(5)).await.is_some() {
                refused += 1;
            }
        }
        assert_eq!(refused, 10, "connections past the cap are closed at once");
        let http = address.to_string();
        let (status, _) = tokio::task::spawn_blocking(move || try_http_get(&http, "/healthz"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 200, "another source is served");
        // The ones within the cap are still served.
        let mut stream = held.pop().unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    });
}

//! What a stranger can hold without a credential is bounded: slow, idle and over-long HTTP
//! requests and too many connections from one source. The flooding clients come from other
//! loopback addresses (127.0.0.2, 127.0.0.3) than the checks they must not disturb.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use super::{legacy_world, serve_under, serve_with, stop_gracefully, try_http_get, Operator};

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) async fn connect_from(source: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
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
    let server = serve_with(
        &op,
        &[
            ("DIALBRIDGE_HTTP_MAX_CONNECTIONS_PER_SOURCE", "50"),
            // Held connections are not what is tested: they stay well past the test.
            ("DIALBRIDGE_HTTP_IDLE_TIMEOUT_SECS", "600"),
        ],
    );
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

/// Sends one form POST on a kept-alive connection and reads its answer's body.
async fn post_on(connection: &mut BufReader<TcpStream>, path: &str, form: &str) -> String {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    connection.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        connection.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    connection.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

/// The database file and its write-ahead log, in bytes.
fn database_bytes(op: &Operator) -> u64 {
    let data = op.dir.path().join("dialbridge-data");
    ["dialbridge.db", "dialbridge.db-wal"]
        .iter()
        .map(|name| std::fs::metadata(data.join(name)).map_or(0, |m| m.len()))
        .sum()
}

const REFUSED: usize = 10_000;

/// 10,000 PreviewOutcalls refused before authentication (missing parameters, an unknown agent,
/// a wrong password), each with 50 KB values, from one source: the database (with its log,
/// checkpointed by a clean stop) grows by less than 1 MB, and `admin attempts list` shows them
/// counted.
#[test]
fn refusals_before_authentication_are_counted_not_stored_one_by_one() {
    let w = legacy_world();
    let mut server = w.server;
    stop_gracefully(&mut server);
    let before = database_bytes(&w.op);
    let server = serve_with(&w.op, &[]);
    let address: SocketAddr = server.http.parse().unwrap();
    let big = "9".repeat(50_000);
    let forms = [
        format!("enterpriseId=3000001&cno=2000&customerNumber={big}"),
        format!("enterpriseId=3000001&cno=2999&pwd=x&customerNumber={big}"),
        format!("enterpriseId=3000001&cno=2000&pwd=wrong&customerNumber={big}"),
        format!("enterpriseId=3000001&cno={big}&pwd=x&customerNumber=1"),
    ];
    let answers: Vec<String> = runtime().block_on(async {
        let mut senders = tokio::task::JoinSet::new();
        for (i, form) in forms.iter().enumerate() {
            let form = form.clone();
            senders.spawn(async move {
                let stream = connect_from("127.0.0.2", address).await.unwrap();
                let mut connection = BufReader::new(stream);
                let mut answers = std::collections::BTreeSet::new();
                for _ in 0..REFUSED / 4 {
                    answers.insert(post_on(&mut connection, "/interface/PreviewOutcall", &form).await);
                }
                (i, answers)
            });
        }
        let mut all = Vec::new();
        while let Some(done) = senders.join_next().await {
            let (_, answers) = done.unwrap();
            all.extend(answers);
        }
        all.sort();
        all
    });
    let mut distinct = answers.clone();
    distinct.dedup();
    // Unknown agents past the source's budget are refused as throttled (res 3), unrecorded.
    assert_eq!(distinct, vec![r#"{"res":"2"}"#, r#"{"res":"3"}"#, r#"{"res":"8"}"#]);
    let (_, metrics) = try_http_get(&server.http, "/metrics").unwrap();
    let throttled: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dialbridge_http_auth_throttled_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let mut server = server;
    stop_gracefully(&mut server);
    let growth = database_bytes(&w.op).saturating_sub(before);
    assert!(growth < 1 << 20, "the database grew by {growth} bytes");

    let rows =
        w.op.json(&["admin", "attempts", "list", "--enterprise", "3000001", "--limit", "100"]);
    let rows = rows.as_array().unwrap();
    let counted: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(counted + throttled, REFUSED as u64, "{rows:?}");
    assert!(rows.len() <= 4 * 3, "a row per kind of refusal and minute: {rows:?}");
    for row in rows {
        assert_eq!(row["source"], "127.0.0.2", "{row}");
        let sample = row["customer_number"].as_str().unwrap_or_default();
        assert!(sample.chars().count() <= 65, "a sample, cut: {row}");
        assert!(
            row["cno"].is_null() || row["cno"] == "2000" || row["cno"] == "2999",
            "a malformed cno is not kept: {row}"
        );
    }
}

/// A value with a line break, in any parameter and before or after authentication, cannot
/// write a line of its own into the server's log.
#[test]
fn a_forged_log_line_cannot_be_written() {
    let w = legacy_world();
    let forged = "\n2026-12-05T00:00:00.000000Z  INFO dialbridge::serve: FORGED";
    let encoded: String = serde_urlencoded::to_string([("v", forged)]).unwrap()[2..].to_owned();
    let pwd = dialbridge_store::md5_hex("1234");
    for query in [
        format!("enterpriseId=3000001&cno=2000&pwd={pwd}&customerNumber=13800138000&clidLeftNumber=0108{encoded}"),
        format!("enterpriseId=3000001&cno=2000&pwd={pwd}&customerNumber=138{encoded}"),
        format!("enterpriseId=3000001&cno=20{encoded}&pwd={pwd}&customerNumber=13800138000"),
        format!("enterpriseId=3000{encoded}&cno=2000&pwd={pwd}&customerNumber=13800138000"),
        format!("enterpriseId=3000001&cno=2000&pwd=x{encoded}&customerNumber=13800138000&userField={encoded}"),
    ] {
        let (status, body) = try_http_get(&w.server.http, &format!("/interface/PreviewOutcall?{query}")).unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("res"), "{body}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let lines = w.server.log_lines();
    assert!(lines.iter().any(|l| l.contains("PreviewOutcall refused")), "{lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("FORGED") && !l.contains("PreviewOutcall") && !l.contains("refused")),
        "a line of its own: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("2026-12-05T00:00:00")),
        "{lines:#?}"
    );
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The CPU time the server has used, in clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

const IDLE_SIP: usize = 5_000;
const SIP_CAP: usize = 1_000;
/// What the SIP library allocates for each connection it serves: two 64 KiB buffers (about
/// 75 KiB of them resident, as measured).
const PER_CONNECTION_KIB: u64 = 128;

/// 5,000 SIP-over-TCP connections from 127.0.0.2, each starting a message it never finishes,
/// against a cap of 1,000: those past the cap are closed at once, memory grows by less than the
/// cap times what a connection the SIP library serves costs, the rest are closed when the
/// first-message time runs out, and afterwards a phone still registers over TCP.
#[test]
fn idle_sip_tcp_connections_are_capped_then_closed_and_phones_still_register() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let op = Operator::new();
    op.provision_example();
    let server = serve_with(
        &op,
        &[
            ("DIALBRIDGE_SIP_TCP_MAX_CONNECTIONS", "1000"),
            ("DIALBRIDGE_SIP_TCP_MAX_CONNECTIONS_PER_SOURCE", "100000"),
            ("DIALBRIDGE_SIP_TCP_FIRST_MESSAGE_SECS", "20"),
        ],
    );
    let pid = server.child.id();
    let sip: SocketAddr = server.sip.parse().unwrap();
    let before = rss_kib(pid);
    runtime().block_on(async {
        let started = Instant::now();
        let mut waits = tokio::task::JoinSet::new();
        for _ in 0..IDLE_SIP {
            let mut stream = connect_from("127.0.0.2", sip).await.expect("connect");
            // A byte, so that the connection is handed to the SIP library and costs what it costs.
            let _ = stream.write_all(b"O").await;
            waits.spawn(closed_within(stream, Duration::from_secs(60)));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let growth = rss_kib(pid).saturating_sub(before);
        assert!(
            growth < SIP_CAP as u64 * PER_CONNECTION_KIB,
            "memory grew by {growth} KiB for {IDLE_SIP} connections"
        );
        let mut at_once = 0;
        let mut later = Vec::new();
        while let Some(closed) = waits.join_next().await {
            let took = closed.unwrap().expect("closed by the server");
            if took < Duration::from_secs(10) {
                at_once += 1;
            } else {
                later.push(took);
            }
        }
        assert!(
            at_once >= IDLE_SIP - SIP_CAP,
            "{at_once} closed at once: the cap of {SIP_CAP} let more in"
        );
        assert!(
            !later.is_empty(),
            "those within the cap stay until the first-message time"
        );
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "the first-message time closes the rest"
        );
    });
    let mut sipp = dialbridge_testkit::SippBuilder::new("register.xml", Some(sip))
        .args([
            "-t",
            "t1",
            "-s",
            "3000001-801",
            "-au",
            "3000001-801",
            "-ap",
            "ext801-secret",
            "-m",
            "1",
        ])
        .args(["-p".to_owned(), dialbridge_testkit::free_port().to_string()])
        .set("expect", 200)
        .spawn();
    assert!(sipp.finish(Duration::from_secs(20)), "{}", sipp.logs());
}

/// The server may open 400 files; 1,000 SIP-over-TCP connections from 127.0.0.3 exhaust them.
/// Meanwhile it backs off instead of spinning (CPU) and warns once per 10 s (log), and once
/// they close it answers again.
#[test]
fn at_descriptor_exhaustion_cpu_and_log_growth_stay_bounded() {
    let op = Operator::new();
    let server = serve_under(
        &op,
        &["prlimit", "--nofile=400:400"],
        &[
            ("DIALBRIDGE_SIP_TCP_MAX_CONNECTIONS", "100000"),
            ("DIALBRIDGE_SIP_TCP_MAX_CONNECTIONS_PER_SOURCE", "100000"),
            ("DIALBRIDGE_SIP_TCP_FIRST_MESSAGE_SECS", "60"),
        ],
    );
    let pid = server.child.id();
    let sip: SocketAddr = server.sip.parse().unwrap();
    runtime().block_on(async {
        let mut held = Vec::new();
        for _ in 0..1_000 {
            match tokio::time::timeout(Duration::from_secs(2), connect_from("127.0.0.3", sip)).await {
                Ok(Ok(stream)) => held.push(stream),
                _ => break,
            }
        }
        assert!(
            held.len() > 400,
            "only {} connections: the table never filled",
            held.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (ticks, lines) = (cpu_ticks(pid), server.log_lines().len());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let used = cpu_ticks(pid) - ticks;
        let logged = server.log_lines().len() - lines;
        // 100 ticks a second: a spinning loop would use about 500.
        assert!(used < 150, "{used} ticks of CPU in 5 s at descriptor exhaustion");
        assert!(
            logged <= 3,
            "{logged} log lines in 5 s at descriptor exhaustion: {:?}",
            &server.log_lines()[lines..]
        );
        assert!(
            server
                .log_lines()
                .iter()
                .any(|l| l.contains("cannot accept SIP TCP connections")),
            "the exhaustion is reported"
        );
        drop(held);
    });
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = try_http_get(&server.http, "/healthz") {
            break;
        }
        assert!(
            Instant::now() < until,
            "the server does not answer again once the connections close"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A SIP-over-TCP connection no phone is registered over is closed once it goes without a
/// message for the idle time (here 3 s): after its OPTIONS is answered, line-break keepalives
/// do not keep it.
#[test]
fn an_unregistered_sip_tcp_connection_is_closed_when_idle() {
    let op = Operator::new();
    let server = serve_with(&op, &[("DIALBRIDGE_SIP_TCP_IDLE_UNREGISTERED_SECS", "3")]);
    let sip: SocketAddr = server.sip.parse().unwrap();
    runtime().block_on(async {
        let mut stream = connect_from("127.0.0.3", sip).await.unwrap();
        let port = stream.local_addr().unwrap().port();
        let options = format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.3:{port};branch=z9hG4bK-idle\r\nMax-Forwards: 70\r\nFrom: <sip:idle@127.0.0.3>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: idle@127.0.0.3\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        stream.write_all(options.as_bytes()).await.unwrap();
        let mut answer = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.unwrap().unwrap();
        assert!(answer[..n].starts_with(b"SIP/2.0 200"), "{}", String::from_utf8_lossy(&answer[..n]));
        let (mut read, mut write) = stream.into_split();
        tokio::spawn(async move {
            while write.write_all(b"\r\n\r\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let started = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            let mut sink = [0u8; 256];
            loop {
                match read.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "still open after 30 s");
        assert!(started.elapsed() >= Duration::from_secs(2), "closed before its idle time: {:?}", started.elapsed());
    });
}

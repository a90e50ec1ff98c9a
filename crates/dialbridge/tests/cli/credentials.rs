//! Credentials that cannot be guessed: wrong passwords are counted per (source, account), and
//! past the budget that pair is refused without being evaluated, the right password included,
//! while other sources for that account and other accounts from that source still work. The
//! guessing clients come from 127.0.0.2, the legitimate ones from 127.0.0.3.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::exhaustion::{connect_from, runtime};
use super::{admin_auth, http_get, legacy_world, md5_hex};

/// A GET over a kept-alive connection: status, the response head, and the body.
async fn get_on(connection: &mut BufReader<TcpStream>, path: &str) -> (u16, String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    connection.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        connection.read_line(&mut line).await.unwrap();
        if line.trim_end().is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    connection.read_exact(&mut body).await.unwrap();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, String::from_utf8(body).unwrap())
}

async fn connection_from(source: &str, server: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(connect_from(source, server).await.unwrap())
}

/// How many password hashes the server has evaluated.
fn password_checks(http: &str) -> u64 {
    let (_, metrics) = http_get(http, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("dialbridge_http_password_checks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no password check counter: {metrics}"))
}

const GUESSES: usize = 1_000;

#[test]
fn guessing_a_password_is_throttled_per_source_and_account() {
    let w = legacy_world();
    let http: SocketAddr = w.server.http.parse().unwrap();
    let right = md5_hex("1234");
    let outcall = |cno: &str, pwd: &str| {
        format!("/interface/PreviewOutcall?enterpriseId=3000001&cno={cno}&pwd={pwd}&customerNumber=13800138000")
    };
    let before = password_checks(&w.server.http);
    runtime().block_on(async {
        let mut guesser = connection_from("127.0.0.2", http).await;
        for i in 0..GUESSES {
            let (_, _, body) = get_on(&mut guesser, &outcall("2000", &md5_hex(&format!("guess{i}")))).await;
            assert_eq!(body, r#"{"res":"3"}"#);
        }
        let evaluated = password_checks(&w.server.http) - before;
        assert!(evaluated <= 10, "{evaluated} of {GUESSES} wrong passwords were evaluated");
        // Throttled: the right password from the guessing source is refused unheard too.
        let (_, _, body) = get_on(&mut guesser, &outcall("2000", &right)).await;
        assert_eq!(body, r#"{"res":"3"}"#);
        // The same agent from another source, and another account from the guessing source.
        let mut elsewhere = connection_from("127.0.0.3", http).await;
        let (_, _, body) = get_on(&mut elsewhere, &outcall("2000", &right)).await;
        assert_ne!(body, r#"{"res":"3"}"#, "the agent itself is not locked out");
        let admin = format!(
            "/interface/PreviewOutcall?{}&cno=2000&customerNumber=13800138000",
            admin_auth()
        );
        let (_, _, body) = get_on(&mut guesser, &admin).await;
        assert_ne!(body, r#"{"res":"3"}"#, "another account from the guessing source: {body}");

        // The admin seed family: the same.
        let seed_for = |pwd: &str| {
            format!("/interface/client/ClientOnline?enterpriseId=3000001&userName=admin&seed=4711&pwd={pwd}&cno=2000&bindTel=801&type=2")
        };
        for i in 0..GUESSES {
            let (_, _, body) = get_on(&mut guesser, &seed_for(&md5_hex(&format!("guess{i}")))).await;
            assert!(body.contains(r#""code":"3""#), "{body}");
        }
        let right_seed = md5_hex(&format!("{}4711", md5_hex("admin-secret")));
        let (_, _, body) = get_on(&mut guesser, &seed_for(&right_seed)).await;
        assert!(body.contains(r#""code":"3""#), "throttled, the right seed too: {body}");
        let (_, _, body) = get_on(&mut elsewhere, &seed_for(&right_seed)).await;
        assert!(!body.contains(r#""code":"3""#), "another source: {body}");
        let rival = md5_hex(&format!("{}4711", md5_hex("rival-secret")));
        let (_, _, body) = get_on(
            &mut guesser,
            &format!("/interface/client/ClientOnline?enterpriseId=3000002&userName=admin&seed=4711&pwd={rival}&cno=2000&bindTel=801&type=2"),
        )
        .await;
        assert!(!body.contains(r#""code":"3""#), "another enterprise's admin from the guessing source: {body}");

        // The event stream's session: 429 with Retry-After once throttled.
        let session = |pwd: &str| format!("/api/v1/session?enterpriseId=3000001&cno=2001&pwd={pwd}");
        let mut statuses = Vec::new();
        for i in 0..30 {
            let (status, head, _) = get_on(&mut guesser, &session(&md5_hex(&format!("guess{i}")))).await;
            if status == 429 {
                assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
            }
            statuses.push(status);
        }
        assert_eq!(statuses[0], 401);
        assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    });
}

const DEFAULT_HASH: [(&str, &str); 2] = [
    ("DIALBRIDGE_PASSWORD_HASH_MEMORY_KIB", "19456"),
    ("DIALBRIDGE_PASSWORD_HASH_ITERATIONS", "2"),
];

/// Sixteen clients on four other addresses guess passwords as fast as they are answered, at the
/// default password-hash cost, for known agents and for names that do not exist. Meanwhile the
/// agent's own PreviewOutcalls (its password hashed at the default cost too) are accepted and
/// its phone is called each time.
#[test]
fn a_flood_of_wrong_guesses_at_the_default_hash_cost_does_not_stop_calls() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let (op, carrier_port) = super::legacy_store();
    let mut update = op.command(&[
        "admin",
        "agent",
        "update",
        "--enterprise",
        "3000001",
        "--cno",
        "2000",
        "--password",
        "1234",
    ]);
    update.envs(DEFAULT_HASH);
    assert!(update.output().unwrap().status.success());
    let server = super::serve_with(&op, &DEFAULT_HASH);
    let calls = 3;
    let phone =
        |port| dialbridge_testkit::SippBuilder::answering("phone_uas.xml", port, calls).settings(&[("mode", "busy")]);
    let carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 1);
    let (phone, _carrier) = super::phone_with_carrier(&server.http, &server.sip, phone, carrier);
    let http: SocketAddr = server.http.parse().unwrap();
    // A PreviewOutcall once the agent's previous call is over (33/13 while it still runs).
    let place = || {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let res = super::outcall(&server.http, "customerNumber=13800138000")["res"].clone();
            if (res != "33" && res != "13") || std::time::Instant::now() > until {
                return res;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    // The agent's first call, before the flood (its login is then remembered).
    assert_eq!(place(), "0");

    let checks_before = password_checks(&server.http);
    let rt = runtime();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..16)
        .map(|i| {
            let stop = stop.clone();
            rt.spawn(async move {
                let source = format!("127.0.0.{}", 2 + i % 4);
                let mut connection = connection_from(&source, http).await;
                let mut sent = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let pwd = md5_hex(&format!("guess{i}-{sent}"));
                    // Known agents on PreviewOutcall; names that do not exist on the session
                    // (PreviewOutcall answers those 8 before any hash; the session hashes them
                    // against the dummy all the same).
                    let path = match sent % 3 {
                        0 => format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={pwd}&customerNumber=13800138000"),
                        1 => format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2001&pwd={pwd}&customerNumber=13800138000"),
                        _ => format!("/api/v1/session?enterpriseId=3000001&cno={}&pwd={pwd}", 3000 + sent % 100),
                    };
                    let (status, _, body) = get_on(&mut connection, &path).await;
                    let refused = ["3", "10"].iter().any(|res| body == format!(r#"{{"res":"{res}"}}"#))
                        || [401, 429, 503].contains(&status);
                    assert!(refused, "{status} {body}");
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    // The calls start while the flood's first guesses (a few hundred, until each address and
    // name has used its budget) are being hashed.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 1..calls {
        assert_eq!(place(), "0", "a call placed during the flood is accepted");
    }
    let evaluated = password_checks(&server.http) - checks_before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let guesses: u32 = rt.block_on(async {
        let mut total = 0;
        for client in flood {
            total += client.await.unwrap();
        }
        total
    });
    assert!(
        evaluated >= 10,
        "the flood reached the password hash: {evaluated} hashed"
    );
    assert!(guesses > 100, "a flood: {guesses} guesses");
    // Each accepted call was placed: one CDR each (the last may still be ringing the agent).
    let cdrs = op.json(&["admin", "cdr", "list", "--enterprise", "3000001"]);
    let cdrs = cdrs.as_array().unwrap();
    assert_eq!(cdrs.len(), calls as usize, "{cdrs:?}");
    drop(phone);
}

//! Pushes to a CRM's web server: a real HTTP receiver started by the test.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// One request the receiver got, and the status it answered.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    pub(crate) body: String,
    status: u16,
    /// When it arrived.
    at: Instant,
}

/// An HTTP receiver on 127.0.0.1 that records every request; a path whose first segment is in
/// `failures` answers 500 that many times first.
pub(crate) struct Receiver {
    pub(crate) address: String,
    log: Arc<Mutex<Vec<Received>>>,
}

pub(crate) fn receiver(failures: &[(&str, u32)]) -> Receiver {
    receiver_on(TcpListener::bind("127.0.0.1:0").unwrap(), failures)
}

fn receiver_on(listener: TcpListener, failures: &[(&str, u32)]) -> Receiver {
    let address = listener.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(Vec::new()));
    let remaining: Arc<Mutex<HashMap<String, u32>>> =
        Arc::new(Mutex::new(failures.iter().map(|(p, n)| (p.to_string(), *n)).collect()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            let (head, body) = loop {
                let Ok(n) = stream.read(&mut buf) else {
                    break (String::new(), String::new());
                };
                if n == 0 {
                    break (String::new(), String::new());
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break (head.to_owned(), body[..length].to_owned());
                    }
                }
            };
            let mut lines = head.lines();
            let request_line: Vec<String> = lines
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            let headers: HashMap<String, String> = lines
                .filter_map(|l| {
                    l.split_once(':')
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                })
                .collect();
            let target = request_line.get(1).cloned().unwrap_or_default();
            let segment = target
                .trim_start_matches('/')
                .split(['/', '?'])
                .next()
                .unwrap_or("")
                .to_owned();
            let status = {
                let mut r = remaining.lock().unwrap();
                match r.get_mut(&segment) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        500
                    }
                    _ => 200,
                }
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 21\r\nConnection: close\r\n\r\n{{\"result\":\"success\"}}"
            );
            sink.lock().unwrap().push(Received {
                method: request_line.first().cloned().unwrap_or_default(),
                target,
                headers,
                body,
                status,
                at: Instant::now(),
            });
        }
    });
    Receiver { address, log }
}

impl Receiver {
    pub(crate) fn delivered(&self, path: &str) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == 200 && r.target.starts_with(path))
            .cloned()
            .collect()
    }

    pub(crate) fn wait_for(&self, path: &str, deadline: Duration) -> Received {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Some(r) = self.delivered(path).into_iter().next() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no delivery to {path}: {:?}", self.log.lock().unwrap());
    }
}

fn form(text: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn a_bridged_call_pushes_ringing_bridge_and_hangup_in_order() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = w.server.http.clone();
    let crm = receiver(&[("hangup", 2)]);
    let r = &crm.address;
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "ring",
        "--type",
        "ringing",
        "--method",
        "get",
        "--url",
        &format!("http://{r}/ring?model=ringpush"),
    ]);
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "bridge",
        "--type",
        "bridge",
        "--url",
        &format!("http://{r}/bridge"),
        "--map",
        "uid=uniqueId",
        "--map",
        "ph=customerNumber",
    ]);
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "hang",
        "--type",
        "hangup",
        "--url",
        &format!("http://{r}/hangup?model=onhookpush"),
    ]);
    let secret = w.op.json(&[
        "admin",
        "push-target",
        "secret",
        "--enterprise",
        "3000001",
        "--name",
        "hang",
    ])["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    let (mut phone, mut carrier) = phone_and_carrier(&w, &[], &[("talk_ms", "800")]);
    let reply = outcall(
        &a,
        "customerNumber=13800138000&sync=1&userField=order%3D17%26x%3D%E4%B8%AD",
    );
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(carrier.finish(Duration::from_secs(20)) && phone.finish(Duration::from_secs(20)));

    // The hang-up receiver fails twice: the push arrives later, once, still after the others.
    let hangup = crm.wait_for("/hangup", Duration::from_secs(20));
    let ringing = crm.wait_for("/ring", Duration::from_secs(1));
    let bridge = crm.wait_for("/bridge", Duration::from_secs(1));
    let log = crm.log.lock().unwrap().clone();
    let position = |path: &str| {
        log.iter()
            .position(|r| r.status == 200 && r.target.starts_with(path))
            .unwrap()
    };
    assert!(
        position("/ring") < position("/bridge") && position("/bridge") < position("/hangup"),
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|r| r.target.starts_with("/hangup")).count(),
        3,
        "two failures, then delivered"
    );
    let ids: std::collections::HashSet<_> = log
        .iter()
        .filter(|r| r.target.starts_with("/hangup"))
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), 1, "the same event id every time: a receiver can deduplicate");
    assert_eq!(crm.delivered("/hangup").len(), 1, "delivered exactly once");

    // Hang-up: a form POST, the target's own query kept in the URL, the legacy names.
    assert_eq!(hangup.method, "POST");
    assert_eq!(hangup.target, "/hangup?model=onhookpush");
    let fields = form(&hangup.body);
    assert_eq!(fields["cdr_main_unique_id"], unique_id);
    assert_eq!(fields["cdr_status"], "28");
    assert_eq!(fields["userField"], "order=17&x=中");
    assert_eq!(fields["cdr_customer_number_type"], "2");
    assert_eq!(fields["cdr_number_trunk"], "02160001234");
    assert!(fields["cdr_bridge_time"].parse::<i64>().unwrap() >= fields["cdr_start_time"].parse::<i64>().unwrap());
    assert!(fields["cdr_end_time"].parse::<i64>().unwrap() >= fields["cdr_bridge_time"].parse::<i64>().unwrap());
    // The signature verifies with the target's secret.
    let expected = dialbridge_push::sign::signature(
        &secret,
        &hangup.headers["webhook-id"],
        hangup.headers["webhook-timestamp"].parse().unwrap(),
        &hangup.body,
    );
    assert_eq!(Some(&hangup.headers["webhook-signature"]), expected.as_ref());

    // Ringing: a GET, the parameters after the target's own query.
    assert_eq!(ringing.method, "GET");
    let (path, query) = ringing.target.split_once('?').unwrap();
    assert_eq!(path, "/ring");
    let q = form(query);
    assert_eq!(
        (q["model"].as_str(), q["name"].as_str(), q["uniqueId"].as_str()),
        ("ringpush", "ringing", unique_id.as_str())
    );
    // Bridge: exactly the enterprise's mapped names.
    let b = form(&bridge.body);
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(
        (b["uid"].as_str(), b["ph"].as_str()),
        (unique_id.as_str(), "13800138000")
    );
    // The operator sees the deliveries.
    let delivered = w.op.json(&[
        "admin",
        "outbox",
        "list",
        "--enterprise",
        "3000001",
        "--state",
        "delivered",
    ]);
    assert_eq!(delivered.as_array().unwrap().len(), 3);
}

/// A receiver that accepts connections and never answers.
fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    address
}

#[test]
fn a_dead_receiver_of_one_enterprise_holds_back_no_one_else() {
    let w = legacy_world();
    let a = w.server.http.clone();
    let hole = black_hole();
    let crm = receiver(&[]);
    // Enterprise A's status pushes go into a black hole (with a long timeout); B's to a CRM.
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "st",
        "--type",
        "agent_status",
        "--timeout-ms",
        "60000",
        "--url",
        &format!("http://{hole}/status"),
    ]);
    create_agent(&w.op, "3000002", "3000", "Zed", "z");
    w.op.ok(&[
        "admin",
        "extension",
        "set",
        "--enterprise",
        "3000002",
        "--number",
        "801",
        "--password",
        "p",
    ]);
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000002",
        "--name",
        "st",
        "--type",
        "agent_status",
        "--url",
        &format!("http://{}/status", crm.address),
    ]);
    let rival = format!(
        "enterpriseId=3000002&userName=admin&seed=5&pwd={}",
        md5_hex(&format!("{}5", md5_hex("rival-secret")))
    );
    for round in 0..5 {
        // A's agent changes state five times (each a push stuck behind the black hole)...
        let (on, off) = ("ClientOnline?", "ClientOffline?");
        let a_path = if round % 2 == 0 { on } else { off };
        json_get(
            &a,
            &format!("/interface/client/{a_path}{}&cno=2000&bindTel=801&type=2", admin_auth()),
        );
        // ...and so does B's.
        let b_path = if round % 2 == 0 { on } else { off };
        let r = json_get(
            &a,
            &format!("/interface/client/{b_path}{rival}&cno=3000&bindTel=801&type=2"),
        );
        assert_eq!(r["code"], "0", "{r}");
    }
    // B's five pushes all arrive, in order, while A's are still outstanding.
    let deadline = Instant::now() + Duration::from_secs(10);
    while crm.delivered("/status").len() < 5 {
        assert!(
            Instant::now() < deadline,
            "B's pushes were held back: {:?}",
            crm.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let statuses: Vec<String> = crm
        .delivered("/status")
        .iter()
        .map(|r| form(&r.body)["loginStatus"].clone())
        .collect();
    assert_eq!(statuses, ["online", "offline", "online", "offline", "online"]);
    let pending = w.op.json(&[
        "admin",
        "outbox",
        "list",
        "--enterprise",
        "3000001",
        "--state",
        "pending",
    ]);
    assert_eq!(
        pending.as_array().unwrap().len(),
        5,
        "A's pushes are still waiting: {pending}"
    );
    // And calls go on: A's agent is served at once (res 9: its phone is not registered).
    assert_eq!(outcall(&a, "customerNumber=13800138000")["res"], "9");
}

#[test]
fn pushes_pending_when_the_server_is_killed_are_delivered_after_restart() {
    let w = legacy_world();
    // The CRM is down: nothing listens on its port yet.
    let port = dialbridge_testkit::free_port();
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "st",
        "--type",
        "agent_status",
        "--url",
        &format!("http://127.0.0.1:{port}/status"),
    ]);
    alice_online_on_801(&w.server.http);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = w.op.json(&[
            "admin",
            "outbox",
            "list",
            "--enterprise",
            "3000001",
            "--state",
            "pending",
        ]);
        if pending[0]["attempts"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the push was never attempted: {pending}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let LegacyWorld { op, mut server, .. } = w;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    // The CRM comes back, then the server.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let crm = receiver_on(listener, &[]);
    let _server = serve(&op);
    let status = crm.wait_for("/status", Duration::from_secs(20));
    assert_eq!(form(&status.body)["loginStatus"], "online");
    assert_eq!(crm.delivered("/status").len(), 1);
}

#[test]
fn the_json_format_sends_one_signed_object_per_event() {
    let w = legacy_world();
    let crm = receiver(&[]);
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "modern",
        "--type",
        "agent_status",
        "--format",
        "json",
        "--url",
        &format!("http://{}/events", crm.address),
    ]);
    let secret = w.op.json(&[
        "admin",
        "push-target",
        "secret",
        "--enterprise",
        "3000001",
        "--name",
        "modern",
    ])["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    json_get(
        &w.server.http,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=13900139000&type=1&status=2&description=training",
            admin_auth()
        ),
    );
    let got = crm.wait_for("/events", Duration::from_secs(10));
    assert_eq!(got.method, "POST");
    assert_eq!(got.headers["content-type"], "application/json");
    let event: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(event["type"], "agent_status");
    assert_eq!(event["id"], got.headers["webhook-id"].as_str());
    assert!(event["stream"].as_str().unwrap().starts_with("agent:"));
    assert_eq!(event["data"]["loginStatus"], "pause");
    assert_eq!(event["data"]["pauseDescription"], "training");
    assert_eq!(event["data"]["bindTel"], "13900139000");
    assert_eq!(event["data"]["deviceStatus"], "idle");
    let expected = dialbridge_push::sign::signature(
        &secret,
        &got.headers["webhook-id"],
        got.headers["webhook-timestamp"].parse().unwrap(),
        &got.body,
    );
    assert_eq!(Some(&got.headers["webhook-signature"]), expected.as_ref());
}

#[test]
fn during_a_secret_rotation_both_secrets_sign() {
    let w = legacy_world();
    let crm = receiver(&[]);
    let op = |args: &[&str]| w.op.json(args);
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "st",
        "--type",
        "agent_status",
        "--url",
        &format!("http://{}/s", crm.address),
    ]);
    let old = op(&[
        "admin",
        "push-target",
        "secret",
        "--enterprise",
        "3000001",
        "--name",
        "st",
    ])["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let new = op(&[
        "admin",
        "push-target",
        "rotate-secret",
        "--enterprise",
        "3000001",
        "--name",
        "st",
    ])["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old, new);
    json_get(
        &w.server.http,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=13900139000&type=1",
            admin_auth()
        ),
    );
    let got = crm.wait_for("/s", Duration::from_secs(10));
    let sign = |secret: &str| {
        dialbridge_push::sign::signature(
            secret,
            &got.headers["webhook-id"],
            got.headers["webhook-timestamp"].parse().unwrap(),
            &got.body,
        )
        .unwrap()
    };
    assert_eq!(
        got.headers["webhook-signature"],
        format!("{} {}", sign(&new), sign(&old))
    );
    w.op.ok(&[
        "admin",
        "push-target",
        "drop-old-secret",
        "--enterprise",
        "3000001",
        "--name",
        "st",
    ]);
    json_get(
        &w.server.http,
        &format!("/interface/client/ClientOffline?{}&cno=2000", admin_auth()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while crm.delivered("/s").len() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = crm.delivered("/s")[1].clone();
    let expected = dialbridge_push::sign::signature(
        &new,
        &second.headers["webhook-id"],
        second.headers["webhook-timestamp"].parse().unwrap(),
        &second.body,
    )
    .unwrap();
    assert_eq!(
        second.headers["webhook-signature"], expected,
        "the old secret no longer signs"
    );
}

#[test]
fn https_targets_are_attempted_over_tls() {
    let w = legacy_world();
    let port = dialbridge_testkit::free_port();
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "tls",
        "--type",
        "agent_status",
        "--url",
        &format!("https://127.0.0.1:{port}/s"),
    ]);
    json_get(
        &w.server.http,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=13900139000&type=1",
            admin_auth()
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = w.op.json(&[
            "admin",
            "outbox",
            "list",
            "--enterprise",
            "3000001",
            "--state",
            "pending",
        ]);
        if let Some(error) = pending[0]["last_error"].as_str() {
            // Nothing listens there: a connection error, not "https is not supported".
            assert!(error.starts_with("connection") && !error.contains("scheme"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "{pending}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An older CRM sends `userField` percent-encoded in GBK and says so; the CDR query answers it
/// as the same characters (in UTF-8, as every reply), a UTF-8 push target receives it in UTF-8
/// and one set to `--charset gbk` in GBK.
#[test]
fn a_gbk_user_field_comes_back_as_the_same_characters_and_a_gbk_target_gets_gbk() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = w.server.http.clone();
    let crm = receiver(&[]);
    let r = &crm.address;
    for (name, charset) in [("utf8", "utf-8"), ("gbk", "gbk")] {
        w.op.ok(&[
            "admin",
            "push-target",
            "set",
            "--enterprise",
            "3000001",
            "--name",
            name,
            "--type",
            "hangup",
            "--charset",
            charset,
            "--url",
            &format!("http://{r}/{name}"),
        ]);
    }
    let (mut phone, mut carrier) = phone_and_carrier(&w, &[], &[("talk_ms", "500")]);
    // "张三 订单" in GBK.
    let gbk_user_field = "%D5%C5%C8%FD+%B6%A9%B5%A5";
    let reply = outcall(
        &a,
        &format!("customerNumber=13800138000&sync=1&charset=GBK&userField={gbk_user_field}"),
    );
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(carrier.finish(Duration::from_secs(20)) && phone.finish(Duration::from_secs(20)));

    assert_eq!(cdr_row(&a, &unique_id)["userField"], "张三 订单");
    let utf8 = crm.wait_for("/utf8", Duration::from_secs(20));
    assert_eq!(utf8.headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(form(&utf8.body)["userField"], "张三 订单");
    let gbk = crm.wait_for("/gbk", Duration::from_secs(20));
    assert_eq!(
        gbk.headers["content-type"],
        "application/x-www-form-urlencoded; charset=GBK"
    );
    assert!(
        gbk.body.contains(&format!("userField={gbk_user_field}")),
        "{}",
        gbk.body
    );
}

/// Ringing, bridge and hang-up pushes of one call to three targets (three queues) of a CRM
/// whose ringing URL fails `ringing_failures` times first; the enterprise's `push_order` set
/// by `extra` admin flags. Returns the server (still delivering) and the receiver once the
/// hang-up was delivered.
fn call_with_three_targets(ringing_failures: u32, extra: &[&str]) -> (LegacyWorld, Receiver) {
    let w = legacy_world();
    let crm = receiver(&[("ring", ringing_failures)]);
    let r = &crm.address;
    for (name, push_type) in [("ring", "ringing"), ("bridge", "bridge"), ("hangup", "hangup")] {
        w.op.ok(&[
            "admin",
            "push-target",
            "set",
            "--enterprise",
            "3000001",
            "--name",
            name,
            "--type",
            push_type,
            "--url",
            &format!("http://{r}/{name}"),
        ]);
    }
    let mut update = vec!["admin", "enterprise", "update", "--id", "3000001"];
    update.extend_from_slice(extra);
    w.op.ok(&update);
    let (mut phone, mut carrier) = phone_and_carrier(&w, &[], &[("talk_ms", "300")]);
    let reply = outcall(&w.server.http, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    assert!(carrier.finish(Duration::from_secs(20)) && phone.finish(Duration::from_secs(20)));
    crm.wait_for("/hangup", Duration::from_secs(30));
    crm.wait_for("/bridge", Duration::from_secs(1));
    (w, crm)
}

impl Receiver {
    /// The paths as they were acknowledged (answered 200), in order.
    fn acknowledged(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.target.clone())
            .collect()
    }
}

/// `per_call` (the default): the ringing push fails twice and is retried, and the call's
/// bridge and hang-up pushes, to other targets, wait for it.
#[test]
fn per_call_order_holds_across_targets_while_one_retries() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let (_server, crm) = call_with_three_targets(2, &[]);
    crm.wait_for("/ring", Duration::from_secs(1));
    assert_eq!(crm.acknowledged(), ["/ring", "/bridge", "/hangup"]);
}

/// `per_target`: each target's queue goes on its own, so the bridge and the hang-up go while
/// the ringing push is being retried.
#[test]
fn per_target_order_lets_other_targets_go_ahead() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let (_server, crm) = call_with_three_targets(1_000, &["--push-order", "per_target"]);
    let mut acknowledged = crm.acknowledged();
    acknowledged.sort();
    assert_eq!(acknowledged, ["/bridge", "/hangup"]);
}

/// A target that stays down holds the call's later pushes back for the bound (2 s here), from
/// when its own push happened, then they go; its own pushes wait for it.
#[test]
fn per_call_order_waits_for_a_dead_target_only_up_to_its_bound() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let (_server, crm) = call_with_three_targets(1_000, &["--push-order-wait-secs", "2"]);
    assert_eq!(crm.acknowledged(), ["/bridge", "/hangup"]);
    let log = crm.log.lock().unwrap().clone();
    let first_ring = log.iter().find(|r| r.target == "/ring").unwrap().at;
    let bridge = log.iter().find(|r| r.target == "/bridge").unwrap().at;
    // Generous both ways (the machine may be loaded): it waited, and not for the default 10 s.
    let waited = bridge.duration_since(first_ring);
    assert!(
        waited >= Duration::from_millis(1_000) && waited < Duration::from_secs(8),
        "the bridge went {waited:?} after the first ringing attempt: {log:?}"
    );
}

//! The live event stream: `/api/v1/session` and the `/api/v1/events` WebSocket.

use super::*;

pub(super) type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

pub(super) fn token(address: &str, query: &str) -> String {
    let r = json_get(address, &format!("/api/v1/session?{query}"));
    r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {r}"))
        .to_owned()
}

pub(super) fn connect(address: &str, token: &str, since: Option<i64>) -> Socket {
    let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
    let (socket, _) = tungstenite::connect(format!("ws://{address}/api/v1/events?token={token}{since}")).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = socket.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    socket
}

pub(super) fn next(socket: &mut Socket) -> serde_json::Value {
    loop {
        match socket.read().expect("a message within 10 s") {
            tungstenite::Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            _ => continue,
        }
    }
}

#[test]
fn an_agent_sees_a_snapshot_then_its_events_and_catches_up_after_a_reconnect() {
    let w = legacy_world();
    let a = &w.server.http;
    let agent = token(a, &format!("enterpriseId=3000001&cno=2000&pwd={}", md5_hex("1234")));
    let mut socket = connect(a, &agent, None);
    let snapshot = next(&mut socket);
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(
        snapshot["agents"].as_array().unwrap().len(),
        1,
        "an agent's snapshot is its own"
    );
    assert_eq!(snapshot["agents"][0]["loginStatus"], "offline");
    assert_eq!(
        snapshot["viewer"], "agent",
        "what the toolbar checks: it refuses an admin's token"
    );

    let client = |endpoint: &str, extra: &str| {
        json_get(
            a,
            &format!("/interface/client/{endpoint}?{}&cno=2000&{extra}", admin_auth()),
        )
    };
    assert_eq!(client("ClientOnline", "bindTel=13900139000&type=1")["code"], "0");
    let online = next(&mut socket);
    assert_eq!(
        (online["type"].as_str(), online["data"]["loginStatus"].as_str()),
        (Some("status"), Some("online"))
    );
    assert_eq!(client("ChangeStatus", "type=2&description=lunch")["code"], "0");
    let paused = next(&mut socket);
    assert_eq!(paused["data"]["pauseDescription"], "lunch");
    assert!(paused["seq"].as_i64().unwrap() > online["seq"].as_i64().unwrap());
    let last_seen = paused["seq"].as_i64().unwrap();
    socket.close(None).ok();

    // Missed while disconnected, then replayed from the last sequence number.
    assert_eq!(client("ChangeStatus", "type=1")["code"], "0");
    assert_eq!(client("ClientOffline", "unBind=1")["code"], "0");
    let mut socket = connect(a, &agent, Some(last_seen));
    assert_eq!(next(&mut socket)["type"], "snapshot");
    let first = next(&mut socket);
    let second = next(&mut socket);
    assert_eq!(
        (
            first["data"]["loginStatus"].as_str(),
            second["data"]["loginStatus"].as_str()
        ),
        (Some("online"), Some("offline"))
    );
    assert!(first["seq"].as_i64().unwrap() > last_seen);

    // Another enterprise's admin sees none of it; a bad token is refused.
    let rival = token(
        a,
        &format!(
            "enterpriseId=3000002&userName=admin&seed=3&pwd={}",
            md5_hex(&format!("{}3", md5_hex("rival-secret")))
        ),
    );
    let mut theirs = connect(a, &rival, Some(0));
    let snapshot = next(&mut theirs);
    assert_eq!(snapshot["agents"], serde_json::json!([]));
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = theirs.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    }
    assert!(theirs.read().is_err(), "no event of enterprise 3000001 reaches 3000002");
    assert!(tungstenite::connect(format!("ws://{a}/api/v1/events?token=forged")).is_err());
    let (status, body) = http_get(
        a,
        &format!("/api/v1/session?enterpriseId=3000001&cno=2000&pwd={}", md5_hex("wrong")),
    );
    assert_eq!((status, body.as_str()), (401, r#"{"error":"authentication failed"}"#));
}

#[test]
fn a_real_call_streams_its_progress_in_order() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = w.server.http.clone();
    let (mut phone, mut carrier) = phone_and_carrier(&w, &[], &[("talk_ms", "500")]);
    let agent = token(&a, &format!("enterpriseId=3000001&cno=2000&pwd={}", md5_hex("1234")));
    let mut socket = connect(&a, &agent, None);
    assert_eq!(next(&mut socket)["agents"][0]["loginStatus"], "online");
    let reply = outcall(&a, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(carrier.finish(Duration::from_secs(20)) && phone.finish(Duration::from_secs(20)));
    let mut seen = Vec::new();
    let mut last_seq = 0;
    while !seen.contains(&"hangup".to_owned()) {
        let m = next(&mut socket);
        let seq = m["seq"].as_i64().unwrap();
        assert!(seq >= last_seq, "in order: {m}");
        last_seq = seq;
        let kind = m["type"].as_str().unwrap().to_owned();
        if kind != "status" {
            let id = m["data"]["uniqueId"]
                .as_str()
                .or(m["data"]["cdr_main_unique_id"].as_str())
                .unwrap();
            assert_eq!(id, unique_id);
        }
        seen.push(kind);
    }
    let calls: Vec<&str> = seen.iter().map(String::as_str).filter(|k| *k != "status").collect();
    assert_eq!(
        calls,
        [
            "previewOutcallStart",
            "previewOutcallRinging",
            "previewOutcallBridge",
            "hangup"
        ],
        "{seen:?}"
    );
    assert!(
        seen.iter().filter(|k| *k == "status").count() >= 3,
        "ringing, busy, wrap-up: {seen:?}"
    );
}

/// Retention bounds how far back a reconnect can replay: asking for events it has deleted gets
/// the snapshot, then a `gap` message instead of a silent hole, then what comes next.
#[test]
fn a_replay_from_before_what_retention_kept_reports_the_gap() {
    let (op, _carrier_port) = legacy_store();
    // Events are kept 0.864 s and swept every second.
    let server = serve_with(
        &op,
        &[
            ("DIALBRIDGE_RETENTION_PUSH_EVENTS_DAYS", "0.00001"),
            ("DIALBRIDGE_RETENTION_SWEEP_SECS", "1"),
        ],
    );
    let a = &server.http;
    let agent = token(a, &format!("enterpriseId=3000001&cno=2000&pwd={}", md5_hex("1234")));
    let mut socket = connect(a, &agent, None);
    assert_eq!(next(&mut socket)["type"], "snapshot");
    let client = |endpoint: &str, extra: &str| {
        json_get(
            a,
            &format!("/interface/client/{endpoint}?{}&cno=2000&{extra}", admin_auth()),
        )
    };
    assert_eq!(client("ClientOnline", "bindTel=13900139000&type=1")["code"], "0");
    let online = next(&mut socket)["seq"].as_i64().unwrap();
    socket.close(None).ok();

    let until = Instant::now() + Duration::from_secs(20);
    let gap = loop {
        let mut socket = connect(a, &agent, Some(online - 1));
        assert_eq!(next(&mut socket)["type"], "snapshot");
        let first = next(&mut socket);
        if first["type"] == "gap" {
            break (first, socket);
        }
        assert_eq!(first["seq"], online, "not swept yet: the event itself");
        assert!(Instant::now() < until, "the event was never swept");
        socket.close(None).ok();
        std::thread::sleep(Duration::from_millis(300));
    };
    let (gap, mut socket) = gap;
    assert_eq!(gap["seq"], online - 1);
    assert!(gap["data"]["missingThrough"].as_i64().unwrap() >= online, "{gap}");
    assert_eq!(client("ChangeStatus", "type=2&description=lunch")["code"], "0");
    let next_event = next(&mut socket);
    assert_eq!(next_event["data"]["pauseDescription"], "lunch", "{next_event}");
    assert!(next_event["seq"].as_i64().unwrap() > online);
}

/// Reads until the server closes the stream: how long that took, and the close code.
fn closed(socket: &mut Socket) -> (Duration, Option<u16>) {
    let started = Instant::now();
    loop {
        match socket.read() {
            Ok(tungstenite::Message::Close(frame)) => return (started.elapsed(), frame.map(|f| u16::from(f.code))),
            Ok(_) => continue,
            Err(_) => return (started.elapsed(), None),
        }
    }
}

fn refused(address: &str, token: &str) -> bool {
    tungstenite::connect(format!("ws://{address}/api/v1/events?token={token}")).is_err()
}

/// A session ends once its credential is revoked: a kick, a password change, a disable, a
/// deletion — each closes the open socket within a couple of seconds (close code 4001) and
/// refuses the token after; an admin's session ends when the admin's password changes.
#[test]
fn a_session_ends_when_its_credential_is_revoked() {
    let w = legacy_world();
    let a = &w.server.http;
    let agent = |password: &str| format!("enterpriseId=3000001&cno=2000&pwd={}", md5_hex(password));
    let revoked = |change: &dyn Fn(), password: &str| {
        let t = token(a, &agent(password));
        let mut socket = connect(a, &t, None);
        assert_eq!(next(&mut socket)["type"], "snapshot");
        change();
        let (took, code) = closed(&mut socket);
        assert_eq!(code, Some(4001), "closed as revoked");
        assert!(took < Duration::from_secs(5), "closed after {took:?}");
        assert!(refused(a, &t), "the token is refused after");
    };
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "agent"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--enterprise", "3000001", "--cno", "2000"]);
        w.op.ok(&all);
    };
    revoked(&|| admin(&["kick"]), "1234");
    revoked(&|| admin(&["update", "--password", "changed"]), "1234");
    revoked(&|| admin(&["disable"]), "changed");
    admin(&["update", "--active", "true"]);
    let delete = || {
        let admin_password = format!(
            "enterpriseId=3000001&userName=admin&password={}",
            md5_hex("admin-secret")
        );
        let r = json_get(
            a,
            &format!("/interfaceAction/clientInterface!delete.action?{admin_password}&cno=2000"),
        );
        assert_eq!(r["result"], "success", "{r}");
    };
    revoked(&delete, "changed");

    // An admin's session, until the admin's password changes.
    let pwd = md5_hex(&format!("{}4711", md5_hex("admin-secret")));
    let t = token(a, &format!("enterpriseId=3000001&userName=admin&seed=4711&pwd={pwd}"));
    let mut socket = connect(a, &t, None);
    assert_eq!(next(&mut socket)["type"], "snapshot");
    w.op.ok(&[
        "admin",
        "account",
        "set",
        "--enterprise",
        "3000001",
        "--user",
        "admin",
        "--password",
        "new-secret",
    ]);
    let (took, code) = closed(&mut socket);
    assert_eq!((code, took < Duration::from_secs(5)), (Some(4001), true), "{took:?}");
    assert!(refused(a, &t));
}

/// Sends a toolbar command on `socket` and returns its reply (skipping events).
pub(super) fn command(socket: &mut Socket, id: u64, command: &str, args: serde_json::Value) -> serde_json::Value {
    let message = serde_json::json!({"id": id, "command": command, "args": args});
    socket
        .send(tungstenite::Message::Text(message.to_string().into()))
        .unwrap();
    loop {
        let message = next(socket);
        if message["type"] == "reply" {
            assert_eq!(message["id"], id, "{message}");
            return message;
        }
    }
}

/// Commands act only for an agent's own token, and only once that socket logged in (so that the
/// one-toolbar-per-agent rule cannot be sidestepped); an admin's stream only observes.
#[test]
fn toolbar_commands_need_an_agent_that_logged_in_on_that_socket() {
    let w = legacy_world();
    let a = &w.server.http;
    let agent = token(a, &format!("enterpriseId=3000001&cno=2000&pwd={}", md5_hex("1234")));
    let mut socket = connect(a, &agent, None);
    assert_eq!(next(&mut socket)["viewer"], "agent");
    let refused = command(
        &mut socket,
        1,
        "previewOutcall",
        serde_json::json!({"tel": "13800138000"}),
    );
    assert_eq!(
        (&refused["ok"], &refused["code"]),
        (&false.into(), &"12".into()),
        "{refused}"
    );
    let unknown = command(&mut socket, 2, "teleport", serde_json::json!({}));
    assert_eq!(unknown["ok"], false, "{unknown}");
    let listed = command(&mut socket, 3, "lastCalls", serde_json::json!({}));
    assert_eq!(listed["data"]["calls"], serde_json::json!([]), "{listed}");

    let admin = token(a, &admin_auth());
    let mut observer = connect(a, &admin, None);
    assert_eq!(next(&mut observer)["viewer"], "admin");
    let refused = command(
        &mut observer,
        1,
        "login",
        serde_json::json!({"bindTel": "801", "type": 2}),
    );
    assert_eq!(
        (&refused["ok"], &refused["code"]),
        (&false.into(), &"3".into()),
        "{refused}"
    );
}

/// A toolbar pauses only with one of the enterprise's reasons (when it has a list), never with
/// the system's own.
#[test]
fn a_toolbar_pauses_with_the_enterprises_reasons_only() {
    let w = legacy_world();
    let a = &w.server.http;
    w.op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--pause-reasons",
        "休息,会议",
    ]);
    let agent = token(a, &format!("enterpriseId=3000001&cno=2000&pwd={}", md5_hex("1234")));
    let mut socket = connect(a, &agent, None);
    assert_eq!(next(&mut socket)["pauseReasons"], serde_json::json!(["休息", "会议"]));
    let login = command(
        &mut socket,
        1,
        "login",
        serde_json::json!({"bindTel": "13900139000", "type": 1}),
    );
    assert_eq!(login["ok"], true, "{login}");
    for (id, reason) in [(2, "pauseWrapup"), (3, "lunch")] {
        let refused = command(
            &mut socket,
            id,
            "pause",
            serde_json::json!({"pauseDescription": reason}),
        );
        assert_eq!(
            (&refused["ok"], &refused["code"]),
            (&false.into(), &"2".into()),
            "{refused}"
        );
    }
    let paused = command(&mut socket, 4, "pause", serde_json::json!({"pauseDescription": "会议"}));
    assert_eq!(paused["ok"], true, "{paused}");
}

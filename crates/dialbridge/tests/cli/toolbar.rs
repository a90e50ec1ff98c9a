//! The agent toolbar in a real browser: Debian's Chromium, headless, driven by puppeteer-core
//! (`tests/browser/toolbar.mjs`), against a real server, a SIPp phone registered as the agent's
//! extension and a SIPp carrier.

use serde_json::json;

use super::*;

/// Runs the browser script with `config`; what it saw.
fn drive(config: &Value) -> Value {
    let seen = run_browser_script("toolbar.mjs", config);
    assert_eq!(seen["errors"], json!([]), "{seen}");
    seen
}

/// The colours the toolbar draws each state in (its `STATE_COLOURS`).
const DESIGN: [(&str, [i64; 3]); 8] = [
    ("offline", [0x6b, 0x72, 0x80]),
    ("idle", [0x16, 0xa3, 0x4a]),
    ("paused", [0xd9, 0x77, 0x06]),
    ("calling", [0x25, 0x63, 0xeb]),
    ("ringing", [0x7c, 0x3a, 0xed]),
    ("talking", [0xdc, 0x26, 0x26]),
    ("wrapup", [0x08, 0x91, 0xb2]),
    ("onHold", [0xbe, 0x18, 0x5d]),
];

fn distance(a: &[i64; 3], b: &[i64; 3]) -> i64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Each screenshot's badge is nearest to its own state's design colour (its white label
/// lightens it, never towards another state's), and consecutive states differ.
fn check_rendering(seen: &Value) {
    // Each state the polling saw has its screenshot (the states themselves are recorded as
    // drawn, however briefly: `states`).
    // A state gone before its screenshot was taken has none (a later one may).
    let states: Vec<&str> = seen["polled"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|state| seen["colours"].get(state).is_some())
        .collect();
    let colour = |state: &str| -> [i64; 3] {
        let c = &seen["colours"][state];
        [0, 1, 2].map(|i| c[i].as_i64().unwrap_or_else(|| panic!("no colour for {state}: {seen}")))
    };
    for state in &states {
        let nearest = DESIGN
            .iter()
            .min_by_key(|(_, design)| distance(&colour(state), design))
            .unwrap()
            .0;
        assert_eq!(nearest, *state, "the badge of {state} is drawn {:?}", colour(state));
    }
    for pair in states.windows(2) {
        assert_ne!(colour(pair[0]), colour(pair[1]), "{pair:?}");
    }
}

/// What the call's states must include, in this order.
const CALL_STATES: [&str; 7] = ["idle", "calling", "ringing", "calling", "talking", "wrapup", "idle"];

fn check_call_states(seen: &Value) {
    check_states(seen, &CALL_STATES);
}

/// The states shown include `expected` in this order; dial is enabled only in idle and
/// wrap-up; each screenshot is drawn in its state's colour.
fn check_states(seen: &Value, expected: &[&str]) {
    let states: Vec<&str> = seen["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut expected = expected.iter().copied().peekable();
    for state in &states {
        if expected.peek() == Some(state) {
            expected.next();
        }
    }
    assert_eq!(expected.next(), None, "states shown: {states:?}");
    for (state, enabled) in seen["dialEnabled"].as_object().unwrap() {
        assert_eq!(
            enabled.as_bool(),
            Some(state == "idle" || state == "wrapup"),
            "dial in {state}: {seen}"
        );
    }
    check_rendering(seen);
}

/// The toolbar's agent and its one call, as any call's: one CDR, bridged, hung up on request,
/// with its hang-up push.
fn check_one_call(w: &LegacyWorld, crm: &super::pushes::Receiver) {
    let cdrs = w.op.json(&["admin", "cdr", "list", "--enterprise", "3000001"]);
    assert_eq!(cdrs.as_array().unwrap().len(), 1, "{cdrs}");
    assert_eq!(cdrs[0]["end_reason"], "HangUpRequested", "{cdrs}");
    assert_eq!(cdrs[0]["status"], 28, "{cdrs}");
    let hangup = crm.wait_for("/hangup", Duration::from_secs(20));
    assert!(hangup.body.contains("cdr_status=28"), "{}", hangup.body);
}

/// A SIPp phone registered as extension 801 that rings for `phone_ring_ms` before answering,
/// and the carrier, ringing 1.5 s (long enough for the toolbar to show each state).
fn ringing_phone_and_carrier(
    w: &LegacyWorld,
    phone_ring_ms: u32,
) -> (dialbridge_testkit::Sipp, dialbridge_testkit::Sipp) {
    let phone_port = dialbridge_testkit::free_port();
    let phone = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", phone_port, 1)
        .rtp_stream()
        .set("ring_ms", phone_ring_ms)
        .spawn();
    let carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", w.carrier_port, 1)
        .rtp_stream()
        .set("ring_ms", 1500)
        .spawn();
    register_extension_801(&w.server.sip, phone_port);
    (phone, carrier)
}

/// A CRM receiving the enterprise's hang-up pushes at `/hangup`.
pub(super) fn hang_up_push(w: &LegacyWorld) -> super::pushes::Receiver {
    let crm = super::pushes::receiver(&[]);
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
        &format!("http://{}/hangup", crm.address),
    ]);
    crm
}

#[test]
fn an_extension_agent_works_a_call_from_the_toolbar_page() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_chromium(&browser_dir()) {
        return;
    }
    let w = legacy_world();
    let crm = hang_up_push(&w);
    // Wrap-up long enough to be prolonged after its screenshot, on a loaded machine too.
    w.op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--pause-reasons",
        "休息,会议",
        "--wrapup-secs",
        "8",
        "--recording",
        "bridge",
    ]);
    let (mut phone, mut carrier) = ringing_phone_and_carrier(&w, 2500);
    let shots = tempfile::tempdir().unwrap();

    let seen = drive(&json!({
        "server": format!("http://{}", w.server.http),
        "enterpriseId": "3000001",
        "cno": "2000",
        "password": "1234",
        "type": 2,
        "bindTel": "801",
        "dial": "13800138000",
        "talkMs": 1000,
        "keypad": "5",
        "pauseRecordingMs": 1500,
        "hold": true,
        "pauseReason": "会议",
        "prolong": 3,
        "screenshots": shots.path(),
        "kickout": true,
        "admin": {"userName": "admin", "password": "admin-secret"},
    }));
    check_states(
        &seen,
        &[
            "idle", "calling", "ringing", "calling", "talking", "onHold", "talking", "wrapup", "idle",
        ],
    );
    assert_eq!(seen["keypadMessage"], "", "the keypad's digit was taken: {seen}");
    assert_eq!(
        seen["pausedWith"], "会议",
        "paused with a reason of the enterprise's list: {seen}"
    );
    assert_eq!(seen["prolonged"], true, "{seen}");
    // The recording's button paused it and resumed it: one pause of its length in the sidecar.
    let button = &seen["recordingButton"];
    assert_eq!(
        (button[0][1].as_str(), button[1][1].as_str(), button[2][1].as_str()),
        (Some("false"), Some("true"), Some("false")),
        "{seen}"
    );
    assert_ne!(button[0][0], button[1][0], "the label says what a click does: {seen}");
    let cdrs = w.op.json(&["admin", "cdr", "list", "--enterprise", "3000001"]);
    let unique_id = cdrs[0]["unique_id"].as_str().unwrap().to_owned();
    let file = wait_for_end(&w.op, &unique_id, Duration::from_secs(20))["record_file"]
        .as_str()
        .unwrap()
        .to_owned();
    let day = &file.split('-').nth(1).unwrap()[..8];
    let sidecar =
        w.op.dir
            .path()
            .join(format!("dialbridge-data/recordings/{day}/3000001/{file}"))
            .with_extension("json");
    let notes: Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let pauses = notes["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{notes}");
    let paused_ms = pauses[0]["toMs"].as_u64().unwrap() - pauses[0]["fromMs"].as_u64().unwrap();
    assert!((1200..=3500).contains(&paused_ms), "{notes}");
    let last = seen["lastCalls"][0].as_str().unwrap_or_default();
    assert!(last.contains("13800138000") && last.contains("双方接听"), "{seen}");
    for state in ["idle", "paused", "calling", "ringing", "talking", "onHold", "wrapup"] {
        assert!(seen["colours"].get(state).is_some(), "no screenshot of {state}: {seen}");
    }
    assert!(std::fs::read_dir(shots.path()).unwrap().count() >= 5);
    // One call for the double click; the toolbar's hang-up reached the carrier as a BYE.
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
    assert!(phone.finish(Duration::from_secs(30)), "{}", phone.logs());
    assert_eq!(
        carrier.logs().matches("INVITE call_id").count(),
        1,
        "{}",
        carrier.logs()
    );
    assert!(carrier.logs().contains("BYE received"), "{}", carrier.logs());
    check_one_call(&w, &crm);

    // A second toolbar login kicks the first out; an admin observer is not kicked.
    assert!(seen["kickedMessage"].as_str().is_some_and(|m| !m.is_empty()), "{seen}");
    assert_eq!(seen["secondState"], "idle", "{seen}");
    assert_eq!(seen["observerClosed"], Value::Null, "{seen}");
}

/// An agent on a telephone: its leg goes out through the trunk too (the carrier answers both).
#[test]
fn a_telephone_agent_works_a_call_from_the_toolbar_page() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_chromium(&browser_dir()) {
        return;
    }
    let w = legacy_world();
    let crm = hang_up_push(&w);
    let mut carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", w.carrier_port, 2)
        .rtp_stream()
        .set("ring_ms", 2000)
        .spawn();
    let shots = tempfile::tempdir().unwrap();
    let seen = drive(&json!({
        "server": format!("http://{}", w.server.http),
        "enterpriseId": "3000001",
        "cno": "2000",
        "password": "1234",
        "type": 1,
        "bindTel": "13900139000",
        "dial": "13800138000",
        "talkMs": 500,
        "hold": true,
        "reloadDuringCall": true,
        "breakLine": true,
        "pauseAfterCall": "休息",
        "screenshots": shots.path(),
        "lang": "en",
    }));
    // The pause asked for during the call is where the agent goes when the wrap-up ends (the
    // server tells it), never idle in between.
    check_states(
        &seen,
        &[
            "idle", "calling", "ringing", "calling", "talking", "onHold", "talking", "wrapup", "paused",
        ],
    );
    let states = seen["states"].as_array().unwrap();
    let wrapup = states.iter().position(|s| s == "wrapup").unwrap();
    assert!(!states[wrapup..].contains(&json!("idle")), "{seen}");
    // A lost connection was told, then resumed (the call was placed on the new socket).
    assert_eq!(seen["lostMessage"], "Connection lost, reconnecting…", "{seen}");
    assert_eq!(seen["reconnected"], true, "{seen}");
    // The page reloaded during the hold showed the call as it was.
    let after_reload = seen["afterReload"].as_array().expect("reloaded");
    assert!(after_reload.contains(&json!("onHold")), "{seen}");
    assert!(!after_reload.contains(&json!("calling")), "{seen}");
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
    let logs = carrier.logs();
    assert_eq!(
        logs.matches("INVITE call_id").count(),
        2,
        "the agent's leg and the customer's: {logs}"
    );
    assert_eq!(logs.matches("BYE received").count(), 2, "{logs}");
    check_one_call(&w, &crm);
}

/// A CRM's page on another origin serving `page` to every request (the tests' CRM web server).
fn crm_page_server(page: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let mut stream = stream;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    origin
}

/// The WebSocket handshake's status for a page of `origin`.
fn handshake_status(http: &str, token: &str, origin: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET /api/v1/events?token={token} HTTP/1.1\r\nHost: {http}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    )
    .unwrap();
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The widget in a CRM's page on another origin, with a token the CRM's backend minted (admin
/// seed + cno): the page never sees a password. Only origins the enterprise allows connect.
#[test]
fn the_widget_embedded_in_a_crm_page_works_a_call_with_a_crm_minted_token() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_chromium(&browser_dir()) {
        return;
    }
    let w = legacy_world();
    let crm = hang_up_push(&w);
    let server = format!("http://{}", w.server.http);
    let minted = http_post_form(&w.server.http, "/api/v1/session", &format!("{}&cno=2000", admin_auth()));
    let token = minted["token"]
        .as_str()
        .expect("an agent token for the CRM's page")
        .to_owned();
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="{server}/toolbar/toolbar.css"></head>
<body><h1>Acme CRM</h1><div id="crm-toolbar"></div>
<script type="module">
import {{ setup }} from "{server}/toolbar/toolbar.js";
const toolbar = setup({{ server: "{server}", token: "{token}", container: document.getElementById("crm-toolbar"), lang: "en" }});
toolbar.on("snapshot", () => {{ if (!toolbar.loggedIn) toolbar.login({{ bindTel: "801", type: 2 }}); }});
</script></body></html>"#
    );
    let origin = crm_page_server(page);
    assert_eq!(
        handshake_status(&w.server.http, &token, &origin),
        403,
        "an origin the enterprise did not allow"
    );
    w.op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--allowed-origins",
        &origin,
    ]);
    assert_eq!(
        handshake_status(&w.server.http, &token, "http://elsewhere.example"),
        403
    );

    let (mut phone, mut carrier) = ringing_phone_and_carrier(&w, 2000);
    let shots = tempfile::tempdir().unwrap();
    let seen = drive(&json!({
        "server": server,
        "page": format!("{origin}/crm/customer/17"),
        "dial": "13800138000",
        "talkMs": 500,
        "screenshots": shots.path(),
    }));
    check_call_states(&seen);
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
    assert!(phone.finish(Duration::from_secs(30)), "{}", phone.logs());
    check_one_call(&w, &crm);
}

/// The toolbar over HTTPS and WSS (`http.tls_cert`, `http.tls_key`) with a certificate the
/// test makes: the page, the widget, the session and the WebSocket all on TLS.
#[test]
fn the_toolbar_works_over_tls() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_chromium(&browser_dir()) {
        return;
    }
    let (op, _carrier_port) = legacy_store();
    let cert = op.dir.path().join("cert.pem");
    let key = op.dir.path().join("key.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let server = serve_with(
        &op,
        &[
            ("DIALBRIDGE_HTTP_TLS_CERT", cert.to_str().unwrap()),
            ("DIALBRIDGE_HTTP_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let phone_port = dialbridge_testkit::free_port();
    let _phone = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", phone_port, 1).spawn();
    register_extension_801(&server.sip, phone_port);
    let seen = drive(&json!({
        "server": format!("https://{}", server.http),
        "ignoreCertificateErrors": true,
        "enterpriseId": "3000001",
        "cno": "2000",
        "password": "1234",
        "type": 2,
        "bindTel": "801",
    }));
    // Drawn offline until the snapshot (if the observer was installed by then), then idle.
    let states: Vec<&str> = seen["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(states.last(), Some(&"idle"), "{seen}");
    assert!(states.iter().all(|s| ["offline", "idle"].contains(s)), "{seen}");
    let (status, _) = http_get(&server.http, "/healthz");
    assert_ne!(status, 200, "plain HTTP is not served on the TLS port");
}

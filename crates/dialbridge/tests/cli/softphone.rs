//! The toolbar's softphone (binding type 3): the agent's leg is a WebRTC session in Debian's
//! Chromium (headless, a tone file as its microphone), terminated by dialbridge and bridged to
//! baresip as the carrier (a tone as its microphone, recording what it hears). Each side must
//! hear the other's tone and not its own.

use serde_json::json;

use super::*;

/// The carrier's tone (baresip's `ausine`) and the browser's (the capture file).
const CARRIER_HZ: u32 = 440;
const BROWSER_HZ: u32 = 1300;

/// Runs the softphone driver with `config`; what it saw.
fn drive(config: &Value, server: &Server, carrier: &dialbridge_testkit::Baresip) -> Value {
    let seen = run_browser_script("softphone.mjs", config);
    assert_eq!(
        seen["errors"],
        json!([]),
        "{seen}\n{}\n{}",
        server.log_lines().join("\n"),
        carrier.logs()
    );
    seen
}

/// The agent 2000 on its browser: an agent with a softphone and no page attached is
/// unavailable (`res` 9); then the world for a call.
fn softphone_world() -> (LegacyWorld, tempfile::TempDir, dialbridge_testkit::Baresip) {
    let w = legacy_world();
    let online = json_get(
        &w.server.http,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=2000&type=3",
            admin_auth()
        ),
    );
    assert_eq!(online["code"], "0", "{online}");
    let bound = json_get(
        &w.server.http,
        &format!(
            "/interfaceAction/clientInterface!queryBindTel.action?{}&cno=2000",
            admin_auth()
        ),
    );
    assert!(bound.to_string().contains("\"telType\":3"), "{bound}");
    let refused = outcall(&w.server.http, "customerNumber=13800138000");
    assert_eq!(refused["res"], "9", "no page is attached as the softphone: {refused}");
    let recordings = tempfile::tempdir().unwrap();
    let carrier = dialbridge_testkit::Baresip::carrier(w.carrier_port, "13800138000", recordings.path());
    (w, recordings, carrier)
}

/// The driver's configuration for agent 2000 dialling the carrier, with the browser's tone as
/// its microphone (written into `dir`), plus `more`.
fn call_config(w: &LegacyWorld, dir: &std::path::Path, more: Value) -> Value {
    let microphone = dir.join("browser-tone.wav");
    // Chromium's microphone: a mono 48 kHz file.
    dialbridge_testkit::audio::write_tone(&microphone, 48_000, 1, BROWSER_HZ, 4.0);
    let mut config = json!({
        "server": format!("http://{}", w.server.http),
        "enterpriseId": "3000001",
        "cno": "2000",
        "password": "1234",
        "dial": "13800138000",
        "microphone": microphone,
        "tones": [CARRIER_HZ, BROWSER_HZ],
    });
    if let (Some(config), Some(more)) = (config.as_object_mut(), more.as_object()) {
        config.extend(more.clone());
    }
    config
}

#[test]
fn an_agent_takes_a_call_in_the_browser_with_two_way_audio() {
    if dialbridge_testkit::skip_without_baresip() || dialbridge_testkit::skip_without_chromium(&browser_dir()) {
        return;
    }
    let (w, recordings, carrier) = softphone_world();
    let crm = super::toolbar::hang_up_push(&w);
    let seen = drive(
        &call_config(&w, recordings.path(), json!({"listenMs": 2000})),
        &w.server,
        &carrier,
    );
    // Chromium's microphone is the file (its own fake device beeps in bursts, not a steady tone).
    let spoken = &seen["spoken"]["powers"];
    assert!(spoken[BROWSER_HZ.to_string()].as_f64().unwrap_or(0.0) > 0.5, "{seen}");
    // The page hears the carrier's tone, not its own.
    let heard = &seen["heard"]["powers"];
    let carrier_in_page = heard[CARRIER_HZ.to_string()].as_f64().unwrap_or(0.0);
    let own_in_page = heard[BROWSER_HZ.to_string()].as_f64().unwrap_or(1.0);
    assert!(carrier_in_page > 0.3 && own_in_page < 0.05, "{seen}");
    assert_eq!(seen["softphoneEnded"], true, "{seen}");

    // The toolbar's hang-up reached the carrier; the CDR and the push are as for any call.
    let cdrs = w.op.json(&["admin", "cdr", "list", "--enterprise", "3000001"]);
    let unique_id = cdrs[0]["unique_id"].as_str().unwrap().to_owned();
    let cdr = wait_for_end(&w.op, &unique_id, Duration::from_secs(20));
    assert_eq!(
        (cdr["status"].as_i64(), cdr["end_reason"].as_str()),
        (Some(28), Some("HangUpRequested")),
        "{cdr}"
    );
    let hangup = crm.wait_for("/hangup", Duration::from_secs(20));
    assert!(hangup.body.contains("cdr_status=28"), "{}", hangup.body);
    assert!(
        carrier.wait_for_log("terminated (duration", Duration::from_secs(10)),
        "the carrier was not hung up: {}",
        carrier.logs()
    );

    // The carrier heard the browser's tone, not its own.
    drop(carrier);
    let received = std::fs::read_dir(recordings.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .expect("baresip recorded what it heard");
    let (samples, rate) = dialbridge_testkit::audio::read_wav(&received, 0);
    let browser_at_carrier = dialbridge_testkit::audio::tone_share(&samples, rate, BROWSER_HZ);
    let own_at_carrier = dialbridge_testkit::audio::tone_share(&samples, rate, CARRIER_HZ);
    eprintln!(
        "page heard {}, microphone {}; carrier heard {BROWSER_HZ} Hz {browser_at_carrier:.3}, {CARRIER_HZ} Hz {own_at_carrier:.3} ({} samples at {rate} Hz)",
        seen["heard"],
        seen["spoken"],
        samples.len()
    );
    assert!(
        browser_at_carrier > 0.3 && own_at_carrier < 0.05,
        "carrier heard {BROWSER_HZ} Hz at {browser_at_carrier:.3}, {CARRIER_HZ} Hz at {own_at_carrier:.3}"
    );
}

#[test]
fn a_closed_tab_ends_its_call_soon_and_frees_the_agent() {
    if dialbridge_testkit::skip_without_baresip() || dialbridge_testkit::skip_without_chromium(&browser_dir()) {
        return;
    }
    let (w, recordings, carrier) = softphone_world();
    let seen = drive(
        &call_config(&w, recordings.path(), json!({"listenMs": 300, "closeTab": true})),
        &w.server,
        &carrier,
    );
    let closed = Instant::now();
    let cdrs = w.op.json(&["admin", "cdr", "list", "--enterprise", "3000001"]);
    let unique_id = cdrs[0]["unique_id"].as_str().unwrap().to_owned();
    // Well within the bound the issue sets (10 s), and far from the media timeout (60 s).
    let cdr = wait_for_end(&w.op, &unique_id, Duration::from_secs(15));
    assert!(closed.elapsed() < Duration::from_secs(15), "{seen}");
    assert_eq!(
        (
            cdr["end_reason"].as_str(),
            cdr["hung_up_by"].as_str(),
            cdr["status"].as_i64()
        ),
        (Some("AgentHungUp"), Some("agent"), Some(28)),
        "{cdr}"
    );
    assert!(
        carrier.wait_for_log("terminated (duration", Duration::from_secs(10)),
        "the carrier was not hung up: {}",
        carrier.logs()
    );
    // The agent is not stuck: its call is gone (wrap-up, then idle) and a new call is refused
    // only because no page is attached (res 9), not because of the old call (13 / 33).
    let again = outcall(&w.server.http, "customerNumber=13800138000");
    assert_eq!(again["res"], "9", "{again}");
}

//! Call recording (the legacy contract's §7): a different tone on each side (SIPp streaming a
//! tone file as the agent's phone and as the carrier) lands each in its own channel of one
//! dual-channel WAV that Debian's sox reads; the legacy download URLs; pause; the consent
//! announcement heard by the customer (baresip as the carrier, recording what it hears);
//! a SIGKILL during a recorded call; recording from the agent's answer; the maximum length;
//! retention; a disk that fills up during a call; a plan a stop left unsettled.

use std::collections::HashMap;
use std::io::{Read, Write};

use serde_json::json;

use super::*;

const AGENT_HZ: u32 = 1000;
const CUSTOMER_HZ: u32 = 440;

/// Enterprise 3000001 records in `mode` (`bridge`, `answer`), with `more` flags.
fn record_enterprise(op: &Operator, mode: &str, more: &[&str]) {
    let mut args = vec!["admin", "enterprise", "update", "--id", "3000001", "--recording", mode];
    args.extend_from_slice(more);
    op.ok(&args);
}

/// The legacy world with enterprise 3000001 recording from the bridge (and `more` flags).
fn recording_world(more: &[&str]) -> LegacyWorld {
    legacy_world_with(|op, _| record_enterprise(op, "bridge", more))
}

/// The carrier, streaming [`CUSTOMER_HZ`] once it answers.
fn tone_carrier(w: &LegacyWorld) -> dialbridge_testkit::SippBuilder {
    dialbridge_testkit::SippBuilder::answering("phone_uas.xml", w.carrier_port, 1).rtp_tone(CUSTOMER_HZ)
}

/// The agent's phone (extension 801, agent 2000 online on it) streaming [`AGENT_HZ`], the
/// carrier streaming [`CUSTOMER_HZ`].
fn tone_phones(w: &LegacyWorld) -> (dialbridge_testkit::Sipp, dialbridge_testkit::Sipp) {
    tone_phones_with(w, |phone| phone, tone_carrier(w))
}

/// [`tone_phones`] with this `carrier`, the agent's phone as `phone` makes it.
fn tone_phones_with(
    w: &LegacyWorld,
    phone: impl FnOnce(dialbridge_testkit::SippBuilder) -> dialbridge_testkit::SippBuilder,
    carrier: dialbridge_testkit::SippBuilder,
) -> (dialbridge_testkit::Sipp, dialbridge_testkit::Sipp) {
    phone_with_carrier(
        &w.server.http,
        &w.server.sip,
        |port| phone(dialbridge_testkit::SippBuilder::answering("phone_uas.xml", port, 1).rtp_tone(AGENT_HZ)),
        carrier,
    )
}

/// Places a call and waits until the carrier answered; its `uniqueId`.
fn bridged_call(w: &LegacyWorld, carrier: &dialbridge_testkit::Sipp) -> String {
    let reply = outcall(&w.server.http, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    assert!(
        carrier.wait_for_log("answer acknowledged", Duration::from_secs(20)),
        "{}",
        carrier.logs()
    );
    reply["uniqueId"].as_str().unwrap().to_owned()
}

/// Places a call, lets the parties talk for `talk` once the carrier answered, hangs up; its
/// `uniqueId` and its ended CDR.
fn talk_then_hang_up(w: &LegacyWorld, carrier: &dialbridge_testkit::Sipp, talk: Duration) -> (String, Value) {
    let unique_id = bridged_call(w, carrier);
    std::thread::sleep(talk);
    hang_up(w, &unique_id);
    let cdr = wait_for_end(&w.op, &unique_id, Duration::from_secs(20));
    (unique_id, cdr)
}

fn hang_up(w: &LegacyWorld, unique_id: &str) {
    let hang_up = json_get(
        &w.server.http,
        &format!("/interface/HangUp?{}&uniqueId={unique_id}", admin_auth()),
    );
    assert_eq!(hang_up["result"], "success", "{hang_up}");
}

/// Where the server keeps `file` (its day is the name's second field's first eight digits).
fn recording_path(op: &Operator, file: &str) -> PathBuf {
    let day = &file.split('-').nth(1).unwrap()[..8];
    op.dir
        .path()
        .join("dialbridge-data/recordings")
        .join(day)
        .join("3000001")
        .join(file)
}

/// What Debian's soxi says of a file: (channels, rate, bits, seconds).
fn soxi(path: &std::path::Path) -> (u32, u32, u32, f64) {
    let ask = |flag: &str| -> String {
        let out = std::process::Command::new("soxi").arg(flag).arg(path).output().unwrap();
        assert!(
            out.status.success(),
            "soxi {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    (
        ask("-c").parse().unwrap(),
        ask("-r").parse().unwrap(),
        ask("-b").parse().unwrap(),
        ask("-D").parse().unwrap(),
    )
}

/// The bridged seconds of an ended call, from its CDR's times.
fn bridged_seconds(cdr: &Value) -> f64 {
    (cdr["ended_at_ms"].as_i64().unwrap() - cdr["bridged_at_ms"].as_i64().unwrap()) as f64 / 1000.0
}

fn sidecar(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap()).unwrap()
}

/// A GET with `headers`: status, headers (lower-case names) and the body's bytes.
fn get_bytes(address: &str, path: &str, headers: &[&str]) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut body = response[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers.get("transfer-encoding").is_some_and(|t| t == "chunked") {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 4 + size..];
        }
        body = decoded;
    }
    (status, headers, body)
}

fn samples_of(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[test]
fn a_recorded_call_keeps_each_party_in_its_own_channel_and_is_downloaded_as_the_legacy_urls_say() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_sox() {
        return;
    }
    let w = recording_world(&[]);
    let crm = super::toolbar::hang_up_push(&w);
    let (_phone, mut carrier) = tone_phones(&w);
    let (unique_id, cdr) = talk_then_hang_up(&w, &carrier, Duration::from_secs(4));
    let bridged = bridged_seconds(&cdr);
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());

    // The name of §7, in the CDR, the CDR query and the hang-up push.
    let file = cdr["record_file"].as_str().unwrap().to_owned();
    let row = cdr_row(&w.server.http, &unique_id);
    assert_eq!(row["recordFile"], file.as_str(), "{row}");
    let parts: Vec<&str> = file.split('-').collect();
    assert_eq!(parts[0], "3000001", "{file}");
    assert_eq!(parts[1].len(), 14, "{file}");
    assert_eq!(
        &parts[1][..8],
        row["startTime"].as_str().unwrap()[..10].replace('-', ""),
        "the day of the CDR's startTime: {file} {row}"
    );
    assert_eq!(parts[2], "13800138000");
    assert!(file.ends_with(&format!("{unique_id}.wav")), "{file}");
    let pushed = crm.wait_for("/hangup", Duration::from_secs(20));
    assert!(
        pushed.body.contains(&format!("cdr_record_file={file}")),
        "{}",
        pushed.body
    );

    // One file, owner-only, that sox reads: two channels at 8 kHz, 16-bit, as long as the bridge.
    let path = recording_path(&w.op, &file);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (channels, rate, bits, seconds) = soxi(&path);
    assert_eq!((channels, rate, bits), (2, 8000, 16));
    assert!(
        (seconds - bridged).abs() <= 0.5,
        "sox reads {seconds} s; bridged {bridged} s"
    );

    // The agent's tone in the left channel and not the customer's; the reverse in the right.
    let (agent, _) = dialbridge_testkit::audio::read_wav(&path, 0);
    let (customer, _) = dialbridge_testkit::audio::read_wav(&path, 1);
    let tone = dialbridge_testkit::audio::tone_seconds;
    let heard = [
        ("agent's tone, left", tone(&agent, 8000, AGENT_HZ)),
        ("customer's tone, right", tone(&customer, 8000, CUSTOMER_HZ)),
    ];
    for (what, at) in heard {
        assert!((at - bridged).abs() <= 0.5, "{what}: {at} s of {bridged} s bridged");
    }
    assert!(
        tone(&agent, 8000, CUSTOMER_HZ) < 0.1,
        "the customer is not in the agent's channel"
    );
    assert!(
        tone(&customer, 8000, AGENT_HZ) < 0.1,
        "the agent is not in the customer's channel"
    );
    let notes = sidecar(&path);
    assert_eq!(notes["uniqueId"], unique_id.as_str(), "{notes}");
    assert_eq!(notes["gaps"], json!([]), "{notes}");
    assert_eq!(notes["interrupted"], false, "{notes}");
    assert_eq!(counter(&w.server.http, "dialbridge_recordings_kept_total"), 1);
    assert_eq!(counter(&w.server.http, "dialbridge_recording_gaps_total"), 0);
    assert_eq!(counter(&w.server.http, "dialbridge_recording_files_cut_short_total"), 0);

    // Downloads: both URL forms, each side, a range; refusals as JSON with their status.
    let day = &parts[1][..8];
    let stereo = std::fs::read(&path).unwrap();
    let frames: Vec<(i16, i16)> = samples_of(&stereo[44..])
        .chunks_exact(2)
        .map(|f| (f[0], f[1]))
        .collect();
    let query = admin_auth();
    let (status, headers, mixed) = get_bytes(&w.server.http, &format!("/{day}/{file}?{query}"), &[]);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(mixed.len(), 44 + frames.len() * 2);
    let expected_mix: Vec<i16> = frames
        .iter()
        .map(|(a, c)| (i32::from(*a) + i32::from(*c)).clamp(-32768, 32767) as i16)
        .collect();
    assert_eq!(samples_of(&mixed[44..]), expected_mix, "mixed is the default");
    for (side, expected) in [
        ("1", frames.iter().map(|f| f.1).collect::<Vec<_>>()),
        ("2", frames.iter().map(|f| f.0).collect::<Vec<_>>()),
        ("3", expected_mix.clone()),
    ] {
        let (status, _, body) = get_bytes(
            &w.server.http,
            &format!("/voices/record/{day}/{file}?{query}&recordSide={side}"),
            &[],
        );
        assert_eq!(status, 200, "recordSide={side}");
        assert_eq!(samples_of(&body[44..]), expected, "recordSide={side}");
    }
    let (status, headers, part) = get_bytes(
        &w.server.http,
        &format!("/{day}/{file}?{query}&recordSide=2"),
        &["Range: bytes=40-1039"],
    );
    assert_eq!(status, 206);
    let total = 44 + frames.len() * 2;
    assert_eq!(headers["content-range"], format!("bytes 40-1039/{total}"));
    let (_, _, whole_agent) = get_bytes(&w.server.http, &format!("/{day}/{file}?{query}&recordSide=2"), &[]);
    assert_eq!(part, whole_agent[40..1040]);
    let (status, _, _) = get_bytes(
        &w.server.http,
        &format!("/{day}/{file}?{query}"),
        &[&format!("Range: bytes={}-", total + 10)],
    );
    assert_eq!(status, 416);
    let (status, _, whole) = get_bytes(&w.server.http, &format!("/{day}/{file}?{query}"), &["Range: lines=1-2"]);
    assert_eq!((status, whole.len()), (200, total), "a range it cannot read is ignored");
    let mut head = std::net::TcpStream::connect(&w.server.http).unwrap();
    write!(
        head,
        "HEAD /{day}/{file}?{query} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    head.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let rival_pwd = md5_hex(&format!("{}4711", md5_hex("rival-secret")));
    let rival = format!("enterpriseId=3000002&userName=admin&seed=4711&pwd={rival_pwd}");
    let wrong = format!("enterpriseId=3000001&userName=admin&seed=4711&pwd={}", md5_hex("x"));
    for (path, status) in [
        (format!("/{day}/{file}"), 401),
        (format!("/{day}/{file}?{wrong}"), 401),
        (format!("/{day}/{file}?{rival}"), 403),
        (format!("/{day}/3000001-{day}000000-1-none.wav?{query}"), 404),
        (format!("/20000101/{file}?{query}"), 404),
        (format!("/{day}/{file}?{query}&recordSide=7"), 400),
    ] {
        let (got, headers, body) = get_bytes(&w.server.http, &path, &[]);
        assert_eq!(got, status, "{path}");
        assert!(headers["content-type"].starts_with("application/json"), "{path}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["result"], "error", "{path}: {body}");
    }

    // Every download is recorded: who, when, what.
    let accesses =
        w.op.json(&["admin", "recording", "accesses", "--unique-id", &unique_id]);
    let downloads: Vec<&Value> = accesses
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "download")
        .collect();
    assert_eq!(downloads.len(), 7, "a HEAD reads no audio: {accesses}");
    assert!(downloads.iter().all(|a| a["actor"] == "admin:admin"), "{accesses}");
    assert!(
        downloads.iter().any(|a| a["detail"] == "side=Agent bytes=40-1039"),
        "{accesses}"
    );

    // An operator deletes it: the file is gone, the deletion recorded, the URL answers 404.
    w.op.ok(&[
        "admin",
        "recording",
        "delete",
        "--unique-id",
        &unique_id,
        "--reason",
        "customer asked",
    ]);
    assert!(!path.exists() && !path.with_extension("json").exists());
    let (status, _, _) = get_bytes(&w.server.http, &format!("/{day}/{file}?{query}"), &[]);
    assert_eq!(status, 404);
    let accesses =
        w.op.json(&["admin", "recording", "accesses", "--unique-id", &unique_id]);
    assert!(
        accesses
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "delete" && a["actor"] == "operator" && a["detail"] == "customer asked"),
        "{accesses}"
    );
}

#[test]
fn a_call_that_is_not_recorded_has_no_file_and_an_empty_record_file() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    // Recording is on for the enterprise but off for agent 2000.
    let w = legacy_world_with(|op, _| {
        record_enterprise(op, "bridge", &[]);
        op.ok(&[
            "admin",
            "agent",
            "update",
            "--enterprise",
            "3000001",
            "--cno",
            "2000",
            "--recording",
            "off",
        ]);
    });
    let (_phone, carrier) = tone_phones(&w);
    let unique_id = bridged_call(&w, &carrier);
    let agent = super::live::token(
        &w.server.http,
        &format!("enterpriseId=3000001&cno=2000&pwd={}", md5_hex("1234")),
    );
    let (status, response) = control(&w, &unique_id, "pause", &agent);
    assert_eq!(status, 409, "the call is not recorded: {response}");
    hang_up(&w, &unique_id);
    let cdr = wait_for_end(&w.op, &unique_id, Duration::from_secs(20));
    assert_eq!(cdr["record_file"], "", "{cdr}");
    assert_eq!(cdr_row(&w.server.http, &unique_id)["recordFile"], "");
    let recordings = w.op.dir.path().join("dialbridge-data/recordings");
    let files = dialbridge_testkit::files_under(&recordings);
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn a_pause_leaves_silence_of_its_length_marked_in_the_sidecar() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_sox() {
        return;
    }
    let w = recording_world(&[]);
    let (_phone, carrier) = tone_phones(&w);
    let unique_id = bridged_call(&w, &carrier);
    let pwd = md5_hex(&format!("{}4711", md5_hex("admin-secret")));
    let session = http_post_form(
        &w.server.http,
        "/api/v1/session",
        &format!("enterpriseId=3000001&userName=admin&seed=4711&pwd={pwd}"),
    );
    let token = session["token"].as_str().unwrap().to_owned();
    let control = |action: &str, token: &str| control(&w, &unique_id, action, token);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(control("pause", "not-a-token").0, 401);
    let (status, response) = control("pause", &token);
    assert_eq!(status, 200, "{response}");
    std::thread::sleep(Duration::from_millis(2000));
    let (status, response) = control("resume", &token);
    assert_eq!(status, 200, "{response}");
    std::thread::sleep(Duration::from_millis(1500));
    hang_up(&w, &unique_id);
    let cdr = wait_for_end(&w.op, &unique_id, Duration::from_secs(20));
    assert_eq!(control("pause", &token).0, 404, "the call is over");

    let path = recording_path(&w.op, cdr["record_file"].as_str().unwrap());
    let notes = sidecar(&path);
    let pauses = notes["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{notes}");
    let (from, to) = (
        pauses[0]["fromMs"].as_u64().unwrap() as usize,
        pauses[0]["toMs"].as_u64().unwrap() as usize,
    );
    assert!((1700..=2300).contains(&(to - from)), "paused about 2 s: {notes}");
    // Silence inside the pause (both channels), the tones on either side of it.
    let tone = dialbridge_testkit::audio::tone_seconds;
    for (channel, hz) in [(0, AGENT_HZ), (1, CUSTOMER_HZ)] {
        let (samples, _) = dialbridge_testkit::audio::read_wav(&path, channel);
        let inside = &samples[(from + 100) * 8..(to - 100) * 8];
        assert!(
            inside.iter().all(|s| *s == 0.0),
            "channel {channel} is silent while paused"
        );
        assert!(tone(&samples[..from * 8], 8000, hz) > 1.0, "channel {channel} before");
        assert!(tone(&samples[to * 8..], 8000, hz) > 1.0, "channel {channel} after");
    }
}

/// `POST /api/v1/calls/{unique_id}/recording/{action}` with `token`: the status and the response.
fn control(w: &LegacyWorld, unique_id: &str, action: &str, token: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(&w.server.http).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST /api/v1/calls/{unique_id}/recording/{action} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response)
}

#[test]
fn the_customer_hears_the_announcement_before_the_bridge() {
    const ANNOUNCEMENT_HZ: u32 = 2000;
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_baresip() {
        return;
    }
    let w = recording_world(&[]);
    let upload = w.op.dir.path().join("consent.wav");
    // What an operator might upload: the server converts it.
    dialbridge_testkit::audio::write_tone(&upload, 16_000, 2, ANNOUNCEMENT_HZ, 1.5);
    let not_wav = w.op.write("consent.txt", "this is not audio");
    let refused = w.op.fails(&[
        "admin",
        "recording",
        "announcement",
        "set",
        "--enterprise",
        "3000001",
        "--file",
        &not_wav,
    ]);
    assert!(refused.contains("not a WAV file"), "{refused}");
    let set = w.op.ok(&[
        "admin",
        "recording",
        "announcement",
        "set",
        "--enterprise",
        "3000001",
        "--file",
        upload.to_str().unwrap(),
    ]);
    assert!(set.contains("1500 ms at 8 kHz mono"), "{set}");

    let heard_dir = tempfile::tempdir().unwrap();
    let carrier = dialbridge_testkit::Baresip::carrier(w.carrier_port, "13800138000", heard_dir.path());
    let phone_port = dialbridge_testkit::free_port();
    let _phone = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", phone_port, 1)
        .rtp_tone(AGENT_HZ)
        .spawn();
    register_extension_801(&w.server.sip, phone_port);
    alice_online_on_801(&w.server.http);
    let reply = outcall(&w.server.http, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(4));
    hang_up(&w, &unique_id);
    let cdr = wait_for_end(&w.op, &unique_id, Duration::from_secs(20));
    assert!(
        carrier.wait_for_log("terminated (duration", Duration::from_secs(10)),
        "{}",
        carrier.logs()
    );
    drop(carrier);

    // The carrier heard 1.5 s of the announcement, then the agent.
    let received = dialbridge_testkit::files_under(heard_dir.path())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .expect("baresip recorded what it heard");
    let (samples, rate) = dialbridge_testkit::audio::read_wav(&received, 0);
    let block = (rate / 50) as usize;
    let blocks_with = |hz: u32| -> Vec<usize> {
        samples
            .chunks_exact(block)
            .enumerate()
            .filter(|(_, b)| dialbridge_testkit::audio::tone_seconds(b, rate, hz) > 0.0)
            .map(|(i, _)| i)
            .collect()
    };
    let (announcement, agent) = (blocks_with(ANNOUNCEMENT_HZ), blocks_with(AGENT_HZ));
    let announced = announcement.len() as f64 * 0.02;
    assert!(
        (announced - 1.5).abs() <= 0.3,
        "heard {announced} s of the announcement"
    );
    let heard_agent = agent.len() as f64 * 0.02;
    assert!(
        (heard_agent - (bridged_seconds(&cdr) - 1.5)).abs() <= 0.6,
        "then the agent for the rest of the bridge: {heard_agent} s"
    );
    let announcement_ended = *announcement.last().unwrap();
    assert!(
        agent.iter().all(|&i| i > announcement_ended),
        "nothing of the agent before the announcement ended"
    );
    let path = recording_path(&w.op, cdr["record_file"].as_str().unwrap());
    let notes = sidecar(&path);
    let span = &notes["announcement"];
    let length = span["toMs"].as_u64().unwrap() - span["fromMs"].as_u64().unwrap();
    assert!((1400..=1700).contains(&length), "{notes}");
}

#[test]
fn a_recording_killed_with_the_server_plays_after_the_restart_up_to_the_kill() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_sox() {
        return;
    }
    let w = recording_world(&[]);
    let (_phone, carrier) = tone_phones(&w);
    let unique_id = bridged_call(&w, &carrier);
    let answered = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let LegacyWorld { op, mut server, .. } = w;
    let sip = server.sip.clone();
    let killed = Instant::now();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let up_to_kill = (killed - answered).as_secs_f64();

    let server = serve_with(&op, &[("DIALBRIDGE_SIP_LISTEN", sip.as_str())]);
    let cdr = wait_for_end(&op, &unique_id, Duration::from_secs(30));
    let file = cdr["record_file"].as_str().unwrap().to_owned();
    assert!(!file.is_empty(), "the CDR names the recovered recording: {cdr}");
    assert_eq!(cdr_row(&server.http, &unique_id)["recordFile"], file.as_str());
    let path = recording_path(&op, &file);
    let (channels, rate, _, seconds) = soxi(&path);
    assert_eq!((channels, rate), (2, 8000));
    // Up to the kill within a batch (200 ms), from the carrier's answer as the test saw it
    // (a little after the bridge: the test polls SIPp's log).
    assert!(
        seconds <= up_to_kill + 0.3 && seconds >= up_to_kill - 0.25,
        "{seconds} s recorded; {up_to_kill} s from the answer to the kill"
    );
    // sox decodes it whole (not only its header).
    let decoded = std::process::Command::new("sox")
        .arg(&path)
        .args(["-n", "stat"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&decoded.stderr).to_string();
    assert!(decoded.status.success(), "{report}");
    let length: f64 = report
        .lines()
        .find_map(|l| l.strip_prefix("Length (seconds):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!((length - seconds).abs() < 0.01, "{report}");
    let (agent, _) = dialbridge_testkit::audio::read_wav(&path, 0);
    assert!(dialbridge_testkit::audio::tone_seconds(&agent, 8000, AGENT_HZ) > seconds - 0.5);
    let notes = sidecar(&path);
    assert_eq!(notes["interrupted"], true, "{notes}");
    drop(server);
}

#[test]
fn an_agents_toolbar_pauses_and_resumes_its_calls_recording() {
    use super::live::{command, connect, next, token};
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = recording_world(&[]);
    let (_phone, carrier) = tone_phones(&w);
    let agent = token(
        &w.server.http,
        &format!("enterpriseId=3000001&cno=2000&pwd={}", md5_hex("1234")),
    );
    let mut socket = connect(&w.server.http, &agent, None);
    next(&mut socket);
    let login = command(&mut socket, 1, "login", json!({"bindTel": "801", "type": 2}));
    assert_eq!(login["ok"], true, "{login}");
    let no_call = command(&mut socket, 2, "pauseRecording", json!({}));
    assert_eq!(
        (no_call["ok"].as_bool(), no_call["code"].as_str()),
        (Some(false), Some("0")),
        "{no_call}"
    );
    let placed = command(&mut socket, 3, "previewOutcall", json!({"tel": "13800138000"}));
    assert_eq!(placed["ok"], true, "{placed}");
    let unique_id = placed["data"]["uniqueId"].as_str().unwrap().to_owned();
    assert!(
        carrier.wait_for_log("answer acknowledged", Duration::from_secs(20)),
        "{}",
        carrier.logs()
    );
    std::thread::sleep(Duration::from_millis(1000));
    let paused = command(&mut socket, 4, "pauseRecording", json!({}));
    assert_eq!(paused["ok"], true, "{paused}");
    // A page loaded now (a second socket's snapshot) shows the recording paused.
    let snapshot_paused = || next(&mut connect(&w.server.http, &agent, None))["agents"][0]["recordingPaused"].clone();
    assert_eq!(snapshot_paused(), true);
    std::thread::sleep(Duration::from_millis(1500));
    let resumed = command(&mut socket, 5, "resumeRecording", json!({}));
    assert_eq!(resumed["ok"], true, "{resumed}");
    assert_eq!(snapshot_paused(), false);
    std::thread::sleep(Duration::from_millis(1000));
    let hung_up = command(&mut socket, 6, "unlink", json!({}));
    assert_eq!(hung_up["ok"], true, "{hung_up}");
    let cdr = wait_for_end(&w.op, &unique_id, Duration::from_secs(20));
    let notes = sidecar(&recording_path(&w.op, cdr["record_file"].as_str().unwrap()));
    let pauses = notes["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{notes}");
    let length = pauses[0]["toMs"].as_u64().unwrap() - pauses[0]["fromMs"].as_u64().unwrap();
    assert!((1200..=1800).contains(&length), "{notes}");
}

#[test]
fn record_file_can_be_the_download_url_a_crm_appends_its_query_to() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let origin = "https://calls.example.com";
    let w = legacy_world_served(
        |op, _| record_enterprise(op, "bridge", &["--record-file-form", "url"]),
        |op| serve_with(op, &[("DIALBRIDGE_HTTP_PUBLIC_ORIGIN", origin)]),
    );
    let crm = super::toolbar::hang_up_push(&w);
    let (_phone, carrier) = tone_phones(&w);
    let (unique_id, cdr) = talk_then_hang_up(&w, &carrier, Duration::from_secs(1));
    let file = cdr["record_file"].as_str().unwrap().to_owned();
    let day = &file.split('-').nth(1).unwrap()[..8];
    let url = format!("{origin}/{day}/{file}");
    assert_eq!(cdr_row(&w.server.http, &unique_id)["recordFile"], url.as_str());
    let pushed = crm.wait_for("/hangup", Duration::from_secs(20));
    let form: HashMap<String, String> = serde_urlencoded::from_str(&pushed.body).unwrap();
    assert_eq!(form["cdr_record_file"], url, "{}", pushed.body);
    // The client appends the admin query to it: the path part is the download.
    let path = url.strip_prefix(origin).unwrap();
    let (status, headers, _) = get_bytes(&w.server.http, &format!("{path}?{}", admin_auth()), &[]);
    assert_eq!((status, headers["content-type"].as_str()), (200, "audio/wav"));
}

/// With `recording = answer` the recording starts at the agent's answer: while the customer's
/// phone rings (3 s) it holds the agent's tone and, in the customer's channel, the ringback the
/// agent hears (the Chinese ringback, 450 Hz); after the bridge, each party in its channel.
#[test]
fn recording_from_the_agents_answer_keeps_the_ringback_before_the_bridge() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_sox() {
        return;
    }
    const RINGBACK_HZ: u32 = 450;
    // Far from the ringback, so a 20 ms detector tells them apart.
    const CARRIER_HZ: u32 = 2000;
    const RING_SECONDS: f64 = 3.0;
    let w = legacy_world_with(|op, _| record_enterprise(op, "answer", &[]));
    let (_phone, carrier) = tone_phones_with(
        &w,
        |phone| phone,
        dialbridge_testkit::SippBuilder::answering("phone_uas.xml", w.carrier_port, 1)
            .rtp_tone(CARRIER_HZ)
            .set("ring_ms", RING_SECONDS * 1000.0),
    );
    let (_, cdr) = talk_then_hang_up(&w, &carrier, Duration::from_secs(2));
    let bridged = bridged_seconds(&cdr);
    let requested_to_end =
        (cdr["ended_at_ms"].as_i64().unwrap() - cdr["requested_at_ms"].as_i64().unwrap()) as f64 / 1000.0;

    let path = recording_path(&w.op, cdr["record_file"].as_str().unwrap());
    let (channels, _, _, seconds) = soxi(&path);
    assert_eq!(channels, 2);
    assert!(
        seconds >= bridged + RING_SECONDS - 0.5 && seconds <= requested_to_end + 0.5,
        "{seconds} s recorded: {bridged} s bridged after {RING_SECONDS} s of ringing, {requested_to_end} s in all"
    );
    let ringing = ((seconds - bridged) * 8000.0) as usize;
    let ringing_seconds = ringing as f64 / 8000.0;
    let (agent, _) = dialbridge_testkit::audio::read_wav(&path, 0);
    let (customer, _) = dialbridge_testkit::audio::read_wav(&path, 1);
    let tone = dialbridge_testkit::audio::tone_seconds;
    let heard_ringback = tone(&customer[..ringing], 8000, RINGBACK_HZ);
    assert!(
        (0.7..=1.3).contains(&heard_ringback),
        "one second of ringback (one on, four off) in the customer's channel while it rang: {heard_ringback} s"
    );
    let agent_before = tone(&agent[..ringing], 8000, AGENT_HZ);
    assert!(
        agent_before >= ringing_seconds - 0.5,
        "the agent from its answer: {agent_before} s of {ringing_seconds} s"
    );
    assert!(
        tone(&customer[..ringing], 8000, CARRIER_HZ) < 0.1,
        "nothing of the customer before the bridge"
    );
    let customer_after = tone(&customer[ringing..], 8000, CARRIER_HZ);
    assert!(
        (customer_after - bridged).abs() <= 0.5,
        "the customer once bridged: {customer_after} s of {bridged} s"
    );
    assert!(
        tone(&customer, 8000, AGENT_HZ) < 0.1,
        "the agent is not in the customer's channel"
    );
}

/// An enterprise keeps recordings 2 days: the sweeper (every second here) leaves one aged 1.5
/// days and deletes it once aged 2.5 (its age set in the database, as days cannot pass in a
/// test), recording who deleted it and why; its download URL then answers 404.
#[test]
fn the_sweeper_deletes_recordings_past_the_enterprises_retention_and_records_it() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_sqlite3() {
        return;
    }
    let w = legacy_world_served(
        |op, _| record_enterprise(op, "bridge", &["--recording-retention-days", "2"]),
        |op| serve_with(op, &[("DIALBRIDGE_RETENTION_SWEEP_SECS", "1")]),
    );
    let (_phone, carrier) = tone_phones(&w);
    let (unique_id, cdr) = talk_then_hang_up(&w, &carrier, Duration::from_secs(1));
    let file = cdr["record_file"].as_str().unwrap().to_owned();
    let path = recording_path(&w.op, &file);
    assert!(path.exists());
    let age_by_hours = |hours: i64| {
        sqlite(
            &w.op,
            &format!(
                "UPDATE recordings SET created_at = created_at - {} WHERE unique_id = '{unique_id}';",
                hours * 3_600_000
            ),
        );
    };

    age_by_hours(36);
    std::thread::sleep(Duration::from_secs(3));
    assert!(path.exists(), "younger than the retention, it stays");
    age_by_hours(24);
    let deadline = Instant::now() + Duration::from_secs(20);
    while path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!path.exists(), "past the retention, the sweeper deletes it");
    assert!(!path.with_extension("json").exists(), "its sidecar too");
    let accesses =
        w.op.json(&["admin", "recording", "accesses", "--unique-id", &unique_id]);
    assert!(
        accesses.as_array().unwrap().iter().any(|a| a["action"] == "delete"
            && a["actor"] == "retention"
            && a["detail"] == "older than the enterprise's retention of 2 days"),
        "{accesses}"
    );
    let day = &file.split('-').nth(1).unwrap()[..8];
    let (status, _, _) = get_bytes(&w.server.http, &format!("/{day}/{file}?{}", admin_auth()), &[]);
    assert_eq!(status, 404);
}

/// A recording stops at the enterprise's maximum length (one minute here) and its sidecar says
/// where; the call goes on, bridged, to its hang-up.
#[test]
fn a_recording_stops_at_its_maximum_length_and_the_call_goes_on() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_sox() {
        return;
    }
    // SIPp's own deadline (60 s by default) is moved past the call.
    let outlive = |sipp: dialbridge_testkit::SippBuilder| sipp.args(["-timeout", "150s"]);
    let w = recording_world(&["--recording-max-minutes", "1"]);
    let (_phone, carrier) = tone_phones_with(&w, outlive, outlive(tone_carrier(&w)));
    let (_, cdr) = talk_then_hang_up(&w, &carrier, Duration::from_secs(63));
    let bridged = bridged_seconds(&cdr);
    assert!(bridged >= 62.5, "the call went on past the recording: {cdr}");
    assert_eq!(cdr["end_reason"], "HangUpRequested", "{cdr}");

    let path = recording_path(&w.op, cdr["record_file"].as_str().unwrap());
    let (_, _, _, seconds) = soxi(&path);
    assert!((seconds - 60.0).abs() < 0.01, "{seconds} s recorded");
    let notes = sidecar(&path);
    assert_eq!(notes["limitReachedAtMs"], 60_000, "{notes}");
    let (agent, _) = dialbridge_testkit::audio::read_wav(&path, 0);
    let heard = dialbridge_testkit::audio::tone_seconds(&agent, 8000, AGENT_HZ);
    assert!(heard >= 59.5, "the agent up to the limit: {heard} s");
}

/// Runs `sql` on the server's SQLite database with Debian's sqlite3 (waiting for the server's
/// writes), to give a recording a state the test cannot wait for.
fn sqlite(op: &Operator, sql: &str) {
    let out = Command::new("sqlite3")
        .args(["-cmd", ".timeout 10000"])
        .arg(op.dir.path().join("dialbridge-data/dialbridge.db"))
        .arg(sql)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A recording whose recorder was late when its call closed, and the server stopped before it
/// finished (the state set in the database: a plan left, a CDR without the name, a file whose
/// header never got its sizes and no sidecar): the next start repairs the file, names it in the
/// CDR, and keeps the recording, marked interrupted.
#[test]
fn a_recording_left_unfinished_by_a_stop_is_settled_at_the_next_start() {
    if dialbridge_testkit::skip_without_sipp()
        || dialbridge_testkit::skip_without_sox()
        || dialbridge_testkit::skip_without_sqlite3()
    {
        return;
    }
    let w = recording_world(&[]);
    let (_phone, carrier) = tone_phones(&w);
    let (unique_id, cdr) = talk_then_hang_up(&w, &carrier, Duration::from_secs(2));
    let file = cdr["record_file"].as_str().unwrap().to_owned();
    let bridged = bridged_seconds(&cdr);
    let LegacyWorld { op, mut server, .. } = w;
    stop_gracefully(&mut server);
    drop(server);

    sqlite(
        &op,
        &format!(
            "UPDATE recordings SET state = 'planned', frames = 0, bytes = 0, finished_at = NULL \
             WHERE unique_id = '{unique_id}'; UPDATE cdrs SET record_file = '' WHERE unique_id = '{unique_id}';"
        ),
    );
    let path = recording_path(&op, &file);
    std::fs::remove_file(path.with_extension("json")).unwrap();
    let wav = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for size_field in [4, 40] {
        std::os::unix::fs::FileExt::write_all_at(&wav, &[0; 4], size_field).unwrap();
    }
    drop(wav);
    let record_file = || cdr_of(&op, &unique_id)["record_file"].clone();
    assert_eq!(record_file(), "");

    let server = serve(&op);
    let deadline = Instant::now() + Duration::from_secs(20);
    let named = loop {
        let named = record_file();
        if named != "" || Instant::now() > deadline {
            break named;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(named, file.as_str(), "the CDR names the file again");
    assert_eq!(cdr_row(&server.http, &unique_id)["recordFile"], file.as_str());
    let (channels, _, _, seconds) = soxi(&path);
    assert_eq!(channels, 2);
    assert!((seconds - bridged).abs() <= 0.5, "{seconds} s of {bridged} s bridged");
    assert_eq!(sidecar(&path)["interrupted"], true);
}

/// A counter's value in the server's `/metrics`.
fn counter(http: &str, name: &str) -> u64 {
    let (status, metrics) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}: {metrics}"))
}

/// The recordings' disk fills up during a call (a 96 KiB tmpfs mounted over the recordings
/// directory in the server's own mount namespace): the call goes on and ends as asked, the file
/// stays valid up to where the disk filled (downloaded, then read whole by sox), the log names
/// the call, and the metrics count a recording cut short.
#[test]
fn a_full_disk_cuts_a_recording_short_and_the_call_goes_on() {
    if dialbridge_testkit::skip_without_sipp()
        || dialbridge_testkit::skip_without_sox()
        || dialbridge_testkit::skip_without_mount_namespace()
    {
        return;
    }
    let w = legacy_world_served(
        |op, _| record_enterprise(op, "bridge", &[]),
        |op| {
            let recordings = op.dir.path().join("dialbridge-data/recordings");
            std::fs::create_dir_all(&recordings).unwrap();
            serve_under(
                op,
                &[
                    "unshare",
                    "--mount",
                    "sh",
                    "-c",
                    r#"mount -t tmpfs -o size=96k,mode=0700 tmpfs "$0" && exec "$@""#,
                    recordings.to_str().unwrap(),
                ],
                &[],
            )
        },
    );
    let (_phone, carrier) = tone_phones(&w);
    let (unique_id, cdr) = talk_then_hang_up(&w, &carrier, Duration::from_secs(5));
    assert_eq!(cdr["end_reason"], "HangUpRequested", "{cdr}");
    let bridged = bridged_seconds(&cdr);
    assert!(bridged >= 4.5, "{cdr}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&w.server.http, "dialbridge_recording_files_cut_short_total") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(counter(&w.server.http, "dialbridge_recording_files_cut_short_total"), 1);
    assert_eq!(counter(&w.server.http, "dialbridge_recordings_kept_total"), 1);
    assert!(
        w.server
            .log_lines()
            .iter()
            .any(|l| l.contains("recording write failed") && l.contains(&unique_id)),
        "the log names the call: {:#?}",
        w.server.log_lines()
    );

    // The stored file, through the server's own view of its mount namespace: valid up to where
    // the disk filled (96 KiB hold about 3 s at 32 kB/s), read whole by sox.
    let file = cdr["record_file"].as_str().unwrap().to_owned();
    assert!(!file.is_empty(), "{cdr}");
    let stored = PathBuf::from(format!("/proc/{}/root", w.server.child.id()))
        .join(recording_path(&w.op, &file).strip_prefix("/").unwrap());
    let decoded = std::process::Command::new("sox")
        .arg(&stored)
        .args(["-n", "stat"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&decoded.stderr).to_string();
    assert!(decoded.status.success(), "{report}");
    let (channels, _, _, seconds) = soxi(&stored);
    assert_eq!(channels, 2);
    assert!(
        (1.0..bridged - 1.0).contains(&seconds),
        "{seconds} s kept of {bridged} s bridged: what fitted on the disk"
    );
    // And as a CRM downloads it.
    let day = &file.split('-').nth(1).unwrap()[..8];
    let (status, _, agent) = get_bytes(
        &w.server.http,
        &format!("/{day}/{file}?{}&recordSide=2", admin_auth()),
        &[],
    );
    assert_eq!(status, 200);
    let copy = w.op.dir.path().join("downloaded.wav");
    std::fs::write(&copy, &agent).unwrap();
    assert!((soxi(&copy).3 - seconds).abs() < 0.01);
    let (samples, _) = dialbridge_testkit::audio::read_wav(&copy, 0);
    let heard = dialbridge_testkit::audio::tone_seconds(&samples, 8000, AGENT_HZ);
    assert!(
        heard >= seconds - 0.5,
        "the agent up to the cut: {heard} s of {seconds} s"
    );
}

//! baresip (Debian's 1.0, an independently written softphone) as an agent's extension, with
//! the server's default settings: it registers (it refuses a 401 that also offers a digest
//! algorithm it does not know), takes a PreviewOutcall bridged to a SIPp carrier with audio both
//! ways, and a wrong password is logged and counted with its reason.

use super::*;

fn metrics(http: &str) -> String {
    let (status, body) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    body
}

#[test]
fn baresip_registers_as_an_extension_and_takes_a_call() {
    if dialbridge_testkit::skip_without_sipp() || dialbridge_testkit::skip_without_baresip() {
        return;
    }
    let w = legacy_world();
    let sip: std::net::SocketAddr = w.server.sip.parse().unwrap();

    let wrong = dialbridge_testkit::Baresip::register(sip, "3000001-801", "not-the-password");
    let counted = "dialbridge_sip_registrations_refused_total{reason=\"wrong_password\"} 1";
    let until = Instant::now() + Duration::from_secs(20);
    while !metrics(&w.server.http).contains(counted) {
        assert!(
            Instant::now() < until,
            "not counted: {}\n{}",
            metrics(&w.server.http),
            wrong.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(wrong);
    let logged = w
        .server
        .log_lines()
        .into_iter()
        .find(|l| l.contains("REGISTER refused"))
        .expect("the refusal is logged");
    assert!(
        logged.contains("INFO") && logged.contains("wrong_password") && logged.contains("3000001-801"),
        "{logged}"
    );
    assert!(!logged.contains("not-the-password"), "{logged}");

    let phone = dialbridge_testkit::Baresip::register(sip, "3000001-801", "ext801-secret");
    assert!(
        phone.wait_for_log("200 OK", Duration::from_secs(20)),
        "baresip did not register: {}",
        phone.logs()
    );
    alice_online_on_801(&w.server.http);
    let mut carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", w.carrier_port, 1)
        .rtp_stream()
        .spawn();

    let reply = outcall(&w.server.http, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "baresip answered: {reply}\n{}", phone.logs());
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(
        carrier.wait_for_log("answer acknowledged", Duration::from_secs(20)),
        "{}",
        carrier.logs()
    );
    // Both directions carry audio for a few seconds: baresip's tone, the carrier's stream.
    std::thread::sleep(Duration::from_secs(3));
    let hang_up = json_get(
        &w.server.http,
        &format!("/interface/HangUp?{}&uniqueId={unique_id}", admin_auth()),
    );
    assert_eq!(hang_up["result"], "success", "{hang_up}");
    assert_eq!(cdr_row(&w.server.http, &unique_id)["status"], "双方接听");
    let cdr = wait_for_end(&w.op, &unique_id, Duration::from_secs(20));
    // 20 ms packets: over 2 s of the 3 s each way.
    for direction in ["packets_agent_to_customer", "packets_customer_to_agent"] {
        assert!(cdr[direction].as_u64().unwrap() > 100, "{direction}: {cdr}");
    }
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
}

//! Restart safety: a SIGKILL in the middle of a call.

use super::*;

#[test]
fn a_call_survives_a_crash_of_the_server_as_one_cdr_charged_once() {
    let w = legacy_world();
    let a = w.server.http.clone();
    let sip: std::net::SocketAddr = w.server.sip.parse().unwrap();
    let phone_port = dialbridge_testkit::free_port();
    let _phone = dialbridge_testkit::SippBuilder::new("phone_uas.xml", None)
        .args(["-p".to_owned(), phone_port.to_string(), "-m".to_owned(), "1".to_owned()])
        .media_port(dialbridge_testkit::free_port())
        .rtp_stream()
        .spawn();
    let _carrier = dialbridge_testkit::SippBuilder::new("phone_uas.xml", None)
        .args([
            "-p".to_owned(),
            w.carrier_port.to_string(),
            "-m".to_owned(),
            "1".to_owned(),
        ])
        .media_port(dialbridge_testkit::free_port())
        .rtp_stream()
        .spawn();
    let mut register = dialbridge_testkit::SippBuilder::new("register.xml", Some(sip))
        .args([
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
        .set("contact_port", phone_port)
        .spawn();
    assert!(register.finish(Duration::from_secs(10)), "{}", register.logs());
    assert_eq!(
        json_get(
            &a,
            &format!(
                "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
                admin_auth()
            )
        )["code"],
        "0"
    );
    let reply = outcall(&a, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1_000));

    // SIGKILL in the middle of the bridged call.
    let LegacyWorld { op, mut server, .. } = w;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    for restart in 0..2 {
        let server = serve(&op);
        let page = json_get(
            &server.http,
            &format!(
                "/interfaceAction/cdrObInterface!listCdrOb.action?{}&uniqueId={unique_id}",
                admin_auth()
            ),
        );
        let rows = page["msg"]["data"].as_array().unwrap().clone();
        assert_eq!(rows.len(), 1, "restart {restart}: exactly one CDR: {page}");
        assert_eq!(rows[0]["status"], "双方接听", "the phase it reached");
        assert_eq!(rows[0]["sipCause"], "0");
        let balance = &op.json(&["admin", "balance", "show", "--enterprise", "3000001"])[0]["balance"];
        assert_eq!(balance, "99.8800", "restart {restart}: charged once");
        // The lock is released: the agent can call again (its phone is still registered? the
        // registrar restarted with no bindings, so the answer is 9, not 13 or 33).
        assert_eq!(outcall(&server.http, "customerNumber=13800138000")["res"], "9");
    }
}

//! Restart safety: a SIGKILL in the middle of a call.

use super::*;

#[test]
fn a_call_survives_a_crash_of_the_server_as_one_cdr_charged_once() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = w.server.http.clone();
    let (_phone, _carrier) = phone_and_carrier(&w, &[], &[]);
    let reply = outcall(&a, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    // Bridged for over three heartbeats (one a second in these tests).
    std::thread::sleep(Duration::from_millis(3_500));

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
        // Billed up to its last heartbeat (the second at least), not only its first second.
        let bridged = rows[0]["bridgeDuration"].as_str().unwrap();
        assert!(["00:00:02", "00:00:03", "00:00:04"].contains(&bridged), "{}", rows[0]);
        let balance = &op.json(&["admin", "balance", "show", "--enterprise", "3000001"])[0]["balance"];
        assert_eq!(balance, "99.8800", "restart {restart}: charged once");
        // The lock is released: the agent can call again (its phone is still registered? the
        // registrar restarted with no bindings, so the answer is 9, not 13 or 33).
        assert_eq!(outcall(&server.http, "customerNumber=13800138000")["res"], "9");
    }
}

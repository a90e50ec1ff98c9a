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
        // The lock is released: the agent is on no call.
        let agents = op.json(&["admin", "agent", "list", "--enterprise", "3000001"]);
        let alice = agents.as_array().unwrap().iter().find(|a| a["cno"] == "2000").unwrap();
        assert_eq!(alice["call"], Value::Null, "restart {restart}: {alice}");
    }
}

/// A phone registered over UDP is reachable right after the server restarts (after a SIGKILL):
/// the call reaches it without a new REGISTER.
#[test]
fn a_phone_registered_before_a_crash_is_called_right_after_the_restart() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let (mut phone, mut carrier) = phone_and_carrier(&w, &[], &[]);
    // The registration is written to the store beside the SIP path, within milliseconds.
    std::thread::sleep(Duration::from_secs(2));
    let LegacyWorld { op, mut server, .. } = w;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = serve(&op);
    let reply = outcall(&server.http, "customerNumber=13800138000&sync=1");
    assert_eq!(
        reply["res"], "0",
        "the phone answered without registering again: {reply}"
    );
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    let until = Instant::now() + Duration::from_secs(20);
    while !carrier.logs().contains("answer acknowledged") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let hang_up = json_get(
        &server.http,
        &format!("/interface/HangUp?{}&uniqueId={unique_id}", admin_auth()),
    );
    assert_eq!(hang_up["result"], "success", "{hang_up}");
    assert!(phone.finish(Duration::from_secs(30)), "{}", phone.logs());
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
    assert_eq!(phone.logs().matches("INVITE call_id").count(), 1, "{}", phone.logs());
}

/// A burst of calls, the server SIGKILLed in the middle of it: after the restart every request
/// that was answered `res` 0 has exactly one CDR, and no agent is left locked.
#[test]
fn a_crash_during_a_burst_of_calls_loses_no_accepted_call() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    const AGENTS: usize = 40;
    let op = Operator::new();
    let carrier_port = crowd_store(&op, AGENTS, "", 100);
    let mut server = serve(&op);
    // The carrier answers every leg and holds it: the calls are running when the server dies.
    let _carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 2 * AGENTS as u32)
        .silent_media()
        .spawn();
    crowd_online(&server.http, AGENTS);

    // The requests go out 10 ms apart; the kill comes once a third of them were answered.
    let (answered, answers) = std::sync::mpsc::channel();
    let burst: Vec<_> = (0..AGENTS)
        .map(|i| {
            let (http, answered) = (server.http.clone(), answered.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10 * i as u64));
                let reply = crowd_outcall(&http, i);
                let _ = answered.send(());
                reply
            })
        })
        .collect();
    for _ in 0..AGENTS / 3 {
        answers.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let replies: Vec<Option<serde_json::Value>> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    drop(server);
    let accepted: Vec<String> = replies
        .iter()
        .flatten()
        .filter(|r| r["res"] == "0")
        .map(|r| r["uniqueId"].as_str().unwrap().to_owned())
        .collect();
    assert!(accepted.len() >= AGENTS / 3, "{replies:?}");
    assert!(
        replies.iter().any(Option::is_none),
        "the kill came during the burst: {replies:?}"
    );

    let server = serve(&op);
    for unique_id in &accepted {
        let page = json_get(
            &server.http,
            &format!(
                "/interfaceAction/cdrObInterface!listCdrOb.action?{}&uniqueId={unique_id}",
                admin_auth()
            ),
        );
        assert_eq!(page["msg"]["data"].as_array().unwrap().len(), 1, "{unique_id}: {page}");
    }
    for agent in op
        .json(&["admin", "agent", "list", "--enterprise", "3000001"])
        .as_array()
        .unwrap()
    {
        assert!(agent["call"].is_null(), "no agent is left in a call: {agent}");
    }
}

/// SIGKILLs the server of `w` and starts it again on the same SIP address (as a deployment
/// does: the far ends' answers to what the restart sends come back to it).
fn crash_and_restart(w: LegacyWorld) -> (Operator, Server) {
    let LegacyWorld { op, mut server, .. } = w;
    let sip = server.sip.clone();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let server = serve_with(&op, &[("DIALBRIDGE_SIP_LISTEN", sip.as_str())]);
    (op, server)
}

/// Waits until `sipp` logged `line`.
fn wait_for_log(sipp: &mut dialbridge_testkit::Sipp, line: &str, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if sipp.logs().contains(line) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The CDR of `unique_id`: exactly one, with `status`; the balance (100 before the call) is
/// `balance`: charged once; and agent 2000 on no call.
fn closed_once(op: &Operator, server: &Server, unique_id: &str, status: &str, balance: &str) {
    let page = json_get(
        &server.http,
        &format!(
            "/interfaceAction/cdrObInterface!listCdrOb.action?{}&uniqueId={unique_id}",
            admin_auth()
        ),
    );
    let rows = page["msg"]["data"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "exactly one CDR: {page}");
    assert_eq!(rows[0]["status"], status, "{}", rows[0]);
    assert_eq!(rows[0]["sipCause"], "0");
    let money = &op.json(&["admin", "balance", "show", "--enterprise", "3000001"])[0];
    assert_eq!(money["balance"], balance, "{money}");
    assert_eq!(money["held"], "0.0000", "{money}");
    let agents = op.json(&["admin", "agent", "list", "--enterprise", "3000001"]);
    let alice = agents.as_array().unwrap().iter().find(|a| a["cno"] == "2000").unwrap();
    assert_eq!(alice["call"], Value::Null, "{alice}");
}

/// A phone that answers and waits for the BYE (`phone_uas.xml`'s default).
fn answering_phone(port: u16) -> dialbridge_testkit::SippBuilder {
    dialbridge_testkit::SippBuilder::answering("phone_uas.xml", port, 1).rtp_stream()
}

/// A phone or carrier that rings and requires a CANCEL within 30 s (`cancel_required_uas.xml`):
/// its exit code says whether one came.
fn ringing_until_cancelled(port: u16) -> dialbridge_testkit::SippBuilder {
    dialbridge_testkit::SippBuilder::answering("cancel_required_uas.xml", port, 1)
}

/// How long after a leg's progress the test waits before the kill: the progress (and how to
/// end the leg) is committed within milliseconds; this is generous on a loaded machine.
const COMMITTED: Duration = Duration::from_millis(1_500);

#[test]
fn a_crash_while_the_agents_phone_rings_is_cancelled_by_the_restart() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", w.carrier_port, 1);
    let (mut phone, _carrier) = phone_with_carrier(&w.server.http, &w.server.sip, ringing_until_cancelled, carrier);
    let reply = outcall(&w.server.http, "customerNumber=13800138000");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(wait_for_log(&mut phone, "INVITE call_id", Duration::from_secs(10)));
    std::thread::sleep(COMMITTED);
    let (op, server) = crash_and_restart(w);
    assert!(
        phone.finish(Duration::from_secs(30)),
        "the ringing phone is cancelled: {}",
        phone.logs()
    );
    closed_once(&op, &server, &unique_id, "座席未接听", "100.0000");
}

#[test]
fn a_crash_while_the_customers_phone_rings_hangs_up_the_agent_and_cancels_the_customer() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let carrier = ringing_until_cancelled(w.carrier_port);
    let (mut phone, mut carrier) = phone_with_carrier(&w.server.http, &w.server.sip, answering_phone, carrier);
    let reply = outcall(&w.server.http, "customerNumber=13800138000");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(wait_for_log(&mut carrier, "INVITE call_id", Duration::from_secs(10)));
    std::thread::sleep(COMMITTED);
    let (op, server) = crash_and_restart(w);
    assert!(
        phone.finish(Duration::from_secs(15)),
        "the agent's phone got its BYE: {}",
        phone.logs()
    );
    assert!(
        carrier.finish(Duration::from_secs(30)),
        "the customer's ringing phone is cancelled: {}",
        carrier.logs()
    );
    closed_once(&op, &server, &unique_id, "客户未接听", "100.0000");
}

#[test]
fn a_crash_while_bridged_hangs_up_both_far_ends() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let crm = super::pushes::receiver(&[]);
    w.op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "crm",
        "--type",
        "hangup",
        "--url",
        &format!("http://{}/hangup", crm.address),
    ]);
    let (mut phone, mut carrier) = phone_and_carrier(&w, &[], &[]);
    let reply = outcall(&w.server.http, "customerNumber=13800138000");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(wait_for_log(
        &mut carrier,
        "answer acknowledged",
        Duration::from_secs(10)
    ));
    std::thread::sleep(COMMITTED);
    let (op, server) = crash_and_restart(w);
    assert!(
        phone.finish(Duration::from_secs(15)),
        "the agent's phone got its BYE: {}",
        phone.logs()
    );
    assert!(
        carrier.finish(Duration::from_secs(15)),
        "the carrier got its BYE: {}",
        carrier.logs()
    );
    closed_once(&op, &server, &unique_id, "双方接听", "99.8800");
    let pushed = crm.wait_for("/hangup", Duration::from_secs(10));
    assert!(pushed.body.contains(&unique_id), "{}", pushed.body);
    // A second delivery would come at once (nothing failed): none does.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(crm.delivered("/hangup").len(), 1, "the hang-up is pushed once");
}

/// The carrier put the call on hold, resumed it elsewhere and refreshed it (two re-INVITEs and
/// an UPDATE) before the crash: the BYE kept from the answer still ends the dialog.
#[test]
fn a_crash_after_re_invites_hangs_up_both_far_ends() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let carrier = dialbridge_testkit::SippBuilder::answering("reinvite_uas.xml", w.carrier_port, 1)
        .set("port_a", dialbridge_testkit::free_port())
        .set("port_b", dialbridge_testkit::free_port());
    let (mut phone, mut carrier) = phone_with_carrier(&w.server.http, &w.server.sip, answering_phone, carrier);
    let reply = outcall(&w.server.http, "customerNumber=13800138000");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(
        wait_for_log(&mut carrier, "refreshed", Duration::from_secs(15)),
        "{}",
        carrier.logs()
    );
    std::thread::sleep(COMMITTED);
    let (op, server) = crash_and_restart(w);
    assert!(
        phone.finish(Duration::from_secs(15)),
        "the agent's phone got its BYE: {}",
        phone.logs()
    );
    assert!(
        carrier.finish(Duration::from_secs(15)),
        "the carrier got its BYE: {}",
        carrier.logs()
    );
    closed_once(&op, &server, &unique_id, "双方接听", "99.8800");
}

/// The crash comes while a session refresh of ours (a re-INVITE) is unanswered: the BYE kept
/// from the answer is numbered above it, and ends the carrier's dialog.
#[test]
fn a_crash_during_a_re_invite_hangs_up_both_far_ends() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let carrier = dialbridge_testkit::SippBuilder::answering("refresh_unanswered_uas.xml", w.carrier_port, 1);
    let (mut phone, mut carrier) = phone_with_carrier(&w.server.http, &w.server.sip, answering_phone, carrier);
    let reply = outcall(&w.server.http, "customerNumber=13800138000");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(
        wait_for_log(&mut carrier, "refresh received", Duration::from_secs(15)),
        "{}",
        carrier.logs()
    );
    let (op, server) = crash_and_restart(w);
    assert!(
        phone.finish(Duration::from_secs(15)),
        "the agent's phone got its BYE: {}",
        phone.logs()
    );
    assert!(
        carrier.finish(Duration::from_secs(15)),
        "the carrier got its BYE: {}",
        carrier.logs()
    );
    closed_once(&op, &server, &unique_id, "双方接听", "99.8800");
}

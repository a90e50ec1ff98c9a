//! `/interface/PreviewOutcall` (with `HangUp` and the CDR endpoints it leads to): every `res`
//! code from its real condition, sync and async calls end to end with SIPp, CDRs and billing,
//! racing requests.

use super::*;

#[test]
fn preview_outcall_refusals_carry_their_res_codes() {
    let w = legacy_world();
    let a = &w.server.http;
    let md5 = md5_hex("1234");
    let res = |path: &str| json_get(a, path)["res"].as_str().unwrap().to_owned();
    // 2: missing or malformed parameters.
    assert_eq!(
        res("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&customerNumber=13800138000"),
        "2"
    );
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=300&cno=2000&pwd={md5}&customerNumber=1"
        )),
        "2"
    );
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={md5}&customerNumber=13800138000&sync=2"
        )),
        "2"
    );
    // 8 before 3: a nonexistent cno, then a wrong password for an existing one.
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=3000001&cno=2999&pwd={md5}&customerNumber=13800138000"
        )),
        "8"
    );
    assert_eq!(
        res("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd=0123&customerNumber=13800138000"),
        "3"
    );
    // Another enterprise's credentials never reach this agent.
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=3000002&cno=2000&pwd={md5}&customerNumber=13800138000"
        )),
        "8"
    );
    // 4: disabled agent.
    let bob = md5_hex("5678");
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=3000001&cno=2001&pwd={bob}&customerNumber=13800138000"
        )),
        "4"
    );
    // 7, 11, 14 in that order, before the agent's state (12).
    assert_eq!(outcall(a, "customerNumber=12345678901234")["res"], "7");
    assert_eq!(outcall(a, "customerNumber=801")["res"], "7");
    assert_eq!(outcall(a, "customerNumber=13900000000")["res"], "11");
    assert_eq!(
        outcall(a, "customerNumber=13800138000&clidLeftNumber=01087128906")["res"],
        "14"
    );
    // 12: not logged in. Upper-case MD5 and extra parameters are fine.
    let upper = md5.to_ascii_uppercase();
    let r = json_get(a, &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={upper}&customerNumber=138-0013-8000&hotline=&sync="));
    assert_eq!(r, serde_json::json!({"res": "12"}), "no uniqueId with a refusal");
    // The same request as multipart/form-data.
    let multipart = {
        use std::io::{Read, Write};
        let fields = [
            ("enterpriseId", "3000001"),
            ("cno", "2000"),
            ("pwd", md5.as_str()),
            ("customerNumber", "13800138000"),
        ];
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str("--XyZ--\r\n");
        let mut stream = std::net::TcpStream::connect(a.as_str()).unwrap();
        write!(stream, "POST /interface/PreviewOutcall HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(multipart, r#"{"res":"12"}"#);
    // 9: online on an extension that is not registered.
    let online = json_get(
        a,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
            admin_auth()
        ),
    );
    assert_eq!(online, serde_json::json!({"code": "0", "msg": "ok"}));
    assert_eq!(outcall(a, "customerNumber=13800138000")["res"], "9");
    let again = json_get(
        a,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
            admin_auth()
        ),
    );
    assert_eq!(again["code"], "12");
    // 41: the enterprise disabled (operators' changes apply at once).
    w.op.ok(&["admin", "enterprise", "disable", "--id", "3000001"]);
    assert_eq!(outcall(a, "customerNumber=13800138000")["res"], "41");
    // Every refusal is recorded for the operator.
    let attempts = w.op.json(&["admin", "attempts", "list", "--enterprise", "3000001"]);
    assert_eq!(attempts[0]["res"], "41");
    assert!(attempts
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["res"] == "11" && r["reason"].as_str().unwrap().contains("13900000000")));
    // JSONP, and a callback that is not a function name is ignored.
    let (_, body) = http_get(a, &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={md5}&customerNumber=13800138000&callback=cb_1"));
    assert_eq!(body, r#"cb_1({"res":"41"})"#);
    let (_, body) = http_get(a, &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={md5}&customerNumber=13800138000&callback=alert(1)"));
    assert_eq!(body, r#"{"res":"41"}"#);
}

#[test]
fn a_synchronous_preview_outcall_end_to_end() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = &w.server.http;
    let (mut phone, mut carrier) = phone_and_carrier(
        &w,
        &[("expect_from_user", "13800138000")],
        &[
            ("talk_ms", "1200"),
            ("expect_from_user", "02160001234"),
            ("expect_pai_user", "02160001234"),
            ("expect_ruri_user", "13800138000"),
        ],
    );

    let reply = outcall(
        a,
        "customerNumber=13800138000&sync=1&userField=%7B%22crm%22%3A%22a%3D1%26b%3D2%22%7D",
    );
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(
        unique_id.starts_with("dialbridge1-") && unique_id.contains('.'),
        "{unique_id}"
    );
    // While the call runs: the agent's lock answers 13 (past setup).
    assert_eq!(outcall(a, "customerNumber=13800138000")["res"], "13");

    assert!(carrier.finish(Duration::from_secs(20)), "{}", carrier.logs());
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
    let row = cdr_row(a, &unique_id);
    assert_eq!(row["status"], "双方接听", "{row}");
    assert_eq!(row["userField"], r#"{"crm":"a=1&b=2"}"#);
    assert_eq!(row["numberTrunk"], "02160001234");
    assert_eq!(row["clientNumber"], "801");
    assert_eq!(row["customerNumber"], "13800138000");
    assert_eq!(row["callType"], "预览外呼");
    assert_eq!(row["endReason"], "是", "the customer hung up");
    assert_eq!(row["cost"], "0.120");
    assert_eq!(row["sipCause"], "200");
    assert!(row["bridgeDuration"].as_str().unwrap().starts_with("00:00:0"), "{row}");
    let balance = &w.op.json(&["admin", "balance", "show", "--enterprise", "3000001"])[0]["balance"];
    assert_eq!(balance, "99.8800", "charged once");
    let detail = json_get(
        a,
        &format!(
            "/interfaceAction/cdrObInterface!listCdrObDetail.action?{}&id={unique_id}",
            admin_auth()
        ),
    );
    assert_eq!(detail["result"], "success", "{detail}");
    let legs = detail["msg"].as_array().expect("msg is the list of legs");
    assert_eq!(legs.len(), 2, "{detail}");
    assert_eq!(legs[0]["status"], "座席接听");
    assert_eq!(legs[1]["status"], "双方接听");
    assert_eq!(legs[1]["cost"], "0.120");
    assert_eq!(legs[1]["sipCause"], "200");
    // Another enterprise's admin sees none of it.
    let rival = md5_hex(&format!("{}1", md5_hex("rival-secret")));
    let theirs = json_get(a, &format!("/interfaceAction/cdrObInterface!listCdrOb.action?enterpriseId=3000002&userName=admin&seed=1&pwd={rival}&uniqueId={unique_id}"));
    assert_eq!(theirs["msg"]["data"], serde_json::json!([]));
    // After the call the agent is in wrap-up for its wrap-up seconds (2), then online.
    let agent_now = || w.op.json(&["admin", "agent", "list", "--enterprise", "3000001"])[0].clone();
    let alice = agent_now();
    assert_eq!(
        (alice["login_status"].as_str(), alice["pause_description"].as_str()),
        (Some("pause"), Some("pauseWrapup")),
        "{alice}"
    );
    assert!(alice["wrapup_left_secs"].as_u64().unwrap() <= 2);
    let wrapped_up = Instant::now() + Duration::from_secs(20);
    let alice = loop {
        let alice = agent_now();
        if alice["login_status"] != "pause" || Instant::now() > wrapped_up {
            break alice;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (alice["login_status"].as_str(), alice["pause_description"].as_str()),
        (Some("online"), None),
        "{alice}"
    );
    // The lock is released: the agent may call again (async: accepted at once).
    let next = outcall(a, "customerNumber=13800138000");
    assert_eq!(next["res"], "0", "{next}");
    let hang_up = |extra: &str| json_get(a, &format!("/interface/HangUp?{}&{extra}", admin_auth()));
    assert_eq!(
        hang_up("uniqueId=dialbridge1-1.999"),
        serde_json::json!({"result": "error", "msg": "no call"})
    );
    assert_eq!(hang_up("cno=2000"), serde_json::json!({"result": "success"}));
    let next_id = next["uniqueId"].as_str().unwrap().to_owned();
    assert_eq!(
        cdr_row(a, &next_id)["status"],
        "座席未接听",
        "hung up while the agent's phone rang"
    );
    assert_eq!(hang_up("cno=2000")["result"], "error");
}

#[test]
fn fifty_racing_requests_place_exactly_one_call() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = w.server.http.clone();
    let (mut phone, _carrier) = phone_and_carrier(&w, &[("mode", "noanswer")], &[]);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let racers: Vec<_> = (0..50)
        .map(|_| {
            let a = a.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                outcall(&a, "customerNumber=13800138000")
            })
        })
        .collect();
    let replies: Vec<serde_json::Value> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let winners: Vec<_> = replies.iter().filter(|r| r["res"] == "0").collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    assert!(
        replies.iter().any(|r| r["res"] == "33"),
        "the losers of a race during setup get 33"
    );
    // 10: the enterprise's concurrency cap is reached by the call in setup.
    let dave = dave_online_on_a_telephone(&w);
    w.op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--concurrency-cap",
        "1",
    ]);
    let r = json_get(
        &a,
        &format!("/interface/PreviewOutcall?{dave}&customerNumber=13800138000"),
    );
    assert_eq!(r, serde_json::json!({"res": "10"}));
    for r in &replies {
        assert!(["0", "33", "13"].contains(&r["res"].as_str().unwrap()), "{r}");
        if r["res"] != "0" {
            assert!(r.get("uniqueId").is_none());
        }
    }
    // During the call the agent cannot go offline or change its phone.
    let offline = json_get(
        &a,
        &format!("/interface/client/ClientOffline?{}&cno=2000", admin_auth()),
    );
    assert_eq!(offline, serde_json::json!({"code": "13", "msg": "agent in a call"}));
    let rebind = json_get(
        &a,
        &format!(
            "/interface/client/ChangeBindTel?{}&cno=2000&bindTel=13900139000&type=1",
            admin_auth()
        ),
    );
    assert_eq!(rebind, serde_json::json!({"result": "error", "msg": "agent not idle"}));
    let hang_up = json_get(&a, &format!("/interface/HangUp?{}&cno=2000", admin_auth()));
    assert_eq!(hang_up["result"], "success");
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
    assert_eq!(
        phone.logs().matches("INVITE call_id").count(),
        1,
        "exactly one INVITE reached the phone"
    );
}

#[test]
fn unanswered_and_failed_calls_and_the_remaining_res_codes() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let op = Operator::new();
    let carrier_port = dialbridge_testkit::free_port();
    let setup = legacy_setup(carrier_port)
        .replace("agent_ring_timeout_secs = 5", "agent_ring_timeout_secs = 1")
        .replace("customer_ring_timeout_secs = 5", "customer_ring_timeout_secs = 1");
    op.ok(&["provision", &op.write("legacy.toml", &setup)]);
    op.ok(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "100",
    ]);
    let server = serve(&op);
    let a = server.http.clone();
    let sip: std::net::SocketAddr = server.sip.parse().unwrap();
    let phone_port = dialbridge_testkit::free_port();
    let uas = |port: u16, settings: &[(&str, &str)]| {
        dialbridge_testkit::SippBuilder::answering("phone_uas.xml", port, 1)
            .rtp_stream()
            .settings(settings)
            .spawn()
    };
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
    // ClientOnline by form POST, with the status parameters a CRM sends.
    let online = http_post_form(
        &a,
        "/interface/client/ClientOnline",
        &format!("{}&cno=2000&bindTel=801&type=2&status=1", admin_auth()),
    );
    assert_eq!(online["code"], "0");

    // The agent does not answer: sync res 1, CDR 24, the customer is never called.
    let mut phone = uas(phone_port, &[("mode", "noanswer")]);
    let pwd = md5_hex("1234");
    let form = format!("enterpriseId=3000001&cno=2000&pwd={pwd}&customerNumber=13800138000&sync=1");
    let reply = http_post_form(&a, "/interface/PreviewOutcall", &form);
    assert_eq!(reply, serde_json::json!({"res": "1"}));
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
    let last = json_get(
        &a,
        &format!(
            "/interfaceAction/cdrObInterface!listCdrOb.action?{}&limit=1",
            admin_auth()
        ),
    );
    let row = &last["msg"]["data"][0];
    assert_eq!(row["status"], "座席未接听", "{row}");
    assert_eq!(row["sipCause"], "487");

    // The customer is busy: CDR 22; the customer does not answer: CDR 21.
    for (mode, status, cause) in [("busy", "客户呼叫失败", "486"), ("noanswer", "客户未接听", "487")] {
        let mut phone = uas(phone_port, &[]);
        let mut carrier = uas(carrier_port, &[("mode", mode)]);
        let reply = outcall(&a, "customerNumber=13800138000&sync=1");
        assert_eq!(reply["res"], "0", "{reply}");
        let row = cdr_row(&a, reply["uniqueId"].as_str().unwrap());
        assert_eq!(
            (row["status"].as_str().unwrap(), row["sipCause"].as_str().unwrap()),
            (status, cause),
            "{row}"
        );
        assert_eq!(row["cost"], "0.000");
        assert!(
            phone.finish(Duration::from_secs(20)) && phone.logs().contains("BYE received"),
            "{}",
            phone.logs()
        );
        assert!(carrier.finish(Duration::from_secs(20)), "{}", carrier.logs());
    }

    // 40: the number was called 3 times within the window.
    op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--number-limit",
        "3/60",
    ]);
    assert_eq!(outcall(&a, "customerNumber=13800138000")["res"], "40");
    op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--number-limit",
        "none",
    ]);
    // 5: no balance left.
    op.ok(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "-100",
    ]);
    assert_eq!(outcall(&a, "customerNumber=13800138000")["res"], "5");
    // 6 before 5: outbound calling switched off.
    op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--outbound-enabled",
        "false",
    ]);
    assert_eq!(outcall(&a, "customerNumber=13800138000")["res"], "6");
}

/// The server decides from its configuration in memory; a change made with `dialbridge admin`
/// in another process while it runs reaches its next decisions (within 5 s, generously).
#[test]
fn configuration_changed_by_admin_reaches_the_running_server() {
    let w = legacy_world();
    let a = w.server.http.clone();
    // Offline (12) until the configuration says otherwise.
    let first = |expected: &str| {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let res = outcall(&a, "customerNumber=13800138000")["res"].clone();
            if res == expected || Instant::now() >= until {
                return res;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(first("12"), "12");
    let agent = ["admin", "agent", "update", "--enterprise", "3000001", "--cno", "2000"];
    w.op.ok(&[&agent[..], &["--active", "false"]].concat());
    assert_eq!(first("4"), "4", "a disabled agent");
    w.op.ok(&[&agent[..], &["--active", "true", "--password", "changed"]].concat());
    assert_eq!(first("3"), "3", "the old password no longer authenticates");
    w.op.ok(&[&agent[..], &["--password", "1234"]].concat());
    assert_eq!(first("12"), "12");
    w.op.ok(&["admin", "enterprise", "disable", "--id", "3000001"]);
    assert_eq!(first("41"), "41", "a disabled enterprise");
}

//! No call spends money the enterprise does not have: credit held per running call, extended
//! as it runs, settled exactly, on SQLite and PostgreSQL. The rate is 0.12 a minute; the calls
//! are real (a SIPp carrier answers the agents' telephones and the customers and holds them),
//! so these tests wait out the billing minutes they are about.

use super::*;

/// Far longer than any call here: silence on the held legs must not end them first.
const QUIET_LEGS: &[(&str, &str)] = &[("DIALBRIDGE_RTP_INACTIVITY_SECS", "600")];

/// Sets enterprise 3000001's balance (100 after [`crowd_store`]) to `target` with an operator's
/// correction.
fn correct_balance_to(op: &Operator, target: &str) {
    let target: f64 = target.parse().unwrap();
    let amount = format!("{:.4}", target - 100.0);
    op.ok(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        &amount,
    ]);
}

/// `admin balance show`: balance, credit_limit, held, available, holding_calls.
fn money(op: &Operator) -> Value {
    op.json(&["admin", "balance", "show", "--enterprise", "3000001"])[0].clone()
}

/// Waits until the carrier answered `legs` legs (the agents' telephones and the customers).
fn wait_for_answered_legs(carrier: &mut dialbridge_testkit::Sipp, legs: usize) {
    let answered = |carrier: &mut dialbridge_testkit::Sipp| carrier.logs().matches("answer acknowledged").count();
    let until = Instant::now() + Duration::from_secs(30);
    while answered(carrier) < legs && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(answered(carrier), legs, "{}", carrier.logs());
}

/// The ledger's call charges: (uniqueId, amount).
fn call_charges(op: &Operator) -> Vec<(String, String)> {
    op.json(&["admin", "balance", "ledger", "--enterprise", "3000001"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "call_charge")
        .map(|l| {
            (
                l["reference"].as_str().unwrap().to_owned(),
                l["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_balance_below_one_minutes_price_is_refused_and_nothing_is_dialled() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let op = Operator::new();
    let carrier_port = crowd_store(&op, 1, "", 100);
    correct_balance_to(&op, "0.05");
    let server = serve(&op);
    let carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 2)
        .silent_media()
        .spawn();
    crowd_online(&server.http, 1);
    let reply = crowd_outcall(&server.http, 0).unwrap();
    assert_eq!(reply["res"], "5", "{reply}");
    let attempts = op.json(&["admin", "attempts", "list", "--enterprise", "3000001"]);
    assert_eq!(attempts[0]["res"], "5", "{attempts}");
    let after = money(&op);
    assert_eq!(
        (&after["balance"], &after["held"]),
        (&"0.0500".into(), &"0.0000".into())
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !carrier.logs().contains("INVITE"),
        "no leg was placed: {}",
        carrier.logs()
    );
}

const RACERS: usize = 10;

/// Ten agents ask at the same instant against a balance that pays two minutes: exactly two
/// calls are accepted, each holds its first minute, neither can extend, both are cut when it
/// runs out, and the balance ends at exactly zero with one ledger row per call.
fn race_for_two_minutes(op: Operator) {
    let carrier_port = crowd_store(&op, RACERS, "", 100);
    correct_balance_to(&op, "0.24");
    let server = serve_with(&op, QUIET_LEGS);
    let a = server.http.clone();
    let mut carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 4)
        .silent_media()
        .spawn();
    crowd_online(&a, RACERS);

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (a, barrier) = (a.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                crowd_outcall(&a, i).expect("an answer")
            })
        })
        .collect();
    let replies: Vec<Value> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let accepted: Vec<String> = replies
        .iter()
        .filter(|r| r["res"] == "0")
        .map(|r| r["uniqueId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(accepted.len(), 2, "exactly what the balance pays: {replies:?}");
    for r in &replies {
        assert!(["0", "5"].contains(&r["res"].as_str().unwrap()), "{r}");
    }
    wait_for_answered_legs(&mut carrier, 4);
    let running = money(&op);
    assert_eq!(running["held"], "0.2400", "{running}");
    assert_eq!(running["available"], "0.0000", "{running}");
    assert_eq!(running["holding_calls"], 2, "{running}");

    let mut costs = Vec::new();
    for unique_id in &accepted {
        let cdr = wait_for_end(&op, unique_id, Duration::from_secs(120));
        assert_eq!(cdr["end_reason"], "BalanceExhausted", "{cdr}");
        assert_eq!(cdr["status"], 28, "{cdr}");
        assert_eq!(cdr["bridge_seconds"], 60, "cut when its minute ran out: {cdr}");
        assert_eq!(cdr["cost"], "0.1200", "{cdr}");
        costs.push((unique_id.clone(), "-0.1200".to_owned()));
    }
    let after = money(&op);
    assert_eq!(after["balance"], "0.0000", "{after}");
    assert_eq!((&after["held"], &after["holding_calls"]), (&"0.0000".into(), &0.into()));
    let mut charges = call_charges(&op);
    charges.sort();
    costs.sort();
    assert_eq!(charges, costs, "one ledger row per call, the CDR's cost");
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
    assert_eq!(
        carrier.logs().matches("BYE received").count(),
        4,
        "every leg hung up: {}",
        carrier.logs()
    );
    assert_eq!(
        carrier.logs().matches("INVITE call_id").count(),
        4,
        "no refused request placed a leg"
    );
}

#[test]
fn ten_racers_against_two_minutes_of_credit_on_sqlite() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    race_for_two_minutes(Operator::new());
}

#[test]
fn ten_racers_against_two_minutes_of_credit_on_postgres() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let Some(url) = dialbridge_testkit::fresh_postgres_database("dialbridge_credit") else {
        return;
    };
    race_for_two_minutes(Operator::on_postgres(url));
}

/// A balance of 0.10 and a credit limit of 0.20: one call holds its first minute, is extended
/// to a second before the first runs out (0.06 left, so another agent is refused), cannot
/// extend to a third, and is cut at the end of its second minute; the balance ends at -0.14,
/// inside the limit, and the CRM's JSON hang-up push says why.
#[test]
fn a_call_is_extended_then_cut_when_the_credit_limit_is_reached() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let op = Operator::new();
    let carrier_port = crowd_store(&op, 2, "credit_limit = \"0.20\"", 100);
    correct_balance_to(&op, "0.10");
    let crm = super::pushes::receiver(&[]);
    op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "modern",
        "--type",
        "hangup",
        "--format",
        "json",
        "--url",
        &format!("http://{}/hangup", crm.address),
    ]);
    let server = serve_with(&op, QUIET_LEGS);
    let mut carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 2)
        .silent_media()
        .spawn();
    crowd_online(&server.http, 2);
    let reply = crowd_outcall(&server.http, 0).unwrap();
    assert_eq!(reply["res"], "0", "0.10 + 0.20 pays a minute: {reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    wait_for_answered_legs(&mut carrier, 2);
    assert_eq!(money(&op)["held"], "0.1200");

    // About 45 s into the call it holds its second minute.
    let until = Instant::now() + Duration::from_secs(70);
    while money(&op)["held"] != "0.2400" {
        assert!(Instant::now() < until, "never extended: {}", money(&op));
        std::thread::sleep(Duration::from_millis(500));
    }
    let running = money(&op);
    assert_eq!(running["available"], "0.0600", "{running}");
    let refused = crowd_outcall(&server.http, 1).unwrap();
    assert_eq!(refused["res"], "5", "the call running holds what is left: {refused}");

    let cdr = wait_for_end(&op, &unique_id, Duration::from_secs(100));
    assert_eq!(cdr["end_reason"], "BalanceExhausted", "{cdr}");
    assert_eq!(cdr["bridge_seconds"], 120, "cut when its second minute ran out: {cdr}");
    assert_eq!(cdr["cost"], "0.2400", "{cdr}");
    let after = money(&op);
    assert_eq!(
        after["balance"], "-0.1400",
        "below zero, inside the credit limit: {after}"
    );
    assert_eq!(after["held"], "0.0000", "{after}");
    assert_eq!(call_charges(&op), vec![(unique_id.clone(), "-0.2400".to_owned())]);

    let pushed = crm.wait_for("/hangup", Duration::from_secs(10));
    let event: Value = serde_json::from_str(&pushed.body).unwrap();
    assert_eq!(event["data"]["cdr_main_unique_id"], unique_id.as_str(), "{event}");
    assert_eq!(event["data"]["cdr_end_reason"], "BalanceExhausted", "{event}");
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
    assert_eq!(
        carrier.logs().matches("INVITE call_id").count(),
        2,
        "the refused call placed no leg"
    );
}

/// A cap of one minute: the call asks for no second minute of credit (the cap ends it first),
/// and is cut at exactly one minute with `MaxDuration`, charged that minute.
#[test]
fn the_configured_cap_ends_a_call_the_credit_would_keep() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let op = Operator::new();
    let carrier_port = crowd_store(&op, 1, "max_call_minutes = 1", 100);
    correct_balance_to(&op, "1.00");
    let server = serve_with(&op, QUIET_LEGS);
    let mut carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 2)
        .silent_media()
        .spawn();
    crowd_online(&server.http, 1);
    let reply = crowd_outcall(&server.http, 0).unwrap();
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    wait_for_answered_legs(&mut carrier, 2);
    // Well past the moment a second minute would have been asked for (45 s).
    std::thread::sleep(Duration::from_secs(52));
    let running = money(&op);
    assert_eq!(
        (&running["held"], &running["holding_calls"]),
        (&"0.1200".into(), &1.into()),
        "no minute held past the cap: {running}"
    );
    let cdr = wait_for_end(&op, &unique_id, Duration::from_secs(30));
    assert_eq!(cdr["end_reason"], "MaxDuration", "{cdr}");
    assert_eq!(
        (&cdr["bridge_seconds"], &cdr["cost"]),
        (&60.into(), &"0.1200".into()),
        "{cdr}"
    );
    let after = money(&op);
    assert_eq!(
        (&after["balance"], &after["held"]),
        (&"0.8800".into(), &"0.0000".into()),
        "{after}"
    );
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
}

/// SIGKILL while three calls hold credit, each extended to a second minute: after each restart
/// every call is charged once (the minute it had started by its last heartbeat), no credit is
/// left held, and the balance adds up.
#[test]
fn a_crash_while_calls_hold_credit_charges_each_once_and_releases_the_holds() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    const CALLS: usize = 3;
    let op = Operator::new();
    let carrier_port = crowd_store(&op, CALLS, "", 100);
    correct_balance_to(&op, "1.00");
    let mut server = serve_with(&op, QUIET_LEGS);
    let mut carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 2 * CALLS as u32)
        .silent_media()
        .spawn();
    crowd_online(&server.http, CALLS);
    let mut accepted: Vec<String> = (0..CALLS)
        .map(|i| {
            let reply = crowd_outcall(&server.http, i).unwrap();
            assert_eq!(reply["res"], "0", "{reply}");
            reply["uniqueId"].as_str().unwrap().to_owned()
        })
        .collect();
    wait_for_answered_legs(&mut carrier, 2 * CALLS);
    assert_eq!(money(&op)["held"], "0.3600");
    // Killed once all three hold their second minute (about 45 s into the calls).
    let until = Instant::now() + Duration::from_secs(70);
    while money(&op)["held"] != "0.7200" {
        assert!(Instant::now() < until, "never extended: {}", money(&op));
        std::thread::sleep(Duration::from_millis(500));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    for restart in 0..2 {
        let _server = serve_with(&op, QUIET_LEGS);
        for unique_id in &accepted {
            let cdr = wait_for_end(&op, unique_id, Duration::from_secs(10));
            assert_eq!(cdr["end_reason"], "Shutdown", "restart {restart}: {cdr}");
            assert_eq!(cdr["cost"], "0.1200", "restart {restart}: {cdr}");
        }
        let after = money(&op);
        assert_eq!(after["balance"], "0.6400", "restart {restart}: charged once: {after}");
        assert_eq!(after["held"], "0.0000", "restart {restart}: {after}");
        assert_eq!(after["holding_calls"], 0, "restart {restart}: {after}");
        let mut charged: Vec<String> = call_charges(&op).into_iter().map(|(id, _)| id).collect();
        charged.sort();
        accepted.sort();
        assert_eq!(charged, accepted, "restart {restart}: one ledger row per call");
    }
}

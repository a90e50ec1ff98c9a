//! Toll fraud: an enterprise calls abroad, and premium, satellite, shared-cost and
//! non-geographic numbers, only when its destination policy allows them (`res` 7 otherwise,
//! with the reason recorded), and a destination's own rate prices its minutes.

use super::*;

/// The numbers an outside probe placed, at the flat rate, under call power `all`.
const PROBES: [&str; 8] = [
    "+88216123456",
    "+881631234567",
    "+19005551234",
    "00909001234567",
    "+449091234567",
    "+67570123456",
    "+24741234",
    "00000000000",
];

fn agent_calls(http: &str, customer_number: &str) -> Value {
    let encoded = customer_number.replace('+', "%2B").replace(' ', "%20");
    json_get(
        http,
        &format!(
            "/interface/PreviewOutcall?enterpriseId=3000001&cno=3000&pwd={}&customerNumber={encoded}",
            md5_hex("1234")
        ),
    )
}

fn attempts(op: &Operator) -> Vec<Value> {
    op.json(&["admin", "attempts", "list", "--enterprise", "3000001"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn toll_fraud_destinations_are_refused_by_default_with_the_reason_recorded() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let op = Operator::new();
    let carrier_port = crowd_store(&op, 1, "", 100);
    let server = serve(&op);
    let carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 2)
        .silent_media()
        .spawn();
    crowd_online(&server.http, 1);
    for probe in PROBES {
        let reply = agent_calls(&server.http, probe);
        assert_eq!(reply["res"], "7", "{probe}: {reply}");
    }
    let recorded = attempts(&op);
    for probe in PROBES {
        let digits = probe.replace('+', "00");
        let row = recorded
            .iter()
            .find(|a| a["customer_number"] == digits.as_str() || a["customer_number"] == probe)
            .unwrap_or_else(|| panic!("{probe} not recorded: {recorded:?}"));
        assert_eq!(row["res"], "7", "{row}");
        let reason = row["reason"].as_str().unwrap();
        let expected = if probe == "00000000000" {
            "is not a valid number in any numbering plan"
        } else {
            "the enterprise's destination policy does not allow"
        };
        assert!(reason.contains(expected), "{probe}: {reason}");
    }
    let reasons: Vec<&str> = recorded.iter().filter_map(|a| a["reason"].as_str()).collect();
    for named in [
        "a premium-rate number in GB (+44)",
        "a satellite number (+881)",
        "a satellite number (+882)",
        "an international number in PG",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(named)),
            "no reason names {named:?}: {reasons:?}"
        );
    }
    let shown = op.json(&[
        "admin",
        "enterprise",
        "destination",
        "--id",
        "3000001",
        "--number",
        "+1 900 555 1234",
    ]);
    assert_eq!(shown[0]["destination"], "a premium-rate number in US (+1)", "{shown}");
    assert_eq!(shown[0]["allowed"], false, "{shown}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !carrier.logs().contains("INVITE"),
        "no leg was placed: {}",
        carrier.logs()
    );
}

/// Allowed by the policy, a premium number is called and every started minute is charged at
/// its prefix's rate (2.50) rather than the enterprise's (0.12); what the policy still does not
/// name stays refused; and an operator's update takes the permission back.
#[test]
fn an_allowed_premium_destination_is_held_and_charged_at_its_own_rate() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let op = Operator::new();
    let carrier_port = crowd_store(
        &op,
        1,
        "allowed_countries = [\"GB\"]\nallowed_classes = [\"premium\"]\ndestination_rates = { \"44909\" = \"2.50\", \"44\" = \"0.30\" }",
        100,
    );
    let server = serve(&op);
    let mut carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 2)
        .silent_media()
        .spawn();
    crowd_online(&server.http, 1);

    for (number, refused_because) in [
        ("+19005551234", "a premium-rate number in US (+1)"),
        ("+881631234567", "a satellite number (+881)"),
        ("+33612345678", "an international number in FR"),
    ] {
        let reply = agent_calls(&server.http, number);
        assert_eq!(reply["res"], "7", "{number}: {reply}");
        let recorded = attempts(&op);
        assert!(
            recorded[0]["reason"].as_str().unwrap().ends_with(refused_because),
            "{number}: {}",
            recorded[0]
        );
    }

    let reply = agent_calls(&server.http, "+44 909 123 4567");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    let answered = |carrier: &mut dialbridge_testkit::Sipp| carrier.logs().matches("answer acknowledged").count();
    let until = Instant::now() + Duration::from_secs(30);
    while answered(&mut carrier) < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(answered(&mut carrier), 2, "{}", carrier.logs());
    let balance = op.json(&["admin", "balance", "show", "--enterprise", "3000001"]);
    assert_eq!(balance[0]["held"], "2.5000", "the first minute held at 2.50: {balance}");

    let hang_up = json_get(
        &server.http,
        &format!("/interface/HangUp?{}&uniqueId={unique_id}", admin_auth()),
    );
    assert_eq!(hang_up["result"], "success", "{hang_up}");
    let cdr = wait_for_end(&op, &unique_id, Duration::from_secs(30));
    assert_eq!(
        cdr["cost"], "2.5000",
        "one started minute at the destination's rate: {cdr}"
    );
    let balance = op.json(&["admin", "balance", "show", "--enterprise", "3000001"]);
    assert_eq!(
        (&balance[0]["balance"], &balance[0]["held"]),
        (&"97.5000".into(), &"0.0000".into()),
        "{balance}"
    );
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());

    op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--allowed-classes",
        "",
    ]);
    // A request reads the configuration's generation: the next one sees the update.
    let reply = agent_calls(&server.http, "+44 909 123 4567");
    assert_eq!(reply["res"], "7", "{reply}");
}

//! What carriers see of a call: numbers written in the format each trunk asks for.

use super::*;

/// `admin trunk set` of trunk "carrier" with `flag value`, which must be refused: the error.
fn refused_trunk_flag(op: &Operator, flag: &str, value: &str) -> String {
    op.fails(&[
        "admin",
        "trunk",
        "set",
        "--name",
        "carrier",
        "--address",
        "127.0.0.1:5080",
        flag,
        value,
    ])
}

#[test]
fn the_carrier_sees_numbers_in_its_trunks_format_and_the_crm_sees_them_normalised() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = &w.server.http;
    trunk_set(
        &w.op,
        "carrier",
        w.carrier_port,
        &[
            "--enterprise",
            "3000001",
            "--customer-number-format",
            "plus",
            "--caller-id-format",
            "e164,add=9",
        ],
    );
    let trunks = w.op.json(&["admin", "trunk", "list"]);
    assert_eq!(trunks[0]["customer_number_format"], "plus");
    assert_eq!(trunks[0]["caller_id_format"], "e164,add=9");
    let bad = refused_trunk_flag(&w.op, "--customer-number-format", "plus,zeros");
    assert!(
        bad.contains("--customer-number-format") && bad.contains("more than one style"),
        "{bad}"
    );

    // The extension still sees the customer's number as normalised; the carrier gets its own
    // formats in the Request-URI, From and P-Asserted-Identity.
    let (mut phone, mut carrier) = phone_and_carrier(
        &w,
        &[("expect_from_user", "13800138000")],
        &[
            ("talk_ms", "300"),
            ("expect_ruri_user", "+8613800138000"),
            ("expect_from_user", "9862160001234"),
            ("expect_pai_user", "9862160001234"),
        ],
    );
    let reply = outcall(a, "customerNumber=0086-138-0013-8000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    assert!(carrier.finish(Duration::from_secs(20)), "{}", carrier.logs());
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
    let row = cdr_row(a, reply["uniqueId"].as_str().unwrap());
    assert_eq!(row["status"], "双方接听", "{row}");
    assert_eq!(row["customerNumber"], "13800138000");
    assert_eq!(row["numberTrunk"], "02160001234");
    // Counted once, by how it ended.
    assert!(wait_for_metric(
        &w.server,
        "dialbridge_calls_ended_total{reason=\"CustomerHungUp\"} 1",
        Duration::from_secs(5)
    ));
}

#[test]
fn provisioning_files_carry_trunk_number_formats_and_name_a_bad_one() {
    let op = Operator::new();
    let good = op.write(
        "good.toml",
        r#"
[[trunk]]
name = "carrier"
address = "127.0.0.1:5080"
customer_number_format = "national,mobile-prefix=0"
caller_id_format = "zeros"
priority = 3
keepalive_secs = 20
username = "acct"
register_secs = 300
sources = ["203.0.113.0/24", "198.51.100.7"]
"#,
    );
    op.ok(&["provision", &good]);
    let trunks = op.json(&["admin", "trunk", "list"]);
    assert_eq!(trunks[0]["customer_number_format"], "mobile-prefix=0");
    assert_eq!(trunks[0]["caller_id_format"], "zeros");
    assert_eq!(
        (
            &trunks[0]["priority"],
            &trunks[0]["keepalive_secs"],
            &trunks[0]["register_secs"]
        ),
        (&serde_json::json!(3), &serde_json::json!(20), &serde_json::json!(300))
    );
    assert_eq!(
        trunks[0]["sources"],
        serde_json::json!(["203.0.113.0/24", "198.51.100.7/32"])
    );
    // Applying the same file again changes nothing.
    assert!(op.ok(&["provision", &good]).contains("no changes"), "idempotent");

    // Each file is refused naming the trunk's key and why; the stored trunk is left alone.
    for (key_line, names, why) in [
        (
            "caller_id_format = \"mobile-prefix=0,plus\"",
            "trunk[0] (carrier).caller_id_format",
            "national style only",
        ),
        (
            "register_secs = 300",
            "trunk[0] (carrier).register_secs",
            "needs auth_username",
        ),
        (
            "sources = [\"carrier.example\"]",
            "trunk[0] (carrier).sources",
            "not an IP address or range",
        ),
    ] {
        let file = op.write(
            "bad.toml",
            &format!("[[trunk]]\nname = \"carrier\"\naddress = \"127.0.0.1:5080\"\n{key_line}\n"),
        );
        let error = op.fails(&["provision", &file]);
        assert!(error.contains(names) && error.contains(why), "{key_line}: {error}");
    }
    let bad_flag = refused_trunk_flag(&op, "--source", "10.0.0.0/33");
    assert!(bad_flag.contains("--source"), "{bad_flag}");
    assert_eq!(
        op.json(&["admin", "trunk", "list"])[0]["caller_id_format"],
        "zeros",
        "unchanged"
    );
}

fn set_trunk(w: &LegacyWorld, name: &str, port: u16, max_channels: &str) {
    trunk_set(
        &w.op,
        name,
        port,
        &["--enterprise", "3000001", "--max-channels", max_channels],
    );
}

#[test]
fn a_full_trunk_is_skipped_for_the_enterprises_next_one_and_all_full_is_res_10() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = &w.server.http;
    set_trunk(&w, "carrier", w.carrier_port, "1");
    // Alice's call holds the carrier trunk's only channel.
    let (mut phone, mut carrier) = phone_and_carrier(&w, &[], &[("talk_ms", "2500")]);
    assert_eq!(outcall(a, "customerNumber=13800138000&sync=1")["res"], "0");
    // Dave's phone is a telephone reached through a trunk.
    let dave_auth = dave_online_on_a_telephone(&w);
    let dave = |customer: &str| {
        json_get(
            a,
            &format!("/interface/PreviewOutcall?{dave_auth}&customerNumber={customer}"),
        )
    };
    // The only trunk is full: a capacity refusal.
    assert_eq!(dave("13700137000")["res"], "10");

    // A second trunk for the enterprise: Dave's call goes out there, both his leg and the
    // customer's.
    let second_port = dialbridge_testkit::free_port();
    let second = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", second_port, 2)
        .silent_media()
        .set("ring_ms", "0")
        .spawn();
    set_trunk(&w, "carrier-b", second_port, "5");
    assert_eq!(dave("13700137000")["res"], "0");
    assert!(
        second.wait_for_log("ruri_user=13700137000", Duration::from_secs(20)),
        "{}",
        second.logs()
    );
    let logs = second.logs();
    assert!(
        logs.contains("ruri_user=13900139001") && logs.contains("ruri_user=13700137000"),
        "{logs}"
    );
    assert!(carrier.finish(Duration::from_secs(20)), "{}", carrier.logs());
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
}

#[test]
fn a_trunk_removed_from_an_enterprise_carries_none_of_its_calls_even_as_its_caller_ids_own() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let w = legacy_world();
    let a = &w.server.http;
    let (mut phone, carrier) = phone_and_carrier(&w, &[], &[]);
    let backup_port = dialbridge_testkit::free_port();
    let mut backup = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", backup_port, 1)
        .rtp_stream()
        .set("talk_ms", "300")
        .spawn();
    trunk_set(&w.op, "backup", backup_port, &["--enterprise", "3000001"]);
    // The trunk of the enterprise's caller id no longer serves it (set without --enterprise):
    // its calls fail over to the enterprise's other trunks, caller id unchanged.
    trunk_set(&w.op, "carrier", w.carrier_port, &[]);
    let reply = outcall(a, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    assert!(backup.finish(Duration::from_secs(30)), "{}", backup.logs());
    assert!(
        backup
            .logs()
            .contains("from_user=02160001234 pai_user=02160001234 ruri_user=13800138000"),
        "{}",
        backup.logs()
    );
    assert!(phone.finish(Duration::from_secs(30)), "{}", phone.logs());
    assert_eq!(cdr_row(a, reply["uniqueId"].as_str().unwrap())["status"], "双方接听");

    // No trunk serves the enterprise any more: a capacity refusal, and nobody is called.
    trunk_set(&w.op, "backup", backup_port, &[]);
    let reply = outcall(a, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "10", "{reply}");
    assert!(
        !carrier.logs().contains("INVITE call_id"),
        "the removed trunk was used: {}",
        carrier.logs()
    );
}

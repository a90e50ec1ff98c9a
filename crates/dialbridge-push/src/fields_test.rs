use super::*;
use dialbridge_core::call::{EndReason, Side};
use dialbridge_core::{EnterpriseId, PhoneType};
use dialbridge_store::CdrEnd;

fn cdr() -> Cdr {
    Cdr {
        start: CdrStart {
            unique_id: "n-1.1".into(),
            enterprise_id: EnterpriseId::new(3000001).unwrap(),
            agent_id: 1,
            cno: "2000".into(),
            agent_phone: "801".into(),
            agent_phone_type: PhoneType::Extension,
            customer_number: "13800138000".into(),
            customer_area_code: None,
            customer_number_type: Some(2),
            caller_id: "02160001234".into(),
            trunk_name: "t".into(),
            user_field: "a=1&b=2".into(),
            node: "n".into(),
            requested_at: 1_700_000_000_000,
        },
        end: Some(CdrEnd {
            bridged_at: Some(1_700_000_005_000),
            sip_cause: 200,
            ..CdrEnd::new(1_700_000_065_000, 28, EndReason::CustomerHungUp, Side::Customer)
        }),
    }
}

#[test]
fn hangup_has_every_field_with_unix_seconds() {
    let params = parameters(&hangup(&cdr()), &[]);
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(params.len(), 17);
    assert_eq!(get("cdr_main_unique_id"), Some("n-1.1"));
    assert_eq!(get("cdr_customer_number_type"), Some("2"));
    assert_eq!(get("cdr_start_time"), Some("1700000000"));
    assert_eq!(get("cdr_bridge_time"), Some("1700000005"));
    assert_eq!(
        get("cdr_answer_time"),
        Some(""),
        "present and empty when it did not happen"
    );
    assert_eq!(get("cdr_status"), Some("28"));
    assert_eq!(get("userField"), Some("a=1&b=2"));
    assert_eq!(get("cdr_end_reason"), None, "not one of the spec's default names");
}

#[test]
fn the_end_reason_is_sent_when_mapped_and_in_the_json_payload() {
    let mapping = vec![("why".to_owned(), "cdr_end_reason".to_owned())];
    assert_eq!(
        parameters(&hangup(&cdr()), &mapping),
        vec![("why".into(), "CustomerHungUp".into())]
    );
    let payload: Value = serde_json::from_str(&hangup(&cdr())).unwrap();
    assert_eq!(payload["cdr_end_reason"], "CustomerHungUp");
}

#[test]
fn a_mapping_sends_exactly_its_names() {
    let mapping = vec![
        ("uid".to_owned(), "cdr_main_unique_id".to_owned()),
        ("x".to_owned(), "nothing".to_owned()),
    ];
    assert_eq!(
        parameters(&hangup(&cdr()), &mapping),
        vec![("uid".into(), "n-1.1".into()), ("x".into(), String::new())]
    );
}

#[test]
fn ringing_time_is_local() {
    let params = parameters(
        &ringing(&cdr().start, 1_700_000_000_000, chrono_tz::Asia::Shanghai),
        &[],
    );
    assert!(params.contains(&("ringingTime".into(), "2023-11-15 06:13:20".into())));
    assert!(params.contains(&("name".into(), "ringing".into())));
    assert_eq!(parameters(&bridge(&cdr().start), &[]).len(), 9);
}

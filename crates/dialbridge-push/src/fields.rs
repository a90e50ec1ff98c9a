//! The variables of each push, under the legacy default names (the spec's §5), and the
//! parameters a target receives: the default names, or exactly its own mapping.

use chrono::TimeZone;
use chrono_tz::Tz;
use dialbridge_store::{Cdr, CdrStart};
use serde_json::{Map, Value};

fn seconds(ms: Option<i64>) -> String {
    ms.map(|ms| (ms / 1000).to_string()).unwrap_or_default()
}

fn local(ms: i64, zone: Tz) -> String {
    zone.timestamp_millis_opt(ms)
        .single()
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn object(pairs: Vec<(&str, String)>) -> String {
    let map: Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    Value::Object(map).to_string()
}

fn number_type(start: &CdrStart) -> String {
    start.customer_number_type.map(|t| t.to_string()).unwrap_or_default()
}

/// Variables beyond the spec's default names: a legacy target receives one only when its
/// mapping names it (its default parameters stay exactly the spec's); the JSON format and the
/// event stream carry every variable.
const MAPPED_ONLY: &[&str] = &["cdr_end_reason"];

/// Hang-up (type 2): the CDR, all times unix seconds, and why the call ended (`cdr_end_reason`:
/// `CustomerHungUp`, `BalanceExhausted`, ...; mapped only).
pub fn hangup(cdr: &Cdr) -> String {
    let s = &cdr.start;
    let end = cdr.end.as_ref();
    object(vec![
        ("cdr_main_unique_id", s.unique_id.clone()),
        ("cdr_enterprise_id", s.enterprise_id.to_string()),
        ("cdr_customer_number", s.customer_number.clone()),
        (
            "cdr_customer_area_code",
            s.customer_area_code.clone().unwrap_or_default(),
        ),
        ("cdr_customer_number_type", number_type(s)),
        ("cdr_start_time", seconds(Some(s.requested_at))),
        ("cdr_answer_time", seconds(end.and_then(|e| e.agent_answered_at))),
        ("cdr_bridge_time", seconds(end.and_then(|e| e.bridged_at))),
        ("cdr_end_time", seconds(end.map(|e| e.ended_at))),
        ("cdr_call_type", "4".to_owned()),
        ("cdr_status", end.map(|e| e.status.to_string()).unwrap_or_default()),
        ("cdr_number_trunk", s.caller_id.clone()),
        ("cdr_bridged_cno", s.cno.clone()),
        ("cdr_client_number", s.agent_phone.clone()),
        (
            "cdr_record_file",
            end.map(|e| e.record_file.clone()).unwrap_or_default(),
        ),
        (
            "cdr_sip_cause",
            end.map(|e| e.sip_cause.to_string()).unwrap_or_default(),
        ),
        ("userField", s.user_field.clone()),
        (
            "cdr_end_reason",
            end.map(|e| e.end_reason.as_str().to_owned()).unwrap_or_default(),
        ),
    ])
}

/// Outbound ringing (type 8): the customer's phone rings.
pub fn ringing(start: &CdrStart, at_ms: i64, zone: Tz) -> String {
    object(vec![
        ("name", "ringing".to_owned()),
        ("enterpriseId", start.enterprise_id.to_string()),
        ("cno", start.cno.clone()),
        ("bindTel", start.agent_phone.clone()),
        ("customerNumber", start.customer_number.clone()),
        ("customerNumberType", number_type(start)),
        ("customerAreaCode", start.customer_area_code.clone().unwrap_or_default()),
        ("numberTrunk", start.caller_id.clone()),
        ("callType", "4".to_owned()),
        ("ringingTime", local(at_ms, zone)),
        ("uniqueId", start.unique_id.clone()),
        ("userField", start.user_field.clone()),
    ])
}

/// Bridge (type 3): the customer answered.
pub fn bridge(start: &CdrStart) -> String {
    object(vec![
        ("name", "previewOutcallBridge".to_owned()),
        ("enterpriseId", start.enterprise_id.to_string()),
        ("cno", start.cno.clone()),
        ("customerNumber", start.customer_number.clone()),
        ("customerNumberType", number_type(start)),
        ("customerAreaCode", start.customer_area_code.clone().unwrap_or_default()),
        ("callType", "4".to_owned()),
        ("uniqueId", start.unique_id.clone()),
        ("userField", start.user_field.clone()),
    ])
}

/// An agent's state as the agent-status push (type 5) carries it.
pub struct AgentStatus<'a> {
    pub enterprise_id: i64,
    pub cno: &'a str,
    pub bind_tel: &'a str,
    pub login_status: &'a str,
    pub device_status: &'a str,
    pub pause_description: &'a str,
    pub customer_number: &'a str,
    pub unique_id: &'a str,
    pub wrapup_secs_left: u64,
}

/// Agent status (type 5).
pub fn status(s: &AgentStatus<'_>) -> String {
    object(vec![
        ("name", "status".to_owned()),
        ("enterpriseId", s.enterprise_id.to_string()),
        ("cno", s.cno.to_owned()),
        ("bindTel", s.bind_tel.to_owned()),
        ("loginStatus", s.login_status.to_owned()),
        ("deviceStatus", s.device_status.to_owned()),
        ("pauseDescription", s.pause_description.to_owned()),
        ("customerNumber", s.customer_number.to_owned()),
        ("uniqueId", s.unique_id.to_owned()),
        ("wrapupTime", s.wrapup_secs_left.to_string()),
    ])
}

/// The agent put the customer on hold (`on_hold`) or took them off it: the event stream's
/// `hold` / `unhold` (no legacy push carries it).
pub fn hold(on_hold: bool, cno: &str, unique_id: &str, customer_number: &str) -> String {
    object(vec![
        ("name", if on_hold { "hold" } else { "unhold" }.to_owned()),
        ("cno", cno.to_owned()),
        ("uniqueId", unique_id.to_owned()),
        ("customerNumber", customer_number.to_owned()),
    ])
}

/// The parameters sent to a target: every variable under its default name, or — with a
/// mapping — exactly the mapped names (`crm name ← variable`), empty when unknown.
pub fn parameters(payload: &str, mapping: &[(String, String)]) -> Vec<(String, String)> {
    let variables: Map<String, Value> = serde_json::from_str(payload).unwrap_or_default();
    let value = |name: &str| {
        variables
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if mapping.is_empty() {
        variables
            .keys()
            .filter(|k| !MAPPED_ONLY.contains(&k.as_str()))
            .map(|k| (k.clone(), value(k)))
            .collect()
    } else {
        mapping
            .iter()
            .map(|(crm, variable)| (crm.clone(), value(variable)))
            .collect()
    }
}

#[cfg(test)]
#[path = "fields_test.rs"]
mod tests;

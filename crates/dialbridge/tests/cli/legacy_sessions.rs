//! `/interface/client/*`: ClientOnline, ChangeStatus, ChangeBindTel, ClientOffline.

use super::*;

#[test]
fn agent_sessions_online_pause_phone_and_offline() {
    let w = legacy_world();
    let a = &w.server.http;
    let client =
        |endpoint: &str, extra: &str| json_get(a, &format!("/interface/client/{endpoint}?{}&{extra}", admin_auth()));
    let state = || {
        let rows = w.op.json(&["admin", "agent", "list", "--enterprise", "3000001"]);
        let alice = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cno"] == "2000")
            .unwrap()
            .clone();
        (
            alice["login_status"].as_str().unwrap().to_owned(),
            alice["pause_description"].as_str().map(str::to_owned),
            alice["bound_phone"].as_str().map(str::to_owned),
        )
    };
    // Bad input of each kind, in the code style.
    assert_eq!(
        client("ClientOnline", "cno=2000&bindTel=12&type=1"),
        serde_json::json!({"code": "32", "msg": "\"12\": not a mobile, landline, service, extension or international number"})
    );
    assert_eq!(
        client("ClientOnline", "cno=2000&bindTel=802&type=2")["code"],
        "32",
        "no such extension"
    );
    assert_eq!(
        client("ClientOnline", "cno=2000&bindTel=801&type=3")["code"],
        "32",
        "a softphone's bindTel is the agent's own cno"
    );
    assert_eq!(
        client("ClientOnline", "cno=2000&bindTel=2001&type=3")["code"],
        "32",
        "another agent's cno"
    );
    assert_eq!(client("ClientOnline", "cno=2999&bindTel=801&type=2")["code"], "8");
    assert_eq!(client("ChangeStatus", "cno=2000&type=1")["code"], "12", "offline");
    // Online in a pause, on a mobile; then online; then paused with a reason.
    assert_eq!(
        client(
            "ClientOnline",
            "cno=2000&bindTel=13900139000&status=2&description=training"
        ),
        serde_json::json!({"code": "0", "msg": "ok"})
    );
    assert_eq!(
        state(),
        (
            "pause".to_owned(),
            Some("training".to_owned()),
            Some("13900139000".to_owned())
        )
    );
    assert_eq!(
        client("ChangeStatus", "cno=2000&type=1"),
        serde_json::json!({"code": "0", "msg": "ok"})
    );
    assert_eq!(state().0, "online");
    assert_eq!(client("ChangeStatus", "cno=2000&type=2&description=lunch")["code"], "0");
    assert_eq!(
        state(),
        (
            "pause".to_owned(),
            Some("lunch".to_owned()),
            Some("13900139000".to_owned())
        )
    );
    assert_eq!(client("ChangeStatus", "cno=2000&type=7")["code"], "2");
    // Changing the phone: to the extension; a phone bound to another agent is refused.
    assert_eq!(
        client("ChangeBindTel", "cno=2000&bindTel=801&type=2"),
        serde_json::json!({"result": "success"})
    );
    assert_eq!(state().2.as_deref(), Some("801"));
    create_agent(&w.op, "3000001", "2003", "Eve", "x");
    let taken = client("ChangeBindTel", "cno=2003&bindTel=801&type=2");
    assert_eq!(
        taken,
        serde_json::json!({"result": "error", "msg": "the phone is bound to another agent"})
    );
    assert_eq!(client("ClientOnline", "cno=2003&bindTel=801&type=2")["code"], "31");
    // Offline, releasing the phone: another agent may take it.
    assert_eq!(
        client("ClientOffline", "cno=2000&unBind=1"),
        serde_json::json!({"code": "0", "msg": "ok"})
    );
    assert_eq!(state(), ("offline".to_owned(), None, None));
    assert_eq!(client("ClientOnline", "cno=2003&bindTel=801&type=2")["code"], "0");
    // Offline without unBind keeps the phone bound.
    assert_eq!(client("ClientOffline", "cno=2003")["code"], "0");
    assert_eq!(client("ClientOnline", "cno=2000&bindTel=801&type=2")["code"], "31");
}

#[test]
fn another_enterprise_never_acts_on_these_agents() {
    let w = legacy_world();
    let a = &w.server.http;
    let rival = format!(
        "enterpriseId=3000002&userName=admin&seed=9&pwd={}",
        md5_hex(&format!("{}9", md5_hex("rival-secret")))
    );
    let get = |path: &str| {
        json_get(
            a,
            &format!("{path}?{rival}&cno=2000&bindTel=801&type=2&id=dialbridge1-1.1"),
        )
    };
    assert_eq!(get("/interface/client/ClientOnline")["code"], "8");
    assert_eq!(get("/interface/client/ChangeStatus")["code"], "8");
    assert_eq!(
        json_get(a, &format!("/interface/client/ChangeStatus?{rival}&cno=2000&type=1"))["code"],
        "8"
    );
    assert_eq!(get("/interface/client/ChangeBindTel")["result"], "error");
    assert_eq!(
        get("/interfaceAction/clientInterface!queryBindTel.action")["result"],
        "error"
    );
    assert_eq!(
        get("/interfaceAction/cdrObInterface!listCdrObDetail.action"),
        serde_json::json!({"result": "success", "msg": []})
    );
    // The rival's seed credentials do not authenticate against this enterprise either.
    let mixed = rival.replace("3000002", "3000001");
    assert_eq!(
        json_get(
            a,
            &format!("/interface/client/ClientOnline?{mixed}&cno=2000&bindTel=801&type=2")
        )["code"],
        "3"
    );
    // Nothing changed for the agent.
    let rows = w.op.json(&["admin", "agent", "list", "--enterprise", "3000001"]);
    assert_eq!(rows[0]["login_status"], "offline");
}

#[test]
fn preview_outcall_with_admin_credentials_places_the_call_for_cno() {
    let w = legacy_world();
    let a = &w.server.http;
    let seeded = md5_hex(&format!("{}31", md5_hex("admin-secret")));
    let base = "/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&customerNumber=13800138000&userName=admin";
    assert_eq!(
        json_get(a, &format!("{base}&seed=31&pwd={seeded}"))["res"],
        "12",
        "authenticated, the agent is offline"
    );
    assert_eq!(
        json_get(a, &format!("{base}&pwd={}", md5_hex("admin-secret")))["res"],
        "12",
        "md5(admin password) without a seed"
    );
    assert_eq!(
        json_get(a, &format!("{base}&seed=31&pwd={}", md5_hex("wrong")))["res"],
        "3"
    );
}

//! `/interfaceAction/clientInterface!*`: agent management, validateCno, queryBindTel.

use super::*;

#[test]
fn agent_management_through_the_legacy_interface() {
    let w = legacy_world();
    let a = &w.server.http;
    let admin = format!(
        "enterpriseId=3000001&userName=admin&password={}",
        md5_hex("admin-secret")
    );
    let call = |method: &str, extra: &str| {
        json_get(
            a,
            &format!("/interfaceAction/clientInterface!{method}.action?{admin}&{extra}"),
        )
    };
    let saved = call(
        "save",
        "cno=2005&name=Carol&pwd=abcd&areaCode=010&power=1&clientType=2&skillIds=7,8",
    );
    assert_eq!(saved["result"], "success", "{saved}");
    let id = saved["id"].as_i64().unwrap();
    let view = call("view", "cno=2005");
    assert_eq!(
        view["msg"],
        serde_json::json!({"id": id, "cno": "2005", "name": "Carol", "areaCode": "010", "power": "1", "clientType": "2", "active": "1"})
    );
    assert_eq!(call("save", &format!("id={id}&name=Caroline"))["id"], id);
    assert_eq!(call("view", &format!("id={id}"))["msg"]["name"], "Caroline");
    let listed = call("list", "");
    assert!(listed["msg"].as_array().unwrap().iter().any(|r| r["cno"] == "2005"));
    // The agent's password works for PreviewOutcall (offline: 12, not 3).
    let carol = md5_hex("abcd");
    let r = json_get(
        a,
        &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2005&pwd={carol}&customerNumber=13800138000"),
    );
    assert_eq!(r["res"], "12");
    // validateCno answers a boolean without credentials.
    let validate = |cno: &str| {
        json_get(
            a,
            &format!("/interfaceAction/clientInterface!validateCno.action?enterpriseId=3000001&cno={cno}"),
        )
    };
    assert_eq!(validate("2005"), serde_json::json!({"result": true}));
    assert_eq!(validate("2999"), serde_json::json!({"result": false}));
    // The seed form of the admin password family, and a wrong password.
    let seeded = md5_hex(&format!("{}77", md5_hex("admin-secret")));
    let v = json_get(a, &format!("/interfaceAction/clientInterface!view.action?enterpriseId=3000001&userName=admin&seed=77&password={seeded}&cno=2005"));
    assert_eq!(v["result"], "success");
    let bad = json_get(
        a,
        &format!(
            "/interfaceAction/clientInterface!view.action?enterpriseId=3000001&userName=admin&password={}&cno=2005",
            md5_hex("nope")
        ),
    );
    assert_eq!(
        bad,
        serde_json::json!({"result": "error", "msg": "authentication failed"})
    );
    // Another enterprise's admin can neither see nor delete this agent.
    let rival = format!(
        "enterpriseId=3000002&userName=admin&password={}",
        md5_hex("rival-secret")
    );
    let theirs = json_get(
        a,
        &format!("/interfaceAction/clientInterface!view.action?{rival}&id={id}"),
    );
    assert_eq!(theirs["result"], "error");
    let theirs = json_get(
        a,
        &format!("/interfaceAction/clientInterface!delete.action?{rival}&id={id}"),
    );
    assert_eq!(theirs["result"], "error");
    // The phones an agent used.
    assert_eq!(
        json_get(
            a,
            &format!(
                "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
                admin_auth()
            )
        )["code"],
        "0"
    );
    let phones = json_get(
        a,
        &format!(
            "/interfaceAction/clientInterface!queryBindTel.action?{}&cno=2000",
            admin_auth()
        ),
    );
    assert_eq!(phones["result"], 0);
    assert_eq!(phones["data"][0]["tel"], "801");
    assert_eq!(phones["data"][0]["telType"], 2);
    assert_eq!(phones["data"][0]["isBind"], 1);
    // Another enterprise cannot log this agent in, out, or hang it up.
    let rival_seed = format!(
        "enterpriseId=3000002&userName=admin&seed=1&pwd={}",
        md5_hex(&format!("{}1", md5_hex("rival-secret")))
    );
    assert_eq!(
        json_get(a, &format!("/interface/client/ClientOffline?{rival_seed}&cno=2000"))["code"],
        "8"
    );
    assert_eq!(
        json_get(a, &format!("/interface/HangUp?{rival_seed}&cno=2000"))["result"],
        "error"
    );
    // Delete, and the cno no longer validates.
    assert_eq!(call("delete", &format!("id={id}"))["result"], "success");
    assert_eq!(validate("2005"), serde_json::json!({"result": false}));
}

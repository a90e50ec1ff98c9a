//! Malformed input at every legacy endpoint.

use super::*;

/// Random (but reproducible) query strings and form bodies at every legacy endpoint: each reply
/// is HTTP 200 with a JSON body (or JSONP around JSON), and the server stays up.
#[test]
fn malformed_input_never_breaks_a_legacy_endpoint() {
    let w = legacy_world();
    let a = &w.server.http;
    let endpoints = [
        "/interface/PreviewOutcall",
        "/interface/client/ClientOnline",
        "/interface/client/ClientOffline",
        "/interface/client/ChangeStatus",
        "/interface/client/ChangeBindTel",
        "/interface/HangUp",
        "/interfaceAction/cdrObInterface!listCdrOb.action",
        "/interfaceAction/cdrObInterface!listCdrObDetail.action",
        "/interfaceAction/clientInterface!save.action",
        "/interfaceAction/clientInterface!view.action",
        "/interfaceAction/clientInterface!list.action",
        "/interfaceAction/clientInterface!delete.action",
        "/interfaceAction/clientInterface!validateCno.action",
        "/interfaceAction/clientInterface!queryBindTel.action",
    ];
    let names = [
        "enterpriseId",
        "cno",
        "pwd",
        "customerNumber",
        "sync",
        "userField",
        "clidLeftNumber",
        "callback",
        "userName",
        "seed",
        "bindTel",
        "type",
        "status",
        "uniqueId",
        "startTime",
        "endTime",
        "start",
        "limit",
        "title",
        "value",
        "description",
        "unBind",
        "hotline",
        "",
    ];
    let values = [
        "",
        "3000001",
        "2000",
        "0",
        "1",
        "-1",
        "99999999999999999999",
        "13800138000",
        "801",
        "%00",
        "%FF%FE",
        "2026-13-45 25:61:61",
        "' OR 1=1 --",
        "<script>",
        "中文",
        "\u{1F600}",
        "a=b&c",
        "%",
        "%%%",
        "+86 138",
    ];
    let mut seed: u64 = 0x5eed_d1a1_b41d_6e00;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..100 {
        for endpoint in endpoints {
            let mut pairs = Vec::new();
            for _ in 0..(next() % 8) {
                let name = names[(next() % names.len() as u64) as usize];
                let mut value = values[(next() % values.len() as u64) as usize].to_owned();
                if next() % 5 == 0 {
                    value = "x".repeat((next() % 3000) as usize);
                }
                let raw = next() % 3 == 0;
                let encoded = if raw {
                    value.replace(' ', "+")
                } else {
                    serde_urlencoded::to_string([("v", &value)]).unwrap()[2..].to_owned()
                };
                pairs.push(format!("{name}={encoded}"));
            }
            let query = pairs.join("&");
            let body = if round % 2 == 0 {
                // A query string as an HTTP client sends it: characters a request line cannot
                // carry are escaped; malformed escapes ("%", "%FF") stay.
                let line: String = query
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(c) {
                            c.to_string()
                        } else {
                            c.to_string().bytes().map(|b| format!("%{b:02X}")).collect()
                        }
                    })
                    .collect();
                let (status, body) = http_get(a, &format!("{endpoint}?{line}"));
                assert_eq!(status, 200, "{endpoint}?{query}");
                body
            } else {
                let (status, body) = http_post_raw(a, endpoint, &query);
                assert_eq!(status, 200, "POST {endpoint}: {query}");
                body
            };
            let json = match body.find('(') {
                Some(open) if !body.starts_with('{') => body[open + 1..body.len() - 1].to_owned(),
                _ => body.clone(),
            };
            let parsed: serde_json::Value =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{endpoint}?{query}: {e}: {body}"));
            assert!(parsed.is_object(), "{endpoint}?{query}: {body}");
            assert!(parsed.get("uniqueId").is_none(), "no call is placed by garbage: {body}");
        }
    }
    let (status, _) = http_get(a, "/healthz");
    assert_eq!(status, 200);
}

#[test]
fn an_oversized_body_is_answered_like_missing_parameters() {
    let w = legacy_world();
    let form = format!("enterpriseId=3000001&cno=2000&userField={}", "x".repeat(2 << 20));
    let reply = http_post_form(&w.server.http, "/interface/PreviewOutcall", &form);
    assert_eq!(reply, serde_json::json!({"res": "2"}));
}

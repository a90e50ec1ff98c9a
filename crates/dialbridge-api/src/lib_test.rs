use super::*;

fn answer(head_start: &str) -> (String, serde_json::Value) {
    let text = String::from_utf8(over_long_head(head_start.as_bytes())).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "{text}");
    assert!(head.contains("connection: close"), "{head}");
    (
        head.lines().next().unwrap().to_owned(),
        serde_json::from_str(body).unwrap(),
    )
}

#[test]
fn an_over_long_head_gets_its_familys_bad_parameters_reply() {
    let cases = [
        (
            "GET /interface/PreviewOutcall?cno=2000&x=aaaa",
            serde_json::json!({"res": "2"}),
        ),
        (
            "POST /interface/client/ClientOnline HTTP/1.1\r\nX: aaa",
            serde_json::json!({"code": "2", "msg": "request too large"}),
        ),
        (
            "GET /interface/HangUp?x",
            serde_json::json!({"result": "error", "msg": "request too large"}),
        ),
        (
            "GET /interfaceAction/cdrObInterface!listCdrOb.action?x",
            serde_json::json!({"result": "error", "msg": "request too large"}),
        ),
    ];
    for (head, body) in cases {
        assert_eq!(answer(head), ("HTTP/1.1 200 OK".to_owned(), body), "{head}");
    }
    assert_eq!(answer("GET /api/v1/session?x=aaa").0, "HTTP/1.1 414 URI Too Long");
    assert_eq!(
        answer("GET /api/v1/session HTTP/1.1\r\nCookie: aaa").0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(
        answer("\u{1}\u{2}").0,
        "HTTP/1.1 414 URI Too Long",
        "garbage still gets an answer"
    );
}

use super::*;

#[test]
fn users() {
    assert_eq!(
        uri_user("\"Bob\" <sip:3000001-801@127.0.0.1:5060>;tag=1").as_deref(),
        Some("3000001-801")
    );
    assert_eq!(uri_user("sip:801@h;transport=tcp").as_deref(), Some("801"));
    assert_eq!(uri_user("<sip:u:pw@h>").as_deref(), Some("u"));
    assert_eq!(uri_user("<sip:h>"), None);
    assert_eq!(uri_user("<tel:123>"), None);
}

#[test]
fn contacts() {
    assert_eq!(parse_contacts(&[]), Some(Contacts::Query));
    assert_eq!(parse_contacts(&["*".into()]), Some(Contacts::All));
    let parsed = parse_contacts(&[
        "<sip:801-0x55%41@10.0.0.1:5070;transport=TCP>;expires=120;+sip.instance=\"<urn:x,y>\"".into(),
        "sip:802@h;expires=30, \"A, B\" <sip:803@h>".into(),
    ]);
    assert_eq!(
        parsed,
        Some(Contacts::List(vec![
            ContactSpec {
                uri: "sip:801-0x55%41@10.0.0.1:5070;transport=TCP".into(),
                expires: Some(120)
            },
            ContactSpec {
                uri: "sip:802@h".into(),
                expires: Some(30)
            },
            ContactSpec {
                uri: "sip:803@h".into(),
                expires: None
            },
        ]))
    );
    assert_eq!(parse_contacts(&["<http://x>".into()]), None);
    assert_eq!(parse_contacts(&["<sip:a b@h>".into()]), None);
}

#[test]
fn session_expires_says_who_refreshes_and_how_often() {
    use std::time::Duration;
    let we = |secs| {
        Some(SessionTimer::WeRefresh {
            every: Duration::from_secs(secs),
        })
    };
    let they = |secs| {
        Some(SessionTimer::FarEndRefreshes {
            expires_after: Duration::from_secs(secs),
        })
    };
    assert_eq!(SessionTimer::of_answer("1800;refresher=uac"), we(900));
    assert_eq!(SessionTimer::of_answer("90 ; Refresher=UAC"), we(45));
    assert_eq!(
        SessionTimer::of_answer("1800;refresher=uas"),
        they(1768),
        "32 s before it expires"
    );
    assert_eq!(
        SessionTimer::of_answer("90;refresher=uas"),
        they(60),
        "a third before it expires"
    );
    assert_eq!(SessionTimer::of_answer("2;refresher=uas"), they(2));
    assert_eq!(SessionTimer::of_answer("1800"), None, "no refresher named");
    assert_eq!(SessionTimer::of_answer("1800;refresher=proxy"), None);
    assert_eq!(SessionTimer::of_answer("soon;refresher=uac"), None);
    assert_eq!(SessionTimer::of_answer("0;refresher=uac"), None);
    let expires = |seconds, refresher| Some(SessionExpires { seconds, refresher });
    assert_eq!(SessionExpires::parse("600"), expires(600, None));
    assert_eq!(
        SessionExpires::parse("600;refresher=uas"),
        expires(600, Some(Refresher::Uas))
    );
    assert_eq!(
        SessionExpires::parse("600;x=1;refresher=UAC"),
        expires(600, Some(Refresher::Uac))
    );
    assert_eq!(SessionExpires::parse("600;refresher=other"), expires(600, None));
    assert_eq!(SessionExpires::parse(""), None);
}

#[test]
fn info_digits_are_read_from_dtmf_relay_and_dtmf_bodies() {
    let relay = "application/dtmf-relay";
    let digit = |event, duration_ms| Some(InfoDigit { event, duration_ms });
    assert_eq!(info_digit(relay, b"Signal=5\r\nDuration=160\r\n"), digit(5, 160));
    assert_eq!(info_digit(relay, b"Signal= 0\nDuration= 100"), digit(0, 100));
    assert_eq!(
        info_digit("Application/DTMF-Relay; charset=x", b"signal=*"),
        digit(10, 250)
    );
    assert_eq!(
        info_digit(relay, b"Signal=#\r\nDuration=10"),
        digit(11, 40),
        "clamped up"
    );
    assert_eq!(
        info_digit(relay, b"Signal=d\r\nDuration=99999"),
        digit(15, 5_000),
        "clamped down"
    );
    assert_eq!(info_digit(relay, b"Signal=11"), digit(11, 250), "# as its event code");
    assert_eq!(info_digit("application/dtmf", b"9\r\n"), digit(9, 250));
    assert_eq!(info_digit("application/dtmf", b"A"), digit(12, 250));
    for (content_type, body) in [
        (relay, &b"Duration=160"[..]),
        (relay, b"Signal=16"),
        (relay, b"Signal=55"),
        (relay, b"Signal=x"),
        (relay, b"Signal="),
        (relay, b"\xff\xfe"),
        ("application/dtmf", b""),
        ("application/media_control+xml", b"<media_control/>"),
        ("", b"Signal=5"),
    ] {
        assert_eq!(info_digit(content_type, body), None, "{content_type} {body:?}");
    }
}

use super::*;

fn ringing() -> rsipstack::sip::Response {
    let text = "SIP/2.0 180 Ringing\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport=5060;received=127.0.0.1\r\n\
        From: <sip:02160001234@127.0.0.1:5060>;tag=ours\r\n\
        To: <sip:13800138000@203.0.113.5>;tag=theirs\r\n\
        Call-ID: call-1@dialbridge1\r\n\
        CSeq: 7 INVITE\r\n\
        Content-Length: 0\r\n\r\n";
    match SipMessage::try_from(text.as_bytes()).unwrap() {
        SipMessage::Response(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cancel_matches_the_invite_of_its_provisional_answer() {
    let text = cancel_of("sip:13800138000@203.0.113.5", &ringing(), &[]).unwrap();
    let SipMessage::Request(cancel) = SipMessage::try_from(text.as_bytes()).unwrap() else {
        panic!("{text}")
    };
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri.to_string(), "sip:13800138000@203.0.113.5");
    let via = cancel.via_header().unwrap().value().to_owned();
    assert!(via.contains("branch=z9hG4bKabc"), "the INVITE's branch: {via}");
    assert!(!via.contains("received"), "{via}");
    assert!(cancel.from_header().unwrap().value().contains("tag=ours"));
    assert!(
        !cancel.to_header().unwrap().value().contains("tag="),
        "To as in the INVITE"
    );
    assert_eq!(cancel.call_id_header().unwrap().value(), "call-1@dialbridge1");
    assert_eq!(cancel.cseq_header().unwrap().value(), "7 CANCEL");
}

#[test]
fn a_bye_carries_both_tags_its_route_set_and_a_cseq_above_any_sent_since() {
    let text = bye_of(
        "sip:phone@192.0.2.7:5062",
        "<sip:02160001234@127.0.0.1:5060>;tag=ours",
        "<sip:13800138000@203.0.113.5>;tag=theirs",
        "call-1@dialbridge1",
        2,
        &["<sip:203.0.113.5;lr>".to_owned()],
    );
    let SipMessage::Request(bye) = SipMessage::try_from(text.as_bytes()).unwrap() else {
        panic!("{text}")
    };
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri.to_string(), "sip:phone@192.0.2.7:5062");
    assert!(bye.to_header().unwrap().value().contains("tag=theirs"));
    assert_eq!(bye.cseq_header().unwrap().value(), "1002 BYE");
    assert!(text.contains("Route: <sip:203.0.113.5;lr>\r\n"));
    assert!(bye.via_header().is_err(), "the sender adds its own Via");
}

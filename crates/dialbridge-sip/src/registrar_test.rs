use super::*;
use crate::digest::{expected_response, Algorithm};

const KEY: [u8; 32] = [9; 32];

fn registrar() -> Registrar<u32> {
    Registrar::new(RegistrarSettings::default(), &KEY)
}

fn request(aor: &str, contacts: Contacts, expires: Option<u32>) -> RegisterRequest<u32> {
    RegisterRequest {
        aor: aor.into(),
        authorization: None,
        call_id: "c1".into(),
        cseq: 1,
        contacts,
        expires_header: expires,
        source: "127.0.0.1:5070".parse().unwrap(),
        transport: SipTransport::Udp,
        connection: 7,
    }
}

fn contact(uri: &str) -> Contacts {
    Contacts::List(vec![ContactSpec {
        uri: uri.into(),
        expires: None,
    }])
}

fn nonce_of(reply: &RegisterReply) -> String {
    let RegisterReply::Challenge { values, .. } = reply else {
        panic!("not a challenge: {reply:?}")
    };
    let start = values[0].find("nonce=\"").unwrap() + 7;
    values[0][start..].split('"').next().unwrap().to_owned()
}

fn authorize(mut req: RegisterRequest<u32>, user: &str, password: &str, nonce: &str, nc: u32) -> RegisterRequest<u32> {
    let mut creds = DigestResponse {
        username: user.into(),
        realm: "dialbridge".into(),
        nonce: nonce.into(),
        uri: "sip:127.0.0.1:5060".into(),
        qop: Some("auth".into()),
        nc: Some(format!("{nc:08x}")),
        cnonce: Some("c".into()),
        ..DigestResponse::default()
    };
    creds.response = expected_response(Algorithm::Md5, password, "REGISTER", &creds).unwrap();
    req.authorization = Some(format!(
        "Digest username=\"{}\", realm=\"dialbridge\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm=MD5, qop=auth, nc={}, cnonce=\"c\"",
        creds.username, creds.nonce, creds.uri, creds.response, creds.nc.unwrap()
    ));
    req
}

#[test]
fn challenge_then_register_then_unregister() {
    let mut r = registrar();
    let aor = "3000001-801";
    let uri = "sip:801-0x55aa@127.0.0.1:5070;transport=udp";
    let challenge = r.register(request(aor, contact(uri), Some(120)), Some("pw"), 1_000);
    let nonce = nonce_of(&challenge);
    let reply = r.register(
        authorize(request(aor, contact(uri), Some(120)), aor, "pw", &nonce, 1),
        Some("pw"),
        1_000,
    );
    assert_eq!(reply, RegisterReply::Ok(vec![(uri.to_owned(), 120)]));
    let bindings = r.bindings(aor, 1_010);
    assert_eq!(bindings[0].contact, uri, "the Contact exactly as registered");
    assert_eq!(
        bindings[0].send_target(),
        SendTarget::Address("127.0.0.1:5070".parse().unwrap(), SipTransport::Udp)
    );
    let mut other_port = bindings[0].clone();
    other_port.contact = "sip:801@127.0.0.1:6000".into();
    let reachable = SendTarget::Address("127.0.0.1:6000".parse().unwrap(), SipTransport::Udp);
    assert_eq!(other_port.send_target(), reachable, "reachable as it says");
    let source = SendTarget::Address("127.0.0.1:5070".parse().unwrap(), SipTransport::Udp);
    let mut natted = bindings[0].clone();
    natted.contact = "sip:801@192.168.1.20:5060;transport=udp".into();
    assert_eq!(natted.send_target(), source, "behind NAT");
    let mut named = bindings[0].clone();
    named.contact = "sip:801@phone.example".into();
    assert_eq!(named.send_target(), source);
    assert!(r.bindings(aor, 1_120).is_empty(), "expired");

    let unregister = authorize(request(aor, contact(uri), Some(0)), aor, "pw", &nonce, 2);
    assert_eq!(r.register(unregister, Some("pw"), 1_050), RegisterReply::Ok(vec![]));
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn contact_star_removes_everything_and_needs_expires_zero() {
    let mut r = registrar();
    let aor = "3000001-801";
    let nonce = nonce_of(&r.register(request(aor, Contacts::Query, None), Some("pw"), 1_000));
    let two = Contacts::List(vec![
        ContactSpec {
            uri: "sip:a@127.0.0.1:1".into(),
            expires: Some(300),
        },
        ContactSpec {
            uri: "sip:b@127.0.0.1:2".into(),
            expires: None,
        },
    ]);
    let RegisterReply::Ok(list) = r.register(
        authorize(request(aor, two, Some(600)), aor, "pw", &nonce, 1),
        Some("pw"),
        1_000,
    ) else {
        panic!()
    };
    assert_eq!(list.len(), 2);
    assert!(list.contains(&("sip:a@127.0.0.1:1".into(), 300)) && list.contains(&("sip:b@127.0.0.1:2".into(), 600)));
    let bad = authorize(request(aor, Contacts::All, Some(60)), aor, "pw", &nonce, 2);
    assert_eq!(
        r.register(bad, Some("pw"), 1_001),
        RegisterReply::BadRequest("Contact: * needs Expires: 0")
    );
    let star = authorize(request(aor, Contacts::All, Some(0)), aor, "pw", &nonce, 3);
    assert_eq!(r.register(star, Some("pw"), 1_002), RegisterReply::Ok(vec![]));
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn expiry_limits() {
    let mut r = registrar();
    let aor = "3000001-801";
    let nonce = nonce_of(&r.register(request(aor, Contacts::Query, None), Some("pw"), 1_000));
    let brief = authorize(request(aor, contact("sip:a@h"), Some(30)), aor, "pw", &nonce, 1);
    assert_eq!(
        r.register(brief, Some("pw"), 1_000),
        RegisterReply::IntervalTooBrief { min_expires: 60 }
    );
    let long = authorize(request(aor, contact("sip:a@h"), Some(99_999)), aor, "pw", &nonce, 2);
    assert_eq!(
        r.register(long, Some("pw"), 1_000),
        RegisterReply::Ok(vec![("sip:a@h".into(), 3600)])
    );
}

#[test]
fn refusals() {
    let mut r = registrar();
    let aor = "3000001-801";
    let nonce = nonce_of(&r.register(request(aor, Contacts::Query, None), Some("pw"), 1_000));
    let wrong = authorize(request(aor, contact("sip:a@h"), None), aor, "guess", &nonce, 1);
    assert_eq!(
        r.register(wrong, Some("pw"), 1_000),
        RegisterReply::Refused(RegistrationRefusal::WrongPassword)
    );
    // Someone else's credentials for this AOR: the To user must be the authenticated one.
    let other = authorize(request(aor, contact("sip:a@h"), None), "3000001-802", "pw2", &nonce, 1);
    assert_eq!(
        r.register(other, Some("pw2"), 1_000),
        RegisterReply::Refused(RegistrationRefusal::WrongToUser)
    );
    // Replay of an accepted request: challenged again, not accepted.
    let good = authorize(request(aor, contact("sip:a@h"), None), aor, "pw", &nonce, 5);
    assert!(matches!(
        r.register(good.clone(), Some("pw"), 1_000),
        RegisterReply::Ok(_)
    ));
    assert!(matches!(
        r.register(good, Some("pw"), 1_001),
        RegisterReply::Challenge {
            refused: Some(RegistrationRefusal::BadNonce),
            ..
        }
    ));
    // An expired nonce with the right password: stale=true.
    let stale = authorize(request(aor, contact("sip:a@h"), None), aor, "pw", &nonce, 6);
    let RegisterReply::Challenge {
        values,
        refused: Some(RegistrationRefusal::StaleNonce),
    } = r.register(stale, Some("pw"), 5_000)
    else {
        panic!()
    };
    assert!(values[0].contains("stale=true"));
    // No such account.
    let unknown = authorize(
        request("3000001-999", contact("sip:a@h"), None),
        "3000001-999",
        "x",
        &nonce,
        1,
    );
    assert_eq!(
        r.register(unknown, None, 1_000),
        RegisterReply::Refused(RegistrationRefusal::UnknownUser)
    );
    let mut garbage = request(aor, contact("sip:a@h"), None);
    garbage.authorization = Some("Digest nonsense".into());
    assert_eq!(
        r.register(garbage, Some("pw"), 1_000),
        RegisterReply::Refused(RegistrationRefusal::Malformed)
    );
}

#[test]
fn a_source_that_keeps_failing_is_blocked_for_a_while() {
    let mut r = Registrar::new(
        RegistrarSettings {
            max_failures: 3,
            ..RegistrarSettings::default()
        },
        &KEY,
    );
    let aor = "3000001-801";
    let nonce = nonce_of(&r.register(request(aor, Contacts::Query, None), Some("pw"), 1_000));
    for nc in 1..=3 {
        let wrong = authorize(request(aor, contact("sip:a@h"), None), aor, "guess", &nonce, nc);
        assert_eq!(
            r.register(wrong, Some("pw"), 1_000),
            RegisterReply::Refused(RegistrationRefusal::WrongPassword)
        );
    }
    let right = authorize(request(aor, contact("sip:a@h"), None), aor, "pw", &nonce, 10);
    assert_eq!(
        r.register(right.clone(), Some("pw"), 1_001),
        RegisterReply::Refused(RegistrationRefusal::LockedOut)
    );
    let mut elsewhere = right.clone();
    elsewhere.source = "127.0.0.2:5070".parse().unwrap();
    assert!(
        matches!(r.register(elsewhere, Some("pw"), 1_001), RegisterReply::Ok(_)),
        "other sources are not blocked"
    );
    let later = authorize(
        request(aor, contact("sip:a@h"), None),
        aor,
        "pw",
        &r.issuer.issue(1_100),
        1,
    );
    assert!(
        matches!(r.register(later, Some("pw"), 1_100), RegisterReply::Ok(_)),
        "the block ends with the window"
    );
}

/// One misconfigured phone behind a NAT address does not lock out the others there: the
/// lockout is per (source, account); guessing unknown accounts has a larger budget per source.
#[test]
fn a_locked_out_account_leaves_the_other_accounts_of_its_address_alone() {
    let mut r = Registrar::new(
        RegistrarSettings {
            max_failures: 3,
            max_source_failures: 5,
            ..RegistrarSettings::default()
        },
        &KEY,
    );
    let (bad, good) = ("3000001-801", "3000001-802");
    let nonce = nonce_of(&r.register(request(bad, Contacts::Query, None), Some("pw"), 1_000));
    for nc in 1..=3 {
        let wrong = authorize(request(bad, contact("sip:a@h"), None), bad, "guess", &nonce, nc);
        r.register(wrong, Some("pw"), 1_000);
    }
    let right = authorize(request(bad, contact("sip:a@h"), None), bad, "pw", &nonce, 4);
    assert_eq!(
        r.register(right, Some("pw"), 1_001),
        RegisterReply::Refused(RegistrationRefusal::LockedOut)
    );
    let other = authorize(request(good, contact("sip:b@h"), None), good, "pw802", &nonce, 5);
    assert!(
        matches!(r.register(other, Some("pw802"), 1_001), RegisterReply::Ok(_)),
        "another extension from the same address registers"
    );
    // Guessing names that do not exist: past the source's budget such requests are refused
    // unheard, while accounts that exist are still checked.
    for (nc, name) in (6..11).zip(["9001", "9002", "9003", "9004", "9005"]) {
        let aor = format!("3000001-{name}");
        let unknown = authorize(request(&aor, contact("sip:c@h"), None), &aor, "x", &nonce, nc);
        assert_eq!(
            r.register(unknown, None, 1_002),
            RegisterReply::Refused(RegistrationRefusal::UnknownUser)
        );
    }
    let unknown = authorize(
        request("3000001-9006", contact("sip:c@h"), None),
        "3000001-9006",
        "x",
        &nonce,
        11,
    );
    assert_eq!(
        r.register(unknown, None, 1_002),
        RegisterReply::Refused(RegistrationRefusal::LockedOut)
    );
    let again = authorize(request(good, contact("sip:b@h"), None), good, "pw802", &nonce, 12);
    assert!(matches!(r.register(again, Some("pw802"), 1_002), RegisterReply::Ok(_)));
}

#[test]
fn tcp_bindings_send_back_over_their_connection() {
    let mut r = registrar();
    let aor = "3000001-801";
    let nonce = nonce_of(&r.register(request(aor, Contacts::Query, None), Some("pw"), 1_000));
    let mut req = authorize(
        request(aor, contact("sip:801@127.0.0.1:41234;transport=tcp"), None),
        aor,
        "pw",
        &nonce,
        1,
    );
    req.transport = SipTransport::Tcp;
    req.connection = 42;
    r.register(req, Some("pw"), 1_000);
    assert_eq!(r.bindings(aor, 1_000)[0].send_target(), SendTarget::Connection(42));
    // The connection a phone is registered over is known by its peer, while the binding lives.
    let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    assert!(r.has_stream_binding(peer, 1_000));
    assert!(!r.has_stream_binding("127.0.0.1:5071".parse().unwrap(), 1_000));
    assert!(!r.has_stream_binding(peer, 1_000 + 3_601));
    r.sweep(1_000 + 3_601);
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn kept_bindings_come_back_after_a_restart_except_over_tcp_or_expired() {
    let kept = |contact: &str, transport: SipTransport, expires_at: u64| Binding {
        contact: contact.into(),
        expires_at,
        source: "127.0.0.1:5070".parse().unwrap(),
        transport,
        connection: 7,
        call_id: "c1".into(),
        cseq: 3,
    };
    let mut r = registrar();
    let restored = r.restore(
        "3000001-801",
        vec![
            kept("sip:801@127.0.0.1:5070", SipTransport::Udp, 2_000),
            kept("sip:801@127.0.0.1:5071;transport=tcp", SipTransport::Tcp, 2_000),
            kept("sip:801@127.0.0.1:5072", SipTransport::Udp, 1_000),
        ],
        1_000,
    );
    assert_eq!(restored, 1, "only the live UDP binding");
    let live = r.bindings("3000001-801", 1_500);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].contact, "sip:801@127.0.0.1:5070");
    assert_eq!(
        live[0].send_target(),
        SendTarget::Address("127.0.0.1:5070".parse().unwrap(), SipTransport::Udp)
    );
    assert!(
        r.bindings("3000001-801", 2_000).is_empty(),
        "it still expires when it did"
    );
    assert_eq!(r.restore("3000001-802", Vec::new(), 1_000), 0);
    assert_eq!(r.binding_count(), 1);
}

/// Unknown users and wrong passwords are counted apart, but what the phone is told is the same.
#[test]
fn an_unknown_user_reads_like_a_wrong_password() {
    assert_eq!(
        RegistrationRefusal::UnknownUser.public_text(),
        RegistrationRefusal::WrongPassword.public_text()
    );
    let labels: std::collections::HashSet<&str> = RegistrationRefusal::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), RegistrationRefusal::ALL.len());
    for (i, refusal) in RegistrationRefusal::ALL.iter().enumerate() {
        assert_eq!(refusal.index(), i, "{refusal:?}");
    }
}

fn challenged_algorithms(reply: &RegisterReply) -> Vec<String> {
    let RegisterReply::Challenge { values, .. } = reply else {
        panic!("not a challenge: {reply:?}")
    };
    values
        .iter()
        .map(|v| {
            v.split("algorithm=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// One MD5 challenge by default (baresip 1.0 refuses a 401 that also offers SHA-256); SHA-256
/// only when configured, and then an MD5 answer is refused if MD5 is not offered.
#[test]
fn challenges_offer_what_is_configured_and_only_that_is_accepted() {
    let mut r = registrar();
    let first = r.register(request("3000001-801", Contacts::Query, None), Some("pw"), 1_000);
    assert_eq!(challenged_algorithms(&first), ["MD5"]);

    let mut sha_only = Registrar::new(
        RegistrarSettings {
            digest: DigestOffer::parse("SHA-256").unwrap(),
            ..RegistrarSettings::default()
        },
        &KEY,
    );
    let aor = "3000001-801";
    let challenge = sha_only.register(request(aor, Contacts::Query, None), Some("pw"), 1_000);
    assert_eq!(challenged_algorithms(&challenge), ["SHA-256"]);
    let md5 = authorize(
        request(aor, contact("sip:a@h"), None),
        aor,
        "pw",
        &nonce_of(&challenge),
        1,
    );
    assert_eq!(
        sha_only.register(md5, Some("pw"), 1_000),
        RegisterReply::Refused(RegistrationRefusal::UnsupportedChallenge)
    );

    let mut both = Registrar::<u32>::new(
        RegistrarSettings {
            digest: DigestOffer::parse("MD5, SHA-256").unwrap(),
            ..RegistrarSettings::default()
        },
        &KEY,
    );
    let challenge = both.register(request(aor, Contacts::Query, None), Some("pw"), 1_000);
    assert_eq!(challenged_algorithms(&challenge), ["MD5", "SHA-256"]);
}

#[test]
fn digest_offers_parse_and_name_a_bad_one() {
    assert_eq!(DigestOffer::parse("MD5").unwrap(), DigestOffer::default());
    assert_eq!(DigestOffer::parse("SHA-256,MD5").unwrap().to_string(), "SHA-256,MD5");
    for bad in ["", "SHA-512", "MD5,MD5", "MD5,SHA-256,MD5"] {
        assert!(DigestOffer::parse(bad).is_err(), "{bad:?} accepted");
    }
}

/// Whether an account exists cannot be read from the answers: a bad nonce is challenged again
/// and a wrong answer refused alike for both.
#[test]
fn an_unknown_account_is_answered_like_one_that_exists() {
    let mut r = registrar();
    let nonce = nonce_of(&r.register(request("3000001-801", Contacts::Query, None), Some("pw"), 1_000));
    for (aor, password) in [("3000001-801", Some("pw")), ("3000001-999", None)] {
        let forged = authorize(request(aor, contact("sip:a@h"), None), aor, "x", "0123456789abcdef", 1);
        assert!(
            matches!(
                r.register(forged, password, 1_000),
                RegisterReply::Challenge {
                    refused: Some(RegistrationRefusal::BadNonce),
                    ..
                }
            ),
            "{aor}"
        );
        let wrong = authorize(request(aor, contact("sip:a@h"), None), aor, "guess", &nonce, 2);
        let RegisterReply::Refused(refusal) = r.register(wrong, password, 1_000) else {
            panic!("{aor} not refused")
        };
        assert_eq!(refusal.public_text(), "bad credentials", "{aor}");
    }
}

use proptest::prelude::*;

use super::*;

const REGISTER: &str = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:801@127.0.0.1>;tag=a1\r\n\
To: <sip:801@127.0.0.1>\r\n\
Call-ID: c1@127.0.0.1\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:801@127.0.0.1:5070;transport=udp>;expires=60, \"x\" <sip:801@h>\r\n\
Authorization: Digest username=\"3000001-801\", realm=\"dialbridge\", nonce=\"n\", uri=\"sip:127.0.0.1\", response=\"0123\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c\"\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Content-Type: application/dtmf-relay\r\n\
Content-Length: 24\r\n\r\n\
Signal=5\r\nDuration=160\r\n";

/// A valid message with bytes changed, inserted or removed at random places.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<usize>(), any::<u8>(), 0..3u8);
    proptest::collection::vec(edit, 1..12).prop_map(|edits| {
        let mut bytes = REGISTER.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        bytes
    })
}

#[test]
fn the_seed_message_parses_and_every_reader_runs() {
    assert!(SipMessage::try_from(REGISTER.as_bytes()).is_ok());
    sip_message(REGISTER.as_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn mutated_messages_never_panic(bytes in mutated()) {
        sip_message(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
        sip_message(&bytes);
    }

    #[test]
    fn arbitrary_header_values_never_panic(value in "\\PC{0,300}") {
        header_value(&value);
    }

    #[test]
    fn header_like_values_never_panic(value in "[<>\"',;=:@ a-zA-Z0-9.*\\\\]{0,200}") {
        header_value(&value);
    }
}

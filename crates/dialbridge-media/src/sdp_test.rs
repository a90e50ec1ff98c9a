use super::*;

#[test]
fn our_offer_parses_back() {
    let sdp = offer(42, "127.0.0.1".parse().unwrap(), 20_000, &[Law::Mu, Law::A]);
    assert!(sdp.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{sdp}");
    let parsed = parse(sdp.as_bytes()).unwrap();
    assert_eq!(parsed.address, "127.0.0.1:20000".parse().unwrap());
    assert_eq!(parsed.payload_types, vec![0, 8, 101]);
    assert_eq!(parsed.law(), Some(Law::Mu));
    assert_eq!(parsed.telephone_event, Some(TELEPHONE_EVENT_PT));
}

#[test]
fn finds_the_payload_type_a_far_end_takes_telephone_events_under() {
    let answer = "v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 Telephone-Event/8000\r\na=fmtp:96 0-15\r\n";
    assert_eq!(parse(answer.as_bytes()).unwrap().telephone_event, Some(96));
    // Listed in an rtpmap but not on the m= line: not taken.
    let unlisted = "v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:96 telephone-event/8000\r\n";
    assert_eq!(parse(unlisted.as_bytes()).unwrap().telephone_event, None);
    // Another stream's events are not the audio stream's.
    let video = "v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\nm=video 5000 RTP/AVP 97\r\na=rtpmap:97 telephone-event/8000\r\n";
    assert_eq!(parse(video.as_bytes()).unwrap().telephone_event, None);
}

#[test]
fn reads_a_phones_answer() {
    let answer = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n";
    let parsed = parse(answer.as_bytes()).unwrap();
    assert_eq!(parsed.address, "10.0.0.5:4000".parse().unwrap());
    assert_eq!(parsed.law(), Some(Law::A));
    let media_level = "v=0\nc=IN IP4 1.1.1.1\nm=video 5000 RTP/AVP 96\nm=audio 6000 RTP/AVP 0\nc=IN IP4 2.2.2.2\n";
    assert_eq!(
        parse(media_level.as_bytes()).unwrap().address,
        "2.2.2.2:6000".parse().unwrap()
    );
}

#[test]
fn rejects_what_it_cannot_use() {
    assert_eq!(parse(b"v=0\r\nc=IN IP4 1.1.1.1\r\n"), Err(SdpError::NoAudio));
    assert_eq!(parse(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"), Err(SdpError::NoConnection));
    assert!(matches!(
        parse(b"v=0\r\nc=IN IP4 nope\r\nm=audio 1 RTP/AVP 0\r\n"),
        Err(SdpError::Malformed(_))
    ));
    assert!(matches!(parse(b"m=audio x RTP/AVP 0\r\n"), Err(SdpError::Malformed(_))));
    assert_eq!(parse(&[0xff, 0xfe]), Err(SdpError::NotText));
    let no_g711 = parse(b"c=IN IP4 1.1.1.1\r\nm=audio 1 RTP/AVP 18\r\n").unwrap();
    assert_eq!(no_g711.law(), None);
}

#[test]
fn directions_are_read_and_answered() {
    let hold = "v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
    let parsed = parse(hold.as_bytes()).unwrap();
    assert_eq!(parsed.direction, Direction::SendOnly);
    assert_eq!(parsed.direction.answered(), Direction::RecvOnly);
    assert!(parsed.direction.sends());
    let session_level = "v=0\r\nc=IN IP4 10.0.0.5\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n";
    let parsed = parse(session_level.as_bytes()).unwrap();
    assert_eq!(parsed.direction, Direction::Inactive);
    assert!(!parsed.direction.sends());
    assert_eq!(
        parse(b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 4000 RTP/AVP 0\r\n")
            .unwrap()
            .direction,
        Direction::SendRecv
    );
    assert_eq!(Direction::RecvOnly.answered(), Direction::SendOnly);
    assert!(!Direction::RecvOnly.sends());
}

#[test]
fn a_changed_description_carries_a_new_version_and_direction() {
    let ip = "127.0.0.1".parse().unwrap();
    let again = describe(42, 43, ip, 20_000, &[Law::Mu], Direction::RecvOnly);
    assert!(again.contains("o=dialbridge 42 43 IN IP4 127.0.0.1\r\n"), "{again}");
    assert!(
        again.contains("a=recvonly\r\n") && !again.contains("sendrecv"),
        "{again}"
    );
    assert_eq!(parse(again.as_bytes()).unwrap().direction, Direction::RecvOnly);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// An offer with bytes changed at random: parsed or refused, never a panic.
        #[test]
        fn mutated_offers_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..10)) {
            let mut bytes = OFFER.as_bytes().to_vec();
            for (at, byte) in edits {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            let _ = parse(&bytes);
        }

        /// Lines of SDP-like text in any order and number.
        #[test]
        fn shuffled_lines_never_panic(lines in proptest::collection::vec("[vosctmab]=[ -~]{0,60}", 0..30)) {
            let _ = parse(lines.join("\r\n").as_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1_000)) {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn the_seed_offer_parses() {
        assert!(parse(OFFER.as_bytes()).is_ok());
    }
}

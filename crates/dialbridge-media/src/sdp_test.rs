use super::*;

#[test]
fn our_offer_parses_back() {
    let sdp = offer(42, "127.0.0.1".parse().unwrap(), 20_000, &[Law::Mu, Law::A]);
    assert!(sdp.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{sdp}");
    let parsed = parse(sdp.as_bytes()).unwrap();
    assert_eq!(parsed.address, "127.0.0.1:20000".parse().unwrap());
    assert_eq!(parsed.payload_types, vec![0, 8, 101]);
    assert_eq!(parsed.law(), Some(Law::Mu));
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

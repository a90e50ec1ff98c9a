use super::*;

fn rtp(pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
    p.extend_from_slice(payload);
    p
}

#[test]
fn converts_only_g711_of_the_right_law() {
    let mut packet = rtp(0, &[0xFF, 0x80, 0x00]);
    convert_law(&mut packet, Law::Mu, Law::A);
    assert_eq!(packet[1], 8);
    assert_eq!(
        &packet[12..],
        &[
            g711::transcode(Law::Mu, 0xFF),
            g711::transcode(Law::Mu, 0x80),
            g711::transcode(Law::Mu, 0x00)
        ]
    );
    let mut marked = rtp(0x80, &[0xFF]);
    convert_law(&mut marked, Law::Mu, Law::A);
    assert_eq!(marked[1], 0x88, "the marker bit survives");
    let mut dtmf = rtp(101, &[1, 2, 3, 4]);
    convert_law(&mut dtmf, Law::Mu, Law::A);
    assert_eq!(dtmf, rtp(101, &[1, 2, 3, 4]));
    let mut short = vec![0x80, 0, 1];
    convert_law(&mut short, Law::Mu, Law::A);
    assert_eq!(short, vec![0x80, 0, 1]);
}

#[test]
fn payload_offsets() {
    assert_eq!(rtp_payload_offset(&rtp(0, &[1; 160])), Some(12));
    let mut with_csrc = rtp(0, &[0; 8]);
    with_csrc[0] = 0x81;
    assert_eq!(rtp_payload_offset(&with_csrc), Some(16));
    let mut with_ext = rtp(0, &[0, 0, 0, 1, 9, 9, 9, 9, 7]);
    with_ext[0] = 0x90;
    assert_eq!(rtp_payload_offset(&with_ext), Some(20));
    let mut bad_ext = rtp(0, &[0, 0, 0, 9]);
    bad_ext[0] = 0x90;
    assert_eq!(rtp_payload_offset(&bad_ext), None);
    assert_eq!(rtp_payload_offset(&[0x40; 20]), None, "not version 2");
}

#[test]
fn ringback_cadence() {
    let mut tone = Ringback::new();
    let first = tone.next_packet(Law::Mu).to_vec();
    assert_eq!(first[1], 0x80, "marker on the first packet, PCMU");
    assert!(first[12..].iter().any(|b| *b != 0xFF), "the first second is tone");
    for _ in 1..60 {
        tone.next_packet(Law::A);
    }
    let silent = tone.next_packet(Law::A);
    assert_eq!(silent[1], 8);
    assert!(silent[12..].iter().all(|b| *b == Law::A.encode(0)), "then silence");
}

#[test]
fn telephone_events_take_the_receiving_legs_payload_type() {
    let mut event = rtp(sdp::TELEPHONE_EVENT_PT, &[5, 0x0a, 0, 160]);
    event[1] |= 0x80; // the marker of an event's first packet survives
    assert_eq!(map_telephone_event(&mut event, Some(96)), EventMapping::Mapped);
    assert_eq!(event[1], 0x80 | 96);
    assert_eq!(&event[12..], &[5, 0x0a, 0, 160], "the event itself is untouched");

    let mut event = rtp(sdp::TELEPHONE_EVENT_PT, &[5, 0x0a, 0, 160]);
    assert_eq!(map_telephone_event(&mut event, None), EventMapping::NotTaken);

    let mut audio = rtp(0, &[0xff; 160]);
    assert_eq!(map_telephone_event(&mut audio, Some(96)), EventMapping::NotAnEvent);
    assert_eq!(audio[1], 0);
    assert_eq!(
        map_telephone_event(&mut [0x80, 101], Some(96)),
        EventMapping::NotAnEvent,
        "too short"
    );
}

fn audio(sequence: u16, timestamp: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend(sequence.to_be_bytes());
    p.extend(timestamp.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend([0xff; 160]);
    p
}

#[test]
fn a_played_key_continues_the_stream_and_later_packets_are_renumbered_after_it() {
    let mut stream = SentStream::default();
    let mut first = audio(65_534, 1_000, 7);
    stream.relay(&mut first);
    assert_eq!(
        &first[2..4],
        &65_534u16.to_be_bytes(),
        "nothing inserted yet: unchanged"
    );
    let digit = Digit {
        to: MediaLeg::Customer,
        event: 11,
        duration: Duration::from_millis(50),
    };
    let mut playing = Playing::start(digit, 96, &stream);
    let mut packets = Vec::new();
    while let Some(p) = playing.next_packet(&mut stream) {
        packets.push(p.to_vec());
    }
    // 50 ms: 160, 320, then 400 samples (ended) sent three times.
    let durations: Vec<u16> = packets.iter().map(|p| u16::from_be_bytes([p[14], p[15]])).collect();
    assert_eq!(durations, [160, 320, 400, 400, 400]);
    let sequences: Vec<u16> = packets.iter().map(|p| u16::from_be_bytes([p[2], p[3]])).collect();
    assert_eq!(
        sequences,
        [65_535, 0, 1, 2, 3],
        "continues the relayed stream, wrapping"
    );
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p[1], if i == 0 { 0x80 | 96 } else { 96 }, "marker on the first only");
        assert_eq!(p[12], 11);
        assert_eq!(p[13] & 0x80 != 0, i >= 2, "end bit");
        assert_eq!(
            &p[4..8],
            &1_160u32.to_be_bytes(),
            "starts a packet after the last relayed"
        );
        assert_eq!(&p[8..12], &7u32.to_be_bytes(), "the relayed stream's source");
    }
    let mut next = audio(65_535, 1_160, 7);
    stream.relay(&mut next);
    assert_eq!(&next[2..4], &4u16.to_be_bytes(), "shifted by the five inserted");
    // A stream that sent nothing yet gets a source of its own.
    let mut fresh = SentStream::default();
    let mut alone = Playing::start(digit, 101, &fresh);
    assert!(alone.next_packet(&mut fresh).is_some());
}

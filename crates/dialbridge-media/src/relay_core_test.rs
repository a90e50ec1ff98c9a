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

const AGENT: &str = "127.0.0.1:4000";
const CUSTOMER: &str = "127.0.0.1:5000";

fn address(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn remote(at: &str, law: Law, telephone_event: Option<u8>) -> RemoteLeg {
    RemoteLeg {
        address: address(at),
        law,
        telephone_event,
        sends: true,
    }
}

/// A relay whose legs' SDP gave `AGENT` (PCMU, events as 101) and `CUSTOMER` (PCMA, events as
/// 96), in `mode`.
fn relay(mode: RelayMode, now: Instant) -> RelayCore {
    let mut core = RelayCore::new(
        RelaySettings {
            inactivity_timeout: Duration::from_secs(5),
        },
        now,
    );
    core.set_remote(MediaLeg::Agent, remote(AGENT, Law::Mu, Some(101)), now);
    core.set_remote(MediaLeg::Customer, remote(CUSTOMER, Law::A, Some(96)), now);
    core.set_mode(mode, now);
    core
}

#[test]
fn each_phase_forwards_only_what_it_should() {
    let now = Instant::now();
    for (mode, agent_heard, customer_heard) in [
        (RelayMode::Silent, false, false),
        (RelayMode::Ringback, false, false),
        (RelayMode::EarlyMedia, true, false),
        (RelayMode::Bridged, true, true),
        (RelayMode::OnHold, false, false),
    ] {
        let mut core = relay(mode, now);
        let from_customer = core.on_packet(MediaLeg::Customer, &mut rtp(8, &[0xD5; 160]), address(CUSTOMER), now);
        let from_agent = core.on_packet(MediaLeg::Agent, &mut rtp(0, &[0xFF; 160]), address(AGENT), now);
        assert_eq!(from_customer.is_some(), agent_heard, "{mode:?}: customer to agent");
        assert_eq!(from_agent.is_some(), customer_heard, "{mode:?}: agent to customer");
        let stats = core.stats();
        assert_eq!(
            (stats.received_from_agent, stats.received_from_customer),
            (1, 1),
            "{mode:?}: counted either way"
        );
    }
}

#[test]
fn a_packet_is_rewritten_for_the_other_legs_law_and_event_type_and_counted_once_sent() {
    let now = Instant::now();
    let mut core = relay(RelayMode::Bridged, now);
    let mut audio = rtp(0, &[0xFF, 0x80]);
    let forward = core
        .on_packet(MediaLeg::Agent, &mut audio, address(AGENT), now)
        .unwrap();
    assert_eq!(
        forward,
        Forward {
            to: MediaLeg::Customer,
            remote: address(CUSTOMER),
            event: false
        }
    );
    assert_eq!(audio[1], 8, "PCMU became PCMA");
    assert_eq!(
        &audio[12..],
        &[g711::transcode(Law::Mu, 0xFF), g711::transcode(Law::Mu, 0x80)]
    );
    assert_eq!(
        core.stats().agent_to_customer_packets,
        0,
        "not counted before it is sent"
    );
    core.forwarded(&forward, audio.len());
    assert_eq!(
        (
            core.stats().agent_to_customer_packets,
            core.stats().agent_to_customer_bytes
        ),
        (1, 14)
    );

    let mut key = rtp(sdp::TELEPHONE_EVENT_PT, &[5, 10, 0, 160]);
    let forward = core.on_packet(MediaLeg::Agent, &mut key, address(AGENT), now).unwrap();
    assert!(forward.event);
    assert_eq!(key[1], 96, "under the customer's event type");
    assert_eq!(&key[12..], &[5, 10, 0, 160], "the event itself untouched");
    core.forwarded(&forward, key.len());
    assert_eq!(core.stats().telephone_events, 1);

    // A leg that takes no telephone events gets none.
    core.set_remote(MediaLeg::Customer, remote(CUSTOMER, Law::A, None), now);
    let mut key = rtp(sdp::TELEPHONE_EVENT_PT, &[5, 10, 0, 160]);
    assert_eq!(core.on_packet(MediaLeg::Agent, &mut key, address(AGENT), now), None);
}

#[test]
fn the_first_source_is_latched_a_stranger_dropped_and_a_moved_stream_latched_again() {
    let now = Instant::now();
    let mut core = relay(RelayMode::Bridged, now);
    // The customer's packets come from a NAT's address, not the SDP's: the first source wins,
    // and the agent's packets go there.
    let nat = address("127.0.0.9:7000");
    assert!(core
        .on_packet(MediaLeg::Customer, &mut rtp(8, &[0; 4]), nat, now)
        .is_some());
    let to_customer = core
        .on_packet(MediaLeg::Agent, &mut rtp(0, &[0; 4]), address(AGENT), now)
        .unwrap();
    assert_eq!(to_customer.remote, nat);
    // A stranger sending to the customer's port is ignored, and not counted.
    let stranger = address("127.0.0.66:6666");
    assert_eq!(
        core.on_packet(MediaLeg::Customer, &mut rtp(8, &[0; 4]), stranger, now),
        None
    );
    assert_eq!(core.stats().received_from_customer, 1);
    // The same SDP again (a refresh) keeps the latch; a new address (the stream moved) latches
    // onto the next source.
    core.set_remote(MediaLeg::Customer, remote(CUSTOMER, Law::A, Some(96)), now);
    assert_eq!(
        core.on_packet(MediaLeg::Customer, &mut rtp(8, &[0; 4]), stranger, now),
        None
    );
    core.set_remote(MediaLeg::Customer, remote("127.0.0.1:5002", Law::A, Some(96)), now);
    let to_customer = core
        .on_packet(MediaLeg::Agent, &mut rtp(0, &[0; 4]), address(AGENT), now)
        .unwrap();
    assert_eq!(
        to_customer.remote,
        address("127.0.0.1:5002"),
        "sent where the new SDP says"
    );
    assert!(core
        .on_packet(MediaLeg::Customer, &mut rtp(8, &[0; 4]), stranger, now)
        .is_some());
}

#[test]
fn a_silent_leg_is_reported_once_only_while_bridged_and_not_while_it_says_it_sends_nothing() {
    let start = Instant::now();
    let mut core = relay(RelayMode::EarlyMedia, start);
    assert!(
        core.newly_inactive(start + Duration::from_secs(60)).is_empty(),
        "not bridged"
    );
    let bridged = start + Duration::from_secs(60);
    core.set_mode(RelayMode::Bridged, bridged);
    core.on_packet(
        MediaLeg::Agent,
        &mut rtp(0, &[0; 4]),
        address(AGENT),
        bridged + Duration::from_secs(4),
    );
    assert!(core.newly_inactive(bridged + Duration::from_secs(4)).is_empty());
    assert_eq!(
        core.newly_inactive(bridged + Duration::from_secs(5)),
        [MediaLeg::Customer]
    );
    assert!(core.newly_inactive(bridged + Duration::from_secs(6)).is_empty(), "once");
    assert_eq!(core.newly_inactive(bridged + Duration::from_secs(9)), [MediaLeg::Agent]);
    // On hold (`inactive`): no report; resumed: its clock starts again.
    let mut core = relay(RelayMode::Bridged, start);
    core.set_remote(
        MediaLeg::Customer,
        RemoteLeg {
            sends: false,
            ..remote(CUSTOMER, Law::A, Some(96))
        },
        start,
    );
    core.on_packet(
        MediaLeg::Agent,
        &mut rtp(0, &[0; 4]),
        address(AGENT),
        start + Duration::from_secs(9),
    );
    assert!(core.newly_inactive(start + Duration::from_secs(10)).is_empty());
    core.set_remote(
        MediaLeg::Customer,
        remote(CUSTOMER, Law::A, Some(96)),
        start + Duration::from_secs(10),
    );
    assert_eq!(
        core.newly_inactive(start + Duration::from_secs(14)),
        [MediaLeg::Agent],
        "the customer's clock started again at its resume"
    );
    assert_eq!(
        core.newly_inactive(start + Duration::from_secs(15)),
        [MediaLeg::Customer]
    );
}

#[test]
fn ringback_and_keys_go_out_only_in_their_phase_and_keys_renumber_the_relayed_stream() {
    let now = Instant::now();
    let mut core = relay(RelayMode::Ringback, now);
    let (leg, to, packet) = core.next_tone(Instant::now()).unwrap();
    assert_eq!(
        (leg, to, packet[1] & 0x7F),
        (MediaLeg::Agent, address(AGENT), 0),
        "PCMU to the agent"
    );
    core.tone_sent(leg);
    assert_eq!(core.stats().ringback_packets, 1);
    // A key while not bridged is dropped.
    let key = Digit {
        to: MediaLeg::Customer,
        event: 5,
        duration: Duration::from_millis(40),
    };
    assert!(core.queue_digit(key), "the clock starts");
    assert!(core.next_digit_packet().is_none());
    assert!(!core.digits_pending());

    core.set_mode(RelayMode::Bridged, now);
    assert!(core.next_tone(Instant::now()).is_none(), "no ringback once bridged");
    let forward = core.on_packet(MediaLeg::Agent, &mut audio(100, 8_000, 42), address(AGENT), now);
    assert!(forward.is_some());
    assert!(core.queue_digit(key));
    assert!(!core.queue_digit(key), "already ticking");
    let mut sequences = Vec::new();
    // One call a 20 ms tick, while keys are pending (a tick between two keys sends nothing).
    for _ in 0..20 {
        if !core.digits_pending() {
            break;
        }
        if let Some((to, remote, packet)) = core.next_digit_packet() {
            assert_eq!((to, remote), (MediaLeg::Customer, Some(address(CUSTOMER))));
            assert_eq!(packet[1] & 0x7F, 96, "under the customer's event type");
            sequences.push(u16::from_be_bytes([packet[2], packet[3]]));
        }
    }
    // 40 ms: 160 then 320 samples (ended) three times: four packets; the second key as many.
    assert_eq!(sequences, (101..109).collect::<Vec<u16>>());
    let mut next = audio(101, 8_160, 42);
    core.on_packet(MediaLeg::Agent, &mut next, address(AGENT), now).unwrap();
    assert_eq!(
        u16::from_be_bytes([next[2], next[3]]),
        109,
        "relayed after the inserted ones"
    );
}

#[test]
fn on_hold_the_customer_hears_the_hold_tone_continuing_its_stream_and_nothing_is_relayed() {
    let now = Instant::now();
    let mut core = relay(RelayMode::Bridged, now);
    let mut relayed = audio(500, 80_000, 42);
    core.on_packet(MediaLeg::Agent, &mut relayed, address(AGENT), now)
        .unwrap();
    core.set_mode(RelayMode::OnHold, now);
    assert!(core.plays_tone());
    let mut beep = Vec::new();
    for tick in 0..150u16 {
        let (leg, to, packet) = core.next_tone(Instant::now()).unwrap();
        assert_eq!((leg, to), (MediaLeg::Customer, address(CUSTOMER)));
        assert_eq!(packet[1] & 0x7F, 8, "the customer's law (PCMA)");
        assert_eq!(packet[1] & 0x80 != 0, tick == 0, "marked once, at the start");
        assert_eq!(
            u16::from_be_bytes([packet[2], packet[3]]),
            501 + tick,
            "the stream continues"
        );
        assert_eq!(
            u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            80_000 + 160 * (u32::from(tick) + 1)
        );
        assert_eq!(
            u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            42,
            "one SSRC"
        );
        beep.push(packet[12..].iter().any(|b| *b != Law::A.encode(0)));
        core.tone_sent(leg);
    }
    assert!(
        beep[..10].iter().all(|b| *b) && beep[10..].iter().all(|b| !b),
        "200 ms of tone in 3 s"
    );
    assert_eq!(core.stats().hold_tone_packets, 150);
    assert!(core
        .on_packet(MediaLeg::Agent, &mut audio(501, 80_160, 42), address(AGENT), now)
        .is_none());
    assert!(core
        .on_packet(MediaLeg::Customer, &mut rtp(8, &[0xD5; 160]), address(CUSTOMER), now)
        .is_none());
    assert_eq!(
        core.newly_inactive(now + Duration::from_secs(6)),
        [MediaLeg::Agent, MediaLeg::Customer],
        "a silent leg is lost, on hold too"
    );

    // The agent's leg hears silence meanwhile, continuing its stream.
    let (to, silence) = core.next_hold_silence().unwrap();
    assert_eq!(to, address(AGENT));
    assert_eq!(silence[1], 0, "PCMU, unmarked");
    assert!(silence[12..].iter().all(|b| *b == Law::Mu.encode(0)));

    core.set_mode(RelayMode::Bridged, now);
    assert!(!core.plays_tone());
    assert!(core.next_hold_silence().is_none());
    // The agent's packets went on during the hold (1000 of them, 20 s): the customer's stream
    // still goes on from the tone's last packet, marked.
    let mut next = audio(1502, 240_000, 42);
    core.on_packet(MediaLeg::Agent, &mut next, address(AGENT), now).unwrap();
    assert_eq!(
        u16::from_be_bytes([next[2], next[3]]),
        651,
        "right after the tone's packets"
    );
    assert_eq!(next[1], 0x80 | 8, "marked");
    let mut after = audio(1503, 240_160, 42);
    core.on_packet(MediaLeg::Agent, &mut after, address(AGENT), now)
        .unwrap();
    assert_eq!(u16::from_be_bytes([after[2], after[3]]), 652);
    assert_eq!(after[1], 8, "one mark");
}

/// A recorder that keeps every batch it is handed, and the last; and whether it was discarded.
#[derive(Debug, Default)]
struct KeptBatches(
    std::sync::Mutex<Vec<crate::recording::RecordBatch>>,
    std::sync::atomic::AtomicBool,
);

impl crate::recording::RecordingSink for KeptBatches {
    fn offer(&self, batch: crate::recording::RecordBatch) -> Result<(), crate::recording::RecordBatch> {
        self.0.lock().unwrap().push(batch);
        Ok(())
    }

    fn close(&self, last: crate::recording::RecordBatch) {
        self.0.lock().unwrap().push(last);
    }

    fn discard(&self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// [`relay`] in `Silent`, recorded (from the bridge, as the engine starts it there) with
/// `announcement`.
fn recorded(now: Instant, announcement: Option<Vec<i16>>) -> (RelayCore, Arc<KeptBatches>) {
    let sink = Arc::new(KeptBatches::default());
    let plan = RecordingPlan {
        from: crate::recording::RecordFrom::Bridge,
        max_length: Duration::from_secs(3600),
        announcement: announcement.map(Into::into),
        sink: sink.clone(),
    };
    let core = relay(RelayMode::Silent, now).with_recording(Some(plan));
    (core, sink)
}

#[test]
fn a_recorded_call_copies_what_each_leg_sends_in_its_own_law_before_it_is_converted() {
    let now = Instant::now();
    let (mut core, sink) = recorded(now, None);
    core.on_packet(MediaLeg::Agent, &mut audio(1, 0, 7), address(AGENT), now);
    assert!(!core.recording(), "nothing is recorded before the recording starts");
    core.start_recording(now);
    core.set_mode(RelayMode::Bridged, now);
    let mut from_agent = audio(2, 160, 7);
    from_agent[12..].fill(0x80);
    assert!(core
        .on_packet(MediaLeg::Agent, &mut from_agent, address(AGENT), now)
        .is_some());
    assert_eq!(
        from_agent[12],
        g711::transcode(Law::Mu, 0x80),
        "forwarded in the customer's law"
    );
    core.on_packet(MediaLeg::Customer, &mut rtp(8, &[0xD5; 160]), address(CUSTOMER), now);
    core.hand_over_recording(now + Duration::from_millis(200));
    let batches = sink.0.lock().unwrap();
    let batch = &batches[0];
    let chunks: Vec<_> = batch.chunks.iter().map(|c| (c.channel, c.law)).collect();
    assert_eq!(chunks, vec![(Channel::Agent, Law::Mu), (Channel::Customer, Law::A)]);
    assert_eq!(
        batch.samples_of(&batch.chunks[0]),
        &[0x80; 160][..],
        "as the agent sent it"
    );
}

#[test]
fn the_announcement_plays_to_both_legs_before_they_are_bridged_then_the_streams_go_on() {
    let now = Instant::now();
    let samples: Vec<i16> = (0..400).map(|n| if n < 160 { 1000 } else { -1000 }).collect();
    let (mut core, sink) = recorded(now, Some(samples));
    core.on_packet(MediaLeg::Customer, &mut audio(500, 0, 9), address(CUSTOMER), now);
    core.start_recording(now);
    core.set_mode(RelayMode::Bridged, now);
    assert!(core.announcing() && core.plays_tone());
    assert!(
        core.on_packet(MediaLeg::Agent, &mut audio(1, 0, 7), address(AGENT), now)
            .is_none(),
        "nothing is relayed while it plays"
    );
    // 400 samples: three 20 ms frames, the last padded with silence.
    let mut sequences = Vec::new();
    for frame in 0..3 {
        let (to, packet) = core.next_announcement(MediaLeg::Customer).unwrap();
        assert_eq!(to, address(CUSTOMER));
        assert_eq!(packet[1] & 0x7F, 8, "in the customer's law");
        let expected = match frame {
            0 => Law::A.encode(1000),
            _ => Law::A.encode(-1000),
        };
        assert_eq!(packet[12], expected, "frame {frame}");
        assert_eq!(packet[1] & 0x80 != 0, frame == 0, "marked at its start");
        sequences.push(u16::from_be_bytes([packet[2], packet[3]]));
        let (to, packet) = core.next_announcement(MediaLeg::Agent).unwrap();
        assert_eq!((to, packet[1] & 0x7F), (address(AGENT), 0));
        core.announcement_advanced(now + Duration::from_millis(20 * (frame + 1)));
    }
    assert_eq!(sequences, vec![0, 1, 2], "continuing what the customer was sent");
    assert!(!core.announcing());
    let mut after = audio(2, 320, 7);
    assert!(core
        .on_packet(MediaLeg::Agent, &mut after, address(AGENT), now)
        .is_some());
    assert!(after[1] & 0x80 != 0, "the agent's stream resumes marked");
    core.set_mode(RelayMode::OnHold, now);
    core.set_mode(RelayMode::Bridged, now);
    assert!(!core.announcing(), "played once, not again after a hold");
    core.finish_recording(now + Duration::from_millis(100));
    let batches = sink.0.lock().unwrap();
    let marks: Vec<_> = batches.iter().flat_map(|b| b.marks.clone()).collect();
    assert_eq!(marks, vec![crate::recording::Mark::Announcement { from: 0, to: 480 }]);
}

#[test]
fn a_call_that_ends_before_its_recording_starts_plays_no_announcement_and_discards_it() {
    let now = Instant::now();
    let (mut core, sink) = recorded(now, Some(vec![1000; 800]));
    core.set_mode(RelayMode::Bridged, now);
    assert!(!core.announcing(), "the recording never started");
    core.finish_recording(now);
    assert!(
        sink.1.load(std::sync::atomic::Ordering::SeqCst),
        "the recorder is told at once"
    );
    assert!(sink.0.lock().unwrap().is_empty());
}

#[test]
fn a_pause_asked_before_the_recording_starts_starts_it_paused() {
    let now = Instant::now();
    let (mut core, sink) = recorded(now, None);
    core.set_recording_paused(true, now);
    core.start_recording(now);
    core.set_mode(RelayMode::Bridged, now);
    core.on_packet(MediaLeg::Agent, &mut audio(1, 0, 7), address(AGENT), now);
    core.set_recording_paused(false, now + Duration::from_millis(100));
    core.hand_over_recording(now + Duration::from_millis(200));
    assert!(core.recording());
    let batches = sink.0.lock().unwrap();
    assert!(batches[0].chunks.is_empty(), "nothing captured while paused");
    assert_eq!(
        batches[0].marks,
        vec![
            crate::recording::Mark::Paused { at: 0 },
            crate::recording::Mark::Resumed { at: 800 }
        ]
    );
}

#[test]
fn recorded_from_the_agents_answer_the_customer_channel_has_the_ringback_the_agent_hears() {
    let now = Instant::now();
    let (mut core, sink) = recorded(now, None);
    core.start_recording(now);
    core.set_mode(RelayMode::Ringback, now);
    let ringback = core.next_tone(now).map(|(_, _, packet)| packet[12..].to_vec()).unwrap();
    core.hand_over_recording(now + Duration::from_millis(200));
    let batches = sink.0.lock().unwrap();
    let chunk = batches[0].chunks[0];
    assert_eq!((chunk.channel, chunk.law, chunk.at), (Channel::Customer, Law::Mu, 0));
    assert_eq!(batches[0].samples_of(&chunk), &ringback[..]);
}

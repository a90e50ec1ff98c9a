use std::sync::Mutex;

use super::*;

/// A recorder that keeps what it is handed, or refuses every batch.
#[derive(Debug, Default)]
struct Kept {
    refuse: bool,
    batches: Mutex<Vec<RecordBatch>>,
    closed: Mutex<Option<RecordBatch>>,
}

impl RecordingSink for Kept {
    fn offer(&self, batch: RecordBatch) -> Result<(), RecordBatch> {
        if self.refuse {
            return Err(batch);
        }
        self.batches.lock().unwrap().push(batch);
        Ok(())
    }

    fn close(&self, last: RecordBatch) {
        *self.closed.lock().unwrap() = Some(last);
    }

    fn discard(&self) {}
}

fn plan(sink: Arc<Kept>, max: Duration) -> RecordingPlan {
    RecordingPlan {
        from: RecordFrom::Bridge,
        max_length: max,
        announcement: None,
        sink,
    }
}

fn packet(pt: u8, ssrc: u32, timestamp: u32, byte: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 1];
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(byte, 160));
    p
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn packets_are_placed_by_their_timestamps_so_a_lost_one_leaves_a_hole() {
    let sink = Arc::new(Kept::default());
    let t0 = Instant::now();
    let mut tap = Tap::start(&plan(sink.clone(), Duration::from_secs(60)), t0);
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 7, 1000, 1), t0 + ms(10));
    // The next packet (timestamp +160) was lost; the one after arrives late.
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 7, 1320, 3), t0 + ms(90));
    tap.capture(Channel::Customer, Law::A, &packet(8, 9, 5, 4), t0 + ms(20));
    assert!(tap.hand_over(t0 + ms(200)));
    let batches = sink.batches.lock().unwrap();
    let chunks = &batches[0].chunks;
    assert_eq!(chunks.len(), 3);
    assert_eq!((chunks[0].channel, chunks[0].at), (Channel::Agent, 80));
    assert_eq!(chunks[1].at, 80 + 320, "by timestamp, not by arrival");
    assert_eq!(
        (chunks[2].channel, chunks[2].at, chunks[2].law),
        (Channel::Customer, 160, Law::A)
    );
    assert_eq!(batches[0].samples_of(&chunks[1]), &[3u8; 160][..]);
    assert_eq!(batches[0].end, 1600);
}

#[test]
fn a_new_stream_or_a_timestamp_jump_is_anchored_again_where_it_arrives() {
    let sink = Arc::new(Kept::default());
    let t0 = Instant::now();
    let mut tap = Tap::start(&plan(sink.clone(), Duration::from_secs(60)), t0);
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 7, 1000, 1), t0);
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 8, 99, 1), t0 + ms(100));
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 8, 99 + 80_000, 1), t0 + ms(120));
    tap.hand_over(t0 + ms(200));
    let at: Vec<u64> = sink.batches.lock().unwrap()[0].chunks.iter().map(|c| c.at).collect();
    assert_eq!(at, vec![0, 800, 960]);
}

#[test]
fn telephone_events_and_malformed_packets_are_not_recorded() {
    let sink = Arc::new(Kept::default());
    let t0 = Instant::now();
    let mut tap = Tap::start(&plan(sink.clone(), Duration::from_secs(60)), t0);
    tap.capture(Channel::Agent, Law::Mu, &packet(101, 7, 0, 1), t0);
    tap.capture(Channel::Agent, Law::Mu, &[0x80, 0, 1], t0);
    tap.capture(Channel::Agent, Law::Mu, &packet(8, 7, 0, 1), t0);
    tap.hand_over(t0 + ms(200));
    assert!(sink.batches.lock().unwrap()[0].chunks.is_empty());
}

#[test]
fn a_paused_recording_captures_nothing_and_says_where() {
    let sink = Arc::new(Kept::default());
    let t0 = Instant::now();
    let mut tap = Tap::start(&plan(sink.clone(), Duration::from_secs(60)), t0);
    tap.set_paused(true, t0 + ms(50));
    tap.set_paused(true, t0 + ms(60));
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 7, 0, 1), t0 + ms(100));
    tap.set_paused(false, t0 + ms(150));
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 7, 1200, 1), t0 + ms(150));
    tap.hand_over(t0 + ms(200));
    let batch = &sink.batches.lock().unwrap()[0];
    assert_eq!(batch.marks, vec![Mark::Paused { at: 400 }, Mark::Resumed { at: 1200 }]);
    assert_eq!(batch.chunks.len(), 1);
}

#[test]
fn a_batch_the_recorder_refuses_is_counted_and_marked_as_silence_in_the_next() {
    let sink = Arc::new(Kept {
        refuse: true,
        ..Kept::default()
    });
    let t0 = Instant::now();
    let mut tap = Tap::start(&plan(sink.clone(), Duration::from_secs(60)), t0);
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 7, 0, 1), t0);
    tap.hand_over(t0 + ms(200));
    tap.hand_over(t0 + ms(400));
    assert_eq!(tap.dropped_batches, 2);
    tap.finish(t0 + ms(500));
    let last = sink.closed.lock().unwrap().clone().unwrap();
    assert_eq!(
        last.marks,
        vec![
            Mark::Dropped { from: 0, to: 1600 },
            Mark::Dropped { from: 1600, to: 3200 }
        ]
    );
    assert_eq!(last.end, 4000);
    assert!(last.chunks.is_empty(), "what was refused is not sent again");
}

#[test]
fn the_recording_stops_at_its_maximum_length() {
    let sink = Arc::new(Kept::default());
    let t0 = Instant::now();
    let mut tap = Tap::start(&plan(sink.clone(), ms(300)), t0);
    assert!(tap.hand_over(t0 + ms(200)));
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 7, 0, 1), t0 + ms(250));
    assert!(!tap.hand_over(t0 + ms(400)));
    let last = sink.closed.lock().unwrap().clone().unwrap();
    assert_eq!(last.end, 2400);
    assert_eq!(last.marks, vec![Mark::LimitReached { at: 2400 }]);
    tap.capture(Channel::Agent, Law::Mu, &packet(0, 7, 160, 1), t0 + ms(420));
    tap.finish(t0 + ms(500));
    assert_eq!(sink.batches.lock().unwrap().len(), 1, "nothing after the close");
}

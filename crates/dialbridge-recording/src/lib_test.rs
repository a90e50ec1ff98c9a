use std::time::Duration;

use dialbridge_media::recording::{Channel, Chunk, Mark};
use dialbridge_media::Law;

use super::*;

fn recorder(dir: &tempfile::TempDir, queue_batches: usize) -> Recorder {
    let storage = LocalStorage::new(dir.path().join("recordings")).unwrap();
    Recorder::start(
        storage,
        &RecorderSettings {
            workers: 1,
            queue_batches,
        },
    )
    .unwrap()
}

fn key() -> RecordingKey {
    RecordingKey::new("20261201", "3000001", "3000001-20261201103000-13800138000-n1-1.1.wav").unwrap()
}

/// A batch with 20 ms of `byte` (µ-law) on `channel` at each of `at`.
fn batch(channel: Channel, at: &[u64], byte: u8, end: u64, marks: Vec<Mark>) -> RecordBatch {
    let mut b = RecordBatch {
        end,
        marks,
        ..RecordBatch::default()
    };
    for &at in at {
        let offset = u32::try_from(b.payload.len()).unwrap();
        b.payload.extend(std::iter::repeat_n(byte, 160));
        b.chunks.push(Chunk {
            channel,
            at,
            law: Law::Mu,
            offset,
            len: 160,
        });
    }
    b
}

async fn summary(done: oneshot::Receiver<RecordingSummary>) -> RecordingSummary {
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn each_party_lands_in_its_own_channel_in_time_and_the_rest_is_silence() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = recorder(&dir, 25);
    let (sink, done) = recorder.begin(key(), "n1-1.1");
    // 0xFF is µ-law's zero; 0x80 and 0x00 are its loudest positive and negative samples.
    sink.offer(batch(Channel::Agent, &[0, 160], 0x80, 1600, vec![]))
        .unwrap();
    sink.offer(batch(Channel::Customer, &[1600], 0x00, 3200, vec![]))
        .unwrap();
    sink.close(batch(Channel::Agent, &[], 0x80, 4000, vec![Mark::Paused { at: 3200 }]));
    let summary = summary(done).await;
    assert_eq!(summary.frames, 4000);
    assert_eq!(summary.duration_ms(), 500);
    let path = recorder.storage().path_of(&key());
    let agent = MonoView::open(std::fs::File::open(&path).unwrap(), Side::Agent).unwrap();
    let customer = MonoView::open(std::fs::File::open(&path).unwrap(), Side::Customer).unwrap();
    let agent = agent.read(44, agent.len()).unwrap();
    let customer = customer.read(44, customer.len()).unwrap();
    let at = |bytes: &[u8], frame: usize| i16::from_le_bytes([bytes[frame * 2], bytes[frame * 2 + 1]]);
    assert_eq!(at(&agent, 0), Law::Mu.decode(0x80));
    assert_eq!(at(&agent, 319), Law::Mu.decode(0x80));
    assert_eq!(at(&agent, 320), 0);
    assert_eq!(at(&customer, 0), 0);
    assert_eq!(at(&customer, 1600), Law::Mu.decode(0x00));
    assert_eq!(at(&agent, 1600), 0);
    let sidecar: Sidecar =
        serde_json::from_slice(&std::fs::read(recorder.storage().sidecar_of(&key())).unwrap()).unwrap();
    assert_eq!(
        sidecar.pauses,
        vec![Span {
            from_ms: 400,
            to_ms: 500
        }]
    );
    assert_eq!(sidecar.duration_ms, 500);
    assert!(!sidecar.interrupted);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn the_file_on_disk_is_valid_after_every_batch_and_recovery_marks_it_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = recorder(&dir, 25);
    let (sink, _done) = recorder.begin(key(), "n1-1.1");
    let second = 8000 * 2;
    sink.offer(batch(Channel::Agent, &[0], 0x80, second, vec![])).unwrap();
    let path = recorder.storage().path_of(&key());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let written = loop {
        let frames = std::fs::File::open(&path)
            .ok()
            .and_then(|f| wav::read_stereo(&f).ok())
            .map_or(0, |s| s.frames);
        if frames > 0 || tokio::time::Instant::now() > deadline {
            break frames;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(written, second, "up to the relay's clock at the batch");
    let recovered = recover(recorder.storage(), &key(), "n1-1.1").unwrap().unwrap();
    assert_eq!(recovered.frames, written);
    let sidecar: Sidecar =
        serde_json::from_slice(&std::fs::read(recorder.storage().sidecar_of(&key())).unwrap()).unwrap();
    assert!(sidecar.interrupted);
    let other = RecordingKey::new("20261201", "3000001", "none.wav").unwrap();
    assert!(recover(recorder.storage(), &other, "x").unwrap().is_none());
}

#[tokio::test]
async fn a_call_that_never_recorded_has_no_summary_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = recorder(&dir, 25);
    let (sink, done) = recorder.begin(key(), "n1-1.1");
    sink.discard();
    assert!(done.await.is_err(), "told at once, while the sink still lives");
    let (sink, done) = recorder.begin(key(), "n1-1.1");
    drop(sink);
    assert!(done.await.is_err());
    assert!(!recorder.storage().path_of(&key()).exists());
}

#[tokio::test]
async fn a_file_that_cannot_be_created_is_counted_and_its_call_has_no_summary() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = recorder(&dir, 25);
    // A file where the day's directory should be: even root cannot create the recording.
    std::fs::create_dir_all(dir.path().join("recordings")).unwrap();
    std::fs::write(dir.path().join("recordings/20261201"), b"in the way").unwrap();
    let (sink, done) = recorder.begin(key(), "n1-1.1");
    sink.offer(batch(Channel::Agent, &[0], 0x80, 1600, vec![])).unwrap();
    sink.offer(batch(Channel::Agent, &[1600], 0x80, 3200, vec![])).unwrap();
    sink.close(RecordBatch {
        end: 4800,
        ..RecordBatch::default()
    });
    let heard = tokio::time::timeout(Duration::from_secs(10), done).await.unwrap();
    assert!(heard.is_err(), "no file, no summary");
    assert_eq!(
        recorder.totals(),
        RecorderTotals {
            files_not_created: 1,
            files_cut_short: 0
        },
        "counted once, not once per batch"
    );
}

#[tokio::test]
async fn batches_beyond_the_queue_bound_are_given_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = recorder(&dir, 1);
    let (sink, done) = recorder.begin(key(), "n1-1.1");
    let mut refused = 0;
    for n in 1..=200u64 {
        if sink
            .offer(batch(Channel::Agent, &[n * 1600], 0x80, n * 1600 + 1600, vec![]))
            .is_err()
        {
            refused += 1;
        }
    }
    sink.close(RecordBatch {
        end: 201 * 1600,
        ..RecordBatch::default()
    });
    assert!(refused > 0, "a queue of one cannot take 200 batches at once");
    assert_eq!(summary(done).await.frames, 201 * 1600);
}

#[test]
fn keys_cannot_leave_the_recordings_directory() {
    assert!(RecordingKey::new("20261201", "3000001", "../x.wav").is_err());
    assert!(RecordingKey::new("2026120", "3000001", "a.wav").is_err());
    assert!(RecordingKey::new("20261201", "30/1", "a.wav").is_err());
    assert!(RecordingKey::new("20261201", "3000001", "a.mp3").is_err());
    assert!(RecordingKey::parse("20261201/3000001/a-b.wav").is_ok());
    assert!(RecordingKey::parse("20261201/3000001").is_err());
}

#[tokio::test]
async fn a_late_packet_is_written_in_place_behind_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = recorder(&dir, 25);
    let (sink, done) = recorder.begin(key(), "n1-1.1");
    sink.offer(batch(Channel::Customer, &[0], 0x80, 1600, vec![])).unwrap();
    // It belongs 100 ms in but comes with the next batch.
    sink.offer(batch(Channel::Customer, &[800], 0x00, 3200, vec![]))
        .unwrap();
    sink.close(RecordBatch {
        end: 3200,
        ..RecordBatch::default()
    });
    assert_eq!(summary(done).await.frames, 3200);
    let path = recorder.storage().path_of(&key());
    let customer = MonoView::open(std::fs::File::open(&path).unwrap(), Side::Customer).unwrap();
    let samples = customer.read(44, customer.len()).unwrap();
    let at = |frame: usize| i16::from_le_bytes([samples[frame * 2], samples[frame * 2 + 1]]);
    assert_eq!(at(0), Law::Mu.decode(0x80));
    assert_eq!(at(800), Law::Mu.decode(0x00));
    assert_eq!(at(959), Law::Mu.decode(0x00));
    assert_eq!(at(960), 0);
}

//! Reading what a test recorded: 16-bit PCM WAV files (one channel at a time) and a Goertzel
//! tone detector, to tell which party's tone is where.

/// Channel `channel` (from 0) of a 16-bit PCM WAV file, scaled to -1..1, and its sample rate.
pub fn read_wav(path: &std::path::Path, channel: usize) -> (Vec<f64>, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(&bytes[..4], b"RIFF", "{path:?}");
    let (mut at, mut rate, mut channels, mut samples) = (12, 0u32, 1usize, Vec::new());
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            assert_eq!(u16::from_le_bytes([body[14], body[15]]), 16, "16-bit PCM");
            channels = usize::from(u16::from_le_bytes([body[2], body[3]]));
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            assert!(channel < channels, "{path:?} has {channels} channels");
            samples = body
                .chunks_exact(2 * channels)
                .map(|frame| f64::from(i16::from_le_bytes([frame[2 * channel], frame[2 * channel + 1]])) / 32768.0)
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    (samples, rate)
}

/// The Goertzel power of `hz` in one block, and the block's energy.
fn block_power(block: &[f64], rate: u32, hz: u32) -> (f64, f64) {
    let k = 2.0 * (2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(rate)).cos();
    let (mut s1, mut s2, mut energy) = (0.0, 0.0, 0.0);
    for &x in block {
        let s0 = x + k * s1 - s2;
        s2 = s1;
        s1 = s0;
        energy += x * x;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2, energy)
}

/// How much of `samples` is a tone at `hz` (0..1), by Goertzel over 20 ms blocks.
pub fn tone_share(samples: &[f64], rate: u32, hz: u32) -> f64 {
    let block = (rate / 50) as usize;
    let (mut total, mut energy) = (0.0, 0.0);
    for chunk in samples.chunks_exact(block) {
        let (power, e) = block_power(chunk, rate, hz);
        total += power;
        energy += e;
    }
    if energy == 0.0 {
        0.0
    } else {
        total / (block as f64 * energy / 2.0)
    }
}

/// How many seconds of `samples` carry a tone at `hz`: 20 ms blocks loud enough (above -40
/// dBFS) whose energy is mostly at `hz`.
pub fn tone_seconds(samples: &[f64], rate: u32, hz: u32) -> f64 {
    let block = (rate / 50) as usize;
    let present = samples
        .chunks_exact(block)
        .filter(|chunk| {
            let (power, energy) = block_power(chunk, rate, hz);
            energy / block as f64 > 1e-4 && power / (block as f64 * energy / 2.0) > 0.5
        })
        .count();
    present as f64 * 0.02
}

//! Audio for the tests: tone files to play (16-bit PCM WAV), reading what a test recorded (one
//! channel at a time), and a Goertzel tone detector, to tell which party's tone is where.

/// Writes a 16-bit PCM WAV at `rate` with `channels` (each the same) of a sine at `hz`, at
/// 0.4 of full scale, `seconds` long.
pub fn write_tone(path: &std::path::Path, rate: u32, channels: u16, hz: u32, seconds: f64) {
    let frames = (f64::from(rate) * seconds) as u32;
    let block = u32::from(channels) * 2;
    let data_len = frames * block;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend(b"RIFF");
    wav.extend((36 + data_len).to_le_bytes());
    wav.extend(b"WAVEfmt ");
    wav.extend(16u32.to_le_bytes());
    wav.extend(1u16.to_le_bytes()); // PCM
    wav.extend(channels.to_le_bytes());
    wav.extend(rate.to_le_bytes());
    wav.extend((rate * block).to_le_bytes());
    wav.extend((block as u16).to_le_bytes());
    wav.extend(16u16.to_le_bytes());
    wav.extend(b"data");
    wav.extend(data_len.to_le_bytes());
    for n in 0..frames {
        let phase = 2.0 * std::f64::consts::PI * f64::from(hz) * f64::from(n) / f64::from(rate);
        let sample = (0.4 * 32767.0 * phase.sin()) as i16;
        for _ in 0..channels {
            wav.extend(sample.to_le_bytes());
        }
    }
    std::fs::write(path, wav).unwrap_or_else(|e| panic!("{path:?}: {e}"));
}

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

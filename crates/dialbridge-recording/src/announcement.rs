//! The consent announcement an operator uploads, made what the relay plays: 8 kHz mono 16-bit.
//! Any PCM or float WAV (hound reads it) is mixed down to mono and resampled: each 8 kHz sample
//! is the mean of the input samples in its 125 µs (a box filter, enough against aliasing for a
//! spoken message), or interpolated from a slower input. What cannot be used is refused with why.

use std::io::Cursor;

/// The shortest and longest announcement taken.
pub const MIN_MS: u64 = 200;
pub const MAX_MS: u64 = 60_000;
const OUT_RATE: u64 = 8000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    #[error("not a WAV file this server can read: {0}")]
    NotWav(String),
    #[error("a sample rate of {0} Hz is not usable: 8000 to 192000 Hz")]
    Rate(u32),
    #[error("{0} ms long: an announcement lasts {MIN_MS} ms to {MAX_MS} ms")]
    Length(u64),
}

/// The announcement in `wav` (a whole file), as 8 kHz mono samples.
pub fn from_wav(wav: &[u8]) -> Result<Vec<i16>, AnnouncementError> {
    let mut reader = hound::WavReader::new(Cursor::new(wav)).map_err(|e| AnnouncementError::NotWav(e.to_string()))?;
    let spec = reader.spec();
    if !(8000..=192_000).contains(&spec.sample_rate) {
        return Err(AnnouncementError::Rate(spec.sample_rate));
    }
    let channels = usize::from(spec.channels.max(1));
    let frames = u64::from(reader.duration());
    let length_ms = frames * 1000 / u64::from(spec.sample_rate);
    if !(MIN_MS..=MAX_MS).contains(&length_ms) {
        return Err(AnnouncementError::Length(length_ms));
    }
    let samples: Vec<f64> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .map(|s| s.map(f64::from))
            .collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1));
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) / scale))
                .collect::<Result<_, _>>()
        }
    }
    .map_err(|e| AnnouncementError::NotWav(e.to_string()))?;
    let mono: Vec<f64> = samples
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f64>() / frame.len() as f64)
        .collect();
    Ok(resample(&mono, u64::from(spec.sample_rate)))
}

fn resample(mono: &[f64], rate: u64) -> Vec<i16> {
    let out_len = (mono.len() as u64 * OUT_RATE / rate) as usize;
    (0..out_len)
        .map(|n| {
            let from = (n as u64 * rate / OUT_RATE) as usize;
            let to = (((n as u64 + 1) * rate / OUT_RATE) as usize).clamp(from + 1, mono.len());
            let window = &mono[from.min(mono.len() - 1)..to];
            let mean = window.iter().sum::<f64>() / window.len() as f64;
            (mean * 32767.0).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

#[cfg(test)]
#[path = "announcement_test.rs"]
mod tests;

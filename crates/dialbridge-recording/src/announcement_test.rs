use super::*;

fn wav(rate: u32, channels: u16, seconds: f64, hz: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
    for n in 0..(f64::from(rate) * seconds) as u64 {
        let v = (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * hz * n as f64 / f64::from(rate)).sin()) as i16;
        for _ in 0..channels {
            writer.write_sample(v).unwrap();
        }
    }
    writer.finalize().unwrap();
    out.into_inner()
}

/// The strength of `hz` in `samples` (8 kHz), by correlation.
fn strength(samples: &[i16], hz: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &s) in samples.iter().enumerate() {
        let phase = 2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0;
        re += f64::from(s) * phase.cos();
        im += f64::from(s) * phase.sin();
    }
    (re * re + im * im).sqrt() / samples.len() as f64
}

#[test]
fn a_stereo_48k_file_becomes_8k_mono_with_its_tone_and_length() {
    let samples = from_wav(&wav(48_000, 2, 2.0, 600.0)).unwrap();
    assert_eq!(samples.len(), 16_000);
    assert!(strength(&samples, 600.0) > 10.0 * strength(&samples, 1500.0));
}

#[test]
fn an_8k_mono_file_is_kept_as_it_is() {
    let samples = from_wav(&wav(8000, 1, 1.0, 400.0)).unwrap();
    assert_eq!(samples.len(), 8000);
    let expected = (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * 400.0 * 3.0 / 8000.0).sin()) as i16;
    assert!((i32::from(samples[3]) - i32::from(expected)).abs() <= 1);
}

#[test]
fn what_cannot_be_used_is_refused_with_why() {
    assert!(matches!(from_wav(b"RIFF nonsense"), Err(AnnouncementError::NotWav(_))));
    assert_eq!(from_wav(&wav(8000, 1, 0.1, 400.0)), Err(AnnouncementError::Length(100)));
    assert_eq!(
        from_wav(&wav(8000, 1, 61.0, 400.0)),
        Err(AnnouncementError::Length(61_000))
    );
    assert_eq!(from_wav(&wav(4000, 1, 1.0, 400.0)), Err(AnnouncementError::Rate(4000)));
}

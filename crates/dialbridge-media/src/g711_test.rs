use super::*;

#[test]
fn known_values() {
    assert_eq!(linear_to_ulaw(0), 0xFF);
    assert_eq!(ulaw_to_linear(0xFF), 0);
    assert_eq!(linear_to_alaw(0), 0xD5);
    assert_eq!(linear_to_ulaw(32767), 0x80);
    assert_eq!(linear_to_ulaw(-32768), 0x00);
    assert_eq!(alaw_to_linear(0xD5), 8);
    assert_eq!(alaw_to_linear(0x55), -8);
}

#[test]
fn every_code_round_trips_through_linear() {
    for law in [Law::Mu, Law::A] {
        for byte in 0..=255u8 {
            let linear = law.decode(byte);
            let again = law.encode(linear);
            assert_eq!(law.decode(again), linear, "{law:?} {byte:#x}");
        }
    }
}

#[test]
fn transcoding_keeps_the_signal_close() {
    for byte in 0..=255u8 {
        let original = i32::from(Law::Mu.decode(byte));
        let converted = i32::from(Law::A.decode(transcode(Law::Mu, byte)));
        let tolerance = (original.abs() / 16).max(16);
        assert!(
            (original - converted).abs() <= tolerance,
            "{byte:#x}: {original} vs {converted}"
        );
    }
    let back = Law::A.decode(transcode(Law::Mu, transcode(Law::A, 0xD5)));
    assert!(back.abs() <= 16);
}

#[test]
fn quantisation_error_is_small() {
    for sample in (-32000i32..32000).step_by(97) {
        let s = sample as i16;
        for law in [Law::Mu, Law::A] {
            let error = (i32::from(law.decode(law.encode(s))) - sample).abs();
            assert!(
                error <= (sample.abs() / 16).max(16) + 8,
                "{law:?} {sample}: error {error}"
            );
        }
    }
}

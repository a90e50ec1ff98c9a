#![no_main]
//! A session description from a phone or a carrier.

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = dialbridge_media::sdp::parse(bytes);
});

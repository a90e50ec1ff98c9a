#![no_main]
//! The HTTP framing follower over any bytes, cut where the first byte says.

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let Some((&cut, rest)) = bytes.split_first() else {
        return;
    };
    let (first, second) = rest.split_at(usize::from(cut).min(rest.len()));
    let mut framing = dialbridge_http::framing::Framing::new(1024);
    let _ = framing.read(first);
    framing.wrote(second);
    let _ = framing.read(second);
    let _ = framing.phase();
});

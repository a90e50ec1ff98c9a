#![no_main]
//! A SIP message as the stack receives one: parsed, checked, every header read.

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    dialbridge_sip::fuzzing::sip_message(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        dialbridge_sip::fuzzing::header_value(text);
    }
});

#![no_main]
//! Numbers, cnos, caller ids and amounts as the legacy interface and the operator give them.

libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = dialbridge_core::PhoneNumber::parse(text);
    let _ = dialbridge_core::Cno::parse(text);
    let _ = dialbridge_core::validate_caller_id(text);
    let _ = text.parse::<dialbridge_core::Money>();
    let _ = dialbridge_core::text::printable(text, 64);
});

#![no_main]
//! A legacy request's parameters: query string, form or multipart body.

libfuzzer_sys::fuzz_target!(|input: (&str, &str, &[u8])| {
    let (query, content_type, body) = input;
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(dialbridge_api::fuzzing::legacy_params(Some(query), content_type, body));
});

use super::*;

#[test]
fn query_and_form_merge_first_wins() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded; charset=UTF-8".parse().unwrap(),
    );
    let p = Params::parse(
        Some("cno=2000&sync=&hotline="),
        &headers,
        b"cno=9999&pwd=abc&userField=a%3D1%26b%3D2",
    );
    assert_eq!(p.get("cno"), Some("2000"));
    assert_eq!(p.get("pwd"), Some("abc"));
    assert_eq!(p.get("userField"), Some("a=1&b=2"));
    assert_eq!(p.get("sync"), None);
}

#[test]
fn multipart_fields_are_read_in_their_declared_charset() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"userField\"\r\nContent-Type: text/plain; charset=GBK\r\n\r\n\xD5\xC5\xC8\xFD\r\n--XyZ\r\nContent-Disposition: form-data; name=\"cno\"\r\n\r\n2000\r\n--XyZ--\r\n";
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let p = runtime.block_on(crate::fuzzing::legacy_params(
        None,
        "multipart/form-data; boundary=XyZ",
        body,
    ));
    assert_eq!(p.get("userField"), Some("张三"));
    assert_eq!(p.get("cno"), Some("2000"));
}

#[test]
fn a_charset_field_declares_the_other_multipart_fields_charset() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"charset\"\r\n\r\nGBK\r\n--XyZ\r\nContent-Disposition: form-data; name=\"userField\"\r\n\r\n\xC3\xB3\r\n--XyZ--\r\n";
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let p = runtime.block_on(crate::fuzzing::legacy_params(
        None,
        "multipart/form-data; boundary=XyZ",
        body,
    ));
    assert_eq!(
        p.get("userField"),
        Some("贸"),
        "GBK, though the bytes are valid UTF-8 too"
    );
}

#[test]
fn callbacks() {
    for good in ["cb", "jQuery123_456", "$.x", "_"] {
        assert!(is_safe_callback(good), "{good}");
    }
    for bad in ["", "1cb", "alert(1)", "a b", "x<script>", &"a".repeat(65)] {
        assert!(!is_safe_callback(bad), "{bad}");
    }
}

mod properties {
    use proptest::prelude::*;
    // Explicitly: the module above also brings axum's `any` in.
    use proptest::prelude::any;

    use super::*;

    /// The parameters of any request, as the extractor reads them (multipart included).
    fn read(query: Option<&str>, content_type: &str, body: &[u8]) -> Params {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(crate::fuzzing::legacy_params(query, content_type, body))
    }

    fn content_type() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("application/x-www-form-urlencoded".to_owned()),
            Just("multipart/form-data; boundary=XyZ".to_owned()),
            "multipart/form-data; boundary=[ -~]{0,20}",
            "[ -~]{0,40}",
        ]
    }

    /// A multipart body of fields, then cut or changed at random.
    fn multipart() -> impl Strategy<Value = Vec<u8>> {
        let fields = proptest::collection::vec(("[a-zA-Z]{1,8}", "[ -~]{0,30}"), 0..5);
        (fields, any::<usize>(), any::<u8>()).prop_map(|(fields, at, byte)| {
            let mut body = Vec::new();
            for (name, value) in fields {
                body.extend_from_slice(
                    format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
                );
            }
            body.extend_from_slice(b"--XyZ--\r\n");
            let at = at % body.len();
            body[at] = byte;
            body
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_query_form_or_multipart_never_panics(
            query in proptest::option::of("[ -~]{0,200}"),
            content_type in content_type(),
            body in prop_oneof![proptest::collection::vec(any::<u8>(), 0..400), multipart()],
        ) {
            let params = read(query.as_deref(), &content_type, &body);
            let _ = params.get("cno");
        }

        /// Whatever else a query holds, a well-formed name-value pair in it is read.
        #[test]
        fn a_pair_is_read_whatever_surrounds_it(noise in "[a-z0-9=&%]{0,50}", value in "[0-9]{1,10}") {
            let query = format!("cno={value}&{noise}");
            let params = read(Some(&query), "", b"");
            prop_assert_eq!(params.get("cno"), Some(value.as_str()));
        }
    }
}

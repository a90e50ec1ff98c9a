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
fn callbacks() {
    for good in ["cb", "jQuery123_456", "$.x", "_"] {
        assert!(is_safe_callback(good), "{good}");
    }
    for bad in ["", "1cb", "alert(1)", "a b", "x<script>", &"a".repeat(65)] {
        assert!(!is_safe_callback(bad), "{bad}");
    }
}

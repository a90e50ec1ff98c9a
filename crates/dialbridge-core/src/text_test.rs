use super::*;

#[test]
fn control_characters_are_escaped_and_long_values_cut() {
    assert_eq!(printable("13800138000", 64), "13800138000");
    assert_eq!(
        printable("1\n2026-12-05T00:00:00Z INFO forged", 64),
        "1\\n2026-12-05T00:00:00Z INFO forged"
    );
    assert_eq!(printable("a\r\u{1b}[31m\u{0}", 64), "a\\r\\u{1b}[31m\\u{0}");
    assert_eq!(printable(&"é".repeat(100), 3), "ééé…");
    assert_eq!(printable("abc", 3), "abc");
    assert!(!printable(&"\n".repeat(10_000), SHOWN_CHARS).contains('\n'));
}

#[test]
fn a_validation_error_never_echoes_a_value_whole() {
    let huge = format!("{}\n{}", "9".repeat(100_000), "forged");
    let error = crate::PhoneNumber::parse(&huge).unwrap_err();
    assert!(error.reason.chars().count() <= 201, "{}", error.reason.len());
    assert!(!error.reason.contains('\n'));
}

use super::*;

/// "张三 订单" in GBK, percent-encoded as an older CRM sends it.
const GBK_NAME: &str = "%D5%C5%C8%FD+%B6%A9%B5%A5";

fn decoded(input: &str, content_type: Option<&str>) -> Vec<(String, String)> {
    let pairs = raw_pairs(input.as_bytes());
    let charset = declared(&pairs, content_type);
    pairs
        .iter()
        .map(|(name, value)| (decode(name, charset), decode(value, charset)))
        .collect()
}

#[test]
fn pairs_split_and_unescape_to_bytes() {
    assert_eq!(
        raw_pairs(b"a=1&b=&c&&d=x%3Dy+z&e=%ZZ"),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"".to_vec()),
            (b"c".to_vec(), b"".to_vec()),
            (b"d".to_vec(), b"x=y z".to_vec()),
            (b"e".to_vec(), b"%ZZ".to_vec()),
        ]
    );
}

#[test]
fn a_charset_parameter_or_content_type_is_honoured() {
    let by_parameter = decoded(&format!("userField={GBK_NAME}&charset=GBK"), None);
    assert_eq!(by_parameter[0].1, "张三 订单");
    let by_header = decoded(
        &format!("userField={GBK_NAME}"),
        Some("application/x-www-form-urlencoded; charset=gb2312"),
    );
    assert_eq!(by_header[0].1, "张三 订单");
    let gb18030 = decoded(&format!("userField={GBK_NAME}&charset=GB18030"), None);
    assert_eq!(gb18030[0].1, "张三 订单");
}

#[test]
fn undeclared_text_is_utf8_when_it_is_and_gb18030_when_it_is_not() {
    let utf8 = decoded("userField=%E5%BC%A0%E4%B8%89", None);
    assert_eq!(utf8[0].1, "张三");
    let gbk = decoded(&format!("userField={GBK_NAME}"), None);
    assert_eq!(gbk[0].1, "张三 订单");
    // Neither: replacement characters, never a refusal.
    let broken = decoded("userField=%FF%FF%FF", None);
    assert!(broken[0].1.contains('\u{FFFD}'), "{broken:?}");
}

#[test]
fn a_declared_charset_wins_over_the_guess_and_unknown_labels_are_ignored() {
    // UTF-8 declared: GBK bytes become replacement characters rather than a wrong guess.
    let declared_utf8 = decoded(&format!("userField={GBK_NAME}&charset=UTF-8"), None);
    assert!(declared_utf8[0].1.contains('\u{FFFD}'));
    let unknown = decoded(&format!("userField={GBK_NAME}&charset=klingon"), None);
    assert_eq!(unknown[0].1, "张三 订单", "an unknown label is no declaration");
    assert_eq!(
        content_type_charset("text/plain; charset=\"GBK\""),
        Some(encoding_rs::GBK)
    );
    assert_eq!(content_type_charset("text/plain"), None);
}

use axum::http::{header, HeaderMap};

use super::*;
use crate::legacy::Params;

/// "张三 订单" in GBK, percent-encoded as an older CRM sends it.
const GBK_NAME: &str = "%D5%C5%C8%FD+%B6%A9%B5%A5";

fn form(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    headers
}

fn user_field(query: Option<&str>, headers: &HeaderMap, body: &str) -> String {
    Params::parse(query, headers, body.as_bytes())
        .raw("userField")
        .unwrap_or_default()
        .to_owned()
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
fn a_charset_parameter_or_the_bodys_content_type_is_honoured() {
    let none = HeaderMap::new();
    let query = format!("userField={GBK_NAME}&charset=GBK");
    assert_eq!(user_field(Some(&query), &none, ""), "张三 订单");
    let gb18030 = format!("userField={GBK_NAME}&charset=GB18030");
    assert_eq!(user_field(Some(&gb18030), &none, ""), "张三 订单");
    let body = format!("userField={GBK_NAME}");
    let gb2312 = form("application/x-www-form-urlencoded; charset=gb2312");
    assert_eq!(user_field(None, &gb2312, &body), "张三 订单");
    // The body's Content-Type says nothing about the query string.
    let utf8_query = "userField=%E5%BC%A0%E4%B8%89";
    assert_eq!(user_field(Some(utf8_query), &gb2312, "cno=2000"), "张三");
}

#[test]
fn undeclared_values_are_guessed_once_for_the_whole_request() {
    let none = HeaderMap::new();
    assert_eq!(user_field(Some("userField=%E5%BC%A0%E4%B8%89"), &none, ""), "张三");
    assert_eq!(
        user_field(Some(&format!("userField={GBK_NAME}")), &none, ""),
        "张三 订单"
    );
    // GBK `贸` alone is valid UTF-8 (`ó`); beside a value that is only GBK it is read as GBK.
    let mixed = format!("userField=%C3%B3&name={GBK_NAME}");
    assert_eq!(user_field(Some(&mixed), &none, ""), "贸");
    // Neither: replacement characters, never a refusal.
    assert!(user_field(Some("userField=%FF%FF%FF"), &none, "").contains('\u{FFFD}'));
}

#[test]
fn what_a_declaration_cannot_mean_is_not_applied() {
    let none = HeaderMap::new();
    // UTF-8 declared over GBK bytes: replacement characters rather than a wrong guess.
    let declared_utf8 = format!("userField={GBK_NAME}&charset=UTF-8");
    assert!(user_field(Some(&declared_utf8), &none, "").contains('\u{FFFD}'));
    let unknown = format!("userField={GBK_NAME}&charset=klingon");
    assert_eq!(
        user_field(Some(&unknown), &none, ""),
        "张三 订单",
        "an unknown label is no declaration"
    );
    // A client library's default ISO-8859-1 over percent-encoded UTF-8.
    let latin = form("application/x-www-form-urlencoded; charset=ISO-8859-1");
    assert_eq!(user_field(None, &latin, "userField=%E5%BC%A0%E4%B8%89"), "张三");
    // UTF-16 would turn every parameter into garbage: not a charset parameters come in.
    let utf16 = form("application/x-www-form-urlencoded; charset=UTF-16");
    assert_eq!(user_field(None, &utf16, "userField=abc"), "abc");
    assert_eq!(
        content_type_charset("text/plain; charset=\"GBK\""),
        Some(encoding_rs::GBK)
    );
    assert_eq!(content_type_charset("text/plain"), None);
}

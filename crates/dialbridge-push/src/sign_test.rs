use super::*;

/// The example of the Standard Webhooks specification.
#[test]
fn standard_webhooks_example() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    let body = r#"{"test": 2432232314}"#;
    assert_eq!(
        signature(secret, id, 1614265330, body).as_deref(),
        Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    );
    assert_eq!(signature("whsec_not base64", id, 1, body), None);
}

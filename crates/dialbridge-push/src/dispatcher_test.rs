use super::*;

#[test]
fn the_breaker_opens_after_failures_in_a_row_and_closes_on_success() {
    let mut b = Breaker::default();
    for _ in 0..TRIP_AFTER - 1 {
        b.record(false, 0);
    }
    assert!(b.allows(0), "not yet");
    b.record(false, 1_000);
    assert!(!b.allows(1_000 + COOL_DOWN_MS - 1), "open during the cool-down");
    assert!(b.allows(1_000 + COOL_DOWN_MS), "then one more try");
    b.record(true, 40_000);
    assert_eq!(b, Breaker::default());
}

#[test]
fn backoff_grows_is_capped_and_ends_at_the_horizon() {
    let s = DispatcherSettings {
        first_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        horizon: Duration::from_secs(3600),
        ..DispatcherSettings::default()
    };
    let delay = |attempts| next_attempt(&s, attempts, 0, 1_000).unwrap() - 1_000;
    assert!((800..=1_200).contains(&delay(0)));
    assert!((3_200..=4_800).contains(&delay(2)));
    assert!((48_000..=72_000).contains(&delay(20)), "capped");
    assert_eq!(next_attempt(&s, 3, 0, 3_600_000), None, "past the horizon: dead");
}

#[test]
fn form_pushes_are_encoded_in_the_formats_charset() {
    let params = vec![
        ("userField".to_owned(), "张三 订单".to_owned()),
        ("cno".to_owned(), "2000".to_owned()),
    ];
    assert_eq!(
        form(&params, PushCharset::Utf8),
        "userField=%E5%BC%A0%E4%B8%89+%E8%AE%A2%E5%8D%95&cno=2000"
    );
    assert_eq!(
        form(&params, PushCharset::Gbk),
        "userField=%D5%C5%C8%FD+%B6%A9%B5%A5&cno=2000"
    );
}

use super::*;

#[test]
fn both_caps_hold_and_places_come_back() {
    let caps = Caps {
        total: 3,
        per_source: 2,
    };
    let open = ConnectionCaps::new();
    let a: IpAddr = "127.0.0.2".parse().unwrap();
    let b: IpAddr = "127.0.0.3".parse().unwrap();
    let first = open.take(a, caps).unwrap();
    let second = open.take(a, caps).unwrap();
    assert!(open.take(a, caps).is_none(), "per source");
    let third = open.take(b, caps).unwrap();
    assert!(open.take(b, caps).is_none(), "in all");
    assert_eq!(open.open(), 3);
    drop(first);
    assert!(
        open.take(b, caps).is_some(),
        "a place given back (and given back again at once)"
    );
    drop((second, third));
    assert_eq!(open.open(), 0);
    let many: Vec<_> = (0..2).map(|_| open.take(a, caps).unwrap()).collect();
    assert_eq!(many.len(), 2);
}

#[test]
fn a_throttle_lets_one_through_per_period() {
    let mut throttle = Throttle::new(10_000);
    assert!(throttle.allow(5));
    assert!(!throttle.allow(6));
    assert!(!throttle.allow(10_004));
    assert!(throttle.allow(10_005));
    assert!(
        !throttle.allow(3),
        "a clock read out of order lets nothing more through"
    );
}

#[test]
fn an_accept_loop_skips_one_connections_errors_and_backs_off_on_exhaustion() {
    let mut errors = AcceptBackoff::new(10_000);
    assert_eq!(errors.failed(Some(104), 0), AcceptError::Skip, "ECONNRESET");
    assert_eq!(errors.failed(None, 0), AcceptError::Skip);
    let waits: Vec<_> = (0..8)
        .map(|i| errors.failed(Some(24), i))
        .map(|e| match e {
            AcceptError::BackOff { wait, warn } => (wait.as_millis(), warn),
            AcceptError::Skip => panic!("EMFILE is exhaustion"),
        })
        .collect();
    assert_eq!(
        waits,
        vec![
            (20, true),
            (40, false),
            (80, false),
            (160, false),
            (320, false),
            (640, false),
            (1000, false),
            (1000, false)
        ]
    );
    assert!(!errors.may_warn(100), "one warning per period");
    errors.accepted();
    assert_eq!(
        errors.failed(Some(23), 20_000),
        AcceptError::BackOff {
            wait: Duration::from_millis(20),
            warn: true
        }
    );
}

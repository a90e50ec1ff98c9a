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

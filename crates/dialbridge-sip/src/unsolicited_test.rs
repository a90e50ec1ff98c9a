use super::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

fn limiter(per_second: u32, burst: u32, max_sources: usize) -> SourceLimiter {
    SourceLimiter::new(UnsolicitedSettings {
        per_second,
        burst,
        max_sources,
    })
}

#[test]
fn a_source_gets_its_burst_then_its_rate() {
    let mut l = limiter(10, 20, 100);
    let allowed = (0..100).filter(|_| l.allow(ip(1), 1_000)).count();
    assert_eq!(allowed, 20, "the burst, all at once");
    assert!(!l.allow(ip(1), 1_050), "half a token refilled is not a token");
    assert!(l.allow(ip(1), 1_100), "one token after 100 ms at 10/s");
    assert!(!l.allow(ip(1), 1_100));
    // A second later: ten more, no more.
    let allowed = (0..100).filter(|_| l.allow(ip(1), 2_100)).count();
    assert_eq!(allowed, 10);
}

#[test]
fn sources_are_limited_apart() {
    let mut l = limiter(1, 2, 100);
    assert!(l.allow(ip(1), 0) && l.allow(ip(1), 0));
    assert!(!l.allow(ip(1), 0));
    assert!(l.allow(ip(2), 0), "another source has its own bucket");
}

#[test]
fn the_table_is_bounded_and_refilled_sources_are_forgotten() {
    let mut l = limiter(10, 2, 3);
    for last in 1..=3 {
        assert!(l.allow(ip(last), 0));
    }
    assert!(!l.allow(ip(4), 0), "full table: an unknown source is dropped");
    assert_eq!(l.sources(), 3);
    // 100 ms later every bucket has refilled: they are swept to make room.
    assert!(l.allow(ip(4), 100));
    assert_eq!(l.sources(), 1);
    l.sweep(10_000);
    assert_eq!(l.sources(), 0);
}

#[test]
fn a_clock_going_backwards_refills_nothing() {
    let mut l = limiter(10, 1, 10);
    assert!(l.allow(ip(1), 5_000));
    assert!(!l.allow(ip(1), 4_000));
}

use super::*;

#[test]
fn keepalive_moves_between_every_pair_of_healths_on_the_right_replies() {
    let replies = [
        (CarrierReply::Answered(200), Health::Up),
        (CarrierReply::Answered(404), Health::Up),
        (CarrierReply::Answered(405), Health::Up),
        (CarrierReply::Answered(486), Health::Up),
        (CarrierReply::Answered(408), Health::Down),
        (CarrierReply::Answered(503), Health::Down),
        (CarrierReply::NoAnswer, Health::Down),
    ];
    for start in [None, Some(CarrierReply::Answered(200)), Some(CarrierReply::NoAnswer)] {
        for (reply, expected) in replies {
            let mut k = Keepalive::new();
            if let Some(first) = start {
                k.record(first);
            }
            let before = k.health();
            let changed = k.record(reply);
            assert_eq!(k.health(), expected, "{start:?} then {reply:?}");
            assert_eq!(
                changed,
                (before != expected).then_some(expected),
                "{start:?} then {reply:?}"
            );
            assert_eq!(k.usable(), expected != Health::Down);
        }
    }
    assert!(Keepalive::new().usable(), "an unprobed trunk is tried");
}

#[test]
fn a_registration_is_refreshed_at_half_its_granted_time_but_not_too_often() {
    let mut r = TrunkRegistration::new(600);
    assert!(!r.is_registered());
    assert_eq!(r.requested_secs(), 600);
    assert_eq!(
        r.record(RegisterOutcome::Registered { granted_secs: 300 }),
        Duration::from_secs(150)
    );
    assert!(r.is_registered());
    assert_eq!(r.record(RegisterOutcome::Registered { granted_secs: 1 }), REFRESH_MIN);
    assert_eq!(r.record(RegisterOutcome::Registered { granted_secs: 0 }), REFRESH_MIN);
}

#[test]
fn failures_back_off_exponentially_up_to_the_cap_and_a_success_resets_them() {
    for failure in [RegisterOutcome::NoAnswer, RegisterOutcome::Refused(403)] {
        let mut r = TrunkRegistration::new(60);
        r.record(RegisterOutcome::Registered { granted_secs: 60 });
        let waits: Vec<u64> = (0..9).map(|_| r.record(failure).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60], "{failure:?}");
        assert!(!r.is_registered());
        assert_eq!(r.consecutive_failures(), 9);
        r.record(RegisterOutcome::Registered { granted_secs: 60 });
        assert_eq!((r.is_registered(), r.consecutive_failures()), (true, 0));
        assert_eq!(r.record(failure), RETRY_FIRST, "the backoff starts over");
    }
    let mut r = TrunkRegistration::new(60);
    for _ in 0..100 {
        r.record(RegisterOutcome::NoAnswer);
    }
    assert_eq!(r.record(RegisterOutcome::NoAnswer), RETRY_CAP, "no overflow");
}

#[test]
fn interval_too_brief_asks_again_at_once_for_longer() {
    let mut r = TrunkRegistration::new(60);
    assert_eq!(
        r.record(RegisterOutcome::IntervalTooBrief { min_expires: Some(120) }),
        Duration::ZERO
    );
    assert_eq!(r.requested_secs(), 120);
    // Without Min-Expires (or with one no longer than ours) the interval doubles.
    assert_eq!(
        r.record(RegisterOutcome::IntervalTooBrief { min_expires: None }),
        Duration::ZERO
    );
    assert_eq!(r.requested_secs(), 240);
    r.record(RegisterOutcome::IntervalTooBrief { min_expires: Some(10) });
    assert_eq!(r.requested_secs(), 480);
    assert_eq!(r.consecutive_failures(), 0);
    // At the longest we would ask for, a further 423 is a failure like any other.
    let mut r = TrunkRegistration::new(EXPIRES_CAP);
    assert_eq!(
        r.record(RegisterOutcome::IntervalTooBrief { min_expires: None }),
        RETRY_FIRST
    );
    assert_eq!(r.consecutive_failures(), 1);
    assert_eq!(TrunkRegistration::new(0).requested_secs(), 1);
}

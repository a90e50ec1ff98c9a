use super::*;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

fn asked(seconds: u64, refresher: Option<Refresher>) -> Option<SessionExpires> {
    Some(SessionExpires { seconds, refresher })
}

#[test]
fn we_refresh_at_half_the_interval_and_go_on_from_each_refresh() {
    // 200 OK: Session-Expires: 4;refresher=uac (we are its client).
    let mut timer = LegSessionTimer::answered(SessionTimer::of_answer("4;refresher=uac"), secs(10));
    assert!(timer.we_refresh());
    assert_eq!(timer.next_deadline(), Some(secs(12)));
    assert_eq!(timer.on_deadline(ms(11_999)), None, "nothing before the deadline");
    assert_eq!(timer.on_deadline(secs(12)), Some(SessionDue::Refresh));
    assert_eq!(timer.next_deadline(), Some(secs(14)));
    // A late wake-up: the next refresh counts from when this one went.
    assert_eq!(timer.on_deadline(ms(14_500)), Some(SessionDue::Refresh));
    assert_eq!(timer.next_deadline(), Some(ms(16_500)));
}

#[test]
fn the_far_end_refreshes_and_a_session_it_lets_lapse_expires_once() {
    // Session-Expires: 90;refresher=uas: the far end refreshes; it has 90 - 30 = 60 s.
    let mut timer = LegSessionTimer::answered(SessionTimer::of_answer("90;refresher=uas"), secs(0));
    assert!(!timer.we_refresh());
    assert_eq!(timer.next_deadline(), Some(secs(60)));
    // Its refresh at 50 s (naming itself) extends the session from then.
    assert!(!timer.far_end_request(asked(90, Some(Refresher::Uac)), secs(50)));
    assert_eq!(timer.next_deadline(), Some(secs(110)));
    assert_eq!(timer.on_deadline(secs(109)), None);
    assert_eq!(timer.on_deadline(secs(110)), Some(SessionDue::Expired));
    assert_eq!(timer.next_deadline(), None, "expired once, then off");
    assert_eq!(timer.on_deadline(secs(500)), None);
}

#[test]
fn a_long_interval_leaves_at_most_32_seconds_of_grace() {
    let timer = LegSessionTimer::answered(SessionTimer::of_answer("1800;refresher=uas"), secs(0));
    assert_eq!(timer.next_deadline(), Some(secs(1800 - 32)));
}

#[test]
fn the_far_end_hands_the_refreshing_over_and_takes_it_back() {
    let mut timer = LegSessionTimer::answered(SessionTimer::of_answer("90;refresher=uas"), secs(0));
    // Its re-INVITE names us (refresher=uas: we are that request's server): our 200 says so and
    // we refresh from now on, at half the new interval.
    assert!(timer.far_end_request(asked(20, Some(Refresher::Uas)), secs(30)));
    assert!(timer.we_refresh());
    assert_eq!(timer.next_deadline(), Some(secs(40)));
    // Naming no one while we refresh: we keep refreshing, at its interval.
    assert!(timer.far_end_request(asked(30, None), secs(35)));
    assert_eq!(timer.next_deadline(), Some(secs(50)));
    // Naming itself: it refreshes again, and we watch.
    assert!(!timer.far_end_request(asked(30, Some(Refresher::Uac)), secs(36)));
    assert!(!timer.we_refresh());
    assert_eq!(timer.next_deadline(), Some(secs(36 + 20)));
}

#[test]
fn a_request_without_an_interval_stops_the_far_ends_timer_but_not_ours() {
    let mut watching = LegSessionTimer::answered(SessionTimer::of_answer("90;refresher=uas"), secs(0));
    assert!(!watching.far_end_request(None, secs(10)));
    assert_eq!(watching.next_deadline(), None);

    let mut refreshing = LegSessionTimer::answered(SessionTimer::of_answer("90;refresher=uac"), secs(0));
    assert!(!refreshing.far_end_request(None, secs(10)));
    assert_eq!(refreshing.next_deadline(), Some(secs(45)), "our refreshes go on");
}

#[test]
fn an_answer_without_a_timer_or_a_refresher_leaves_it_off_and_a_stopped_timer_is_off() {
    for answer in [None, SessionTimer::of_answer("90")] {
        let mut timer = LegSessionTimer::answered(answer, secs(0));
        assert_eq!(timer.next_deadline(), None);
        assert_eq!(timer.on_deadline(secs(1_000)), None);
    }
    let mut timer = LegSessionTimer::answered(SessionTimer::of_answer("90;refresher=uac"), secs(0));
    timer.stop();
    assert_eq!((timer.next_deadline(), timer.we_refresh()), (None, false));
}

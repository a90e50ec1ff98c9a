use super::*;

fn online() -> AgentState {
    AgentState::offline().log_in(Availability::Online, 0).unwrap()
}

fn paused(reason: &str) -> AgentState {
    AgentState::offline()
        .log_in(Availability::Pause(reason.into()), 0)
        .unwrap()
}

#[test]
fn a_call_the_agent_answered_ends_in_wrapup_then_online() {
    let s = online();
    assert_eq!((s.login, s.device(true)), (LoginStatus::Online, DeviceStatus::Idle));
    let s = s.start_call("u1", 1_000).unwrap();
    assert_eq!(
        (s.login, s.pause_description.as_deref(), s.device(true)),
        (LoginStatus::Pause, Some(PAUSE_OUT_CALLING), DeviceStatus::Ringing)
    );
    let s = s.call_connected("u1");
    assert_eq!(s.device(true), DeviceStatus::Busy);
    let s = s.end_call("u1", true, 10, 5_000);
    assert_eq!(
        (s.login, s.pause_description.as_deref(), s.device(true)),
        (LoginStatus::Pause, Some(PAUSE_WRAPUP), DeviceStatus::Idle)
    );
    assert_eq!(s.wrapup_seconds_left(5_000), 10);
    assert_eq!(s.wrapup_seconds_left(14_500), 1);
    assert!(s.may_call(6_000).is_ok(), "wrap-up allows the next call");
    let later = s.clone().at(15_000);
    assert_eq!(
        (later.login, later.pause_description, later.wrapup_until),
        (LoginStatus::Online, None, None)
    );
    assert_eq!(s.clone().at(14_999).login, LoginStatus::Pause);
}

#[test]
fn unanswered_calls_and_zero_wrapup_return_at_once() {
    let s = online().start_call("u1", 0).unwrap().end_call("u1", false, 10, 1_000);
    assert_eq!((s.login, s.wrapup_until), (LoginStatus::Online, None));
    let s = online()
        .start_call("u1", 0)
        .unwrap()
        .call_connected("u1")
        .end_call("u1", true, 0, 1_000);
    assert_eq!(s.login, LoginStatus::Online);
}

#[test]
fn a_manual_pause_is_kept_during_the_call_and_returned_to() {
    let s = paused("lunch").start_call("u1", 0).unwrap();
    assert_eq!(
        s.pause_description.as_deref(),
        Some("lunch"),
        "the call does not change a manual pause"
    );
    let s = s.call_connected("u1").end_call("u1", true, 5, 1_000);
    assert_eq!(s.pause_description.as_deref(), Some(PAUSE_WRAPUP));
    let s = s.at(6_000);
    assert_eq!(
        (s.login, s.pause_description.as_deref()),
        (LoginStatus::Pause, Some("lunch"))
    );
}

#[test]
fn the_outbound_lock() {
    let s = online().start_call("u1", 0).unwrap();
    assert_eq!(s.start_call("u2", 1), Err(AgentRefusal::AlreadyCalling));
    let s = s.call_connected("u1");
    assert_eq!(s.start_call("u2", 1), Err(AgentRefusal::InCall));
    assert_eq!(AgentState::offline().start_call("u1", 0), Err(AgentRefusal::Offline));
    // Ending another call than the agent's changes nothing.
    assert_eq!(s.end_call("other", true, 10, 5), s);
    assert_eq!(s.call_connected("other"), s);
}

#[test]
fn status_changes_during_a_call_apply_when_it_ends() {
    let s = online().start_call("u1", 0).unwrap().call_connected("u1");
    let s = s.change_status(Availability::Pause("meeting".into()), 1).unwrap();
    assert_eq!(
        s.pause_description.as_deref(),
        Some(PAUSE_OUT_CALLING),
        "not during the call"
    );
    let s = s.end_call("u1", true, 10, 2_000).at(20_000);
    assert_eq!(
        (s.login, s.pause_description.as_deref()),
        (LoginStatus::Pause, Some("meeting"))
    );
    // And ChangeStatus during wrap-up ends it.
    let s = online()
        .start_call("u1", 0)
        .unwrap()
        .call_connected("u1")
        .end_call("u1", true, 60, 1_000);
    let s = s.change_status(Availability::Online, 2_000).unwrap();
    assert_eq!((s.login, s.wrapup_until), (LoginStatus::Online, None));
}

#[test]
fn login_rules() {
    assert_eq!(
        online().log_in(Availability::Online, 1),
        Err(AgentRefusal::AlreadyOnline)
    );
    assert_eq!(
        AgentState::offline().change_status(Availability::Online, 1),
        Err(AgentRefusal::Offline)
    );
    let calling = online().start_call("u1", 0).unwrap();
    assert_eq!(calling.log_out(1), Err(AgentRefusal::InCall));
    assert_eq!(online().log_out(1), Ok(AgentState::offline()));
    assert_eq!(paused("x").device(false), DeviceStatus::Unavailable);
}

#[test]
fn a_running_wrap_up_can_be_prolonged_up_to_an_hour() {
    let online = AgentState::offline().log_in(Availability::Online, 0).unwrap();
    let calling = online.start_call("n-1.1", 0).unwrap().call_connected("n-1.1");
    let wrapping = calling.end_call("n-1.1", true, 10, 1_000);
    assert_eq!(wrapping.wrapup_seconds_left(1_000), 10);
    let longer = wrapping.prolong_wrapup(30, 5_000).unwrap();
    assert_eq!(longer.wrapup_seconds_left(5_000), 36);
    let capped = longer.prolong_wrapup(100_000, 5_000).unwrap();
    assert_eq!(capped.wrapup_seconds_left(5_000), 3_600);
    assert_eq!(wrapping.prolong_wrapup(30, 11_000), None, "its wrap-up is over");
    assert_eq!(online.prolong_wrapup(30, 0), None, "no wrap-up");
}

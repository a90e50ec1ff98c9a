//! Transcripts of calls: each test feeds events and checks the exact effects, so a change in
//! the call's behaviour shows as a changed transcript. The last test explores every reachable
//! state and checks the invariants that must hold whatever the order of events.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use super::*;

use CallEvent::*;
use Effect::*;

const TIMERS: CallTimers = CallTimers {
    agent_no_response: Duration::from_secs(4),
    agent_ring: Duration::from_secs(30),
    customer_no_response: Duration::from_secs(8),
    customer_ring: Duration::from_secs(60),
    max_duration: None,
    paid_minutes: None,
};

fn start() -> CallMachine {
    let (machine, fx) = CallMachine::start(TIMERS, 1_000);
    assert_eq!(fx, vec![InviteAgent]);
    assert_eq!(machine.deadline(Timer::AgentNoResponse), Some(5_000));
    assert_eq!(machine.deadline(Timer::AgentRing), Some(31_000));
    machine
}

/// `timer` is the machine's next deadline, due at `at`: nothing happens a moment before, and
/// its effects at `at`.
fn fire(m: &mut CallMachine, timer: Timer, at: Millis) -> Vec<Effect> {
    assert_eq!(m.deadline(timer), Some(at), "{timer:?} due at {at}: {m:?}");
    assert_eq!(m.next_deadline(), Some(at), "{timer:?} is due first: {m:?}");
    assert!(m.on_deadline(at - 1).is_empty(), "nothing before its deadline");
    let fx = m.on_deadline(at);
    assert!(
        m.deadline(timer).is_none_or(|again| again > at),
        "{timer:?} fired, and runs again only for a new attempt"
    );
    fx
}

fn outcome(reason: EndReason, side: Side, phase: Phase, sip_code: Option<u16>) -> Effect {
    Finished(Outcome {
        reason,
        side,
        phase,
        sip_code,
    })
}

/// Feeds `steps` in order at times 2000, 3000, ... and checks each step's effects.
fn transcript(machine: &mut CallMachine, steps: Vec<(CallEvent, Vec<Effect>)>) {
    for (i, (event, expected)) in steps.into_iter().enumerate() {
        let now = 2_000 + 1_000 * i as i64;
        let got = machine.apply(event.clone(), now);
        assert_eq!(got, expected, "step {i}: {event:?}");
    }
}

/// The machine after the agent answered (customer being dialled).
fn agent_answered() -> CallMachine {
    let mut m = start();
    transcript(
        &mut m,
        vec![
            (
                Provisional {
                    leg: Leg::Agent,
                    early_media: false,
                },
                vec![Emit(Progress::AgentRinging)],
            ),
            (
                Answered { leg: Leg::Agent },
                vec![Emit(Progress::AgentAnswered), InviteCustomer],
            ),
        ],
    );
    m
}

fn customer_ringing() -> CallMachine {
    let mut m = agent_answered();
    transcript(
        &mut m,
        vec![(
            Provisional {
                leg: Leg::Customer,
                early_media: false,
            },
            vec![Emit(Progress::CustomerRinging), PlayRingback],
        )],
    );
    m
}

fn bridged() -> CallMachine {
    let mut m = customer_ringing();
    transcript(
        &mut m,
        vec![(
            Answered { leg: Leg::Customer },
            vec![Bridge, Emit(Progress::CustomerAnswered)],
        )],
    );
    m
}

#[test]
fn bridged_call_ended_by_the_agent() {
    let mut m = bridged();
    transcript(
        &mut m,
        vec![(
            HungUp { leg: Leg::Agent },
            vec![
                Bye(Leg::Customer),
                outcome(EndReason::AgentHungUp, Side::Agent, Phase::Bridged, Some(200)),
            ],
        )],
    );
    let r = m.record();
    assert_eq!(r.started_at, 1_000);
    assert_eq!(r.agent_ringing_at, Some(2_000));
    assert_eq!(r.agent_answered_at, Some(3_000));
    assert_eq!(r.customer_invited_at, Some(3_000));
    assert_eq!(
        r.customer_ringing_at,
        Some(2_000),
        "the customer helper's own clock restarts at 2000"
    );
    assert_eq!(r.bridged_at, Some(2_000));
    assert_eq!(r.ended_at, Some(2_000));
    assert_eq!((r.agent_final_code, r.customer_final_code), (Some(200), Some(200)));
}

#[test]
fn bridged_call_ended_by_the_customer() {
    let mut m = bridged();
    transcript(
        &mut m,
        vec![(
            HungUp { leg: Leg::Customer },
            vec![
                Bye(Leg::Agent),
                outcome(EndReason::CustomerHungUp, Side::Customer, Phase::Bridged, Some(200)),
            ],
        )],
    );
}

#[test]
fn agent_endings_never_call_the_customer() {
    for (code, reason) in [
        (486, EndReason::AgentBusy),
        (600, EndReason::AgentBusy),
        (603, EndReason::AgentDeclined),
        (480, EndReason::AgentUnreachable),
        (404, EndReason::AgentUnreachable),
        (0, EndReason::AgentUnreachable),
        (500, EndReason::AgentFailed),
    ] {
        let mut m = start();
        transcript(
            &mut m,
            vec![
                (
                    Provisional {
                        leg: Leg::Agent,
                        early_media: false,
                    },
                    vec![Emit(Progress::AgentRinging)],
                ),
                (
                    Failed { leg: Leg::Agent, code },
                    vec![outcome(reason, Side::Agent, Phase::AgentLeg, Some(code))],
                ),
            ],
        );
        assert_eq!(m.record().agent_final_code, Some(code));
    }
}

#[test]
fn agent_busy_without_any_provisional() {
    let mut m = start();
    transcript(
        &mut m,
        vec![(
            Failed {
                leg: Leg::Agent,
                code: 486,
            },
            vec![outcome(EndReason::AgentBusy, Side::Agent, Phase::AgentLeg, Some(486))],
        )],
    );
}

#[test]
fn agent_no_answer_is_cancelled_at_the_ring_timeout() {
    let mut m = start();
    transcript(
        &mut m,
        vec![(
            Provisional {
                leg: Leg::Agent,
                early_media: false,
            },
            vec![Emit(Progress::AgentRinging)],
        )],
    );
    assert_eq!(m.deadline(Timer::AgentNoResponse), None, "it answered");
    assert_eq!(
        fire(&mut m, Timer::AgentRing, 31_000),
        vec![
            Cancel(Leg::Agent),
            outcome(EndReason::AgentNoAnswer, Side::Platform, Phase::AgentLeg, None),
        ]
    );
    assert_eq!(m.next_deadline(), None);
    // The phone's 487 to our CANCEL changes nothing.
    assert_eq!(
        m.apply(
            Failed {
                leg: Leg::Agent,
                code: 487
            },
            31_001
        ),
        vec![]
    );
}

#[test]
fn a_phone_that_never_answers_at_all_is_unreachable() {
    let mut m = start();
    assert_eq!(
        fire(&mut m, Timer::AgentNoResponse, 5_000),
        vec![
            Cancel(Leg::Agent),
            outcome(EndReason::AgentUnreachable, Side::Platform, Phase::AgentLeg, None),
        ]
    );
    assert_eq!(m.next_deadline(), None, "the ring timer went with the call");
}

#[test]
fn an_unregistered_agent_is_never_invited_further() {
    let mut m = start();
    transcript(
        &mut m,
        vec![(
            AgentUnroutable,
            vec![outcome(
                EndReason::AgentNotRegistered,
                Side::Platform,
                Phase::AgentLeg,
                None,
            )],
        )],
    );
}

#[test]
fn customer_failures_hang_up_the_agent() {
    for (code, reason) in [
        (486, EndReason::CustomerBusy),
        (603, EndReason::CustomerDeclined),
        (480, EndReason::CustomerUnreachable),
        (404, EndReason::CustomerUnreachable),
        (503, EndReason::CustomerFailed),
        (403, EndReason::CustomerFailed),
    ] {
        let mut m = customer_ringing();
        transcript(
            &mut m,
            vec![(
                Failed {
                    leg: Leg::Customer,
                    code,
                },
                vec![
                    Bye(Leg::Agent),
                    outcome(reason, Side::Customer, Phase::CustomerLeg, Some(code)),
                ],
            )],
        );
        assert_eq!(m.record().customer_final_code, Some(code));
    }
}

#[test]
fn customer_no_answer_cancels_the_customer_and_hangs_up_the_agent() {
    let mut m = customer_ringing();
    // The agent answered at 3000: 60 s of ringing.
    assert_eq!(
        fire(&mut m, Timer::CustomerRing, 63_000),
        vec![
            Cancel(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::CustomerNoAnswer, Side::Platform, Phase::CustomerLeg, None),
        ]
    );
}

#[test]
fn a_silent_carrier_is_unreachable() {
    let mut m = agent_answered();
    assert_eq!(m.deadline(Timer::CustomerRing), Some(63_000));
    assert_eq!(
        fire(&mut m, Timer::CustomerNoResponse, 11_000),
        vec![
            Cancel(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::CustomerUnreachable, Side::Platform, Phase::CustomerLeg, None),
        ]
    );
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn agent_hangs_up_while_the_customer_rings() {
    let mut m = customer_ringing();
    transcript(
        &mut m,
        vec![(
            HungUp { leg: Leg::Agent },
            vec![
                Cancel(Leg::Customer),
                outcome(EndReason::AgentHungUp, Side::Agent, Phase::CustomerLeg, None),
            ],
        )],
    );
}

#[test]
fn cancel_crossing_a_200_is_answered_with_bye() {
    let mut m = customer_ringing();
    m.apply(HungUp { leg: Leg::Agent }, 5_000);
    assert_eq!(
        m.apply(Answered { leg: Leg::Customer }, 5_001),
        vec![Bye(Leg::Customer)]
    );
    assert_eq!(
        m.record().bridged_at,
        None,
        "a call answered after it ended was never bridged"
    );
    assert_eq!(
        m.apply(Answered { leg: Leg::Customer }, 5_002),
        vec![Bye(Leg::Customer)]
    );
}

#[test]
fn agent_200_after_our_cancel_is_answered_with_bye() {
    let mut m = start();
    assert_eq!(m.on_deadline(5_000)[0], Cancel(Leg::Agent));
    assert_eq!(m.apply(Answered { leg: Leg::Agent }, 5_001), vec![Bye(Leg::Agent)]);
}

#[test]
fn bye_crossing_the_customers_200() {
    // The agent's BYE arrives just before the customer's 200: the customer is cancelled, then
    // its 200 is hung up; the outcome stays "agent hung up while the customer rang".
    let mut m = customer_ringing();
    m.apply(HungUp { leg: Leg::Agent }, 5_000);
    m.apply(Answered { leg: Leg::Customer }, 5_001);
    let outcome = m.outcome().unwrap();
    assert_eq!(
        (outcome.reason, outcome.phase),
        (EndReason::AgentHungUp, Phase::CustomerLeg)
    );
    // And a BYE from each side crossing each other after the bridge: the first one decides.
    let mut m = bridged();
    let fx = m.apply(HungUp { leg: Leg::Customer }, 6_000);
    assert_eq!(fx[0], Bye(Leg::Agent));
    assert_eq!(m.apply(HungUp { leg: Leg::Agent }, 6_001), vec![]);
    assert_eq!(m.outcome().unwrap().reason, EndReason::CustomerHungUp);
}

#[test]
fn hang_up_requested_in_every_phase() {
    let request = HangUpRequested {
        cause: PlatformCause::Api,
    };
    let mut m = start();
    assert_eq!(
        m.apply(request.clone(), 5_000),
        vec![
            Cancel(Leg::Agent),
            outcome(EndReason::HangUpRequested, Side::Platform, Phase::AgentLeg, None),
        ]
    );
    let mut m = agent_answered();
    assert_eq!(
        m.apply(request.clone(), 5_000),
        vec![
            Cancel(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::HangUpRequested, Side::Platform, Phase::CustomerLeg, None),
        ]
    );
    let mut m = bridged();
    assert_eq!(
        m.apply(request.clone(), 5_000),
        vec![
            Bye(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::HangUpRequested, Side::Platform, Phase::Bridged, Some(200)),
        ]
    );
    assert_eq!(m.apply(request, 5_001), vec![], "a second request is moot");
    let mut m = bridged();
    let fx = m.apply(
        HangUpRequested {
            cause: PlatformCause::Shutdown,
        },
        5_000,
    );
    assert_eq!(
        fx.last(),
        Some(&outcome(EndReason::Shutdown, Side::Platform, Phase::Bridged, Some(200)))
    );
}

#[test]
fn hold_only_a_bridged_call_and_only_when_it_changes_something() {
    let hold = HoldRequested { on_hold: true };
    let resume = HoldRequested { on_hold: false };
    let mut m = agent_answered();
    assert_eq!(m.apply(hold.clone(), 5_000), vec![], "the customer is not there yet");
    assert!(!m.is_on_hold());
    let mut m = bridged();
    assert_eq!(m.apply(resume.clone(), 5_000), vec![], "not on hold");
    assert_eq!(m.apply(hold.clone(), 5_000), vec![PutOnHold, Emit(Progress::OnHold)]);
    assert!(m.is_on_hold());
    assert_eq!(m.apply(hold.clone(), 5_500), vec![], "already on hold");
    assert_eq!(m.apply(resume.clone(), 6_000), vec![Bridge, Emit(Progress::Resumed)]);
    assert!(!m.is_on_hold());
    m.apply(hold, 7_000);
    let fx = m.apply(HungUp { leg: Leg::Customer }, 8_000);
    assert_eq!(
        fx.last(),
        Some(&outcome(
            EndReason::CustomerHungUp,
            Side::Customer,
            Phase::Bridged,
            Some(200)
        )),
        "a call on hold ends like any other"
    );
    assert!(!m.is_on_hold());
    assert_eq!(m.apply(resume, 8_001), vec![], "nothing to resume once it ended");
}

/// A call whose agent answered, with `fallbacks` further routes for the customer.
fn customer_invited(fallbacks: u32) -> CallMachine {
    let (m, _) = CallMachine::start(TIMERS, 0);
    let mut m = m.with_customer_fallbacks(fallbacks);
    m.apply(Answered { leg: Leg::Agent }, 1);
    m
}

#[test]
fn a_route_that_fails_or_never_answers_gives_way_to_the_next() {
    let retry = vec![InviteCustomer];
    // 503, then no response at all, then the third route answers.
    let mut m = customer_invited(2);
    assert_eq!(
        m.apply(
            Failed {
                leg: Leg::Customer,
                code: 503
            },
            2
        ),
        retry
    );
    // The next route has its own time to answer, from its INVITE at 2.
    let mut cancel_then_retry = vec![Cancel(Leg::Customer)];
    cancel_then_retry.extend(retry.clone());
    assert_eq!(fire(&mut m, Timer::CustomerNoResponse, 8_002), cancel_then_retry);
    assert_eq!(m.deadline(Timer::CustomerNoResponse), Some(16_002));
    assert_eq!(
        m.deadline(Timer::CustomerRing),
        Some(60_001),
        "one ring timeout for all routes"
    );
    let fx = m.apply(Answered { leg: Leg::Customer }, 8_003);
    assert!(fx.contains(&Bridge), "{fx:?}");
    assert_eq!(m.phase(), Phase::Bridged);

    // A route that rang, then failed: back to our ringback while the next one is tried.
    let mut m = customer_invited(1);
    m.apply(
        Provisional {
            leg: Leg::Customer,
            early_media: true,
        },
        2,
    );
    assert_eq!(
        m.apply(
            Failed {
                leg: Leg::Customer,
                code: 408
            },
            3
        ),
        vec![PlayRingback, InviteCustomer,]
    );

    // No route left: the last failure ends the call as before.
    let mut m = customer_invited(1);
    m.apply(
        Failed {
            leg: Leg::Customer,
            code: 0,
        },
        2,
    );
    let fx = m.apply(
        Failed {
            leg: Leg::Customer,
            code: 503,
        },
        3,
    );
    assert_eq!(
        fx.last(),
        Some(&outcome(
            EndReason::CustomerFailed,
            Side::Customer,
            Phase::CustomerLeg,
            Some(503)
        ))
    );
}

#[test]
fn the_customers_own_answers_never_fail_over() {
    for (code, reason) in [
        (486, EndReason::CustomerBusy),
        (603, EndReason::CustomerDeclined),
        (404, EndReason::CustomerUnreachable),
    ] {
        let mut m = customer_invited(3);
        let fx = m.apply(
            Failed {
                leg: Leg::Customer,
                code,
            },
            2,
        );
        assert!(!fx.contains(&InviteCustomer), "{code}: {fx:?}");
        assert_eq!(
            fx.last(),
            Some(&outcome(reason, Side::Customer, Phase::CustomerLeg, Some(code)))
        );
    }
    // Ringing too long is the customer not picking up: no other route.
    let mut m = customer_invited(3);
    m.apply(
        Provisional {
            leg: Leg::Customer,
            early_media: false,
        },
        2,
    );
    let fx = fire(&mut m, Timer::CustomerRing, 60_001);
    assert_eq!(
        fx.last(),
        Some(&outcome(
            EndReason::CustomerNoAnswer,
            Side::Platform,
            Phase::CustomerLeg,
            None
        ))
    );
}

#[test]
fn a_refused_session_refresh_ends_the_call_on_both_legs() {
    let mut m = bridged();
    assert_eq!(
        m.apply(
            SessionRefreshFailed {
                leg: Leg::Customer,
                code: 481
            },
            9_000
        ),
        vec![
            Bye(Leg::Customer),
            Bye(Leg::Agent),
            outcome(
                EndReason::SessionRefreshFailed,
                Side::Platform,
                Phase::Bridged,
                Some(481)
            ),
        ]
    );
    // While the customer still rings, the agent's leg failing its refresh ends the attempt.
    let (mut m, _) = CallMachine::start(TIMERS, 0);
    m.apply(Answered { leg: Leg::Agent }, 1);
    let fx = m.apply(
        SessionRefreshFailed {
            leg: Leg::Agent,
            code: 408,
        },
        2,
    );
    assert_eq!(
        fx.last(),
        Some(&outcome(
            EndReason::SessionRefreshFailed,
            Side::Platform,
            Phase::CustomerLeg,
            Some(408)
        ))
    );
    // A leg that never answered has no session to refresh.
    let (mut m, _) = CallMachine::start(TIMERS, 0);
    assert_eq!(
        m.apply(
            SessionRefreshFailed {
                leg: Leg::Customer,
                code: 481
            },
            1
        ),
        vec![]
    );
}

#[test]
fn rtp_inactivity_and_maximum_duration_end_a_bridged_call() {
    let mut m = bridged();
    assert_eq!(
        m.apply(MediaTimeout { leg: Leg::Customer }, 9_000),
        vec![
            Bye(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::MediaTimeout, Side::Platform, Phase::Bridged, None),
        ]
    );

    let timers = CallTimers {
        max_duration: Some(Duration::from_secs(120)),
        ..TIMERS
    };
    let (mut m, _) = CallMachine::start(timers, 0);
    m.apply(Answered { leg: Leg::Agent }, 1);
    m.apply(Answered { leg: Leg::Customer }, 2);
    assert_eq!(m.next_deadline(), Some(120_002), "only the maximum duration runs");
    assert_eq!(
        fire(&mut m, Timer::MaxDuration, 120_002),
        vec![
            Bye(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::MaxDuration, Side::Platform, Phase::Bridged, None),
        ]
    );
}

/// A call whose hold pays one minute: it asks for another 15 s before the minute is up, again
/// every 5 s while no answer comes, runs on for each minute granted, and is cut when the paid
/// time runs out.
#[test]
fn a_bridged_call_lives_as_long_as_its_credit() {
    let timers = CallTimers {
        paid_minutes: Some(1),
        max_duration: Some(Duration::from_secs(3600)),
        ..TIMERS
    };
    let (mut m, _) = CallMachine::start(timers, 0);
    m.apply(Answered { leg: Leg::Agent }, 1_000);
    assert_eq!(m.deadline(Timer::PaidTime), None, "nothing is paid before the bridge");
    m.apply(Answered { leg: Leg::Customer }, 10_000);
    assert_eq!(m.deadline(Timer::PaidTime), Some(70_000));
    assert_eq!(
        fire(&mut m, Timer::CreditRenewal, 55_000),
        vec![RenewCredit { paid_minutes: 1 }]
    );
    // Granted: the call runs to the end of its second minute, and renews before it.
    m.credit_renewed(2, 56_000);
    assert_eq!(m.deadline(Timer::PaidTime), Some(130_000));
    // A late duplicate answer changes nothing.
    m.credit_renewed(2, 57_000);
    m.credit_renewed(1, 57_000);
    assert_eq!(m.deadline(Timer::PaidTime), Some(130_000));
    assert_eq!(
        fire(&mut m, Timer::CreditRenewal, 115_000),
        vec![RenewCredit { paid_minutes: 2 }]
    );
    // Refused (no answer): asked again every 5 s while time is left.
    assert_eq!(
        fire(&mut m, Timer::CreditRenewal, 120_000),
        vec![RenewCredit { paid_minutes: 2 }]
    );
    assert_eq!(
        fire(&mut m, Timer::CreditRenewal, 125_000),
        vec![RenewCredit { paid_minutes: 2 }]
    );
    assert_eq!(m.deadline(Timer::CreditRenewal), None, "no retry at the very end");
    assert_eq!(
        fire(&mut m, Timer::PaidTime, 130_000),
        vec![
            Bye(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::BalanceExhausted, Side::Platform, Phase::Bridged, None),
        ]
    );
    assert_eq!(m.record().bridged_at, Some(10_000));
    assert_eq!(m.record().ended_at, Some(130_000));
    // News after the end changes nothing.
    m.credit_renewed(3, 131_000);
    assert_eq!(m.next_deadline(), None);
}

/// A loaded host notices the end of the paid time late: the call still ends at that moment, so
/// its charge starts no minute it did not pay.
#[test]
fn a_paid_time_noticed_late_ends_the_call_at_its_moment() {
    let timers = CallTimers {
        paid_minutes: Some(1),
        ..TIMERS
    };
    let (mut m, _) = CallMachine::start(timers, 0);
    m.apply(Answered { leg: Leg::Agent }, 1_000);
    m.apply(Answered { leg: Leg::Customer }, 10_000);
    assert_eq!(m.on_deadline(55_000), vec![RenewCredit { paid_minutes: 1 }]);
    // The retry due at 60 s is noticed only after the paid time: no minute is asked for then.
    assert_eq!(
        m.on_deadline(70_250),
        vec![
            Bye(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::BalanceExhausted, Side::Platform, Phase::Bridged, None),
        ]
    );
    assert_eq!(m.record().ended_at, Some(70_000));
}

/// The configured cap ends the call before another minute would be used: no credit is asked
/// for that minute.
#[test]
fn no_credit_is_asked_for_time_past_the_configured_cap() {
    let capped = |max_secs| CallTimers {
        paid_minutes: Some(1),
        max_duration: Some(Duration::from_secs(max_secs)),
        ..TIMERS
    };
    // A cap of one minute: the first minute is all the call can use.
    let (mut m, _) = CallMachine::start(capped(60), 0);
    m.apply(Answered { leg: Leg::Agent }, 1_000);
    m.apply(Answered { leg: Leg::Customer }, 10_000);
    assert_eq!(m.deadline(Timer::CreditRenewal), None);
    assert_eq!(
        m.on_deadline(70_000).last(),
        Some(&outcome(EndReason::MaxDuration, Side::Platform, Phase::Bridged, None))
    );

    // A cap of 90 s: the second minute is asked for, a third is not.
    let (mut m, _) = CallMachine::start(capped(90), 0);
    m.apply(Answered { leg: Leg::Agent }, 1_000);
    m.apply(Answered { leg: Leg::Customer }, 10_000);
    assert_eq!(
        fire(&mut m, Timer::CreditRenewal, 55_000),
        vec![RenewCredit { paid_minutes: 1 }]
    );
    m.credit_renewed(2, 56_000);
    assert_eq!(m.deadline(Timer::CreditRenewal), None);
    assert_eq!(
        fire(&mut m, Timer::MaxDuration, 100_000).last(),
        Some(&outcome(EndReason::MaxDuration, Side::Platform, Phase::Bridged, None))
    );
}

#[test]
fn a_free_call_holds_no_credit_and_the_configured_cap_still_ends_it() {
    let timers = CallTimers {
        max_duration: Some(Duration::from_secs(90)),
        ..TIMERS
    };
    let (mut m, _) = CallMachine::start(timers, 0);
    m.apply(Answered { leg: Leg::Agent }, 1);
    m.apply(Answered { leg: Leg::Customer }, 2);
    assert_eq!(
        (m.deadline(Timer::PaidTime), m.deadline(Timer::CreditRenewal)),
        (None, None)
    );
    m.credit_renewed(5, 3);
    assert_eq!(
        m.deadline(Timer::PaidTime),
        None,
        "a free call has no paid time to move"
    );
    assert_eq!(
        fire(&mut m, Timer::MaxDuration, 90_002),
        vec![
            Bye(Leg::Customer),
            Bye(Leg::Agent),
            outcome(EndReason::MaxDuration, Side::Platform, Phase::Bridged, None),
        ]
    );
}

#[test]
fn early_media_reaches_the_agent() {
    let mut m = agent_answered();
    assert_eq!(
        m.apply(
            Provisional {
                leg: Leg::Customer,
                early_media: true
            },
            5_000
        ),
        vec![Emit(Progress::CustomerRinging), RelayEarlyMedia]
    );
    // 180 first (ringback), then 183 with SDP: switch to the carrier's media, no second event.
    let mut m = customer_ringing();
    assert_eq!(
        m.apply(
            Provisional {
                leg: Leg::Customer,
                early_media: true
            },
            5_000
        ),
        vec![RelayEarlyMedia]
    );
    assert_eq!(
        m.apply(
            Provisional {
                leg: Leg::Customer,
                early_media: false
            },
            5_001
        ),
        vec![]
    );
}

#[test]
fn answers_without_provisional_responses() {
    let (mut m, _) = CallMachine::start(TIMERS, 0);
    m.apply(Answered { leg: Leg::Agent }, 1);
    assert_eq!(
        (m.deadline(Timer::AgentNoResponse), m.deadline(Timer::AgentRing)),
        (None, None)
    );
    let fx = m.apply(Answered { leg: Leg::Customer }, 2);
    assert_eq!(fx, vec![Bridge, Emit(Progress::CustomerAnswered)]);
    assert_eq!(m.record().customer_ringing_at, Some(2));
}

#[test]
fn stale_timers_and_events_out_of_place_do_nothing() {
    let mut m = bridged();
    assert_eq!(m.next_deadline(), None, "no timer outlives its phase");
    assert!(m.on_deadline(1_000_000).is_empty());
    for event in [
        Provisional {
            leg: Leg::Agent,
            early_media: false,
        },
        Provisional {
            leg: Leg::Customer,
            early_media: true,
        },
        Answered { leg: Leg::Agent },
        Answered { leg: Leg::Customer },
        Failed {
            leg: Leg::Customer,
            code: 486,
        },
        AgentUnroutable,
    ] {
        assert_eq!(m.apply(event.clone(), 9_000), vec![], "{event:?}");
    }
    assert!(!m.is_finished());
    let mut m = start();
    assert_eq!(
        m.apply(
            Provisional {
                leg: Leg::Customer,
                early_media: false
            },
            1
        ),
        vec![]
    );
    assert_eq!(m.apply(HungUp { leg: Leg::Customer }, 1), vec![]);
    assert_eq!(m.apply(MediaTimeout { leg: Leg::Agent }, 1), vec![]);
}

/// Every event the machine can receive.
fn all_events() -> Vec<CallEvent> {
    let mut events = vec![
        AgentUnroutable,
        HangUpRequested {
            cause: PlatformCause::Api,
        },
        HoldRequested { on_hold: true },
        HoldRequested { on_hold: false },
    ];
    for leg in [Leg::Agent, Leg::Customer] {
        events.extend([
            Provisional {
                leg,
                early_media: false,
            },
            Provisional { leg, early_media: true },
            Answered { leg },
            Failed { leg, code: 486 },
            Failed { leg, code: 503 },
            HungUp { leg },
            MediaTimeout { leg },
            SessionRefreshFailed { leg, code: 481 },
        ]);
    }
    events
}

/// A transition of the exhaustive search.
#[derive(Debug)]
enum Step {
    Event(CallEvent),
    Deadline,
    /// A bridged call's timers noticed 7 s late (a loaded host): every one due fires at once.
    LateDeadline,
    /// The credit hold was extended by a minute.
    CreditRenewed,
}

/// Explores every state reachable from the start by any order of events and of deadlines
/// passing, keyed on the whole state (the machine with its running deadlines, and the time
/// reached), and checks on every transition: `Finished` at most once, last, and only with the
/// call ending; no invitation or bridge after the end; the customer is invited only once the
/// agent answered; a bridge needs both legs answered; no deadline lies in the past; when the
/// call ends no leg is left up and no timer runs; no bridged call outlives what its credit
/// pays for, and credit is asked for only while bridged.
#[test]
fn invariants_hold_in_every_reachable_state() {
    let timers = CallTimers {
        max_duration: Some(Duration::from_secs(150)),
        paid_minutes: Some(1),
        ..TIMERS
    };
    let (first, _) = CallMachine::start(timers, 0);
    // With two further routes for the customer, every failover path is explored too.
    let first = first.with_customer_fallbacks(2);
    let mut queue = VecDeque::from([(first.clone(), 0)]);
    let mut seen = HashSet::from([(first, 0)]);
    let events = all_events();
    while let Some((machine, now)) = queue.pop_front() {
        // Each event at the time reached, the next deadline passing, and (up to three paid
        // minutes, to keep the search finite) the credit hold extended.
        let renewable = machine.timers.paid_minutes.is_some_and(|m| m < 3);
        let bridged_timer_next = [Timer::CreditRenewal, Timer::PaidTime, Timer::MaxDuration]
            .into_iter()
            .any(|t| machine.deadline(t).is_some() && machine.deadline(t) == machine.next_deadline());
        let late = machine
            .next_deadline()
            .filter(|_| bridged_timer_next)
            .map(|at| (Step::LateDeadline, at + 7_000));
        let steps = events
            .iter()
            .map(|e| (Step::Event(e.clone()), now))
            .chain(machine.next_deadline().map(|at| (Step::Deadline, at)))
            .chain(late)
            .chain(renewable.then_some((Step::CreditRenewed, now)));
        for (event, at) in steps {
            let mut next = machine.clone();
            let fx = match &event {
                Step::Event(event) => next.apply(event.clone(), at),
                Step::Deadline | Step::LateDeadline => next.on_deadline(at),
                Step::CreditRenewed => {
                    let paid = machine.timers.paid_minutes.unwrap_or(0);
                    next.credit_renewed(paid + 1, at);
                    Vec::new()
                }
            };
            let finished = fx.iter().filter(|e| matches!(e, Finished(_))).count();
            if machine.is_finished() {
                assert_eq!(finished, 0, "{machine:?} + {event:?} finished twice");
                assert!(
                    fx.iter().all(|e| matches!(e, Bye(_))),
                    "{machine:?} + {event:?}: {fx:?}"
                );
                continue;
            }
            assert!(finished <= 1);
            assert_eq!(finished == 1, next.is_finished());
            for effect in &fx {
                match effect {
                    InviteCustomer => assert_eq!(next.agent, LegState::Answered, "{machine:?} + {event:?}"),
                    Bridge | PutOnHold => {
                        assert!(next.agent == LegState::Answered && next.customer == LegState::Answered)
                    }
                    InviteAgent => panic!("the agent is invited only at the start"),
                    RenewCredit { .. } => {
                        assert_eq!(machine.customer, LegState::Answered, "{machine:?} + {event:?}");
                        let until = machine.paid_until().unwrap_or(0);
                        assert!(
                            until > at,
                            "{machine:?} + {event:?} at {at}: credit asked for after the paid time"
                        );
                        assert!(
                            machine.deadline(Timer::MaxDuration).is_none_or(|cap| cap > until),
                            "{machine:?} + {event:?}: credit asked for time past the cap"
                        );
                    }
                    _ => {}
                }
            }
            assert!(
                next.next_deadline().is_none_or(|due| due > at),
                "{machine:?} + {event:?} at {at}: a deadline in the past"
            );
            if let Some(Finished(outcome)) = fx.last() {
                if outcome.reason == EndReason::BalanceExhausted {
                    assert_eq!(
                        next.record().ended_at,
                        machine.paid_until(),
                        "{machine:?} + {event:?} at {at}: cut at the end of its paid time"
                    );
                }

                assert!(
                    matches!(next.agent, LegState::Gone) && matches!(next.customer, LegState::Gone | LegState::Idle),
                    "a leg outlives the call: {next:?}"
                );
                assert_eq!(
                    next.next_deadline(),
                    None,
                    "{machine:?} + {event:?} leaves a timer running"
                );
            }
            assert!(
                !fx[..fx.len().saturating_sub(1)]
                    .iter()
                    .any(|e| matches!(e, Finished(_))),
                "Finished is last"
            );
            assert!(
                !next.on_hold || (next.agent == LegState::Answered && next.customer == LegState::Answered),
                "{machine:?} + {event:?}: on hold outside a bridged call"
            );
            if let (Some(until), false) = (next.paid_until(), next.is_finished()) {
                assert!(until > at, "{machine:?} + {event:?} at {at}: outlives its paid time");
                assert_eq!(next.deadline(Timer::PaidTime), Some(until), "{next:?}");
            }
            if seen.insert((next.clone(), at)) {
                queue.push_back((next, at));
            }
        }
    }
    assert!(seen.len() > 20, "explored only {} states", seen.len());
}

#[test]
fn end_reasons_and_sides_keep_their_stored_names() {
    let names: HashSet<&str> = EndReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), EndReason::ALL.len(), "every reason has a name of its own");
    for reason in EndReason::ALL {
        // The spellings stored before the names were fixed were the variants' names.
        assert_eq!(reason.as_str(), format!("{reason:?}"));
        assert_eq!(reason.as_str().parse::<EndReason>(), Ok(reason));
    }
    assert!("agent hung up".parse::<EndReason>().is_err());
    for (side, name) in [
        (Side::Agent, "agent"),
        (Side::Customer, "customer"),
        (Side::Platform, "platform"),
    ] {
        assert_eq!(side.as_str(), name);
        assert_eq!(name.parse::<Side>(), Ok(side));
    }
    assert!("nobody".parse::<Side>().is_err());
}

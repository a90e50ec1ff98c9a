use super::*;
use dialbridge_core::call::Side;

fn outcome(reason: EndReason, phase: Phase, sip_code: Option<u16>) -> Outcome {
    Outcome {
        reason,
        side: Side::Platform,
        phase,
        sip_code,
    }
}

#[test]
fn cdr_status_by_phase_and_reason() {
    assert_eq!(
        cdr_status(&outcome(EndReason::AgentHungUp, Phase::Bridged, Some(200))),
        28
    );
    assert_eq!(
        cdr_status(&outcome(EndReason::CustomerNoAnswer, Phase::CustomerLeg, None)),
        21
    );
    assert_eq!(
        cdr_status(&outcome(EndReason::AgentHungUp, Phase::CustomerLeg, None)),
        21
    );
    assert_eq!(
        cdr_status(&outcome(EndReason::HangUpRequested, Phase::CustomerLeg, None)),
        21
    );
    for r in [
        EndReason::CustomerBusy,
        EndReason::CustomerDeclined,
        EndReason::CustomerUnreachable,
        EndReason::CustomerFailed,
    ] {
        assert_eq!(cdr_status(&outcome(r, Phase::CustomerLeg, Some(486))), 22);
    }
    for r in [
        EndReason::AgentBusy,
        EndReason::AgentNoAnswer,
        EndReason::HangUpRequested,
        EndReason::AgentNotRegistered,
    ] {
        assert_eq!(cdr_status(&outcome(r, Phase::AgentLeg, None)), 24);
    }
}

#[test]
fn sip_causes() {
    assert_eq!(
        sip_cause(&outcome(EndReason::CustomerBusy, Phase::CustomerLeg, Some(486))),
        486
    );
    assert_eq!(
        sip_cause(&outcome(EndReason::AgentNoAnswer, Phase::AgentLeg, None)),
        487
    );
    assert_eq!(
        sip_cause(&outcome(EndReason::AgentUnreachable, Phase::AgentLeg, None)),
        408
    );
    assert_eq!(sip_cause(&outcome(EndReason::MediaTimeout, Phase::Bridged, None)), 200);
    // A refresh the carrier refused: a bridged call whose CDR carries the refusal's status.
    let refused = outcome(EndReason::SessionRefreshFailed, Phase::Bridged, Some(481));
    assert_eq!((cdr_status(&refused), sip_cause(&refused)), (28, 481));
}

#[test]
fn bridged_time_is_billed_per_started_minute() {
    let report = CallReport {
        unique_id: "u".into(),
        outcome: outcome(EndReason::CustomerHungUp, Phase::Bridged, Some(200)),
        record: dialbridge_core::call::CallRecord {
            bridged_at: Some(1_000),
            ended_at: Some(62_500),
            ..Default::default()
        },
        media: Default::default(),
        customer_trunk: None,
    };
    let rate: Money = "0.12".parse().unwrap();
    // A call holding three minutes is charged the two it used...
    let end = cdr_end(&report, Some(Hold { rate, minutes: 3 }));
    assert_eq!((end.bridge_seconds, end.status), (62, 28));
    assert_eq!(end.cost, "0.24".parse().unwrap());
    // ...one cut at the end of the one minute it held, its BYE a moment late, that one...
    let end = cdr_end(&report, Some(Hold { rate, minutes: 1 }));
    assert_eq!((end.bridge_seconds, end.cost), (62, rate));
    // ...and one that held nothing (free when accepted), nothing.
    let end = cdr_end(&report, None);
    assert_eq!((end.bridge_seconds, end.cost), (62, Money::ZERO));
}

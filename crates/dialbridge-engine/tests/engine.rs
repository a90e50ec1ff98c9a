//! The engine against SIPp on 127.0.0.1: SIPp plays the agent's phone (registered with digest)
//! and the carrier; each test checks the SIP ladder (through SIPp's own expectations and
//! exit code), the call's events, its outcome and record, the media relayed, and that nothing
//! of the call is left afterwards.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dialbridge_engine::*;
use dialbridge_sip::{AccountDirectory, SipConfig};
use dialbridge_testkit::{free_port, skip_without_sipp, Sipp, SippBuilder};

const AOR: &str = "3000001-801";
const SIP_PASSWORD: &str = "secret801";
const CALLER_ID: &str = "02160001234";
const CUSTOMER: &str = "13800138000";

struct Accounts;

impl AccountDirectory for Accounts {
    fn sip_password(&self, aor: &str) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        let found = HashMap::from([(AOR, SIP_PASSWORD)]).get(aor).map(|p| (*p).to_owned());
        Box::pin(async move { found })
    }
}

async fn engine(rtp_inactivity: Duration) -> Engine {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TEST_LOG"))
        .with_test_writer()
        .try_init();
    let config = EngineConfig {
        sip: SipConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            transports: vec![SipTransport::Udp, SipTransport::Tcp],
            public_ip: None,
            user_agent: "dialbridge-test".into(),
            call_id_domain: "dialbridge.test".into(),
            registrar: RegistrarSettings::default(),
            t1: Duration::from_millis(100),
            server_key: [5; 32],
            unsolicited: Default::default(),
            tcp: Default::default(),
        },
        rtp_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: 32_000..=39_999,
        rtp_inactivity,
    };
    Engine::start(config, Arc::new(Accounts)).await.unwrap()
}

/// Generous everywhere: on a loaded machine a SIPp peer may take seconds to answer, and a timer
/// that is not what a test is about must not decide it. A test about a timer sets its own.
fn timers() -> CallTimers {
    CallTimers {
        agent_no_response: Duration::from_secs(5),
        agent_ring: Duration::from_secs(10),
        customer_no_response: Duration::from_secs(5),
        customer_ring: Duration::from_secs(10),
        max_duration: None,
        paid_minutes: None,
    }
}

/// A SIPp UAS on a free port, playing a phone or the carrier.
async fn uas(port: u16, tcp: bool, calls: u32, settings: &[(&str, &str)]) -> Sipp {
    let mut b = SippBuilder::answering("phone_uas.xml", port, calls)
        .rtp_stream()
        .settings(settings);
    if tcp {
        b = b.args(["-t", "t1"]);
    }
    b.spawn_async().await
}

/// A SIPp playing `scenario` for one call on `port` (settings still to add).
fn one_call(scenario: &str, port: u16) -> SippBuilder {
    SippBuilder::answering(scenario, port, 1)
}

/// Starts an outcall from the extension agent to the customer through the carrier on
/// `carrier_port`, and follows it to its end in its own task.
fn place_call(engine: &Engine, id: &str, carrier_port: u16) -> tokio::task::JoinHandle<(Vec<Progress>, CallReport)> {
    let handle = engine
        .start_preview_outcall(outcall(id, extension(), trunk(carrier_port, false, None), timers()))
        .unwrap();
    tokio::spawn(run_to_end(handle))
}

/// Registers the agent's extension for a UAS listening on `phone_port` (UDP).
async fn register_agent(engine: &Engine, phone_port: u16) {
    let mut sipp = SippBuilder::new("register.xml", Some(engine.sip_addr()))
        .args([
            "-s",
            AOR,
            "-au",
            AOR,
            "-ap",
            SIP_PASSWORD,
            "-m",
            "1",
            "-p",
            &free_port().to_string(),
        ])
        .set("contact_port", phone_port)
        .spawn_async()
        .await;
    assert!(
        sipp.finish_async(Duration::from_secs(20)).await,
        "registration failed: {}",
        sipp.logs()
    );
    assert!(engine.is_registered(AOR));
}

fn trunk(port: u16, tcp: bool, credential: Option<(&str, &str)>) -> TrunkRoute {
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    TrunkRoute {
        name: "carrier".into(),
        address,
        host: address.to_string(),
        transport: if tcp { SipTransport::Tcp } else { SipTransport::Udp },
        credential: credential.map(|(u, p)| (u.to_owned(), p.to_owned())),
        number_format: Default::default(),
        caller_id_format: Default::default(),
        sources: Vec::new(),
    }
}

fn outcall(id: &str, agent_phone: AgentPhone, trunk: TrunkRoute, timers: CallTimers) -> PreviewOutcall {
    PreviewOutcall {
        unique_id: id.into(),
        agent_phone,
        customer_number: CUSTOMER.into(),
        caller_id: CALLER_ID.into(),
        agent_caller_id: None,
        trunk,
        fallback_trunks: Vec::new(),
        timers,
        recording: None,
    }
}

fn extension() -> AgentPhone {
    AgentPhone::Extension { aor: AOR.into() }
}

/// Collects a call's updates until it finishes (bounded).
async fn run_to_end(handle: CallHandle) -> (Vec<Progress>, CallReport) {
    follow(handle, |_| {}).await
}

/// [`run_to_end`], calling `on_progress` at each step of the call as it is reported.
async fn follow(mut handle: CallHandle, mut on_progress: impl FnMut(Progress)) -> (Vec<Progress>, CallReport) {
    let mut progress = Vec::new();
    loop {
        let update = tokio::time::timeout(Duration::from_secs(60), handle.updates.recv())
            .await
            .expect("the call must end")
            .expect("the call reports its end");
        match update {
            CallUpdate::Progress { progress: p, .. } => {
                on_progress(p);
                progress.push(p);
            }
            CallUpdate::CustomerTrunk { .. } | CallUpdate::RenewCredit { .. } | CallUpdate::LegEnding { .. } => {}
            CallUpdate::Finished(report) => return (progress, *report),
        }
    }
}

/// For [`follow`]: hangs the call `id` up `after` it reports `step`. A step, not a time since the
/// start: on a loaded machine the call may not have reached the phase by then.
fn hang_up_after(engine: &Engine, id: &'static str, step: Progress, after: Duration) -> impl FnMut(Progress) {
    let engine = engine.clone();
    move |progress| {
        if progress == step {
            let engine = engine.clone();
            // The outcome the test checks (HangUpRequested in the phase reached) shows the
            // hang-up took effect.
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                engine.hang_up(id);
            });
        }
    }
}

/// Waits until the engine holds nothing of any call.
async fn assert_all_released(engine: &Engine) {
    for _ in 0..200 {
        let c = engine.counts();
        if (c.calls, c.sip_legs, c.sip_dialogs, c.rtp_port_pairs) == (0, 0, 0, 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("left behind: {:?}", engine.counts());
}

/// A phone or carrier for `calls` calls that sends no RTP (load tests).
async fn silent_uas(port: u16, calls: u32, settings: &[(&str, &str)]) -> Sipp {
    SippBuilder::answering("phone_uas.xml", port, calls)
        .silent_media()
        .settings(settings)
        .spawn_async()
        .await
}

async fn finish(mut sipp: Sipp) -> (bool, String) {
    let ok = sipp.finish_async(Duration::from_secs(30)).await;
    (ok, sipp.logs())
}

/// [`finish`], but a peer told to stay silent never gets anything it could end on (no
/// provisional answer, so no CANCEL): its logs at once, not a wait for an exit that never comes.
async fn finish_unless_silent(sipp: Sipp, settings: &[(&str, &str)]) -> (bool, String) {
    if settings.contains(&("mode", "silent")) {
        (false, sipp.logs())
    } else {
        finish(sipp).await
    }
}

fn assert_outcome(report: &CallReport, reason: EndReason, side: Side, phase: Phase, code: Option<u16>) {
    let o = report.outcome;
    assert_eq!(
        (o.reason, o.side, o.phase, o.sip_code),
        (reason, side, phase, code),
        "{report:?}"
    );
}

const FULL_PROGRESS: [Progress; 4] = [
    Progress::AgentRinging,
    Progress::AgentAnswered,
    Progress::CustomerRinging,
    Progress::CustomerAnswered,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_agent_bridged_then_the_agent_hangs_up() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(
        phone_port,
        false,
        1,
        &[("talk_ms", "1500"), ("expect_from_user", CUSTOMER)],
    )
    .await;
    let carrier = uas(
        carrier_port,
        false,
        1,
        &[
            ("expect_from_user", CALLER_ID),
            ("expect_pai_user", CALLER_ID),
            ("expect_ruri_user", CUSTOMER),
        ],
    )
    .await;
    register_agent(&engine, phone_port).await;
    let handle = engine
        .start_preview_outcall(outcall("t-1", extension(), trunk(carrier_port, false, None), timers()))
        .unwrap();
    let (progress, report) = run_to_end(handle).await;
    assert_eq!(progress, FULL_PROGRESS, "{report:?}");
    assert_outcome(&report, EndReason::AgentHungUp, Side::Agent, Phase::Bridged, Some(200));
    let r = &report.record;
    assert!(
        r.agent_ringing_at <= r.agent_answered_at && r.agent_answered_at <= r.bridged_at && r.bridged_at <= r.ended_at
    );
    assert!(report.media.agent_to_customer_packets > 10, "{:?}", report.media);
    assert!(report.media.customer_to_agent_packets > 10, "{:?}", report.media);
    let (ok, logs) = finish(carrier).await;
    assert!(ok && logs.contains("BYE received"), "the carrier gets the BYE: {logs}");
    let (ok, logs) = finish(phone).await;
    assert!(ok, "{logs}");
    assert_all_released(&engine).await;
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_agent_bridged_then_the_customer_hangs_up() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, false, 1, &[]).await;
    let carrier = uas(carrier_port, false, 1, &[("talk_ms", "1000")]).await;
    register_agent(&engine, phone_port).await;
    let handle = engine
        .start_preview_outcall(outcall("t-2", extension(), trunk(carrier_port, false, None), timers()))
        .unwrap();
    let (progress, report) = run_to_end(handle).await;
    assert_eq!(progress, FULL_PROGRESS, "{report:?}");
    assert_outcome(
        &report,
        EndReason::CustomerHungUp,
        Side::Customer,
        Phase::Bridged,
        Some(200),
    );
    assert!(report.media.agent_to_customer_packets > 0 && report.media.customer_to_agent_packets > 0);
    let (ok, logs) = finish(phone).await;
    assert!(ok && logs.contains("BYE received"), "the agent gets the BYE: {logs}");
    assert!(finish(carrier).await.0);
    assert_all_released(&engine).await;
}

/// One call with SIPp phones: the agent's phone (registered extension) and the carrier each
/// behave as `agent` and `carrier` say. Returns the call's progress and report, and whether
/// each SIPp saw what it expected, with its logs.
struct Scenario<'a> {
    agent: &'a [(&'a str, &'a str)],
    carrier: Option<&'a [(&'a str, &'a str)]>,
    timers: CallTimers,
    inactivity: Duration,
    credential: Option<(&'a str, &'a str)>,
    /// Hang the call up this long after it reports this step.
    hang_up: Option<(Progress, Duration)>,
}

impl Default for Scenario<'_> {
    fn default() -> Self {
        Self {
            agent: &[],
            carrier: Some(&[]),
            timers: timers(),
            inactivity: Duration::from_secs(30),
            credential: None,
            hang_up: None,
        }
    }
}

struct Ran {
    progress: Vec<Progress>,
    report: CallReport,
    agent: (bool, String),
    carrier: Option<(bool, String)>,
}

async fn run(s: Scenario<'_>) -> Ran {
    let engine = engine(s.inactivity).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, false, 1, s.agent).await;
    let carrier = match s.carrier {
        Some(settings) => Some(uas(carrier_port, false, 1, settings).await),
        None => None,
    };
    register_agent(&engine, phone_port).await;
    let handle = engine
        .start_preview_outcall(outcall(
            "t-s",
            extension(),
            trunk(carrier_port, false, s.credential),
            s.timers,
        ))
        .unwrap();
    let (progress, report) = match s.hang_up {
        Some((step, after)) => follow(handle, hang_up_after(&engine, "t-s", step, after)).await,
        None => run_to_end(handle).await,
    };
    let agent = finish_unless_silent(phone, s.agent).await;
    // A carrier the call never reached gets nothing to end on: its logs, without a wait.
    let carrier = match (carrier, s.carrier) {
        (Some(c), _) if report.record.customer_invited_at.is_none() => Some((false, c.logs())),
        (Some(c), Some(settings)) => Some(finish_unless_silent(c, settings).await),
        _ => None,
    };
    assert_all_released(&engine).await;
    assert!(!engine.hang_up("t-s"), "a finished call cannot be hung up");
    Ran {
        progress,
        report,
        agent,
        carrier,
    }
}

fn carrier_never_called(ran: &Ran) {
    assert!(ran.report.record.customer_invited_at.is_none());
    if let Some((_, logs)) = &ran.carrier {
        assert!(
            !logs.contains("INVITE call_id"),
            "the customer must not be called: {logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_busy_declined_or_unavailable_never_calls_the_customer() {
    if skip_without_sipp() {
        return;
    }
    for (mode, code, reason) in [
        ("busy", 486, EndReason::AgentBusy),
        ("decline", 603, EndReason::AgentDeclined),
        ("unavailable", 480, EndReason::AgentUnreachable),
    ] {
        let ran = run(Scenario {
            agent: &[("mode", mode)],
            carrier: None,
            ..Scenario::default()
        })
        .await;
        assert_outcome(&ran.report, reason, Side::Agent, Phase::AgentLeg, Some(code));
        assert_eq!(ran.progress, [Progress::AgentRinging]);
        assert!(ran.agent.0, "{mode}: {}", ran.agent.1);
        carrier_never_called(&ran);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_no_answer_is_cancelled_at_the_ring_timeout() {
    if skip_without_sipp() {
        return;
    }
    let timers = CallTimers {
        agent_ring: Duration::from_millis(1_000),
        ..timers()
    };
    let ran = run(Scenario {
        agent: &[("mode", "noanswer")],
        timers,
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::AgentNoAnswer,
        Side::Platform,
        Phase::AgentLeg,
        None,
    );
    assert!(
        ran.agent.0 && ran.agent.1.contains("CANCEL received"),
        "{}",
        ran.agent.1
    );
    carrier_never_called(&ran);
}

/// A phone rings, takes our CANCEL and never sends the INVITE a final answer: the call ends at
/// once, and the INVITE transaction with its early dialog is given up 64·T1 (32 s) after the
/// CANCEL (RFC 3261 §9.1), so the gauges return to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_invite_without_a_final_answer_is_given_up_after_64_t1() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let phone_port = free_port();
    let phone = uas(phone_port, false, 1, &[("mode", "nofinal")]).await;
    register_agent(&engine, phone_port).await;
    let timers = CallTimers {
        agent_ring: Duration::from_millis(1_000),
        ..timers()
    };
    let handle = engine
        .start_preview_outcall(outcall(
            "t-nofinal",
            extension(),
            trunk(free_port(), false, None),
            timers,
        ))
        .unwrap();
    let (_, report) = run_to_end(handle).await;
    assert_outcome(&report, EndReason::AgentNoAnswer, Side::Platform, Phase::AgentLeg, None);
    let cancelled_at = std::time::Instant::now();
    let mut counts = engine.counts();
    while counts.calls + counts.sip_dialogs + counts.sip_legs + counts.rtp_port_pairs > 0
        && cancelled_at.elapsed() < Duration::from_secs(32 + 15)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        counts = engine.counts();
    }
    assert_eq!(
        (counts.calls, counts.sip_legs, counts.sip_dialogs, counts.rtp_port_pairs),
        (0, 0, 0, 0),
        "left behind {:?} after {:?}",
        counts,
        cancelled_at.elapsed()
    );
    let logs = phone.logs();
    assert!(logs.contains("CANCEL received"), "{logs}");
    drop(phone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_never_sends_a_provisional_is_unreachable() {
    if skip_without_sipp() {
        return;
    }
    let ran = run(Scenario {
        agent: &[("mode", "silent")],
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::AgentUnreachable,
        Side::Platform,
        Phase::AgentLeg,
        None,
    );
    assert!(ran.progress.is_empty());
    carrier_never_called(&ran);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_extension_is_not_called() {
    let engine = engine(Duration::from_secs(30)).await;
    let carrier_port = free_port();
    let handle = engine
        .start_preview_outcall(outcall("t-u", extension(), trunk(carrier_port, false, None), timers()))
        .unwrap();
    let (progress, report) = run_to_end(handle).await;
    assert!(progress.is_empty());
    assert_outcome(
        &report,
        EndReason::AgentNotRegistered,
        Side::Platform,
        Phase::AgentLeg,
        None,
    );
    assert_all_released(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_failures_hang_up_the_agent() {
    if skip_without_sipp() {
        return;
    }
    for (mode, code, reason) in [
        ("busy", 486, EndReason::CustomerBusy),
        ("decline", 603, EndReason::CustomerDeclined),
        ("unavailable", 480, EndReason::CustomerUnreachable),
        ("error", 503, EndReason::CustomerFailed),
    ] {
        let carrier = [("mode", mode)];
        let ran = run(Scenario {
            carrier: Some(&carrier),
            ..Scenario::default()
        })
        .await;
        assert_outcome(&ran.report, reason, Side::Customer, Phase::CustomerLeg, Some(code));
        assert_eq!(
            ran.progress,
            [
                Progress::AgentRinging,
                Progress::AgentAnswered,
                Progress::CustomerRinging
            ]
        );
        assert!(
            ran.agent.0 && ran.agent.1.contains("BYE received"),
            "{mode}: the agent gets a BYE: {}",
            ran.agent.1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_no_answer_and_a_silent_carrier() {
    if skip_without_sipp() {
        return;
    }
    let timers = CallTimers {
        customer_ring: Duration::from_millis(1_000),
        ..timers()
    };
    let carrier = [("mode", "noanswer")];
    let ran = run(Scenario {
        carrier: Some(&carrier),
        timers,
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::CustomerNoAnswer,
        Side::Platform,
        Phase::CustomerLeg,
        None,
    );
    let (ok, logs) = ran.carrier.unwrap();
    assert!(ok && logs.contains("CANCEL received"), "{logs}");
    assert!(ran.agent.1.contains("BYE received"));

    let carrier = [("mode", "silent")];
    let ran = run(Scenario {
        carrier: Some(&carrier),
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::CustomerUnreachable,
        Side::Platform,
        Phase::CustomerLeg,
        None,
    );
    assert!(ran.agent.1.contains("BYE received"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_hangs_up_while_the_customer_rings() {
    if skip_without_sipp() {
        return;
    }
    let agent = [("talk_ms", "600")];
    let carrier = [("mode", "noanswer")];
    let ran = run(Scenario {
        agent: &agent,
        carrier: Some(&carrier),
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::AgentHungUp,
        Side::Agent,
        Phase::CustomerLeg,
        None,
    );
    let (ok, logs) = ran.carrier.unwrap();
    assert!(
        ok && logs.contains("CANCEL received"),
        "the customer leg is cancelled: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_up_requested_in_each_phase() {
    if skip_without_sipp() {
        return;
    }
    // While the agent's phone rings.
    let ran = run(Scenario {
        agent: &[("mode", "noanswer")],
        carrier: None,
        hang_up: Some((Progress::AgentRinging, Duration::ZERO)),
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::HangUpRequested,
        Side::Platform,
        Phase::AgentLeg,
        None,
    );
    assert!(ran.agent.1.contains("CANCEL received"), "{}", ran.agent.1);
    // While the customer's phone rings.
    let carrier = [("mode", "noanswer")];
    let ran = run(Scenario {
        carrier: Some(&carrier),
        hang_up: Some((Progress::CustomerRinging, Duration::ZERO)),
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::HangUpRequested,
        Side::Platform,
        Phase::CustomerLeg,
        None,
    );
    assert!(ran.carrier.unwrap().1.contains("CANCEL received"));
    assert!(ran.agent.1.contains("BYE received"));
    // While bridged.
    let ran = run(Scenario {
        hang_up: Some((Progress::CustomerAnswered, Duration::from_millis(300))),
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::HangUpRequested,
        Side::Platform,
        Phase::Bridged,
        Some(200),
    );
    assert!(ran.carrier.unwrap().1.contains("BYE received"));
    assert!(ran.agent.1.contains("BYE received"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_carriers_challenge_is_answered_with_the_trunks_credentials() {
    if skip_without_sipp() {
        return;
    }
    let carrier = [
        ("challenge", "1"),
        ("auth_user", "acme"),
        ("auth_pass", "trunk-secret"),
        ("talk_ms", "500"),
    ];
    let ran = run(Scenario {
        carrier: Some(&carrier),
        credential: Some(("acme", "trunk-secret")),
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::CustomerHungUp,
        Side::Customer,
        Phase::Bridged,
        Some(200),
    );
    let (ok, logs) = ran.carrier.unwrap();
    assert!(ok && logs.contains("auth_ok=true"), "{logs}");

    let ran = run(Scenario {
        carrier: Some(&carrier),
        credential: Some(("acme", "wrong")),
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::CustomerFailed,
        Side::Customer,
        Phase::CustomerLeg,
        Some(403),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_reaches_the_agent() {
    if skip_without_sipp() {
        return;
    }
    let timers = CallTimers {
        customer_ring: Duration::from_millis(1_500),
        ..timers()
    };
    let carrier = [("early", "1"), ("mode", "noanswer")];
    let ran = run(Scenario {
        carrier: Some(&carrier),
        timers,
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::CustomerNoAnswer,
        Side::Platform,
        Phase::CustomerLeg,
        None,
    );
    assert!(
        ran.report.media.customer_to_agent_packets > 10,
        "{:?}",
        ran.report.media
    );
    assert_eq!(
        ran.report.media.agent_to_customer_packets, 0,
        "the customer does not hear the agent before answering"
    );
    assert_eq!(
        ran.report.media.ringback_packets, 0,
        "no local ringback over the carrier's media"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_early_media_the_agent_hears_ringback() {
    if skip_without_sipp() {
        return;
    }
    let carrier = [("ring_ms", "1000")];
    let ran = run(Scenario {
        carrier: Some(&carrier),
        hang_up: Some((Progress::CustomerAnswered, Duration::ZERO)),
        ..Scenario::default()
    })
    .await;
    assert!(ran.report.media.ringback_packets > 10, "{:?}", ran.report.media);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_inactivity_and_maximum_duration_end_a_bridged_call() {
    if skip_without_sipp() {
        return;
    }
    // The carrier streams nothing: the customer leg is silent.
    let engine = engine(Duration::from_millis(700)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, false, 1, &[]).await;
    let carrier = SippBuilder::answering("phone_uas.xml", carrier_port, 1)
        .silent_media()
        .set("mode", "answer")
        .spawn_async()
        .await;
    register_agent(&engine, phone_port).await;
    let handle = engine
        .start_preview_outcall(outcall("t-i", extension(), trunk(carrier_port, false, None), timers()))
        .unwrap();
    let (_, report) = run_to_end(handle).await;
    assert_outcome(&report, EndReason::MediaTimeout, Side::Platform, Phase::Bridged, None);
    assert!(finish(carrier).await.1.contains("BYE received"));
    assert!(finish(phone).await.1.contains("BYE received"));
    assert_all_released(&engine).await;

    let timers = CallTimers {
        max_duration: Some(Duration::from_millis(800)),
        ..timers()
    };
    let ran = run(Scenario {
        timers,
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::MaxDuration,
        Side::Platform,
        Phase::Bridged,
        None,
    );
    let talk = ran.report.record.ended_at.unwrap() - ran.report.record.bridged_at.unwrap();
    assert!((700..3_000).contains(&talk), "{talk} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telephone_agent_is_called_through_the_trunk_with_the_enterprises_caller_id() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let carrier_port = free_port();
    // Both legs reach the carrier: the agent's mobile, then the customer. Each must show the
    // enterprise's caller id (carriers reject foreign ones).
    let carrier = uas(
        carrier_port,
        false,
        2,
        &[("expect_from_user", CALLER_ID), ("expect_pai_user", CALLER_ID)],
    )
    .await;
    let agent_phone = AgentPhone::Telephone {
        number: "13900139000".into(),
    };
    let handle = engine
        .start_preview_outcall(outcall("t-t", agent_phone, trunk(carrier_port, false, None), timers()))
        .unwrap();
    let (progress, report) = follow(
        handle,
        hang_up_after(&engine, "t-t", Progress::CustomerAnswered, Duration::from_millis(500)),
    )
    .await;
    assert_eq!(progress, FULL_PROGRESS);
    assert_outcome(
        &report,
        EndReason::HangUpRequested,
        Side::Platform,
        Phase::Bridged,
        Some(200),
    );
    assert!(report.media.agent_to_customer_packets > 0 && report.media.customer_to_agent_packets > 0);
    let (ok, logs) = finish(carrier).await;
    assert!(ok, "{logs}");
    assert!(
        logs.contains("ruri_user=13900139000") && logs.contains("ruri_user=13800138000"),
        "{logs}"
    );
    assert_all_released(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_the_phone_is_called_back_over_its_registration() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let carrier_port = free_port();
    let carrier = uas(carrier_port, true, 1, &[("talk_ms", "800")]).await;
    // One SIPp process registers over TCP and takes the call on that same connection.
    let phone = SippBuilder::new("register.xml", Some(engine.sip_addr()))
        .args([
            "-s",
            AOR,
            "-au",
            AOR,
            "-ap",
            SIP_PASSWORD,
            "-m",
            "1",
            "-t",
            "t1",
            "-p",
            &free_port().to_string(),
        ])
        .args([
            "-oocsf".to_owned(),
            dialbridge_testkit::scenario("phone_uas.xml").display().to_string(),
        ])
        .media_port(free_port())
        .rtp_stream()
        .set("hold_ms", "4000")
        .spawn_async()
        .await;
    let registered = phone.wait_for_log_async("registered", Duration::from_secs(20)).await;
    assert!(registered, "{}", phone.logs());
    let handle = engine
        .start_preview_outcall(outcall("t-tcp", extension(), trunk(carrier_port, true, None), timers()))
        .unwrap();
    let (progress, report) = run_to_end(handle).await;
    assert_eq!(progress, FULL_PROGRESS, "{report:?}");
    assert_outcome(
        &report,
        EndReason::CustomerHungUp,
        Side::Customer,
        Phase::Bridged,
        Some(200),
    );
    assert!(report.media.agent_to_customer_packets > 0 && report.media.customer_to_agent_packets > 0);
    assert!(finish(carrier).await.0);
    let (_, logs) = finish(phone).await;
    assert!(logs.contains("BYE received"), "{logs}");
    assert_all_released(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_complete_and_leave_nothing_behind() {
    if skip_without_sipp() {
        return;
    }
    const CALLS: u32 = 200;
    let engine = engine(Duration::from_secs(60)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = silent_uas(phone_port, CALLS, &[("ring_ms", "100")]).await;
    let carrier = silent_uas(carrier_port, CALLS, &[("ring_ms", "100"), ("talk_ms", "1500")]).await;
    register_agent(&engine, phone_port).await;
    let timers = CallTimers {
        agent_no_response: Duration::from_secs(5),
        customer_no_response: Duration::from_secs(5),
        ..CallTimers::default()
    };
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let request = outcall(
            &format!("t-load-{i}"),
            extension(),
            trunk(carrier_port, false, None),
            timers,
        );
        calls.push(tokio::spawn(run_to_end(engine.start_preview_outcall(request).unwrap())));
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let peak = engine.counts();
    assert!(peak.calls > 100, "the calls overlap: {peak:?}");
    let mut failures = Vec::new();
    for call in calls {
        let (_, report) = call.await.unwrap();
        if report.outcome.reason != EndReason::CustomerHungUp || report.outcome.phase != Phase::Bridged {
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    let (ok, logs) = finish(carrier).await;
    assert!(ok, "{}", &logs[..logs.len().min(2000)]);
    assert!(finish(phone).await.0);
    assert_all_released(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_crossing_our_cancel_is_acked_and_hung_up() {
    if skip_without_sipp() {
        return;
    }
    let timers = CallTimers {
        agent_ring: Duration::from_millis(800),
        ..timers()
    };
    let ran = run(Scenario {
        agent: &[("mode", "late200")],
        carrier: None,
        timers,
        ..Scenario::default()
    })
    .await;
    assert_outcome(
        &ran.report,
        EndReason::AgentNoAnswer,
        Side::Platform,
        Phase::AgentLeg,
        None,
    );
    let (ok, logs) = &ran.agent;
    assert!(
        *ok && logs.contains("200 sent after CANCEL") && logs.contains("BYE received"),
        "{logs}"
    );
    carrier_never_called(&ran);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hangs_up_live_calls_after_the_grace_period() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, false, 1, &[]).await;
    let carrier = uas(carrier_port, false, 1, &[]).await;
    register_agent(&engine, phone_port).await;
    let mut handle = engine
        .start_preview_outcall(outcall(
            "t-down",
            extension(),
            trunk(carrier_port, false, None),
            timers(),
        ))
        .unwrap();
    loop {
        match handle.updates.recv().await {
            Some(CallUpdate::Progress {
                progress: Progress::CustomerAnswered,
                ..
            }) => break,
            Some(CallUpdate::Progress { .. } | CallUpdate::LegEnding { .. }) => {}
            other => panic!("the call should be bridged: {other:?}"),
        }
    }
    let stopping = engine.clone();
    let shutdown = tokio::spawn(async move { stopping.shutdown(Duration::from_millis(300)).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while engine.is_accepting() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = engine.start_preview_outcall(outcall(
        "t-late",
        extension(),
        trunk(carrier_port, false, None),
        timers(),
    ));
    assert!(matches!(refused, Err(EngineError::ShuttingDown)));
    let (_, report) = run_to_end(handle).await;
    assert_outcome(&report, EndReason::Shutdown, Side::Platform, Phase::Bridged, Some(200));
    assert!(
        report.record.ended_at.unwrap() - report.record.bridged_at.unwrap() >= 300,
        "the grace period is honoured"
    );
    assert!(finish(phone).await.1.contains("BYE received"));
    assert!(finish(carrier).await.1.contains("BYE received"));
    drop(engine);
    tokio::time::timeout(Duration::from_secs(15), shutdown)
        .await
        .unwrap()
        .unwrap();
}

/// This process's resident memory, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unsolicited_requests_leaves_bridged_calls_and_resources_alone() {
    if skip_without_sipp() {
        return;
    }
    const CALLS: u32 = 50;
    const FLOOD: u32 = 10_000;
    let engine = engine(Duration::from_secs(60)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = silent_uas(phone_port, CALLS, &[("ring_ms", "0")]).await;
    // Held long enough for the whole flood to pass while every call is bridged.
    let carrier = silent_uas(carrier_port, CALLS, &[("ring_ms", "0"), ("talk_ms", "9000")]).await;
    register_agent(&engine, phone_port).await;
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let request = outcall(
            &format!("t-flood-{i}"),
            extension(),
            trunk(carrier_port, false, None),
            timers(),
        );
        calls.push(tokio::spawn(run_to_end(engine.start_preview_outcall(request).unwrap())));
    }
    // Every call bridged before the flood starts (bounded: 20 s on a slow machine).
    for _ in 0..400 {
        if engine.counts().rtp_port_pairs == CALLS as usize * 2 && engine.counts().sip_dialogs == CALLS as usize * 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = engine.counts();
    assert_eq!(before.sip_legs, CALLS as usize * 2, "{before:?}");
    let rss_before = rss_kib();

    // Two scanners on other loopback addresses: INVITEs to made-up numbers, and REGISTERs with
    // credentials for users that do not exist.
    let scanner = async |address: &str, method: &str| {
        SippBuilder::new("flood.xml", Some(engine.sip_addr()))
            .args(["-i", address, "-p", &free_port().to_string()])
            .args(["-r", "2500", "-m", &FLOOD.to_string()])
            .set("method", method)
            .spawn_async()
            .await
    };
    let invites = scanner("127.0.0.2", "INVITE").await;
    let registers = scanner("127.0.0.3", "REGISTER").await;
    let mut peak = engine.counts();
    let flooding = tokio::spawn(async move {
        let (mut invites, mut registers) = (invites, registers);
        // A scanner ignores what it gets back (SIPp calls an answer to a call it already
        // ended a failure): what matters is that it sent everything and exited.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while (invites.exited().is_none() || registers.exited().is_none()) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent = (invites.exited().is_some(), registers.exited().is_some());
        (sent, invites.logs() + &registers.logs())
    });
    while !flooding.is_finished() {
        let now = engine.counts();
        peak.sip_legs = peak.sip_legs.max(now.sip_legs);
        peak.sip_dialogs = peak.sip_dialogs.max(now.sip_dialogs);
        peak.rtp_port_pairs = peak.rtp_port_pairs.max(now.rtp_port_pairs);
        peak.calls = peak.calls.max(now.calls);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (sent, logs) = flooding.await.unwrap();
    assert_eq!(
        sent,
        (true, true),
        "both scanners sent everything: {}",
        &logs[..logs.len().min(3000)]
    );
    assert_eq!(
        (peak.calls, peak.sip_legs, peak.sip_dialogs, peak.rtp_port_pairs),
        (before.calls, before.sip_legs, before.sip_dialogs, before.rtp_port_pairs),
        "the flood got no call, leg, dialog or port"
    );
    let after = engine.counts();
    assert!(
        after.sip_unsolicited_answered + after.sip_unsolicited_dropped >= u64::from(FLOOD) * 9 / 10,
        "the INVITEs are counted: {after:?}"
    );
    assert!(
        after.sip_unsolicited_answered < u64::from(FLOOD) / 10,
        "most are dropped unanswered: {after:?}"
    );
    assert!(
        after.sip_registrations_refused.iter().sum::<u64>() >= u64::from(FLOOD) * 9 / 10,
        "{after:?}"
    );

    // Every call was bridged through the flood and ended with the carrier's BYE.
    for call in calls {
        let (_, report) = call.await.unwrap();
        assert_eq!(
            (report.outcome.reason, report.outcome.phase),
            (EndReason::CustomerHungUp, Phase::Bridged),
            "{report:?}"
        );
    }
    assert!(finish(carrier).await.0);
    assert!(finish(phone).await.0);
    assert_all_released(&engine).await;
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "memory grew by {grown} KiB over the flood");
}

/// The agent's phone (playing `phone_scenario`) presses 5 during a bridged call: the
/// telephone-event packets the carrier's media receives (payload type 96, as the carrier
/// answered), once the call ended as it should.
async fn digit_packets_at_the_carrier(phone_scenario: &str, id: &str) -> Vec<Vec<u8>> {
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    // The carrier's media is this socket: what it receives is what the carrier would hear.
    let carrier_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone = one_call(phone_scenario, phone_port).spawn_async().await;
    let carrier = one_call("dtmf_carrier.xml", carrier_port)
        .set("sdp_port", carrier_media.local_addr().unwrap().port())
        .set("talk_ms", 2500)
        .spawn_async()
        .await;
    register_agent(&engine, phone_port).await;
    let call = place_call(&engine, id, carrier_port);
    let mut events = Vec::new();
    let mut buffer = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(len)) = tokio::time::timeout_at(deadline, carrier_media.recv(&mut buffer)).await {
        if len >= 16 && buffer[1] & 0x7F == 96 {
            events.push(buffer[..len].to_vec());
        }
    }
    let (_, report) = call.await.unwrap();
    assert_eq!(
        (report.outcome.reason, report.outcome.phase),
        (EndReason::CustomerHungUp, Phase::Bridged)
    );
    assert!(!events.is_empty(), "no telephone event arrived: {report:?}");
    assert_eq!(report.media.telephone_events, events.len() as u64, "{:?}", report.media);
    let (ok, logs) = finish(phone).await;
    assert!(ok && logs.contains("pressed 5"), "{logs}");
    assert!(finish(carrier).await.0);
    assert_all_released(&engine).await;
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digit_pressed_by_the_agent_reaches_the_carrier_under_the_carriers_payload_type() {
    if skip_without_sipp() {
        return;
    }
    // RFC 4733 from the phone (payload type 101), event 5 in the payload's first byte.
    let events = digit_packets_at_the_carrier("dtmf_phone.xml", "t-dtmf").await;
    assert!(events.iter().all(|p| p[12] == 5), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digit_sent_by_info_reaches_the_carrier_as_telephone_events() {
    if skip_without_sipp() {
        return;
    }
    let events = digit_packets_at_the_carrier("dtmf_info_phone.xml", "t-info").await;
    let field = |p: &Vec<u8>, range: std::ops::Range<usize>| p[range].iter().fold(0u32, |n, b| n << 8 | u32::from(*b));
    assert!(events.iter().all(|p| p[12] == 5), "{events:?}");
    // One event: a single start timestamp and source, consecutive sequence numbers, the
    // first packet marked, durations growing to 160 ms (1,280 samples), the end three times.
    assert!(events.iter().all(|p| field(p, 4..8) == field(&events[0], 4..8)));
    assert!(events.iter().all(|p| field(p, 8..12) == field(&events[0], 8..12)));
    for pair in events.windows(2) {
        assert_eq!(
            field(&pair[1], 2..4),
            (field(&pair[0], 2..4) + 1) % 65_536,
            "{events:?}"
        );
        assert!(field(&pair[1], 14..16) >= field(&pair[0], 14..16));
    }
    assert_eq!(events[0][1] & 0x80, 0x80, "marker on the first packet");
    assert!(events[1..].iter().all(|p| p[1] & 0x80 == 0));
    let ends: Vec<_> = events.iter().filter(|p| p[13] & 0x80 != 0).collect();
    assert_eq!(ends.len(), 3, "{events:?}");
    assert!(ends.iter().all(|p| field(p, 14..16) == 1_280));
    assert_eq!(events.len(), 8 + 2, "one per 20 ms, the end repeated: {events:?}");
}

/// A digit of the agent's toolbar keypad (`Engine::send_digit`) reaches the carrier as RFC 4733
/// events under the carrier's payload type; nothing for a call that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digit_from_the_toolbar_reaches_the_carrier_as_telephone_events() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let carrier_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone = one_call("dtmf_info_phone.xml", phone_port).spawn_async().await;
    let carrier = one_call("dtmf_carrier.xml", carrier_port)
        .set("sdp_port", carrier_media.local_addr().unwrap().port())
        .set("talk_ms", 4000)
        .spawn_async()
        .await;
    register_agent(&engine, phone_port).await;
    assert!(!engine.send_digit("t-keypad", '7'), "no such call yet");
    let call = place_call(&engine, "t-keypad", carrier_port);
    let mut events = Vec::new();
    let mut buffer = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Events flow only once the call is bridged: pressed again until some arrive.
    let mut pressed = tokio::time::interval(Duration::from_millis(500));
    while events.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = pressed.tick() => {
                engine.send_digit("t-keypad", '7');
            }
            Ok(len) = carrier_media.recv(&mut buffer) => {
                // The phone presses 5 by INFO meanwhile: the keypad's are the 7s.
                if len >= 16 && buffer[1] & 0x7F == 96 && buffer[12] == 7 {
                    events.push(buffer[..len].to_vec());
                }
            }
        }
    }
    assert!(!events.is_empty(), "no telephone event reached the carrier");
    assert!(!engine.send_digit("t-keypad", 'x'), "not a digit");
    let (_, report) = call.await.unwrap();
    assert_eq!(
        (report.outcome.reason, report.outcome.phase),
        (EndReason::CustomerHungUp, Phase::Bridged)
    );
    assert!(finish(carrier).await.0);
    assert!(finish(phone).await.0);
    assert_all_released(&engine).await;
}

/// Our RTP port for a leg, as the SIPp `reinvite_uas.xml` logged it from our INVITE.
async fn relay_port(sipp: &Sipp) -> u16 {
    assert!(
        sipp.wait_for_log_async("relay ", Duration::from_secs(20)).await,
        "{}",
        sipp.logs()
    );
    sipp.logs()
        .split("relay ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Both legs play `scenario`, which moves each leg's media from its `port_a` to its `port_b`
/// mid-call (the carrier then hangs up), while the agent talks all along: how many packets the
/// carrier heard at a and at b, once the call ended well and both SIPps succeeded; their logs.
async fn agent_heard_before_and_after_the_move(scenario: &str, id: &str) -> (usize, usize, Vec<String>) {
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let socket = || async { tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap() };
    let (agent_a, agent_b, carrier_a, carrier_b) = (socket().await, socket().await, socket().await, socket().await);
    let port = |s: &tokio::net::UdpSocket| s.local_addr().unwrap().port();
    let uas = async |sip_port: u16, a: u16, b: u16, hang_up: bool| {
        one_call(scenario, sip_port)
            .set("port_a", a)
            .set("port_b", b)
            .set("hangup", u8::from(hang_up))
            .spawn_async()
            .await
    };
    let phone = uas(phone_port, port(&agent_a), port(&agent_b), false).await;
    let carrier = uas(carrier_port, port(&carrier_a), port(&carrier_b), true).await;
    register_agent(&engine, phone_port).await;
    let call = place_call(&engine, id, carrier_port);
    let agent_leg_port = relay_port(&phone).await;
    let to_relay: SocketAddr = format!("127.0.0.1:{agent_leg_port}").parse().unwrap();

    // The agent talks from where it first said; count where the carrier hears it.
    let (mut heard_at_a, mut heard_at_b) = (0, 0);
    let (mut buffer_a, mut buffer_b) = ([0u8; 2048], [0u8; 2048]);
    let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    packet.extend([0xffu8; 160]);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while !call.is_finished() {
        tokio::select! {
            _ = tick.tick() => {
                let _ = agent_a.send_to(&packet, to_relay).await;
            }
            Ok(_) = carrier_a.recv(&mut buffer_a) => heard_at_a += 1,
            Ok(_) = carrier_b.recv(&mut buffer_b) => heard_at_b += 1,
        }
    }
    let (_, report) = call.await.unwrap();
    assert_eq!(
        (report.outcome.reason, report.outcome.phase),
        (EndReason::CustomerHungUp, Phase::Bridged),
        "{report:?}"
    );
    let mut logs = Vec::new();
    for sipp in [carrier, phone] {
        let (ok, log) = finish(sipp).await;
        assert!(ok, "{log}");
        logs.push(log);
    }
    assert_all_released(&engine).await;
    (heard_at_a, heard_at_b, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_resume_a_moved_stream_and_a_refresh_on_each_leg_keep_the_call_and_its_media() {
    if skip_without_sipp() {
        return;
    }
    // Both legs hold, resume elsewhere and refresh.
    let (heard_at_a, heard_at_b, logs) = agent_heard_before_and_after_the_move("reinvite_uas.xml", "t-reinvite").await;
    assert!(
        heard_at_a > 5 && heard_at_b > 20,
        "RTP followed the move: {heard_at_a} at a, {heard_at_b} at b"
    );
    assert!(logs.iter().all(|l| l.contains("refreshed")), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinvite_without_an_offer_gets_ours_and_its_answer_in_the_ack_moves_the_stream() {
    if skip_without_sipp() {
        return;
    }
    let (heard_at_a, heard_at_b, logs) =
        agent_heard_before_and_after_the_move("late_answer_uas.xml", "t-late-answer").await;
    assert!(
        heard_at_a > 5 && heard_at_b > 20,
        "RTP followed the answer in the ACK: {heard_at_a} at a, {heard_at_b} at b"
    );
    assert!(logs.iter().all(|l| l.contains("offered m=audio")), "{logs:?}");
}

/// A bridged call whose carrier plays `scenario` and whose session timer ends it (a refresh
/// refused, or a session let expire) with `sip_code`, no sooner than `at_least` after it was
/// placed; hung up on both legs. Returns the carrier's log.
async fn ended_by_the_session_timer(scenario: &str, id: &str, sip_code: u16, at_least: Duration) -> String {
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, false, 1, &[]).await;
    let carrier = one_call(scenario, carrier_port).spawn_async().await;
    register_agent(&engine, phone_port).await;
    let started = std::time::Instant::now();
    let (_, report) = place_call(&engine, id, carrier_port).await.unwrap();
    assert_outcome(
        &report,
        EndReason::SessionRefreshFailed,
        Side::Platform,
        Phase::Bridged,
        Some(sip_code),
    );
    assert!(started.elapsed() >= at_least, "{:?}", started.elapsed());
    let (ok, logs) = finish(carrier).await;
    assert!(ok, "{logs}");
    assert!(finish(phone).await.1.contains("BYE received"));
    assert_all_released(&engine).await;
    logs
}

/// Refreshes every second (half of `Session-Expires: 2`): the first accepted, the second
/// refused with 481.
async fn refreshed_then_refused(scenario: &str, id: &str) -> String {
    let logs = ended_by_the_session_timer(scenario, id, 481, Duration::from_millis(1800)).await;
    assert!(logs.contains("refresh refused"), "{logs}");
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_refresh_the_session_when_asked_and_a_refused_refresh_ends_the_call() {
    if skip_without_sipp() {
        return;
    }
    let logs = refreshed_then_refused("session_timer_uas.xml", "t-refresh").await;
    assert!(logs.contains("offered session timers: Supported: timer"), "{logs}");
    assert!(logs.contains("refresh answered"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_end_that_does_not_take_update_is_refreshed_by_reinvite() {
    if skip_without_sipp() {
        return;
    }
    let logs = refreshed_then_refused("session_timer_reinvite_uas.xml", "t-refresh-invite").await;
    assert!(logs.contains("refresh answered by re-INVITE m=audio"), "{logs}");
}

/// The customer's call through a first carrier behaving as `first`, with a second carrier as
/// fallback that answers: the outcome, how many INVITEs each carrier logged, and the trunks
/// the call reported moving to.
async fn with_a_fallback_trunk(first: &[(&str, &str)]) -> (CallReport, usize, usize, Vec<String>) {
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, first_port, second_port) = (free_port(), free_port(), free_port());
    let phone = uas(phone_port, false, 1, &[]).await;
    let first_carrier = uas(first_port, false, 1, first).await;
    let second_carrier = uas(second_port, false, 1, &[("talk_ms", "300")]).await;
    register_agent(&engine, phone_port).await;
    let mut request = outcall("t-failover", extension(), trunk(first_port, false, None), timers());
    request.fallback_trunks = vec![TrunkRoute {
        name: "carrier-b".into(),
        ..trunk(second_port, false, None)
    }];
    let mut handle = engine.start_preview_outcall(request).unwrap();
    let mut moved_to = Vec::new();
    let report = loop {
        match tokio::time::timeout(Duration::from_secs(30), handle.updates.recv()).await {
            Ok(Some(CallUpdate::CustomerTrunk { trunk })) => moved_to.push(trunk),
            Ok(Some(CallUpdate::Finished(report))) => break *report,
            Ok(Some(CallUpdate::Progress { .. } | CallUpdate::LegEnding { .. })) => {}
            other => panic!("the call did not end: {other:?}"),
        }
    };
    let invites = |sipp: &Sipp| sipp.logs().matches("INVITE call_id=").count();
    let counts = (invites(&first_carrier), invites(&second_carrier));
    drop((phone, first_carrier, second_carrier));
    assert_all_released(&engine).await;
    (report, counts.0, counts.1, moved_to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_answering_503_or_not_at_all_gives_way_to_the_next() {
    if skip_without_sipp() {
        return;
    }
    for first in [&[("mode", "error")][..], &[("mode", "silent")][..]] {
        let (report, first_invites, second_invites, moved_to) = with_a_fallback_trunk(first).await;
        assert_eq!(
            (report.outcome.reason, report.outcome.phase),
            (EndReason::CustomerHungUp, Phase::Bridged),
            "{first:?}: {report:?}"
        );
        assert_eq!((first_invites, second_invites), (1, 1), "{first:?}");
        assert_eq!(
            report.customer_trunk.as_deref(),
            Some("carrier-b"),
            "the trunk that carried it"
        );
        assert_eq!(moved_to, ["carrier-b"], "reported when the customer is called there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_customer_is_not_called_again_through_another_trunk() {
    if skip_without_sipp() {
        return;
    }
    let (report, first_invites, second_invites, moved_to) = with_a_fallback_trunk(&[("mode", "busy")]).await;
    assert_outcome(
        &report,
        EndReason::CustomerBusy,
        Side::Customer,
        Phase::CustomerLeg,
        Some(486),
    );
    assert_eq!((first_invites, second_invites), (1, 0));
    assert_eq!(report.customer_trunk.as_deref(), Some("carrier"));
    assert!(moved_to.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bye_from_outside_the_trunks_addresses_is_refused_and_the_call_stays_up() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, false, 1, &[]).await;
    let carrier = uas(carrier_port, false, 1, &[("talk_ms", "300")]).await;
    register_agent(&engine, phone_port).await;
    // The carrier may only send from 127.0.0.9; its BYE comes from 127.0.0.1.
    let mut route = trunk(carrier_port, false, None);
    route.sources = vec!["127.0.0.9/32".parse().unwrap()];
    let handle = engine
        .start_preview_outcall(outcall("t-source", extension(), route, timers()))
        .unwrap();
    let call = tokio::spawn(run_to_end(handle));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while engine.counts().sip_requests_from_wrong_source == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        engine.counts().sip_requests_from_wrong_source >= 1,
        "the BYE was not refused"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!call.is_finished(), "a BYE from elsewhere ended the call");
    assert!(engine.hang_up("t-source"));
    let (_, report) = call.await.unwrap();
    assert_eq!(
        (report.outcome.reason, report.outcome.phase),
        (EndReason::HangUpRequested, Phase::Bridged),
        "{report:?}"
    );
    drop((phone, carrier));
    assert_all_released(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_end_that_stops_refreshing_its_session_is_hung_up_when_it_expires() {
    if skip_without_sipp() {
        return;
    }
    // Answered, refreshed a second later for 2 s, then nothing: over about 3 s in all.
    let logs = ended_by_the_session_timer("far_end_timer_uas.xml", "t-expiry", 408, Duration::from_millis(2900)).await;
    assert!(logs.contains("refresh confirmed Session-Expires"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telephone_agent_can_be_shown_another_of_the_enterprises_numbers() {
    if skip_without_sipp() {
        return;
    }
    const AGENT_SEES: &str = "02160009999";
    let engine = engine(Duration::from_secs(30)).await;
    let carrier_port = free_port();
    let carrier = uas(carrier_port, false, 2, &[("talk_ms", "300")]).await;
    let mut request = outcall(
        "t-agent-clid",
        AgentPhone::Telephone {
            number: "13900139000".into(),
        },
        trunk(carrier_port, false, None),
        timers(),
    );
    request.agent_caller_id = Some(AGENT_SEES.into());
    let (_, report) = run_to_end(engine.start_preview_outcall(request).unwrap()).await;
    assert_eq!(report.outcome.phase, Phase::Bridged, "{report:?}");
    let (_, logs) = finish(carrier).await;
    assert!(
        logs.contains(&format!(
            "from_user={AGENT_SEES} pai_user={AGENT_SEES} ruri_user=13900139000"
        )),
        "the agent's telephone: {logs}"
    );
    assert!(
        logs.contains(&format!(
            "from_user={CALLER_ID} pai_user={CALLER_ID} ruri_user=13800138000"
        )),
        "the customer: {logs}"
    );
    assert_all_released(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_end_can_hand_the_refreshing_over_to_us() {
    if skip_without_sipp() {
        return;
    }
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, false, 1, &[]).await;
    let carrier = one_call("timer_handover_uas.xml", carrier_port).spawn_async().await;
    register_agent(&engine, phone_port).await;
    let (_, report) = place_call(&engine, "t-handover", carrier_port).await.unwrap();
    assert_eq!(
        (report.outcome.reason, report.outcome.phase),
        (EndReason::CustomerHungUp, Phase::Bridged),
        "{report:?}"
    );
    let (ok, logs) = finish(carrier).await;
    assert!(
        ok && logs.contains("handed over Session-Expires") && logs.contains("refreshed by the platform"),
        "{logs}"
    );
    assert!(finish(phone).await.1.contains("BYE received"));
    assert_all_released(&engine).await;
}

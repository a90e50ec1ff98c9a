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
use dialbridge_testkit::{free_port, Sipp, SippBuilder};

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
        },
        rtp_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: 32_000..=39_999,
        rtp_inactivity,
    };
    Engine::start(config, Arc::new(Accounts)).await.unwrap()
}

fn timers() -> CallTimers {
    CallTimers {
        agent_no_response: Duration::from_millis(800),
        agent_ring: Duration::from_secs(5),
        customer_no_response: Duration::from_millis(800),
        customer_ring: Duration::from_secs(5),
        max_duration: None,
    }
}

/// A SIPp UAS on a free port, playing a phone or the carrier.
fn uas(port: u16, tcp: bool, calls: u32, settings: &[(&str, &str)]) -> Sipp {
    let mut b = SippBuilder::new("phone_uas.xml", None)
        .args(["-p".to_owned(), port.to_string(), "-m".to_owned(), calls.to_string()])
        .media_port(free_port())
        .rtp_stream();
    if tcp {
        b = b.args(["-t", "t1"]);
    }
    for (name, value) in settings {
        b = b.set(name, value);
    }
    b.spawn()
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
        .spawn();
    let ok = tokio::task::spawn_blocking(move || (sipp.finish(Duration::from_secs(10)), sipp.logs()))
        .await
        .unwrap();
    assert!(ok.0, "registration failed: {}", ok.1);
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
    }
}

fn outcall(id: &str, agent_phone: AgentPhone, trunk: TrunkRoute, timers: CallTimers) -> PreviewOutcall {
    PreviewOutcall {
        unique_id: id.into(),
        agent_phone,
        customer_number: CUSTOMER.into(),
        caller_id: CALLER_ID.into(),
        trunk,
        timers,
    }
}

fn extension() -> AgentPhone {
    AgentPhone::Extension { aor: AOR.into() }
}

/// Collects a call's updates until it finishes (bounded).
async fn run_to_end(mut handle: CallHandle) -> (Vec<Progress>, CallReport) {
    let mut progress = Vec::new();
    loop {
        let update = tokio::time::timeout(Duration::from_secs(30), handle.updates.recv())
            .await
            .expect("the call must end")
            .expect("the call reports its end");
        match update {
            CallUpdate::Progress { progress: p, .. } => progress.push(p),
            CallUpdate::Finished(report) => return (progress, report),
        }
    }
}

/// Waits until the engine holds nothing of any call.
async fn assert_all_released(engine: &Engine) {
    let zero = EngineCounts {
        calls: 0,
        sip_legs: 0,
        sip_dialogs: 0,
        rtp_port_pairs: 0,
    };
    for _ in 0..200 {
        if engine.counts() == zero {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("left behind: {:?}", engine.counts());
}

async fn finish(sipp: Sipp) -> (bool, String) {
    let mut sipp = sipp;
    tokio::task::spawn_blocking(move || (sipp.finish(Duration::from_secs(20)), sipp.logs()))
        .await
        .unwrap()
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
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(
        phone_port,
        false,
        1,
        &[("talk_ms", "1500"), ("expect_from_user", CUSTOMER)],
    );
    let carrier = uas(
        carrier_port,
        false,
        1,
        &[
            ("expect_from_user", CALLER_ID),
            ("expect_pai_user", CALLER_ID),
            ("expect_ruri_user", CUSTOMER),
        ],
    );
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
    let engine = engine(Duration::from_secs(30)).await;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, false, 1, &[]);
    let carrier = uas(carrier_port, false, 1, &[("talk_ms", "1000")]);
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

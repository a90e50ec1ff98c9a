//! `bench/run`: full preview outcalls (agent leg, customer leg, bridge, short hold, BYE)
//! through the engine's API at increasing rates, with SIPp playing the agent's phone and the
//! carrier (signalling only), beside a SIPp-to-SIPp loop measured in the same run.
//!
//! Reports, per rate: calls placed, failures, setup latency (request to bridge) p50/p95, and
//! the engine process's CPU seconds per call; then the highest rate with zero failures (the
//! RFC 7502 figure) and the latency dialbridge adds over two SIPp-to-SIPp call setups.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use dialbridge_engine::*;
use dialbridge_sip::{AccountDirectory, SipConfig};
use dialbridge_testkit::{free_port, Sipp, SippBuilder};

#[derive(Parser)]
#[command(about = "Call-rate benchmark of dialbridge's engine against SIPp")]
struct Args {
    /// Call attempt rates to try, per second, in increasing order.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,300,400,500,600,800,1000")]
    rates: Vec<u32>,
    /// Seconds of calls at each rate.
    #[arg(long, default_value_t = 5)]
    step_secs: u64,
    /// How long the carrier holds a bridged call before its BYE, ms.
    #[arg(long, default_value_t = 200)]
    hold_ms: u64,
    /// Keep going after the first rate with failures.
    #[arg(long)]
    no_stop: bool,
}

const AOR: &str = "3000001-801";
const PASSWORD: &str = "bench-secret";

struct OneAccount;

impl AccountDirectory for OneAccount {
    fn sip_password(&self, aor: &str) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        let found = (aor == AOR).then(|| PASSWORD.to_owned());
        Box::pin(async move { found })
    }
}

/// User + system CPU seconds of a process, from /proc (clock ticks are 1/100 s on Linux).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn uas(port: u16, settings: &[(&str, String)]) -> Sipp {
    let mut b = SippBuilder::new("phone_uas.xml", None)
        .args([
            "-p".to_owned(),
            port.to_string(),
            "-m".to_owned(),
            "10000000".to_owned(),
        ])
        .args(["-timeout", "3600s", "-max_socket", "60000"])
        .media_port(free_port())
        .args(["-key", "rtp_stream", "pause"]);
    for (name, value) in settings {
        b = b.set(name, value);
    }
    b.spawn()
}

struct StepResult {
    rate: u32,
    attempted: usize,
    failed: usize,
    p50: Duration,
    p95: Duration,
    cpu_per_call_ms: f64,
    peer_cpu_per_call_ms: f64,
}

/// The same rate SIPp-to-SIPp: one call setup per call, with the same hold.
fn baseline(rate: u32, step_secs: u64, hold_ms: u64) -> anyhow::Result<StepResult> {
    let port = free_port();
    let callee = uas(port, &[("ring_ms", "0".into())]);
    std::thread::sleep(Duration::from_millis(300));
    let dir = std::env::temp_dir().join(format!("dialbridge-bench-{}-{rate}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let stats = dir.join("stats.csv");
    let calls = u64::from(rate) * step_secs;
    let mut caller = SippBuilder::new("caller_uac.xml", Some(format!("127.0.0.1:{port}").parse()?))
        .args(["-r".to_owned(), rate.to_string(), "-m".to_owned(), calls.to_string()])
        .args(["-p".to_owned(), free_port().to_string()])
        .args([
            "-trace_stat".to_owned(),
            "-stf".to_owned(),
            stats.display().to_string(),
            "-fd".to_owned(),
            "1".to_owned(),
        ])
        .set("hold_ms", hold_ms)
        .media_port(free_port())
        .spawn();
    let caller_ok = caller.finish(Duration::from_secs(step_secs * 4 + 30));
    drop(callee);
    let text = std::fs::read_to_string(&stats).context("SIPp statistics")?;
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
    let (Some(header), Some(last)) = (rows.first(), rows.last()) else {
        bail!("empty SIPp statistics")
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i).copied())
            .unwrap_or("0")
    };
    let failed: usize = column("FailedCall(C)").parse().unwrap_or(0) + usize::from(!caller_ok);
    let successful: usize = column("SuccessfulCall(C)").parse().unwrap_or(0);
    // "HH:MM:SS:mmmuuu": the cumulative mean setup time.
    let mean = column("ResponseTimesetup(C)");
    let parts: Vec<f64> = mean.split(':').filter_map(|p| p.parse().ok()).collect();
    let mean = if parts.len() == 4 {
        Duration::from_secs_f64(parts[0] * 3600.0 + parts[1] * 60.0 + parts[2] + parts[3] / 1e6)
    } else {
        Duration::ZERO
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(StepResult {
        rate,
        attempted: successful + failed,
        failed,
        p50: mean,
        p95: Duration::ZERO,
        cpu_per_call_ms: 0.0,
        peer_cpu_per_call_ms: 0.0,
    })
}

async fn engine_step(engine: &Engine, route: &TrunkRoute, rate: u32, step_secs: u64, peers: &[u32]) -> StepResult {
    let timers = CallTimers {
        agent_no_response: Duration::from_secs(4),
        agent_ring: Duration::from_secs(30),
        customer_no_response: Duration::from_secs(4),
        customer_ring: Duration::from_secs(60),
        max_duration: None,
    };
    let cpu_before = cpu_seconds(None);
    let peers_before: f64 = peers.iter().map(|p| cpu_seconds(Some(*p))).sum();
    let total = rate as usize * step_secs as usize;
    let started = Instant::now();
    let mut calls = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tokio::time::sleep_until(due.into()).await;
        let request = PreviewOutcall {
            unique_id: format!("bench-{rate}-{i}"),
            agent_phone: AgentPhone::Extension { aor: AOR.into() },
            customer_number: "13800138000".into(),
            caller_id: "02160001234".into(),
            trunk: route.clone(),
            timers,
        };
        let began = Instant::now();
        match engine.start_preview_outcall(request) {
            Ok(mut handle) => calls.push(tokio::spawn(async move {
                let mut setup = None;
                while let Some(update) = handle.updates.recv().await {
                    match update {
                        CallUpdate::Progress {
                            progress: Progress::CustomerAnswered,
                            ..
                        } => setup = Some(began.elapsed()),
                        CallUpdate::Progress { .. } => {}
                        CallUpdate::Finished(report) => {
                            let ok = report.outcome.phase == Phase::Bridged
                                && report.outcome.reason == EndReason::CustomerHungUp;
                            return if ok { setup } else { None };
                        }
                    }
                }
                None
            })),
            Err(_) => calls.push(tokio::spawn(async { None })),
        }
    }
    let mut setups = Vec::new();
    let mut failed = 0;
    for call in calls {
        match call.await.ok().flatten() {
            Some(setup) => setups.push(setup),
            None => failed += 1,
        }
    }
    let cpu = cpu_seconds(None) - cpu_before;
    let peers_cpu: f64 = peers.iter().map(|p| cpu_seconds(Some(*p))).sum::<f64>() - peers_before;
    setups.sort();
    StepResult {
        rate,
        attempted: total,
        failed,
        p50: percentile(&setups, 0.5),
        p95: percentile(&setups, 0.95),
        cpu_per_call_ms: cpu * 1000.0 / total.max(1) as f64,
        peer_cpu_per_call_ms: peers_cpu * 1000.0 / total.max(1) as f64,
    }
}

async fn wait_idle(engine: &Engine) {
    for _ in 0..600 {
        let c = engine.counts();
        if c.calls == 0 && c.sip_legs == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "dialbridge call-rate benchmark: {cores} cores, {} s per rate, hold {} ms",
        args.step_secs, args.hold_ms
    );

    let config = EngineConfig {
        sip: SipConfig {
            listen: "127.0.0.1:0".parse()?,
            transports: vec![SipTransport::Udp],
            public_ip: None,
            user_agent: "dialbridge-bench".into(),
            call_id_domain: "bench.dialbridge".into(),
            registrar: RegistrarSettings::default(),
            t1: Duration::from_millis(500),
            server_key: [1; 32],
        },
        rtp_ip: "127.0.0.1".parse()?,
        rtp_ports: 40_000..=59_999,
        rtp_inactivity: Duration::from_secs(60),
    };
    let engine = Engine::start(config, Arc::new(OneAccount)).await?;
    let (phone_port, carrier_port) = (free_port(), free_port());
    let phone = uas(phone_port, &[("ring_ms", "0".into())]);
    let carrier = uas(
        carrier_port,
        &[("ring_ms", "0".into()), ("talk_ms", args.hold_ms.to_string())],
    );
    let mut register = SippBuilder::new("register.xml", Some(engine.sip_addr()))
        .args([
            "-s",
            AOR,
            "-au",
            AOR,
            "-ap",
            PASSWORD,
            "-m",
            "1",
            "-p",
            &free_port().to_string(),
        ])
        .set("contact_port", phone_port)
        .spawn();
    if !tokio::task::block_in_place(|| register.finish(Duration::from_secs(10))) {
        bail!("the benchmark phone could not register: {}", register.logs());
    }
    let carrier_address: SocketAddr = format!("127.0.0.1:{carrier_port}").parse()?;
    let route = TrunkRoute {
        name: "bench".into(),
        address: carrier_address,
        host: carrier_address.to_string(),
        transport: SipTransport::Udp,
        credential: None,
    };
    let peers = [phone.pid(), carrier.pid()];

    println!();
    println!("| rate/s | calls | failed | setup p50 | setup p95 | engine CPU ms/call | SIPp CPU ms/call | baseline failed | baseline setup (mean) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut best: Option<(u32, StepResult, StepResult)> = None;
    for rate in &args.rates {
        let ours = engine_step(&engine, &route, *rate, args.step_secs, &peers).await;
        wait_idle(&engine).await;
        let base = tokio::task::block_in_place(|| baseline(*rate, args.step_secs, args.hold_ms))?;
        println!(
            "| {} | {} | {} | {:.1} ms | {:.1} ms | {:.3} | {:.3} | {} | {:.1} ms |",
            ours.rate,
            ours.attempted,
            ours.failed,
            ours.p50.as_secs_f64() * 1e3,
            ours.p95.as_secs_f64() * 1e3,
            ours.cpu_per_call_ms,
            ours.peer_cpu_per_call_ms,
            base.failed,
            base.p50.as_secs_f64() * 1e3,
        );
        if ours.failed == 0 {
            best = Some((*rate, ours, base));
        } else if !args.no_stop {
            break;
        }
    }
    println!();
    match best {
        Some((rate, ours, base)) => {
            let added = ours.p50.as_secs_f64() * 1e3 - 2.0 * base.p50.as_secs_f64() * 1e3;
            println!(
                "highest rate with zero failed calls: {rate} calls/s (target 500: {:.0} %)",
                f64::from(rate) / 5.0
            );
            println!("engine CPU per call at that rate: {:.3} ms", ours.cpu_per_call_ms);
            println!(
                "setup latency added by dialbridge: {added:.1} ms (p50 {:.1} ms for two legs, against 2 x {:.1} ms SIPp-to-SIPp)",
                ours.p50.as_secs_f64() * 1e3,
                base.p50.as_secs_f64() * 1e3
            );
        }
        None => println!("no rate completed without failures"),
    }
    drop(phone);
    drop(carrier);
    engine.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

//! `events`: what the live event stream costs. N WebSockets subscribed with one admin token
//! (each socket sees every event of the enterprise, as each agent's toolbar will see its own):
//! dialbridge's CPU while they sit idle, beside the same span with no socket open, measured in
//! the same run; then events flowing (agents' status changes through `ChangeStatus`, each one
//! outbox event): how long after the event was written every socket has it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{cpu_seconds, ms, percentile, unix_now};
use crate::world::{cno, World};

#[derive(Args, Clone)]
pub struct EventsArgs {
    /// WebSockets subscribed.
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Seconds of each idle measurement (with and without the sockets).
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    /// Events per second while they flow.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Seconds of flowing events.
    #[arg(long, default_value_t = 10)]
    pub flow_secs: u64,
}

impl EventsArgs {
    pub fn smoke() -> Self {
        EventsArgs {
            sockets: 20,
            idle_secs: 1,
            rate: 5,
            flow_secs: 1,
        }
    }
}

#[derive(Serialize, Clone, Default)]
pub struct Report {
    pub sockets: usize,
    /// dialbridge's CPU, % of one core, idle with no socket open (the baseline).
    pub baseline_idle_cpu_percent: f64,
    /// The same with every socket open and nothing happening.
    pub sockets_idle_cpu_percent: f64,
    pub events: usize,
    /// Events × sockets, and how many of those arrived.
    pub deliveries_expected: usize,
    pub deliveries_received: usize,
    /// From the event's commit (its `time`) to its arrival at a socket.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// dialbridge's CPU while events flowed, % of one core.
    pub flowing_cpu_percent: f64,
}

const AGENTS: usize = 4;

pub async fn run(args: EventsArgs, out: &Path) -> anyhow::Result<Report> {
    println!(
        "events: {} WebSockets on one admin token, {} s idle, then {} events/s for {} s",
        args.sockets, args.idle_secs, args.rate, args.flow_secs
    );
    let world = World::start(AGENTS).await?;
    let pid = world.pid();
    let idle = Duration::from_secs(args.idle_secs);
    let cpu_percent = |before: f64, span: Duration| (cpu_seconds(pid) - before) / span.as_secs_f64() * 100.0;

    // Settle after start-up, then the baseline: no socket.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_seconds(pid);
    tokio::time::sleep(idle).await;
    let baseline_idle_cpu_percent = cpu_percent(before, idle);

    let session: serde_json::Value = world
        .client
        .get(format!("http://{}/api/v1/session?{}", world.http, world.admin_auth()))
        .send()
        .await?
        .json()
        .await?;
    let token = session["token"].as_str().context("no token")?.to_owned();
    let (stop, stopped) = watch::channel(false);
    let mut readers = tokio::task::JoinSet::new();
    let (opened, mut open) = tokio::sync::mpsc::channel::<()>(args.sockets.max(1));
    for _ in 0..args.sockets {
        let url = format!("ws://{}/api/v1/events?token={token}", world.http);
        let (mut stopped, opened) = (stopped.clone(), opened.clone());
        readers.spawn(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
            let mut arrivals: Vec<(i64, f64)> = Vec::new();
            let mut snapshot_seen = false;
            loop {
                tokio::select! {
                    message = socket.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            let now = unix_now() * 1000.0;
                            let value: serde_json::Value = serde_json::from_str(text.as_str())?;
                            if value["type"] == "snapshot" {
                                snapshot_seen = true;
                                let _ = opened.send(()).await;
                            } else if let (Some(seq), Some(time)) = (value["seq"].as_i64(), value["time"].as_f64()) {
                                arrivals.push((seq, now - time));
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(e.into()),
                        None => break,
                    },
                    _ = stopped.changed() => break,
                }
            }
            anyhow::ensure!(snapshot_seen, "no snapshot");
            Ok::<_, anyhow::Error>(arrivals)
        });
    }
    drop(opened);
    for _ in 0..args.sockets {
        tokio::time::timeout(Duration::from_secs(60), open.recv())
            .await
            .context("sockets did not all open within 60 s")?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_seconds(pid);
    tokio::time::sleep(idle).await;
    let sockets_idle_cpu_percent = cpu_percent(before, idle);
    println!(
        "  idle: {baseline_idle_cpu_percent:.2} % of a core without sockets, {sockets_idle_cpu_percent:.2} % with {}",
        args.sockets
    );

    // Events flowing: each status change is one outbox event every socket receives.
    let events = (args.rate as usize) * (args.flow_secs as usize);
    let start = Instant::now();
    let before = cpu_seconds(pid);
    for i in 0..events {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / f64::from(args.rate))).into()).await;
        let change = if (i / AGENTS).is_multiple_of(2) {
            "type=2&description=bench"
        } else {
            "type=1"
        };
        let url = format!(
            "http://{}/interface/client/ChangeStatus?{}&cno={}&{change}",
            world.http,
            world.admin_auth(),
            cno(i % AGENTS)
        );
        let reply: serde_json::Value = world.client.get(&url).send().await?.json().await?;
        anyhow::ensure!(reply["code"] == "0", "ChangeStatus: {reply}");
    }
    let flowed = start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flowing_cpu_percent = cpu_percent(before, flowed + Duration::from_secs(3));
    let _ = stop.send(true);
    let mut latencies = Vec::new();
    while let Some(done) = readers.join_next().await {
        for (_, latency_ms) in done.context("join")?? {
            latencies.push(Duration::from_secs_f64(latency_ms.max(0.0) / 1000.0));
        }
    }
    latencies.sort();
    let report = Report {
        sockets: args.sockets,
        baseline_idle_cpu_percent,
        sockets_idle_cpu_percent,
        events,
        deliveries_expected: events * args.sockets,
        deliveries_received: latencies.len(),
        latency_p50_ms: ms(percentile(&latencies, 0.5)),
        latency_p99_ms: ms(percentile(&latencies, 0.99)),
        latency_max_ms: latencies.last().copied().map_or(0.0, ms),
        flowing_cpu_percent,
    };
    println!(
        "  flowing: {} of {} deliveries, commit → socket p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.1} % of a core",
        report.deliveries_received,
        report.deliveries_expected,
        report.latency_p50_ms,
        report.latency_p99_ms,
        report.latency_max_ms,
        report.flowing_cpu_percent
    );
    crate::write_json(out, "events", &report)?;
    Ok(report)
}

/// A smoke run must deliver every event to every socket.
pub fn smoke_failures(report: &Report) -> Vec<String> {
    if report.deliveries_received == report.deliveries_expected {
        Vec::new()
    } else {
        vec![format!(
            "events: {} of {} deliveries arrived",
            report.deliveries_received, report.deliveries_expected
        )]
    }
}

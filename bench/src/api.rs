//! `api`: PreviewOutcall request latency at steady request rates, with agents enough that none
//! is busy (wrap-up 0; their phones answer 486 at once, so each call ends in milliseconds), the
//! rejection path (a wrong `pwd`: `res` 3; past ten wrong ones an agent's guesses from one
//! address are throttled, answered 3 unheard) at higher rates, and accepted requests again at
//! the first rate while clients on other addresses guess every agent's password.
//!
//! Latency runs from the moment a request was due (open loop: a slow reply does not delay the
//! next request) to the end of its reply.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::stats::{ms, percentile};
use crate::world::World;

#[derive(Args, Clone)]
pub struct ApiArgs {
    /// Request rates of accepted PreviewOutcalls, per second.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    pub rates: Vec<u32>,
    /// Request rates of refused ones (wrong password), per second.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,4000")]
    pub refused_rates: Vec<u32>,
    /// Seconds at each rate.
    #[arg(long, default_value_t = 10)]
    pub step_secs: u64,
    /// Clients guessing agents' passwords from other addresses (127.0.0.2-5) during a last
    /// step of accepted PreviewOutcalls at the first rate (the first step is its baseline).
    #[arg(long, default_value_t = 16)]
    pub flood_clients: usize,
}

impl ApiArgs {
    pub fn smoke() -> Self {
        ApiArgs {
            rates: vec![20],
            refused_rates: vec![40],
            step_secs: 1,
            flood_clients: 2,
        }
    }
}

#[derive(Serialize, Clone)]
pub struct Step {
    pub path: String,
    pub rate: u32,
    pub requests: usize,
    /// How many replies carried each `res` ("error" for a failed request).
    pub replies: BTreeMap<String, usize>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Guesses the flood sent during the step (the flood step only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guesses: Option<usize>,
}

pub async fn run(args: ApiArgs, out: &Path) -> anyhow::Result<Vec<Step>> {
    let most = args.rates.iter().copied().max().unwrap_or(1);
    // An agent comes round again after two seconds at the highest rate.
    let agents = (most as usize * 2).max(10);
    println!(
        "api: {agents} agents whose phones answer 486 at once, {} s per rate",
        args.step_secs
    );
    let world = World::start(agents).await?;
    let inf = world.dir.path().join("no-media.csv");
    std::fs::write(&inf, "SEQUENTIAL\n9\n")?;
    let _phones = world.phones("busy", &inf);
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!();
    println!("| path | rate/s | requests | replies | p50 | p99 | p99.9 | max |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    let mut steps = Vec::new();
    let mut next_call = 0usize;
    // Accepted calls while strangers guess passwords come right after the accepted steps (the
    // first one, at the same rate, is their baseline) and before the refused ones: those send
    // wrong passwords from this address, and once an agent's budget is spent its requests from
    // here are refused unheard, the right password too.
    let first_rate = args.rates.first().copied().unwrap_or(20);
    let plan = args
        .rates
        .iter()
        .map(|r| ("accepted", *r))
        .chain(std::iter::once((FLOODED, first_rate)))
        .chain(args.refused_rates.iter().map(|r| ("refused (res 3)", *r)));
    for (path, rate) in plan {
        let wrong = path.starts_with("refused");
        let flood = (path == FLOODED).then(|| Flood::start(&world, args.flood_clients));
        let mut step = step(&world, path, rate, args.step_secs, wrong, &mut next_call).await?;
        if let Some(flood) = flood {
            step.guesses = Some(flood.stop().await);
        }
        println!(
            "| {}{} | {} | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            step.path,
            step.guesses
                .map(|g| format!(" ({g} guesses meanwhile)"))
                .unwrap_or_default(),
            step.rate,
            step.requests,
            step.replies
                .iter()
                .map(|(res, n)| format!("{res}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            step.p50_ms,
            step.p99_ms,
            step.p999_ms,
            step.max_ms
        );
        steps.push(step);
        world.wait_idle(Duration::from_secs(30)).await?;
    }
    crate::write_json(out, "api", &steps)?;
    Ok(steps)
}

/// The step measured during a flood of guesses.
const FLOODED: &str = "accepted, during a flood of guesses";

/// Clients sending wrong passwords for every agent in turn, each from one of four other
/// loopback addresses, as fast as they are answered.
struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: tokio::task::JoinSet<usize>,
}

impl Flood {
    fn start(world: &World, clients: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..clients {
            let source = std::net::IpAddr::from([127, 0, 0, 2 + (i % 4) as u8]);
            let Ok(client) = reqwest::Client::builder().local_address(source).build() else {
                continue;
            };
            let urls: Vec<String> = (0..world.agents)
                .map(|agent| {
                    let wrong = dialbridge_store::md5_hex(&format!("guess {i} {agent}"));
                    world.outcall_url(agent, "13800138000", Some(&wrong))
                })
                .collect();
            let stop = stop.clone();
            tasks.spawn(async move {
                let mut sent = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client.get(&urls[(sent + i) % urls.len()]).send().await;
                    sent += 1;
                }
                sent
            });
        }
        Self { stop, clients: tasks }
    }

    /// Stops the clients: how many guesses they sent.
    async fn stop(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut sent = 0;
        while let Some(done) = self.clients.join_next().await {
            sent += done.unwrap_or(0);
        }
        sent
    }
}

/// What went wrong in a run that should have been clean.
pub fn smoke_failures(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter(|s| {
            if s.path == FLOODED {
                // A login not yet remembered may find the hash queue full: 10, honestly.
                let answered = s.replies.get("0").copied().unwrap_or(0) + s.replies.get("10").copied().unwrap_or(0);
                return answered != s.requests || !s.replies.contains_key("0");
            }
            let expected = if s.path.starts_with("accepted") { "0" } else { "3" };
            s.replies.get(expected).copied().unwrap_or(0) != s.requests
        })
        .map(|s| format!("{} at {}/s: replies {:?}", s.path, s.rate, s.replies))
        .collect()
}

async fn step(
    world: &World,
    path: &str,
    rate: u32,
    seconds: u64,
    wrong_password: bool,
    next_call: &mut usize,
) -> anyhow::Result<Step> {
    let total = rate as usize * seconds as usize;
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    let wrong = dialbridge_store::md5_hex("not the password");
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / f64::from(rate));
        tokio::time::sleep_until(due.into()).await;
        let call = *next_call;
        *next_call += 1;
        let url = world.outcall_url(
            call % world.agents,
            &format!("13{call:09}"),
            wrong_password.then_some(wrong.as_str()),
        );
        let client = world.client.clone();
        requests.spawn(async move {
            let res = match client.get(&url).send().await {
                Ok(reply) => reply
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["res"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unreadable".into()),
                Err(_) => "error".into(),
            };
            (res, due.elapsed())
        });
    }
    let mut replies = BTreeMap::new();
    let mut latencies = Vec::with_capacity(total);
    while let Some(done) = requests.join_next().await {
        let (res, latency) = done.context("request task")?;
        *replies.entry(res).or_insert(0) += 1;
        latencies.push(latency);
    }
    latencies.sort();
    Ok(Step {
        path: path.to_owned(),
        rate,
        requests: total,
        replies,
        p50_ms: ms(percentile(&latencies, 0.5)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        p999_ms: ms(percentile(&latencies, 0.999)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        guesses: None,
    })
}

//! `rate`: full preview outcalls through `/interface/PreviewOutcall` (async) at increasing rates;
//! beside each step, SIPp calling SIPp directly and SIPp calling SIPp through Kamailio (a
//! stateful proxy) at the same rate.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use dialbridge_testkit::{free_port, SippBuilder};
use serde::Serialize;

use crate::kamailio::Kamailio;
use crate::stats::{cpu_seconds, ms, percentile, tree_cpu_seconds, unix_now};
use crate::world::{sipp_failed_calls, sipp_log_lines, World};

#[derive(Args, Clone)]
pub struct RateArgs {
    /// Call attempt rates per second, increasing; after the first with failures, the gap to
    /// the last clean rate is halved twice (RFC 7502's search).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,200,300,400,500,600,800,1000,1200,1500"
    )]
    pub rates: Vec<u32>,
    /// A call whose agent phone rings later than this after the request counts as failed
    /// (RFC 7502 leaves the time-out to the tester: a click-to-call slower than this is broken
    /// for the agent who clicked).
    #[arg(long, default_value_t = 1000)]
    pub setup_limit_ms: u64,
    /// Seconds of calls at each rate.
    #[arg(long, default_value_t = 5)]
    pub step_secs: u64,
    /// How long the carrier holds each bridged call before its BYE, ms.
    #[arg(long, default_value_t = 1000)]
    pub hold_ms: u64,
    /// Skip the Kamailio peer (it is installed by bench/run).
    #[arg(long)]
    pub no_kamailio: bool,
}

impl RateArgs {
    pub fn smoke() -> Self {
        RateArgs {
            rates: vec![20],
            setup_limit_ms: 1000,
            step_secs: 1,
            hold_ms: 200,
            no_kamailio: false,
        }
    }
}

#[derive(Serialize, Clone, Default)]
pub struct Step {
    pub rate: u32,
    pub calls: usize,
    /// Calls that did not both reach the bridge (carrier's INVITE answered) and end with the
    /// carrier's BYE and the phone's BYE, as SIPp logged them, or whose agent phone rang later
    /// than the set-up limit after the request.
    pub failed: usize,
    /// Of those, the calls that completed but too late.
    pub too_slow: usize,
    /// SIPp's own failed-call counters (phone + carrier) over the step, as a cross-check.
    pub sipp_failed: u64,
    pub cpu_ms_per_call: f64,
    pub sipp_cpu_ms_per_call: f64,
    pub request_to_agent_invite_p50_ms: f64,
    pub request_to_agent_invite_p99_ms: f64,
    pub answer_to_customer_invite_p50_ms: f64,
    pub answer_to_customer_invite_p99_ms: f64,
    pub baseline_failed: u64,
    pub baseline_sipp_cpu_ms_per_call: f64,
    pub baseline_setup_mean_ms: f64,
    pub kamailio_failed: Option<u64>,
    pub kamailio_cpu_ms_per_call: Option<f64>,
}

#[derive(Serialize)]
pub struct Report {
    pub steps: Vec<Step>,
    pub highest_clean_rate: Option<u32>,
    pub highest_rate_within_0_1_percent: Option<u32>,
}

pub async fn run(args: RateArgs, out: &Path) -> anyhow::Result<Report> {
    let max_rate = args.rates.iter().copied().max().unwrap_or(1);
    // Every agent takes one call at a time: enough agents that one is free again long before
    // its turn comes round.
    let agents = ((f64::from(max_rate) * (args.hold_ms as f64 / 1e3 + 0.5) * 1.5) as usize).max(10);
    println!(
        "rate: {agents} agents, {} s per step, hold {} ms, a call fails if the agent's phone rings more than {} ms after the request",
        args.step_secs, args.hold_ms, args.setup_limit_ms
    );
    let world = World::start(agents).await?;
    let inf = world.dir.path().join("no-media.csv");
    // Signalling only: the SDP offers the discard port; nothing is sent to it.
    std::fs::write(&inf, "SEQUENTIAL\n9\n")?;
    let phones = world.phones("answer", &inf);
    let carrier = world.carrier(Duration::from_millis(args.hold_ms), &inf);
    let kamailio = if args.no_kamailio {
        None
    } else {
        Some(Kamailio::start(world.dir.path())?)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut steps: Vec<Step> = Vec::new();
    let mut next_call = 0usize;
    let mut rates: Vec<u32> = args.rates.clone();
    let mut refinements = 0;
    let mut i = 0;
    println!();
    println!("| rate/s | calls | failed (of which too slow) | SIPp-counted failures | CPU ms/call | SIPp CPU ms/call | request→agent INVITE p50/p99 | agent 200→customer INVITE p50/p99 | SIPp→SIPp failed | SIPp→SIPp CPU ms/call | Kamailio failed | Kamailio CPU ms/call |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    while i < rates.len() {
        let rate = rates[i];
        i += 1;
        let mut step = dialbridge_step(&world, &phones, &carrier, rate, &args, &mut next_call).await?;
        let (failed, cpu, setup) = tokio::task::block_in_place(|| baseline(rate, &args, None))?;
        step.baseline_failed = failed;
        step.baseline_sipp_cpu_ms_per_call = cpu;
        step.baseline_setup_mean_ms = setup;
        if let Some(k) = &kamailio {
            let (failed, _, _) = tokio::task::block_in_place(|| baseline(rate, &args, Some(k)))?;
            step.kamailio_failed = Some(failed);
            step.kamailio_cpu_ms_per_call = Some(k.last_cpu_ms_per_call());
        }
        print_row(&step);
        let ratio = step.failed as f64 / step.calls.max(1) as f64;
        steps.push(step.clone());
        if step.failed > 0 && refinements < 2 {
            // Halve the gap to the last clean rate, then stop climbing.
            let clean = steps
                .iter()
                .filter(|s| s.failed == 0)
                .map(|s| s.rate)
                .max()
                .unwrap_or(0);
            let middle = (clean + rate) / 2;
            rates.truncate(i);
            if clean > 0 && middle > clean && middle < rate && (rate - clean) * 10 > rate {
                rates.push(middle);
                refinements += 1;
            }
        } else if ratio > 0.001 {
            break;
        }
    }
    drop(kamailio);
    let report = Report {
        highest_clean_rate: steps.iter().filter(|s| s.failed == 0).map(|s| s.rate).max(),
        highest_rate_within_0_1_percent: steps
            .iter()
            .filter(|s| s.failed as f64 <= s.calls as f64 * 0.001)
            .map(|s| s.rate)
            .max(),
        steps,
    };
    println!();
    match report.highest_clean_rate {
        Some(rate) => println!("highest rate with zero failed calls: {rate}/s (target 500/s)"),
        None => println!("no rate completed without failures"),
    }
    if let Some(rate) = report.highest_rate_within_0_1_percent {
        println!("highest rate with at most 0.1 % failed calls: {rate}/s");
    }
    if let Some(best) = report.steps.iter().filter(|s| s.failed == 0).max_by_key(|s| s.rate) {
        if let Some(k) = best.kamailio_cpu_ms_per_call.filter(|k| *k > 0.0) {
            println!(
                "CPU per call at {}/s: dialbridge {:.3} ms per full preview outcall, Kamailio {:.3} ms per proxied call: {:.1} x (target <= 3 x)",
                best.rate,
                best.cpu_ms_per_call,
                k,
                best.cpu_ms_per_call / k
            );
        }
    }
    crate::write_json(out, "rate", &report)?;
    Ok(report)
}

/// What went wrong in a run that should have been clean.
pub fn smoke_failures(report: &Report) -> Vec<String> {
    let mut failures = Vec::new();
    for s in &report.steps {
        if s.failed > 0 || s.sipp_failed > 0 {
            failures.push(format!(
                "rate {}: {} failed calls through dialbridge",
                s.rate,
                s.failed.max(s.sipp_failed as usize)
            ));
        }
        if s.baseline_failed > 0 {
            failures.push(format!(
                "rate {}: {} failed SIPp-to-SIPp calls",
                s.rate, s.baseline_failed
            ));
        }
        if s.kamailio_failed.is_some_and(|f| f > 0) {
            failures.push(format!("rate {}: failed calls through Kamailio", s.rate));
        }
    }
    failures
}

async fn dialbridge_step(
    world: &World,
    phones: &dialbridge_testkit::Sipp,
    carrier: &dialbridge_testkit::Sipp,
    rate: u32,
    args: &RateArgs,
    next_call: &mut usize,
) -> anyhow::Result<Step> {
    let total = rate as usize * args.step_secs as usize;
    let sipp_failed_before = sipp_failed_calls(phones) + sipp_failed_calls(carrier);
    let (cpu_before, sipp_before) = (
        cpu_seconds(world.pid()),
        cpu_seconds(phones.pid()) + cpu_seconds(carrier.pid()),
    );
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    let mut customers = Vec::with_capacity(total);
    for n in 0..total {
        tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / f64::from(rate))).into()).await;
        let call = *next_call;
        *next_call += 1;
        let customer = format!("13{call:09}");
        customers.push(customer.clone());
        let url = world.outcall_url(call % world.agents, &customer, None);
        let client = world.client.clone();
        requests.spawn(async move {
            let sent = unix_now();
            let res = match client.get(&url).send().await {
                Ok(reply) => reply
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["res"].as_str().map(str::to_owned)),
                Err(_) => None,
            };
            (customer, sent, res)
        });
    }
    let mut sent_at = HashMap::new();
    let mut refused = 0usize;
    while let Some(done) = requests.join_next().await {
        let (customer, sent, res) = done.context("request task")?;
        if res.as_deref() != Some("0") {
            refused += 1;
        }
        sent_at.insert(customer, sent);
    }
    world
        .wait_idle(Duration::from_millis(args.hold_ms) + Duration::from_secs(40))
        .await?;
    let cpu = cpu_seconds(world.pid()) - cpu_before;
    let sipp_cpu = cpu_seconds(phones.pid()) + cpu_seconds(carrier.pid()) - sipp_before;
    // SIPp writes its statistics file once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let sipp_failed = sipp_failed_calls(phones) + sipp_failed_calls(carrier) - sipp_failed_before;

    let mut phone_invite = HashMap::new();
    let mut phone_answer = HashMap::new();
    let mut phone_done = HashMap::new();
    for line in sipp_log_lines(phones) {
        let time = || -> Option<f64> {
            Some(line.fields.get(1)?.parse::<f64>().ok()? + line.fields.get(2)?.parse::<f64>().ok()? / 1e6)
        };
        let Some(customer) = line.fields.first().filter(|c| sent_at.contains_key(*c)) else {
            continue;
        };
        match line.word.as_str() {
            "invite" => drop(phone_invite.insert(customer.clone(), time())),
            "answer" => drop(phone_answer.insert(customer.clone(), time())),
            "done" => drop(phone_done.insert(customer.clone(), ())),
            _ => {}
        }
    }
    let mut carrier_invite = HashMap::new();
    let mut carrier_done = HashMap::new();
    for line in sipp_log_lines(carrier) {
        let Some(customer) = line.fields.first().filter(|c| sent_at.contains_key(*c)) else {
            continue;
        };
        match line.word.as_str() {
            "invite" => {
                let time = line
                    .fields
                    .get(1)
                    .and_then(|s| s.parse::<f64>().ok())
                    .zip(line.fields.get(2).and_then(|u| u.parse::<f64>().ok()));
                carrier_invite.insert(customer.clone(), time.map(|(s, u)| s + u / 1e6));
            }
            "done" => drop(carrier_done.insert(customer.clone(), ())),
            _ => {}
        }
    }
    let limit = args.setup_limit_ms as f64 / 1e3;
    let in_time = |c: &String| {
        phone_invite
            .get(c)
            .copied()
            .flatten()
            .zip(sent_at.get(c))
            .is_some_and(|(rang, sent)| rang - sent <= limit)
    };
    let done: Vec<&String> = customers
        .iter()
        .filter(|c| phone_done.contains_key(*c) && carrier_done.contains_key(*c))
        .collect();
    let completed = done.iter().filter(|c| in_time(c)).count();
    let too_slow = done.len() - completed;
    let seconds = |v: f64| Duration::from_secs_f64(v.max(0.0));
    let mut to_agent: Vec<Duration> = customers
        .iter()
        .filter_map(|c| Some(seconds((*phone_invite.get(c)?)? - sent_at.get(c)?)))
        .collect();
    let mut to_customer: Vec<Duration> = customers
        .iter()
        .filter_map(|c| Some(seconds((*carrier_invite.get(c)?)? - (*phone_answer.get(c)?)?)))
        .collect();
    to_agent.sort();
    to_customer.sort();
    if refused > 0 {
        println!("  ({refused} requests at {rate}/s were not accepted with res 0)");
    }
    Ok(Step {
        rate,
        calls: total,
        failed: total - completed,
        too_slow,
        sipp_failed,
        cpu_ms_per_call: cpu * 1e3 / total.max(1) as f64,
        sipp_cpu_ms_per_call: sipp_cpu * 1e3 / total.max(1) as f64,
        request_to_agent_invite_p50_ms: ms(percentile(&to_agent, 0.5)),
        request_to_agent_invite_p99_ms: ms(percentile(&to_agent, 0.99)),
        answer_to_customer_invite_p50_ms: ms(percentile(&to_customer, 0.5)),
        answer_to_customer_invite_p99_ms: ms(percentile(&to_customer, 0.99)),
        ..Step::default()
    })
}

/// SIPp calling SIPp at `rate` for the step, directly or through Kamailio: failed calls (SIPp's
/// own count), SIPp CPU ms per call (both processes), mean setup time (INVITE to 200).
fn baseline(rate: u32, args: &RateArgs, proxy: Option<&Kamailio>) -> anyhow::Result<(u64, f64, f64)> {
    let callee_port = proxy.map_or_else(free_port, Kamailio::callee_port);
    let dir = tempfile::tempdir()?;
    let inf = dir.path().join("no-media.csv");
    std::fs::write(&inf, "SEQUENTIAL\n9\n")?;
    let callee = crate::world::long_running(&crate::world::scenario("phone.xml"), callee_port, &inf).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let target = proxy.map_or_else(|| format!("127.0.0.1:{callee_port}"), |k| k.address());
    let calls = u64::from(rate) * args.step_secs;
    let stats = dir.path().join("stats.csv");
    let proxy_before = proxy.map(|k| tree_cpu_seconds(k.pid()));
    let mut caller = SippBuilder::new("caller_uac.xml", Some(target.parse()?))
        .args(["-r".to_owned(), rate.to_string(), "-m".to_owned(), calls.to_string()])
        .args([
            "-p".to_owned(),
            free_port().to_string(),
            "-max_socket".into(),
            "60000".into(),
        ])
        .args(["-trace_stat".to_owned(), "-stf".to_owned(), stats.display().to_string()])
        .args(["-fd", "1"])
        .set("hold_ms", args.hold_ms)
        .media_port(free_port())
        .spawn();
    let callee_before = cpu_seconds(callee.pid());
    let end = Instant::now() + Duration::from_secs(args.step_secs * 4 + 30);
    let mut caller_cpu = 0.0;
    // Sampled while it runs: once it has exited, its /proc entry is gone.
    let finished = loop {
        let now_cpu = cpu_seconds(caller.pid());
        if now_cpu > 0.0 {
            caller_cpu = now_cpu;
        }
        if caller.exited().is_some() {
            break true;
        }
        if Instant::now() > end {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let (Some(k), Some(before)) = (proxy, proxy_before) {
        k.record_cpu(tree_cpu_seconds(k.pid()) - before, calls);
    }
    let callee_cpu = cpu_seconds(callee.pid()) - callee_before;
    drop(callee);
    let text = std::fs::read_to_string(&stats).context("SIPp statistics")?;
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
    let column = |name: &str| -> &str {
        let (Some(header), Some(last)) = (rows.first(), rows.last()) else {
            return "";
        };
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i).copied())
            .unwrap_or("")
    };
    let successful: u64 = column("SuccessfulCall(C)").parse().unwrap_or(0);
    let failed = calls.saturating_sub(successful).max(u64::from(!finished));
    // "HH:MM:SS:mmmuuu": the cumulative mean of the INVITE → 200 time.
    let parts: Vec<f64> = column("ResponseTimesetup(C)")
        .split(':')
        .filter_map(|p| p.parse().ok())
        .collect();
    let setup_ms = if parts.len() == 4 {
        (parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1e3 + parts[3] / 1e3
    } else {
        0.0
    };
    Ok((failed, (caller_cpu + callee_cpu) * 1e3 / calls.max(1) as f64, setup_ms))
}

fn print_row(s: &Step) {
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    println!(
        "| {} | {} | {} ({}) | {} | {:.3} | {:.3} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {} | {:.3} | {} | {} |",
        s.rate,
        s.calls,
        s.failed,
        s.too_slow,
        s.sipp_failed,
        s.cpu_ms_per_call,
        s.sipp_cpu_ms_per_call,
        s.request_to_agent_invite_p50_ms,
        s.request_to_agent_invite_p99_ms,
        s.answer_to_customer_invite_p50_ms,
        s.answer_to_customer_invite_p99_ms,
        s.baseline_failed,
        s.baseline_sipp_cpu_ms_per_call,
        s.kamailio_failed.map_or("-".to_owned(), |f| f.to_string()),
        opt(s.kamailio_cpu_ms_per_call),
    );
}

//! `bench/run`: every performance figure of dialbridge, reproducible, each beside a baseline
//! measured in the same run. Scenarios: `rate`, `concurrency`, `api`, `push`, `events`,
//! `webrtc`, `all`; `--smoke`
//! runs a seconds-long version of each (scripts/test does, so the bench does not rot).
//! The server is the real `dialbridge serve` process; SIPp plays the phones and the carrier.

mod api;
mod concurrency;
mod events;
mod forward;
mod kamailio;
mod push;
mod rate;
mod register;
mod rtp;
mod rtpengine;
mod stats;
mod webrtc;
mod world;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "dialbridge's benchmarks, each beside its baselines")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// A seconds-long version of the scenario (for the test suite).
    #[arg(long, global = true)]
    smoke: bool,
    /// Where each scenario writes its figures as JSON (bench/plot.py draws them).
    #[arg(long, global = true, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Scenario {
    /// Full preview outcalls per second through the legacy interface, beside SIPp→SIPp and Kamailio.
    Rate(rate::RateArgs),
    /// Bridged calls with RTP both ways, beside minimal forwarders and rtpengine.
    Concurrency(concurrency::ConcurrencyArgs),
    /// PreviewOutcall request latency.
    Api(api::ApiArgs),
    /// Push event → first delivery attempt latency.
    Push(push::PushArgs),
    /// The live event stream: idle subscribed sockets, and an event's way to all of them.
    Events(events::EventsArgs),
    /// Softphone (WebRTC) agent legs relayed to RTP customers, beside plain RTP agent legs.
    Webrtc(webrtc::WebRtcArgs),
    /// Every scenario with its defaults.
    All,
    /// A baseline forwarder (started by the concurrency scenario).
    #[command(hide = true)]
    Forward(forward::ForwardArgs),
    /// The relay in a process of its own (started by the webrtc scenario).
    #[command(hide = true)]
    RelayHost,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    rtp::raise_file_limit();
    if let Scenario::Forward(args) = &cli.scenario {
        return forward::run(args);
    }
    if let Scenario::RelayHost = &cli.scenario {
        return webrtc::host();
    }
    std::fs::create_dir_all(&cli.out)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = cli.out.as_path();
    let smoke = cli.smoke;
    let all = matches!(cli.scenario, Scenario::All);
    if all {
        println!("{}", machine());
    }
    if let Scenario::Rate(args) = &cli.scenario {
        let report = rate::run(if smoke { rate::RateArgs::smoke() } else { args.clone() }, out).await?;
        check(smoke, rate::smoke_failures(&report))?;
    }
    if all {
        let report = rate::run(
            if smoke {
                rate::RateArgs::smoke()
            } else {
                rate::RateArgs::parse_defaults()
            },
            out,
        )
        .await?;
        check(smoke, rate::smoke_failures(&report))?;
    }
    let concurrency_args = match &cli.scenario {
        Scenario::Concurrency(args) => Some(args.clone()),
        Scenario::All => Some(concurrency::ConcurrencyArgs::parse_defaults()),
        _ => None,
    };
    if let Some(args) = concurrency_args {
        let levels = concurrency::run(
            if smoke {
                concurrency::ConcurrencyArgs::smoke()
            } else {
                args
            },
            out,
        )
        .await?;
        check(smoke, concurrency::smoke_failures(&levels))?;
    }
    let api_args = match &cli.scenario {
        Scenario::Api(args) => Some(args.clone()),
        Scenario::All => Some(api::ApiArgs::parse_defaults()),
        _ => None,
    };
    if let Some(args) = api_args {
        let steps = api::run(if smoke { api::ApiArgs::smoke() } else { args }, out).await?;
        check(smoke, api::smoke_failures(&steps))?;
    }
    let push_args = match &cli.scenario {
        Scenario::Push(args) => Some(args.clone()),
        Scenario::All => Some(push::PushArgs::parse_defaults()),
        _ => None,
    };
    if let Some(args) = push_args {
        push::run(if smoke { push::PushArgs::smoke() } else { args }, out).await?;
    }
    let events_args = match &cli.scenario {
        Scenario::Events(args) => Some(args.clone()),
        Scenario::All => Some(events::EventsArgs::parse_defaults()),
        _ => None,
    };
    if let Some(args) = events_args {
        let report = events::run(if smoke { events::EventsArgs::smoke() } else { args }, out).await?;
        check(smoke, events::smoke_failures(&report))?;
    }
    let webrtc_args = match &cli.scenario {
        Scenario::Webrtc(args) => Some(args.clone()),
        Scenario::All => Some(webrtc::WebRtcArgs::parse_defaults()),
        _ => None,
    };
    if let Some(args) = webrtc_args {
        let levels = webrtc::run(if smoke { webrtc::WebRtcArgs::smoke() } else { args }, out).await?;
        check(smoke, webrtc::smoke_failures(&levels))?;
    }
    Ok(())
}

/// A smoke run fails on any failed call, lost packet or unexpected reply: at a few calls per
/// second nothing may go wrong, and a benchmark that cannot carry a call has rotted.
fn check(smoke: bool, failures: Vec<String>) -> anyhow::Result<()> {
    if smoke && !failures.is_empty() {
        anyhow::bail!("smoke run failed:\n{}", failures.join("\n"));
    }
    Ok(())
}

/// The defaults of a scenario's arguments, as its command line would give them.
trait Defaults: Sized {
    fn parse_defaults() -> Self;
}

impl<T: clap::Args + clap::FromArgMatches> Defaults for T {
    fn parse_defaults() -> Self {
        let matches = T::augment_args(clap::Command::new("bench")).get_matches_from(["bench"]);
        match T::from_arg_matches(&matches) {
            Ok(args) => args,
            Err(e) => e.exit(),
        }
    }
}

/// What the machine is, for the results page.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    format!("machine: {cores} cores ({model})")
}

/// Writes a scenario's figures to `<out>/<name>.json`.
fn write_json(out: &Path, name: &str, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let path = out.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value)?)?;
    println!("(figures written to {})", path.display());
    Ok(())
}

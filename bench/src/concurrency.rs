//! `concurrency`: N bridged calls held through dialbridge with RTP both ways on every leg
//! (50 packets/s per direction per leg), beside the same packet pattern relayed by a minimal
//! tokio forwarder, a minimal epoll forwarder and rtpengine, in the same run.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use crate::rtp::{bind_range, Counts, Stream};
use crate::stats::{cpu_seconds, rss_bytes, tree_cpu_seconds, udp_drops};
use crate::world::{sipp_log_lines, tail, World, ENTERPRISE};

#[derive(Args, Clone)]
pub struct ConcurrencyArgs {
    /// Numbers of simultaneous bridged calls.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000")]
    pub calls: Vec<usize>,
    /// Seconds of RTP measured at each N.
    #[arg(long, default_value_t = 10)]
    pub measure_secs: u64,
    /// Skip rtpengine (installed by bench/run).
    #[arg(long)]
    pub no_rtpengine: bool,
    /// Also run every call recorded (beside the unrecorded run, in the same run): the relay's
    /// CPU per packet with the recorder's workers counted, gaps, bytes per call-minute.
    #[arg(long)]
    pub record: bool,
}

impl ConcurrencyArgs {
    pub fn smoke() -> Self {
        ConcurrencyArgs {
            calls: vec![10],
            measure_secs: 2,
            no_rtpengine: false,
            record: true,
        }
    }
}

/// The generator's sockets: the agent side from here, the customer side from CUSTOMER_BASE.
const AGENT_BASE: u16 = 20_000;
const CUSTOMER_BASE: u16 = 24_000;
/// The baseline forwarders' listening ports.
const FORWARDER_BASE: u16 = 12_000;
/// Calls are set up at this rate before the measurement.
const SETUP_RATE: f64 = 300.0;
/// How much longer than the setup and the measurement the carrier holds each call.
const HOLD_MARGIN: Duration = Duration::from_secs(30);

#[derive(Serialize, Clone, Default)]
pub struct Relay {
    pub name: String,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub loss_percent: f64,
    pub streams_with_loss: usize,
    pub kernel_drops: u64,
    pub cpu_percent_of_a_core: f64,
    pub cpu_us_per_packet: f64,
}

#[derive(Serialize, Clone, Default)]
pub struct Level {
    pub calls: usize,
    pub memory_kib_per_call: f64,
    pub cpu_ms_per_call_second: f64,
    pub relays: Vec<Relay>,
    /// With `--record`: what the recorded run wrote.
    pub recordings: Option<Recordings>,
}

/// What the recorded run wrote, read from the files and their sidecars.
#[derive(Serialize, Clone, Default)]
pub struct Recordings {
    pub files: usize,
    /// Recordings whose sidecar lists a gap (a batch the recorder had no room for).
    pub with_gaps: usize,
    pub bytes: u64,
    pub recorded_minutes: f64,
    pub bytes_per_call_minute: f64,
    /// CPU per packet of the recorded run over the unrecorded one.
    pub cpu_ratio_to_unrecorded: f64,
}

/// The recorded name of dialbridge's relay in the tables.
const RECORDED: &str = "dialbridge recorded";

pub async fn run(args: ConcurrencyArgs, out: &Path) -> anyhow::Result<Vec<Level>> {
    let most = args.calls.iter().copied().max().unwrap_or(1);
    if most > usize::from(CUSTOMER_BASE - AGENT_BASE) {
        bail!("at most {} calls", CUSTOMER_BASE - AGENT_BASE);
    }
    println!("concurrency: {most} agents, {} s of RTP per level", args.measure_secs);
    let world = World::start(most).await?;
    let mut levels = Vec::new();
    println!();
    println!("| calls | relay | packets sent | lost | loss | kernel drops | CPU (% of a core) | CPU µs/packet | ratio to tokio | ratio to epoll | memory KiB/call |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut next_call = 0usize;
    for &calls in &args.calls {
        let agents = bind_range(AGENT_BASE, calls)?;
        let customers = bind_range(CUSTOMER_BASE, calls)?;
        let mut level = Level {
            calls,
            ..Level::default()
        };
        let (dialbridge, memory) = through_dialbridge(&world, &agents, &customers, &args, &mut next_call).await?;
        level.memory_kib_per_call = memory;
        level.cpu_ms_per_call_second = dialbridge.cpu_percent_of_a_core * 10.0 / calls as f64;
        let unrecorded_per_packet = dialbridge.cpu_us_per_packet;
        level.relays.push(dialbridge);
        if args.record {
            let (mut recorded, _) = recorded_run(&world, &agents, &customers, &args, &mut next_call).await?;
            recorded.name = RECORDED.to_owned();
            let mut written = recordings_written(&world, calls).await?;
            written.cpu_ratio_to_unrecorded = recorded.cpu_us_per_packet / unrecorded_per_packet.max(f64::MIN_POSITIVE);
            level.relays.push(recorded);
            level.recordings = Some(written);
            std::fs::remove_dir_all(world.recordings_dir())?;
        }
        for kind in ["tokio", "epoll"] {
            let relay = tokio::task::block_in_place(|| through_forwarder(kind, &agents, &customers, &world, &args))?;
            level.relays.push(relay);
        }
        if !args.no_rtpengine {
            let relay = tokio::task::block_in_place(|| through_rtpengine(&agents, &customers, &world, &args))?;
            level.relays.push(relay);
        }
        print_level(&level);
        levels.push(level);
    }
    crate::write_json(out, "concurrency", &levels)?;
    Ok(levels)
}

/// What went wrong in a run that should have been clean.
pub fn smoke_failures(levels: &[Level]) -> Vec<String> {
    let lost = levels
        .iter()
        .flat_map(|l| l.relays.iter().map(move |r| (l.calls, r)))
        .filter(|(_, r)| r.packets_received < r.packets_sent || r.packets_sent == 0)
        .map(|(calls, r)| {
            format!(
                "{calls} calls through {}: {} of {} packets arrived",
                r.name, r.packets_received, r.packets_sent
            )
        });
    let recordings = levels.iter().filter_map(|l| {
        let r = l.recordings.as_ref()?;
        (r.files != l.calls || r.with_gaps > 0).then(|| {
            format!(
                "{} recorded calls: {} recordings, {} with gaps",
                l.calls, r.files, r.with_gaps
            )
        })
    });
    lost.chain(recordings).collect()
}

/// [`through_dialbridge`] with every call recorded (from the bridge), after checking the disk
/// has room for what it writes.
async fn recorded_run(
    world: &World,
    agents: &[UdpSocket],
    customers: &[UdpSocket],
    args: &ConcurrencyArgs,
    next_call: &mut usize,
) -> anyhow::Result<(Relay, f64)> {
    let calls = agents.len();
    let seconds = calls as f64 / SETUP_RATE + args.measure_secs as f64 + HOLD_MARGIN.as_secs_f64();
    // 8 kHz, two channels of 16 bits: 32 kB a second a call, and a margin.
    let needed = (calls as f64 * seconds * 32_000.0 * 1.5) as u64;
    let free = free_bytes(world.dir.path())?;
    if free < needed {
        bail!(
            "--record needs about {} MB free beside the server's data for {calls} calls; {} MB are",
            needed / 1_000_000,
            free / 1_000_000
        );
    }
    world.command(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        ENTERPRISE,
        "--recording",
        "bridge",
    ])?;
    let run = through_dialbridge(world, agents, customers, args, next_call).await;
    world.command(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        ENTERPRISE,
        "--recording",
        "off",
    ])?;
    run
}

/// Bytes free on the file system holding `dir` (what `df` says).
fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .context("df did not say how much space is free")
}

/// The recorded run's files once every call's recording is finished (its sidecar written).
async fn recordings_written(world: &World, calls: usize) -> anyhow::Result<Recordings> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files = dialbridge_testkit::files_under(&world.recordings_dir());
        let sidecars: Vec<&std::path::PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        if sidecars.len() >= calls || Instant::now() > deadline {
            let mut written = Recordings::default();
            for sidecar in sidecars {
                let notes: serde_json::Value = serde_json::from_slice(&std::fs::read(sidecar)?)?;
                written.files += 1;
                written.with_gaps += usize::from(notes["gaps"].as_array().is_some_and(|g| !g.is_empty()));
                written.recorded_minutes += notes["durationMs"].as_f64().unwrap_or(0.0) / 60_000.0;
                written.bytes += std::fs::metadata(sidecar.with_extension("wav"))?.len();
            }
            written.bytes_per_call_minute = written.bytes as f64 / written.recorded_minutes.max(f64::MIN_POSITIVE);
            return Ok(written);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_level(level: &Level) {
    let per_packet = |name: &str| {
        level
            .relays
            .iter()
            .find(|r| r.name == name)
            .map_or(0.0, |r| r.cpu_us_per_packet)
    };
    for relay in &level.relays {
        let ratio = |base: f64| {
            if base > 0.0 {
                format!("{:.2}", relay.cpu_us_per_packet / base)
            } else {
                "-".into()
            }
        };
        let memory = if relay.name == "dialbridge" {
            format!("{:.1}", level.memory_kib_per_call)
        } else {
            "-".into()
        };
        println!(
            "| {} | {} | {} | {} | {:.3} % | {} | {:.1} | {:.2} | {} | {} | {memory} |",
            level.calls,
            relay.name,
            relay.packets_sent,
            relay.packets_sent.saturating_sub(relay.packets_received),
            relay.loss_percent,
            relay.kernel_drops,
            relay.cpu_percent_of_a_core,
            relay.cpu_us_per_packet,
            ratio(per_packet("tokio")),
            ratio(per_packet("epoll")),
        );
    }
    if let Some(r) = &level.recordings {
        println!(
            "| {} | recordings: {} files, {} with gaps, {:.0} bytes per call-minute, CPU per packet {:.2}× unrecorded |||||||||",
            level.calls, r.files, r.with_gaps, r.bytes_per_call_minute, r.cpu_ratio_to_unrecorded
        );
    }
}

/// Runs the generator over `streams` while measuring `cpu` (a process's CPU seconds).
fn measure(name: &str, streams: &[Stream], args: &ConcurrencyArgs, cpu: impl Fn() -> f64) -> anyhow::Result<Relay> {
    let drops_before = udp_drops();
    let cpu_before = cpu();
    let started = Instant::now();
    let counts: Counts = crate::rtp::run(streams, Duration::from_secs(args.measure_secs))?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_used = cpu() - cpu_before;
    Ok(Relay {
        name: name.to_owned(),
        packets_sent: counts.sent,
        packets_received: counts.received,
        loss_percent: counts.loss_percent(),
        streams_with_loss: counts.streams_with_loss,
        kernel_drops: udp_drops().saturating_sub(drops_before),
        cpu_percent_of_a_core: cpu_used * 100.0 / elapsed,
        cpu_us_per_packet: cpu_used * 1e6 / counts.received.max(1) as f64,
    })
}

fn clone_streams(pairs: &[(&UdpSocket, SocketAddr)]) -> anyhow::Result<Vec<Stream>> {
    pairs
        .iter()
        .map(|(socket, destination)| {
            Ok(Stream {
                socket: socket.try_clone()?,
                destination: *destination,
            })
        })
        .collect()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn through_dialbridge(
    world: &World,
    agents: &[UdpSocket],
    customers: &[UdpSocket],
    args: &ConcurrencyArgs,
    next_call: &mut usize,
) -> anyhow::Result<(Relay, f64)> {
    let calls = agents.len();
    let dir = world.dir.path();
    let phone_inf = dir.join(format!("phones-{calls}.csv"));
    let carrier_inf = dir.join(format!("carrier-{calls}.csv"));
    let lines = |base: u16| {
        let mut text = String::from("SEQUENTIAL\n");
        for i in 0..calls {
            text.push_str(&format!("{}\n", usize::from(base) + i));
        }
        text
    };
    std::fs::write(&phone_inf, lines(AGENT_BASE))?;
    std::fs::write(&carrier_inf, lines(CUSTOMER_BASE))?;
    let setup = Duration::from_secs_f64(calls as f64 / SETUP_RATE);
    let hold = setup + Duration::from_secs(args.measure_secs) + HOLD_MARGIN;
    let phones = world.phones("answer", &phone_inf);
    let carrier = world.carrier(hold, &carrier_inf);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_bytes(world.pid());

    let started = Instant::now();
    let first_call = *next_call;
    for n in 0..calls {
        tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / SETUP_RATE)).into()).await;
        let url = world.outcall_url(n, &format!("13{:09}", first_call + n), None);
        *next_call += 1;
        let reply: serde_json::Value = world.client.get(&url).send().await?.json().await?;
        if reply["res"] != "0" {
            bail!("PreviewOutcall refused while setting up {calls} calls: {reply}");
        }
    }
    // Every call bridged: both SIPp processes logged its INVITE and the server counts it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (agent_side, customer_side) = loop {
        let offered = |sipp: &dialbridge_testkit::Sipp| -> HashMap<u16, u16> {
            sipp_log_lines(sipp)
                .into_iter()
                .filter(|l| l.word == "invite")
                .filter_map(|l| Some((l.fields.get(4)?.parse().ok()?, l.fields.get(3)?.parse().ok()?)))
                .collect()
        };
        let (a, c) = (offered(&phones), offered(&carrier));
        if a.len() == calls && c.len() == calls && world.calls_active().await? == calls as u64 {
            break (a, c);
        }
        if Instant::now() > deadline {
            bail!(
                "only {} agent and {} customer legs of {calls} came up: {}",
                a.len(),
                c.len(),
                tail(&phones.logs())
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let up_rss = rss_bytes(world.pid());
    let mut pairs = Vec::with_capacity(2 * calls);
    for (sockets, offered) in [(agents, &agent_side), (customers, &customer_side)] {
        for socket in sockets {
            let port = socket.local_addr()?.port();
            let relay_port = *offered
                .get(&port)
                .with_context(|| format!("no call offered port {port}"))?;
            pairs.push((socket, local(relay_port)));
        }
    }
    let streams = clone_streams(&pairs)?;
    let pid = world.pid();
    let relay = tokio::task::block_in_place(|| measure("dialbridge", &streams, args, || cpu_seconds(pid)))?;
    drop(streams);
    world.wait_idle(hold + Duration::from_secs(30)).await?;
    drop((phones, carrier));
    let memory_kib = (up_rss.saturating_sub(idle_rss)) as f64 / 1024.0 / calls as f64;
    Ok((relay, memory_kib))
}

/// A forwarder process relaying call i's agent socket ↔ customer socket through two ports.
fn through_forwarder(
    kind: &str,
    agents: &[UdpSocket],
    customers: &[UdpSocket],
    world: &World,
    args: &ConcurrencyArgs,
) -> anyhow::Result<Relay> {
    let calls = agents.len();
    let file = world.dir.path().join(format!("forward-{kind}-{calls}.txt"));
    let mut text = String::new();
    let mut pairs = Vec::with_capacity(2 * calls);
    for (i, (agent, customer)) in agents.iter().zip(customers).enumerate() {
        let (to_customer, to_agent) = (FORWARDER_BASE + 2 * i as u16, FORWARDER_BASE + 2 * i as u16 + 1);
        text.push_str(&format!("{to_customer} {}\n", customer.local_addr()?.port()));
        text.push_str(&format!("{to_agent} {}\n", agent.local_addr()?.port()));
        pairs.push((agent, local(to_customer)));
        pairs.push((customer, local(to_agent)));
    }
    std::fs::write(&file, text)?;
    let forwarder = Forwarder::start(kind, &file)?;
    let streams = clone_streams(&pairs)?;
    measure(kind, &streams, args, || cpu_seconds(forwarder.child.id()))
}

struct Forwarder {
    child: Child,
}

impl Forwarder {
    fn start(kind: &str, pairs: &Path) -> anyhow::Result<Forwarder> {
        use std::io::BufRead;
        let mut child = Command::new(std::env::current_exe()?)
            .args(["forward", "--kind", kind, "--pairs", &pairs.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("forwarder stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("the {kind} forwarder did not start");
        }
        Ok(Forwarder { child })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn through_rtpengine(
    agents: &[UdpSocket],
    customers: &[UdpSocket],
    world: &World,
    args: &ConcurrencyArgs,
) -> anyhow::Result<Relay> {
    let mut rtpengine = crate::rtpengine::Rtpengine::start(world.dir.path())?;
    let mut pairs = Vec::with_capacity(2 * agents.len());
    for (i, (agent, customer)) in agents.iter().zip(customers).enumerate() {
        let (agent_sends_to, customer_sends_to) =
            rtpengine.session(i, agent.local_addr()?.port(), customer.local_addr()?.port())?;
        pairs.push((agent, local(agent_sends_to)));
        pairs.push((customer, local(customer_sends_to)));
    }
    let streams = clone_streams(&pairs)?;
    let pid = rtpengine.pid();
    measure("rtpengine", &streams, args, || tree_cpu_seconds(pid))
}

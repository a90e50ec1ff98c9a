//! `webrtc`: N softphone calls' media: each agent's leg a WebRTC session (str0m in this process
//! plays the browsers: full ICE, DTLS-SRTP, PCMU) relayed by dialbridge's relay to a plain RTP
//! customer, beside the same N calls with plain RTP agent legs, in the same run, 50 packets/s
//! each way on every leg. The relay runs in a process of its own (`relay-host`: dialbridge's
//! media crate, the relay the server runs, its sessions set up over stdin), so its CPU per
//! relayed packet is measured apart from the generators' (this process's, reported too). SIP
//! and the toolbar's signalling are left out: they cost per call, not per packet.

use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

use anyhow::{bail, Context};
use clap::Args;
use dialbridge_media::{Law, MediaLeg, MediaSession, PortPool, RelayMode, RelaySettings, RemoteLeg};
use serde::{Deserialize, Serialize};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

use crate::stats::cpu_seconds;

#[derive(Args, Clone)]
pub struct WebRtcArgs {
    /// Numbers of simultaneous calls.
    #[arg(long, value_delimiter = ',', default_value = "250,500")]
    pub calls: Vec<usize>,
    /// Seconds of media measured at each N.
    #[arg(long, default_value_t = 10)]
    pub measure_secs: u64,
}

impl WebRtcArgs {
    pub fn smoke() -> Self {
        WebRtcArgs {
            calls: vec![5],
            measure_secs: 2,
        }
    }
}

/// One kind of agent leg at one N.
#[derive(Serialize, Clone, Default)]
pub struct Leg {
    pub kind: String,
    pub calls: usize,
    pub agent_to_customer_sent: u64,
    pub agent_to_customer_received: u64,
    pub customer_to_agent_sent: u64,
    pub customer_to_agent_received: u64,
    pub loss_percent: f64,
    pub relay_cpu_percent_of_a_core: f64,
    pub relay_cpu_us_per_packet: f64,
    /// The generators' own CPU (the browsers' WebRTC, or plain sockets).
    pub generator_cpu_percent_of_a_core: f64,
}

#[derive(Serialize, Clone, Default)]
pub struct Level {
    pub calls: usize,
    pub legs: Vec<Leg>,
    /// WebRTC's relay cost per packet over the plain relay's.
    pub ratio: f64,
}

pub async fn run(args: WebRtcArgs, out: &Path) -> anyhow::Result<Vec<Level>> {
    println!(
        "webrtc: softphone legs (str0m browsers) vs plain RTP legs, {} s of media per level",
        args.measure_secs
    );
    println!();
    println!("| calls | agent leg | packets sent | lost | loss | relay CPU (% of a core) | relay µs/packet | ratio to plain | generators' CPU (% of a core) |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut levels = Vec::new();
    for &calls in &args.calls {
        let plain = measure(calls, false, args.measure_secs).await?;
        let webrtc = measure(calls, true, args.measure_secs).await?;
        let ratio = if plain.relay_cpu_us_per_packet > 0.0 {
            webrtc.relay_cpu_us_per_packet / plain.relay_cpu_us_per_packet
        } else {
            0.0
        };
        for leg in [&plain, &webrtc] {
            let sent = leg.agent_to_customer_sent + leg.customer_to_agent_sent;
            let received = leg.agent_to_customer_received + leg.customer_to_agent_received;
            println!(
                "| {calls} | {} | {sent} | {} | {:.3} % | {:.1} | {:.2} | {} | {:.1} |",
                leg.kind,
                sent.saturating_sub(received),
                leg.loss_percent,
                leg.relay_cpu_percent_of_a_core,
                leg.relay_cpu_us_per_packet,
                if leg.kind == "webrtc" {
                    format!("{ratio:.2}")
                } else {
                    "1.00".into()
                },
                leg.generator_cpu_percent_of_a_core,
            );
        }
        levels.push(Level {
            calls,
            legs: vec![plain, webrtc],
            ratio,
        });
    }
    crate::write_json(out, "webrtc", &levels)?;
    Ok(levels)
}

/// What went wrong in a run that should have been clean.
pub fn smoke_failures(levels: &[Level]) -> Vec<String> {
    levels
        .iter()
        .flat_map(|l| &l.legs)
        .filter(|leg| {
            leg.agent_to_customer_received == 0
                || leg.customer_to_agent_received == 0
                || leg.agent_to_customer_received < leg.agent_to_customer_sent
                || leg.customer_to_agent_received < leg.customer_to_agent_sent
        })
        .map(|leg| {
            format!(
                "{} calls with {} agent legs: {}/{} packets to the customer, {}/{} to the agent",
                leg.calls,
                leg.kind,
                leg.agent_to_customer_received,
                leg.agent_to_customer_sent,
                leg.customer_to_agent_received,
                leg.customer_to_agent_sent
            )
        })
        .collect()
}

/// A session the driver asks the relay host for.
#[derive(Serialize, Deserialize)]
enum SessionRequest {
    Plain { agent: SocketAddr, customer: SocketAddr },
    WebRtc { offer: String, customer: SocketAddr },
}

#[derive(Serialize, Deserialize)]
struct SessionReply {
    agent_port: u16,
    customer_port: u16,
    answer: Option<String>,
}

/// Counters of one run, shared by the sessions' tasks.
#[derive(Default)]
struct Tally {
    counting: AtomicBool,
    stop: AtomicBool,
    connected: AtomicU64,
    agent_sent: AtomicU64,
    agent_received: AtomicU64,
    customer_sent: AtomicU64,
    customer_received: AtomicU64,
}

impl Tally {
    fn count(&self, counter: &AtomicU64) {
        if self.counting.load(Ordering::Relaxed) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn measure(calls: usize, webrtc: bool, measure_secs: u64) -> anyhow::Result<Leg> {
    let mut host = RelayHost::start()?;
    let tally = Arc::new(Tally::default());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..calls {
        let customer = UdpSocket::bind("127.0.0.1:0").await?;
        let customer_address = customer.local_addr()?;
        if webrtc {
            let browser = Browser::offer().await?;
            let reply = host.session(&SessionRequest::WebRtc {
                offer: browser.offer.clone(),
                customer: customer_address,
            })?;
            let answer = reply.answer.context("the relay host did not answer the offer")?;
            let browser = browser.accept(&answer)?;
            let to_customer_port = SocketAddr::from(([127, 0, 0, 1], reply.customer_port));
            tasks.spawn(run_webrtc_call(browser, customer, to_customer_port, tally.clone()));
        } else {
            let agent = UdpSocket::bind("127.0.0.1:0").await?;
            let reply = host.session(&SessionRequest::Plain {
                agent: agent.local_addr()?,
                customer: customer_address,
            })?;
            let to_agent_port = SocketAddr::from(([127, 0, 0, 1], reply.agent_port));
            let to_customer_port = SocketAddr::from(([127, 0, 0, 1], reply.customer_port));
            tally.connected.fetch_add(1, Ordering::Relaxed);
            tasks.spawn(run_plain_call(
                agent,
                to_agent_port,
                customer,
                to_customer_port,
                tally.clone(),
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.connected.load(Ordering::Relaxed) < calls as u64 {
        if Instant::now() > deadline {
            bail!(
                "only {} of {calls} browsers connected",
                tally.connected.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Latching and the first packets settle, then the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let own = std::process::id();
    let (relay_before, generator_before) = (cpu_seconds(host.pid()), cpu_seconds(own));
    let started = Instant::now();
    tally.counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(measure_secs)).await;
    tally.stop.store(true, Ordering::Relaxed);
    // What is in flight arrives and is counted; nothing more is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (relay_cpu, generator_cpu) = (
        cpu_seconds(host.pid()) - relay_before,
        cpu_seconds(own) - generator_before,
    );
    tally.counting.store(false, Ordering::Relaxed);
    tasks.abort_all();
    host.quit();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let sent = load(&tally.agent_sent) + load(&tally.customer_sent);
    let received = load(&tally.agent_received) + load(&tally.customer_received);
    Ok(Leg {
        kind: if webrtc { "webrtc" } else { "plain" }.into(),
        calls,
        agent_to_customer_sent: load(&tally.agent_sent),
        agent_to_customer_received: load(&tally.customer_received),
        customer_to_agent_sent: load(&tally.customer_sent),
        customer_to_agent_received: load(&tally.agent_received),
        loss_percent: if sent == 0 {
            0.0
        } else {
            sent.saturating_sub(received) as f64 * 100.0 / sent as f64
        },
        relay_cpu_percent_of_a_core: relay_cpu * 100.0 / elapsed,
        relay_cpu_us_per_packet: relay_cpu * 1e6 / received.max(1) as f64,
        generator_cpu_percent_of_a_core: generator_cpu * 100.0 / elapsed,
    })
}

/// A 20 ms G.711 RTP packet of a stream of ours.
fn rtp_packet(sequence: u16, ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 0];
    packet.extend(sequence.to_be_bytes());
    packet.extend((u32::from(sequence) * 160).to_be_bytes());
    packet.extend(ssrc.to_be_bytes());
    packet.extend([0xD5; 160]);
    packet
}

/// Staggers the calls' 20 ms clocks so that they do not all send at once.
fn tick() -> tokio::time::Interval {
    let offset = Duration::from_micros(rand_offset());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

fn rand_offset() -> u64 {
    let nanos = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    (nanos.wrapping_mul(6364136223846793005) >> 33) % 20_000
}

async fn run_plain_call(
    agent: UdpSocket,
    to_agent: SocketAddr,
    customer: UdpSocket,
    to_customer: SocketAddr,
    tally: Arc<Tally>,
) {
    let mut tick = tick();
    let (mut agent_buf, mut customer_buf) = (vec![0u8; 2048], vec![0u8; 2048]);
    let mut sequence = 0u16;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if tally.stop.load(Ordering::Relaxed) {
                    continue;
                }
                sequence = sequence.wrapping_add(1);
                if agent.send_to(&rtp_packet(sequence, 1), to_agent).await.is_ok() {
                    tally.count(&tally.agent_sent);
                }
                if customer.send_to(&rtp_packet(sequence, 2), to_customer).await.is_ok() {
                    tally.count(&tally.customer_sent);
                }
            }
            Ok(_) = agent.recv_from(&mut agent_buf) => tally.count(&tally.agent_received),
            Ok(_) = customer.recv_from(&mut customer_buf) => tally.count(&tally.customer_received),
        }
    }
}

/// A browser: str0m with full ICE, offering one PCMU track, on its own socket.
struct Browser {
    rtc: Rtc,
    mid: Mid,
    socket: UdpSocket,
    offer: String,
    pending: Option<str0m::change::SdpPendingOffer>,
}

impl Browser {
    async fn offer() -> anyhow::Result<Browser> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_pcmu(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(socket.local_addr()?, "udp")?);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().context("no offer")?;
        Ok(Browser {
            rtc,
            mid,
            socket,
            offer: offer.to_sdp_string(),
            pending: Some(pending),
        })
    }

    fn accept(mut self, answer: &str) -> anyhow::Result<Browser> {
        let pending = self.pending.take().context("answered twice")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(answer)?)?;
        Ok(self)
    }
}

async fn run_webrtc_call(mut browser: Browser, customer: UdpSocket, to_customer: SocketAddr, tally: Arc<Tally>) {
    let local = match browser.socket.local_addr() {
        Ok(local) => local,
        Err(_) => return,
    };
    let mut tick = tick();
    let (mut buf, mut customer_buf) = (vec![0u8; 2048], vec![0u8; 2048]);
    let (mut sequence, mut samples, mut connected) = (0u16, 0u64, false);
    loop {
        let due = loop {
            match browser.rtc.poll_output() {
                Ok(Output::Timeout(at)) => break at,
                Ok(Output::Transmit(t)) => {
                    let _ = browser.socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => {
                    connected = true;
                    tally.connected.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Output::Event(Event::MediaData(_))) => tally.count(&tally.agent_received),
                Ok(Output::Event(_)) => {}
                Err(_) => return,
            }
        };
        tokio::select! {
            received = browser.socket.recv_from(&mut buf) => {
                let Ok((n, source)) = received else { return };
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    let _ = browser.rtc.handle_input(Input::Receive(Instant::now(), receive));
                }
            }
            () = tokio::time::sleep_until(due.into()) => {
                let _ = browser.rtc.handle_input(Input::Timeout(Instant::now()));
            }
            _ = tick.tick() => {
                if !connected || tally.stop.load(Ordering::Relaxed) {
                    continue;
                }
                let Some(writer) = browser.rtc.writer(browser.mid) else { continue };
                let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::PCMU).map(|p| p.pt()) else {
                    continue;
                };
                let time = MediaTime::new(samples, Frequency::EIGHT_KHZ);
                samples += 160;
                if writer.write(pt, Instant::now(), time, vec![0xFF; 160]).is_ok() {
                    tally.count(&tally.agent_sent);
                }
                sequence = sequence.wrapping_add(1);
                if customer.send_to(&rtp_packet(sequence, 2), to_customer).await.is_ok() {
                    tally.count(&tally.customer_sent);
                }
            }
            Ok(_) = customer.recv_from(&mut customer_buf) => tally.count(&tally.customer_received),
        }
    }
}

/// The relay in a process of its own (`dialbridge-bench relay-host`).
struct RelayHost {
    child: Child,
    replies: std::io::BufReader<std::process::ChildStdout>,
}

impl RelayHost {
    fn start() -> anyhow::Result<RelayHost> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("relay-host")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the relay host")?;
        let replies = std::io::BufReader::new(child.stdout.take().context("no stdout")?);
        Ok(RelayHost { child, replies })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn session(&mut self, request: &SessionRequest) -> anyhow::Result<SessionReply> {
        let stdin = self.child.stdin.as_mut().context("no stdin")?;
        writeln!(stdin, "{}", serde_json::to_string(request)?)?;
        stdin.flush()?;
        let mut line = String::new();
        self.replies.read_line(&mut line)?;
        serde_json::from_str(&line).with_context(|| format!("the relay host said {line:?}"))
    }

    fn quit(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The relay host: sessions of dialbridge's relay set up as the driver asks on stdin, bridged,
/// until stdin closes.
pub fn host() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let pool = PortPool::new(IpAddr::from([127, 0, 0, 1]), 40_000..=59_999);
        let settings = RelaySettings {
            inactivity_timeout: Duration::from_secs(120),
        };
        let mut sessions = Vec::new();
        // Read without blocking a worker: the relays need both.
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut stdout = std::io::stdout();
        while let Some(line) = lines.next_line().await? {
            let request: SessionRequest = serde_json::from_str(&line)?;
            let (session, events) = MediaSession::start(&pool, settings, None)?;
            let remote = |address| RemoteLeg {
                address,
                law: Law::Mu,
                telephone_event: None,
                sends: true,
            };
            let reply = match request {
                SessionRequest::Plain { agent, customer } => {
                    session.set_remote(MediaLeg::Agent, remote(agent));
                    session.set_remote(MediaLeg::Customer, remote(customer));
                    SessionReply {
                        agent_port: session.agent_port(),
                        customer_port: session.customer_port(),
                        answer: None,
                    }
                }
                SessionRequest::WebRtc { offer, customer } => {
                    session.set_remote(MediaLeg::Customer, remote(customer));
                    let answer = session.accept_webrtc(offer, IpAddr::from([127, 0, 0, 1])).await?;
                    SessionReply {
                        agent_port: session.agent_port(),
                        customer_port: session.customer_port(),
                        answer: Some(answer),
                    }
                }
            };
            session.set_mode(RelayMode::Bridged);
            writeln!(stdout, "{}", serde_json::to_string(&reply)?)?;
            stdout.flush()?;
            sessions.push((session, events));
        }
        for (session, _) in sessions {
            session.finish().await;
        }
        Ok(())
    })
}

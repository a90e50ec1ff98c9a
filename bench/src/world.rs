//! A running `dialbridge serve` (the release binary beside the bench's own) with one enterprise
//! of many agents, each bound to its own registered extension: the set-up every scenario shares.
//!
//! Every agent's extension registers with its Contact on one SIPp process (the "phones"), and
//! the enterprise's trunk points at a second SIPp process (the "carrier"); scenarios start those
//! two with the behaviour they need, on the ports fixed here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dialbridge_testkit::{free_port, Sipp, SippBuilder};

pub const ENTERPRISE: &str = "3000001";
const AGENT_PASSWORD: &str = "bench";
const ADMIN_PASSWORD: &str = "bench-admin";
const CALLER_ID: &str = "02160001234";

pub struct World {
    server: Child,
    pub dir: tempfile::TempDir,
    pub http: String,
    pub sip: String,
    pub phone_port: u16,
    pub carrier_port: u16,
    pub agents: usize,
    pub client: reqwest::Client,
    pwd: String,
}

/// The bench's own SIPp scenario files (`bench/sipp/`).
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp").join(name)
}

/// The `dialbridge` binary built with the same profile as this one.
fn dialbridge_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("dialbridge");
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build -p dialbridge`",
            path.display()
        );
    }
    Ok(path)
}

pub fn cno(agent: usize) -> String {
    format!("{}", 10_000 + agent)
}

impl World {
    /// Provisions `agents` agents and extensions, starts the server, registers every extension
    /// and brings every agent online.
    pub async fn start(agents: usize) -> anyhow::Result<World> {
        let dir = tempfile::tempdir()?;
        let (phone_port, carrier_port) = (free_port(), free_port());
        let provision = dir.path().join("bench.toml");
        std::fs::write(&provision, provisioning(agents, carrier_port))?;
        let binary = dialbridge_binary()?;
        let run = |args: &[&str]| -> anyhow::Result<()> {
            let out = environment(Command::new(&binary), dir.path()).args(args).output()?;
            if !out.status.success() {
                bail!("dialbridge {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        };
        run(&["provision", &provision.display().to_string()])?;
        run(&[
            "admin",
            "balance",
            "top-up",
            "--enterprise",
            ENTERPRISE,
            "--amount",
            "1000000",
        ])?;

        let log = dir.path().join("serve.log");
        let server = environment(Command::new(&binary), dir.path())
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start dialbridge serve")?;
        let (http, sip) = listening_addresses(&log)?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(30))
            .build()?;
        let world = World {
            server,
            dir,
            http,
            sip,
            phone_port,
            carrier_port,
            agents,
            client,
            pwd: dialbridge_store::md5_hex(AGENT_PASSWORD),
        };
        world.register_extensions()?;
        world.bring_agents_online().await?;
        Ok(world)
    }

    /// Runs `dialbridge admin …` (or another command) against the server's store.
    pub fn command(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = environment(Command::new(dialbridge_binary()?), self.dir.path())
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("dialbridge {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Where the server keeps its recordings.
    pub fn recordings_dir(&self) -> PathBuf {
        self.dir.path().join("data").join("recordings")
    }

    pub fn pid(&self) -> u32 {
        self.server.id()
    }

    fn register_extensions(&self) -> anyhow::Result<()> {
        let aors: Vec<String> = (0..self.agents).map(|a| format!("{ENTERPRISE}-{}", cno(a))).collect();
        crate::register::register_all(self.sip.parse()?, &aors, AGENT_PASSWORD, self.phone_port)
    }

    async fn bring_agents_online(&self) -> anyhow::Result<()> {
        let admin = self.admin_auth();
        let mut pending = tokio::task::JoinSet::new();
        for agent in 0..self.agents {
            if pending.len() >= 16 {
                pending.join_next().await.context("join")???;
            }
            let url = format!(
                "http://{}/interface/client/ClientOnline?{admin}&cno={}&bindTel={}&type=2",
                self.http,
                cno(agent),
                cno(agent)
            );
            let client = self.client.clone();
            pending.spawn(async move {
                let reply: serde_json::Value = client.get(&url).send().await?.json().await?;
                if reply["code"] != "0" {
                    bail!("ClientOnline {}: {reply}", cno(agent));
                }
                Ok(())
            });
        }
        while let Some(done) = pending.join_next().await {
            done??;
        }
        Ok(())
    }

    /// The admin seed parameters of the enterprise.
    pub fn admin_auth(&self) -> String {
        let seed = "4711";
        let pwd = dialbridge_store::md5_hex(&format!("{}{seed}", dialbridge_store::md5_hex(ADMIN_PASSWORD)));
        format!("enterpriseId={ENTERPRISE}&userName=admin&seed={seed}&pwd={pwd}")
    }

    /// The PreviewOutcall URL for an agent and a customer (asynchronous).
    pub fn outcall_url(&self, agent: usize, customer: &str, pwd_override: Option<&str>) -> String {
        format!(
            "http://{}/interface/PreviewOutcall?enterpriseId={ENTERPRISE}&cno={}&pwd={}&customerNumber={customer}&sync=0",
            self.http,
            cno(agent),
            pwd_override.unwrap_or(&self.pwd)
        )
    }

    /// The agents' phones: one SIPp process on the port every extension registered.
    /// `inf`: the SDP port per call (see phone.xml).
    pub fn phones(&self, mode: &str, inf: &Path) -> Sipp {
        long_running(&scenario("phone.xml"), self.phone_port, inf)
            .set("mode", mode)
            .spawn()
    }

    /// The carrier behind the enterprise's trunk, holding each call `hold` before its BYE.
    pub fn carrier(&self, hold: Duration, inf: &Path) -> Sipp {
        long_running(&scenario("carrier.xml"), self.carrier_port, inf)
            .set("hold_ms", hold.as_millis())
            .spawn()
    }

    /// Calls running in the server, from its /metrics.
    pub async fn calls_active(&self) -> anyhow::Result<u64> {
        let text = self
            .client
            .get(format!("http://{}/metrics", self.http))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("dialbridge_calls_active "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .context("dialbridge_calls_active missing from /metrics")
    }

    /// Waits until no call runs any more (bounded).
    pub async fn wait_idle(&self, limit: Duration) -> anyhow::Result<()> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.calls_active().await? == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("calls still running after {limit:?}")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // BENCH_KEEP=1 keeps the server's directory (its log, database) to look into a run.
        if std::env::var_os("BENCH_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::TempDir::new().expect("temp dir"));
            eprintln!("kept {}", kept.keep().display());
        }
    }
}

/// A SIPp UAS meant to run for the whole scenario (no call or time limit of its own).
pub fn long_running(scenario: &Path, port: u16, inf: &Path) -> SippBuilder {
    SippBuilder::from_file(scenario, None)
        .args([
            "-p".to_owned(),
            port.to_string(),
            "-m".to_owned(),
            "100000000".to_owned(),
        ])
        .args(["-timeout", "3600s", "-max_socket", "60000", "-trace_stat", "-fd", "1"])
        .args(["-inf".to_owned(), inf.display().to_string()])
        .media_port(free_port())
}

/// The server's settings for a benchmark: everything on loopback, the password hash cheap (it
/// is not what is measured), RTP inactivity long (signalling-only calls send no RTP).
fn environment(mut command: Command, dir: &Path) -> Command {
    command
        .env("DIALBRIDGE_DATA_DIR", dir.join("data"))
        .env("DIALBRIDGE_HTTP_LISTEN", "127.0.0.1:0")
        .env("DIALBRIDGE_SIP_LISTEN", "127.0.0.1:0")
        .env("DIALBRIDGE_SIP_TRANSPORTS", "udp")
        .env("DIALBRIDGE_RTP_PORTS", "40000-59999")
        .env("DIALBRIDGE_RTP_INACTIVITY_SECS", "3600")
        .env("DIALBRIDGE_PASSWORD_HASH_MEMORY_KIB", "64")
        .env("DIALBRIDGE_PASSWORD_HASH_ITERATIONS", "1");
    command
}

fn listening_addresses(log: &Path) -> anyhow::Result<(String, String)> {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let find = |what: &str| {
            text.split(&format!("listening for {what} address="))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        };
        if let (Some(http), Some(sip)) = (find("HTTP"), find("SIP")) {
            return Ok((http, sip));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "dialbridge serve did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

fn provisioning(agents: usize, carrier_port: u16) -> String {
    let mut toml = format!(
        r#"[[trunk]]
name = "bench-carrier"
address = "127.0.0.1:{carrier_port}"
max_channels = 100000
enterprises = [{ENTERPRISE}]

[[enterprise]]
id = {ENTERPRISE}
name = "Bench"
default_caller_id = "{CALLER_ID}"
wrapup_secs = 0

[[enterprise.admin]]
user = "admin"
password = "{ADMIN_PASSWORD}"

[[enterprise.number]]
number = "{CALLER_ID}"
trunk = "bench-carrier"
"#
    );
    for agent in 0..agents {
        toml.push_str(&format!(
            "\n[[enterprise.agent]]\ncno = \"{c}\"\nname = \"Agent {c}\"\npassword = \"{AGENT_PASSWORD}\"\n\n[[enterprise.extension]]\nnumber = \"{c}\"\npassword = \"{AGENT_PASSWORD}\"\n",
            c = cno(agent)
        ));
    }
    toml
}

/// The last lines of a long log, for an error message.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// One line of SIPp's `<log>` output: the word, then its fields.
pub struct LogLine {
    pub word: String,
    pub fields: Vec<String>,
}

/// Every `<log>` line SIPp wrote so far in its working directory.
pub fn sipp_log_lines(sipp: &Sipp) -> Vec<LogLine> {
    let mut lines = Vec::new();
    let Ok(entries) = std::fs::read_dir(sipp.dir()) else {
        return lines;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with("_logs.log") {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            for line in text.lines() {
                let mut parts = line.split_whitespace().map(str::to_owned);
                if let Some(word) = parts.next() {
                    lines.push(LogLine {
                        word,
                        fields: parts.collect(),
                    });
                }
            }
        }
    }
    lines
}

/// SIPp's cumulative failed-call counter, from its -trace_stat file (written every second).
pub fn sipp_failed_calls(sipp: &Sipp) -> u64 {
    let Ok(entries) = std::fs::read_dir(sipp.dir()) else {
        return 0;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().ends_with(".csv") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
        if let (Some(header), Some(last)) = (rows.first(), rows.last()) {
            if let Some(i) = header.iter().position(|h| *h == "FailedCall(C)") {
                return last.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
    }
    0
}

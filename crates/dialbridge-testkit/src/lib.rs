//! Test support shared by the crates' integration tests: running SIPp (the independent SIP
//! implementation the tests talk to) with the project's own scenarios, and finding free ports.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A scenario file shipped in this crate's `sipp/` folder.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp").join(name)
}

/// A raw G.711 µ-law file for SIPp's `rtp_stream`: two seconds of a 440 Hz tone, written once
/// per test process into the temporary directory.
pub fn tone_file() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("dialbridge-tone-{}.pcmu", std::process::id()));
        let bytes: Vec<u8> = (0..16_000)
            .map(|i| {
                let sample = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 8000.0).sin()) as i16;
                dialbridge_media::Law::Mu.encode(sample)
            })
            .collect();
        std::fs::write(&path, bytes).expect("write tone file");
        path
    })
    .clone()
}

/// A loopback port free for both UDP and TCP at the time of the call.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// One SIPp process. Killed on drop; `finish` waits for it with a deadline.
pub struct Sipp {
    child: Child,
    dir: tempfile::TempDir,
    name: String,
}

pub struct SippBuilder {
    args: Vec<String>,
    name: String,
    /// Answers calls (no remote address to send to first).
    server: bool,
}

impl SippBuilder {
    /// `remote`: the address SIPp sends to (its first request), if it is a client.
    pub fn new(scenario_name: &str, remote: Option<SocketAddr>) -> Self {
        Self::from_file(&scenario(scenario_name), remote)
    }

    /// A scenario kept elsewhere (the benchmarks keep their own).
    pub fn from_file(scenario: &Path, remote: Option<SocketAddr>) -> Self {
        let mut args = vec![];
        if let Some(remote) = remote {
            args.push(remote.to_string());
        }
        args.extend(
            [
                "-sf",
                scenario.to_str().expect("utf-8 path"),
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-nostdin",
                "-trace_err",
                "-trace_logs",
                "-timeout",
                "60s",
            ]
            .map(str::to_owned),
        );
        Self {
            args,
            server: remote.is_none(),
            name: scenario
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, items: I) -> Self {
        self.args.extend(items.into_iter().map(Into::into));
        self
    }

    /// The UDP port SIPp streams RTP from (SIPp's default, 6000, would collide between
    /// processes).
    pub fn media_port(self, port: u16) -> Self {
        self.args(["-mp".to_owned(), port.to_string()])
    }

    /// Streams a tone file as RTP after the answer (scenarios that use `[rtp_stream]`).
    pub fn rtp_stream(self) -> Self {
        let file = tone_file();
        self.args([
            "-key".to_owned(),
            "rtp_stream".to_owned(),
            format!("{},-1,0", file.display()),
        ])
    }

    pub fn set(self, name: &str, value: impl ToString) -> Self {
        self.args(["-set".to_owned(), name.to_owned(), value.to_string()])
    }

    pub fn spawn(self) -> Sipp {
        let listen = self.listen_address();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new("sipp")
            .args(&self.args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp must be installed (scripts/test installs sip-tester)");
        let mut sipp = Sipp {
            child,
            dir,
            name: self.name,
        };
        // Callers of a SIPp that answers must not reach it before it listens (a call placed too
        // early looks like an unreachable phone).
        if let Some((address, tcp)) = listen {
            let free = || {
                if tcp {
                    TcpListener::bind(address).is_ok()
                } else {
                    UdpSocket::bind(address).is_ok()
                }
            };
            let end = Instant::now() + Duration::from_secs(10);
            while free() && sipp.exited().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        sipp
    }

    /// Where a SIPp that answers listens (`-i`, `-p`, and TCP for `-t t1`/`tn`); `None` for a
    /// caller, which binds nothing before it sends.
    fn listen_address(&self) -> Option<(SocketAddr, bool)> {
        if !self.server {
            return None;
        }
        let last_value = |flag: &str| self.args.windows(2).rfind(|w| w[0] == flag).map(|w| w[1].clone());
        let port: u16 = last_value("-p")?.parse().ok()?;
        let ip: std::net::IpAddr = last_value("-i")?.parse().ok()?;
        let tcp = last_value("-t").is_some_and(|t| t.starts_with('t'));
        Some((SocketAddr::new(ip, port), tcp))
    }
}

impl Sipp {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether SIPp has exited, and if so whether every call succeeded; does not wait.
    pub fn exited(&mut self) -> Option<bool> {
        self.child.try_wait().ok().flatten().map(|status| status.success())
    }

    /// Waits up to `deadline` for SIPp to exit; returns whether every call succeeded (exit 0).
    pub fn finish(&mut self, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for sipp") {
                return status.success();
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The working directory SIPp writes its log and statistics files into.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything SIPp logged (its -trace_logs and -trace_err files), for assertions and for
    /// failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    out.push_str(&format!(
                        "--- {} ({})\n{text}\n",
                        entry.file_name().to_string_lossy(),
                        self.name
                    ));
                }
            }
        }
        out
    }

    /// Waits until the logs contain `needle` (e.g. SIPp logged "registered").
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

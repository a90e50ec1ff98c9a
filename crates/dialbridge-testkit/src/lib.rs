//! Test support shared by the crates' integration tests: running SIPp and baresip (the
//! independent SIP implementations the tests talk to) with the project's own scenarios, finding free ports, and
//! skipping a test whose outside program is missing.
//!
//! Every wait comes in two forms: a blocking one for plain `#[test]`s and blocking threads, and
//! an `_async` one for `#[tokio::test]` bodies, which must never block a runtime thread (one
//! test's wait would stall the other tasks on that worker).

pub mod audio;
mod baresip;

pub use baresip::{skip_without_baresip, Baresip};

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The environment variable naming the PostgreSQL database the portability tests use.
pub const POSTGRES_URL_VARIABLE: &str = "DIALBRIDGE_TEST_POSTGRES_URL";

/// Whether this run must not skip anything: `CI` set to anything but empty, `0` or `false`
/// (`.ci/run` runs with `CI=true`).
fn nothing_may_be_skipped() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.trim(), "" | "0" | "false"))
}

/// `true` when the calling test must return at once because `missing` describes what it needs
/// and is not here. Under CI that is a failure instead, naming what is missing.
fn skip_because(present: bool, missing: &str) -> bool {
    if present {
        return false;
    }
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    assert!(
        !nothing_may_be_skipped(),
        "{test} needs {missing} (CI is set, so it is not skipped)"
    );
    // Written to the process's standard error itself, past the test harness's capture of
    // `eprintln!`, so that `cargo test` lists every skipped test with its reason.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs {missing}");
    true
}

/// Whether an executable named `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
        })
    })
}

/// `true` when SIPp is not installed and the calling test must return at once (it prints why);
/// with `CI` set a missing SIPp fails the test instead. Call it first in every test that runs
/// SIPp: `if skip_without_sipp() { return; }`.
pub fn skip_without_sipp() -> bool {
    skip_because(
        on_path("sipp"),
        "SIPp, and `sipp` is not on PATH (scripts/test installs Debian's sip-tester)",
    )
}

/// `true` when headless Chromium cannot be driven here and the calling test must return at once
/// (it prints why): Debian's `/usr/bin/chromium`, `node`, and puppeteer-core installed in `browser_dir`
/// (scripts/test installs all three). With `CI` set a missing one fails the test instead.
pub fn skip_without_chromium(browser_dir: &Path) -> bool {
    let puppeteer = browser_dir.join("node_modules/puppeteer-core/package.json");
    skip_because(
        Path::new("/usr/bin/chromium").is_file() && on_path("node") && puppeteer.is_file(),
        "Chromium, node and puppeteer-core (scripts/test installs Debian's chromium and runs npm install in crates/dialbridge/tests/browser)",
    )
}

/// The PostgreSQL database for the portability tests ([`POSTGRES_URL_VARIABLE`]); `None` when it
/// is not set and the calling test must return at once (it prints why). With `CI` set a missing
/// database fails the test instead.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var(POSTGRES_URL_VARIABLE).ok().filter(|url| !url.is_empty());
    let missing =
        format!("PostgreSQL, and {POSTGRES_URL_VARIABLE} is not set (scripts/test starts a throwaway server)");
    if skip_because(url.is_some(), &missing) {
        return None;
    }
    url
}

/// A new, empty database named `<prefix>_<pid>_<n>` on the server of [`postgres_url`], for a
/// test that runs a whole server on PostgreSQL; `None` when there is no server (see
/// [`postgres_url`]). Created with `psql`, which comes with the server's packages.
pub fn fresh_postgres_database(prefix: &str) -> Option<String> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let url = postgres_url()?;
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let status = Command::new("psql")
        .args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .stdout(Stdio::null())
        .status()
        .expect("psql must be installed beside PostgreSQL");
    assert!(status.success(), "cannot create database {name} on {url}");
    let server = url.rsplit_once('/').map_or(url.as_str(), |(server, _)| server);
    Some(format!("{server}/{name}"))
}

/// Polls `done` every `step` until it holds or `deadline` passes; returns whether it held.
fn poll(deadline: Duration, step: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// [`poll`] for async tests: sleeps on the runtime's timer instead of blocking its thread.
async fn poll_async(deadline: Duration, step: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(step).await;
    }
}

/// A scenario file shipped in this crate's `sipp/` folder.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp").join(name)
}

/// A raw G.711 µ-law file for SIPp's `rtp_stream`: two seconds of a 440 Hz tone, written once
/// per test process into the temporary directory.
pub fn tone_file() -> PathBuf {
    tone_file_at(440)
}

/// [`tone_file`] at `hz` (a whole number of cycles in its two seconds, so it loops cleanly).
pub fn tone_file_at(hz: u32) -> PathBuf {
    static FILES: std::sync::Mutex<Vec<(u32, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut files = FILES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = files.iter().find(|(at, _)| *at == hz) {
        return path.clone();
    }
    let path = std::env::temp_dir().join(format!("dialbridge-tone-{hz}-{}.pcmu", std::process::id()));
    let bytes: Vec<u8> = (0..16_000)
        .map(|i| {
            let sample = (8000.0 * (2.0 * std::f64::consts::PI * f64::from(hz) * f64::from(i) / 8000.0).sin()) as i16;
            dialbridge_media::Law::Mu.encode(sample)
        })
        .collect();
    std::fs::write(&path, bytes).expect("write tone file");
    files.push((hz, path.clone()));
    path
}

/// Every file under `dir`, in its subdirectories too (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `true` when sox is not installed and the calling test must return at once (it prints why);
/// with `CI` set a missing sox fails the test instead.
pub fn skip_without_sox() -> bool {
    skip_because(
        on_path("soxi") && on_path("sox"),
        "sox, and `sox`/`soxi` are not on PATH (scripts/test installs Debian's sox)",
    )
}

/// `true` when Debian's sqlite3 is not installed and the calling test must return at once;
/// with `CI` set it fails the test instead.
pub fn skip_without_sqlite3() -> bool {
    skip_because(
        on_path("sqlite3"),
        "sqlite3 on PATH (scripts/test installs Debian's sqlite3)",
    )
}

/// `true` when this process cannot give a child a mount namespace of its own (`unshare
/// --mount`, which needs root or CAP_SYS_ADMIN) and the calling test must return at once; with
/// `CI` set (where the suite runs as root) it fails the test instead.
pub fn skip_without_mount_namespace() -> bool {
    let can = std::process::Command::new("unshare")
        .args(["--mount", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    skip_because(can, "a mount namespace (`unshare --mount` needs root)")
}

/// Where [`free_port`] looks: below the kernel's ephemeral range (32768-60999 by default), so
/// no socket bound to port 0 by a test running beside this one takes the port before the SIPp
/// it is meant for binds it, and apart from the RTP ranges the engine tests (32000-39999) and a
/// default `dialbridge serve` (20000-29999) allocate from.
const TEST_PORTS: std::ops::Range<u16> = 10_000..20_000;

/// Ports handed out are this far apart: a SIPp given port P for its media also binds the next
/// ones (RTCP, a second stream).
const PORT_STEP: u16 = 4;

/// A loopback port free for both UDP and TCP at the time of the call, never the same one twice
/// in a process, with the three after it left free too (see [`PORT_STEP`]).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slots = (TEST_PORTS.end - TEST_PORTS.start) / PORT_STEP;
    // A random start per process (processes of one test run do not collide), then onwards.
    let start = {
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        (random % u64::from(slots)) as u16
    };
    let _ = NEXT.compare_exchange(0, start.max(1), Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..slots {
        let slot = NEXT.fetch_add(1, Ordering::Relaxed) % slots;
        let port = TEST_PORTS.start + slot * PORT_STEP;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}");
}

/// How long a SIPp that answers may take to bind its port (generous: a loaded machine).
const LISTEN_DEADLINE: Duration = Duration::from_secs(20);
const POLL_STEP: Duration = Duration::from_millis(20);

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

    /// A SIPp playing `scenario` (a phone or a carrier) that answers `calls` calls on `port`,
    /// its media on a port of its own.
    pub fn answering(scenario_name: &str, port: u16, calls: u32) -> Self {
        Self::new(scenario_name, None)
            .args(["-p".to_owned(), port.to_string(), "-m".to_owned(), calls.to_string()])
            .media_port(free_port())
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
        self.rtp_tone(440)
    }

    /// [`Self::rtp_stream`] with a tone at `hz`.
    pub fn rtp_tone(self, hz: u32) -> Self {
        let file = tone_file_at(hz);
        self.args([
            "-key".to_owned(),
            "rtp_stream".to_owned(),
            format!("{},-1,0", file.display()),
        ])
    }

    pub fn set(self, name: &str, value: impl ToString) -> Self {
        self.args(["-set".to_owned(), name.to_owned(), value.to_string()])
    }

    /// [`Self::set`] for each of `settings`.
    pub fn settings(self, settings: &[(&str, &str)]) -> Self {
        settings.iter().fold(self, |b, (name, value)| b.set(name, value))
    }

    /// Sends no RTP (scenarios that use `[rtp_stream]`: the stream is paused).
    pub fn silent_media(self) -> Self {
        self.args(["-key", "rtp_stream", "pause"])
    }

    /// Starts SIPp and, for one that answers, waits (blocking the thread) until it listens:
    /// callers must not reach it before (a call placed too early looks like an unreachable
    /// phone). For plain `#[test]`s; async tests use [`Self::spawn_async`].
    pub fn spawn(self) -> Sipp {
        let (mut sipp, listen) = self.launch();
        if let Some(address) = listen {
            poll(LISTEN_DEADLINE, POLL_STEP, || !sipp.still_starting(address));
        }
        sipp
    }

    /// [`Self::spawn`] for `#[tokio::test]` bodies: waits on the runtime's timer.
    pub async fn spawn_async(self) -> Sipp {
        let (mut sipp, listen) = self.launch();
        if let Some(address) = listen {
            poll_async(LISTEN_DEADLINE, POLL_STEP, || !sipp.still_starting(address)).await;
        }
        sipp
    }

    fn launch(self) -> (Sipp, Option<(SocketAddr, bool)>) {
        let listen = self.listen_address();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new("sipp")
            .args(&self.args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp must be installed: a test that runs it starts with `if skip_without_sipp() { return; }`");
        let sipp = Sipp {
            child,
            dir,
            name: self.name,
        };
        (sipp, listen)
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

    /// Whether SIPp, answering on `address` (TCP if the flag says so), has not bound it yet
    /// and is still running.
    fn still_starting(&mut self, (address, tcp): (SocketAddr, bool)) -> bool {
        let free = if tcp {
            TcpListener::bind(address).is_ok()
        } else {
            UdpSocket::bind(address).is_ok()
        };
        free && self.exited().is_none()
    }

    /// Waits up to `deadline` (blocking the thread) for SIPp to exit; returns whether every
    /// call succeeded (exit 0). One still running then is killed.
    pub fn finish(&mut self, deadline: Duration) -> bool {
        poll(deadline, POLL_STEP, || self.exited().is_some());
        self.verdict()
    }

    /// [`Self::finish`] for `#[tokio::test]` bodies.
    pub async fn finish_async(&mut self, deadline: Duration) -> bool {
        poll_async(deadline, POLL_STEP, || self.exited().is_some()).await;
        self.verdict()
    }

    /// Exit 0, or `false` after killing a SIPp still running.
    fn verdict(&mut self) -> bool {
        match self.exited() {
            Some(success) => success,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                false
            }
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

    /// Waits (blocking the thread) until the logs contain `needle` (e.g. SIPp logged
    /// "registered"); returns whether they did within `deadline`.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> bool {
        poll(deadline, POLL_STEP, || self.logs().contains(needle))
    }

    /// [`Self::wait_for_log`] for `#[tokio::test]` bodies.
    pub async fn wait_for_log_async(&self, needle: &str, deadline: Duration) -> bool {
        poll_async(deadline, POLL_STEP, || self.logs().contains(needle)).await
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

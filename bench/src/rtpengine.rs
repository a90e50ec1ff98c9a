//! rtpengine (Debian's `rtpengine-daemon`, userspace forwarding: `--table=-1`) as the media
//! relay peer; its sessions are created through its ng control protocol (bencoded dictionaries
//! over UDP), as a SIP proxy would create them.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use dialbridge_testkit::free_port;

pub struct Rtpengine {
    child: Child,
    control: UdpSocket,
    cookie: u64,
}

/// rtpengine's media ports: apart from the generator's and dialbridge's.
const PORT_MIN: u16 = 30_000;
const PORT_MAX: u16 = 39_999;

impl Rtpengine {
    pub fn start(dir: &Path) -> anyhow::Result<Rtpengine> {
        let ng_port = free_port();
        let log = std::fs::File::create(dir.join("rtpengine.log"))?;
        let mut child = Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--table=-1",
                "--interface=127.0.0.1",
                &format!("--listen-ng=127.0.0.1:{ng_port}"),
                &format!("--port-min={PORT_MIN}"),
                &format!("--port-max={PORT_MAX}"),
                "--num-threads=2",
                "--log-level=3",
                &format!("--pidfile={}", dir.join("rtpengine.pid").display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("rtpengine must be installed (bench/run installs rtpengine-daemon)")?;
        std::thread::sleep(Duration::from_millis(800));
        if let Some(status) = child.try_wait()? {
            bail!(
                "rtpengine exited ({status}): {}",
                std::fs::read_to_string(dir.join("rtpengine.log")).unwrap_or_default()
            );
        }
        let control = UdpSocket::bind("127.0.0.1:0")?;
        control.connect(("127.0.0.1", ng_port))?;
        control.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Rtpengine {
            child,
            control,
            cookie: 0,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Creates the session of one call between `caller_port` and `callee_port` (both sending
    /// from the port they offer) and returns (where the caller sends, where the callee sends).
    pub fn session(&mut self, call: usize, caller_port: u16, callee_port: u16) -> anyhow::Result<(u16, u16)> {
        let call_id = format!("bench-{call}");
        let offer = self.command(&[
            ("command", "offer"),
            ("call-id", &call_id),
            ("from-tag", "caller"),
            ("sdp", &sdp(caller_port)),
        ])?;
        let callee_sends_to = media_port(&offer)?;
        let answer = self.command(&[
            ("command", "answer"),
            ("call-id", &call_id),
            ("from-tag", "caller"),
            ("to-tag", "callee"),
            ("sdp", &sdp(callee_port)),
        ])?;
        let caller_sends_to = media_port(&answer)?;
        Ok((caller_sends_to, callee_sends_to))
    }

    /// One ng request; returns the reply's SDP.
    fn command(&mut self, entries: &[(&str, &str)]) -> anyhow::Result<String> {
        self.cookie += 1;
        let mut message = format!("{} d", self.cookie).into_bytes();
        let mut sorted = entries.to_vec();
        sorted.sort_by_key(|(k, _)| *k);
        for (key, value) in sorted {
            message.extend(format!("{}:{key}{}:{value}", key.len(), value.len()).into_bytes());
        }
        message.push(b'e');
        self.control.send(&message)?;
        let mut buffer = vec![0u8; 65_536];
        let len = self.control.recv(&mut buffer).context("no answer from rtpengine")?;
        let reply = String::from_utf8_lossy(&buffer[..len]).into_owned();
        let Some((_, rest)) = reply.split_once("3:sdp") else {
            bail!("rtpengine refused: {reply}");
        };
        let (length, body) = rest.split_once(':').context("bad bencoded SDP")?;
        let length: usize = length.parse().context("bad bencoded SDP length")?;
        Ok(body.get(..length).context("short bencoded SDP")?.to_owned())
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

fn media_port(sdp: &str) -> anyhow::Result<u16> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no audio port in rtpengine's SDP: {sdp}"))
}

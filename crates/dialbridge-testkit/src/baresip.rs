//! baresip, an independently written SIP softphone (Debian's `baresip-core`), run headless: a
//! sine tone as its microphone, ALSA's `null` device as its speaker (no sound card needed), on
//! the loopback address only, answering every call by itself.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{on_path, poll, skip_because, POLL_STEP};

/// `true` when baresip is not installed and the calling test must return at once (it prints
/// why); with `CI` set a missing baresip fails the test instead.
pub fn skip_without_baresip() -> bool {
    skip_because(
        on_path("baresip"),
        "baresip, and `baresip` is not on PATH (scripts/test installs Debian's baresip-core)",
    )
}

/// A running baresip registered (or trying to register) with one account; killed on drop.
pub struct Baresip {
    child: Child,
    dir: tempfile::TempDir,
}

impl Baresip {
    /// Starts baresip registering `user` with `password` at `registrar` (UDP), answering calls
    /// automatically with G.711.
    pub fn register(registrar: std::net::SocketAddr, user: &str, password: &str) -> Baresip {
        let account = format!(
            "<sip:{user}@{registrar}>;auth_pass={password};answermode=auto;regint=600;audio_codecs=PCMU,PCMA\n"
        );
        Self::spawn(&config(super::free_port(), None), &account)
    }

    /// Starts baresip as a carrier: listening on `port`, registering nowhere, answering calls to
    /// `number` (baresip takes a call only for one of its accounts) with a 440 Hz tone, and
    /// recording what it hears into `record_dir` (baresip's `sndfile` module: `dump-…-dec.wav`
    /// is what it received, decoded).
    pub fn carrier(port: u16, number: &str, record_dir: &std::path::Path) -> Baresip {
        let account = format!("<sip:{number}@127.0.0.1:{port}>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n");
        Self::spawn(&config(port, Some(record_dir)), &account)
    }

    fn spawn(config: &str, account: &str) -> Baresip {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("config"), config).expect("baresip config");
        std::fs::write(dir.path().join("accounts"), account).expect("baresip accounts");
        let log = std::fs::File::create(dir.path().join("baresip.log")).expect("baresip log");
        let child = Command::new("baresip")
            .args(["-f".as_ref(), dir.path().as_os_str()])
            .args(["-n", "127.0.0.1", "-4"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect(
                "baresip must be installed: a test that runs it starts with `if skip_without_baresip() { return; }`",
            );
        Baresip { child, dir }
    }

    /// Everything baresip printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// Waits (blocking the thread) until baresip has printed `needle`; returns whether it did
    /// within `deadline`.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> bool {
        poll(deadline, POLL_STEP, || self.logs().contains(needle))
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// baresip's configuration: SIP on `sip_port` over UDP, a 440 Hz tone as its microphone, ALSA's
/// null device as its speaker, G.711; with `record_dir`, what it hears is recorded there.
fn config(sip_port: u16, record_dir: Option<&std::path::Path>) -> String {
    let (snd_path, sndfile) = match record_dir {
        Some(dir) => (format!("snd_path {}\n", dir.display()), "module sndfile.so\n"),
        None => (String::new(), ""),
    };
    format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip_port}\n\
         sip_transports udp\n\
         audio_player alsa,null\n\
         audio_alert alsa,null\n\
         audio_source ausine,440\n\
         ausrc_srate 48000\n\
         ausrc_channels 2\n\
         {snd_path}\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\n\
         module ausine.so\n\
         module alsa.so\n\
         {sndfile}\
         module_app account.so\n\
         module_app menu.so\n"
    )
}

//! Kamailio as a minimal stateful proxy (tm, record-routing) between two SIPp processes: the
//! peer an operator might deploy in front of a PBX, measured at the same call rates.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use dialbridge_testkit::free_port;

pub struct Kamailio {
    child: Child,
    port: u16,
    callee_port: u16,
    last_cpu_ms_per_call: Mutex<f64>,
}

impl Kamailio {
    pub fn start(dir: &Path) -> anyhow::Result<Kamailio> {
        let (port, callee_port) = (free_port(), free_port());
        let config = dir.join("kamailio.cfg");
        std::fs::write(&config, configuration(port, callee_port))?;
        let runtime = dir.join("kamailio-run");
        std::fs::create_dir_all(&runtime)?;
        let log = std::fs::File::create(dir.join("kamailio.log"))?;
        // TLSF allocator and generous shared memory: what Kamailio needs above ~3,500 calls/s.
        let mut child = Command::new("kamailio")
            .args([
                "-f",
                &config.display().to_string(),
                "-DD",
                "-E",
                "-x",
                "tlsf",
                "-m",
                "1024",
                "-M",
                "32",
            ])
            .args([
                "-Y",
                &runtime.display().to_string(),
                "-w",
                &runtime.display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("kamailio must be installed (bench/run installs it)")?;
        std::thread::sleep(Duration::from_millis(800));
        if let Some(status) = child.try_wait()? {
            bail!(
                "kamailio exited ({status}): {}",
                std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default()
            );
        }
        Ok(Kamailio {
            child,
            port,
            callee_port,
            last_cpu_ms_per_call: Mutex::new(0.0),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where Kamailio sends every new call.
    pub fn callee_port(&self) -> u16 {
        self.callee_port
    }

    pub fn record_cpu(&self, seconds: f64, calls: u64) {
        if let Ok(mut last) = self.last_cpu_ms_per_call.lock() {
            *last = seconds * 1e3 / calls.max(1) as f64;
        }
    }

    pub fn last_cpu_ms_per_call(&self) -> f64 {
        self.last_cpu_ms_per_call.lock().map_or(0.0, |v| *v)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // Its children leave with the main process on SIGTERM; SIGKILL would orphan them.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stateful forwarding of every new INVITE to the callee, record-routed so that ACK and BYE
/// pass through too; two UDP workers for two cores.
fn configuration(port: u16, callee_port: u16) -> String {
    format!(
        r#"#!KAMAILIO
debug=0
log_stderror=yes
children=2
listen=udp:127.0.0.1:{port}
disable_tcp=yes
auto_aliases=no

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "textops.so"

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    record_route();
    $du = "sip:127.0.0.1:{callee_port}";
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"#
    )
}

//! The `dialbridge` binary driven from outside, as operators, CRMs and phones use it. Shared
//! helpers live here; each module covers one area (the legacy interface one module per
//! endpoint family).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dialbridge_store::md5_hex;
use serde_json::Value;

mod baresip;
mod caps;
mod credentials;
mod credit;
mod destinations;
mod exhaustion;
mod in_process;
mod legacy_agents;
mod legacy_outcall;
mod legacy_robustness;
mod legacy_sessions;
mod live;
mod operator;
mod pushes;
mod recording;
mod restart;
mod sip_torture;
mod softphone;
mod toolbar;
mod trunk_routing;
mod trunk_watch;

const BIN: &str = env!("CARGO_BIN_EXE_dialbridge");

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(name)
}

/// A working directory with its own data directory; every command runs in it with a clean
/// environment and a cheap password hash.
struct Operator {
    dir: tempfile::TempDir,
    /// The store's database when it is not the embedded SQLite file.
    database_url: Option<String>,
}

impl Operator {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
        }
    }

    /// An operator (and its server) whose store is the PostgreSQL database at `url`.
    fn on_postgres(url: String) -> Self {
        Self {
            database_url: Some(url),
            ..Self::new()
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_under(&[], args)
    }

    /// [`command`](Self::command) run through `wrapper` (e.g. `prlimit --nofile=…`).
    fn command_under(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let mut cmd = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut cmd = Command::new(program);
                cmd.args(wrapper_args).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("DIALBRIDGE_PASSWORD_HASH_MEMORY_KIB", "64")
            .env("DIALBRIDGE_PASSWORD_HASH_ITERATIONS", "1");
        if let Some(url) = &self.database_url {
            cmd.env("DIALBRIDGE_DATABASE_URL", url);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{args:?} should fail; printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Everything the store holds about the example's enterprise, for before/after checks.
    fn snapshot(&self) -> Value {
        let e = "3000001";
        serde_json::json!({
            "enterprises": self.json(&["admin", "enterprise", "list"]),
            "agents": self.json(&["admin", "agent", "list", "--enterprise", e]),
            "accounts": self.json(&["admin", "account", "list", "--enterprise", e]),
            "extensions": self.json(&["admin", "extension", "list", "--enterprise", e]),
            "numbers": self.json(&["admin", "number", "list", "--enterprise", e]),
            "trunks": self.json(&["admin", "trunk", "list"]),
            "blacklist": self.json(&["admin", "blacklist", "list", "--enterprise", e]),
            "push_targets": self.json(&["admin", "push-target", "list", "--enterprise", e]),
        })
    }

    fn provision_example(&self) -> String {
        self.ok(&["provision", repo_file("examples/provision.toml").to_str().unwrap()])
    }
}

/// A running `dialbridge serve`, killed on drop.
struct Server {
    child: Child,
    http: String,
    sip: String,
    /// Every line the server has logged so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(op: &Operator) -> Server {
    serve_with(op, &[])
}

/// [`serve`] with more environment variables.
fn serve_with(op: &Operator, env: &[(&str, &str)]) -> Server {
    serve_under(op, &[], env)
}

/// `serve` on free loopback ports, run through `wrapper`, with `env` and its log piped.
fn serve_command(op: &Operator, wrapper: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = op.command_under(wrapper, &["serve"]);
    command
        .env("DIALBRIDGE_HTTP_LISTEN", "127.0.0.1:0")
        .env("DIALBRIDGE_SIP_LISTEN", "127.0.0.1:0")
        // Bridged calls record a heartbeat every second (the restart test bills up to it).
        .env("DIALBRIDGE_CALLS_HEARTBEAT_SECS", "1")
        .envs(env.iter().copied())
        .stderr(Stdio::piped());
    command
}

/// [`serve_with`] run through `wrapper`.
fn serve_under(op: &Operator, wrapper: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = serve_command(op, wrapper, env).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            kept.lock().unwrap().push(line.clone());
            for what in ["HTTP", "SIP"] {
                if let Some(rest) = line.split(&format!("listening for {what} address=")).nth(1) {
                    let _ = tx.send((what, rest.split_whitespace().next().unwrap_or("").to_owned()));
                }
            }
        }
    });
    let mut http = String::new();
    let mut sip = String::new();
    while http.is_empty() || sip.is_empty() {
        match rx
            .recv_timeout(Duration::from_secs(20))
            .expect("serve did not log its addresses")
        {
            ("HTTP", address) => http = address,
            (_, address) => sip = address,
        }
    }
    Server { child, http, sip, log }
}

/// SIGTERM, then waits (up to 15 s) for a clean exit.
fn stop_gracefully(server: &mut Server) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get(address: &str, path: &str) -> (u16, String) {
    try_http_get(address, path).unwrap()
}

/// [`http_get`] that returns the error when the server is not there or goes away.
fn try_http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

// ---- helpers of the legacy interface tests ----

/// A provisioning file for the legacy tests: the trunk points at `carrier_port`.
fn legacy_setup(carrier_port: u16) -> String {
    format!(
        r#"
[[trunk]]
name = "carrier"
address = "127.0.0.1:{carrier_port}"
enterprises = [3000001]

[[enterprise]]
id = 3000001
name = "Acme"
rate_per_minute = "0.12"
default_caller_id = "02160001234"
wrapup_secs = 2
agent_ring_timeout_secs = 5
customer_ring_timeout_secs = 5
blacklist = ["13900000000"]

[[enterprise.admin]]
user = "admin"
password = "admin-secret"

[[enterprise.agent]]
cno = "2000"
name = "Alice"
password = "1234"

[[enterprise.agent]]
cno = "2001"
name = "Bob"
password = "5678"
active = false

[[enterprise.extension]]
number = "801"
password = "ext801-secret"

[[enterprise.number]]
number = "02160001234"
trunk = "carrier"

[[enterprise]]
id = 3000002
name = "Rival"

[[enterprise.admin]]
user = "admin"
password = "rival-secret"
"#
    )
}

/// Provisions enterprise 3000001 with `agents` agents (cnos 3000, 3001, …, password "1234"),
/// its admin, a rate, a balance of 100 and its trunk "carrier" with `max_channels`;
/// `enterprise_extra` adds lines to the enterprise. Returns the carrier's port.
fn crowd_store(op: &Operator, agents: usize, enterprise_extra: &str, max_channels: usize) -> u16 {
    let carrier_port = dialbridge_testkit::free_port();
    let mut file = format!(
        r#"
[[trunk]]
name = "carrier"
address = "127.0.0.1:{carrier_port}"
enterprises = [3000001]
max_channels = {max_channels}

[[enterprise]]
id = 3000001
name = "Acme"
rate_per_minute = "0.12"
default_caller_id = "02160001234"
agent_ring_timeout_secs = 20
customer_ring_timeout_secs = 20
{enterprise_extra}

[[enterprise.admin]]
user = "admin"
password = "admin-secret"

[[enterprise.number]]
number = "02160001234"
trunk = "carrier"
"#
    );
    for i in 0..agents {
        file.push_str(&format!(
            "\n[[enterprise.agent]]\ncno = \"{}\"\nname = \"Agent {i}\"\npassword = \"1234\"\n",
            3000 + i
        ));
    }
    op.ok(&["provision", &op.write("crowd.toml", &file)]);
    top_up_100(op);
    carrier_port
}

/// The first `agents` agents of [`crowd_store`] online, each on a telephone of its own.
fn crowd_online(http: &str, agents: usize) {
    for i in 0..agents {
        let online = json_get(
            http,
            &format!(
                "/interface/client/ClientOnline?{}&cno={}&bindTel={}&type=1",
                admin_auth(),
                3000 + i,
                13900139000u64 + i as u64
            ),
        );
        assert_eq!(online["code"], "0", "{online}");
    }
}

/// Agent `i` of [`crowd_store`] calls a customer of its own; `None` when no answer came (the
/// server went away).
fn crowd_outcall(http: &str, i: usize) -> Option<serde_json::Value> {
    let path = format!(
        "/interface/PreviewOutcall?enterpriseId=3000001&cno={}&pwd={}&customerNumber={}",
        3000 + i,
        md5_hex("1234"),
        13800138000u64 + i as u64
    );
    match try_http_get(http, &path) {
        Ok((200, body)) => Some(serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))),
        // Nothing or a cut response: the server was killed while it answered.
        Ok((0, _)) | Err(_) => None,
        Ok((status, body)) => panic!("HTTP {status}: {body}"),
    }
}

/// `admin agent create` in an enterprise; must succeed.
fn create_agent(op: &Operator, enterprise: &str, cno: &str, name: &str, password: &str) {
    op.ok(&[
        "admin",
        "agent",
        "create",
        "--enterprise",
        enterprise,
        "--cno",
        cno,
        "--name",
        name,
        "--password",
        password,
    ]);
}

/// Agent 2002 of enterprise 3000001 (Dave), online on the telephone 13900139001; returns what
/// his own PreviewOutcall requests start with (`enterpriseId=…&cno=2002&pwd=…`).
fn dave_online_on_a_telephone(w: &LegacyWorld) -> String {
    create_agent(&w.op, "3000001", "2002", "Dave", "9999");
    let online = json_get(
        &w.server.http,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2002&bindTel=13900139001&type=1",
            admin_auth()
        ),
    );
    assert_eq!(online["code"], "0", "{online}");
    format!("enterpriseId=3000001&cno=2002&pwd={}", md5_hex("9999"))
}

/// Waits until `/metrics` has the line `line`.
fn wait_for_metric(server: &Server, line: &str, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if http_get(&server.http, "/metrics").1.lines().any(|l| l == line) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// `admin trunk set --name NAME --address 127.0.0.1:PORT` and `more` flags; must succeed.
fn trunk_set(op: &Operator, name: &str, port: u16, more: &[&str]) {
    let address = format!("127.0.0.1:{port}");
    let mut args = vec!["admin", "trunk", "set", "--name", name, "--address", &address];
    args.extend_from_slice(more);
    op.ok(&args);
}

/// The admin seed parameters of enterprise 3000001.
fn admin_auth() -> String {
    let pwd = md5_hex(&format!("{}4711", md5_hex("admin-secret")));
    format!("enterpriseId=3000001&userName=admin&seed=4711&pwd={pwd}")
}

fn json_get(address: &str, path_and_query: &str) -> serde_json::Value {
    let (status, body) = http_get(address, path_and_query);
    assert_eq!(status, 200, "every legacy reply is HTTP 200");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path_and_query}: {e}: {body}"))
}

fn outcall(address: &str, extra: &str) -> serde_json::Value {
    let pwd = md5_hex("1234");
    json_get(
        address,
        &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={pwd}&{extra}"),
    )
}

struct LegacyWorld {
    op: Operator,
    server: Server,
    carrier_port: u16,
}

fn legacy_world() -> LegacyWorld {
    legacy_world_with(|_, _| {})
}

/// Tops enterprise 3000001's balance up by 100.
fn top_up_100(op: &Operator) {
    op.ok(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "100",
    ]);
}

/// A store provisioned with the legacy world (its carrier on the returned port) and a balance
/// of 100, no server yet.
fn legacy_store() -> (Operator, u16) {
    let op = Operator::new();
    let carrier_port = dialbridge_testkit::free_port();
    let path = op.write("legacy.toml", &legacy_setup(carrier_port));
    op.ok(&["provision", &path]);
    top_up_100(&op);
    (op, carrier_port)
}

/// The legacy world, with `configure` run on the store before the server starts.
fn legacy_world_with(configure: impl FnOnce(&Operator, u16)) -> LegacyWorld {
    legacy_world_served(configure, serve)
}

/// [`legacy_world_with`], its server started by `start`.
fn legacy_world_served(configure: impl FnOnce(&Operator, u16), start: impl FnOnce(&Operator) -> Server) -> LegacyWorld {
    let (op, carrier_port) = legacy_store();
    configure(&op, carrier_port);
    let server = start(&op);
    LegacyWorld {
        op,
        server,
        carrier_port,
    }
}

fn http_post_raw(address: &str, path: &str, form: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn http_post_form(address: &str, path: &str, form: &str) -> serde_json::Value {
    let (status, body) = http_post_raw(address, path, form);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Waits (up to 20 s) for the CDR of `unique_id` and returns its row.
fn cdr_row(address: &str, unique_id: &str) -> serde_json::Value {
    for _ in 0..400 {
        let page = json_get(
            address,
            &format!(
                "/interfaceAction/cdrObInterface!listCdrOb.action?{}&uniqueId={unique_id}",
                admin_auth()
            ),
        );
        if let Some(row) = page["msg"]["data"].get(0) {
            return row.clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no CDR for {unique_id}");
}

/// A phone registered as extension 801 of enterprise 3000001 (answering as `phone` says), the
/// agent 2000 online on it, and the carrier (behaving as `carrier` says).
fn phone_and_carrier(
    w: &LegacyWorld,
    phone: &[(&str, &str)],
    carrier: &[(&str, &str)],
) -> (dialbridge_testkit::Sipp, dialbridge_testkit::Sipp) {
    phone_and_carrier_at(&w.server.http, &w.server.sip, w.carrier_port, phone, carrier)
}

/// [`phone_and_carrier`] for a server at `http` and `sip`, its carrier on `carrier_port`.
fn phone_and_carrier_at(
    http: &str,
    sip: &str,
    carrier_port: u16,
    phone: &[(&str, &str)],
    carrier: &[(&str, &str)],
) -> (dialbridge_testkit::Sipp, dialbridge_testkit::Sipp) {
    let carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, 1)
        .rtp_stream()
        .settings(carrier);
    let phone = |port| {
        dialbridge_testkit::SippBuilder::answering("phone_uas.xml", port, 1)
            .rtp_stream()
            .settings(phone)
    };
    phone_with_carrier(http, sip, phone, carrier)
}

/// The call's CDR (enterprise 3000001) as `admin cdr list` shows it.
fn cdr_of(op: &Operator, unique_id: &str) -> Value {
    op.json(&[
        "admin",
        "cdr",
        "list",
        "--enterprise",
        "3000001",
        "--unique-id",
        unique_id,
    ])[0]
        .clone()
}

/// The call's CDR as `admin cdr list` shows it, once it has ended.
fn wait_for_end(op: &Operator, unique_id: &str, deadline: Duration) -> Value {
    let until = Instant::now() + deadline;
    loop {
        let row = cdr_of(op, unique_id);
        if row.get("end_reason").is_some() {
            return row;
        }
        assert!(Instant::now() < until, "{unique_id} did not end: {row}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Registers extension 801 of enterprise 3000001 at the server's SIP address `sip`, for a phone
/// answering on `phone_port`; must succeed.
fn register_extension_801(sip: &str, phone_port: u16) {
    let mut register = dialbridge_testkit::SippBuilder::new("register.xml", Some(sip.parse().unwrap()))
        .args([
            "-s",
            "3000001-801",
            "-au",
            "3000001-801",
            "-ap",
            "ext801-secret",
            "-m",
            "1",
        ])
        .args(["-p".to_owned(), dialbridge_testkit::free_port().to_string()])
        .set("contact_port", phone_port)
        .spawn();
    assert!(register.finish(Duration::from_secs(10)), "{}", register.logs());
}

/// Agent 2000 of enterprise 3000001 online on extension 801 (by the admin's `ClientOnline`);
/// must succeed.
fn alice_online_on_801(http: &str) {
    let online = json_get(
        http,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
            admin_auth()
        ),
    );
    assert_eq!(online["code"], "0", "{online}");
}

/// The folder of the browser scripts (and their npm packages).
fn browser_dir() -> PathBuf {
    repo_file("crates/dialbridge/tests/browser")
}

/// Runs a browser script of `tests/browser` with `config` (JSON): the JSON line it printed last.
fn run_browser_script(script: &str, config: &Value) -> Value {
    let out = Command::new("node")
        .arg(browser_dir().join(script))
        .arg(config.to_string())
        .current_dir(browser_dir())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// [`phone_and_carrier_at`] with a phone (given the port it answers on) and a carrier of the
/// test's own.
fn phone_with_carrier(
    http: &str,
    sip: &str,
    phone: impl FnOnce(u16) -> dialbridge_testkit::SippBuilder,
    carrier: dialbridge_testkit::SippBuilder,
) -> (dialbridge_testkit::Sipp, dialbridge_testkit::Sipp) {
    let phone_port = dialbridge_testkit::free_port();
    let phone = phone(phone_port).spawn();
    let carrier = carrier.spawn();
    register_extension_801(sip, phone_port);
    alice_online_on_801(http);
    (phone, carrier)
}

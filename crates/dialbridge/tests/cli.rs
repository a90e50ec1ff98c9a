//! The `dialbridge` binary as an operator uses it: `serve` with no configuration, `provision`
//! with the README's example, `admin` commands, and bad input of each kind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dialbridge");

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(name)
}

/// A working directory with its own data directory; every command runs in it with a clean
/// environment and a cheap password hash.
struct Operator {
    dir: tempfile::TempDir,
}

impl Operator {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("DIALBRIDGE_PASSWORD_HASH_MEMORY_KIB", "64")
            .env("DIALBRIDGE_PASSWORD_HASH_ITERATIONS", "1");
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(op: &Operator) -> Server {
    let mut child = op
        .command(&["serve"])
        .env("DIALBRIDGE_HTTP_LISTEN", "127.0.0.1:0")
        .env("DIALBRIDGE_SIP_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
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
    Server { child, http, sip }
}

fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
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

#[test]
fn serve_starts_with_no_config_and_shuts_down_on_sigterm() {
    let op = Operator::new();
    let mut server = serve(&op);
    let (status, body) = http_get(&server.http, "/healthz");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"status":"ok"}"#);
    let (status, metrics) = http_get(&server.http, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("dialbridge_build_info{"), "{metrics}");
    let data = op.dir.path().join("dialbridge-data");
    assert!(data.join("dialbridge.db").exists());
    assert!(data.join("secret.key").exists());
    // The database is migrated: the admin tool reads it without migrating anything new.
    assert_eq!(op.json(&["admin", "enterprise", "list"]), serde_json::json!([]));

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_phone_registers_as_a_provisioned_extension() {
    let op = Operator::new();
    op.provision_example();
    let server = serve(&op);
    let register = |user: &str, password: &str, expect: u16| {
        let mut sipp = dialbridge_testkit::SippBuilder::new("register.xml", Some(server.sip.parse().unwrap()))
            .args(["-s", user, "-au", user, "-ap", password, "-m", "1"])
            .args(["-p".to_owned(), dialbridge_testkit::free_port().to_string()])
            .set("expect", expect)
            .spawn();
        let ok = sipp.finish(Duration::from_secs(20));
        assert!(ok, "{user} expected {expect}: {}", sipp.logs());
    };
    register("3000001-801", "ext801-secret", 200);
    register("3000001-801", "wrong", 403);
    register("3000002-801", "ext801-secret", 403);
}

#[test]
fn serve_refuses_a_bad_config_value_naming_the_key() {
    let op = Operator::new();
    let out = op
        .command(&["serve"])
        .env("DIALBRIDGE_RTP_PORTS", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DIALBRIDGE_RTP_PORTS"), "{err}");

    let config = op.write("bad.toml", "[http]\nlisten = \"127.0.0.1:notaport\"\n");
    let err = op.fails(&["--config", &config, "serve"]);
    assert!(err.contains("http.listen"), "{err}");

    let config = op.write("unknown.toml", "[sip]\nlisen = \"127.0.0.1:5060\"\n");
    let err = op.fails(&["--config", &config, "serve"]);
    assert!(err.contains("unknown key sip.lisen"), "{err}");
}

#[test]
fn the_readme_shows_the_example_file_verbatim() {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let example = std::fs::read_to_string(repo_file("examples/provision.toml")).unwrap();
    assert!(
        readme.contains(&example),
        "README.md must include examples/provision.toml as it is"
    );
}

#[test]
fn provisioning_the_example_is_idempotent() {
    let op = Operator::new();
    let first = op.provision_example();
    for expected in [
        "create enterprise 3000001",
        "create trunk carrier-a",
        "create admin 3000001/admin",
        "create agent 3000001/2000",
        "create agent 3000001/2001",
        "create extension 3000001/801",
        "create number 3000001/02160001234",
        "create number 3000001/02160001235",
        "update enterprise 3000001 (default caller id)",
        "create push target 3000001/crm-hangup",
    ] {
        assert!(first.contains(expected), "missing {expected:?} in:\n{first}");
    }
    let before = op.snapshot();
    assert_eq!(op.provision_example().trim(), "no changes");
    assert_eq!(op.snapshot(), before);

    let agents = op.json(&["admin", "agent", "list", "--enterprise", "3000001"]);
    let cnos: Vec<&str> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["cno"].as_str().unwrap())
        .collect();
    assert_eq!(cnos, ["2000", "2001"]);
    assert_eq!(agents[0]["name"], "Alice");
    assert_eq!(agents[0]["has_password"], true);
    assert_eq!(agents[1]["call_power"], "national");
    assert_eq!(agents[1]["wrapup_secs"], 0);
    let enterprise = &op.json(&["admin", "enterprise", "show", "--id", "3000001"])[0];
    assert_eq!(enterprise["default_caller_id"], "02160001234");
    assert_eq!(enterprise["rate_per_minute"], "0.1200");
    assert_eq!(enterprise["number_limit"], "3/60");
    let numbers = op.json(&["admin", "number", "list", "--enterprise", "3000001"]);
    assert_eq!(numbers.as_array().unwrap().len(), 2);

    // The plain listing an operator reads.
    let listing = op.ok(&["admin", "agent", "list", "--enterprise", "3000001"]);
    assert!(
        listing.contains("cno=2000") && listing.contains("name=Bob"),
        "{listing}"
    );

    // No secret is printed by any listing.
    let all = op.snapshot().to_string();
    for secret in [
        "admin-secret",
        "trunk-secret",
        "ext801-secret",
        "81dc9bdb52d04dc20036dbd8313ed055",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into {all}");
    }
}

#[test]
fn provisioning_changes_and_prunes() {
    let op = Operator::new();
    op.provision_example();
    let example = std::fs::read_to_string(repo_file("examples/provision.toml")).unwrap();
    let edited = example
        .replace("name = \"Bob\"", "name = \"Robert\"")
        .replace("password = \"1234\"", "password = \"4321\"")
        .replace(
            "[[enterprise.agent]]\ncno = \"2001\"",
            "[[enterprise.agent]]\ncno = \"2002\"\nname = \"Carol\"\n\n[[enterprise.agent]]\ncno = \"2001\"",
        );
    let path = op.write("edited.toml", &edited);
    let out = op.ok(&["provision", &path]);
    assert!(out.contains("update agent 3000001/2000 (password)"), "{out}");
    assert!(out.contains("update agent 3000001/2001 (settings)"), "{out}");
    assert!(out.contains("create agent 3000001/2002"), "{out}");

    // Without --prune an omitted agent stays; with it, it goes.
    let without_bob = edited.replace(
        "[[enterprise.agent]]\ncno = \"2001\"\nname = \"Robert\"\npassword = \"5678\"\ncall_power = \"national\"\n",
        "",
    );
    assert!(!without_bob.contains("Robert"));
    let path = op.write("without_bob.toml", &without_bob);
    assert!(!op.ok(&["provision", &path]).contains("2001"));
    assert_eq!(
        op.json(&["admin", "agent", "list", "--enterprise", "3000001"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let dry = op.ok(&["provision", "--prune", "--dry-run", &path]);
    assert!(
        dry.contains("delete agent 3000001/2001") && dry.contains("dry run"),
        "{dry}"
    );
    assert_eq!(
        op.json(&["admin", "agent", "list", "--enterprise", "3000001"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let pruned = op.ok(&["provision", "--prune", &path]);
    assert!(pruned.contains("delete agent 3000001/2001"), "{pruned}");
    assert_eq!(
        op.json(&["admin", "agent", "list", "--enterprise", "3000001"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_bad_provisioning_file_changes_nothing() {
    let op = Operator::new();
    op.provision_example();
    op.ok(&["admin", "enterprise", "create", "--id", "3000002", "--name", "Rival"]);
    op.ok(&[
        "admin",
        "trunk",
        "set",
        "--name",
        "rival-trunk",
        "--address",
        "127.0.0.1:5090",
        "--enterprise",
        "3000002",
    ]);
    op.ok(&[
        "admin",
        "number",
        "add",
        "--enterprise",
        "3000002",
        "--number",
        "01087128906",
        "--trunk",
        "rival-trunk",
    ]);
    let before = op.snapshot();
    let example = std::fs::read_to_string(repo_file("examples/provision.toml")).unwrap();
    // Each bad file also carries a harmless change, which must not be applied either.
    let renamed = example.replace("name = \"Acme Trading\"", "name = \"Acme Renamed\"");

    let duplicate_cno = renamed.replace("cno = \"2001\"", "cno = \"2000\"");
    let err = op.fails(&["provision", &op.write("dup.toml", &duplicate_cno)]);
    assert!(
        err.contains("duplicate cno 2000") && err.contains("agent[1].cno"),
        "{err}"
    );

    let unknown_key = renamed.replace("wrapup_secs = 10 ", "wrap_up = 10 ");
    let err = op.fails(&["provision", &op.write("unknown.toml", &unknown_key)]);
    assert!(err.contains("unknown field `wrap_up`"), "{err}");
    assert!(err.contains(":28:"), "names the line: {err}");

    let bad_number = renamed.replace("number = \"02160001235\"", "number = \"0216000123x\"");
    let err = op.fails(&["provision", &op.write("badnum.toml", &bad_number)]);
    assert!(err.contains("number[1].number") && err.contains("0216000123x"), "{err}");

    let stolen = renamed.replace("number = \"02160001235\"", "number = \"01087128906\"");
    let err = op.fails(&["provision", &op.write("stolen.toml", &stolen)]);
    assert!(
        err.contains("01087128906") && err.contains("belongs to another enterprise"),
        "{err}"
    );

    let foreign_default = renamed.replace(
        "default_caller_id = \"02160001234\"",
        "default_caller_id = \"01087128906\"",
    );
    let err = op.fails(&["provision", &op.write("default.toml", &foreign_default)]);
    assert!(
        err.contains("default_caller_id 01087128906 is not one of the enterprise's numbers"),
        "{err}"
    );

    let bad_trunk = renamed.replace(
        "trunk = \"carrier-a\"                #",
        "trunk = \"rival-trunk\"              #",
    );
    assert_ne!(bad_trunk, renamed);
    let err = op.fails(&["provision", &op.write("trunk.toml", &bad_trunk)]);
    assert!(
        err.contains("trunk rival-trunk is not available to enterprise 3000001"),
        "{err}"
    );

    assert_eq!(op.snapshot(), before, "a refused file must leave the store unchanged");
}

#[test]
fn admin_commands_name_the_bad_argument() {
    let op = Operator::new();
    op.ok(&["admin", "enterprise", "create", "--id", "3000001", "--name", "Acme"]);
    let err = op.fails(&[
        "admin",
        "agent",
        "create",
        "--enterprise",
        "3000001",
        "--cno",
        "20",
        "--name",
        "A",
    ]);
    assert!(err.contains("--cno") && err.contains("4-6 digits"), "{err}");
    let err = op.fails(&["admin", "enterprise", "create", "--id", "300", "--name", "A"]);
    assert!(err.contains("--id"), "{err}");
    let err = op.fails(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "1.23456",
    ]);
    assert!(err.contains("--amount"), "{err}");
    let err = op.fails(&["admin", "trunk", "set", "--name", "t", "--address", "nohost"]);
    assert!(err.contains("--address"), "{err}");
    let err = op.fails(&[
        "admin",
        "agent",
        "create",
        "--enterprise",
        "3000009",
        "--cno",
        "2000",
        "--name",
        "A",
    ]);
    assert!(err.contains("enterprise 3000009 not found"), "{err}");
    let err = op.fails(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--time-zone",
        "Moon/Base",
    ]);
    assert!(err.contains("time_zone"), "{err}");
    op.ok(&[
        "admin",
        "agent",
        "create",
        "--enterprise",
        "3000001",
        "--cno",
        "2000",
        "--name",
        "A",
    ]);
    let err = op.fails(&[
        "admin",
        "agent",
        "create",
        "--enterprise",
        "3000001",
        "--cno",
        "2000",
        "--name",
        "B",
    ]);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn admin_lifecycle_with_json_output() {
    let op = Operator::new();
    op.ok(&[
        "admin",
        "enterprise",
        "create",
        "--id",
        "3000001",
        "--name",
        "Acme",
        "--rate-per-minute",
        "0.1",
    ]);
    let top_up = op.json(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "50",
    ]);
    assert_eq!(top_up["balance"], "50.0000");
    let top_up = op.json(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "-0.25",
    ]);
    assert_eq!(top_up["balance"], "49.7500");
    op.ok(&["admin", "enterprise", "disable", "--id", "3000001"]);
    assert_eq!(
        op.json(&["admin", "enterprise", "show", "--id", "3000001"])[0]["status"],
        "disabled"
    );
    op.ok(&[
        "admin",
        "agent",
        "create",
        "--enterprise",
        "3000001",
        "--cno",
        "2000",
        "--name",
        "A",
        "--password",
        "pw",
    ]);
    op.ok(&["admin", "agent", "disable", "--enterprise", "3000001", "--cno", "2000"]);
    assert_eq!(
        op.json(&["admin", "agent", "list", "--enterprise", "3000001"])[0]["active"],
        false
    );
    op.ok(&[
        "admin",
        "account",
        "set",
        "--enterprise",
        "3000001",
        "--user",
        "boss",
        "--password",
        "pw",
    ]);
    assert_eq!(
        op.json(&["admin", "account", "list", "--enterprise", "3000001"])[0]["user"],
        "boss"
    );
    op.ok(&[
        "admin",
        "extension",
        "set",
        "--enterprise",
        "3000001",
        "--number",
        "801",
        "--password",
        "x",
    ]);
    op.ok(&[
        "admin",
        "blacklist",
        "add",
        "--enterprise",
        "3000001",
        "--pattern",
        "0105*",
    ]);
    op.ok(&[
        "admin",
        "push-target",
        "set",
        "--enterprise",
        "3000001",
        "--name",
        "hang",
        "--type",
        "hangup",
        "--url",
        "http://127.0.0.1:9/x?model=onhookpush",
        "--map",
        "uid=cdr_main_unique_id",
    ]);
    let targets = op.json(&["admin", "push-target", "list", "--enterprise", "3000001"]);
    assert_eq!(targets[0]["legacy_type"], 2);
    assert_eq!(targets[0]["map"][0], "uid=cdr_main_unique_id");
    op.ok(&[
        "admin",
        "push-target",
        "remove",
        "--enterprise",
        "3000001",
        "--name",
        "hang",
    ]);
    op.ok(&[
        "admin",
        "blacklist",
        "remove",
        "--enterprise",
        "3000001",
        "--pattern",
        "0105*",
    ]);
    op.ok(&[
        "admin",
        "extension",
        "remove",
        "--enterprise",
        "3000001",
        "--number",
        "801",
    ]);
    assert_eq!(
        op.json(&["admin", "push-target", "list", "--enterprise", "3000001"]),
        serde_json::json!([])
    );
}

// ---- the legacy interface, end to end ----

use dialbridge_store::md5_hex;

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
    let op = Operator::new();
    let carrier_port = dialbridge_testkit::free_port();
    let path = op.write("legacy.toml", &legacy_setup(carrier_port));
    op.ok(&["provision", &path]);
    op.ok(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "100",
    ]);
    let server = serve(&op);
    LegacyWorld {
        op,
        server,
        carrier_port,
    }
}

#[test]
fn preview_outcall_refusals_carry_their_res_codes() {
    let w = legacy_world();
    let a = &w.server.http;
    let md5 = md5_hex("1234");
    let res = |path: &str| json_get(a, path)["res"].as_str().unwrap().to_owned();
    // 2: missing or malformed parameters.
    assert_eq!(
        res("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&customerNumber=13800138000"),
        "2"
    );
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=300&cno=2000&pwd={md5}&customerNumber=1"
        )),
        "2"
    );
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={md5}&customerNumber=13800138000&sync=2"
        )),
        "2"
    );
    // 8 before 3: a nonexistent cno, then a wrong password for an existing one.
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=3000001&cno=2999&pwd={md5}&customerNumber=13800138000"
        )),
        "8"
    );
    assert_eq!(
        res("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd=0123&customerNumber=13800138000"),
        "3"
    );
    // Another enterprise's credentials never reach this agent.
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=3000002&cno=2000&pwd={md5}&customerNumber=13800138000"
        )),
        "8"
    );
    // 4: disabled agent.
    let bob = md5_hex("5678");
    assert_eq!(
        res(&format!(
            "/interface/PreviewOutcall?enterpriseId=3000001&cno=2001&pwd={bob}&customerNumber=13800138000"
        )),
        "4"
    );
    // 7, 11, 14 in that order, before the agent's state (12).
    assert_eq!(outcall(a, "customerNumber=12345678901234")["res"], "7");
    assert_eq!(outcall(a, "customerNumber=801")["res"], "7");
    assert_eq!(outcall(a, "customerNumber=13900000000")["res"], "11");
    assert_eq!(
        outcall(a, "customerNumber=13800138000&clidLeftNumber=01087128906")["res"],
        "14"
    );
    // 12: not logged in. Upper-case MD5 and extra parameters are fine.
    let upper = md5.to_ascii_uppercase();
    let r = json_get(a, &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={upper}&customerNumber=138-0013-8000&hotline=&sync="));
    assert_eq!(r, serde_json::json!({"res": "12"}), "no uniqueId with a refusal");
    // The same request as multipart/form-data.
    let multipart = {
        use std::io::{Read, Write};
        let fields = [
            ("enterpriseId", "3000001"),
            ("cno", "2000"),
            ("pwd", md5.as_str()),
            ("customerNumber", "13800138000"),
        ];
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str("--XyZ--\r\n");
        let mut stream = std::net::TcpStream::connect(a.as_str()).unwrap();
        write!(stream, "POST /interface/PreviewOutcall HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(multipart, r#"{"res":"12"}"#);
    // 9: online on an extension that is not registered.
    let online = json_get(
        a,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
            admin_auth()
        ),
    );
    assert_eq!(online, serde_json::json!({"code": "0", "msg": "ok"}));
    assert_eq!(outcall(a, "customerNumber=13800138000")["res"], "9");
    let again = json_get(
        a,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
            admin_auth()
        ),
    );
    assert_eq!(again["code"], "12");
    // 41: the enterprise disabled (operators' changes apply at once).
    w.op.ok(&["admin", "enterprise", "disable", "--id", "3000001"]);
    assert_eq!(outcall(a, "customerNumber=13800138000")["res"], "41");
    // Every refusal is recorded for the operator.
    let attempts = w.op.json(&["admin", "attempts", "list", "--enterprise", "3000001"]);
    assert_eq!(attempts[0]["res"], "41");
    assert!(attempts
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["res"] == "11" && r["reason"].as_str().unwrap().contains("13900000000")));
    // JSONP, and a callback that is not a function name is ignored.
    let (_, body) = http_get(a, &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={md5}&customerNumber=13800138000&callback=cb_1"));
    assert_eq!(body, r#"cb_1({"res":"41"})"#);
    let (_, body) = http_get(a, &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2000&pwd={md5}&customerNumber=13800138000&callback=alert(1)"));
    assert_eq!(body, r#"{"res":"41"}"#);
}

#[test]
fn a_synchronous_preview_outcall_end_to_end() {
    let w = legacy_world();
    let a = &w.server.http;
    let sip: std::net::SocketAddr = w.server.sip.parse().unwrap();
    let phone_port = dialbridge_testkit::free_port();
    let mut phone = dialbridge_testkit::SippBuilder::new("phone_uas.xml", None)
        .args(["-p".to_owned(), phone_port.to_string(), "-m".to_owned(), "1".to_owned()])
        .media_port(dialbridge_testkit::free_port())
        .rtp_stream()
        .set("expect_from_user", "13800138000")
        .spawn();
    let mut carrier = dialbridge_testkit::SippBuilder::new("phone_uas.xml", None)
        .args([
            "-p".to_owned(),
            w.carrier_port.to_string(),
            "-m".to_owned(),
            "1".to_owned(),
        ])
        .media_port(dialbridge_testkit::free_port())
        .rtp_stream()
        .set("talk_ms", "1200")
        .set("expect_from_user", "02160001234")
        .set("expect_pai_user", "02160001234")
        .set("expect_ruri_user", "13800138000")
        .spawn();
    let mut register = dialbridge_testkit::SippBuilder::new("register.xml", Some(sip))
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
    let online = json_get(
        a,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
            admin_auth()
        ),
    );
    assert_eq!(online["code"], "0");

    let reply = outcall(
        a,
        "customerNumber=13800138000&sync=1&userField=%7B%22crm%22%3A%22a%3D1%26b%3D2%22%7D",
    );
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    assert!(
        unique_id.starts_with("dialbridge1-") && unique_id.contains('.'),
        "{unique_id}"
    );
    // While the call runs: the agent's lock answers 13 (past setup).
    assert_eq!(outcall(a, "customerNumber=13800138000")["res"], "13");

    assert!(carrier.finish(Duration::from_secs(20)), "{}", carrier.logs());
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
    let list = |extra: &str| {
        json_get(
            a,
            &format!(
                "/interfaceAction/cdrObInterface!listCdrOb.action?{}&{extra}",
                admin_auth()
            ),
        )
    };
    let mut row = serde_json::Value::Null;
    for _ in 0..100 {
        let page = list(&format!("uniqueId={unique_id}"));
        if let Some(r) = page["msg"]["data"].get(0) {
            row = r.clone();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(row["status"], "双方接听", "{row}");
    assert_eq!(row["userField"], r#"{"crm":"a=1&b=2"}"#);
    assert_eq!(row["numberTrunk"], "02160001234");
    assert_eq!(row["clientNumber"], "801");
    assert_eq!(row["customerNumber"], "13800138000");
    assert_eq!(row["callType"], "预览外呼");
    assert_eq!(row["endReason"], "是", "the customer hung up");
    assert_eq!(row["cost"], "0.120");
    assert_eq!(row["sipCause"], "200");
    assert!(row["bridgeDuration"].as_str().unwrap().starts_with("00:00:0"), "{row}");
    let balance = &w.op.json(&["admin", "balance", "show", "--enterprise", "3000001"])[0]["balance"];
    assert_eq!(balance, "99.8800", "charged once");
    let detail = json_get(
        a,
        &format!(
            "/interfaceAction/cdrObInterface!listCdrObDetail.action?{}&id={unique_id}",
            admin_auth()
        ),
    );
    let legs = detail["msg"]["data"].as_array().unwrap();
    assert_eq!(legs.len(), 2, "{detail}");
    assert_eq!(legs[0]["status"], "座席接听");
    assert_eq!(legs[1]["status"], "双方接听");
    assert_eq!(legs[1]["cost"], "0.120");
    assert_eq!(legs[1]["sipCause"], "200");
    // Another enterprise's admin sees none of it.
    let rival = md5_hex(&format!("{}1", md5_hex("rival-secret")));
    let theirs = json_get(a, &format!("/interfaceAction/cdrObInterface!listCdrOb.action?enterpriseId=3000002&userName=admin&seed=1&pwd={rival}&uniqueId={unique_id}"));
    assert_eq!(theirs["msg"]["data"], serde_json::json!([]));
    // After the call the agent is in wrap-up for its wrap-up seconds (2), then online.
    let agent_now = || w.op.json(&["admin", "agent", "list", "--enterprise", "3000001"])[0].clone();
    let alice = agent_now();
    assert_eq!(
        (alice["login_status"].as_str(), alice["pause_description"].as_str()),
        (Some("pause"), Some("pauseWrapup")),
        "{alice}"
    );
    assert!(alice["wrapup_left_secs"].as_u64().unwrap() <= 2);
    std::thread::sleep(Duration::from_millis(2_100));
    let alice = agent_now();
    assert_eq!(
        (alice["login_status"].as_str(), alice["pause_description"].as_str()),
        (Some("online"), None),
        "{alice}"
    );
    // The lock is released: the agent may call again (async: accepted at once).
    let next = outcall(a, "customerNumber=13800138000");
    assert_eq!(next["res"], "0", "{next}");
    let hang_up = |extra: &str| json_get(a, &format!("/interface/HangUp?{}&{extra}", admin_auth()));
    assert_eq!(
        hang_up("uniqueId=dialbridge1-1.999"),
        serde_json::json!({"result": "error", "msg": "no call"})
    );
    assert_eq!(hang_up("cno=2000"), serde_json::json!({"result": "success"}));
    let next_id = next["uniqueId"].as_str().unwrap().to_owned();
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        if let Some(r) = list(&format!("uniqueId={next_id}"))["msg"]["data"].get(0) {
            status = r["status"].clone();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status, "座席未接听", "hung up while the agent's phone rang");
    assert_eq!(hang_up("cno=2000")["result"], "error");
}

#[test]
fn fifty_racing_requests_place_exactly_one_call() {
    let w = legacy_world();
    let a = w.server.http.clone();
    let sip: std::net::SocketAddr = w.server.sip.parse().unwrap();
    let phone_port = dialbridge_testkit::free_port();
    let mut phone = dialbridge_testkit::SippBuilder::new("phone_uas.xml", None)
        .args(["-p".to_owned(), phone_port.to_string(), "-m".to_owned(), "1".to_owned()])
        .media_port(dialbridge_testkit::free_port())
        .rtp_stream()
        .set("mode", "noanswer")
        .spawn();
    let mut register = dialbridge_testkit::SippBuilder::new("register.xml", Some(sip))
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
    assert_eq!(
        json_get(
            &a,
            &format!(
                "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
                admin_auth()
            )
        )["code"],
        "0"
    );
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let racers: Vec<_> = (0..50)
        .map(|_| {
            let a = a.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                outcall(&a, "customerNumber=13800138000")
            })
        })
        .collect();
    let replies: Vec<serde_json::Value> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let winners: Vec<_> = replies.iter().filter(|r| r["res"] == "0").collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    assert!(
        replies.iter().any(|r| r["res"] == "33"),
        "the losers of a race during setup get 33"
    );
    // 10: the enterprise's concurrency cap is reached by the call in setup.
    w.op.ok(&[
        "admin",
        "agent",
        "create",
        "--enterprise",
        "3000001",
        "--cno",
        "2002",
        "--name",
        "Dave",
        "--password",
        "9999",
    ]);
    let online = json_get(
        &a,
        &format!(
            "/interface/client/ClientOnline?{}&cno=2002&bindTel=13900139001&type=1",
            admin_auth()
        ),
    );
    assert_eq!(online["code"], "0");
    w.op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--concurrency-cap",
        "1",
    ]);
    let dave = md5_hex("9999");
    let r = json_get(
        &a,
        &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2002&pwd={dave}&customerNumber=13800138000"),
    );
    assert_eq!(r, serde_json::json!({"res": "10"}));
    for r in &replies {
        assert!(["0", "33", "13"].contains(&r["res"].as_str().unwrap()), "{r}");
        if r["res"] != "0" {
            assert!(r.get("uniqueId").is_none());
        }
    }
    let hang_up = json_get(&a, &format!("/interface/HangUp?{}&cno=2000", admin_auth()));
    assert_eq!(hang_up["result"], "success");
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
    assert_eq!(
        phone.logs().matches("INVITE call_id").count(),
        1,
        "exactly one INVITE reached the phone"
    );
}

#[test]
fn a_call_survives_a_crash_of_the_server_as_one_cdr_charged_once() {
    let w = legacy_world();
    let a = w.server.http.clone();
    let sip: std::net::SocketAddr = w.server.sip.parse().unwrap();
    let phone_port = dialbridge_testkit::free_port();
    let _phone = dialbridge_testkit::SippBuilder::new("phone_uas.xml", None)
        .args(["-p".to_owned(), phone_port.to_string(), "-m".to_owned(), "1".to_owned()])
        .media_port(dialbridge_testkit::free_port())
        .rtp_stream()
        .spawn();
    let _carrier = dialbridge_testkit::SippBuilder::new("phone_uas.xml", None)
        .args([
            "-p".to_owned(),
            w.carrier_port.to_string(),
            "-m".to_owned(),
            "1".to_owned(),
        ])
        .media_port(dialbridge_testkit::free_port())
        .rtp_stream()
        .spawn();
    let mut register = dialbridge_testkit::SippBuilder::new("register.xml", Some(sip))
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
    assert_eq!(
        json_get(
            &a,
            &format!(
                "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
                admin_auth()
            )
        )["code"],
        "0"
    );
    let reply = outcall(&a, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    let unique_id = reply["uniqueId"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1_000));

    // SIGKILL in the middle of the bridged call.
    let LegacyWorld { op, mut server, .. } = w;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    for restart in 0..2 {
        let server = serve(&op);
        let page = json_get(
            &server.http,
            &format!(
                "/interfaceAction/cdrObInterface!listCdrOb.action?{}&uniqueId={unique_id}",
                admin_auth()
            ),
        );
        let rows = page["msg"]["data"].as_array().unwrap().clone();
        assert_eq!(rows.len(), 1, "restart {restart}: exactly one CDR: {page}");
        assert_eq!(rows[0]["status"], "双方接听", "the phase it reached");
        assert_eq!(rows[0]["sipCause"], "0");
        let balance = &op.json(&["admin", "balance", "show", "--enterprise", "3000001"])[0]["balance"];
        assert_eq!(balance, "99.8800", "restart {restart}: charged once");
        // The lock is released: the agent can call again (its phone is still registered? the
        // registrar restarted with no bindings, so the answer is 9, not 13 or 33).
        assert_eq!(outcall(&server.http, "customerNumber=13800138000")["res"], "9");
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

/// Waits for the CDR of `unique_id` and returns its row.
fn cdr_row(address: &str, unique_id: &str) -> serde_json::Value {
    for _ in 0..200 {
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

#[test]
fn unanswered_and_failed_calls_and_the_remaining_res_codes() {
    let op = Operator::new();
    let carrier_port = dialbridge_testkit::free_port();
    let setup = legacy_setup(carrier_port)
        .replace("agent_ring_timeout_secs = 5", "agent_ring_timeout_secs = 1")
        .replace("customer_ring_timeout_secs = 5", "customer_ring_timeout_secs = 1");
    op.ok(&["provision", &op.write("legacy.toml", &setup)]);
    op.ok(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "100",
    ]);
    let server = serve(&op);
    let a = server.http.clone();
    let sip: std::net::SocketAddr = server.sip.parse().unwrap();
    let phone_port = dialbridge_testkit::free_port();
    let uas = |port: u16, settings: &[(&str, &str)]| {
        let mut b = dialbridge_testkit::SippBuilder::new("phone_uas.xml", None)
            .args(["-p".to_owned(), port.to_string(), "-m".to_owned(), "1".to_owned()])
            .media_port(dialbridge_testkit::free_port())
            .rtp_stream();
        for (k, v) in settings {
            b = b.set(k, v);
        }
        b.spawn()
    };
    let mut register = dialbridge_testkit::SippBuilder::new("register.xml", Some(sip))
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
    // ClientOnline by form POST, with the status parameters a CRM sends.
    let online = http_post_form(
        &a,
        "/interface/client/ClientOnline",
        &format!("{}&cno=2000&bindTel=801&type=2&status=1", admin_auth()),
    );
    assert_eq!(online["code"], "0");

    // The agent does not answer: sync res 1, CDR 24, the customer is never called.
    let mut phone = uas(phone_port, &[("mode", "noanswer")]);
    let pwd = md5_hex("1234");
    let form = format!("enterpriseId=3000001&cno=2000&pwd={pwd}&customerNumber=13800138000&sync=1");
    let reply = http_post_form(&a, "/interface/PreviewOutcall", &form);
    assert_eq!(reply, serde_json::json!({"res": "1"}));
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
    let last = json_get(
        &a,
        &format!(
            "/interfaceAction/cdrObInterface!listCdrOb.action?{}&limit=1",
            admin_auth()
        ),
    );
    let row = &last["msg"]["data"][0];
    assert_eq!(row["status"], "座席未接听", "{row}");
    assert_eq!(row["sipCause"], "487");

    // The customer is busy: CDR 22; the customer does not answer: CDR 21.
    for (mode, status, cause) in [("busy", "客户呼叫失败", "486"), ("noanswer", "客户未接听", "487")] {
        let mut phone = uas(phone_port, &[]);
        let mut carrier = uas(carrier_port, &[("mode", mode)]);
        let reply = outcall(&a, "customerNumber=13800138000&sync=1");
        assert_eq!(reply["res"], "0", "{reply}");
        let row = cdr_row(&a, reply["uniqueId"].as_str().unwrap());
        assert_eq!(
            (row["status"].as_str().unwrap(), row["sipCause"].as_str().unwrap()),
            (status, cause),
            "{row}"
        );
        assert_eq!(row["cost"], "0.000");
        assert!(
            phone.finish(Duration::from_secs(20)) && phone.logs().contains("BYE received"),
            "{}",
            phone.logs()
        );
        assert!(carrier.finish(Duration::from_secs(20)), "{}", carrier.logs());
    }

    // 40: the number was called 3 times within the window.
    op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--number-limit",
        "3/60",
    ]);
    assert_eq!(outcall(&a, "customerNumber=13800138000")["res"], "40");
    op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--number-limit",
        "none",
    ]);
    // 5: no balance left.
    op.ok(&[
        "admin",
        "balance",
        "top-up",
        "--enterprise",
        "3000001",
        "--amount",
        "-100",
    ]);
    assert_eq!(outcall(&a, "customerNumber=13800138000")["res"], "5");
    // 6 before 5: outbound calling switched off.
    op.ok(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--outbound-enabled",
        "false",
    ]);
    assert_eq!(outcall(&a, "customerNumber=13800138000")["res"], "6");
}

/// Random (but reproducible) query strings and form bodies at every legacy endpoint: each reply
/// is HTTP 200 with a JSON body (or JSONP around JSON), and the server stays up.
#[test]
fn malformed_input_never_breaks_a_legacy_endpoint() {
    let w = legacy_world();
    let a = &w.server.http;
    let endpoints = [
        "/interface/PreviewOutcall",
        "/interface/client/ClientOnline",
        "/interface/client/ClientOffline",
        "/interface/client/ChangeStatus",
        "/interface/client/ChangeBindTel",
        "/interface/HangUp",
        "/interfaceAction/cdrObInterface!listCdrOb.action",
        "/interfaceAction/cdrObInterface!listCdrObDetail.action",
        "/interfaceAction/clientInterface!save.action",
        "/interfaceAction/clientInterface!view.action",
        "/interfaceAction/clientInterface!list.action",
        "/interfaceAction/clientInterface!delete.action",
        "/interfaceAction/clientInterface!validateCno.action",
        "/interfaceAction/clientInterface!queryBindTel.action",
    ];
    let names = [
        "enterpriseId",
        "cno",
        "pwd",
        "customerNumber",
        "sync",
        "userField",
        "clidLeftNumber",
        "callback",
        "userName",
        "seed",
        "bindTel",
        "type",
        "status",
        "uniqueId",
        "startTime",
        "endTime",
        "start",
        "limit",
        "title",
        "value",
        "description",
        "unBind",
        "hotline",
        "",
    ];
    let values = [
        "",
        "3000001",
        "2000",
        "0",
        "1",
        "-1",
        "99999999999999999999",
        "13800138000",
        "801",
        "%00",
        "%FF%FE",
        "2026-13-45 25:61:61",
        "' OR 1=1 --",
        "<script>",
        "中文",
        "\u{1F600}",
        "a=b&c",
        "%",
        "%%%",
        "+86 138",
    ];
    let mut seed: u64 = 0x5eed_d1a1_b41d_6e00;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..100 {
        for endpoint in endpoints {
            let mut pairs = Vec::new();
            for _ in 0..(next() % 8) {
                let name = names[(next() % names.len() as u64) as usize];
                let mut value = values[(next() % values.len() as u64) as usize].to_owned();
                if next() % 5 == 0 {
                    value = "x".repeat((next() % 3000) as usize);
                }
                let raw = next() % 3 == 0;
                let encoded = if raw {
                    value.replace(' ', "+")
                } else {
                    serde_urlencoded::to_string([("v", &value)]).unwrap()[2..].to_owned()
                };
                pairs.push(format!("{name}={encoded}"));
            }
            let query = pairs.join("&");
            let body = if round % 2 == 0 {
                // A query string as an HTTP client sends it: characters a request line cannot
                // carry are escaped; malformed escapes ("%", "%FF") stay.
                let line: String = query
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(c) {
                            c.to_string()
                        } else {
                            c.to_string().bytes().map(|b| format!("%{b:02X}")).collect()
                        }
                    })
                    .collect();
                let (status, body) = http_get(a, &format!("{endpoint}?{line}"));
                assert_eq!(status, 200, "{endpoint}?{query}");
                body
            } else {
                let (status, body) = http_post_raw(a, endpoint, &query);
                assert_eq!(status, 200, "POST {endpoint}: {query}");
                body
            };
            let json = match body.find('(') {
                Some(open) if !body.starts_with('{') => body[open + 1..body.len() - 1].to_owned(),
                _ => body.clone(),
            };
            let parsed: serde_json::Value =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{endpoint}?{query}: {e}: {body}"));
            assert!(parsed.is_object(), "{endpoint}?{query}: {body}");
            assert!(parsed.get("uniqueId").is_none(), "no call is placed by garbage: {body}");
        }
    }
    let (status, _) = http_get(a, "/healthz");
    assert_eq!(status, 200);
}

#[test]
fn agent_management_through_the_legacy_interface() {
    let w = legacy_world();
    let a = &w.server.http;
    let admin = format!(
        "enterpriseId=3000001&userName=admin&password={}",
        md5_hex("admin-secret")
    );
    let call = |method: &str, extra: &str| {
        json_get(
            a,
            &format!("/interfaceAction/clientInterface!{method}.action?{admin}&{extra}"),
        )
    };
    let saved = call(
        "save",
        "cno=2005&name=Carol&pwd=abcd&areaCode=010&power=1&clientType=2&skillIds=7,8",
    );
    assert_eq!(saved["result"], "success", "{saved}");
    let id = saved["id"].as_i64().unwrap();
    let view = call("view", "cno=2005");
    assert_eq!(
        view["msg"],
        serde_json::json!({"id": id, "cno": "2005", "name": "Carol", "areaCode": "010", "power": "1", "clientType": "2", "active": "1"})
    );
    assert_eq!(call("save", &format!("id={id}&name=Caroline"))["id"], id);
    assert_eq!(call("view", &format!("id={id}"))["msg"]["name"], "Caroline");
    let listed = call("list", "");
    assert!(listed["msg"].as_array().unwrap().iter().any(|r| r["cno"] == "2005"));
    // The agent's password works for PreviewOutcall (offline: 12, not 3).
    let carol = md5_hex("abcd");
    let r = json_get(
        a,
        &format!("/interface/PreviewOutcall?enterpriseId=3000001&cno=2005&pwd={carol}&customerNumber=13800138000"),
    );
    assert_eq!(r["res"], "12");
    // validateCno answers a boolean without credentials.
    let validate = |cno: &str| {
        json_get(
            a,
            &format!("/interfaceAction/clientInterface!validateCno.action?enterpriseId=3000001&cno={cno}"),
        )
    };
    assert_eq!(validate("2005"), serde_json::json!({"result": true}));
    assert_eq!(validate("2999"), serde_json::json!({"result": false}));
    // The seed form of the admin password family, and a wrong password.
    let seeded = md5_hex(&format!("{}77", md5_hex("admin-secret")));
    let v = json_get(a, &format!("/interfaceAction/clientInterface!view.action?enterpriseId=3000001&userName=admin&seed=77&password={seeded}&cno=2005"));
    assert_eq!(v["result"], "success");
    let bad = json_get(
        a,
        &format!(
            "/interfaceAction/clientInterface!view.action?enterpriseId=3000001&userName=admin&password={}&cno=2005",
            md5_hex("nope")
        ),
    );
    assert_eq!(
        bad,
        serde_json::json!({"result": "error", "msg": "authentication failed"})
    );
    // Another enterprise's admin can neither see nor delete this agent.
    let rival = format!(
        "enterpriseId=3000002&userName=admin&password={}",
        md5_hex("rival-secret")
    );
    let theirs = json_get(
        a,
        &format!("/interfaceAction/clientInterface!view.action?{rival}&id={id}"),
    );
    assert_eq!(theirs["result"], "error");
    let theirs = json_get(
        a,
        &format!("/interfaceAction/clientInterface!delete.action?{rival}&id={id}"),
    );
    assert_eq!(theirs["result"], "error");
    // The phones an agent used.
    assert_eq!(
        json_get(
            a,
            &format!(
                "/interface/client/ClientOnline?{}&cno=2000&bindTel=801&type=2",
                admin_auth()
            )
        )["code"],
        "0"
    );
    let phones = json_get(
        a,
        &format!(
            "/interfaceAction/clientInterface!queryBindTel.action?{}&cno=2000",
            admin_auth()
        ),
    );
    assert_eq!(phones["result"], 0);
    assert_eq!(phones["data"][0]["tel"], "801");
    assert_eq!(phones["data"][0]["telType"], 2);
    assert_eq!(phones["data"][0]["isBind"], 1);
    // Another enterprise cannot log this agent in, out, or hang it up.
    let rival_seed = format!(
        "enterpriseId=3000002&userName=admin&seed=1&pwd={}",
        md5_hex(&format!("{}1", md5_hex("rival-secret")))
    );
    assert_eq!(
        json_get(a, &format!("/interface/client/ClientOffline?{rival_seed}&cno=2000"))["code"],
        "8"
    );
    assert_eq!(
        json_get(a, &format!("/interface/HangUp?{rival_seed}&cno=2000"))["result"],
        "error"
    );
    // Delete, and the cno no longer validates.
    assert_eq!(call("delete", &format!("id={id}"))["result"], "success");
    assert_eq!(validate("2005"), serde_json::json!({"result": false}));
}

//! The operator's tools and the server process: `serve` with no configuration, bad
//! configuration, provisioning, admin commands, a phone registering as a provisioned extension.

use super::*;

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
    for counter in [
        "dialbridge_sip_unsolicited_answered_total 0",
        "dialbridge_sip_unsolicited_dropped_total 0",
        "dialbridge_sip_registrations_refused_total{reason=\"wrong_password\"} 0",
        "dialbridge_sip_registrations_refused_total{reason=\"unknown_user\"} 0",
    ] {
        assert!(metrics.contains(counter), "{counter}: {metrics}");
    }
    let data = op.dir.path().join("dialbridge-data");
    assert!(data.join("dialbridge.db").exists());
    assert!(data.join("secret.key").exists());
    // The database is migrated: the admin tool reads it without migrating anything new.
    assert_eq!(op.json(&["admin", "enterprise", "list"]), serde_json::json!([]));

    stop_gracefully(&mut server);
}

/// `serve` with its log lines sent to the returned channel as they come.
fn spawn_serve(op: &Operator, env: &[(&str, &str)]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = serve_command(op, &[], env).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Waits (up to 20 s) for a log line containing `needle`.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => {}
            Err(e) => panic!("serve never logged {needle:?}: {e}"),
        }
    }
}

fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

/// Waits (up to `limit`) for `child` to exit: its status and the lines it logged meanwhile.
fn wait_for_exit(
    child: &mut Child,
    lines: &std::sync::mpsc::Receiver<String>,
    limit: Duration,
) -> (std::process::ExitStatus, Vec<String>) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest = std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(5)).ok()).collect();
    (status, rest)
}

/// A SIGTERM that arrives while the server is still starting (here as soon as its database is
/// ready, before SIP and HTTP listen) is kept: the server finishes starting and stops cleanly,
/// rather than being killed by the signal's default action.
#[test]
fn a_sigterm_during_start_up_stops_the_server_cleanly() {
    let op = Operator::new();
    let (mut child, lines) = spawn_serve(&op, &[]);
    wait_for_line(&lines, "database ready");
    sigterm(&child);
    let (status, rest) = wait_for_exit(&mut child, &lines, Duration::from_secs(15));
    assert!(status.success(), "serve exited with {status}: {rest:#?}");
    assert!(rest.iter().any(|line| line.contains("SIGTERM")), "{rest:#?}");
}

/// A start-up that hangs (its PostgreSQL accepts connections and never answers): a first
/// SIGTERM is noted and waits for the start to finish, a second stops the server at once, with
/// an error that says so.
#[test]
fn a_second_sigterm_stops_a_hanging_start_up_at_once() {
    let op = Operator::new();
    let silent_database = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgres://dialbridge@{}/dialbridge",
        silent_database.local_addr().unwrap()
    );
    let (mut child, lines) = spawn_serve(&op, &[("DIALBRIDGE_DATABASE_URL", url.as_str())]);
    wait_for_line(&lines, "open-file limit");
    sigterm(&child);
    wait_for_line(&lines, "SIGTERM during start-up: stopping once started");
    sigterm(&child);
    let (status, rest) = wait_for_exit(&mut child, &lines, Duration::from_secs(8));
    assert!(!status.success(), "{rest:#?}");
    assert!(
        rest.iter().any(|line| line.contains("SIGTERM again during start-up")),
        "{rest:#?}"
    );
    drop(silent_database);
}

#[test]
fn a_phone_registers_as_a_provisioned_extension() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
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
        "update enterprise 3000001 (caller ids)",
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
    assert_eq!(enterprise["agent_caller_id"], "02160001235");
    assert_eq!(enterprise["rate_per_minute"], "0.1200");
    assert_eq!(enterprise["number_limit"], "3/60");
    assert_eq!(enterprise["allowed_countries"], "HK,SG");
    assert_eq!(enterprise["allowed_classes"], "");
    assert_eq!(enterprise["destination_rates"], "65=0.2500,852=0.3000");
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
    let line = 1 + unknown_key.lines().position(|l| l.starts_with("wrap_up = 10")).unwrap();
    assert!(err.contains(&format!(":{line}:")), "names the line {line}: {err}");

    let bad_country = renamed.replace(
        "allowed_countries = [\"HK\", \"SG\"]",
        "allowed_countries = [\"HK\", \"XX\"]",
    );
    let err = op.fails(&["provision", &op.write("country.toml", &bad_country)]);
    assert!(
        err.contains("enterprise[0] (3000001).allowed_countries") && err.contains("\"XX\""),
        "{err}"
    );

    let bad_rate = renamed.replace("\"65\" = \"0.25\"", "\"6x\" = \"0.25\"");
    let err = op.fails(&["provision", &op.write("rate.toml", &bad_rate)]);
    assert!(err.contains("destination_rates") && err.contains("\"6x\""), "{err}");

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
    let foreign_agent_caller_id =
        renamed.replace("agent_caller_id = \"02160001235\"", "agent_caller_id = \"01087128906\"");
    assert_ne!(foreign_agent_caller_id, renamed);
    let err = op.fails(&["provision", &op.write("agent.toml", &foreign_agent_caller_id)]);
    assert!(
        err.contains("agent_caller_id 01087128906 is not one of the enterprise's numbers"),
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
    // A value the store's rules refuse is named as bad input, not as a broken stored row.
    let err = op.fails(&[
        "admin",
        "enterprise",
        "update",
        "--id",
        "3000001",
        "--wrapup-secs",
        "99999",
    ]);
    assert!(err.contains("wrapup_secs") && !err.contains("stored row"), "{err}");
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

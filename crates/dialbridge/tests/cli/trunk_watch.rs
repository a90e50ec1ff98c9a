//! Trunks watched between calls: keepalive OPTIONS that take a dead trunk out of the failover
//! order, and a registration with the carrier that is refreshed and survives its restart.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

/// A carrier that is not there: it records the method of every request it gets and answers
/// nothing, until `answer` is set; from then on it answers OPTIONS with 200.
struct SilentCarrier {
    port: u16,
    methods: Arc<Mutex<Vec<String>>>,
    answer: Arc<AtomicBool>,
}

impl SilentCarrier {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let methods = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(AtomicBool::new(false));
        let (seen, answering) = (methods.clone(), answer.clone());
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Bounded: the test is over long before this.
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
                let method = text.split_whitespace().next().unwrap_or("").to_owned();
                seen.lock().unwrap().push(method.clone());
                if method == "OPTIONS" && answering.load(Ordering::SeqCst) {
                    let copied: String = text
                        .lines()
                        .filter(|l| {
                            let name = l.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
                            ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str())
                        })
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    let reply = format!("SIP/2.0 200 OK\r\n{copied}Content-Length: 0\r\n\r\n");
                    let _ = socket.send_to(reply.as_bytes(), from);
                }
            }
        });
        Self { port, methods, answer }
    }

    fn methods(&self) -> Vec<String> {
        self.methods.lock().unwrap().clone()
    }
}

#[test]
fn a_trunk_that_does_not_answer_options_is_skipped_without_being_tried_until_it_answers() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let dead = SilentCarrier::start();
    // The caller id's own trunk is the dead one, watched every second; the SIPp carrier is
    // the enterprise's other trunk.
    let w = legacy_world_with(|op, carrier_port| {
        trunk_set(
            op,
            "carrier",
            dead.port,
            &["--enterprise", "3000001", "--keepalive-secs", "1"],
        );
        trunk_set(
            op,
            "backup",
            carrier_port,
            &["--enterprise", "3000001", "--priority", "5"],
        );
    });
    assert_eq!(w.op.json(&["admin", "trunk", "list"])[1]["keepalive_secs"], 1);
    assert!(
        wait_for_metric(
            &w.server,
            "dialbridge_trunk_up{trunk=\"carrier\"} 0",
            Duration::from_secs(15)
        ),
        "the dead trunk is never marked down: it got {:?}",
        dead.methods()
    );
    let (mut phone, mut carrier) = phone_and_carrier(&w, &[], &[("talk_ms", "300")]);
    let reply = outcall(&w.server.http, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    assert!(carrier.finish(Duration::from_secs(20)), "{}", carrier.logs());
    assert!(phone.finish(Duration::from_secs(20)), "{}", phone.logs());
    let row = cdr_row(&w.server.http, reply["uniqueId"].as_str().unwrap());
    assert_eq!(row["status"], "双方接听", "{row}");
    let methods = dead.methods();
    assert!(methods.iter().any(|m| m == "OPTIONS"), "{methods:?}");
    assert!(
        methods.iter().all(|m| m == "OPTIONS"),
        "the dead trunk was tried: {methods:?}"
    );

    // Once it answers, it is up again.
    dead.answer.store(true, Ordering::SeqCst);
    assert!(
        wait_for_metric(
            &w.server,
            "dialbridge_trunk_up{trunk=\"carrier\"} 1",
            Duration::from_secs(15)
        ),
        "the trunk never came back"
    );
}

#[test]
fn a_registering_trunk_registers_refreshes_registers_again_after_the_carrier_restarts_and_withdraws_at_shutdown() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let registrar_port = dialbridge_testkit::free_port();
    let registrar = || {
        dialbridge_testkit::SippBuilder::new("trunk_registrar.xml", None)
            .args(["-p".to_owned(), registrar_port.to_string()])
            .spawn()
    };
    let register_trunk = |op: &Operator, seconds: &str| {
        let account = ["--username", "acct", "--password", "trunk-secret"];
        trunk_set(
            op,
            "registered",
            registrar_port,
            &[&account[..], &["--register-secs", seconds]].concat(),
        );
    };
    let first = registrar();
    let w = legacy_world_with(|op, _| {
        register_trunk(op, "60");
    });
    let registrations = |sipp: &dialbridge_testkit::Sipp| sipp.logs().matches("registered Expires: 60").count();
    // Granted 2 s, refreshed every second: the first REGISTER and at least two refreshes.
    let until = Instant::now() + Duration::from_secs(15);
    while registrations(&first) < 3 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(registrations(&first) >= 3, "{}", first.logs());
    assert!(!first.logs().contains("bad credentials"), "{}", first.logs());
    assert!(first.logs().contains("contact=sip:acct@127.0.0.1:"), "{}", first.logs());
    assert!(wait_for_metric(
        &w.server,
        "dialbridge_trunk_registered{trunk=\"registered\"} 1",
        Duration::from_secs(5)
    ));

    // The carrier restarts (and forgets us): the next refresh, or its retransmission, reaches
    // the new process and registers again.
    drop(first);
    std::thread::sleep(Duration::from_millis(1500));
    let second = registrar();
    assert!(
        second.wait_for_log("registered Expires: 60", Duration::from_secs(30)),
        "{}",
        second.logs()
    );
    assert!(wait_for_metric(
        &w.server,
        "dialbridge_trunk_registered{trunk=\"registered\"} 1",
        Duration::from_secs(5)
    ));

    // Reconfigured (a longer interval asked), the trunk registers again when the server next
    // reads its trunks (every 10 s), and the binding is never withdrawn in between.
    register_trunk(&w.op, "120");
    assert!(
        second.wait_for_log("registered Expires: 120", Duration::from_secs(25)),
        "{}",
        second.logs()
    );
    assert!(!second.logs().contains("registered Expires: 0"), "{}", second.logs());

    // A server that stops withdraws its registration (Expires: 0) before it exits.
    let mut w = w;
    let pid = w.server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(
        second.wait_for_log("registered Expires: 0", Duration::from_secs(10)),
        "{}",
        second.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while w.server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

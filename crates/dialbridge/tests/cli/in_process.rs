//! A whole server run in-process through the library (`dialbridge::serve::Server`), as tests
//! and the bench can: it places a call end to end and stops when its shutdown future resolves.

use std::collections::HashMap;

use super::*;

#[test]
fn a_server_started_in_process_places_a_call_and_stops_cleanly_when_told() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let (op, carrier_port) = legacy_store();
    let data_dir = op.dir.path().join("dialbridge-data");
    let environment = HashMap::from([
        ("DIALBRIDGE_DATA_DIR", data_dir.display().to_string()),
        ("DIALBRIDGE_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
        ("DIALBRIDGE_SIP_LISTEN", "127.0.0.1:0".to_owned()),
        ("DIALBRIDGE_PASSWORD_HASH_MEMORY_KIB", "64".to_owned()),
        ("DIALBRIDGE_PASSWORD_HASH_ITERATIONS", "1".to_owned()),
    ]);
    let config = dialbridge::config::Config::load_from(None, |name| environment.get(name).cloned()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(dialbridge::serve::Server::start(config)).unwrap();
    let (http, sip) = (
        server.http_address().unwrap().to_string(),
        server.sip_address().to_string(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = runtime.spawn(server.run(async {
        let _ = stopped.await;
    }));

    let (mut phone, mut carrier) = phone_and_carrier_at(&http, &sip, carrier_port, &[], &[("talk_ms", "500")]);
    let reply = outcall(&http, "customerNumber=13800138000&sync=1");
    assert_eq!(reply["res"], "0", "{reply}");
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
    assert!(phone.finish(Duration::from_secs(30)), "{}", phone.logs());
    let row = cdr_row(&http, reply["uniqueId"].as_str().unwrap());
    assert_eq!(
        (&row["status"], &row["cost"]),
        (&serde_json::json!("双方接听"), &serde_json::json!("0.120"))
    );

    stop.send(()).unwrap();
    let stopped = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(30), running).await });
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the server did not stop cleanly: {stopped:?}"
    );
    assert!(
        std::net::TcpStream::connect(&http).is_err(),
        "HTTP still answers after the shutdown"
    );
}

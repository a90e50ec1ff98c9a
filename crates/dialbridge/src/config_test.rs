use super::*;

fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dialbridge.toml");
    if let Some(text) = file {
        std::fs::write(&path, text).unwrap();
    }
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::load_from(file.map(|_| path.as_path()), |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

#[test]
fn defaults_need_no_file_and_no_environment() {
    let c = load(None, &[]).unwrap();
    assert_eq!(c.http_listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.sip_listen.to_string(), "127.0.0.1:5060");
    assert_eq!(c.sip_transports, vec![Transport::Udp, Transport::Tcp]);
    assert_eq!(c.public_address.to_string(), "127.0.0.1");
    assert_eq!(c.rtp_inactivity, Duration::from_secs(60));
    assert_eq!(c.rtp_ports, 20000..=29999);
    assert_eq!(c.node_name.as_str(), "dialbridge1");
    assert_eq!(c.database_url, StoreOptions::sqlite_in(Path::new("dialbridge-data")));
    assert!(c.secret_key.is_none());
    assert_eq!(c.http_public_origin, None, "the Host header names the server");
    let behind_a_proxy = load(
        None,
        &[("DIALBRIDGE_HTTP_PUBLIC_ORIGIN", "https://DB.example.com:443/")],
    )
    .unwrap();
    assert_eq!(
        behind_a_proxy.http_public_origin.as_deref(),
        Some("https://db.example.com")
    );
}

#[test]
fn file_then_environment() {
    let file = "node_name = \"node7\"\n[http]\nlisten = \"127.0.0.1:9000\"\n[sip]\ntransports = [\"udp\"]\n[rtp]\nports = \"30000-30099\"\n";
    let c = load(Some(file), &[("DIALBRIDGE_HTTP_LISTEN", "127.0.0.2:9001")]).unwrap();
    assert_eq!(c.node_name.as_str(), "node7");
    assert_eq!(c.http_listen.to_string(), "127.0.0.2:9001", "the environment wins");
    assert_eq!(c.sip_transports, vec![Transport::Udp]);
    assert_eq!(c.rtp_ports, 30000..=30099);
}

#[test]
fn bad_values_name_their_key() {
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (Some("[http]\nlisten = \"nowhere\"\n"), &[], "key http.listen"),
        (Some("[rtp]\nports = \"3-2\"\n"), &[], "key rtp.ports"),
        (Some("node_name = \"a-b\"\n"), &[], "key node_name"),
        (Some("[sip]\ntransports = [\"sctp\"]\n"), &[], "key sip.transports"),
        (Some("[http]\nlisten_on = \"x\"\n"), &[], "unknown key http.listen_on"),
        (Some("[http\n"), &[], "config file"),
        (None, &[("DIALBRIDGE_SIP_LISTEN", "5060")], "DIALBRIDGE_SIP_LISTEN"),
        (None, &[("DIALBRIDGE_RTP_PORTS", "lots")], "DIALBRIDGE_RTP_PORTS"),
        (
            None,
            &[("DIALBRIDGE_PUBLIC_ADDRESS", "sip.example")],
            "DIALBRIDGE_PUBLIC_ADDRESS",
        ),
        (
            None,
            &[("DIALBRIDGE_DATABASE_URL", "mysql://x")],
            "DIALBRIDGE_DATABASE_URL",
        ),
        (None, &[("DIALBRIDGE_SECRET_KEY", "abc")], "DIALBRIDGE_SECRET_KEY"),
        (None, &[("DIALBRIDGE_LOG_LEVEL", "info,[")], "DIALBRIDGE_LOG_LEVEL"),
        (None, &[("DIALBRIDGE_PASSWORD_HASH_ITERATIONS", "0")], "password_hash"),
        (
            Some("[http]\npublic_origin = \"db.example.com\"\n"),
            &[],
            "key http.public_origin",
        ),
        (
            None,
            &[("DIALBRIDGE_HTTP_PUBLIC_ORIGIN", "https://db.example.com/toolbar")],
            "DIALBRIDGE_HTTP_PUBLIC_ORIGIN",
        ),
    ];
    for (file, env, expected) in cases {
        let err = load(*file, env).expect_err(expected).to_string();
        assert!(err.contains(expected), "{err:?} should name {expected:?}");
    }
}

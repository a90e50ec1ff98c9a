use super::*;

#[test]
fn tokens_are_signed_scoped_and_expire() {
    let key = [7u8; 32];
    let agent = Viewer::Agent {
        enterprise: EnterpriseId::new(3000001).unwrap(),
        agent_id: 5,
        cno: "2000".into(),
    };
    let token = issue_token(&key, &agent, "mark", 1_000);
    assert_eq!(check_token(&key, &token, 2_000), Some((agent, "mark".to_owned())));
    assert_eq!(
        check_token(&key, &token, 1_000 + TOKEN_LIFETIME_MS + 1),
        None,
        "expired"
    );
    assert_eq!(check_token(&[8u8; 32], &token, 2_000), None, "another key");
    let forged = token.replace("3000001", "3000002");
    assert_eq!(check_token(&key, &forged, 2_000), None, "another enterprise");
    let forged = token.replace("mark", "mork");
    assert_eq!(check_token(&key, &forged, 2_000), None, "another credential mark");
    let admin = Viewer::Admin {
        enterprise: EnterpriseId::new(3000002).unwrap(),
        user: "ad.min".into(),
    };
    assert_eq!(
        check_token(&key, &issue_token(&key, &admin, "m", 0), 1),
        Some((admin, "m".to_owned()))
    );
    assert_eq!(check_token(&key, "garbage", 1), None);
}

#[test]
fn an_agent_sees_its_own_status_and_calls_only() {
    let me = Viewer::Agent {
        enterprise: EnterpriseId::new(3000001).unwrap(),
        agent_id: 5,
        cno: "2000".into(),
    };
    assert!(concerns(&me, "agent:5", &json!({})));
    assert!(!concerns(&me, "agent:6", &json!({})));
    assert!(concerns(&me, "n-1.1", &json!({"cno": "2000"})));
    assert!(concerns(&me, "n-1.1", &json!({"cdr_bridged_cno": "2000"})));
    assert!(!concerns(&me, "n-1.2", &json!({"cno": "2001"})));
}

#[test]
fn pages_of_the_server_and_of_allowed_origins_may_open_the_stream() {
    let allowed = vec!["https://crm.example.com".to_owned()];
    assert!(
        origin_allowed(None, Some("db.example:8080"), None, &allowed),
        "no browser page"
    );
    assert!(
        origin_allowed(Some("http://db.example:8080"), Some("db.example:8080"), None, &[]),
        "its own page"
    );
    assert!(origin_allowed(
        Some("https://CRM.example.com"),
        Some("db.example:8080"),
        None,
        &allowed
    ));
    assert!(!origin_allowed(
        Some("https://crm.example.com.evil"),
        Some("db.example:8080"),
        None,
        &allowed
    ));
    assert!(
        !origin_allowed(Some("http://crm.example.com"), Some("db.example:8080"), None, &allowed),
        "another scheme"
    );
    assert!(!origin_allowed(Some("null"), Some("db.example:8080"), None, &allowed));
}

#[test]
fn behind_a_proxy_that_rewrites_host_the_public_origin_is_the_servers_own() {
    let public = Some("https://dialbridge.example.com");
    assert!(origin_allowed(
        Some("https://dialbridge.example.com"),
        Some("127.0.0.1:8080"),
        public,
        &[]
    ));
    assert!(
        !origin_allowed(
            Some("https://dialbridge.example.com"),
            Some("127.0.0.1:8080"),
            None,
            &[]
        ),
        "without it the page's origin names another host"
    );
    assert!(!origin_allowed(
        Some("http://dialbridge.example.com"),
        Some("127.0.0.1:8080"),
        public,
        &[]
    ));
}

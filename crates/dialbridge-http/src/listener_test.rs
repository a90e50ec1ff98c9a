use super::*;

fn request(forwarded: &[&str]) -> axum::extract::Request<()> {
    let mut builder = axum::http::Request::builder().uri("/");
    for value in forwarded {
        builder = builder.header("x-forwarded-for", *value);
    }
    builder.body(()).unwrap()
}

#[test]
fn a_trusted_proxy_names_the_client_and_nothing_before_it_is_believed() {
    let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.7/32".parse().unwrap()];
    let client = |values: &[&str]| forwarded_client(&request(values), &proxies).map(|a| a.ip().to_string());
    assert_eq!(client(&["203.0.113.5"]).as_deref(), Some("203.0.113.5"));
    // A client may write anything first; the last address not a proxy of ours is the client.
    assert_eq!(
        client(&["1.1.1.1, 203.0.113.5, 10.1.2.3"]).as_deref(),
        Some("203.0.113.5")
    );
    assert_eq!(
        client(&["1.1.1.1", "203.0.113.5, 192.0.2.7"]).as_deref(),
        Some("203.0.113.5")
    );
    assert_eq!(client(&[]), None);
    assert_eq!(
        client(&["10.0.0.1"]),
        None,
        "only proxies: the connection's own address stands"
    );
    assert_eq!(client(&["not an address"]), None);
    // Garbage the client wrote on the left does not hide the address the proxy added.
    assert_eq!(client(&["x, 203.0.113.5, 10.1.2.3"]).as_deref(), Some("203.0.113.5"));
}

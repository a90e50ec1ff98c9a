use super::*;

/// RFC 7616 §3.9.1: the same request with MD5 and with SHA-256.
fn rfc7616_request(algorithm: &str, response: &str) -> DigestResponse {
    DigestResponse {
        username: "Mufasa".into(),
        realm: "http-auth@example.org".into(),
        nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
        uri: "/dir/index.html".into(),
        response: response.into(),
        algorithm: Some(algorithm.into()),
        qop: Some("auth".into()),
        nc: Some("00000001".into()),
        cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
        opaque: Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into()),
    }
}

#[test]
fn rfc7616_vectors() {
    let md5 = rfc7616_request("MD5", "8ca523f5e9506fed4657c9700eebdbec");
    assert_eq!(
        expected_response(Algorithm::Md5, "Circle of Life", "GET", &md5).as_deref(),
        Some(md5.response.as_str())
    );
    let sha = rfc7616_request(
        "SHA-256",
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    );
    assert_eq!(
        expected_response(Algorithm::Sha256, "Circle of Life", "GET", &sha).as_deref(),
        Some(sha.response.as_str())
    );
}

#[test]
fn parses_the_rfc_header_form() {
    let header = r#"Digest username="Mufasa",
        realm="http-auth@example.org",
        uri="/dir/index.html",
        algorithm=SHA-256,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        nc=00000001,
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        qop=auth,
        response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    let parsed = DigestResponse::parse(header).unwrap();
    assert_eq!(
        parsed,
        rfc7616_request(
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        )
    );
    assert_eq!(DigestResponse::parse("Basic abc"), Err(DigestParseError::NotDigest));
    assert_eq!(
        DigestResponse::parse("Digest username=\"a"),
        Err(DigestParseError::Malformed)
    );
    assert_eq!(
        DigestResponse::parse("Digest username=\"a\""),
        Err(DigestParseError::Missing("realm"))
    );
    assert_eq!(DigestResponse::parse("Digest =x"), Err(DigestParseError::Malformed));
}

fn signed(issuer: &NonceIssuer, algorithm: Algorithm, nonce: &str, nc: &str, password: &str) -> DigestResponse {
    let mut creds = DigestResponse {
        username: "3000001-801".into(),
        realm: "dialbridge".into(),
        nonce: nonce.into(),
        uri: "sip:127.0.0.1".into(),
        response: String::new(),
        algorithm: Some(algorithm.name().into()),
        qop: Some("auth".into()),
        nc: Some(nc.into()),
        cnonce: Some("abc".into()),
        opaque: None,
    };
    let _ = issuer;
    creds.response = expected_response(algorithm, password, "REGISTER", &creds).unwrap();
    creds
}

#[test]
fn nonces_are_signed_and_expire() {
    let issuer = NonceIssuer::new(&[7; 32], Duration::from_secs(300));
    let nonce = issuer.issue(1_000);
    assert_ne!(nonce, issuer.issue(1_000), "every challenge gets its own nonce");
    assert_eq!(issuer.check(&nonce, 1_000), NonceCheck::Valid);
    assert_eq!(issuer.check(&nonce, 1_300), NonceCheck::Valid);
    assert_eq!(issuer.check(&nonce, 1_301), NonceCheck::Expired);
    let other = NonceIssuer::new(&[8; 32], Duration::from_secs(300));
    assert_eq!(other.check(&nonce, 1_000), NonceCheck::Forged, "another key's nonce");
    let mut tampered = nonce.clone().into_bytes();
    tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        issuer.check(std::str::from_utf8(&tampered).unwrap(), 1_000),
        NonceCheck::Forged
    );
    assert_eq!(issuer.check("zz", 1_000), NonceCheck::Forged);
    assert_eq!(
        issuer.check(&issuer.issue(2_000), 1_000),
        NonceCheck::Expired,
        "from the future"
    );
}

#[test]
fn verification_in_every_case() {
    let issuer = NonceIssuer::new(&[7; 32], Duration::from_secs(300));
    let mut counts = NonceCounts::default();
    let nonce = issuer.issue(1_000);
    let check = |counts: &mut NonceCounts, creds: &DigestResponse, now| {
        let both = DigestOffer::parse("MD5,SHA-256").unwrap();
        let expected = Expected {
            realm: "dialbridge",
            offer: both,
            method: "REGISTER",
        };
        verify(&issuer, counts, expected, creds, "secret", now)
    };
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let nonce = issuer.issue(1_000);
        let creds = signed(&issuer, algorithm, &nonce, "00000001", "secret");
        assert_eq!(check(&mut counts, &creds, 1_001), Verdict::Accepted, "{algorithm:?}");
    }
    let good = signed(&issuer, Algorithm::Md5, &nonce, "00000001", "secret");
    assert_eq!(check(&mut counts, &good, 1_001), Verdict::Accepted);
    assert_eq!(
        check(&mut counts, &good, 1_002),
        Verdict::Rejected(RejectReason::Replayed),
        "same nc again"
    );
    let next = signed(&issuer, Algorithm::Md5, &nonce, "00000002", "secret");
    assert_eq!(
        check(&mut counts, &next, 1_003),
        Verdict::Accepted,
        "a higher nc on the same nonce"
    );

    let wrong = signed(&issuer, Algorithm::Md5, &issuer.issue(1_000), "00000001", "guess");
    assert_eq!(
        check(&mut counts, &wrong, 1_001),
        Verdict::Rejected(RejectReason::WrongPassword)
    );

    let stale = signed(&issuer, Algorithm::Md5, &issuer.issue(1_000), "00000001", "secret");
    assert_eq!(check(&mut counts, &stale, 2_000), Verdict::Stale);
    let stale_wrong = signed(&issuer, Algorithm::Md5, &issuer.issue(1_000), "00000001", "guess");
    assert_eq!(
        check(&mut counts, &stale_wrong, 2_000),
        Verdict::Rejected(RejectReason::WrongPassword)
    );

    let forged = signed(&issuer, Algorithm::Md5, "0123456789abcdef", "00000001", "secret");
    assert_eq!(
        check(&mut counts, &forged, 1_001),
        Verdict::Rejected(RejectReason::ForgedNonce)
    );

    let mut no_qop = signed(&issuer, Algorithm::Md5, &issuer.issue(1_000), "00000001", "secret");
    no_qop.qop = None;
    no_qop.response = expected_response(Algorithm::Md5, "secret", "REGISTER", &no_qop).unwrap();
    assert_eq!(
        check(&mut counts, &no_qop, 1_001),
        Verdict::Rejected(RejectReason::QopRequired)
    );

    let mut other_realm = signed(&issuer, Algorithm::Md5, &issuer.issue(1_000), "00000001", "secret");
    other_realm.realm = "elsewhere".into();
    assert_eq!(
        check(&mut counts, &other_realm, 1_001),
        Verdict::Rejected(RejectReason::WrongRealm)
    );

    let mut sha512 = signed(&issuer, Algorithm::Md5, &issuer.issue(1_000), "00000001", "secret");
    sha512.algorithm = Some("SHA-512-256".into());
    assert_eq!(
        check(&mut counts, &sha512, 1_001),
        Verdict::Rejected(RejectReason::UnsupportedAlgorithm)
    );

    let mut upper = signed(&issuer, Algorithm::Md5, &issuer.issue(1_000), "00000001", "secret");
    upper.response = upper.response.to_ascii_uppercase();
    assert_eq!(
        check(&mut counts, &upper, 1_001),
        Verdict::Accepted,
        "hex case does not matter"
    );

    counts.sweep(10_000, issuer.lifetime());
    assert!(counts.is_empty());
}

#[test]
fn challenges_come_in_the_offered_order() {
    let both = DigestOffer::parse("MD5,SHA-256").unwrap();
    let c = challenges("dialbridge", "n1", false, both);
    assert_eq!(
        c[0],
        "Digest realm=\"dialbridge\", nonce=\"n1\", algorithm=MD5, qop=\"auth\""
    );
    assert!(c[1].contains("algorithm=SHA-256"));
    assert!(challenges("dialbridge", "n1", true, both)
        .iter()
        .all(|v| v.ends_with("stale=true")));
}

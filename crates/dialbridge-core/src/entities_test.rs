use super::*;

#[test]
fn enterprise_defaults_are_valid() {
    let s = EnterpriseSettings::new("Acme");
    assert_eq!(s.validate(), Ok(()));
    let most = EnterpriseSettings {
        rate_per_minute: MAX_RATE_PER_MINUTE,
        credit_limit: MAX_AMOUNT,
        ..s.clone()
    };
    assert_eq!(most.validate(), Ok(()));
    assert_eq!(s.time_zone, "Asia/Shanghai");
    assert_eq!(s.agent_ring_timeout_secs, 30);
    assert!(!s.sync_default);
}

#[test]
fn enterprise_rules_name_the_field() {
    let base = EnterpriseSettings::new("Acme");
    let cases: Vec<(EnterpriseSettings, &str)> = vec![
        (
            EnterpriseSettings {
                name: " ".into(),
                ..base.clone()
            },
            "name",
        ),
        (
            EnterpriseSettings {
                time_zone: "Mars/Olympus".into(),
                ..base.clone()
            },
            "time_zone",
        ),
        (
            EnterpriseSettings {
                rate_per_minute: Money::from_ten_thousandths(-1),
                ..base.clone()
            },
            "rate_per_minute",
        ),
        (
            EnterpriseSettings {
                credit_limit: Money::from_ten_thousandths(-1),
                ..base.clone()
            },
            "credit_limit",
        ),
        (
            EnterpriseSettings {
                rate_per_minute: MAX_RATE_PER_MINUTE.saturating_add(Money::from_ten_thousandths(1)),
                ..base.clone()
            },
            "rate_per_minute",
        ),
        (
            EnterpriseSettings {
                credit_limit: MAX_AMOUNT.saturating_add(Money::from_ten_thousandths(1)),
                ..base.clone()
            },
            "credit_limit",
        ),
        (
            EnterpriseSettings {
                max_call_minutes: Some(0),
                ..base.clone()
            },
            "max_call_minutes",
        ),
        (
            EnterpriseSettings {
                max_call_minutes: Some(1441),
                ..base.clone()
            },
            "max_call_minutes",
        ),
        (
            EnterpriseSettings {
                default_caller_id: Some("801".into()),
                ..base.clone()
            },
            "default_caller_id",
        ),
        (
            EnterpriseSettings {
                agent_caller_id: Some("12".into()),
                ..base.clone()
            },
            "agent_caller_id",
        ),
        (
            EnterpriseSettings {
                agent_ring_timeout_secs: 61,
                ..base.clone()
            },
            "agent_ring_timeout_secs",
        ),
        (
            EnterpriseSettings {
                agent_ring_timeout_secs: 0,
                ..base.clone()
            },
            "agent_ring_timeout_secs",
        ),
        (
            EnterpriseSettings {
                customer_ring_timeout_secs: 0,
                ..base.clone()
            },
            "customer_ring_timeout_secs",
        ),
        (
            EnterpriseSettings {
                wrapup_secs: 3601,
                ..base.clone()
            },
            "wrapup_secs",
        ),
        (
            EnterpriseSettings {
                number_limit: Some(NumberLimit {
                    count: 0,
                    window_minutes: 5,
                }),
                ..base.clone()
            },
            "number_limit.count",
        ),
        (
            EnterpriseSettings {
                concurrency_cap: Some(0),
                ..base.clone()
            },
            "concurrency_cap",
        ),
    ];
    for (settings, field) in cases {
        assert_eq!(settings.validate().unwrap_err().field, field);
    }
}

#[test]
fn phone_types_take_their_kind_of_number() {
    assert!(PhoneType::Extension.validate_number("801").is_ok());
    assert!(PhoneType::Extension.validate_number("13800138000").is_err());
    assert!(PhoneType::Telephone.validate_number("13800138000").is_ok());
    assert!(PhoneType::RemotePhone.validate_number("01087128906").is_ok());
    assert!(PhoneType::Telephone.validate_number("801").is_err());
    for code in [1, 2, 3, 4] {
        assert_eq!(
            PhoneType::from_legacy_code(code).map(|t| i64::from(t.legacy_code())),
            Some(code)
        );
    }
    assert_eq!(PhoneType::from_legacy_code(5), None);
    // A softphone's number is a cno (whose, the service checks).
    assert_eq!(PhoneType::Softphone.normalise_number("2000"), Ok("2000".to_owned()));
    assert!(PhoneType::Softphone.normalise_number("801").is_err());
    assert!(PhoneType::Softphone.normalise_number("13800138000").is_err());
    assert_eq!(PhoneType::Extension.normalise_number("801"), Ok("801".to_owned()));
}

#[test]
fn blacklist_exact_and_prefix() {
    let exact = BlacklistPattern::parse("+86 138-0013-8000").unwrap();
    assert_eq!(exact.as_str(), "13800138000");
    let prefix = BlacklistPattern::parse("0105*").unwrap();
    let n = |s| PhoneNumber::parse(s).unwrap();
    assert!(exact.matches(&n("13800138000")));
    assert!(!exact.matches(&n("13800138001")));
    assert!(prefix.matches(&n("01055551234")));
    assert!(!prefix.matches(&n("01087128906")));
    for bad in ["*", "abc*", "12", "1380013800x"] {
        assert!(BlacklistPattern::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn sip_addresses() {
    let a = SipAddress::parse("address", "127.0.0.1:5080").unwrap();
    assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 5080));
    assert_eq!(
        SipAddress::parse("address", "[::1]:5060").unwrap().to_string(),
        "[::1]:5060"
    );
    assert_eq!(
        SipAddress::parse("address", "sip.carrier.example:5060").unwrap().port,
        5060
    );
    for bad in [
        "127.0.0.1",
        "127.0.0.1:0",
        "host:99999",
        ":5060",
        "a b:5060",
        "[::1:5060",
    ] {
        assert_eq!(
            SipAddress::parse("address", bad).unwrap_err().field,
            "address",
            "{bad:?}"
        );
    }
}

#[test]
fn caller_ids_are_landlines_or_mobiles() {
    assert_eq!(validate_caller_id("021-6000-1234"), Ok("02160001234".to_owned()));
    assert!(validate_caller_id("801").is_err());
    assert!(validate_caller_id("12").is_err());
}

#[test]
fn push_targets() {
    let good = PushTarget {
        name: "hangup".into(),
        push_type: PushType::Hangup,
        url: "http://crm.example/push?model=onhookpush".into(),
        method: PushMethod::Post,
        timeout_ms: DEFAULT_PUSH_TIMEOUT_MS,
        retries: DEFAULT_PUSH_RETRIES,
        format: PushFormat::Legacy,
        charset: PushCharset::Utf8,
        name_mapping: vec![("uid".into(), "cdr_main_unique_id".into())],
    };
    assert_eq!(good.validate(), Ok(()));
    for (bad, field) in [
        (
            PushTarget {
                url: "ftp://x".into(),
                ..good.clone()
            },
            "url",
        ),
        (
            PushTarget {
                url: "http://".into(),
                ..good.clone()
            },
            "url",
        ),
        (
            PushTarget {
                url: "http://a b/".into(),
                ..good.clone()
            },
            "url",
        ),
        (
            PushTarget {
                timeout_ms: 10,
                ..good.clone()
            },
            "timeout_ms",
        ),
        (
            PushTarget {
                name_mapping: vec![("".into(), "x".into())],
                ..good.clone()
            },
            "name_mapping",
        ),
        (
            PushTarget {
                format: PushFormat::Json,
                charset: PushCharset::Gbk,
                ..good.clone()
            },
            "charset",
        ),
    ] {
        assert_eq!(bad.validate().unwrap_err().field, field);
    }
    let gbk_form = PushTarget {
        charset: PushCharset::Gbk,
        ..good.clone()
    };
    assert_eq!(gbk_form.validate(), Ok(()));
    for t in PushType::ALL {
        assert_eq!(PushType::from_legacy_code(i64::from(t.legacy_code())), Some(*t));
    }
}

#[test]
fn text_enums_round_trip() {
    for s in EnterpriseStatus::ALL {
        assert_eq!(s.as_str().parse::<EnterpriseStatus>(), Ok(*s));
    }
    assert_eq!("paused".parse::<EnterpriseStatus>().unwrap_err().field, "status");
    assert_eq!("sctp".parse::<Transport>().unwrap_err().field, "transport");
}

#[test]
fn area_codes() {
    assert!(validate_area_code("010").is_ok());
    assert!(validate_area_code("0571").is_ok());
    for bad in ["10", "01", "05710", "0a1"] {
        assert!(validate_area_code(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_trunk_that_registers_needs_an_account_and_its_intervals_are_bounded() {
    let trunk = Trunk {
        name: "carrier".into(),
        address: SipAddress::parse("address", "127.0.0.1:5080").unwrap(),
        transport: Transport::Udp,
        auth_username: None,
        outbound_proxy: None,
        max_channels: 30,
        enterprises: vec![],
        customer_number_format: NumberFormat::default(),
        caller_id_format: NumberFormat::default(),
        priority: 0,
        keepalive_secs: 30,
        register_secs: 0,
        sources: vec![],
    };
    assert_eq!(trunk.validate(), Ok(()));
    let field = |t: Trunk| t.validate().unwrap_err().field;
    assert_eq!(
        field(Trunk {
            register_secs: 600,
            ..trunk.clone()
        }),
        "register_secs"
    );
    let registering = Trunk {
        register_secs: 600,
        auth_username: Some("acct".into()),
        ..trunk.clone()
    };
    assert_eq!(registering.validate(), Ok(()));
    assert_eq!(
        field(Trunk {
            keepalive_secs: 3_601,
            ..trunk.clone()
        }),
        "keepalive_secs"
    );
    assert_eq!(
        field(Trunk {
            register_secs: 86_401,
            ..registering
        }),
        "register_secs"
    );
    assert_eq!(
        field(Trunk {
            priority: 1_000_001,
            ..trunk.clone()
        }),
        "priority"
    );
    let source = parse_trunk_source("203.0.113.5").unwrap();
    assert_eq!(
        field(Trunk {
            sources: vec![source; MAX_TRUNK_SOURCES + 1],
            ..trunk
        }),
        "sources"
    );
}

#[test]
fn trunk_sources_are_addresses_or_ranges() {
    let text = |s: &str| parse_trunk_source(s).map(|n| n.to_string());
    assert_eq!(text("203.0.113.5").unwrap(), "203.0.113.5/32");
    assert_eq!(
        text(" 203.0.113.77/24 ").unwrap(),
        "203.0.113.0/24",
        "host bits dropped"
    );
    assert_eq!(text("2001:db8::1").unwrap(), "2001:db8::1/128");
    assert_eq!(text("2001:db8::/32").unwrap(), "2001:db8::/32");
    for bad in ["", "carrier.example", "203.0.113.5/33", "203.0.113/24", "1.2.3.4:5060"] {
        assert_eq!(parse_trunk_source(bad).unwrap_err().field, "sources", "{bad}");
    }
}

#[test]
fn origins_are_a_scheme_and_a_host_only() {
    for good in ["https://crm.example.com", "http://127.0.0.1:8000", "http://[::1]:9000"] {
        assert_eq!(validate_origin(good), Ok(()), "{good}");
    }
    for bad in [
        "crm.example.com",
        "https://crm.example.com/",
        "https://",
        "ftp://x",
        "https://a b",
        "*",
    ] {
        assert_eq!(validate_origin(bad).unwrap_err().field, "allowed_origins", "{bad}");
    }
}

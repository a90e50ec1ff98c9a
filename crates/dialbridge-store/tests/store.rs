//! The store against real databases: SQLite in a temporary directory always, and PostgreSQL
//! when `DIALBRIDGE_TEST_POSTGRES_URL` names one (scripts/test starts a throwaway server, so the
//! migrations' portability is checked on every run; elsewhere that test is skipped, under CI it
//! fails without one).

use dialbridge_core::call::{EndReason, Side};
use dialbridge_core::*;
use dialbridge_store::*;

fn cheap_hashing() -> PasswordHashCost {
    PasswordHashCost {
        memory_kib: 64,
        iterations: 1,
    }
}

fn key() -> SecretKey {
    SecretKey::from_hex(&"ab".repeat(32)).unwrap()
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let options = StoreOptions {
        database_url: StoreOptions::sqlite_in(dir.path()),
        password_hash_cost: cheap_hashing(),
    };
    Store::open(&options, &key()).await.unwrap()
}

/// The versions of every migration the store ships, in order.
fn every_migration() -> Vec<i64> {
    let shipped = std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
        .unwrap()
        .count() as i64;
    (1..=shipped).collect()
}

/// A call of agent 2000 (`agent_id`) from extension 801 to 13800138000, requested at 1 s.
fn cdr_start(unique_id: &str, enterprise_id: EnterpriseId, agent_id: i64) -> CdrStart {
    CdrStart {
        unique_id: unique_id.into(),
        enterprise_id,
        agent_id,
        cno: "2000".into(),
        agent_phone: "801".into(),
        agent_phone_type: PhoneType::Extension,
        customer_number: "13800138000".into(),
        customer_area_code: None,
        customer_number_type: Some(2),
        caller_id: "02160001234".into(),
        trunk_name: "carrier".into(),
        user_field: String::new(),
        node: "node".into(),
        requested_at: 1_000,
    }
}

fn ent(id: i64) -> EnterpriseId {
    EnterpriseId::new(id).unwrap()
}

/// One pass over every operation of the configuration model; the same on both databases.
async fn exercise_configuration(store: &Store) {
    store.ping().await.unwrap();
    let acme = ent(3000001);
    let other = ent(3000002);
    let mut tx = store.begin().await.unwrap();
    tx.insert_enterprise(acme, &EnterpriseSettings::new("Acme"))
        .await
        .unwrap();
    tx.insert_enterprise(other, &EnterpriseSettings::new("Other"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A failed statement ends the transaction on PostgreSQL, so each refusal gets its own.
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.insert_enterprise(acme, &EnterpriseSettings::new("Again")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    let mut settings = EnterpriseSettings::new("Acme Ltd");
    settings.rate_per_minute = "0.12".parse().unwrap();
    settings.number_limit = Some(NumberLimit {
        count: 3,
        window_minutes: 60,
    });
    settings.concurrency_cap = Some(10);
    settings.sync_default = true;
    settings.destinations = DestinationPolicy::parse("GB,US", "premium,satellite").unwrap();
    settings.destination_rates = DestinationRates::parse("44=0.30,4420=0.25,1900=2.50").unwrap();
    tx.update_enterprise(acme, &settings).await.unwrap();
    assert_eq!(
        tx.top_up(acme, "100.5".parse().unwrap(), Some("invoice 1"))
            .await
            .unwrap(),
        "100.5".parse().unwrap()
    );
    assert_eq!(
        tx.top_up(acme, "-0.5".parse().unwrap(), None).await.unwrap(),
        "100".parse().unwrap()
    );
    let stored = tx.enterprise(acme).await.unwrap().unwrap();
    assert_eq!(stored.settings, settings);
    assert_eq!(stored.balance, "100".parse().unwrap());

    tx.set_admin(acme, "admin", "s3cret").await.unwrap();
    assert_eq!(
        tx.admin_password_md5(acme, "admin").await.unwrap(),
        Some(md5_hex("s3cret"))
    );
    assert_eq!(tx.admin_password_md5(other, "admin").await.unwrap(), None);

    let cno = Cno::parse("2000").unwrap();
    tx.insert_agent(acme, &cno, &AgentSettings::new("Alice"), Some("1234"))
        .await
        .unwrap();
    tx.insert_agent(other, &cno, &AgentSettings::new("Other's 2000"), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.insert_agent(acme, &cno, &AgentSettings::new("Dup"), None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.agent_password_matches(acme, &cno, &md5_hex("1234")).await.unwrap());
    assert!(!tx.agent_password_matches(acme, &cno, &md5_hex("wrong")).await.unwrap());
    assert!(
        !tx.agent_password_matches(other, &cno, &md5_hex("1234")).await.unwrap(),
        "no password, no login"
    );
    let alice = tx.agent(acme, &cno).await.unwrap().unwrap();
    assert!(alice.has_password);
    assert_eq!(alice.settings.name, "Alice");

    let ext = ExtensionNumber::parse("801").unwrap();
    tx.set_extension(acme, &ext, "sip-pass").await.unwrap();
    tx.set_extension(other, &ext, "other-pass").await.unwrap();
    assert_eq!(
        tx.extension_password(acme, &ext).await.unwrap().as_deref(),
        Some("sip-pass")
    );
    assert_eq!(
        tx.extension_password(other, &ext).await.unwrap().as_deref(),
        Some("other-pass")
    );

    let trunk = Trunk {
        name: "carrier".into(),
        address: SipAddress::parse("address", "127.0.0.1:5080").unwrap(),
        transport: Transport::Udp,
        auth_username: Some("acct".into()),
        outbound_proxy: None,
        max_channels: 30,
        enterprises: vec![acme],
        customer_number_format: dialbridge_core::NumberFormat::parse("plus").unwrap(),
        caller_id_format: dialbridge_core::NumberFormat::parse("mobile-prefix=0,add=17909").unwrap(),
        priority: 5,
        keepalive_secs: 30,
        register_secs: 600,
        sources: vec![
            dialbridge_core::parse_trunk_source("203.0.113.0/24").unwrap(),
            dialbridge_core::parse_trunk_source("198.51.100.7").unwrap(),
        ],
    };
    tx.upsert_trunk(&trunk, Some("trunk-pass")).await.unwrap();
    tx.upsert_trunk(&trunk, None).await.unwrap();
    assert_eq!(
        tx.trunk_password("carrier").await.unwrap().as_deref(),
        Some("trunk-pass"),
        "None keeps the password"
    );
    assert_eq!(tx.trunk("carrier").await.unwrap().unwrap().trunk, trunk);

    let clid = CallerId {
        number: "02160001234".into(),
        enterprise_id: acme,
        trunk: "carrier".into(),
    };
    tx.upsert_caller_id(&clid).await.unwrap();
    let stolen = CallerId {
        enterprise_id: other,
        ..clid.clone()
    };
    assert!(matches!(
        tx.upsert_caller_id(&stolen).await,
        Err(StoreError::Conflict(_))
    ));
    let not_granted = CallerId {
        number: "02160009999".into(),
        enterprise_id: other,
        trunk: "carrier".into(),
    };
    assert!(matches!(
        tx.upsert_caller_id(&not_granted).await,
        Err(StoreError::Conflict(_))
    ));
    let pattern = BlacklistPattern::parse("0105*").unwrap();
    tx.insert_blacklist(acme, &pattern).await.unwrap();

    let target = PushTarget {
        name: "hangup".into(),
        push_type: PushType::Hangup,
        url: "http://127.0.0.1:9/push?model=onhookpush".into(),
        method: PushMethod::Post,
        timeout_ms: 3000,
        retries: 1,
        format: PushFormat::Legacy,
        charset: PushCharset::Utf8,
        name_mapping: vec![("uid".into(), "cdr_main_unique_id".into())],
    };
    tx.upsert_push_target(acme, &target).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert!(
        matches!(tx.delete_trunk("carrier").await, Err(StoreError::Conflict(_))),
        "trunk in use"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.insert_blacklist(acme, &pattern).await,
        Err(StoreError::AlreadyExists(_))
    ));
    drop(tx);

    let mut read = store.begin_read().await.unwrap();
    assert_eq!(read.caller_ids(Some(acme)).await.unwrap(), vec![clid]);
    assert_eq!(read.caller_ids(Some(other)).await.unwrap(), vec![]);
    assert_eq!(read.blacklist(acme).await.unwrap(), vec![pattern]);
    assert_eq!(read.push_targets(acme).await.unwrap(), vec![target]);
    assert_eq!(read.push_targets(other).await.unwrap(), vec![]);
    assert_eq!(read.agents(acme).await.unwrap().len(), 1);
    assert_eq!(read.extensions(acme).await.unwrap(), vec![ext]);
    drop(read);

    // A transaction that is not committed changes nothing.
    let mut tx = store.begin().await.unwrap();
    tx.delete_agent(acme, &cno).await.unwrap();
    drop(tx);
    assert!(store
        .begin_read()
        .await
        .unwrap()
        .agent(acme, &cno)
        .await
        .unwrap()
        .is_some());

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.next_id("test_seq").await.unwrap(), 1);
    assert_eq!(tx.next_id("test_seq").await.unwrap(), 2);
    tx.commit().await.unwrap();
}

/// Agent state with the outbound lock, bound phones, CDRs, charges, refusals; on both databases.
async fn exercise_calls(store: &Store) {
    use dialbridge_core::agent::{AgentState, Availability};
    let acme = ent(3000001);
    let cno = Cno::parse("2000").unwrap();
    let mut tx = store.begin().await.unwrap();
    let agent_id = tx.agent(acme, &cno).await.unwrap().unwrap().id;
    let stored = tx.agent_state(agent_id).await.unwrap();
    assert_eq!(stored.state, AgentState::offline());
    let online = stored.state.log_in(Availability::Online, 0).unwrap();
    assert!(tx.save_agent_state(agent_id, &online, stored.version).await.unwrap());
    assert!(
        !tx.save_agent_state(agent_id, &online, stored.version).await.unwrap(),
        "a stale version loses"
    );
    let stored = tx.agent_state(agent_id).await.unwrap();
    assert_eq!(stored.state, online);
    let calling = stored.state.start_call("node-1.1", 1).unwrap();
    assert!(tx.save_agent_state(agent_id, &calling, stored.version).await.unwrap());
    assert_eq!(tx.agent_state(agent_id).await.unwrap().state, calling);

    tx.bind_phone(acme, agent_id, PhoneType::Extension, "801")
        .await
        .unwrap();
    assert_eq!(
        tx.bound_phone(agent_id).await.unwrap(),
        Some((PhoneType::Extension, "801".to_owned()))
    );
    tx.bind_phone(acme, agent_id, PhoneType::Telephone, "13900139000")
        .await
        .unwrap();
    tx.bind_phone(acme, agent_id, PhoneType::Extension, "801")
        .await
        .unwrap();
    assert_eq!(
        tx.bound_phone(agent_id).await.unwrap(),
        Some((PhoneType::Extension, "801".to_owned()))
    );
    let other = tx
        .insert_agent(acme, &Cno::parse("2009").unwrap(), &AgentSettings::new("Other"), None)
        .await
        .unwrap();
    assert!(matches!(
        tx.bind_phone(acme, other, PhoneType::Extension, "801").await,
        Err(StoreError::Conflict(_))
    ));
    let start = CdrStart {
        user_field: "{\"crm\":1}".into(),
        ..cdr_start("node-1.1", acme, agent_id)
    };
    tx.insert_cdr(&start).await.unwrap();
    assert_eq!(tx.running_calls(Some(acme), None).await.unwrap(), 1);
    assert_eq!(tx.running_calls(None, Some("carrier")).await.unwrap(), 1);
    assert_eq!(tx.open_cdrs().await.unwrap().len(), 1);
    assert_eq!(tx.calls_to_number_since(acme, "13800138000", 0).await.unwrap(), 1);
    assert_eq!(tx.calls_to_number_since(acme, "13800138000", 1_001).await.unwrap(), 0);
    // On hold and back, with its event on the stream (a type no push carries).
    tx.mark_cdr_progress("node-1.1", Some(2_000), Some(3_000))
        .await
        .unwrap();
    tx.mark_cdr_on_hold("node-1.1", Some(4_000)).await.unwrap();
    let progress = tx.cdr_progress("node-1.1").await.unwrap();
    assert_eq!(
        (progress.bridged_at, progress.on_hold_since),
        (Some(3_000), Some(4_000))
    );
    let hold = tx
        .enqueue_push(acme, "hold", "node-1.1", r#"{"name":"hold"}"#)
        .await
        .unwrap();
    assert_eq!(tx.events_since(acme, hold - 1, 10).await.unwrap()[0].event_type, "hold");
    tx.mark_cdr_on_hold("node-1.1", None).await.unwrap();
    tx.mark_cdr_on_hold("node-1.1", Some(5_000)).await.unwrap();
    let end = CdrEnd {
        bridge_seconds: 61,
        cost: "0.24".parse().unwrap(),
        sip_cause: 200,
        ..CdrEnd::new(70_000, 28, EndReason::CustomerHungUp, Side::Customer)
    };
    assert!(tx.finish_cdr("node-1.1", &end).await.unwrap());
    assert!(!tx.finish_cdr("node-1.1", &end).await.unwrap(), "a call is closed once");
    assert_eq!(
        tx.cdr_progress("node-1.1").await.unwrap().on_hold_since,
        None,
        "a call that ended on hold is on hold no more"
    );
    // After a failover the CDR names the trunk that carried the call.
    tx.set_cdr_trunk("node-1.1", "carrier-b").await.unwrap();
    assert_eq!(tx.cdr("node-1.1").await.unwrap().unwrap().start.trunk_name, "carrier-b");
    tx.set_cdr_trunk("node-1.1", &start.trunk_name).await.unwrap();
    let before = tx.money(acme).await.unwrap().unwrap();
    tx.settle_call(acme, "node-1.1", end.cost).await.unwrap();
    let after = tx.money(acme).await.unwrap().unwrap();
    assert_eq!(
        (after.balance, after.held),
        (before.balance.checked_sub(end.cost).unwrap(), Money::ZERO)
    );
    let refused = Refused {
        enterprise: Some(acme.get()),
        source: Some("127.0.0.9"),
        cno: Some("2000"),
        customer_number: Some("123"),
        res: "7",
        reason: "not a number",
        counted: false,
    };
    tx.record_refusal(&refused).await.unwrap();
    // Before authentication: counted per source, cno, res and minute, the first as the sample.
    let stranger = Refused {
        res: "3",
        reason: "authentication failed",
        counted: true,
        ..refused
    };
    for number in ["1", "2", "3"] {
        tx.record_refusal(&Refused {
            customer_number: Some(number),
            ..stranger
        })
        .await
        .unwrap();
    }
    tx.record_refusal(&Refused {
        source: Some("127.0.0.10"),
        ..stranger
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut read = store.begin_read().await.unwrap();
    let cdr = read.cdr("node-1.1").await.unwrap().unwrap();
    assert_eq!(cdr.start, start);
    assert_eq!(cdr.end, Some(end));
    let query = CdrQuery {
        enterprise_id: Some(acme),
        limit: 10,
        ..CdrQuery::default()
    };
    assert_eq!(read.cdrs(&query).await.unwrap().len(), 1);
    let other_enterprise = CdrQuery {
        enterprise_id: Some(ent(3000002)),
        limit: 10,
        ..CdrQuery::default()
    };
    assert!(read.cdrs(&other_enterprise).await.unwrap().is_empty());
    let by_field = CdrQuery {
        enterprise_id: Some(acme),
        user_field: Some("{\"crm\":1}".into()),
        limit: 10,
        ..CdrQuery::default()
    };
    assert_eq!(read.cdrs(&by_field).await.unwrap().len(), 1);
    let in_range = CdrQuery {
        enterprise_id: Some(acme),
        from: Some(2_000),
        limit: 10,
        ..CdrQuery::default()
    };
    assert!(read.cdrs(&in_range).await.unwrap().is_empty());
    assert!(read.open_cdrs().await.unwrap().is_empty());
    let refusals = read.refusals(Some(acme), 10).await.unwrap();
    let counted: Vec<_> = refusals
        .iter()
        .map(|r| {
            (
                r.res.as_str(),
                r.source.as_deref(),
                r.count,
                r.customer_number.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        counted,
        vec![
            ("3", Some("127.0.0.10"), 1, Some("123")),
            ("3", Some("127.0.0.9"), 3, Some("1")),
            ("7", Some("127.0.0.9"), 1, Some("123")),
        ]
    );
    assert!(refusals
        .iter()
        .all(|r| r.last_at >= r.at && r.enterprise_id == Some(acme.get())));
    assert_eq!(read.refusals(None, 10).await.unwrap().len(), 3);
    drop(read);

    // The outbox: ordered per (target, stream), retried, dead-lettered, replayed; committed
    // events reach the feed, in order, and only once committed.
    let mut feed = store.subscribe_events();
    let mut tx = store.begin().await.unwrap();
    tx.enqueue_push(acme, "hangup", "rolled-back", "{}").await.unwrap();
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let first = tx
        .enqueue_push(acme, "hangup", "node-1.1", "{\"a\":\"1\"}")
        .await
        .unwrap();
    let second = tx
        .enqueue_push(acme, "hangup", "node-1.1", "{\"a\":\"2\"}")
        .await
        .unwrap();
    let other_stream = tx.enqueue_push(acme, "hangup", "node-1.2", "{}").await.unwrap();
    let no_target = tx.enqueue_push(acme, "ringing", "node-1.1", "{}").await.unwrap();
    assert!(feed.try_recv().is_err(), "nothing is published before the commit");
    tx.commit().await.unwrap();
    assert!(first < second && second < other_stream && other_stream < no_target);
    let published: Vec<(i64, String, String)> = std::iter::from_fn(|| feed.try_recv().ok())
        .map(|e| (e.id, e.stream_key.clone(), e.payload.clone()))
        .collect();
    assert_eq!(
        published,
        vec![
            (first, "node-1.1".into(), "{\"a\":\"1\"}".into()),
            (second, "node-1.1".into(), "{\"a\":\"2\"}".into()),
            (other_stream, "node-1.2".into(), "{}".into()),
            (no_target, "node-1.1".into(), "{}".into()),
        ],
        "the committed events, not the rolled-back one"
    );
    let mut read = store.begin_read().await.unwrap();
    let stored: Vec<i64> = read
        .events_since(acme, first - 1, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(stored, vec![first, second, other_stream, no_target]);
    drop(read);
    let mut tx = store.begin().await.unwrap();
    let due: Vec<i64> = tx
        .due_deliveries(i64::MAX, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(
        due,
        vec![first, other_stream],
        "the second waits behind the first; ringing has no target"
    );
    tx.mark_failed(first, acme, "hangup", "HTTP 500", Some(i64::MAX - 1))
        .await
        .unwrap();
    let due: Vec<i64> = tx
        .due_deliveries(i64::MAX - 2, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(due, vec![other_stream], "a retry later still holds back its stream");
    tx.mark_delivered(first, acme, "hangup").await.unwrap();
    let due = tx.due_deliveries(i64::MAX, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.event_id).collect::<Vec<_>>(),
        vec![second, other_stream]
    );
    assert_eq!(due[0].payload, "{\"a\":\"2\"}");
    tx.mark_failed(second, acme, "hangup", "gave up", None).await.unwrap();
    let dead = tx.deliveries(acme, Some("dead"), 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.event_id).collect::<Vec<_>>(), vec![second]);
    assert_eq!(dead[0].attempts, 1);
    tx.replay_delivery(second, acme, "hangup").await.unwrap();
    assert!(tx
        .due_deliveries(i64::MAX, 10)
        .await
        .unwrap()
        .iter()
        .any(|d| d.event_id == second));
    let secret = tx.push_target_secret(acme, "hangup").await.unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        tx.push_target_secret(acme, "hangup").await.unwrap(),
        secret,
        "created once"
    );
    tx.commit().await.unwrap();

    // Across targets: with `push_order` per_call (the default) a call's later push waits for
    // its earlier pushes to other targets while they are younger than the enterprise's bound
    // (10 s); per_target lets it go; a dead one holds nothing back.
    let mut tx = store.begin().await.unwrap();
    for (name, push_type) in [("ring", PushType::Ringing), ("bridge", PushType::Bridge)] {
        let target = PushTarget {
            name: name.into(),
            push_type,
            url: "http://127.0.0.1:9/push".into(),
            method: PushMethod::Post,
            timeout_ms: 3000,
            retries: 1,
            format: PushFormat::Legacy,
            charset: PushCharset::Utf8,
            name_mapping: Vec::new(),
        };
        tx.upsert_push_target(acme, &target).await.unwrap();
    }
    let ringing = tx.enqueue_push(acme, "ringing", "node-9.1", "{}").await.unwrap();
    // The bridge strictly later than the ringing, so the bounds can be told apart.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let bridge = tx.enqueue_push(acme, "bridge", "node-9.1", "{}").await.unwrap();
    let hangup = tx.enqueue_push(acme, "hangup", "node-9.1", "{}").await.unwrap();
    tx.commit().await.unwrap();
    let calls = [ringing, bridge, hangup];
    let mut tx = store.begin().await.unwrap();
    let created = |id: i64, due: &[DueDelivery]| due.iter().find(|d| d.event_id == id).unwrap().created_at;
    let everything = tx.due_deliveries(i64::MAX, 100).await.unwrap();
    let (rang, bridged) = (created(ringing, &everything), created(bridge, &everything));
    assert_eq!(due_among(&mut tx, rang + 1_000, &calls).await, [ringing]);
    assert_eq!(
        due_among(&mut tx, bridged + 9_999, &calls).await,
        [ringing, bridge],
        "the ringing push is past its bound; the hang-up still waits for the bridge"
    );
    assert_eq!(
        due_among(&mut tx, bridged + 10_000, &calls).await,
        calls,
        "the bridge past its bound too"
    );
    let mut settings = tx.enterprise(acme).await.unwrap().unwrap().settings;
    settings.push_order = PushOrder::PerTarget;
    tx.update_enterprise(acme, &settings).await.unwrap();
    assert_eq!(due_among(&mut tx, rang + 1_000, &calls).await, calls);
    settings.push_order = PushOrder::PerCall;
    tx.update_enterprise(acme, &settings).await.unwrap();
    tx.mark_delivered(ringing, acme, "ring").await.unwrap();
    assert_eq!(due_among(&mut tx, rang + 1_000, &calls).await, [bridge]);
    tx.mark_failed(bridge, acme, "bridge", "gave up", None).await.unwrap();
    assert_eq!(
        due_among(&mut tx, rang + 1_000, &calls).await,
        [hangup],
        "a dead push holds nothing back"
    );
    // An agent's status stream is not held across targets: with its first status still
    // pending at one target, the second goes to the other.
    let mut status_target = tx.push_targets(acme).await.unwrap()[0].clone();
    status_target.push_type = PushType::AgentStatus;
    for name in ["status-1", "status-2"] {
        status_target.name = name.into();
        tx.upsert_push_target(acme, &status_target).await.unwrap();
    }
    let first_status = tx.enqueue_push(acme, "agent_status", "agent:7", "{}").await.unwrap();
    let second_status = tx.enqueue_push(acme, "agent_status", "agent:7", "{}").await.unwrap();
    tx.mark_delivered(first_status, acme, "status-2").await.unwrap();
    let statuses = [first_status, second_status];
    assert_eq!(due_among(&mut tx, rang + 1_000, &statuses).await, statuses);
    tx.commit().await.unwrap();
}

/// The deliveries due at `at` among `events`.
async fn due_among(tx: &mut Tx<'_>, at: i64, events: &[i64]) -> Vec<i64> {
    tx.due_deliveries(at, 100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.event_id)
        .filter(|id| events.contains(id))
        .collect()
}

fn money(text: &str) -> Money {
    text.parse().unwrap()
}

/// Credit holds: taken while available credit pays them, extended once however often asked,
/// settled into one ledger row each; `held` is always the sum of the holds.
async fn exercise_credit(store: &Store) {
    let id = ent(3000077);
    let rate = money("0.12");
    let mut settings = EnterpriseSettings::new("Credit");
    settings.rate_per_minute = rate;
    settings.credit_limit = money("0.10");
    let mut tx = store.begin().await.unwrap();
    tx.insert_enterprise(id, &settings).await.unwrap();
    tx.top_up(id, money("0.30"), Some("invoice 1")).await.unwrap();
    // 0.30 + 0.10 available: three first minutes, not a fourth.
    let first = Hold::first(rate).unwrap();
    for call in ["c-1", "c-2", "c-3"] {
        assert!(tx.take_hold(id, call, first).await.unwrap(), "{call}");
    }
    assert!(!tx.take_hold(id, "c-4", first).await.unwrap());
    assert_eq!(tx.hold("c-4").await.unwrap(), None, "a refused hold writes nothing");
    let credit = |balance, held| {
        Some(Credit {
            balance: money(balance),
            credit_limit: money("0.10"),
            held: money(held),
        })
    };
    assert_eq!(tx.money(id).await.unwrap(), credit("0.30", "0.36"));
    // c-3 never bridged: its hold is released, nothing charged.
    assert_eq!(tx.release_hold("c-3").await.unwrap(), Some(first));
    tx.settle_call(id, "c-3", Money::ZERO).await.unwrap();
    assert_eq!(tx.money(id).await.unwrap(), credit("0.30", "0.24"));
    // c-1 is extended once, however often it asks from one minute.
    assert_eq!(
        tx.extend_hold("c-1", 1).await.unwrap(),
        Extension::Extended(first.extended())
    );
    assert_eq!(
        tx.extend_hold("c-1", 1).await.unwrap(),
        Extension::AlreadyExtended(first.extended())
    );
    assert_eq!(tx.money(id).await.unwrap(), credit("0.30", "0.36"));
    // 0.04 left: c-2 cannot extend and nothing changes; a free call's id holds nothing.
    assert_eq!(tx.extend_hold("c-2", 1).await.unwrap(), Extension::Refused(first));
    assert_eq!(tx.hold("c-2").await.unwrap(), Some(first));
    assert_eq!(tx.money(id).await.unwrap(), credit("0.30", "0.36"));
    assert_eq!(tx.extend_hold("free", 1).await.unwrap(), Extension::NotHeld);
    let holds = tx.holds(id).await.unwrap();
    assert_eq!(
        holds,
        vec![("c-1".to_owned(), first.extended()), ("c-2".to_owned(), first)]
    );
    for (call, bridged_seconds) in [("c-1", 90), ("c-2", 60)] {
        let released = tx.release_hold(call).await.unwrap().unwrap();
        tx.settle_call(id, call, released.settle(bridged_seconds))
            .await
            .unwrap();
    }
    assert_eq!(tx.release_hold("c-1").await.unwrap(), None, "released once");
    tx.commit().await.unwrap();

    let mut read = store.begin_read().await.unwrap();
    let e = read.enterprise(id).await.unwrap().unwrap();
    assert_eq!(
        (e.balance, e.held),
        (money("-0.06"), Money::ZERO),
        "within the credit limit"
    );
    assert!(read.holds(id).await.unwrap().is_empty());
    let ledger = read.ledger(id, 10).await.unwrap();
    let kinds: Vec<_> = ledger
        .iter()
        .map(|l| (l.kind, l.amount, l.reference.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (LedgerKind::CallCharge, money("-0.12"), Some("c-2")),
            (LedgerKind::CallCharge, money("-0.24"), Some("c-1")),
            (LedgerKind::TopUp, money("0.30"), Some("invoice 1")),
        ]
    );
    assert_eq!(ledger[0].balance_after, e.balance);
    drop(read);

    // A hold whose call no longer runs (its CDR is gone): found, deleted, and `held` rebuilt
    // from the holds of the calls still running.
    let mut tx = store.begin().await.unwrap();
    tx.top_up(id, money("1.00"), None).await.unwrap();
    for call in ["d-1", "d-2"] {
        tx.insert_cdr(&cdr_start(call, id, 1)).await.unwrap();
        assert!(tx.take_hold(id, call, first).await.unwrap());
    }
    assert!(tx.take_hold(id, "d-orphan", first).await.unwrap());
    assert_eq!(tx.money(id).await.unwrap(), credit("0.94", "0.36"));
    assert_eq!(tx.enterprises_to_reconcile().await.unwrap(), vec![id]);
    assert_eq!(tx.reconcile_held(id).await.unwrap(), (1, true));
    assert_eq!(tx.money(id).await.unwrap(), credit("0.94", "0.24"));
    assert_eq!(tx.hold("d-orphan").await.unwrap(), None);
    assert!(tx.enterprises_to_reconcile().await.unwrap().is_empty());
    assert_eq!(tx.reconcile_held(id).await.unwrap(), (0, false));
    for call in ["d-1", "d-2"] {
        assert_eq!(tx.release_hold(call).await.unwrap(), Some(first));
    }
    assert_eq!(tx.money(id).await.unwrap(), credit("0.94", "0"));
    tx.commit().await.unwrap();
}

/// Registrations kept across restarts: an AOR's set replaced as a whole, only live ones read
/// back, expired ones swept.
async fn exercise_registrations(store: &Store) {
    let binding = |contact: &str, expires_at: i64, over_tcp: bool| SipRegistration {
        aor: "3000001-801".into(),
        contact: contact.into(),
        expires_at,
        source: "127.0.0.1:5070".parse().unwrap(),
        over_tcp,
        call_id: "c1".into(),
        cseq: 2,
    };
    let mut tx = store.begin().await.unwrap();
    tx.replace_sip_registrations(
        "3000001-801",
        &[
            binding("sip:801@127.0.0.1:5070", 2_000, false),
            binding("sip:801@h;transport=tcp", 1_000, true),
        ],
    )
    .await
    .unwrap();
    let other = SipRegistration {
        aor: "3000001-802".into(),
        ..binding("sip:802@127.0.0.1:5080", 3_000, false)
    };
    tx.replace_sip_registrations("3000001-802", std::slice::from_ref(&other))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.live_sip_registrations(1_500).await.unwrap(),
        vec![binding("sip:801@127.0.0.1:5070", 2_000, false), other.clone()]
    );
    // The phone unregistered.
    tx.replace_sip_registrations("3000001-801", &[]).await.unwrap();
    assert_eq!(tx.live_sip_registrations(0).await.unwrap(), vec![other]);
    assert_eq!(tx.sweep_sip_registrations(3_000).await.unwrap(), 1);
    assert!(tx.live_sip_registrations(0).await.unwrap().is_empty());

    // How to end a running call's legs: the agent's CANCEL replaced by its BYE once answered.
    let ending = |leg, request: &str| KeptLegEnding {
        leg,
        request: request.into(),
        destination: "127.0.0.1:5070".parse().unwrap(),
        over_tcp: false,
    };
    tx.keep_leg_ending("n-1.9", &ending(call::Leg::Agent, "CANCEL …"))
        .await
        .unwrap();
    tx.keep_leg_ending("n-1.9", &ending(call::Leg::Agent, "BYE …"))
        .await
        .unwrap();
    tx.keep_leg_ending("n-1.9", &ending(call::Leg::Customer, "CANCEL …"))
        .await
        .unwrap();
    assert_eq!(
        tx.leg_endings("n-1.9").await.unwrap(),
        vec![
            ending(call::Leg::Agent, "BYE …"),
            ending(call::Leg::Customer, "CANCEL …")
        ]
    );
    tx.forget_leg_endings("n-1.9").await.unwrap();
    assert!(tx.leg_endings("n-1.9").await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

/// A recording's row from plan to deletion, who accessed it, the settings that decide it, and
/// an enterprise's announcement.
async fn exercise_recordings(store: &Store) {
    let acme = ent(3000001);
    let mut tx = store.begin().await.unwrap();
    let mut settings = tx.enterprise(acme).await.unwrap().unwrap().settings;
    settings.recording = RecordingMode::FromAgentAnswer;
    settings.recording_max_minutes = 30;
    settings.recording_retention_days = Some(90);
    settings.record_file_form = RecordFileForm::Url;
    tx.update_enterprise(acme, &settings).await.unwrap();
    let cno = Cno::parse("2000").unwrap();
    let mut agent = tx.agent(acme, &cno).await.unwrap().unwrap().settings;
    agent.recording = Some(RecordingMode::Off);
    tx.update_agent(acme, &cno, &agent).await.unwrap();
    for (id, file, at) in [
        ("rec-1", "3000001-20261201000000-1-rec-1.wav", 1_000),
        ("rec-2", "3000001-20261201000000-1-rec-2.wav", 2_000),
        ("rec-3", "3000001-20261201000000-1-rec-3.wav", 3_000),
    ] {
        tx.plan_recording(id, acme, "20261201", file, at).await.unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let stored = tx.enterprise(acme).await.unwrap().unwrap().settings;
    assert_eq!(
        (
            stored.recording,
            stored.recording_max_minutes,
            stored.recording_retention_days,
            stored.record_file_form
        ),
        (RecordingMode::FromAgentAnswer, 30, Some(90), RecordFileForm::Url)
    );
    assert_eq!(
        tx.agent(acme, &cno).await.unwrap().unwrap().settings.recording,
        Some(RecordingMode::Off)
    );
    tx.mark_recording_paused("rec-1", Some(4_000)).await.unwrap();
    assert_eq!(
        tx.recording_of_call("rec-1").await.unwrap().unwrap().paused_since,
        Some(4_000)
    );
    tx.keep_recording("rec-1", 8000, 44 + 32_000, 1, 5_000).await.unwrap();
    tx.keep_recording("rec-2", 16_000, 44 + 64_000, 0, 5_000).await.unwrap();
    tx.drop_planned_recording("rec-3").await.unwrap();
    tx.drop_planned_recording("rec-1").await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.recording_of_call("rec-3").await.unwrap().is_none(),
        "never started: forgotten"
    );
    let kept = tx
        .recording_by_file("3000001-20261201000000-1-rec-1.wav")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            kept.unique_id.as_str(),
            kept.state,
            kept.frames,
            kept.gaps,
            kept.day.as_str(),
            kept.paused_since
        ),
        ("rec-1", RecordingState::Kept, 8000, 1, "20261201", None),
        "a kept recording is not dropped"
    );
    let expired: Vec<String> = tx
        .expired_recordings(acme, 1_500, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unique_id)
        .collect();
    assert_eq!(expired, vec!["rec-1"]);
    assert!(tx
        .expired_recordings(ent(3000002), 10_000, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(tx
        .mark_recording_deleted("rec-1", "retention", "90 days", 6_000)
        .await
        .unwrap());
    assert!(!tx
        .mark_recording_deleted("rec-1", "retention", "again", 6_001)
        .await
        .unwrap());
    let access = RecordingAccess {
        unique_id: "rec-2",
        enterprise_id: acme,
        file_name: "3000001-20261201000000-1-rec-2.wav",
        action: "download",
        actor: "admin:admin",
        detail: "side=Mixed bytes=0-99",
        at: 7_000,
    };
    tx.record_recording_access(&access).await.unwrap();
    tx.record_recording_access(&RecordingAccess {
        action: "delete",
        at: 8_000,
        ..access
    })
    .await
    .unwrap();
    tx.set_recording_announcement(acme, Some(&[1, -2, i16::MAX, i16::MIN]), 9_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.recording_of_call("rec-1").await.unwrap().unwrap().state,
        RecordingState::Deleted
    );
    let accesses = tx.recording_accesses("rec-2").await.unwrap();
    assert_eq!(
        accesses.iter().map(|a| (a.0.as_str(), a.3)).collect::<Vec<_>>(),
        vec![("download", 7_000), ("delete", 8_000)]
    );
    assert_eq!(
        tx.recording_announcements().await.unwrap(),
        vec![(acme, vec![1, -2, i16::MAX, i16::MIN])]
    );
    tx.set_recording_announcement(acme, None, 10_000).await.unwrap();
    assert!(tx.recording_announcements().await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn sqlite_configuration_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    assert!(dir.path().join("dialbridge.db").exists());
    assert_eq!(store.backend(), Backend::Sqlite);
    exercise_configuration(&store).await;
    exercise_calls(&store).await;
    exercise_credit(&store).await;
    exercise_registrations(&store).await;
    exercise_recordings(&store).await;
    store.close().await;

    // Reopening migrates nothing twice and keeps the data; sequences continue.
    let store = sqlite_store(&dir).await;
    assert_eq!(store.applied_migrations().await.unwrap(), every_migration());
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.next_id("test_seq").await.unwrap(), 3);
    assert!(tx.enterprise(ent(3000001)).await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    store
        .begin()
        .await
        .unwrap()
        .insert_enterprise(ent(3000001), &EnterpriseSettings::new("A"))
        .await
        .unwrap();
    assert!(dir.path().join("dialbridge.db-wal").exists());
}

#[tokio::test]
async fn secrets_are_not_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let mut tx = store.begin().await.unwrap();
    tx.insert_enterprise(ent(3000001), &EnterpriseSettings::new("A"))
        .await
        .unwrap();
    tx.set_admin(ent(3000001), "admin", "admin-password-x").await.unwrap();
    tx.insert_agent(
        ent(3000001),
        &Cno::parse("2000").unwrap(),
        &AgentSettings::new("A"),
        Some("agent-password-y"),
    )
    .await
    .unwrap();
    tx.set_extension(ent(3000001), &ExtensionNumber::parse("801").unwrap(), "sip-password-z")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store.close().await;
    let mut bytes = Vec::new();
    for name in ["dialbridge.db", "dialbridge.db-wal"] {
        if let Ok(b) = std::fs::read(dir.path().join(name)) {
            bytes.extend(b);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    for secret in [
        "admin-password-x",
        "agent-password-y",
        "sip-password-z",
        &md5_hex("admin-password-x"),
        &md5_hex("agent-password-y"),
    ] {
        assert!(!text.contains(secret), "{secret} found in the database file");
    }
}

#[tokio::test]
async fn a_wrong_key_cannot_read_sealed_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let mut tx = store.begin().await.unwrap();
    tx.insert_enterprise(ent(3000001), &EnterpriseSettings::new("A"))
        .await
        .unwrap();
    tx.set_admin(ent(3000001), "admin", "pw").await.unwrap();
    tx.commit().await.unwrap();
    store.close().await;
    let options = StoreOptions {
        database_url: StoreOptions::sqlite_in(dir.path()),
        password_hash_cost: cheap_hashing(),
    };
    let other = Store::open(&options, &SecretKey::from_hex(&"cd".repeat(32)).unwrap())
        .await
        .unwrap();
    let mut tx = other.begin_read().await.unwrap();
    assert!(matches!(
        tx.admin_password_md5(ent(3000001), "admin").await,
        Err(StoreError::SealedSecretUnreadable)
    ));
}

#[tokio::test]
async fn unsupported_url_is_named() {
    let options = StoreOptions {
        database_url: "mysql://x".into(),
        password_hash_cost: cheap_hashing(),
    };
    let err = Store::open(&options, &key()).await.err().unwrap();
    assert!(err.to_string().contains("mysql://x"));
}

#[tokio::test]
async fn postgres_runs_the_same_migrations_and_operations() {
    let Some(url) = dialbridge_testkit::postgres_url() else {
        return;
    };
    let options = StoreOptions {
        database_url: url,
        password_hash_cost: cheap_hashing(),
    };
    let store = Store::open(&options, &key()).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    assert_eq!(store.applied_migrations().await.unwrap(), every_migration());
    exercise_configuration(&store).await;
    exercise_calls(&store).await;
    exercise_credit(&store).await;
    exercise_registrations(&store).await;
    exercise_recordings(&store).await;
}

/// Two processes on one SQLite file (the server and an operator's `dialbridge admin`): a
/// transaction that reads and then writes while the other one writes does not fail; the second
/// writer waits for the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_two_processes_on_one_sqlite_file_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_store(&dir).await;
    let admin = sqlite_store(&dir).await;
    let mut reading_first = server.begin().await.unwrap();
    assert!(reading_first.enterprises().await.unwrap().is_empty());
    let other_writer = tokio::spawn(async move {
        let mut tx = admin.begin().await?;
        tx.insert_enterprise(ent(3000002), &EnterpriseSettings::new("Other"))
            .await?;
        tx.commit().await
    });
    // Time for the other writer to commit first if nothing makes it wait.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    reading_first
        .insert_enterprise(ent(3000001), &EnterpriseSettings::new("Acme"))
        .await
        .expect("a write after a read is not refused for another process's write");
    reading_first.commit().await.unwrap();
    other_writer
        .await
        .unwrap()
        .expect("the other writer waited, then wrote");
    assert_eq!(server.begin_read().await.unwrap().enterprises().await.unwrap().len(), 2);
}

/// A database written by the first release (migrations 1-9): the example provisioning file
/// applied, a top-up, agent 2000 online on a telephone, one refused and one unanswered call,
/// and the hang-up push still pending (`tests/fixtures/wave1.db`, sealed with [`key`]). It opens,
/// takes every later migration, and reads back as it was.
#[tokio::test]
async fn a_wave_one_database_opens_and_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wave1.db");
    std::fs::copy(fixture, dir.path().join("dialbridge.db")).unwrap();
    let store = sqlite_store(&dir).await;
    assert!(every_migration().len() > 9, "the fixture predates a migration");
    assert_eq!(
        store.applied_migrations().await.unwrap(),
        every_migration(),
        "every migration applied once, in order"
    );

    let acme = ent(3000001);
    let mut tx = store.begin_read().await.unwrap();
    let enterprise = tx.enterprise(acme).await.unwrap().unwrap();
    assert_eq!(enterprise.settings.name, "Acme Trading");
    assert_eq!(enterprise.balance, "100".parse().unwrap());
    let cnos: Vec<String> = tx
        .agents(acme)
        .await
        .unwrap()
        .iter()
        .map(|a| a.cno.to_string())
        .collect();
    assert_eq!(cnos, ["2000", "2001"]);
    assert_eq!(
        tx.trunk_password("carrier-a").await.unwrap().as_deref(),
        Some("trunk-secret")
    );
    assert_eq!(
        tx.extension_password(acme, &ExtensionNumber::parse("801").unwrap())
            .await
            .unwrap()
            .as_deref(),
        Some("ext801-secret")
    );
    let cdr = tx.cdr("dialbridge1-1796468499.1").await.unwrap().unwrap();
    assert_eq!(cdr.start.user_field, "wave1");
    assert_eq!(cdr.end.as_ref().map(|e| e.status), Some(24));
    let refusals = tx.refusals(Some(acme), 10).await.unwrap();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].res, "11");
    let due = tx.due_deliveries(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].target_name, "crm-hangup");
    drop(tx);
    store.close().await;
}

/// Every configuration write raises the configuration generation once per transaction; money
/// and runtime state do not, nor does a write that is rolled back.
#[tokio::test]
async fn configuration_writes_raise_the_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let generation = || async { store.begin_read().await.unwrap().config_generation().await.unwrap() };
    let start = generation().await;
    let acme = ent(3000001);
    let mut tx = store.begin().await.unwrap();
    tx.insert_enterprise(acme, &EnterpriseSettings::new("Acme"))
        .await
        .unwrap();
    tx.insert_agent(
        acme,
        &Cno::parse("2000").unwrap(),
        &AgentSettings::new("A"),
        Some("1234"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(generation().await, start + 1, "one transaction, one step");

    let mut tx = store.begin().await.unwrap();
    tx.top_up(acme, "10".parse().unwrap(), None).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(generation().await, start + 1, "a top-up is not configuration");

    let mut tx = store.begin().await.unwrap();
    tx.set_admin(acme, "admin", "secret").await.unwrap();
    drop(tx);
    assert_eq!(generation().await, start + 1, "rolled back");

    let mut tx = store.begin().await.unwrap();
    tx.set_agent_password(acme, &Cno::parse("2000").unwrap(), "4321")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(generation().await, start + 2);
}

/// Retention on one database: expired rows go, unexpired and unfinished ones stay, and the
/// sweep mark says how far outbox events may be missing.
async fn exercise_retention(store: &Store) {
    let acme = ent(3000001);
    let mut tx = store.begin().await.unwrap();
    tx.insert_enterprise(acme, &EnterpriseSettings::new("Acme"))
        .await
        .unwrap();
    let agent_id = tx
        .insert_agent(acme, &Cno::parse("2000").unwrap(), &AgentSettings::new("A"), None)
        .await
        .unwrap();
    tx.upsert_push_target(
        acme,
        &PushTarget {
            name: "crm".into(),
            push_type: PushType::Hangup,
            url: "http://127.0.0.1:9/push".into(),
            method: PushMethod::Post,
            timeout_ms: 3000,
            retries: 1,
            format: PushFormat::Legacy,
            charset: PushCharset::Utf8,
            name_mapping: Vec::new(),
        },
    )
    .await
    .unwrap();
    let delivered = tx.enqueue_push(acme, "hangup", "node-1.1", "{}").await.unwrap();
    let pending = tx.enqueue_push(acme, "hangup", "node-1.2", "{}").await.unwrap();
    let no_target = tx.enqueue_push(acme, "ringing", "node-1.1", "{}").await.unwrap();
    tx.mark_delivered(delivered, acme, "crm").await.unwrap();
    for (unique_id, ended) in [("node-1.1", true), ("node-1.2", false)] {
        tx.insert_cdr(&cdr_start(unique_id, acme, agent_id)).await.unwrap();
        if ended {
            let end = CdrEnd::new(2_000, 28, EndReason::AgentHungUp, Side::Agent);
            assert!(tx.finish_cdr(unique_id, &end).await.unwrap());
        }
    }
    tx.record_refusal(&Refused {
        enterprise: Some(acme.get()),
        source: None,
        cno: Some("2000"),
        customer_number: None,
        res: "7",
        reason: "bad number",
        counted: false,
    })
    .await
    .unwrap();
    assert_eq!(tx.push_events_swept_through().await.unwrap(), 0);
    tx.commit().await.unwrap();

    // Everything so far is past its retention.
    let future = i64::MAX / 2;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.sweep_push_events(future, 500).await.unwrap(), 2);
    assert_eq!(tx.sweep_cdrs(future, 500).await.unwrap(), 1);
    assert_eq!(tx.sweep_refusals(future, 500).await.unwrap(), 1);
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let left = event_ids(&mut tx, acme).await;
    assert_eq!(left, vec![pending], "an undelivered event stays however old");
    assert_eq!(tx.due_deliveries(i64::MAX, 10).await.unwrap().len(), 1);
    assert_eq!(tx.push_events_swept_through().await.unwrap(), no_target);
    assert!(tx.cdr("node-1.1").await.unwrap().is_none());
    assert!(
        tx.cdr("node-1.2").await.unwrap().is_some(),
        "a running call's CDR stays"
    );
    assert!(tx.refusals(Some(acme), 10).await.unwrap().is_empty());

    // What is newer than the cut-off stays; a batch is at most its limit.
    let fresh = tx.enqueue_push(acme, "ringing", "node-1.3", "{}").await.unwrap();
    let another = tx.enqueue_push(acme, "ringing", "node-1.4", "{}").await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.sweep_push_events(0, 500).await.unwrap(), 0, "not expired");
    assert_eq!(tx.sweep_push_events(future, 1).await.unwrap(), 1, "one batch of one");
    let left = event_ids(&mut tx, acme).await;
    assert_eq!(left, vec![pending, another]);
    assert_eq!(tx.push_events_swept_through().await.unwrap(), fresh);
    tx.commit().await.unwrap();
}

/// The ids of the enterprise's outbox events still stored.
async fn event_ids(tx: &mut Tx<'_>, enterprise: EnterpriseId) -> Vec<i64> {
    tx.events_since(enterprise, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}

#[tokio::test]
async fn retention_deletes_what_expired_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    exercise_retention(&sqlite_store(&dir).await).await;
    let Some(url) = dialbridge_testkit::fresh_postgres_database("dialbridge_retention") else {
        return;
    };
    let options = StoreOptions {
        database_url: url,
        password_hash_cost: cheap_hashing(),
    };
    exercise_retention(&Store::open(&options, &key()).await.unwrap()).await;
}

/// On PostgreSQL, two transactions extending one call at once extend it once (the second waits
/// for the first, then finds the hold already longer), and an extension racing the call's
/// close finds nothing left to extend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_extensions_and_closes_on_postgres() {
    let Some(url) = dialbridge_testkit::fresh_postgres_database("dialbridge_credit_race") else {
        return;
    };
    let options = StoreOptions {
        database_url: url,
        password_hash_cost: cheap_hashing(),
    };
    let store = Store::open(&options, &key()).await.unwrap();
    let id = ent(3000088);
    let rate = money("0.12");
    let mut settings = EnterpriseSettings::new("Race");
    settings.rate_per_minute = rate;
    let first = Hold::first(rate).unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_enterprise(id, &settings).await.unwrap();
    tx.top_up(id, money("1.00"), None).await.unwrap();
    tx.insert_cdr(&cdr_start("r-1", id, 1)).await.unwrap();
    assert!(tx.take_hold(id, "r-1", first).await.unwrap());
    tx.commit().await.unwrap();

    let extend_in_another = |paid_minutes: u32| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await?;
            let extension = tx.extend_hold("r-1", paid_minutes).await?;
            if let Extension::Extended(_) = extension {
                tx.commit().await?;
            }
            Ok::<_, StoreError>(extension)
        })
    };
    let mut first_to_extend = store.begin().await.unwrap();
    assert_eq!(
        first_to_extend.extend_hold("r-1", 1).await.unwrap(),
        Extension::Extended(first.extended())
    );
    let second = extend_in_another(1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second waits for the first");
    first_to_extend.commit().await.unwrap();
    assert_eq!(
        second.await.unwrap().unwrap(),
        Extension::AlreadyExtended(first.extended())
    );
    let mut read = store.begin().await.unwrap();
    assert_eq!(
        read.money(id).await.unwrap().unwrap().held,
        money("0.24"),
        "extended once"
    );
    drop(read);

    let mut close = store.begin().await.unwrap();
    assert_eq!(close.release_hold("r-1").await.unwrap(), Some(first.extended()));
    let racing = extend_in_another(2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    close.settle_call(id, "r-1", money("0.12")).await.unwrap();
    close.commit().await.unwrap();
    assert_eq!(racing.await.unwrap().unwrap(), Extension::NotHeld);
    let mut read = store.begin().await.unwrap();
    let after = read.money(id).await.unwrap().unwrap();
    assert_eq!((after.balance, after.held), (money("0.88"), Money::ZERO));
}

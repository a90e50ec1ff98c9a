use super::*;

fn credentials() -> (Credentials, Arc<Metrics>) {
    let hashing = PasswordHashing::new(dialbridge_store::PasswordHashCost {
        memory_kib: 64,
        iterations: 1,
    })
    .unwrap();
    let metrics = Arc::new(Metrics::new("test"));
    (Credentials::new(hashing, metrics.clone()), metrics)
}

/// An agent that does not exist costs one password hash, as one that exists does: the code
/// path is the same, so the timing is.
#[tokio::test]
async fn unknown_and_known_agents_cost_the_same_hash() {
    let (credentials, metrics) = credentials();
    let stored = credentials.hashing.hash("0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(
        credentials
            .verify_hash("0123456789abcdef0123456789abcdef", Some(&stored))
            .await,
        Verdict::Valid
    );
    assert_eq!(metrics.http_password_checks.get(), 1);
    assert_eq!(credentials.verify_hash("ffff", Some(&stored)).await, Verdict::Invalid);
    assert_eq!(metrics.http_password_checks.get(), 2);
    // No such agent: the dummy hash is checked all the same, and nothing it matches is valid.
    assert_eq!(credentials.verify_hash("ffff", None).await, Verdict::Invalid);
    assert_eq!(metrics.http_password_checks.get(), 3);
}

#[test]
fn a_pair_over_its_budget_is_throttled_and_nothing_else_is() {
    let (credentials, metrics) = credentials();
    let here: IpAddr = "127.0.0.2".parse().unwrap();
    let there: IpAddr = "127.0.0.3".parse().unwrap();
    for _ in 0..ACCOUNT_BUDGET.max_failures {
        assert_eq!(credentials.admit(here, Some("3000001/2000")), None);
        credentials.record(here, Some("3000001/2000"), Verdict::Invalid);
    }
    assert!(matches!(
        credentials.admit(here, Some("3000001/2000")),
        Some(Verdict::Throttled(_))
    ));
    assert_eq!(credentials.admit(there, Some("3000001/2000")), None, "another source");
    assert_eq!(credentials.admit(here, Some("3000001/2001")), None, "another account");
    assert_eq!(
        credentials.admit(here, None),
        None,
        "unknown accounts have their own budget"
    );
    assert_eq!(metrics.http_auth_throttled.get(), 1);
    // Unknown accounts: the source alone, after its larger budget.
    for _ in 0..SOURCE_BUDGET.max_failures {
        credentials.record(there, None, Verdict::Invalid);
    }
    assert!(matches!(credentials.admit(there, None), Some(Verdict::Throttled(_))));
    assert_eq!(
        credentials.admit(there, Some("3000001/2000")),
        None,
        "known accounts still evaluated"
    );
    // A success forgets a pair's failures.
    credentials.record(here, Some("3000001/2000"), Verdict::Valid);
    assert_eq!(credentials.admit(here, Some("3000001/2000")), None);
}

/// While every hash thread is taken and the queue is full, a new check is refused as busy at
/// once rather than queued without end.
#[tokio::test]
async fn a_full_hash_queue_answers_busy() {
    let (credentials, metrics) = credentials();
    let credentials = Arc::new(credentials);
    let taken = credentials
        .hash_threads
        .clone()
        .acquire_many_owned(u32::try_from(credentials.hash_threads.available_permits()).unwrap())
        .await
        .unwrap();
    let mut queued = Vec::new();
    for _ in 0..credentials.max_waiting {
        let credentials = credentials.clone();
        queued.push(tokio::spawn(async move { credentials.verify_hash("ffff", None).await }));
    }
    while credentials.waiting.load(Ordering::Acquire) < credentials.max_waiting {
        tokio::task::yield_now().await;
    }
    assert_eq!(credentials.verify_hash("ffff", None).await, Verdict::Busy);
    assert_eq!(metrics.http_auth_busy.get(), 1);
    drop(taken);
    for check in queued {
        assert_eq!(check.await.unwrap(), Verdict::Invalid, "the queued ones are evaluated");
    }
}

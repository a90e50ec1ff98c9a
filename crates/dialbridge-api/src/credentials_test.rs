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
        credentials.failed(here, "3000001/2000");
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
        "malformed requests have their own budget"
    );
    assert_eq!(metrics.http_auth_throttled.get(), 1);
    // Malformed requests and unknown names: the source alone, after its larger budget.
    for _ in 0..SOURCE_BUDGET.max_failures {
        credentials.malformed(there);
    }
    assert!(matches!(credentials.admit(there, None), Some(Verdict::Throttled(_))));
    assert_eq!(
        credentials.admit(there, Some("3000001/2002")),
        None,
        "named accounts still evaluated"
    );
    // A success forgets a pair's failures.
    credentials.succeeded(here, "3000001/2000");
    assert_eq!(credentials.admit(here, Some("3000001/2000")), None);
    // An IPv6 host is counted by its /64.
    let a: IpAddr = "2001:db8::1".parse().unwrap();
    let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
    for _ in 0..ACCOUNT_BUDGET.max_failures {
        credentials.failed(a, "3000001/2000");
    }
    assert!(matches!(
        credentials.admit(b, Some("3000001/2000")),
        Some(Verdict::Throttled(_))
    ));
}

/// Fifty identical checks at once (a CRM's racing requests) cost one hash, and none is busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_checks_at_once_share_one_hash() {
    let (credentials, metrics) = credentials();
    let credentials = Arc::new(credentials);
    let stored = credentials.hashing.hash("0123456789abcdef0123456789abcdef").unwrap();
    let checks: Vec<_> = (0..50)
        .map(|_| {
            let (credentials, stored) = (credentials.clone(), stored.clone());
            tokio::spawn(async move {
                credentials
                    .verify_hash("0123456789abcdef0123456789abcdef", Some(&stored))
                    .await
            })
        })
        .collect();
    for check in checks {
        assert_eq!(check.await.unwrap(), Verdict::Valid);
    }
    assert!(
        metrics.http_password_checks.get() < 50,
        "{}",
        metrics.http_password_checks.get()
    );
    assert_eq!(metrics.http_auth_busy.get(), 0);
}

/// While every place in the queue is taken, a new check is refused as busy at once rather
/// than queued without end; a check whose caller went away gives its place back.
#[tokio::test]
async fn a_full_hash_queue_answers_busy_and_places_come_back() {
    let (credentials, metrics) = credentials();
    let credentials = Arc::new(credentials);
    let threads = credentials.hash_threads.available_permits();
    let taken = credentials
        .hash_threads
        .clone()
        .acquire_many_owned(u32::try_from(threads).unwrap())
        .await
        .unwrap();
    let places = credentials.queue.available_permits();
    let mut queued = Vec::new();
    for i in 0..places {
        let credentials = credentials.clone();
        // Distinct checks, so that none waits on another's answer.
        queued.push(tokio::spawn(async move {
            credentials.verify_hash(&format!("{i:032x}"), None).await
        }));
    }
    while credentials.queue.available_permits() > 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(credentials.verify_hash("ffff", None).await, Verdict::Busy);
    assert_eq!(metrics.http_auth_busy.get(), 1);
    // Callers that go away while waiting give their places back.
    for check in queued {
        check.abort();
        let _ = check.await;
    }
    drop(taken);
    assert_eq!(credentials.queue.available_permits(), places);
    assert_eq!(credentials.verify_hash("ffff", None).await, Verdict::Invalid);
}

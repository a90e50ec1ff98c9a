use super::*;

const BUDGET: Budget = Budget {
    max_failures: 3,
    window_ms: 60_000,
};

#[test]
fn a_key_over_its_budget_waits_for_the_window_to_end() {
    let mut budgets = FailureBudgets::new(BUDGET, 100);
    let key = ("127.0.0.2", "3000001/2000");
    for at in [1_000, 2_000] {
        budgets.failed(&key, at);
        assert_eq!(budgets.retry_after_ms(&key, at), None);
    }
    budgets.failed(&key, 3_000);
    assert_eq!(budgets.retry_after_ms(&key, 3_000), Some(58_000));
    assert_eq!(budgets.retry_after_ms(&key, 60_999), Some(1));
    assert_eq!(budgets.retry_after_ms(&key, 61_000), None, "the window ended");
    // Another key is not touched.
    assert_eq!(budgets.retry_after_ms(&("127.0.0.3", "3000001/2000"), 3_000), None);
    // A new window counts from zero.
    budgets.failed(&key, 61_000);
    assert_eq!(budgets.retry_after_ms(&key, 61_000), None);
}

#[test]
fn success_forgets_and_sweeping_drops_ended_windows() {
    let mut budgets = FailureBudgets::new(BUDGET, 100);
    budgets.failed(&1, 0);
    budgets.failed(&1, 0);
    budgets.succeeded(&1);
    budgets.failed(&1, 0);
    assert_eq!(budgets.retry_after_ms(&1, 0), None);
    budgets.failed(&2, 30_000);
    budgets.sweep(60_000);
    assert_eq!(budgets.len(), 1, "key 1's window ended, key 2's did not");
}

#[test]
fn a_flood_of_fresh_keys_stays_within_the_bound() {
    let mut budgets = FailureBudgets::new(BUDGET, 1_000);
    for key in 0..100_000u32 {
        budgets.failed(&key, u64::from(key));
        assert!(budgets.len() <= 1_000);
    }
    // The latest keys are still counted.
    for _ in 0..2 {
        budgets.failed(&99_999, 100_000);
    }
    assert!(budgets.retry_after_ms(&99_999, 100_000).is_some());
}

#[test]
fn a_flood_of_fresh_keys_does_not_wash_out_a_lockout() {
    let mut budgets = FailureBudgets::new(BUDGET, 1_000);
    for _ in 0..3 {
        budgets.failed(&u32::MAX, 0);
    }
    for key in 0..10_000u32 {
        budgets.failed(&key, 1);
    }
    assert!(budgets.retry_after_ms(&u32::MAX, 2).is_some(), "still locked out");
}

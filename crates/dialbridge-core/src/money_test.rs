use super::*;

fn m(text: &str) -> Money {
    text.parse().unwrap()
}

#[test]
fn parses_and_prints_exactly() {
    assert_eq!(m("12").ten_thousandths(), 120_000);
    assert_eq!(m("12.5").ten_thousandths(), 125_000);
    assert_eq!(m("0.0001").ten_thousandths(), 1);
    assert_eq!(m("-3.25").ten_thousandths(), -32_500);
    assert_eq!(m("12.5").to_string(), "12.5000");
    assert_eq!(m("-0.0001").to_string(), "-0.0001");
    for text in ["0.1200", "100.0000", "-7.0100"] {
        assert_eq!(m(text).to_string(), text);
    }
}

#[test]
fn rejects_what_is_not_an_exact_amount() {
    for bad in [
        "",
        "1.",
        ".5",
        "1.23456",
        "1,5",
        "1e3",
        "--1",
        "abc",
        "99999999999999999",
    ] {
        assert!(bad.parse::<Money>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn tenths_of_a_cent_do_not_drift() {
    let mut total = Money::ZERO;
    for _ in 0..10_000 {
        total = total.checked_add(m("0.0001")).unwrap();
    }
    assert_eq!(total, m("1"));
}

#[test]
fn charges_every_started_minute() {
    let rate = m("0.12");
    assert_eq!(Money::charge_per_started_minute(rate, 0), Some(Money::ZERO));
    assert_eq!(Money::charge_per_started_minute(rate, 1), Some(m("0.12")));
    assert_eq!(Money::charge_per_started_minute(rate, 60), Some(m("0.12")));
    assert_eq!(Money::charge_per_started_minute(rate, 61), Some(m("0.24")));
    assert_eq!(
        Money::charge_per_started_minute(Money::from_ten_thousandths(i64::MAX), 120),
        None
    );
}

#[test]
fn legacy_cost_has_three_places() {
    assert_eq!(m("0.12").to_legacy_cost(), "0.120");
    assert_eq!(m("0.0005").to_legacy_cost(), "0.001");
    assert_eq!(m("0.0004").to_legacy_cost(), "0.000");
    assert_eq!(m("12").to_legacy_cost(), "12.000");
    assert_eq!(Money::ZERO.to_legacy_cost(), "0.000");
}

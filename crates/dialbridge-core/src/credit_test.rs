use super::*;

fn m(text: &str) -> Money {
    text.parse().unwrap()
}

fn credit(balance: &str, credit_limit: &str, held: &str) -> Credit {
    Credit {
        balance: m(balance),
        credit_limit: m(credit_limit),
        held: m(held),
    }
}

#[test]
fn available_credit_is_balance_plus_limit_less_what_running_calls_hold() {
    assert_eq!(credit("1.00", "0", "0.24").available(), m("0.76"));
    assert_eq!(credit("0.05", "0.10", "0").available(), m("0.15"));
    assert_eq!(credit("-0.07", "0.10", "0.12").available(), m("-0.09"));
}

#[test]
fn a_call_is_admitted_only_when_a_whole_minute_can_be_held() {
    let rate = m("0.12");
    // The probe's case: 0.05 does not pay a minute at 0.12.
    assert!(!credit("0.05", "0", "0").pays_a_minute(rate));
    assert!(credit("0.12", "0", "0").pays_a_minute(rate));
    // Four agents at once against 0.12: the first holds it, the others find nothing left.
    assert!(!credit("0.12", "0", "0.12").pays_a_minute(rate));
    // A credit limit pays what the balance does not.
    assert!(credit("0.05", "0.10", "0").pays_a_minute(rate));
    assert!(!credit("0.05", "0.10", "0.12").pays_a_minute(rate));
    // A free rate still needs something available: a prepaid account at zero is exhausted.
    assert!(!credit("0", "0", "0").pays_a_minute(Money::ZERO));
    assert!(credit("0.0001", "0", "0").pays_a_minute(Money::ZERO));
}

#[test]
fn a_hold_is_whole_minutes_and_its_settlement_never_exceeds_it() {
    let rate = m("0.12");
    assert_eq!(Hold::first(Money::ZERO), None, "nothing to hold at a free rate");
    let first = Hold::first(rate).unwrap();
    assert_eq!((first.minutes, first.amount()), (1, m("0.12")));
    let second = first.extended();
    assert_eq!((second.minutes, second.amount()), (2, m("0.24")));
    // Every started minute of the bridged time...
    assert_eq!(second.settle(1), m("0.12"));
    assert_eq!(second.settle(60), m("0.12"));
    assert_eq!(second.settle(61), m("0.24"));
    assert_eq!(second.settle(0), Money::ZERO);
    // ...but a call cut at the end of its two paid minutes, whose BYE left a moment later,
    // is charged the two it held.
    assert_eq!(second.settle(121), m("0.24"));
    for seconds in 0..400 {
        let hold = Hold { rate, minutes: 3 };
        let charge = hold.settle(seconds);
        assert!(charge <= hold.amount(), "{seconds} s");
        assert_eq!(charge.ten_thousandths() % rate.ten_thousandths(), 0, "whole minutes");
    }
}

#[test]
fn a_charge_past_what_money_counts_is_the_whole_hold_never_nothing() {
    let hold = Hold {
        rate: "0.12".parse().unwrap(),
        minutes: 2,
    };
    assert_eq!(hold.settle(u64::MAX), hold.amount());
}

use super::*;

fn class_of(text: &str) -> NumberClass {
    PhoneNumber::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .class()
        .clone()
}

fn landline(area: &str) -> NumberClass {
    NumberClass::Landline {
        area_code: area.to_owned(),
    }
}

#[test]
fn classifies_mobiles_landlines_extensions() {
    assert_eq!(class_of("13800138000"), NumberClass::Mobile);
    assert_eq!(class_of("01087128906"), landline("010"));
    assert_eq!(class_of("02160001234"), landline("021"));
    assert_eq!(class_of("057187654321"), landline("0571"));
    assert_eq!(class_of("05718765432"), landline("0571"));
    assert_eq!(class_of("801"), NumberClass::Extension);
    assert_eq!(class_of("80123"), NumberClass::Extension);
    assert_eq!(class_of("0014155550100"), NumberClass::International);
    assert_eq!(class_of("4001234567"), NumberClass::Service);
    assert_eq!(class_of("+86 800 123 4567"), NumberClass::Service);
    assert_eq!(
        PhoneNumber::parse("0400 123 4567").unwrap().digits(),
        "4001234567",
        "one normal form"
    );
    assert_eq!(PhoneNumber::parse("+86 400 123 4567").unwrap().digits(), "4001234567");
}

#[test]
fn international_digits_are_the_number_without_any_trunk_prefix() {
    let international = |text: &str| PhoneNumber::parse(text).unwrap().international_digits();
    assert_eq!(international("13800138000").as_deref(), Some("8613800138000"));
    assert_eq!(international("01087128906").as_deref(), Some("861087128906"));
    assert_eq!(international("4001234567").as_deref(), Some("864001234567"));
    assert_eq!(international("+44 20 7123 4567").as_deref(), Some("442071234567"));
    assert_eq!(international("801"), None);
}

#[test]
fn strips_separators_and_the_country_prefix() {
    assert_eq!(PhoneNumber::parse("138 0013-8000").unwrap().digits(), "13800138000");
    assert_eq!(PhoneNumber::parse("+8613800138000").unwrap().digits(), "13800138000");
    assert_eq!(PhoneNumber::parse("008613800138000").unwrap().digits(), "13800138000");
    assert_eq!(PhoneNumber::parse("+86 10 8712 8906").unwrap().digits(), "01087128906");
    assert_eq!(PhoneNumber::parse("+1 415 555 0100").unwrap().digits(), "0014155550100");
}

#[test]
fn rejects_malformed_numbers() {
    for bad in [
        "",
        "12",
        "138001380001",
        "2380013800",
        "010871289",
        "010087128906",
        "abc",
        "138.0013.8000",
        "0",
        "+",
        "+860108712890",
    ] {
        assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn legacy_number_type() {
    assert_eq!(PhoneNumber::parse("13800138000").unwrap().legacy_number_type(), Some(2));
    assert_eq!(PhoneNumber::parse("01087128906").unwrap().legacy_number_type(), Some(1));
    assert_eq!(PhoneNumber::parse("801").unwrap().legacy_number_type(), None);
    assert_eq!(PhoneNumber::parse("4001234567").unwrap().legacy_number_type(), None);
}

#[test]
fn call_power_rules() {
    let mobile = PhoneNumber::parse("13800138000").unwrap();
    let beijing = PhoneNumber::parse("01087128906").unwrap();
    let abroad = PhoneNumber::parse("0014155550100").unwrap();
    let ext = PhoneNumber::parse("801").unwrap();
    let service = PhoneNumber::parse("8001234567").unwrap();
    use CallPower::*;
    let cases = [
        (All, &mobile, true),
        (All, &abroad, true),
        (All, &ext, false),
        (National, &mobile, true),
        (National, &beijing, true),
        (National, &abroad, false),
        (Local, &beijing, true),
        (Local, &mobile, false),
        (Local, &abroad, false),
        (All, &service, true),
        (National, &service, true),
        (Local, &service, false),
        (Internal, &mobile, false),
        (Internal, &beijing, false),
        (Internal, &ext, false),
    ];
    for (power, number, expected) in cases {
        assert_eq!(
            power.permits_customer(number, Some("010"), None),
            expected,
            "{power:?} {number}"
        );
    }
    assert!(!Local.permits_customer(&beijing, Some("021"), None));
    assert!(!Local.permits_customer(&beijing, None, None));
    assert!(Local.permits_customer(&mobile, Some("010"), Some(true)));
}

#[test]
fn call_power_round_trips() {
    for p in CallPower::ALL {
        assert_eq!(CallPower::parse(p.as_str()), Ok(p));
    }
    assert_eq!(CallPower::parse("everything").unwrap_err().field, "call_power");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any text: a number or a refusal, never a panic; a number's digits parse to itself.
        #[test]
        fn any_text_classifies_or_is_refused(text in "\\PC{0,40}") {
            if let Ok(number) = PhoneNumber::parse(&text) {
                let again = PhoneNumber::parse(number.digits()).unwrap();
                prop_assert_eq!(again.class(), number.class());
            }
            let _ = crate::Cno::parse(&text);
            let _ = text.parse::<crate::Money>();
            let _ = crate::validate_caller_id(&text);
        }

        /// Number-like text: prefixes, separators, every length.
        #[test]
        fn number_like_text_never_panics(text in "(\\+86|0086|86)?[0-9 \\-()]{0,24}") {
            if let Ok(number) = PhoneNumber::parse(&text) {
                prop_assert!(number.digits().chars().all(|c| c.is_ascii_digit()));
            }
        }

        /// Any number, as dialled from anywhere: classified, priced and written for a trunk
        /// without a panic (the numbering metadata is a third party's parser fed user input).
        #[test]
        fn any_number_classifies_prices_and_is_written(text in "(\\+|00)?[0-9]{3,20}") {
            if let Ok(number) = PhoneNumber::parse(&text) {
                let destination = crate::Destination::of(&number);
                if let Some(international) = number.international_digits() {
                    prop_assert!(international.chars().all(|c| c.is_ascii_digit()));
                } else {
                    prop_assert_eq!(destination, crate::Destination::Extension);
                }
                let rates = crate::DestinationRates::parse("1=0.10,44=0.20,86=0.01,882=5").unwrap();
                let _ = rates.rate_for(&number);
                for style in ["national", "plus", "zeros", "e164", "national,mobile-prefix=0,add=17909"] {
                    let written = crate::NumberFormat::parse(style).unwrap().apply(&number);
                    prop_assert!(!written.is_empty());
                }
            }
        }
    }
}

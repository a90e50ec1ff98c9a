use super::*;

fn destination(text: &str) -> Destination {
    Destination::of(&PhoneNumber::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")))
}

fn country(code: &str) -> Country {
    Country::parse(code).unwrap()
}

fn special(class: SpecialClass, country_code: Option<&str>, calling_code: u16) -> Destination {
    Destination::Special {
        class,
        country: country_code.map(country),
        calling_code,
    }
}

/// The numbers an outside probe placed under call power `all` at the flat rate.
const PROBES: [&str; 8] = [
    "+88216123456",
    "+881631234567",
    "+1 900 555 1234",
    "0090 900 123 4567",
    "+44 909 123 4567",
    "+675 7012 3456",
    "+247 41234",
    "00000000000",
];

#[test]
fn classifies_the_toll_fraud_probes() {
    let expected = [
        special(SpecialClass::Satellite, None, 882),
        special(SpecialClass::Satellite, None, 881),
        special(SpecialClass::Premium, Some("US"), 1),
        special(SpecialClass::Premium, Some("TR"), 90),
        special(SpecialClass::Premium, Some("GB"), 44),
        Destination::International { country: country("PG") },
        Destination::International { country: country("AC") },
        Destination::Invalid,
    ];
    for (probe, expected) in PROBES.iter().zip(expected) {
        assert_eq!(destination(probe), expected, "{probe}");
    }
}

#[test]
fn classifies_home_numbers_by_the_legacy_rules_and_singles_out_special_ones() {
    assert_eq!(destination("13800138000"), Destination::Domestic(DomesticKind::Mobile));
    assert_eq!(
        destination("+86 138 0013 8000"),
        Destination::Domestic(DomesticKind::Mobile)
    );
    assert_eq!(
        destination("01087128906"),
        Destination::Domestic(DomesticKind::Landline)
    );
    assert_eq!(destination("8001234567"), Destination::Domestic(DomesticKind::Service));
    assert_eq!(
        destination("+86 400 123 4567"),
        special(SpecialClass::SharedCost, Some("CN"), 86)
    );
    assert_eq!(destination("801"), Destination::Extension);
}

#[test]
fn classifies_ordinary_and_special_numbers_abroad() {
    assert_eq!(
        destination("+33 6 12 34 56 78"),
        Destination::International { country: country("FR") }
    );
    assert_eq!(
        destination("+1 212 555 1234"),
        Destination::International { country: country("US") }
    );
    assert_eq!(
        destination("+44 70 1234 5678"),
        special(SpecialClass::NonGeographic, Some("GB"), 44)
    );
    assert_eq!(
        destination("+870 773 111 222"),
        special(SpecialClass::Satellite, None, 870)
    );
    assert_eq!(destination("+979 1234 5678"), special(SpecialClass::Premium, None, 979));
    assert_eq!(
        destination("+883 5100 1234 5678"),
        special(SpecialClass::NonGeographic, None, 883)
    );
    // What the parser would take for a national prefix after the country code still reaches
    // the carrier: the number dialled is not the one the metadata would classify.
    assert_eq!(destination("+44 0 909 123 4567"), Destination::Invalid);
    assert_eq!(destination("+1 1 900 555 1234"), Destination::Invalid);
    // Digits the country's plan does not allocate, and a calling code nobody has.
    assert_eq!(destination("+675 1234"), Destination::Invalid);
    assert_eq!(destination("+2474123"), Destination::Invalid);
    assert_eq!(destination("00 999 1234 5678"), Destination::Invalid);
}

#[test]
fn the_default_policy_is_domestic_only() {
    let policy = DestinationPolicy::default();
    for probe in PROBES {
        assert!(!policy.permits(&destination(probe)), "{probe} allowed");
    }
    assert!(!policy.permits(&destination("+33612345678")));
    assert!(!policy.permits(&destination("4001234567")));
    for home in ["13800138000", "01087128906", "8001234567", "801"] {
        assert!(policy.permits(&destination(home)), "{home} refused");
    }
}

#[test]
fn a_special_class_abroad_needs_its_class_and_its_country() {
    let gb_only = DestinationPolicy::parse("GB", "").unwrap();
    assert!(gb_only.permits(&destination("+442071234567")));
    assert!(
        !gb_only.permits(&destination("+449091234567")),
        "premium needs its class"
    );
    assert!(!gb_only.permits(&destination("+33612345678")));

    let gb_premium = DestinationPolicy::parse("GB", "premium").unwrap();
    assert!(gb_premium.permits(&destination("+449091234567")));
    assert!(
        !gb_premium.permits(&destination("+19005551234")),
        "premium in a country not allowed"
    );
    assert!(
        gb_premium.permits(&destination("+97912345678")),
        "international premium (+979) has no country to allow"
    );

    let satellite = DestinationPolicy::parse("", "satellite").unwrap();
    assert!(satellite.permits(&destination("+881631234567")), "no country to allow");
    assert!(
        satellite.permits(&destination("+88216123456")),
        "Thuraya is a satellite network"
    );
    assert!(!satellite.permits(&destination("+883 5100 1234 5678")), "+883 is not");
    assert!(!satellite.permits(&destination("+33612345678")));

    let shared_cost = DestinationPolicy::parse("", "shared_cost").unwrap();
    assert!(
        shared_cost.permits(&destination("4001234567")),
        "home special needs no country"
    );

    let everywhere = DestinationPolicy::parse("*", "premium,satellite,shared_cost,non_geographic").unwrap();
    for probe in &PROBES[..7] {
        assert!(everywhere.permits(&destination(probe)), "{probe} refused");
    }
    assert!(
        !everywhere.permits(&destination("00000000000")),
        "an invalid number is never allowed"
    );
}

#[test]
fn policy_words_round_trip_and_bad_words_are_named() {
    let policy = DestinationPolicy::parse(" us, gb ,GB", "premium, satellite").unwrap();
    assert_eq!(policy.countries_text(), "GB,US");
    assert_eq!(policy.classes_text(), "premium,satellite");
    assert_eq!(
        DestinationPolicy::parse(&policy.countries_text(), &policy.classes_text()).unwrap(),
        policy
    );
    assert_eq!(DestinationPolicy::parse("*", "").unwrap().countries_text(), "*");
    assert_eq!(DestinationPolicy::parse("", "").unwrap(), DestinationPolicy::default());
    for (countries, classes) in [
        ("XX", ""),
        ("GBR", ""),
        ("*,GB", ""),
        ("", "toll_fraud"),
        ("", "PREMIUM"),
    ] {
        assert!(
            DestinationPolicy::parse(countries, classes).is_err(),
            "{countries:?} {classes:?} accepted"
        );
    }
}

fn money(text: &str) -> Money {
    text.parse().unwrap()
}

#[test]
fn the_longest_prefix_sets_the_rate() {
    let rates = DestinationRates::parse("44=0.30, +4420=0.25, 1900=2.50, 86=0.05, 86138=0.08").unwrap();
    let rate = |text: &str| rates.rate_for(&PhoneNumber::parse(text).unwrap());
    assert_eq!(rate("+44 20 7123 4567"), Some(money("0.25")));
    assert_eq!(rate("+44 161 123 4567"), Some(money("0.30")));
    assert_eq!(rate("+1 900 555 1234"), Some(money("2.50")));
    assert_eq!(rate("+1 212 555 1234"), None);
    assert_eq!(rate("13800138000"), Some(money("0.08")));
    assert_eq!(rate("13900139000"), Some(money("0.05")));
    assert_eq!(rate("01087128906"), Some(money("0.05")), "a landline loses its trunk 0");
    assert_eq!(rate("801"), None);
    assert_eq!(
        rates.to_string(),
        "1900=2.5000,44=0.3000,4420=0.2500,86=0.0500,86138=0.0800"
    );
    assert_eq!(DestinationRates::parse(&rates.to_string()).unwrap(), rates);
}

#[test]
fn bad_rate_tables_are_refused_with_the_entry_named() {
    for bad in [
        "44",
        "44=abc",
        "=0.30",
        "4a=0.30",
        "1234567890123456=0.30",
        "44=-1",
        "44=10001",
        "44=0.30,+44=0.20",
        "0044=0.30",
    ] {
        let err = DestinationRates::parse(bad).expect_err(bad);
        assert_eq!(err.field, "destination_rates", "{bad}");
        let (entry, _) = bad.rsplit(',').next().unwrap().split_once('=').unwrap_or((bad, ""));
        let named = entry.trim_start_matches('+');
        assert!(err.reason.contains(named), "{bad}: {}", err.reason);
    }
    let too_many = (0..=MAX_DESTINATION_RATES).map(|i| (format!("{}", 100_000 + i), Money::ZERO));
    let owned: Vec<(String, Money)> = too_many.collect();
    assert!(DestinationRates::new(owned.iter().map(|(p, r)| (p.as_str(), *r))).is_err());
    assert_eq!(DestinationRates::parse("").unwrap(), DestinationRates::default());
}

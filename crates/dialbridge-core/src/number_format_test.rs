use super::*;

fn written(spec: &str, number: &str) -> String {
    NumberFormat::parse(spec)
        .unwrap()
        .apply(&PhoneNumber::parse(number).unwrap())
}

#[test]
fn the_default_writes_numbers_as_normalised() {
    assert!(NumberFormat::parse("").unwrap().is_identity());
    assert_eq!(written("", "+86 138 0013 8000"), "13800138000");
    assert_eq!(written("", "02160001234"), "02160001234");
    assert_eq!(written("national", "0086 21 6000 1234"), "02160001234");
}

#[test]
fn international_styles_drop_the_trunk_prefix_and_add_the_country_code() {
    assert_eq!(written("plus", "13800138000"), "+8613800138000");
    assert_eq!(written("plus", "02160001234"), "+862160001234");
    assert_eq!(written("zeros", "13800138000"), "008613800138000");
    assert_eq!(written("plus", "4001234567"), "+864001234567");
    assert_eq!(written("national", "+86 400 123 4567"), "4001234567");
    assert_eq!(written("e164", "01087128906"), "861087128906");
    // A foreign number keeps its own country code.
    assert_eq!(written("plus", "0014155550100"), "+14155550100");
    assert_eq!(written("e164", "0014155550100"), "14155550100");
}

#[test]
fn a_mobile_prefix_applies_to_mobiles_only() {
    assert_eq!(written("mobile-prefix=0", "13800138000"), "013800138000");
    assert_eq!(written("mobile-prefix=0", "02160001234"), "02160001234");
}

#[test]
fn strip_then_add() {
    assert_eq!(written("strip=021", "02160001234"), "60001234");
    assert_eq!(written("strip=021", "01087128906"), "01087128906");
    assert_eq!(written("add=17909", "13800138000"), "1790913800138000");
    assert_eq!(written("e164,strip=86,add=0", "13800138000"), "013800138000");
    assert_eq!(
        written("national,mobile-prefix=0,strip=0,add=9", "13800138000"),
        "913800138000"
    );
}

#[test]
fn extensions_are_never_rewritten() {
    assert_eq!(written("plus", "801"), "801");
}

#[test]
fn specs_round_trip_through_their_canonical_form() {
    for spec in [
        "",
        "plus",
        "zeros,add=9",
        "e164,strip=86",
        "mobile-prefix=0,strip=1,add=17909",
    ] {
        let format = NumberFormat::parse(spec).unwrap();
        assert_eq!(format.to_string(), spec);
        assert_eq!(NumberFormat::parse(&format.to_string()).unwrap(), format);
    }
    assert_eq!(NumberFormat::parse(" national , add=9 ").unwrap().to_string(), "add=9");
}

#[test]
fn bad_specs_are_refused_with_the_reason() {
    for (spec, why) in [
        ("plus,zeros", "more than one style"),
        ("mobile-prefix=0,plus", "national style only"),
        ("add=", "1-10 digits"),
        ("add=+86", "1-10 digits"),
        ("strip=12345678901", "1-10 digits"),
        ("international", "unknown item"),
        ("add:9", "unknown item"),
    ] {
        let e = NumberFormat::parse(spec).unwrap_err();
        assert_eq!(e.field, "number_format");
        assert!(e.reason.contains(why), "{spec}: {}", e.reason);
    }
}

#[test]
fn text_that_is_not_a_number_is_left_alone() {
    let plus = NumberFormat::parse("plus").unwrap();
    assert_eq!(plus.apply_to_text("13800138000"), "+8613800138000");
    assert_eq!(plus.apply_to_text("not-a-number"), "not-a-number");
}

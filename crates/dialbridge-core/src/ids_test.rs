use super::*;

#[test]
fn enterprise_id_is_seven_digits() {
    assert_eq!(EnterpriseId::parse("3000001").map(i64::from), Ok(3000001));
    for bad in ["300000", "30000011", "0300000", "30000a1", "", " 3000001"] {
        assert!(EnterpriseId::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert!(EnterpriseId::new(999_999).is_err());
    assert!(EnterpriseId::new(10_000_000).is_err());
}

#[test]
fn cno_is_four_to_six_digits() {
    for good in ["2000", "0123", "123456"] {
        assert_eq!(Cno::parse(good).map(|c| c.to_string()), Ok(good.to_owned()));
    }
    for bad in ["200", "1234567", "20a0", "", "-200"] {
        let err = Cno::parse(bad).expect_err(bad);
        assert_eq!(err.field, "cno");
    }
}

#[test]
fn extension_is_three_to_five_digits() {
    assert!(ExtensionNumber::parse("801").is_ok());
    assert!(ExtensionNumber::parse("80123").is_ok());
    assert!(ExtensionNumber::parse("80").is_err());
    assert!(ExtensionNumber::parse("801234").is_err());
    assert!(ExtensionNumber::parse("8x1").is_err());
}

#[test]
fn node_name_has_no_dash() {
    assert!(NodeName::parse("dialbridge1").is_ok());
    assert!(NodeName::parse("node_2.eu").is_ok());
    assert!(NodeName::parse("dial-bridge").is_err());
    assert!(NodeName::parse("").is_err());
    assert!(NodeName::parse(&"a".repeat(65)).is_err());
}

use super::*;

#[test]
fn aor_form() {
    let e = EnterpriseId::new(3000001).unwrap();
    let x = ExtensionNumber::parse("801").unwrap();
    assert_eq!(extension_aor(e, &x), "3000001-801");
    assert_eq!(parse_aor("3000001-801"), Some((e, x)));
    for bad in ["801", "3000001_801", "300-801", "3000001-8", "3000001-801-2"] {
        assert_eq!(parse_aor(bad), None, "{bad}");
    }
}

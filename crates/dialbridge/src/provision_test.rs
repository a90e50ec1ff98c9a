use super::*;

fn parse_err(text: &str) -> String {
    match parse("f.toml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const BASE: &str = "[[enterprise]]\nid = 3000001\nname = \"Acme\"\n";

#[test]
fn errors_name_line_and_key() {
    let dup = format!("{BASE}[[enterprise.agent]]\ncno = \"2000\"\nname = \"A\"\n[[enterprise.agent]]\ncno = \"2000\"\nname = \"B\"\n");
    let err = parse_err(&dup);
    assert!(
        err.contains("f.toml:7:") && err.contains("agent[1].cno") && err.contains("duplicate cno 2000"),
        "{err}"
    );

    let err = parse_err(&format!("{BASE}colour = \"blue\"\n"));
    assert!(
        err.contains("unknown field `colour`") && err.contains("f.toml:4:"),
        "{err}"
    );

    let err = parse_err(&format!(
        "{BASE}[[enterprise.number]]\nnumber = \"12ab\"\ntrunk = \"t\"\n"
    ));
    assert!(err.contains("number[0].number"), "{err}");

    let err = parse_err(&format!("{BASE}[[enterprise.agent]]\ncno = \"20\"\nname = \"A\"\n"));
    assert!(err.contains("agent[0].cno") && err.contains("4-6 digits"), "{err}");

    let err = parse_err("[[enterprise]]\nid = 42\nname = \"x\"\n");
    assert!(err.contains("enterprise[0] (42).id"), "{err}");

    let err = parse_err(&format!("{BASE}time_zone = \"Nowhere/Land\"\n"));
    assert!(err.contains("time_zone"), "{err}");

    let err = parse_err(&format!("{BASE}blacklist = [\"abc*\"]\n"));
    assert!(err.contains("blacklist[0]"), "{err}");

    let err = parse_err("[[trunk]]\nname = \"t\"\naddress = \"nowhere\"\n");
    assert!(err.contains("trunk[0] (t).address"), "{err}");

    let two = format!("{BASE}[[enterprise.number]]\nnumber = \"02160001234\"\ntrunk = \"t\"\n[[enterprise]]\nid = 3000002\nname = \"B\"\n[[enterprise.number]]\nnumber = \"021-6000-1234\"\ntrunk = \"t\"\n");
    let err = parse_err(&two);
    assert!(err.contains("listed twice"), "{err}");
}

#[test]
fn defaults_fill_what_the_file_omits() {
    let desired = parse("f.toml", BASE).unwrap();
    assert_eq!(desired.enterprises[0].settings, EnterpriseSettings::new("Acme"));
}

#[test]
fn money_settings_are_bounded_and_a_zero_cap_means_none() {
    let settings = |extra: &str| {
        parse("f.toml", &format!("{BASE}{extra}\n")).unwrap().enterprises[0]
            .settings
            .clone()
    };
    assert_eq!(settings("max_call_minutes = 0").max_call_minutes, None);
    assert_eq!(settings("max_call_minutes = 90").max_call_minutes, Some(90));
    assert_eq!(
        settings("credit_limit = \"1000000000\"").credit_limit,
        dialbridge_core::MAX_AMOUNT
    );
    let err = parse_err(&format!("{BASE}credit_limit = \"1000000000.0001\"\n"));
    assert!(err.contains("credit_limit"), "{err}");
    let err = parse_err(&format!("{BASE}rate_per_minute = \"10000.0001\"\n"));
    assert!(err.contains("rate_per_minute"), "{err}");
}

use super::*;
use dialbridge_core::Money;

#[test]
fn durations_and_costs() {
    assert_eq!(hms(0), "00:00:00");
    assert_eq!(hms(3_725), "01:02:05");
    assert_eq!(Money::from_ten_thousandths(1_200).to_legacy_cost(), "0.120");
    assert_eq!(
        local(Some(1_700_000_000_000), chrono_tz::Asia::Shanghai),
        "2023-11-15 06:13:20"
    );
    assert_eq!(local(None, chrono_tz::Asia::Shanghai), "");
}

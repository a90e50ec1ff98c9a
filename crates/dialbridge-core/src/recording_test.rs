use super::*;

#[test]
fn the_name_carries_the_local_start_and_its_second_field_starts_with_the_day() {
    let enterprise = EnterpriseId::new(3000001).unwrap();
    // 2026-12-01 02:30:00 UTC is 10:30 in Shanghai and still the 30th of November in New York.
    let at = 1_796_092_200_000;
    let name = recording_name(enterprise, "Asia/Shanghai", at, "13800138000", "n1-1796092200.7");
    assert_eq!(name.file_name, "3000001-20261201103000-13800138000-n1-1796092200.7.wav");
    assert_eq!(name.day, "20261201");
    assert_eq!(&name.file_name.split('-').nth(1).unwrap()[..8], name.day);
    let west = recording_name(enterprise, "America/New_York", at, "13800138000", "u");
    assert_eq!(west.day, "20261130");
    let bad_zone = recording_name(enterprise, "Nowhere/At_All", at, "13800138000", "u");
    assert_eq!(bad_zone.day, "20261201");
}

#[test]
fn nothing_outside_the_file_name_alphabet_gets_in() {
    let name = recording_name(EnterpriseId::new(3000001).unwrap(), "UTC", 0, "../+86 138", "a/b\\c");
    assert_eq!(name.file_name, "3000001-19700101000000-..86138-abc.wav");
}

#[test]
fn an_agents_own_setting_wins() {
    let mut enterprise = EnterpriseSettings::new("e");
    enterprise.recording = RecordingMode::FromBridge;
    let mut agent = AgentSettings::new("a");
    assert_eq!(mode_for(&enterprise, &agent), RecordingMode::FromBridge);
    agent.recording = Some(RecordingMode::Off);
    assert_eq!(mode_for(&enterprise, &agent), RecordingMode::Off);
}

#[test]
fn record_file_is_the_name_or_its_download_url() {
    let name = "3000001-20261201103000-13800138000-n1-1.1.wav";
    assert_eq!(
        shown_record_file(RecordFileForm::Name, Some("https://c.example.com"), name),
        name
    );
    assert_eq!(
        shown_record_file(RecordFileForm::Url, Some("https://c.example.com/"), name),
        format!("https://c.example.com/20261201/{name}")
    );
    assert_eq!(
        shown_record_file(RecordFileForm::Url, None, name),
        name,
        "no origin configured"
    );
    assert_eq!(
        shown_record_file(RecordFileForm::Url, Some("https://c.example.com"), ""),
        ""
    );
}

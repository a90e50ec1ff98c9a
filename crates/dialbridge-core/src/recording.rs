//! Which calls are recorded and what their files are called (the legacy contract's §7):
//! `<enterpriseId>-<YYYYMMDDHHMMSS>-<customerNumber>-<uniqueId>.wav`, the date-time being the
//! CDR's `startTime` in the enterprise's time zone, so its first eight digits are the
//! `{YYYYMMDD}` of the download URL (clients take `name.split('-')[1][:8]`).

use chrono::TimeZone;

use crate::{AgentSettings, EnterpriseId, EnterpriseSettings, RecordFileForm, RecordingMode};

/// The agent's own setting, else the enterprise's.
pub fn mode_for(enterprise: &EnterpriseSettings, agent: &AgentSettings) -> RecordingMode {
    agent.recording.unwrap_or(enterprise.recording)
}

/// A call's recording file: its day (`YYYYMMDD`) and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingName {
    pub day: String,
    pub file_name: String,
}

/// The name of the recording of the call `unique_id` to `customer_number`, started at
/// `started_ms` (unix milliseconds), in the enterprise's `time_zone` (Asia/Shanghai when it is
/// no IANA zone, as the CDR's times are shown).
pub fn recording_name(
    enterprise: EnterpriseId,
    time_zone: &str,
    started_ms: i64,
    customer_number: &str,
    unique_id: &str,
) -> RecordingName {
    let zone: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let stamp = zone
        .timestamp_millis_opt(started_ms)
        .single()
        .map(|t| t.format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_else(|| "19700101000000".to_owned());
    let safe = |text: &str| -> String {
        text.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .collect()
    };
    RecordingName {
        day: stamp[..8].to_owned(),
        file_name: format!("{enterprise}-{stamp}-{}-{}.wav", safe(customer_number), safe(unique_id)),
    }
}

/// `recordFile` as an enterprise wants it: the bare name, or with `RecordFileForm::Url` its
/// legacy download URL at the server's `public_origin` (the name when none is configured: a
/// URL the server cannot vouch for is worse than none). Empty stays empty (not recorded).
pub fn shown_record_file(form: RecordFileForm, public_origin: Option<&str>, file_name: &str) -> String {
    match (form, public_origin) {
        (RecordFileForm::Url, Some(origin)) if !file_name.is_empty() => {
            let day = file_name
                .split('-')
                .nth(1)
                .and_then(|stamp| stamp.get(..8))
                .unwrap_or("");
            format!("{}/{day}/{file_name}", origin.trim_end_matches('/'))
        }
        _ => file_name.to_owned(),
    }
}

#[cfg(test)]
#[path = "recording_test.rs"]
mod tests;

//! The Prometheus registry every part of the server registers its metrics in.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry};

pub struct Metrics {
    registry: Registry,
    pub start_time_seconds: Gauge,
    pub calls_active: Gauge,
    pub sip_legs: Gauge,
    pub sip_dialogs: Gauge,
    pub rtp_port_pairs: Gauge,
    /// Totals kept by the SIP stack, copied in.
    pub sip_unsolicited_answered: Counter,
    pub sip_unsolicited_dropped: Counter,
    /// REGISTERs refused, by reason (label `reason`: unknown_user, wrong_password, ...).
    pub sip_registrations_refused: Family<Vec<(String, String)>, Counter>,
    pub sip_requests_from_wrong_source: Counter,
    /// Password hashes evaluated for HTTP logins (agents' passwords).
    pub http_password_checks: Counter,
    /// HTTP authentications refused without being evaluated (their source failed too often).
    pub http_auth_throttled: Counter,
    /// HTTP authentications refused because the password hash's queue was full.
    pub http_auth_busy: Counter,
    /// Calls ended, by end reason (label `reason`, as the CDR's `end_reason`).
    pub calls_ended: Family<Vec<(String, String)>, Counter>,
    /// Recordings finished and kept (named in their CDR).
    pub recordings_kept: Counter,
    /// Stretches of silence in kept recordings where the recorder fell behind.
    pub recording_gaps: Counter,
    /// Recordings whose recorder had not finished the file when the call closed (counted as
    /// kept too once finished).
    pub recordings_late: Counter,
    /// Totals kept by the recorder, copied in.
    pub recording_files_not_created: Counter,
    pub recording_files_cut_short: Counter,
    /// Per watched trunk (label `trunk`): 1 while it answers keepalive OPTIONS, 0 while down.
    pub trunk_up: TrunkGauges,
    /// Per registering trunk: 1 while our registration with the carrier holds.
    pub trunk_registered: TrunkGauges,
}

pub type TrunkGauges = Family<Vec<(String, String)>, Gauge>;

impl Metrics {
    pub fn new(node_name: &str) -> Self {
        let mut registry = Registry::with_prefix("dialbridge");
        registry.register(
            "build",
            "Version and node name of this server",
            Info::new(vec![
                ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
                ("node".to_owned(), node_name.to_owned()),
            ]),
        );
        let mut register = Registered(&mut registry);
        let metrics = Self {
            sip_unsolicited_answered: register.metric(
                "sip_unsolicited_answered",
                "Requests outside our dialogs (scanners, calls to a caller id) refused with an answer",
            ),
            sip_unsolicited_dropped: register.metric(
                "sip_unsolicited_dropped",
                "Requests outside our dialogs dropped unanswered: their source exceeded its rate",
            ),
            sip_registrations_refused: register.metric(
                "sip_registrations_refused",
                "REGISTERs refused, by reason: unknown user, wrong password, stale or bad nonce, unsupported challenge, locked out, wrong To user, malformed",
            ),
            sip_requests_from_wrong_source: register.metric(
                "sip_requests_from_wrong_source",
                "Requests inside a call on a trunk refused (403) for not coming from the trunk's addresses",
            ),
            http_password_checks: register.metric(
                "http_password_checks",
                "Password hashes evaluated for HTTP logins (agents' passwords, unknown accounts included)",
            ),
            http_auth_throttled: register.metric(
                "http_auth_throttled",
                "HTTP authentications refused unevaluated: the source failed too often for that account",
            ),
            http_auth_busy: register.metric(
                "http_auth_busy",
                "HTTP authentications refused because the password hash's queue was full",
            ),
            calls_ended: register.metric("calls_ended", "Calls ended, by end reason (the CDR's end_reason)"),
            recordings_kept: register.metric(
                "recordings_kept",
                "Calls' recordings finished and kept (one recovered after a crash is not counted)",
            ),
            recording_gaps: register.metric(
                "recording_gaps",
                "Stretches of silence in kept recordings where the recorder fell behind (each in its sidecar's gaps)",
            ),
            recordings_late: register.metric(
                "recordings_late",
                "Recordings not finished when their call closed: the CDR names the file once done (and it counts as kept then)",
            ),
            recording_files_not_created: register.metric(
                "recording_files_not_created",
                "Recordings whose file could not be created: those calls were not recorded",
            ),
            recording_files_cut_short: register.metric(
                "recording_files_cut_short",
                "Recordings whose file could not be written to the end (a full disk): each keeps what was written",
            ),
            trunk_up: register.metric(
                "trunk_up",
                "1 while a trunk with a keepalive answers OPTIONS, 0 while calls skip it",
            ),
            trunk_registered: register.metric(
                "trunk_registered",
                "1 while a registering trunk's registration with its carrier holds",
            ),
            start_time_seconds: register.metric("start_time_seconds", "Unix time at which this server started"),
            calls_active: register.metric("calls_active", "Calls running now"),
            sip_legs: register.metric("sip_legs", "Outgoing SIP legs alive"),
            sip_dialogs: register.metric("sip_dialogs", "SIP dialogs held by the stack"),
            rtp_port_pairs: register.metric("rtp_port_pairs", "RTP/RTCP port pairs in use"),
            registry,
        };
        // Every reason shows from the start, at 0, so a dashboard's rate has a series to read.
        for refusal in dialbridge_engine::RegistrationRefusal::ALL {
            metrics
                .sip_registrations_refused
                .get_or_create(&refusal_labels(refusal))
                .inc_by(0);
        }
        metrics
    }

    /// Copies the SIP stack's totals of refused REGISTERs in.
    pub fn set_registrations_refused(&self, totals: &[u64; dialbridge_engine::RegistrationRefusal::ALL.len()]) {
        for refusal in dialbridge_engine::RegistrationRefusal::ALL {
            self.sip_registrations_refused
                .get_or_create(&refusal_labels(refusal))
                .inner()
                .store(totals[refusal.index()], std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Copies the recorder's totals in.
    pub fn set_recorder_totals(&self, totals: dialbridge_recording::RecorderTotals) {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.recording_files_not_created
            .inner()
            .store(totals.files_not_created, relaxed);
        self.recording_files_cut_short
            .inner()
            .store(totals.files_cut_short, relaxed);
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn refusal_labels(refusal: dialbridge_engine::RegistrationRefusal) -> Vec<(String, String)> {
    vec![("reason".to_owned(), refusal.as_str().to_owned())]
}

/// Registers metrics and hands back the handle the server updates.
struct Registered<'a>(&'a mut Registry);

impl Registered<'_> {
    fn metric<M: Metric + Clone + Default>(&mut self, name: &str, help: &str) -> M {
        let metric = M::default();
        self.0.register(name, help, metric.clone());
        metric
    }
}

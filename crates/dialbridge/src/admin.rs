//! `dialbridge admin …`: the operator's commands over the store. Every value is parsed by the
//! domain's own rules in clap's value parsers, so a bad value is reported with the flag that
//! carried it. `--json` prints machine-readable results for scripts.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use dialbridge_core::agent::AgentState;
use dialbridge_core::{
    AgentSettings, BlacklistPattern, CallPower, CallerId, Cno, Destination, DestinationPolicy, DestinationRates,
    Enterprise, EnterpriseId, EnterpriseSettings, EnterpriseStatus, ExtensionNumber, Money, NumberFormat, NumberLimit,
    PushCharset, PushFormat, PushMethod, PushOrder, PushTarget, PushType, RecordFileForm, RecordingMode, SipAddress,
    Transport, Trunk, ValidationError,
};
use dialbridge_store::{AgentRecord, Store, TrunkRecord, Tx};
use serde_json::{json, Value};

use crate::config::Config;

#[derive(Args)]
pub struct AdminArgs {
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Enterprises (tenants).
    #[command(subcommand)]
    Enterprise(Box<EnterpriseCommand>),
    /// An enterprise's admin accounts (the legacy `userName` + password).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Extensions: the SIP identities phones register as.
    #[command(subcommand)]
    Extension(ExtensionCommand),
    /// SIP trunks to carriers.
    #[command(subcommand)]
    Trunk(TrunkCommand),
    /// Caller-id numbers an enterprise owns.
    #[command(subcommand)]
    Number(NumberCommand),
    /// An enterprise's outbound blacklist.
    #[command(subcommand)]
    Blacklist(BlacklistCommand),
    /// Where an enterprise's events are pushed.
    #[command(subcommand, name = "push-target")]
    PushTarget(PushTargetCommand),
    /// Prepaid balance.
    #[command(subcommand)]
    Balance(BalanceCommand),
    /// Push deliveries: list them (pending, delivered, dead) and replay one.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Refused PreviewOutcall requests, newest first: why did a CRM get its `res`?
    #[command(subcommand)]
    Attempts(AttemptsCommand),
    /// Call detail records, newest first, with why each call ended and what it cost.
    #[command(subcommand)]
    Cdr(CdrCommand),
    /// Call recordings: the consent announcement, deletion, who accessed one.
    #[command(subcommand)]
    Recording(RecordingCommand),
}

#[derive(Subcommand)]
enum RecordingCommand {
    /// The announcement played to both parties before a recorded call is bridged.
    #[command(subcommand)]
    Announcement(AnnouncementCommand),
    /// Deletes a call's recording (its file and sidecar); the deletion is recorded.
    Delete {
        #[arg(long)]
        unique_id: String,
        /// Why (kept with the deletion).
        #[arg(long, default_value = "deleted by an operator")]
        reason: String,
    },
    /// Who downloaded or deleted a call's recording, oldest first.
    Accesses {
        #[arg(long)]
        unique_id: String,
    },
}

#[derive(Subcommand)]
enum AnnouncementCommand {
    /// Sets it from a WAV file (any rate, channels, PCM or float: converted to 8 kHz mono;
    /// refused with the reason when it cannot be used).
    Set {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Removes it: recorded calls are bridged at once.
    Clear {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
    },
}

#[derive(Subcommand)]
enum CdrCommand {
    List {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        /// Only this call.
        #[arg(long)]
        unique_id: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    List {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        /// pending, delivered or dead; all when omitted.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Sends a delivery again (after a receiver was fixed).
    Replay {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        event: i64,
        #[arg(long)]
        target: String,
    },
}

#[derive(Subcommand)]
enum AttemptsCommand {
    /// Refused PreviewOutcalls, newest first: each one refused after authentication; those
    /// before it counted per source, cno, res and minute (`count`, with the first as sample).
    List {
        /// Only this enterprise's (else all, with those that named none).
        #[arg(long, value_parser = enterprise_id)]
        enterprise: Option<EnterpriseId>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn enterprise_id(s: &str) -> Result<EnterpriseId, ValidationError> {
    EnterpriseId::parse(s)
}
fn cno(s: &str) -> Result<Cno, ValidationError> {
    Cno::parse(s)
}
fn extension(s: &str) -> Result<ExtensionNumber, ValidationError> {
    ExtensionNumber::parse(s)
}
fn money(s: &str) -> Result<Money, ValidationError> {
    s.parse()
}
/// A sum moved at once: within [`MAX_AMOUNT`](dialbridge_core::MAX_AMOUNT) either way.
fn amount(s: &str) -> Result<Money, ValidationError> {
    let amount: Money = s.parse()?;
    let most = dialbridge_core::MAX_AMOUNT;
    if amount > most || amount < Money::ZERO.saturating_sub(most) {
        return Err(ValidationError::new("amount", format!("must be within ±{most}")));
    }
    Ok(amount)
}
fn call_power(s: &str) -> Result<CallPower, ValidationError> {
    CallPower::parse(s)
}
fn sip_address(s: &str) -> Result<SipAddress, ValidationError> {
    SipAddress::parse("address", s)
}
fn number_limit(s: &str) -> Result<NumberLimit, ValidationError> {
    let err = || ValidationError::new("number_limit", format!("{s:?} is not COUNT/MINUTES, e.g. 3/60"));
    let (count, window) = s.split_once('/').ok_or_else(err)?;
    Ok(NumberLimit {
        count: count.parse().map_err(|_| err())?,
        window_minutes: window.parse().map_err(|_| err())?,
    })
}
fn mapping(s: &str) -> Result<(String, String), ValidationError> {
    s.split_once('=')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| ValidationError::new("map", format!("{s:?} is not CRM_NAME=VARIABLE")))
}
fn bool_flag(s: &str) -> Result<bool, ValidationError> {
    match s {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ValidationError::new("flag", format!("{s:?} is not true or false"))),
    }
}

#[derive(Args)]
struct EnterpriseFields {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    status: Option<EnterpriseStatus>,
    /// IANA time zone (default Asia/Shanghai).
    #[arg(long)]
    time_zone: Option<String>,
    /// Price of an outbound minute, e.g. 0.12.
    #[arg(long, value_parser = money)]
    rate_per_minute: Option<Money>,
    /// How far below zero the balance may go (post-paid credit), e.g. 50; 0: prepaid.
    #[arg(long, value_parser = money)]
    credit_limit: Option<Money>,
    /// The longest a bridged call may last, in minutes; 0 removes the cap.
    #[arg(long)]
    max_call_minutes: Option<u32>,
    #[arg(long, value_parser = bool_flag)]
    outbound_enabled: Option<bool>,
    #[arg(long, value_parser = bool_flag)]
    interface_enabled: Option<bool>,
    /// One of the enterprise's caller-id numbers; "" clears it.
    #[arg(long)]
    default_caller_id: Option<String>,
    /// The number an agent's telephone is shown (one of the enterprise's numbers); "" clears
    /// it (the call's caller id).
    #[arg(long)]
    agent_caller_id: Option<String>,
    /// PreviewOutcall's mode when a request has no `sync`.
    #[arg(long, value_parser = bool_flag)]
    sync_default: Option<bool>,
    #[arg(long)]
    agent_ring_timeout_secs: Option<u32>,
    #[arg(long)]
    customer_ring_timeout_secs: Option<u32>,
    #[arg(long)]
    wrapup_secs: Option<u32>,
    /// Calls per number per window: COUNT/MINUTES, e.g. 3/60; "none" removes the limit.
    #[arg(long)]
    number_limit: Option<String>,
    /// Most simultaneous calls; 0 removes the cap.
    #[arg(long)]
    concurrency_cap: Option<u32>,
    /// Countries called besides the home one: ISO codes separated by commas (GB,US), "*" for
    /// every country, "" for none (domestic only).
    #[arg(long)]
    allowed_countries: Option<String>,
    /// Special classes called: premium, satellite, shared_cost, non_geographic, separated by
    /// commas; "" for none.
    #[arg(long)]
    allowed_classes: Option<String>,
    /// How a call's pushes are ordered across targets: per_call (a later event waits for the
    /// earlier ones to every target, up to --push-order-wait-secs) or per_target.
    #[arg(long)]
    push_order: Option<PushOrder>,
    #[arg(long)]
    push_order_wait_secs: Option<u32>,
    /// Web origins whose pages may embed the agent toolbar, separated by commas
    /// (https://crm.example.com); "" for none.
    #[arg(long)]
    allowed_origins: Option<String>,
    /// Pause reasons agents pick from in the toolbar, separated by commas; "" for none.
    #[arg(long)]
    pause_reasons: Option<String>,
    /// Prices per minute by international prefix, replacing the whole table: 44=0.30,4420=0.25;
    /// "" removes it (every minute at the rate per minute).
    #[arg(long)]
    destination_rates: Option<String>,
    /// Which calls are recorded: off, bridge (from the customer's answer) or answer (from the
    /// agent's, ringback and early media included).
    #[arg(long)]
    recording: Option<RecordingMode>,
    /// The longest a recording runs, in minutes.
    #[arg(long)]
    recording_max_minutes: Option<u32>,
    /// Recordings older than this many days are deleted; "none" keeps them.
    #[arg(long)]
    recording_retention_days: Option<String>,
    /// What recordFile carries: name, or url (the download URL at http.public_origin).
    #[arg(long)]
    record_file_form: Option<RecordFileForm>,
}

impl EnterpriseFields {
    fn apply(self, s: &mut EnterpriseSettings) -> Result<(), ValidationError> {
        if let Some(v) = self.name {
            s.name = v;
        }
        if let Some(v) = self.status {
            s.status = v;
        }
        if let Some(v) = self.time_zone {
            s.time_zone = v;
        }
        if let Some(v) = self.rate_per_minute {
            s.rate_per_minute = v;
        }
        if let Some(v) = self.credit_limit {
            s.credit_limit = v;
        }
        if let Some(v) = self.max_call_minutes {
            s.max_call_minutes = (v > 0).then_some(v);
        }
        if let Some(v) = self.outbound_enabled {
            s.outbound_enabled = v;
        }
        if let Some(v) = self.interface_enabled {
            s.interface_enabled = v;
        }
        if let Some(v) = self.default_caller_id {
            s.default_caller_id = if v.is_empty() {
                None
            } else {
                Some(dialbridge_core::validate_caller_id(&v)?)
            };
        }
        if let Some(v) = self.agent_caller_id {
            s.agent_caller_id = if v.is_empty() {
                None
            } else {
                Some(dialbridge_core::validate_caller_id(&v)?)
            };
        }
        if let Some(v) = self.sync_default {
            s.sync_default = v;
        }
        if let Some(v) = self.agent_ring_timeout_secs {
            s.agent_ring_timeout_secs = v;
        }
        if let Some(v) = self.customer_ring_timeout_secs {
            s.customer_ring_timeout_secs = v;
        }
        if let Some(v) = self.wrapup_secs {
            s.wrapup_secs = v;
        }
        if let Some(v) = self.number_limit {
            s.number_limit = if v == "none" { None } else { Some(number_limit(&v)?) };
        }
        if let Some(v) = self.concurrency_cap {
            s.concurrency_cap = (v > 0).then_some(v);
        }
        if self.allowed_countries.is_some() || self.allowed_classes.is_some() {
            s.destinations = DestinationPolicy::parse(
                &self
                    .allowed_countries
                    .unwrap_or_else(|| s.destinations.countries_text()),
                &self.allowed_classes.unwrap_or_else(|| s.destinations.classes_text()),
            )?;
        }
        if let Some(v) = self.push_order {
            s.push_order = v;
        }
        if let Some(v) = self.push_order_wait_secs {
            s.push_order_wait_secs = v;
        }
        if let Some(v) = self.pause_reasons {
            s.pause_reasons = v
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = self.allowed_origins {
            s.allowed_origins = v
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = self.destination_rates {
            s.destination_rates = DestinationRates::parse(&v)?;
        }
        if let Some(v) = self.recording {
            s.recording = v;
        }
        if let Some(v) = self.recording_max_minutes {
            s.recording_max_minutes = v;
        }
        if let Some(v) = self.recording_retention_days {
            s.recording_retention_days = match v.as_str() {
                "none" => None,
                days => Some(days.parse().map_err(|_| {
                    ValidationError::new("recording_retention_days", format!("{days:?} is not a number of days"))
                })?),
            };
        }
        if let Some(v) = self.record_file_form {
            s.record_file_form = v;
        }
        s.validate()
    }
}

#[derive(Subcommand)]
enum EnterpriseCommand {
    Create {
        #[arg(long, value_parser = enterprise_id)]
        id: EnterpriseId,
        #[command(flatten)]
        fields: EnterpriseFields,
    },
    Update {
        #[arg(long, value_parser = enterprise_id)]
        id: EnterpriseId,
        #[command(flatten)]
        fields: EnterpriseFields,
    },
    Show {
        #[arg(long, value_parser = enterprise_id)]
        id: EnterpriseId,
    },
    List,
    /// Where a number goes, whether the enterprise's destination policy allows it, and the
    /// price of its minutes.
    Destination {
        #[arg(long, value_parser = enterprise_id)]
        id: EnterpriseId,
        #[arg(long)]
        number: String,
    },
    /// Sets the status to disabled: its interface calls answer `res` 41.
    Disable {
        #[arg(long, value_parser = enterprise_id)]
        id: EnterpriseId,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Creates the account or changes its password.
    Set {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
    },
    List {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
    },
    Remove {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        user: String,
    },
}

#[derive(Args)]
struct AgentFields {
    #[arg(long)]
    name: Option<String>,
    /// Login password (the CRM sends its md5 as `pwd`).
    #[arg(long)]
    password: Option<String>,
    #[arg(long, value_parser = call_power)]
    call_power: Option<CallPower>,
    /// e.g. 010; "" clears it.
    #[arg(long)]
    area_code: Option<String>,
    /// Wrap-up seconds after a call; "default" uses the enterprise's.
    #[arg(long)]
    wrapup_secs: Option<String>,
    #[arg(long, value_parser = bool_flag)]
    outbound_allowed: Option<bool>,
    #[arg(long, value_parser = bool_flag)]
    active: Option<bool>,
    /// Whether this agent's calls are recorded (off, bridge, answer); "default": as the
    /// enterprise says.
    #[arg(long)]
    recording: Option<String>,
}

impl AgentFields {
    fn apply(&self, s: &mut AgentSettings) -> Result<(), ValidationError> {
        if let Some(v) = &self.name {
            s.name = v.clone();
        }
        if let Some(v) = self.call_power {
            s.call_power = v;
        }
        if let Some(v) = &self.area_code {
            s.area_code = (!v.is_empty()).then(|| v.clone());
        }
        if let Some(v) = &self.wrapup_secs {
            s.wrapup_secs = if v == "default" {
                None
            } else {
                Some(
                    v.parse()
                        .map_err(|_| ValidationError::new("wrapup_secs", format!("{v:?} is not a number")))?,
                )
            };
        }
        if let Some(v) = self.outbound_allowed {
            s.outbound_allowed = v;
        }
        if let Some(v) = self.active {
            s.active = v;
        }
        if let Some(v) = &self.recording {
            s.recording = match v.as_str() {
                "default" => None,
                mode => Some(mode.parse()?),
            };
        }
        s.validate()
    }
}

#[derive(Subcommand)]
enum AgentCommand {
    Create {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, value_parser = cno)]
        cno: Cno,
        #[command(flatten)]
        fields: AgentFields,
    },
    Update {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, value_parser = cno)]
        cno: Cno,
        #[command(flatten)]
        fields: AgentFields,
    },
    List {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
    },
    /// Marks the agent inactive: PreviewOutcall answers `res` 4, its event-stream sessions end.
    Disable {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, value_parser = cno)]
        cno: Cno,
    },
    /// Ends the agent's event-stream sessions: its tokens are refused and its open toolbar
    /// sockets closed within a couple of seconds; it must log in again.
    Kick {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, value_parser = cno)]
        cno: Cno,
    },
}

#[derive(Subcommand)]
enum ExtensionCommand {
    /// Creates the extension or changes its SIP password.
    Set {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, value_parser = extension)]
        number: ExtensionNumber,
        #[arg(long)]
        password: String,
    },
    List {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
    },
    Remove {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, value_parser = extension)]
        number: ExtensionNumber,
    },
}

#[derive(Subcommand)]
enum TrunkCommand {
    /// Creates or replaces a trunk.
    Set(Box<TrunkSet>),
    List,
    Remove {
        #[arg(long)]
        name: String,
    },
}

#[derive(Args)]
struct TrunkSet {
    #[arg(long)]
    name: String,
    /// The carrier's SIP address, host:port.
    #[arg(long, value_parser = sip_address)]
    address: SipAddress,
    #[arg(long, default_value = "udp")]
    transport: Transport,
    /// Digest user name for the carrier's 401/407 challenges.
    #[arg(long)]
    username: Option<String>,
    /// Digest password; omitted keeps the stored one.
    #[arg(long)]
    password: Option<String>,
    #[arg(long, value_parser = sip_address)]
    outbound_proxy: Option<SipAddress>,
    #[arg(long, default_value_t = 30)]
    max_channels: u32,
    /// An enterprise allowed to use the trunk (repeat for several).
    #[arg(long = "enterprise", value_parser = enterprise_id)]
    enterprises: Vec<EnterpriseId>,
    /// How the carrier wants the dialled number written, e.g. "plus" or
    /// "mobile-prefix=0,add=17909" (README: trunk number formats). Default: as normalised.
    #[arg(long, default_value = "")]
    customer_number_format: String,
    /// How the carrier wants the caller id written (same forms).
    #[arg(long, default_value = "")]
    caller_id_format: String,
    /// Failover order after the caller id's own trunk: lower first, then by name.
    #[arg(long, default_value_t = 0)]
    priority: u32,
    /// Send OPTIONS this often (seconds); calls skip the trunk while it does not answer.
    /// 0: no keepalive.
    #[arg(long, default_value_t = 0)]
    keepalive_secs: u32,
    /// Register with the carrier as --username, asking for this many seconds (refreshed
    /// at half). 0: the carrier wants no registration.
    #[arg(long, default_value_t = 0)]
    register_secs: u32,
    /// An address or range the carrier sends from (repeat for several); requests inside
    /// calls on this trunk from elsewhere are refused. Default: where its requests go.
    #[arg(long = "source", value_parser = dialbridge_core::parse_trunk_source)]
    sources: Vec<ipnet::IpNet>,
}

#[derive(Subcommand)]
enum NumberCommand {
    /// Adds a caller-id number to an enterprise (or moves it to another trunk).
    Add {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        number: String,
        #[arg(long)]
        trunk: String,
    },
    List {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
    },
    Remove {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        number: String,
    },
}

fn blacklist_pattern(s: &str) -> Result<BlacklistPattern, ValidationError> {
    BlacklistPattern::parse(s)
}

#[derive(Subcommand)]
enum BlacklistCommand {
    Add {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        /// A number, or a prefix ending in '*'.
        #[arg(long, value_parser = blacklist_pattern)]
        pattern: BlacklistPattern,
    },
    List {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
    },
    Remove {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, value_parser = blacklist_pattern)]
        pattern: BlacklistPattern,
    },
}

#[derive(Subcommand)]
enum PushTargetCommand {
    /// Prints the target's signing secret (Standard Webhooks `whsec_…`), creating it once.
    Secret {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        name: String,
    },
    /// Starts a secret rotation: prints the new secret; the old one keeps signing beside it.
    RotateSecret {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        name: String,
    },
    /// Ends a rotation: the old secret stops signing.
    DropOldSecret {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        name: String,
    },
    /// Creates or replaces a push target.
    Set {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        name: String,
        /// hangup, bridge, agent_status or ringing.
        #[arg(long = "type")]
        push_type: PushType,
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "post")]
        method: PushMethod,
        #[arg(long, default_value_t = dialbridge_core::DEFAULT_PUSH_TIMEOUT_MS)]
        timeout_ms: u32,
        #[arg(long, default_value_t = dialbridge_core::DEFAULT_PUSH_RETRIES)]
        retries: u32,
        #[arg(long, default_value = "legacy")]
        format: PushFormat,
        /// The charset of a form push's fields: utf-8, or gbk for CRMs that read nothing else.
        #[arg(long, default_value = "utf-8")]
        charset: PushCharset,
        /// CRM_NAME=VARIABLE (repeat); without any, the legacy names are sent.
        #[arg(long = "map", value_parser = mapping)]
        name_mapping: Vec<(String, String)>,
    },
    List {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
    },
    Remove {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum BalanceCommand {
    /// Adds to the prepaid balance (a negative amount corrects it) and records it in the ledger.
    TopUp {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, value_parser = amount, allow_hyphen_values = true)]
        amount: Money,
        #[arg(long)]
        reference: Option<String>,
    },
    /// The balance, what running calls hold of it, and what is still available to new calls.
    Show {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
    },
    /// The latest movements of the balance (top-ups, corrections, call charges), newest first.
    Ledger {
        #[arg(long, value_parser = enterprise_id)]
        enterprise: EnterpriseId,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub async fn run(config: &Config, args: AdminArgs) -> anyhow::Result<()> {
    let store = crate::open_store(config).await?;
    let result = match args.command {
        AdminCommand::Recording(command) => recording(config, &store, command).await,
        command => execute(&store, command).await,
    };
    store.close().await;
    let output = result?;
    print(&output, args.json);
    Ok(())
}

async fn recording(config: &Config, store: &Store, command: RecordingCommand) -> anyhow::Result<Output> {
    match command {
        RecordingCommand::Announcement(AnnouncementCommand::Set { enterprise, file }) => {
            let wav = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let samples = dialbridge_recording::announcement::from_wav(&wav)
                .with_context(|| format!("{} cannot be the announcement", file.display()))?;
            let mut tx = store.begin().await?;
            require_enterprise(&mut tx, enterprise).await?;
            tx.set_recording_announcement(enterprise, Some(&samples), now_ms())
                .await?;
            tx.commit().await?;
            Ok(done(format!(
                "announcement of enterprise {enterprise} set: {} ms at 8 kHz mono",
                samples.len() / 8
            )))
        }
        RecordingCommand::Announcement(AnnouncementCommand::Clear { enterprise }) => {
            let mut tx = store.begin().await?;
            require_enterprise(&mut tx, enterprise).await?;
            tx.set_recording_announcement(enterprise, None, now_ms()).await?;
            tx.commit().await?;
            Ok(done(format!("announcement of enterprise {enterprise} removed")))
        }
        RecordingCommand::Delete { unique_id, reason } => {
            let storage = dialbridge_recording::LocalStorage::new(config.data_dir.join("recordings"))?;
            let row =
                dialbridge_service::recordings::delete_recording(store, &storage, &unique_id, "operator", &reason)
                    .await
                    .map_err(|refused| anyhow::anyhow!("recording of {unique_id}: {refused}"))?;
            Ok(done(format!("deleted {}", row.file_name)))
        }
        RecordingCommand::Accesses { unique_id } => {
            let rows = store.begin_read().await?.recording_accesses(&unique_id).await?;
            Ok(Output::Rows(
                rows.into_iter()
                    .map(|(action, actor, detail, at)| json!({"action": action, "actor": actor, "detail": detail, "at": at}))
                    .collect(),
            ))
        }
    }
}

/// What a command produced: rows for a table, or a one-line confirmation.
enum Output {
    Rows(Vec<Value>),
    Done(String, Value),
}

fn print(output: &Output, as_json: bool) {
    match (output, as_json) {
        (Output::Rows(rows), true) => println!("{}", Value::Array(rows.clone())),
        (Output::Done(_, value), true) => println!("{value}"),
        (Output::Rows(rows), false) => {
            for row in rows {
                let line: Vec<String> = row
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect())
                    .unwrap_or_default();
                println!("{}", line.join(" "));
            }
        }
        (Output::Done(message, _), false) => println!("{message}"),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn done(message: String) -> Output {
    Output::Done(message.clone(), json!({"ok": true, "message": message}))
}

pub fn enterprise_json(e: &Enterprise) -> Value {
    let s = &e.settings;
    json!({
        "id": e.id.get(),
        "name": s.name,
        "status": s.status.as_str(),
        "time_zone": s.time_zone,
        "balance": e.balance.to_string(),
        "held": e.held.to_string(),
        "rate_per_minute": s.rate_per_minute.to_string(),
        "credit_limit": s.credit_limit.to_string(),
        "max_call_minutes": s.max_call_minutes,
        "outbound_enabled": s.outbound_enabled,
        "interface_enabled": s.interface_enabled,
        "default_caller_id": s.default_caller_id,
        "agent_caller_id": s.agent_caller_id,
        "sync_default": s.sync_default,
        "agent_ring_timeout_secs": s.agent_ring_timeout_secs,
        "customer_ring_timeout_secs": s.customer_ring_timeout_secs,
        "wrapup_secs": s.wrapup_secs,
        "number_limit": s.number_limit.map(|l| format!("{}/{}", l.count, l.window_minutes)),
        "concurrency_cap": s.concurrency_cap,
        "allowed_countries": s.destinations.countries_text(),
        "allowed_classes": s.destinations.classes_text(),
        "destination_rates": s.destination_rates.to_string(),
        "push_order": s.push_order.as_str(),
        "push_order_wait_secs": s.push_order_wait_secs,
        "allowed_origins": s.allowed_origins,
        "pause_reasons": s.pause_reasons,
        "recording": s.recording.as_str(),
        "recording_max_minutes": s.recording_max_minutes,
        "recording_retention_days": s.recording_retention_days,
        "record_file_form": s.record_file_form.as_str(),
    })
}

/// A CDR as an operator reads it: running calls have no end yet.
fn cdr_json(c: &dialbridge_store::Cdr) -> Value {
    let s = &c.start;
    let mut row = json!({
        "unique_id": s.unique_id,
        "cno": s.cno,
        "customer_number": s.customer_number,
        "trunk": s.trunk_name,
        "requested_at_ms": s.requested_at,
    });
    if let Some(e) = &c.end {
        row["ended_at_ms"] = json!(e.ended_at);
        row["bridged_at_ms"] = json!(e.bridged_at);
        row["record_file"] = json!(e.record_file);
        row["status"] = json!(e.status);
        row["end_reason"] = json!(e.end_reason.as_str());
        row["hung_up_by"] = json!(e.hung_up_by.as_str());
        row["sip_cause"] = json!(e.sip_cause);
        row["bridge_seconds"] = json!(e.bridge_seconds);
        row["cost"] = json!(e.cost.to_string());
        // One-way audio shows as one of these at (or near) 0.
        row["packets_agent_to_customer"] = json!(e.packets_agent_to_customer);
        row["packets_customer_to_agent"] = json!(e.packets_customer_to_agent);
    }
    row
}

/// An agent's settings and, when known, its state now: the login status, the pause reason,
/// the wrap-up seconds left and the call it is on.
fn agent_json(a: &AgentRecord, bound_phone: Option<String>, state: Option<&AgentState>, now: i64) -> Value {
    let s = &a.settings;
    json!({
        "enterprise": a.enterprise_id.get(),
        "cno": a.cno.as_str(),
        "name": s.name,
        "active": s.active,
        "outbound_allowed": s.outbound_allowed,
        "call_power": s.call_power.as_str(),
        "area_code": s.area_code,
        "wrapup_secs": s.wrapup_secs,
        "has_password": a.has_password,
        "bound_phone": bound_phone,
        "login_status": state.map(|st| st.login.as_str()),
        "pause_description": state.and_then(|st| st.pause_description.clone()),
        "wrapup_left_secs": state.map(|st| st.wrapup_seconds_left(now)),
        "call": state.and_then(|st| st.call.as_ref().map(|c| c.unique_id.clone())),
    })
}

fn trunk_json(t: &TrunkRecord) -> Value {
    json!({
        "name": t.trunk.name,
        "address": t.trunk.address.to_string(),
        "transport": t.trunk.transport.as_str(),
        "username": t.trunk.auth_username,
        "has_password": t.has_password,
        "outbound_proxy": t.trunk.outbound_proxy.as_ref().map(ToString::to_string),
        "max_channels": t.trunk.max_channels,
        "enterprises": t.trunk.enterprises.iter().map(|e| e.get()).collect::<Vec<_>>(),
        "customer_number_format": t.trunk.customer_number_format.to_string(),
        "caller_id_format": t.trunk.caller_id_format.to_string(),
        "priority": t.trunk.priority,
        "keepalive_secs": t.trunk.keepalive_secs,
        "register_secs": t.trunk.register_secs,
        "sources": t.trunk.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn push_target_json(t: &PushTarget) -> Value {
    json!({
        "name": t.name,
        "type": t.push_type.as_str(),
        "legacy_type": t.push_type.legacy_code(),
        "url": t.url,
        "method": t.method.as_str(),
        "timeout_ms": t.timeout_ms,
        "retries": t.retries,
        "format": t.format.as_str(),
        "charset": t.charset.as_str(),
        "map": t.name_mapping.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    })
}

async fn require_enterprise(tx: &mut Tx<'_>, id: EnterpriseId) -> anyhow::Result<Enterprise> {
    tx.enterprise(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("enterprise {id} not found"))
}

async fn require_agent(tx: &mut Tx<'_>, enterprise: EnterpriseId, cno: &Cno) -> anyhow::Result<AgentRecord> {
    tx.agent(enterprise, cno)
        .await?
        .ok_or_else(|| anyhow::anyhow!("agent {cno} of enterprise {enterprise} not found"))
}

/// The commands that run in one transaction (the recording commands are `recording`'s: a file
/// changes beside the store).
async fn execute(store: &Store, command: AdminCommand) -> anyhow::Result<Output> {
    let mut tx = store.begin().await?;
    let output = match command {
        AdminCommand::Recording(_) => anyhow::bail!("recording commands are not run in a transaction"),
        AdminCommand::Enterprise(c) => match *c {
            EnterpriseCommand::Create { id, fields } => {
                let name = fields
                    .name
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("--name is required"))?;
                let mut settings = EnterpriseSettings::new(name);
                fields.apply(&mut settings)?;
                tx.insert_enterprise(id, &settings).await?;
                done(format!("created enterprise {id}"))
            }
            EnterpriseCommand::Update { id, fields } => {
                let mut settings = require_enterprise(&mut tx, id).await?.settings;
                fields.apply(&mut settings)?;
                tx.update_enterprise(id, &settings).await?;
                done(format!("updated enterprise {id}"))
            }
            EnterpriseCommand::Show { id } => {
                let e = require_enterprise(&mut tx, id).await?;
                Output::Rows(vec![enterprise_json(&e)])
            }
            EnterpriseCommand::List => Output::Rows(tx.enterprises().await?.iter().map(enterprise_json).collect()),
            EnterpriseCommand::Destination { id, number } => {
                let settings = require_enterprise(&mut tx, id).await?.settings;
                let number = dialbridge_core::PhoneNumber::parse(&number)?;
                let destination = Destination::of(&number);
                Output::Rows(vec![json!({
                    "number": number.digits(),
                    "destination": destination.to_string(),
                    "allowed": settings.destinations.permits(&destination),
                    "rate_per_minute": settings.rate_for(&number).to_string(),
                })])
            }
            EnterpriseCommand::Disable { id } => {
                let mut settings = require_enterprise(&mut tx, id).await?.settings;
                settings.status = EnterpriseStatus::Disabled;
                tx.update_enterprise(id, &settings).await?;
                done(format!("disabled enterprise {id}"))
            }
        },
        AdminCommand::Account(c) => match c {
            AccountCommand::Set {
                enterprise,
                user,
                password,
            } => {
                tx.set_admin(enterprise, &user, &password).await?;
                done(format!("set admin {user} of enterprise {enterprise}"))
            }
            AccountCommand::List { enterprise } => Output::Rows(
                tx.admin_user_names(enterprise)
                    .await?
                    .into_iter()
                    .map(|user| json!({"enterprise": enterprise.get(), "user": user}))
                    .collect(),
            ),
            AccountCommand::Remove { enterprise, user } => {
                tx.delete_admin(enterprise, &user).await?;
                done(format!("removed admin {user} of enterprise {enterprise}"))
            }
        },
        AdminCommand::Agent(c) => match c {
            AgentCommand::Create {
                enterprise,
                cno,
                fields,
            } => {
                let name = fields
                    .name
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("--name is required"))?;
                let mut settings = AgentSettings::new(name);
                fields.apply(&mut settings)?;
                tx.insert_agent(enterprise, &cno, &settings, fields.password.as_deref())
                    .await?;
                done(format!("created agent {cno} of enterprise {enterprise}"))
            }
            AgentCommand::Update {
                enterprise,
                cno,
                fields,
            } => {
                let mut settings = require_agent(&mut tx, enterprise, &cno).await?.settings;
                fields.apply(&mut settings)?;
                tx.update_agent(enterprise, &cno, &settings).await?;
                if let Some(password) = &fields.password {
                    tx.set_agent_password(enterprise, &cno, password).await?;
                }
                done(format!("updated agent {cno} of enterprise {enterprise}"))
            }
            AgentCommand::List { enterprise } => {
                require_enterprise(&mut tx, enterprise).await?;
                let phones = tx.agent_phones(enterprise).await?;
                let now = now_ms();
                let mut rows = Vec::new();
                for a in tx.agents(enterprise).await? {
                    let bound = phones.iter().find(|p| p.cno == a.cno && p.bound).map(|p| p.number.clone());
                    let state = tx.agent_state(a.id).await?.state.at(now);
                    rows.push(agent_json(&a, bound, Some(&state), now));
                }
                Output::Rows(rows)
            }
            AgentCommand::Disable { enterprise, cno } => {
                let mut settings = require_agent(&mut tx, enterprise, &cno).await?.settings;
                settings.active = false;
                tx.update_agent(enterprise, &cno, &settings).await?;
                done(format!("disabled agent {cno} of enterprise {enterprise}"))
            }
            AgentCommand::Kick { enterprise, cno } => {
                require_agent(&mut tx, enterprise, &cno).await?;
                tx.kick_agent(enterprise, &cno).await?;
                done(format!("ended the sessions of agent {cno} of enterprise {enterprise}"))
            }
        },
        AdminCommand::Extension(c) => match c {
            ExtensionCommand::Set {
                enterprise,
                number,
                password,
            } => {
                require_enterprise(&mut tx, enterprise).await?;
                tx.set_extension(enterprise, &number, &password).await?;
                done(format!("set extension {number} of enterprise {enterprise}"))
            }
            ExtensionCommand::List { enterprise } => Output::Rows(
                tx.extensions(enterprise)
                    .await?
                    .into_iter()
                    .map(|n| json!({"enterprise": enterprise.get(), "number": n.as_str()}))
                    .collect(),
            ),
            ExtensionCommand::Remove { enterprise, number } => {
                tx.delete_extension(enterprise, &number).await?;
                done(format!("removed extension {number} of enterprise {enterprise}"))
            }
        },
        AdminCommand::Trunk(c) => match c {
            TrunkCommand::Set(set) => {
                let TrunkSet {
                name,
                address,
                transport,
                username,
                password,
                outbound_proxy,
                max_channels,
                enterprises,
                customer_number_format,
                caller_id_format,
                priority,
                keepalive_secs,
                register_secs,
                sources,
            } = *set;
                for e in &enterprises {
                    if tx.enterprise(*e).await?.is_none() {
                        anyhow::bail!("--enterprise {e}: enterprise not found");
                    }
                }
                let trunk = Trunk {
                    name,
                    address,
                    transport,
                    auth_username: username,
                    outbound_proxy,
                    max_channels,
                    enterprises,
                    customer_number_format: NumberFormat::parse(&customer_number_format)
                        .map_err(|e| anyhow::anyhow!("--customer-number-format: {}", e.reason))?,
                    caller_id_format: NumberFormat::parse(&caller_id_format)
                        .map_err(|e| anyhow::anyhow!("--caller-id-format: {}", e.reason))?,
                    priority,
                    keepalive_secs,
                    register_secs,
                    sources,
                };
                tx.upsert_trunk(&trunk, password.as_deref()).await?;
                done(format!("set trunk {}", trunk.name))
            }
            TrunkCommand::List => Output::Rows(tx.trunks().await?.iter().map(trunk_json).collect()),
            TrunkCommand::Remove { name } => {
                tx.delete_trunk(&name).await?;
                done(format!("removed trunk {name}"))
            }
        },
        AdminCommand::Number(c) => match c {
            NumberCommand::Add {
                enterprise,
                number,
                trunk,
            } => {
                let number = dialbridge_core::validate_caller_id(&number)?;
                tx.upsert_caller_id(&CallerId {
                    number: number.clone(),
                    enterprise_id: enterprise,
                    trunk,
                })
                .await?;
                done(format!("added number {number} to enterprise {enterprise}"))
            }
            NumberCommand::List { enterprise } => Output::Rows(
                tx.caller_ids(Some(enterprise))
                    .await?
                    .into_iter()
                    .map(|c| json!({"enterprise": enterprise.get(), "number": c.number, "trunk": c.trunk}))
                    .collect(),
            ),
            NumberCommand::Remove { enterprise, number } => {
                let number = dialbridge_core::validate_caller_id(&number)?;
                tx.delete_caller_id(enterprise, &number).await?;
                done(format!("removed number {number} of enterprise {enterprise}"))
            }
        },
        AdminCommand::Blacklist(c) => match c {
            BlacklistCommand::Add { enterprise, pattern } => {
                tx.insert_blacklist(enterprise, &pattern).await?;
                done(format!("blacklisted {pattern} for enterprise {enterprise}"))
            }
            BlacklistCommand::List { enterprise } => Output::Rows(
                tx.blacklist(enterprise)
                    .await?
                    .into_iter()
                    .map(|p| json!({"enterprise": enterprise.get(), "pattern": p.as_str()}))
                    .collect(),
            ),
            BlacklistCommand::Remove { enterprise, pattern } => {
                tx.delete_blacklist(enterprise, &pattern).await?;
                done(format!(
                    "removed {pattern} from the blacklist of enterprise {enterprise}"
                ))
            }
        },
        AdminCommand::PushTarget(c) => match c {
            PushTargetCommand::Set {
                enterprise,
                name,
                push_type,
                url,
                method,
                timeout_ms,
                retries,
                format,
                charset,
                name_mapping,
            } => {
                let target = PushTarget {
                    name,
                    push_type,
                    url,
                    method,
                    timeout_ms,
                    retries,
                    format,
                    charset,
                    name_mapping,
                };
                require_enterprise(&mut tx, enterprise).await?;
                tx.upsert_push_target(enterprise, &target).await?;
                done(format!("set push target {} of enterprise {enterprise}", target.name))
            }
            PushTargetCommand::List { enterprise } => Output::Rows(
                tx.push_targets(enterprise)
                    .await?
                    .iter()
                    .map(push_target_json)
                    .collect(),
            ),
            PushTargetCommand::Remove { enterprise, name } => {
                tx.delete_push_target(enterprise, &name).await?;
                done(format!("removed push target {name} of enterprise {enterprise}"))
            }
            PushTargetCommand::RotateSecret { enterprise, name } => {
                let secret = tx.rotate_push_target_secret(enterprise, &name).await?;
                Output::Done(secret.clone(), json!({"enterprise": enterprise.get(), "name": name, "secret": secret}))
            }
            PushTargetCommand::DropOldSecret { enterprise, name } => {
                tx.drop_previous_push_target_secret(enterprise, &name).await?;
                done(format!("push target {name} signs with its current secret only"))
            }
            PushTargetCommand::Secret { enterprise, name } => {
                let secret = tx.push_target_secret(enterprise, &name).await?;
                Output::Done(secret.clone(), json!({"enterprise": enterprise.get(), "name": name, "secret": secret}))
            }
        },
        AdminCommand::Outbox(c) => match c {
            OutboxCommand::List { enterprise, state, limit } => Output::Rows(
                tx.deliveries(enterprise, state.as_deref(), limit)
                    .await?
                    .into_iter()
                    .map(|d| {
                        json!({"event": d.event_id, "target": d.target_name, "type": d.event_type, "call": d.stream_key,
                               "state": d.state, "attempts": d.attempts, "last_error": d.last_error, "payload": d.payload})
                    })
                    .collect(),
            ),
            OutboxCommand::Replay { enterprise, event, target } => {
                tx.replay_delivery(event, enterprise, &target).await?;
                done(format!("event {event} queued again for {target}"))
            }
        },
        AdminCommand::Cdr(CdrCommand::List {
            enterprise,
            unique_id,
            limit,
        }) => {
            let query = dialbridge_store::CdrQuery {
                enterprise_id: Some(enterprise),
                unique_id,
                limit,
                ..Default::default()
            };
            Output::Rows(tx.cdrs(&query).await?.iter().map(cdr_json).collect())
        }
        AdminCommand::Attempts(AttemptsCommand::List { enterprise, limit }) => Output::Rows(
            tx.refusals(enterprise, limit)
                .await?
                .into_iter()
                .map(|r| {
                    json!({"at_ms": r.at, "last_at_ms": r.last_at, "count": r.count, "enterprise": r.enterprise_id,
                           "source": r.source, "cno": r.cno, "customer_number": r.customer_number, "res": r.res, "reason": r.reason})
                })
                .collect(),
        ),
        AdminCommand::Balance(c) => match c {
            BalanceCommand::TopUp {
                enterprise,
                amount,
                reference,
            } => {
                let balance = tx.top_up(enterprise, amount, reference.as_deref()).await?;
                Output::Done(
                    format!("balance of enterprise {enterprise} is now {balance}"),
                    json!({"ok": true, "enterprise": enterprise.get(), "balance": balance.to_string()}),
                )
            }
            BalanceCommand::Show { enterprise } => {
                let e = require_enterprise(&mut tx, enterprise).await?;
                let holding_calls = tx.holds(enterprise).await?.len();
                Output::Rows(vec![json!({
                    "enterprise": enterprise.get(),
                    "balance": e.balance.to_string(),
                    "credit_limit": e.settings.credit_limit.to_string(),
                    "held": e.held.to_string(),
                    "available": e.credit().available().to_string(),
                    "holding_calls": holding_calls,
                })])
            }
            BalanceCommand::Ledger { enterprise, limit } => {
                require_enterprise(&mut tx, enterprise).await?;
                Output::Rows(
                    tx.ledger(enterprise, limit)
                        .await?
                        .into_iter()
                        .map(|l| {
                            json!({
                                "at_ms": l.created_at,
                                "kind": l.kind.as_str(),
                                "amount": l.amount.to_string(),
                                "balance_after": l.balance_after.to_string(),
                                "reference": l.reference,
                            })
                        })
                        .collect(),
                )
            }
        },
    };
    tx.commit().await?;
    Ok(output)
}

//! The entities an operator configures: enterprises, agents, extensions, trunks, caller ids,
//! blacklist entries and push targets, each with the rules that make it valid.
//!
//! Secrets (passwords) are not fields here: the store keeps them hashed or sealed and the
//! domain never needs them in clear beyond the moment they are set.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{
    DestinationPolicy, DestinationRates, EnterpriseId, Money, NumberClass, NumberFormat, PhoneNumber, ValidationError,
};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(text: &str) -> Result<Self, ValidationError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ValidationError::new(
                        $field,
                        format!("{:?} is not one of {}", text, [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, ValidationError> {
                value.parse()
            }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> &'static str {
                v.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Whether an enterprise may use the platform at all (`res` 41 when not active).
    EnterpriseStatus, "status", { Active => "active", Disabled => "disabled", Closed => "closed" }
);

text_enum!(
    /// SIP transport of a trunk.
    Transport, "transport", { Udp => "udp", Tcp => "tcp" }
);

text_enum!(
    /// How a push is sent: a form POST (the legacy default) or a GET with a query string.
    PushMethod, "method", { Post => "post", Get => "get" }
);

text_enum!(
    /// The body a push target receives: the legacy form fields or one JSON object per event.
    PushFormat, "format", { Legacy => "legacy", Json => "json" }
);

text_enum!(
    /// The charset of a form push's fields: UTF-8, or GBK for older CRMs that read nothing
    /// else (JSON is always UTF-8).
    PushCharset, "charset", { Utf8 => "utf-8", Gbk => "gbk" }
);

text_enum!(
    /// How a call's pushes are ordered across an enterprise's targets: `per_call`, a later event
    /// waits (a bounded time) for the call's earlier events to every target; `per_target`, each
    /// target's queue goes on its own.
    PushOrder, "push_order", { PerCall => "per_call", PerTarget => "per_target" }
);

text_enum!(
    /// Which calls are recorded, and from when: none, from the customer's answer (the bridge),
    /// or from the agent's answer (ringback and early media included).
    RecordingMode, "recording", { Off => "off", FromBridge => "bridge", FromAgentAnswer => "answer" }
);

text_enum!(
    /// What `recordFile` / `cdr_record_file` carry: the bare file name, or the full download
    /// URL (a client appends its query to it).
    RecordFileForm, "record_file_form", { Name => "name", Url => "url" }
);

text_enum!(
    /// The legacy push `type`s: 2 outbound hang-up, 3 bridge, 5 agent status, 8 ringing.
    PushType, "type", { Hangup => "hangup", Bridge => "bridge", AgentStatus => "agent_status", Ringing => "ringing" }
);

impl PushType {
    pub fn legacy_code(self) -> u8 {
        match self {
            PushType::Hangup => 2,
            PushType::Bridge => 3,
            PushType::AgentStatus => 5,
            PushType::Ringing => 8,
        }
    }

    pub fn from_legacy_code(code: i64) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| i64::from(t.legacy_code()) == code)
    }
}

/// A phone an agent answers on: the legacy `type` of ClientOnline/ChangeBindTel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PhoneType {
    /// 1: a mobile or landline reached through the enterprise's trunk.
    Telephone,
    /// 2: an extension of the enterprise, a SIP phone registered to dialbridge.
    Extension,
    /// 4: a remote agent's phone, treated as a telephone.
    RemotePhone,
    /// 3: the agent's browser (the toolbar's softphone); its number is the agent's cno.
    Softphone,
}

impl PhoneType {
    pub fn legacy_code(self) -> u8 {
        match self {
            PhoneType::Telephone => 1,
            PhoneType::Extension => 2,
            PhoneType::RemotePhone => 4,
            PhoneType::Softphone => 3,
        }
    }

    pub fn from_legacy_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(PhoneType::Telephone),
            2 => Some(PhoneType::Extension),
            4 => Some(PhoneType::RemotePhone),
            3 => Some(PhoneType::Softphone),
            _ => None,
        }
    }

    /// Checks that `number` is the right kind for this phone type and returns its digits: a
    /// softphone's is a cno (the agent's own: the caller checks whose).
    pub fn normalise_number(self, number: &str) -> Result<String, ValidationError> {
        if self == PhoneType::Softphone {
            return crate::Cno::parse(number).map(|cno| cno.to_string()).map_err(|_| {
                ValidationError::new(
                    "bindTel",
                    format!("{number:?} is no cno: a softphone's bindTel is the agent's cno"),
                )
            });
        }
        self.validate_number(number).map(|n| n.digits().to_owned())
    }

    /// Checks that `number` is the right kind for this phone type (a telephone or an extension)
    /// and returns it normalised.
    pub fn validate_number(self, number: &str) -> Result<PhoneNumber, ValidationError> {
        let parsed = PhoneNumber::parse(number)?;
        let fits = matches!(
            (self, parsed.class()),
            (PhoneType::Extension, NumberClass::Extension)
                | (
                    PhoneType::Telephone | PhoneType::RemotePhone,
                    NumberClass::Mobile | NumberClass::Landline { .. }
                )
        );
        if fits {
            Ok(parsed)
        } else {
            Err(ValidationError::new(
                "bindTel",
                format!("{number:?} is not a valid number for phone type {}", self.legacy_code()),
            ))
        }
    }
}

/// At most `count` accepted calls to one customer number within `window_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberLimit {
    pub count: u32,
    pub window_minutes: u32,
}

/// Everything an operator sets on an enterprise. The balance is not here: it only moves by
/// top-ups and charges, never by editing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseSettings {
    pub name: String,
    pub status: EnterpriseStatus,
    pub time_zone: String,
    pub rate_per_minute: Money,
    /// How far below zero the balance may go (a post-paid customer's credit); 0: prepaid.
    pub credit_limit: Money,
    /// The longest a bridged call may last; `None`: as long as its credit lasts.
    pub max_call_minutes: Option<u32>,
    pub outbound_enabled: bool,
    pub interface_enabled: bool,
    pub default_caller_id: Option<String>,
    /// The number an agent's telephone (reached through a trunk) is shown when it rings: one
    /// of the enterprise's numbers; `None`: the call's caller id.
    pub agent_caller_id: Option<String>,
    pub sync_default: bool,
    pub agent_ring_timeout_secs: u32,
    pub customer_ring_timeout_secs: u32,
    pub wrapup_secs: u32,
    pub number_limit: Option<NumberLimit>,
    pub concurrency_cap: Option<u32>,
    /// What may be called beyond domestic numbers (default: nothing more).
    pub destinations: DestinationPolicy,
    /// Prices per minute by international prefix, over `rate_per_minute`.
    pub destination_rates: DestinationRates,
    /// Web origins (`https://crm.example.com`) whose pages may open the agent toolbar's
    /// WebSocket; the server's own page always may.
    pub allowed_origins: Vec<String>,
    /// The pause reasons an agent picks from in the toolbar (the legacy `ChangeStatus` still
    /// takes free text).
    pub pause_reasons: Vec<String>,
    pub push_order: PushOrder,
    /// How long, with `per_call`, a call's later event waits for its earlier ones (counted from
    /// when it happened) before it goes anyway: one dead target must not hold the others back
    /// for long.
    pub push_order_wait_secs: u32,
    pub recording: RecordingMode,
    /// The longest a recording runs (the call goes on unrecorded after it).
    pub recording_max_minutes: u32,
    /// Recordings older than this many days are deleted; `None`: kept until deleted.
    pub recording_retention_days: Option<u32>,
    pub record_file_form: RecordFileForm,
}

pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";
pub const DEFAULT_AGENT_RING_TIMEOUT_SECS: u32 = 30;
pub const MAX_AGENT_RING_TIMEOUT_SECS: u32 = 60;
pub const DEFAULT_CUSTOMER_RING_TIMEOUT_SECS: u32 = 60;
pub const MAX_CUSTOMER_RING_TIMEOUT_SECS: u32 = 300;
pub const DEFAULT_WRAPUP_SECS: u32 = 10;
pub const MAX_WRAPUP_SECS: u32 = 3600;
pub const DEFAULT_PUSH_ORDER_WAIT_SECS: u32 = 10;
pub const MAX_PAUSE_REASONS: usize = 20;
pub const MAX_PUSH_ORDER_WAIT_SECS: u32 = 300;
pub const DEFAULT_RECORDING_MAX_MINUTES: u32 = 240;
/// Ten years: the longest retention an operator can set.
pub const MAX_RECORDING_RETENTION_DAYS: u32 = 3660;
/// A day: the longest cap on a call's length an operator can set.
pub const MAX_CALL_MINUTES: u32 = 1440;
/// The largest sum of money an operator can set or move at once (a credit limit, a top-up): a
/// billion units, far above any real account and far below where sums of balances, limits and
/// holds could overflow the store's 64-bit integers.
pub const MAX_AMOUNT: Money = Money::from_ten_thousandths(1_000_000_000 * 10_000);
/// The highest rate per minute an operator can set (so a day of holds stays far from overflow).
pub const MAX_RATE_PER_MINUTE: Money = Money::from_ten_thousandths(10_000 * 10_000);

impl EnterpriseSettings {
    /// The settings of a new enterprise that only has a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: EnterpriseStatus::Active,
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
            rate_per_minute: Money::ZERO,
            credit_limit: Money::ZERO,
            max_call_minutes: None,
            outbound_enabled: true,
            interface_enabled: true,
            default_caller_id: None,
            agent_caller_id: None,
            sync_default: false,
            agent_ring_timeout_secs: DEFAULT_AGENT_RING_TIMEOUT_SECS,
            customer_ring_timeout_secs: DEFAULT_CUSTOMER_RING_TIMEOUT_SECS,
            wrapup_secs: DEFAULT_WRAPUP_SECS,
            number_limit: None,
            concurrency_cap: None,
            destinations: DestinationPolicy::default(),
            destination_rates: DestinationRates::default(),
            allowed_origins: Vec::new(),
            pause_reasons: Vec::new(),
            push_order: PushOrder::PerCall,
            push_order_wait_secs: DEFAULT_PUSH_ORDER_WAIT_SECS,
            recording: RecordingMode::Off,
            recording_max_minutes: DEFAULT_RECORDING_MAX_MINUTES,
            recording_retention_days: None,
            record_file_form: RecordFileForm::Name,
        }
    }

    /// The price of a minute to `number`: its longest prefix's in the destination rates, else
    /// the enterprise's rate.
    pub fn rate_for(&self, number: &PhoneNumber) -> Money {
        self.destination_rates.rate_for(number).unwrap_or(self.rate_per_minute)
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)?;
        validate_time_zone(&self.time_zone)?;
        if self.rate_per_minute < Money::ZERO || self.rate_per_minute > MAX_RATE_PER_MINUTE {
            return Err(ValidationError::new(
                "rate_per_minute",
                format!("must be between 0 and {MAX_RATE_PER_MINUTE}"),
            ));
        }
        if self.credit_limit < Money::ZERO || self.credit_limit > MAX_AMOUNT {
            return Err(ValidationError::new(
                "credit_limit",
                format!("must be between 0 and {MAX_AMOUNT}"),
            ));
        }
        if let Some(minutes) = self.max_call_minutes {
            in_range("max_call_minutes", minutes, 1, MAX_CALL_MINUTES)?;
        }
        for origin in &self.allowed_origins {
            validate_origin(origin)?;
        }
        if self.pause_reasons.len() > MAX_PAUSE_REASONS {
            return Err(ValidationError::new(
                "pause_reasons",
                format!("at most {MAX_PAUSE_REASONS} reasons"),
            ));
        }
        for reason in &self.pause_reasons {
            let chars = reason.chars().count();
            if chars == 0 || chars > 32 || reason.chars().any(|c| c.is_control()) || reason.trim() != reason {
                return Err(ValidationError::new(
                    "pause_reasons",
                    format!("{reason:?}: 1-32 characters, no control characters or outer spaces"),
                ));
            }
        }
        in_range(
            "push_order_wait_secs",
            self.push_order_wait_secs,
            1,
            MAX_PUSH_ORDER_WAIT_SECS,
        )?;
        in_range("recording_max_minutes", self.recording_max_minutes, 1, MAX_CALL_MINUTES)?;
        if let Some(days) = self.recording_retention_days {
            in_range("recording_retention_days", days, 1, MAX_RECORDING_RETENTION_DAYS)?;
        }
        if let Some(clid) = &self.default_caller_id {
            validate_caller_id(clid).map_err(|e| ValidationError::new("default_caller_id", e.reason))?;
        }
        if let Some(clid) = &self.agent_caller_id {
            validate_caller_id(clid).map_err(|e| ValidationError::new("agent_caller_id", e.reason))?;
        }
        in_range(
            "agent_ring_timeout_secs",
            self.agent_ring_timeout_secs,
            1,
            MAX_AGENT_RING_TIMEOUT_SECS,
        )?;
        in_range(
            "customer_ring_timeout_secs",
            self.customer_ring_timeout_secs,
            1,
            MAX_CUSTOMER_RING_TIMEOUT_SECS,
        )?;
        in_range("wrapup_secs", self.wrapup_secs, 0, MAX_WRAPUP_SECS)?;
        if let Some(limit) = self.number_limit {
            in_range("number_limit.count", limit.count, 1, u32::MAX)?;
            in_range("number_limit.window_minutes", limit.window_minutes, 1, 525_600)?;
        }
        if let Some(cap) = self.concurrency_cap {
            in_range("concurrency_cap", cap, 1, u32::MAX)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enterprise {
    pub id: EnterpriseId,
    pub settings: EnterpriseSettings,
    pub balance: Money,
    /// What its running calls hold ([`crate::credit`]).
    pub held: Money,
}

impl Enterprise {
    pub fn credit(&self) -> crate::Credit {
        crate::Credit {
            balance: self.balance,
            credit_limit: self.settings.credit_limit,
            held: self.held,
        }
    }
}

/// An agent as the operator configures it. Runtime state (online, bound phone, calls) lives
/// elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    pub name: String,
    pub active: bool,
    pub outbound_allowed: bool,
    pub call_power: crate::CallPower,
    pub area_code: Option<String>,
    /// `None`: the enterprise's default.
    pub wrapup_secs: Option<u32>,
    /// Whether this agent's calls are recorded; `None`: as the enterprise says.
    pub recording: Option<RecordingMode>,
}

impl AgentSettings {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            active: true,
            outbound_allowed: true,
            call_power: crate::CallPower::All,
            area_code: None,
            wrapup_secs: None,
            recording: None,
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)?;
        if let Some(area) = &self.area_code {
            validate_area_code(area)?;
        }
        if let Some(secs) = self.wrapup_secs {
            in_range("wrapup_secs", secs, 0, MAX_WRAPUP_SECS)?;
        }
        Ok(())
    }
}

/// A trunk's SIP address: `host:port` (IPv6 in brackets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipAddress {
    pub host: String,
    pub port: u16,
}

impl SipAddress {
    pub fn parse(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        let err = |why: &str| ValidationError::new(field, format!("{text:?}: {why}"));
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| err("unclosed '['"))?;
            (host, after.strip_prefix(':').ok_or_else(|| err("expected host:port"))?)
        } else {
            text.rsplit_once(':').ok_or_else(|| err("expected host:port"))?
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
        if !host_ok {
            return Err(err("bad host"));
        }
        let port: u16 = port.parse().map_err(|_| err("bad port"))?;
        if port == 0 {
            return Err(err("port 0"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for SipAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A SIP trunk to a carrier, usable by the enterprises listed in `enterprises`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    pub address: SipAddress,
    pub transport: Transport,
    pub auth_username: Option<String>,
    pub outbound_proxy: Option<SipAddress>,
    pub max_channels: u32,
    pub enterprises: Vec<EnterpriseId>,
    /// How the carrier wants the dialled number written (Request-URI and To).
    pub customer_number_format: NumberFormat,
    /// How the carrier wants the caller id written (From and P-Asserted-Identity).
    pub caller_id_format: NumberFormat,
    /// After the caller id's own trunk, an enterprise's trunks are tried in ascending priority
    /// (then by name).
    pub priority: u32,
    /// Send OPTIONS this often (seconds) and skip the trunk while it does not answer; 0: off.
    pub keepalive_secs: u32,
    /// Register with the carrier as `auth_username`, asking for this many seconds; 0: the
    /// carrier does not want a registration.
    pub register_secs: u32,
    /// The addresses the carrier sends from (its requests inside our calls, its OPTIONS and
    /// INVITEs to us); empty: the address its requests go to.
    pub sources: Vec<ipnet::IpNet>,
}

/// The most source ranges a trunk may list.
pub const MAX_TRUNK_SOURCES: usize = 64;

/// One source of a trunk: an address (`203.0.113.5`) or a range (`203.0.113.0/24`).
pub fn parse_trunk_source(text: &str) -> Result<ipnet::IpNet, ValidationError> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| ValidationError::new("sources", format!("{text:?} is not an IP address or range (a.b.c.d/n)")))
}

impl Trunk {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_slug("name", &self.name)?;
        in_range("max_channels", self.max_channels, 1, 100_000)?;
        in_range("priority", self.priority, 0, 1_000_000)?;
        in_range("keepalive_secs", self.keepalive_secs, 0, 3_600)?;
        in_range("register_secs", self.register_secs, 0, 86_400)?;
        if self.sources.len() > MAX_TRUNK_SOURCES {
            return Err(ValidationError::new(
                "sources",
                format!("at most {MAX_TRUNK_SOURCES} addresses or ranges"),
            ));
        }
        if let Some(user) = &self.auth_username {
            validate_name("auth_username", user)?;
        } else if self.register_secs > 0 {
            return Err(ValidationError::new(
                "register_secs",
                "a trunk that registers needs auth_username (the account it registers as)",
            ));
        }
        Ok(())
    }
}

/// A number an enterprise owns, shown to customers as the caller id, and the trunk it goes
/// out on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    pub number: String,
    pub enterprise_id: EnterpriseId,
    pub trunk: String,
}

/// A web origin as a browser sends it: `http(s)://host[:port]`, nothing after it.
pub fn validate_origin(origin: &str) -> Result<(), ValidationError> {
    let err = || {
        ValidationError::new(
            "allowed_origins",
            format!("{origin:?} is not an origin like https://crm.example.com or http://127.0.0.1:8000"),
        )
    };
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(err)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if host.is_empty() || !host.chars().all(allowed) || origin.len() > 253 {
        return Err(err());
    }
    Ok(())
}

/// A caller id is a landline or a mobile, stored normalised.
pub fn validate_caller_id(text: &str) -> Result<String, ValidationError> {
    let number = PhoneNumber::parse(text).map_err(|e| ValidationError::new("number", e.reason))?;
    match number.class() {
        NumberClass::Mobile | NumberClass::Landline { .. } => Ok(number.digits().to_owned()),
        _ => Err(ValidationError::new(
            "number",
            format!("{text:?} is not a landline or mobile number"),
        )),
    }
}

/// An outbound blacklist entry: a normalised number matched exactly, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlacklistPattern(String);

impl BlacklistPattern {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let err = || {
            ValidationError::new(
                "blacklist",
                format!("{text:?} is not a number or a number prefix ending in '*'"),
            )
        };
        if let Some(prefix) = text.strip_suffix('*') {
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 20 {
                return Err(err());
            }
            return Ok(Self(text.to_owned()));
        }
        let number = PhoneNumber::parse(text).map_err(|_| err())?;
        Ok(Self(number.digits().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, number: &PhoneNumber) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => number.digits().starts_with(prefix),
            None => number.digits() == self.0,
        }
    }
}

impl fmt::Display for BlacklistPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an enterprise wants one kind of event pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub name: String,
    pub push_type: PushType,
    pub url: String,
    pub method: PushMethod,
    pub timeout_ms: u32,
    pub retries: u32,
    pub format: PushFormat,
    pub charset: PushCharset,
    /// CRM parameter name ← platform variable name. Empty: the legacy default names.
    pub name_mapping: Vec<(String, String)>,
}

pub const DEFAULT_PUSH_TIMEOUT_MS: u32 = 3000;
pub const DEFAULT_PUSH_RETRIES: u32 = 1;

impl PushTarget {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_slug("name", &self.name)?;
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"))
            .ok_or_else(|| ValidationError::new("url", format!("{:?} is not an http:// or https:// URL", self.url)))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || self.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValidationError::new(
                "url",
                format!("{:?} has no host or contains spaces", self.url),
            ));
        }
        in_range("timeout_ms", self.timeout_ms, 100, 60_000)?;
        if self.format == PushFormat::Json && self.charset != PushCharset::Utf8 {
            return Err(ValidationError::new(
                "charset",
                "JSON pushes are always UTF-8: a charset applies to legacy form pushes",
            ));
        }
        in_range("retries", self.retries, 0, 1000)?;
        for (crm_name, variable) in &self.name_mapping {
            if crm_name.is_empty() || variable.is_empty() || crm_name.len() > 64 || variable.len() > 64 {
                return Err(ValidationError::new(
                    "name_mapping",
                    format!("{crm_name:?} = {variable:?}: names are 1-64 characters"),
                ));
            }
        }
        Ok(())
    }
}

fn in_range(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), ValidationError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::new(field, format!("{value} is outside {min}..={max}")))
    }
}

fn validate_name(field: &'static str, text: &str) -> Result<(), ValidationError> {
    if text.trim().is_empty() || text.len() > 128 || text.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            format!("{text:?} must be 1-128 printable characters"),
        ));
    }
    Ok(())
}

/// Names used as keys in files and CLIs: letters, digits, `_`, `-`, `.`.
pub fn validate_slug(field: &'static str, text: &str) -> Result<(), ValidationError> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{text:?} must be 1-64 characters of [A-Za-z0-9_.-]"),
        ))
    }
}

pub fn validate_time_zone(text: &str) -> Result<(), ValidationError> {
    text.parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| ValidationError::new("time_zone", format!("{text:?} is not an IANA time zone")))
}

/// An area code: `0` and 2-3 more digits (`010`, `0571`).
pub fn validate_area_code(text: &str) -> Result<(), ValidationError> {
    let ok = (3..=4).contains(&text.len()) && text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "area_code",
            format!("{text:?} is not an area code like 010 or 0571"),
        ))
    }
}

/// The legacy admin `userName`.
pub fn validate_user_name(text: &str) -> Result<(), ValidationError> {
    validate_slug("user_name", text).map_err(|e| ValidationError::new("user_name", e.reason))
}

/// A password an operator sets: not empty, not absurdly long, no control characters.
pub fn validate_password(field: &'static str, text: &str) -> Result<(), ValidationError> {
    if text.is_empty() || text.len() > 128 || text.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must be 1-128 printable characters"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "entities_test.rs"]
mod tests;

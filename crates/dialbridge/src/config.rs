//! The server's configuration: one TOML file plus `DIALBRIDGE_*` environment overrides, with
//! defaults that let `dialbridge serve` start with neither. Every value is validated at start
//! and a bad one is reported with the key (or environment variable) it came from.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dialbridge_core::{NodeName, Transport};
use dialbridge_service::retention::RetentionPolicy;
use dialbridge_store::{PasswordHashCost, SecretKey, StoreOptions};

/// One configuration key: its name in the file, its environment variable, its default.
struct Key {
    name: &'static str,
    env: &'static str,
    default: Option<&'static str>,
}

const KEYS: &[Key] = &[
    Key {
        name: "node_name",
        env: "DIALBRIDGE_NODE_NAME",
        default: Some("dialbridge1"),
    },
    Key {
        name: "log_level",
        env: "DIALBRIDGE_LOG_LEVEL",
        // The SIP library's transport layer warns at every start that it cannot bind the TCP
        // port (dialbridge holds it: `tcp_accept`), and it and its streams at every connection
        // that sends garbage or resets.
        default: Some(
            "info,rsipstack=warn,rsipstack::transport::transport_layer=error,rsipstack::transport::stream=error",
        ),
    },
    Key {
        name: "data_dir",
        env: "DIALBRIDGE_DATA_DIR",
        default: Some("dialbridge-data"),
    },
    Key {
        name: "database_url",
        env: "DIALBRIDGE_DATABASE_URL",
        default: None,
    },
    Key {
        name: "secret_key",
        env: "DIALBRIDGE_SECRET_KEY",
        default: None,
    },
    Key {
        name: "http.listen",
        env: "DIALBRIDGE_HTTP_LISTEN",
        default: Some("127.0.0.1:8080"),
    },
    Key {
        name: "http.max_connections",
        env: "DIALBRIDGE_HTTP_MAX_CONNECTIONS",
        default: Some("auto"),
    },
    Key {
        name: "http.max_connections_per_source",
        env: "DIALBRIDGE_HTTP_MAX_CONNECTIONS_PER_SOURCE",
        default: Some("1024"),
    },
    Key {
        name: "http.header_timeout_secs",
        env: "DIALBRIDGE_HTTP_HEADER_TIMEOUT_SECS",
        default: Some("10"),
    },
    Key {
        name: "http.body_timeout_secs",
        env: "DIALBRIDGE_HTTP_BODY_TIMEOUT_SECS",
        default: Some("30"),
    },
    Key {
        name: "http.idle_timeout_secs",
        env: "DIALBRIDGE_HTTP_IDLE_TIMEOUT_SECS",
        default: Some("60"),
    },
    Key {
        name: "http.max_head_bytes",
        env: "DIALBRIDGE_HTTP_MAX_HEAD_BYTES",
        default: Some("32768"),
    },
    Key {
        name: "http.tls_cert",
        env: "DIALBRIDGE_HTTP_TLS_CERT",
        default: None,
    },
    Key {
        name: "http.tls_key",
        env: "DIALBRIDGE_HTTP_TLS_KEY",
        default: None,
    },
    Key {
        name: "http.public_origin",
        env: "DIALBRIDGE_HTTP_PUBLIC_ORIGIN",
        default: None,
    },
    Key {
        name: "http.trusted_proxies",
        env: "DIALBRIDGE_HTTP_TRUSTED_PROXIES",
        default: Some(""),
    },
    Key {
        name: "sip.listen",
        env: "DIALBRIDGE_SIP_LISTEN",
        default: Some("127.0.0.1:5060"),
    },
    Key {
        name: "sip.transports",
        env: "DIALBRIDGE_SIP_TRANSPORTS",
        default: Some("udp,tcp"),
    },
    Key {
        name: "sip.tcp_max_connections",
        env: "DIALBRIDGE_SIP_TCP_MAX_CONNECTIONS",
        default: Some("auto"),
    },
    Key {
        name: "sip.tcp_max_connections_per_source",
        env: "DIALBRIDGE_SIP_TCP_MAX_CONNECTIONS_PER_SOURCE",
        default: Some("256"),
    },
    Key {
        name: "sip.tcp_first_message_secs",
        env: "DIALBRIDGE_SIP_TCP_FIRST_MESSAGE_SECS",
        default: Some("5"),
    },
    Key {
        name: "sip.tcp_idle_unregistered_secs",
        env: "DIALBRIDGE_SIP_TCP_IDLE_UNREGISTERED_SECS",
        default: Some("60"),
    },
    Key {
        name: "sip.digest_algorithms",
        env: "DIALBRIDGE_SIP_DIGEST_ALGORITHMS",
        default: Some("MD5"),
    },
    Key {
        name: "sip.public_address",
        env: "DIALBRIDGE_PUBLIC_ADDRESS",
        default: None,
    },
    Key {
        name: "rtp.ports",
        env: "DIALBRIDGE_RTP_PORTS",
        default: Some("20000-29999"),
    },
    Key {
        name: "password_hash.memory_kib",
        env: "DIALBRIDGE_PASSWORD_HASH_MEMORY_KIB",
        default: Some("19456"),
    },
    Key {
        name: "password_hash.iterations",
        env: "DIALBRIDGE_PASSWORD_HASH_ITERATIONS",
        default: Some("2"),
    },
    Key {
        name: "recording.workers",
        env: "DIALBRIDGE_RECORDING_WORKERS",
        default: Some("2"),
    },
    Key {
        name: "softphone.auto_answer_ms",
        env: "DIALBRIDGE_SOFTPHONE_AUTO_ANSWER_MS",
        default: Some("1500"),
    },
    Key {
        name: "softphone.ice_servers",
        env: "DIALBRIDGE_SOFTPHONE_ICE_SERVERS",
        default: Some(""),
    },
    Key {
        name: "softphone.turn_username",
        env: "DIALBRIDGE_SOFTPHONE_TURN_USERNAME",
        default: None,
    },
    Key {
        name: "softphone.turn_credential",
        env: "DIALBRIDGE_SOFTPHONE_TURN_CREDENTIAL",
        default: None,
    },
    Key {
        name: "rtp.inactivity_secs",
        env: "DIALBRIDGE_RTP_INACTIVITY_SECS",
        default: Some("60"),
    },
    Key {
        name: "shutdown.grace_secs",
        env: "DIALBRIDGE_SHUTDOWN_GRACE_SECS",
        default: Some("30"),
    },
    Key {
        name: "calls.heartbeat_secs",
        env: "DIALBRIDGE_CALLS_HEARTBEAT_SECS",
        default: Some("30"),
    },
    Key {
        name: "retention.push_events_days",
        env: "DIALBRIDGE_RETENTION_PUSH_EVENTS_DAYS",
        default: Some("7"),
    },
    Key {
        name: "retention.cdrs_days",
        env: "DIALBRIDGE_RETENTION_CDRS_DAYS",
        default: Some("400"),
    },
    Key {
        name: "retention.refusals_days",
        env: "DIALBRIDGE_RETENTION_REFUSALS_DAYS",
        default: Some("30"),
    },
    Key {
        name: "retention.sweep_secs",
        env: "DIALBRIDGE_RETENTION_SWEEP_SECS",
        default: Some("60"),
    },
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("config {origin}: {message}")]
    Value { origin: String, message: String },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: NodeName,
    pub log_level: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub secret_key: Option<SecretKey>,
    pub http_listen: SocketAddr,
    /// What HTTP clients may hold: connection caps, read timeouts, the longest head.
    pub http_limits: dialbridge_http::HttpLimits,
    /// HTTPS: the PEM certificate chain and private key (both, or neither: plain HTTP).
    pub http_tls: Option<(PathBuf, PathBuf)>,
    /// The origin browsers reach the server at (`https://dialbridge.example.com`), when a
    /// reverse proxy rewrites the `Host` header: its pages may open the event stream.
    pub http_public_origin: Option<String>,
    pub sip_listen: SocketAddr,
    pub sip_transports: Vec<Transport>,
    /// What SIP-over-TCP clients may hold.
    pub sip_tcp_limits: dialbridge_engine::TcpLimits,
    /// The digest challenges a REGISTER gets, in order (`MD5` alone by default).
    pub sip_digest: dialbridge_engine::DigestOffer,
    /// The address written into Via, Contact and SDP.
    pub public_address: IpAddr,
    pub rtp_ports: RangeInclusive<u16>,
    pub password_hash_cost: PasswordHashCost,
    pub rtp_inactivity: Duration,
    /// How long a softphone page rings before it answers by itself.
    pub softphone_auto_answer: Duration,
    /// STUN and TURN servers handed to softphone pages (`stun:` / `turn:` / `turns:` URLs),
    /// with the TURN servers' username and credential.
    pub softphone_ice_servers: Vec<String>,
    pub softphone_turn: Option<(String, String)>,
    /// Threads that write recordings (off the media path).
    pub recording_workers: usize,
    pub shutdown_grace: Duration,
    /// How often a bridged call is recorded as still up (what a restart after a crash bills
    /// it up to).
    pub call_heartbeat: Duration,
    pub retention: RetentionPolicy,
    /// How often the retention sweeper runs.
    pub retention_sweep: Duration,
}

/// Where a raw value came from, for error messages.
struct Raw {
    origin: String,
    value: String,
}

impl Config {
    /// Reads `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    pub fn load_from(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<&'static str, Raw> = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            for (key, value) in flatten_file(&text).map_err(|message| ConfigError::File {
                path: path.display().to_string(),
                message,
            })? {
                raw.insert(
                    key,
                    Raw {
                        origin: format!("key {key} in {}", path.display()),
                        value,
                    },
                );
            }
        }
        for key in KEYS {
            if let Some(value) = env(key.env) {
                raw.insert(
                    key.name,
                    Raw {
                        origin: format!("environment variable {}", key.env),
                        value,
                    },
                );
            } else if !raw.contains_key(key.name) {
                if let Some(default) = key.default {
                    raw.insert(
                        key.name,
                        Raw {
                            origin: format!("default of {}", key.name),
                            value: default.to_owned(),
                        },
                    );
                }
            }
        }
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &BTreeMap<&'static str, Raw>) -> Result<Self, ConfigError> {
        fn parse<T>(
            raw: &BTreeMap<&'static str, Raw>,
            key: &str,
            f: impl FnOnce(&str) -> Result<T, String>,
        ) -> Result<Option<T>, ConfigError> {
            raw.get(key)
                .map(|r| {
                    f(r.value.trim()).map_err(|message| ConfigError::Value {
                        origin: r.origin.clone(),
                        message,
                    })
                })
                .transpose()
        }
        fn required<T>(value: Option<T>, key: &str) -> Result<T, ConfigError> {
            value.ok_or_else(|| ConfigError::Value {
                origin: key.to_owned(),
                message: "missing".into(),
            })
        }
        let socket = |s: &str| {
            s.parse::<SocketAddr>()
                .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:5060"))
        };
        let number = |s: &str| s.parse::<u32>().map_err(|_| format!("{s:?} is not a whole number"));

        let node_name = required(
            parse(raw, "node_name", |s| NodeName::parse(s).map_err(|e| e.reason))?,
            "node_name",
        )?;
        let log_level = required(
            parse(raw, "log_level", |s| {
                tracing_subscriber::EnvFilter::try_new(s)
                    .map(|_| s.to_owned())
                    .map_err(|e| format!("{s:?}: {e}"))
            })?,
            "log_level",
        )?;
        let data_dir = required(parse(raw, "data_dir", |s| non_empty(s).map(PathBuf::from))?, "data_dir")?;
        let database_url = parse(raw, "database_url", |s| {
            if s.starts_with("sqlite:") || s.starts_with("postgres:") || s.starts_with("postgresql:") {
                Ok(s.to_owned())
            } else {
                Err(format!("{s:?} is not a sqlite://… or postgres://… URL"))
            }
        })?
        .unwrap_or_else(|| StoreOptions::sqlite_in(&data_dir));
        let secret_key = parse(raw, "secret_key", |s| SecretKey::from_hex(s).map_err(|e| e.to_string()))?;
        let http_listen = required(parse(raw, "http.listen", socket)?, "http.listen")?;
        let within = |low: u32, high: u32| {
            move |s: &str| {
                number(s).and_then(|n| {
                    if (low..=high).contains(&n) {
                        Ok(n)
                    } else {
                        Err(format!("{n} is not between {low} and {high}"))
                    }
                })
            }
        };
        let seconds = |key: &str, high: u32| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(u64::from(required(
                parse(raw, key, within(1, high))?,
                key,
            )?)))
        };
        let count = |key: &str, low: u32, high: u32| -> Result<usize, ConfigError> {
            Ok(required(parse(raw, key, within(low, high))?, key)? as usize)
        };
        // `auto`: fitted to the open-file limit at start (`serve.rs`), marked by `None` here.
        let cap = |key: &str| -> Result<Option<usize>, ConfigError> {
            match raw.get(key).map(|r| r.value.trim()) {
                Some("auto") => Ok(None),
                _ => count(key, 16, 1_000_000).map(Some),
            }
        };
        let path = |s: &str| non_empty(s).map(PathBuf::from);
        let http_tls = match (parse(raw, "http.tls_cert", path)?, parse(raw, "http.tls_key", path)?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Value {
                    origin: "http.tls_cert / http.tls_key".into(),
                    message: "give both the certificate and its key, or neither".into(),
                })
            }
        };
        let http_public_origin = parse(raw, "http.public_origin", web_origin)?;
        let http_limits = dialbridge_http::HttpLimits {
            max_connections: cap("http.max_connections")?.unwrap_or(usize::MAX),
            max_connections_per_source: count("http.max_connections_per_source", 1, 1_000_000)?,
            header_timeout: seconds("http.header_timeout_secs", 3600)?,
            body_timeout: seconds("http.body_timeout_secs", 3600)?,
            idle_timeout: seconds("http.idle_timeout_secs", 86_400)?,
            // Below hyper's own limits (a 64 KiB URI), so an over-long head is always ours to answer.
            max_head_bytes: count("http.max_head_bytes", 1024, 60_000)?,
            trusted_proxies: required(
                parse(raw, "http.trusted_proxies", |s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            p.parse::<ipnet::IpNet>()
                                .or_else(|_| p.parse::<IpAddr>().map(ipnet::IpNet::from))
                                .map_err(|_| format!("{p:?} is not an address or network like 10.0.0.0/8"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })?,
                "http.trusted_proxies",
            )?,
        };
        let sip_listen = required(parse(raw, "sip.listen", socket)?, "sip.listen")?;
        let sip_transports = required(
            parse(raw, "sip.transports", |s| {
                let list: Vec<Transport> = s
                    .split(',')
                    .map(|t| t.trim().parse::<Transport>().map_err(|e| e.reason))
                    .collect::<Result<_, _>>()?;
                if list.is_empty() {
                    return Err("at least one transport".into());
                }
                Ok(list)
            })?,
            "sip.transports",
        )?;
        let sip_tcp_limits = dialbridge_engine::TcpLimits {
            max_connections: cap("sip.tcp_max_connections")?.unwrap_or(usize::MAX),
            max_connections_per_source: count("sip.tcp_max_connections_per_source", 1, 1_000_000)?,
            first_message: seconds("sip.tcp_first_message_secs", 300)?,
            idle_unregistered: seconds("sip.tcp_idle_unregistered_secs", 86_400)?,
        };
        let sip_digest = required(
            parse(raw, "sip.digest_algorithms", dialbridge_engine::DigestOffer::parse)?,
            "sip.digest_algorithms",
        )?;
        let public_address = parse(raw, "sip.public_address", |s| {
            s.parse::<IpAddr>().map_err(|_| format!("{s:?} is not an IP address"))
        })?
        .unwrap_or_else(|| sip_listen.ip());
        let rtp_ports = required(parse(raw, "rtp.ports", parse_port_range)?, "rtp.ports")?;
        let password_hash_cost = PasswordHashCost {
            memory_kib: required(
                parse(raw, "password_hash.memory_kib", number)?,
                "password_hash.memory_kib",
            )?,
            iterations: required(
                parse(raw, "password_hash.iterations", number)?,
                "password_hash.iterations",
            )?,
        };
        dialbridge_store::PasswordHashing::new(password_hash_cost).map_err(|e| ConfigError::Value {
            origin: "password_hash".into(),
            message: e.to_string(),
        })?;
        let recording_workers =
            required(parse(raw, "recording.workers", within(1, 64))?, "recording.workers")? as usize;
        let softphone_auto_answer = Duration::from_millis(u64::from(required(
            parse(raw, "softphone.auto_answer_ms", within(0, 10_000))?,
            "softphone.auto_answer_ms",
        )?));
        let softphone_ice_servers = required(
            parse(raw, "softphone.ice_servers", |s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(|url| {
                        if ["stun:", "turn:", "turns:"]
                            .iter()
                            .any(|scheme| url.starts_with(scheme))
                        {
                            Ok(url.to_owned())
                        } else {
                            Err(format!("{url:?} is no stun:, turn: or turns: URL"))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?,
            "softphone.ice_servers",
        )?;
        let softphone_turn = match (
            parse(raw, "softphone.turn_username", |s| non_empty(s).map(str::to_owned))?,
            parse(raw, "softphone.turn_credential", |s| non_empty(s).map(str::to_owned))?,
        ) {
            (Some(user), Some(credential)) => Some((user, credential)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Value {
                    origin: "softphone.turn_username / softphone.turn_credential".into(),
                    message: "give both, or neither".into(),
                })
            }
        };
        let rtp_inactivity = Duration::from_secs(u64::from(required(
            parse(raw, "rtp.inactivity_secs", number)?,
            "rtp.inactivity_secs",
        )?));
        let shutdown_grace = Duration::from_secs(u64::from(required(
            parse(raw, "shutdown.grace_secs", number)?,
            "shutdown.grace_secs",
        )?));
        let call_heartbeat = Duration::from_secs(u64::from(required(
            parse(raw, "calls.heartbeat_secs", |s| {
                number(s).and_then(|n| {
                    if (1..=3600).contains(&n) {
                        Ok(n)
                    } else {
                        Err(format!("{n} is not between 1 and 3600"))
                    }
                })
            })?,
            "calls.heartbeat_secs",
        )?));
        // Decimal days (0.5 is twelve hours); 0 keeps rows for ever.
        let days = |s: &str| {
            let days: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of days"))?;
            if !(0.0..=36_500.0).contains(&days) {
                return Err(format!("{days} is not between 0 and 36500 days"));
            }
            Ok((days > 0.0).then(|| Duration::from_secs_f64(days * 86_400.0)))
        };
        let retention = RetentionPolicy {
            push_events: required(
                parse(raw, "retention.push_events_days", days)?,
                "retention.push_events_days",
            )?,
            cdrs: required(parse(raw, "retention.cdrs_days", days)?, "retention.cdrs_days")?,
            refusals: required(parse(raw, "retention.refusals_days", days)?, "retention.refusals_days")?,
        };
        let retention_sweep = Duration::from_secs(u64::from(required(
            parse(raw, "retention.sweep_secs", |s| {
                number(s).and_then(|n| if n >= 1 { Ok(n) } else { Err("at least 1".into()) })
            })?,
            "retention.sweep_secs",
        )?));
        Ok(Self {
            node_name,
            log_level,
            data_dir,
            database_url,
            secret_key,
            http_listen,
            http_limits,
            http_tls,
            http_public_origin,
            recording_workers,
            sip_listen,
            sip_transports,
            sip_tcp_limits,
            sip_digest,
            public_address,
            rtp_ports,
            password_hash_cost,
            rtp_inactivity,
            softphone_auto_answer,
            softphone_ice_servers,
            softphone_turn,
            shutdown_grace,
            call_heartbeat,
            retention,
            retention_sweep,
        })
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            database_url: self.database_url.clone(),
            password_hash_cost: self.password_hash_cost,
        }
    }
}

/// A web origin: scheme and host (and port), nothing after it.
fn web_origin(s: &str) -> Result<String, String> {
    let origin = s.trim_end_matches('/');
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err("must be an origin (scheme://host[:port]), with no path".into());
    }
    // A browser's Origin never names the scheme's default port.
    let origin = origin.to_ascii_lowercase();
    let origin = match origin.strip_suffix(":443").filter(|o| o.starts_with("https://")) {
        Some(without) => without.to_owned(),
        None => match origin.strip_suffix(":80").filter(|o| o.starts_with("http://")) {
            Some(without) => without.to_owned(),
            None => origin,
        },
    };
    Ok(origin)
}

fn non_empty(s: &str) -> Result<&str, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s)
    }
}

/// "20000-29999": an even first port (RTP takes even ports, RTCP the odd one above).
fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let err = || format!("{s:?} is not a port range like 20000-29999");
    let (low, high) = s.split_once('-').ok_or_else(err)?;
    let low: u16 = low.trim().parse().map_err(|_| err())?;
    let high: u16 = high.trim().parse().map_err(|_| err())?;
    if low < 1024 || high <= low {
        return Err(format!(
            "{s:?}: the range must start at 1024 or above and hold at least two ports"
        ));
    }
    Ok(low..=high)
}

/// Flattens the file's tables into `section.key` → value text, rejecting unknown keys.
fn flatten_file(text: &str) -> Result<Vec<(&'static str, String)>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = Vec::new();
    let mut visit = |name: String, value: &toml::Value| -> Result<(), String> {
        let key = KEYS
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| format!("unknown key {name}"))?;
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{name}: expected a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(format!("{name}: unexpected {} value", other.type_str())),
        };
        out.push((key.name, text));
        Ok(())
    };
    for (name, value) in &table {
        match value {
            toml::Value::Table(section) => {
                for (inner, value) in section {
                    visit(format!("{name}.{inner}"), value)?;
                }
            }
            value => visit(name.clone(), value)?,
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "config_test.rs"]
mod tests;

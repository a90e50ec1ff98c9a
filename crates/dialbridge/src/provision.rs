//! `dialbridge provision FILE.toml`: a declarative, idempotent description of enterprises and
//! what belongs to them. The whole file is parsed and checked against the store before
//! anything is written, then every change is applied in one transaction: a bad file changes
//! nothing. Runtime state (who is online, which phone is bound) is never touched.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use dialbridge_core::{
    AgentSettings, BlacklistPattern, CallPower, CallerId, Cno, DestinationPolicy, DestinationRates, EnterpriseId,
    EnterpriseSettings, ExtensionNumber, Money, NumberFormat, NumberLimit, PushTarget, SipAddress, Trunk,
    ValidationError,
};
use dialbridge_store::{md5_hex, Store, Tx};
use serde::Deserialize;
use toml::Spanned;

use crate::config::Config;

#[derive(Args)]
pub struct ProvisionArgs {
    /// The provisioning file.
    file: PathBuf,
    /// Also delete what the file omits (within the enterprises it lists, and trunks).
    #[arg(long)]
    prune: bool,
    /// Print the changes without applying them.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    trunk: Vec<Spanned<TrunkSpec>>,
    #[serde(default)]
    enterprise: Vec<Spanned<EnterpriseSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrunkSpec {
    name: String,
    address: String,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    outbound_proxy: Option<String>,
    #[serde(default)]
    max_channels: Option<u32>,
    #[serde(default)]
    enterprises: Vec<i64>,
    #[serde(default)]
    customer_number_format: String,
    #[serde(default)]
    caller_id_format: String,
    #[serde(default)]
    priority: u32,
    #[serde(default)]
    keepalive_secs: u32,
    #[serde(default)]
    register_secs: u32,
    #[serde(default)]
    sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberLimitSpec {
    count: u32,
    window_minutes: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnterpriseSpec {
    id: i64,
    name: String,
    status: Option<String>,
    time_zone: Option<String>,
    rate_per_minute: Option<String>,
    credit_limit: Option<String>,
    max_call_minutes: Option<u32>,
    outbound_enabled: Option<bool>,
    interface_enabled: Option<bool>,
    default_caller_id: Option<String>,
    agent_caller_id: Option<String>,
    sync_default: Option<bool>,
    agent_ring_timeout_secs: Option<u32>,
    customer_ring_timeout_secs: Option<u32>,
    wrapup_secs: Option<u32>,
    number_limit: Option<NumberLimitSpec>,
    concurrency_cap: Option<u32>,
    /// Countries called besides the home one (ISO codes; `"*"`: every one).
    #[serde(default)]
    allowed_countries: Vec<String>,
    /// Special classes called: premium, satellite, shared_cost, non_geographic.
    #[serde(default)]
    allowed_classes: Vec<String>,
    /// International prefix → price per minute.
    #[serde(default)]
    destination_rates: BTreeMap<String, String>,
    push_order: Option<String>,
    push_order_wait_secs: Option<u32>,
    /// Web origins whose pages may embed the agent toolbar.
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// Pause reasons agents pick from in the toolbar.
    #[serde(default)]
    pause_reasons: Vec<String>,
    /// Which calls are recorded: off, bridge, answer.
    recording: Option<String>,
    recording_max_minutes: Option<u32>,
    recording_retention_days: Option<u32>,
    /// What recordFile carries: name or url.
    record_file_form: Option<String>,
    #[serde(default)]
    blacklist: Vec<String>,
    #[serde(default)]
    admin: Vec<Spanned<AdminSpec>>,
    #[serde(default)]
    agent: Vec<Spanned<AgentSpec>>,
    #[serde(default)]
    extension: Vec<Spanned<ExtensionSpec>>,
    #[serde(default)]
    number: Vec<Spanned<NumberSpec>>,
    #[serde(default)]
    push_target: Vec<Spanned<PushTargetSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminSpec {
    user: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSpec {
    cno: String,
    name: String,
    password: Option<String>,
    call_power: Option<String>,
    area_code: Option<String>,
    wrapup_secs: Option<u32>,
    outbound_allowed: Option<bool>,
    active: Option<bool>,
    /// Overrides the enterprise's recording: off, bridge, answer.
    recording: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtensionSpec {
    number: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberSpec {
    number: String,
    trunk: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushTargetSpec {
    name: String,
    #[serde(rename = "type")]
    push_type: String,
    url: String,
    method: Option<String>,
    timeout_ms: Option<u32>,
    retries: Option<u32>,
    format: Option<String>,
    charset: Option<String>,
    #[serde(default)]
    map: BTreeMap<String, String>,
}

/// A provisioning error: where in the file, and what.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {path}: {message}")]
pub struct SpecError {
    file: String,
    line: usize,
    path: String,
    message: String,
}

/// The file after checking: domain values, ready to compare with the store.
struct Desired {
    trunks: Vec<(Trunk, Option<String>)>,
    enterprises: Vec<DesiredEnterprise>,
}

struct DesiredEnterprise {
    id: EnterpriseId,
    settings: EnterpriseSettings,
    admins: Vec<(String, String)>,
    agents: Vec<(Cno, AgentSettings, Option<String>)>,
    extensions: Vec<(ExtensionNumber, String)>,
    numbers: Vec<CallerId>,
    blacklist: BTreeSet<BlacklistPattern>,
    push_targets: Vec<PushTarget>,
}

struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span_start: usize, path: impl Into<String>, message: impl fmt::Display) -> SpecError {
        SpecError {
            file: self.file.to_owned(),
            line: self.line_of(span_start),
            path: path.into(),
            message: message.to_string(),
        }
    }
}

fn field(path: &str, e: ValidationError) -> (String, String) {
    (format!("{path}.{}", e.field), e.reason)
}

/// Parses and checks the file on its own (no store): syntax, unknown keys, formats,
/// duplicates within the file.
fn parse(file_name: &str, text: &str) -> Result<Desired, SpecError> {
    let at = Locator { file: file_name, text };
    let spec: FileSpec = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        at.error(offset, "file", e.message())
    })?;

    let mut trunks = Vec::new();
    let mut trunk_names = HashSet::new();
    for (i, spanned) in spec.trunk.iter().enumerate() {
        let start = spanned.span().start;
        let t = spanned.get_ref();
        let path = format!("trunk[{i}] ({})", t.name);
        let fail = |(p, m): (String, String)| at.error(start, p, m);
        let trunk = Trunk {
            name: t.name.clone(),
            address: SipAddress::parse("address", &t.address).map_err(|e| fail(field(&path, e)))?,
            transport: t
                .transport
                .as_deref()
                .unwrap_or("udp")
                .parse()
                .map_err(|e| fail(field(&path, e)))?,
            auth_username: t.username.clone(),
            outbound_proxy: t
                .outbound_proxy
                .as_deref()
                .map(|p| SipAddress::parse("outbound_proxy", p))
                .transpose()
                .map_err(|e| fail(field(&path, e)))?,
            max_channels: t.max_channels.unwrap_or(30),
            enterprises: t
                .enterprises
                .iter()
                .map(|e| EnterpriseId::new(*e))
                .collect::<Result<_, _>>()
                .map_err(|e| fail((format!("{path}.enterprises"), e.reason)))?,
            customer_number_format: NumberFormat::parse(&t.customer_number_format)
                .map_err(|e| fail((format!("{path}.customer_number_format"), e.reason)))?,
            caller_id_format: NumberFormat::parse(&t.caller_id_format)
                .map_err(|e| fail((format!("{path}.caller_id_format"), e.reason)))?,
            priority: t.priority,
            keepalive_secs: t.keepalive_secs,
            register_secs: t.register_secs,
            sources: t
                .sources
                .iter()
                .map(|s| dialbridge_core::parse_trunk_source(s))
                .collect::<Result<_, _>>()
                .map_err(|e| fail((format!("{path}.sources"), e.reason)))?,
        };
        trunk.validate().map_err(|e| fail(field(&path, e)))?;
        if let Some(p) = &t.password {
            dialbridge_core::validate_password("password", p).map_err(|e| fail(field(&path, e)))?;
        }
        if !trunk_names.insert(trunk.name.clone()) {
            return Err(fail((format!("{path}.name"), "duplicate trunk name".into())));
        }
        trunks.push((trunk, t.password.clone()));
    }

    let mut enterprises = Vec::new();
    let mut enterprise_ids = HashSet::new();
    let mut all_numbers: BTreeMap<String, EnterpriseId> = BTreeMap::new();
    for (i, spanned) in spec.enterprise.iter().enumerate() {
        let start = spanned.span().start;
        let e = spanned.get_ref();
        let path = format!("enterprise[{i}] ({})", e.id);
        let fail = |(p, m): (String, String)| at.error(start, p, m);
        let id = EnterpriseId::new(e.id).map_err(|err| fail((format!("{path}.id"), err.reason)))?;
        if !enterprise_ids.insert(id) {
            return Err(fail((format!("{path}.id"), "duplicate enterprise id".into())));
        }
        let mut settings = EnterpriseSettings::new(e.name.clone());
        if let Some(v) = &e.status {
            settings.status = v.parse().map_err(|err| fail(field(&path, err)))?;
        }
        if let Some(v) = &e.time_zone {
            settings.time_zone = v.clone();
        }
        if let Some(v) = &e.rate_per_minute {
            settings.rate_per_minute = v
                .parse::<Money>()
                .map_err(|err| fail((format!("{path}.rate_per_minute"), err.reason)))?;
        }
        if let Some(v) = &e.credit_limit {
            settings.credit_limit = v
                .parse::<Money>()
                .map_err(|err| fail((format!("{path}.credit_limit"), err.reason)))?;
        }
        // 0 means no cap, as in `admin enterprise update --max-call-minutes 0`.
        settings.max_call_minutes = e.max_call_minutes.filter(|&minutes| minutes > 0);
        settings.outbound_enabled = e.outbound_enabled.unwrap_or(settings.outbound_enabled);
        settings.interface_enabled = e.interface_enabled.unwrap_or(settings.interface_enabled);
        if let Some(v) = &e.default_caller_id {
            settings.default_caller_id = Some(
                dialbridge_core::validate_caller_id(v)
                    .map_err(|err| fail((format!("{path}.default_caller_id"), err.reason)))?,
            );
        }
        if let Some(v) = &e.agent_caller_id {
            settings.agent_caller_id = Some(
                dialbridge_core::validate_caller_id(v)
                    .map_err(|err| fail((format!("{path}.agent_caller_id"), err.reason)))?,
            );
        }
        settings.sync_default = e.sync_default.unwrap_or(settings.sync_default);
        settings.agent_ring_timeout_secs = e.agent_ring_timeout_secs.unwrap_or(settings.agent_ring_timeout_secs);
        settings.customer_ring_timeout_secs = e
            .customer_ring_timeout_secs
            .unwrap_or(settings.customer_ring_timeout_secs);
        settings.wrapup_secs = e.wrapup_secs.unwrap_or(settings.wrapup_secs);
        settings.number_limit = e.number_limit.as_ref().map(|l| NumberLimit {
            count: l.count,
            window_minutes: l.window_minutes,
        });
        settings.concurrency_cap = e.concurrency_cap;
        if let Some(v) = &e.push_order {
            settings.push_order = v.parse().map_err(|err| fail(field(&path, err)))?;
        }
        settings.push_order_wait_secs = e.push_order_wait_secs.unwrap_or(settings.push_order_wait_secs);
        settings.allowed_origins = e.allowed_origins.clone();
        settings.pause_reasons = e.pause_reasons.clone();
        if let Some(v) = &e.recording {
            settings.recording = v.parse().map_err(|err| fail(field(&path, err)))?;
        }
        settings.recording_max_minutes = e.recording_max_minutes.unwrap_or(settings.recording_max_minutes);
        settings.recording_retention_days = e.recording_retention_days;
        if let Some(v) = &e.record_file_form {
            settings.record_file_form = v.parse().map_err(|err| fail(field(&path, err)))?;
        }
        settings.destinations = DestinationPolicy::parse(&e.allowed_countries.join(","), &e.allowed_classes.join(","))
            .map_err(|err| fail(field(&path, err)))?;
        let mut rates = Vec::with_capacity(e.destination_rates.len());
        for (prefix, rate) in &e.destination_rates {
            let rate = rate
                .parse::<Money>()
                .map_err(|err| fail((format!("{path}.destination_rates.{prefix}"), err.reason)))?;
            rates.push((prefix.as_str(), rate));
        }
        settings.destination_rates =
            DestinationRates::new(rates).map_err(|err| fail((format!("{path}.destination_rates"), err.reason)))?;
        settings.validate().map_err(|err| fail(field(&path, err)))?;

        let mut admins = Vec::new();
        let mut seen = HashSet::new();
        for (j, a) in e.admin.iter().enumerate() {
            let a_at = |p: String, m: String| at.error(a.span().start, p, m);
            let a = a.get_ref();
            let p = format!("{path}.admin[{j}]");
            dialbridge_core::validate_user_name(&a.user).map_err(|err| a_at(format!("{p}.user"), err.reason))?;
            dialbridge_core::validate_password("password", &a.password)
                .map_err(|err| a_at(format!("{p}.password"), err.reason))?;
            if !seen.insert(a.user.clone()) {
                return Err(a_at(format!("{p}.user"), format!("duplicate admin user {:?}", a.user)));
            }
            admins.push((a.user.clone(), a.password.clone()));
        }

        let mut agents = Vec::new();
        let mut seen = HashSet::new();
        for (j, a) in e.agent.iter().enumerate() {
            let a_at = |p: String, m: String| at.error(a.span().start, p, m);
            let a = a.get_ref();
            let p = format!("{path}.agent[{j}]");
            let cno = Cno::parse(&a.cno).map_err(|err| a_at(format!("{p}.cno"), err.reason))?;
            if !seen.insert(cno.clone()) {
                return Err(a_at(format!("{p}.cno"), format!("duplicate cno {cno}")));
            }
            let mut s = AgentSettings::new(a.name.clone());
            if let Some(v) = &a.call_power {
                s.call_power = CallPower::parse(v).map_err(|err| a_at(format!("{p}.call_power"), err.reason))?;
            }
            s.area_code = a.area_code.clone();
            s.wrapup_secs = a.wrapup_secs;
            s.outbound_allowed = a.outbound_allowed.unwrap_or(true);
            s.active = a.active.unwrap_or(true);
            if let Some(v) = &a.recording {
                s.recording = Some(
                    v.parse()
                        .map_err(|err: dialbridge_core::ValidationError| a_at(format!("{p}.recording"), err.reason))?,
                );
            }
            s.validate()
                .map_err(|err| a_at(format!("{p}.{}", err.field), err.reason))?;
            if let Some(pw) = &a.password {
                dialbridge_core::validate_password("password", pw)
                    .map_err(|err| a_at(format!("{p}.password"), err.reason))?;
            }
            agents.push((cno, s, a.password.clone()));
        }

        let mut extensions = Vec::new();
        let mut seen = HashSet::new();
        for (j, x) in e.extension.iter().enumerate() {
            let x_at = |p: String, m: String| at.error(x.span().start, p, m);
            let x = x.get_ref();
            let p = format!("{path}.extension[{j}]");
            let number = ExtensionNumber::parse(&x.number).map_err(|err| x_at(format!("{p}.number"), err.reason))?;
            dialbridge_core::validate_password("password", &x.password)
                .map_err(|err| x_at(format!("{p}.password"), err.reason))?;
            if !seen.insert(number.clone()) {
                return Err(x_at(format!("{p}.number"), format!("duplicate extension {number}")));
            }
            extensions.push((number, x.password.clone()));
        }

        let mut numbers = Vec::new();
        for (j, n) in e.number.iter().enumerate() {
            let n_at = |p: String, m: String| at.error(n.span().start, p, m);
            let n = n.get_ref();
            let p = format!("{path}.number[{j}]");
            let number = dialbridge_core::validate_caller_id(&n.number)
                .map_err(|err| n_at(format!("{p}.number"), err.reason))?;
            if let Some(owner) = all_numbers.insert(number.clone(), id) {
                return Err(n_at(
                    format!("{p}.number"),
                    format!("number {number} is listed twice (also under {owner})"),
                ));
            }
            numbers.push(CallerId {
                number,
                enterprise_id: id,
                trunk: n.trunk.clone(),
            });
        }

        let mut blacklist = BTreeSet::new();
        for (j, b) in e.blacklist.iter().enumerate() {
            let pattern =
                BlacklistPattern::parse(b).map_err(|err| fail((format!("{path}.blacklist[{j}]"), err.reason)))?;
            blacklist.insert(pattern);
        }

        let mut push_targets = Vec::new();
        let mut seen = HashSet::new();
        for (j, t) in e.push_target.iter().enumerate() {
            let t_at = |p: String, m: String| at.error(t.span().start, p, m);
            let t = t.get_ref();
            let p = format!("{path}.push_target[{j}]");
            let target = PushTarget {
                name: t.name.clone(),
                push_type: t
                    .push_type
                    .parse()
                    .map_err(|err: ValidationError| t_at(format!("{p}.type"), err.reason))?,
                url: t.url.clone(),
                method: t.method.as_deref().unwrap_or("post").parse().map_err(|err| {
                    let (fp, m) = field(&p, err);
                    t_at(fp, m)
                })?,
                timeout_ms: t.timeout_ms.unwrap_or(dialbridge_core::DEFAULT_PUSH_TIMEOUT_MS),
                retries: t.retries.unwrap_or(dialbridge_core::DEFAULT_PUSH_RETRIES),
                format: t.format.as_deref().unwrap_or("legacy").parse().map_err(|err| {
                    let (fp, m) = field(&p, err);
                    t_at(fp, m)
                })?,
                charset: t.charset.as_deref().unwrap_or("utf-8").parse().map_err(|err| {
                    let (fp, m) = field(&p, err);
                    t_at(fp, m)
                })?,
                name_mapping: t.map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
            target
                .validate()
                .map_err(|err| t_at(format!("{p}.{}", err.field), err.reason))?;
            if !seen.insert(target.name.clone()) {
                return Err(t_at(
                    format!("{p}.name"),
                    format!("duplicate push target {:?}", target.name),
                ));
            }
            push_targets.push(target);
        }

        enterprises.push(DesiredEnterprise {
            id,
            settings,
            admins,
            agents,
            extensions,
            numbers,
            blacklist,
            push_targets,
        });
    }
    Ok(Desired { trunks, enterprises })
}

/// One change the file asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    action: &'static str,
    what: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.action, self.what)
    }
}

fn change(action: &'static str, what: impl Into<String>) -> Change {
    Change {
        action,
        what: what.into(),
    }
}

/// Compares the file with the store and applies what differs, in this transaction. Checks
/// that need the store (a caller id owned by another enterprise, a trunk an enterprise may not
/// use) fail here, before or during the writes; the caller drops the transaction on error.
async fn reconcile(tx: &mut Tx<'_>, desired: &Desired, prune: bool) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();

    let file_enterprises: HashSet<EnterpriseId> = desired.enterprises.iter().map(|e| e.id).collect();
    for e in &desired.enterprises {
        match tx.enterprise(e.id).await? {
            None => {
                let mut settings = e.settings.clone();
                // The caller ids it names are set after the numbers exist.
                settings.default_caller_id = None;
                settings.agent_caller_id = None;
                tx.insert_enterprise(e.id, &settings).await?;
                changes.push(change("create", format!("enterprise {}", e.id)));
            }
            Some(current) => {
                let mut settings = e.settings.clone();
                settings.default_caller_id = current.settings.default_caller_id.clone();
                settings.agent_caller_id = current.settings.agent_caller_id.clone();
                if current.settings != settings {
                    tx.update_enterprise(e.id, &settings).await?;
                    changes.push(change("update", format!("enterprise {}", e.id)));
                }
            }
        }
    }

    let current_trunks = tx.trunks().await?;
    for (trunk, password) in &desired.trunks {
        for enterprise in &trunk.enterprises {
            if !file_enterprises.contains(enterprise) && tx.enterprise(*enterprise).await?.is_none() {
                anyhow::bail!("trunk {}: enterprise {enterprise} does not exist", trunk.name);
            }
        }
        let current = current_trunks.iter().find(|t| t.trunk.name == trunk.name);
        let password_differs = match password {
            Some(p) => tx.trunk_password(&trunk.name).await?.as_deref() != Some(p.as_str()),
            None => false,
        };
        match current {
            None => {
                tx.upsert_trunk(trunk, password.as_deref()).await?;
                changes.push(change("create", format!("trunk {}", trunk.name)));
            }
            Some(c) if c.trunk != *trunk || password_differs => {
                tx.upsert_trunk(trunk, password.as_deref()).await?;
                changes.push(change("update", format!("trunk {}", trunk.name)));
            }
            Some(_) => {}
        }
    }

    for e in &desired.enterprises {
        let id = e.id;
        // Admin accounts.
        let current_admins = tx.admin_user_names(id).await?;
        for (user, password) in &e.admins {
            match tx.admin_password_md5(id, user).await? {
                None => {
                    tx.set_admin(id, user, password).await?;
                    changes.push(change("create", format!("admin {id}/{user}")));
                }
                Some(md5) if md5 != md5_hex(password) => {
                    tx.set_admin(id, user, password).await?;
                    changes.push(change("update", format!("admin {id}/{user} (password)")));
                }
                Some(_) => {}
            }
        }
        if prune {
            for user in current_admins.iter().filter(|u| !e.admins.iter().any(|(a, _)| a == *u)) {
                tx.delete_admin(id, user).await?;
                changes.push(change("delete", format!("admin {id}/{user}")));
            }
        }

        // Agents.
        let current_agents = tx.agents(id).await?;
        for (cno, settings, password) in &e.agents {
            match current_agents.iter().find(|a| a.cno == *cno) {
                None => {
                    tx.insert_agent(id, cno, settings, password.as_deref()).await?;
                    changes.push(change("create", format!("agent {id}/{cno}")));
                }
                Some(current) => {
                    let mut what = Vec::new();
                    if current.settings != *settings {
                        tx.update_agent(id, cno, settings).await?;
                        what.push("settings");
                    }
                    if let Some(p) = password {
                        if !tx.agent_password_matches(id, cno, &md5_hex(p)).await? {
                            tx.set_agent_password(id, cno, p).await?;
                            what.push("password");
                        }
                    }
                    if !what.is_empty() {
                        changes.push(change("update", format!("agent {id}/{cno} ({})", what.join(", "))));
                    }
                }
            }
        }
        if prune {
            for a in current_agents
                .iter()
                .filter(|a| !e.agents.iter().any(|(c, _, _)| *c == a.cno))
            {
                tx.delete_agent(id, &a.cno).await?;
                changes.push(change("delete", format!("agent {id}/{}", a.cno)));
            }
        }

        // Extensions.
        let current_extensions = tx.extensions(id).await?;
        for (number, password) in &e.extensions {
            match tx.extension_password(id, number).await? {
                None => {
                    tx.set_extension(id, number, password).await?;
                    changes.push(change("create", format!("extension {id}/{number}")));
                }
                Some(current) if current != *password => {
                    tx.set_extension(id, number, password).await?;
                    changes.push(change("update", format!("extension {id}/{number} (password)")));
                }
                Some(_) => {}
            }
        }
        if prune {
            for number in current_extensions
                .iter()
                .filter(|n| !e.extensions.iter().any(|(x, _)| x == *n))
            {
                tx.delete_extension(id, number).await?;
                changes.push(change("delete", format!("extension {id}/{number}")));
            }
        }

        // Caller ids.
        let current_numbers = tx.caller_ids(Some(id)).await?;
        for number in &e.numbers {
            match current_numbers.iter().find(|c| c.number == number.number) {
                Some(c) if c == number => {}
                found => {
                    tx.upsert_caller_id(number)
                        .await
                        .with_context(|| format!("enterprise {id}: number {}", number.number))?;
                    let action = if found.is_some() { "update" } else { "create" };
                    changes.push(change(
                        action,
                        format!("number {id}/{} via {}", number.number, number.trunk),
                    ));
                }
            }
        }
        if prune {
            for c in current_numbers
                .iter()
                .filter(|c| !e.numbers.iter().any(|n| n.number == c.number))
            {
                tx.delete_caller_id(id, &c.number).await?;
                changes.push(change("delete", format!("number {id}/{}", c.number)));
            }
        }

        // The default caller id, now that the numbers are in place.
        let current = tx
            .enterprise(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("enterprise {id} vanished"))?;
        let named = [
            ("default_caller_id", &e.settings.default_caller_id),
            ("agent_caller_id", &e.settings.agent_caller_id),
        ];
        for (key, clid) in named {
            if let Some(clid) = clid {
                let owned = tx.caller_ids(Some(id)).await?.iter().any(|c| c.number == *clid);
                if !owned {
                    anyhow::bail!("enterprise {id}: {key} {clid} is not one of the enterprise's numbers");
                }
            }
        }
        if (&current.settings.default_caller_id, &current.settings.agent_caller_id)
            != (&e.settings.default_caller_id, &e.settings.agent_caller_id)
        {
            let mut settings = current.settings.clone();
            settings.default_caller_id = e.settings.default_caller_id.clone();
            settings.agent_caller_id = e.settings.agent_caller_id.clone();
            tx.update_enterprise(id, &settings).await?;
            changes.push(change("update", format!("enterprise {id} (caller ids)")));
        }

        // Blacklist.
        let current_blacklist: BTreeSet<BlacklistPattern> = tx.blacklist(id).await?.into_iter().collect();
        for pattern in e.blacklist.difference(&current_blacklist) {
            tx.insert_blacklist(id, pattern).await?;
            changes.push(change("create", format!("blacklist {id}/{pattern}")));
        }
        if prune {
            for pattern in current_blacklist.difference(&e.blacklist) {
                tx.delete_blacklist(id, pattern).await?;
                changes.push(change("delete", format!("blacklist {id}/{pattern}")));
            }
        }

        // Push targets.
        let current_targets = tx.push_targets(id).await?;
        for target in &e.push_targets {
            match current_targets.iter().find(|t| t.name == target.name) {
                Some(t) if t == target => {}
                found => {
                    tx.upsert_push_target(id, target).await?;
                    let action = if found.is_some() { "update" } else { "create" };
                    changes.push(change(action, format!("push target {id}/{}", target.name)));
                }
            }
        }
        if prune {
            for t in current_targets
                .iter()
                .filter(|t| !e.push_targets.iter().any(|d| d.name == t.name))
            {
                tx.delete_push_target(id, &t.name).await?;
                changes.push(change("delete", format!("push target {id}/{}", t.name)));
            }
        }
    }

    if prune {
        for t in current_trunks
            .iter()
            .filter(|t| !desired.trunks.iter().any(|(d, _)| d.name == t.trunk.name))
        {
            tx.delete_trunk(&t.trunk.name)
                .await
                .with_context(|| format!("pruning trunk {}", t.trunk.name))?;
            changes.push(change("delete", format!("trunk {}", t.trunk.name)));
        }
    }
    Ok(changes)
}

/// Parses, checks and applies `text`; returns the changes made (or that would be made).
pub async fn apply(
    store: &Store,
    file_name: &str,
    text: &str,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<Vec<Change>> {
    let desired = parse(file_name, text)?;
    let mut tx = store.begin().await?;
    let changes = reconcile(&mut tx, &desired, prune).await?;
    if !dry_run {
        tx.commit().await?;
    }
    Ok(changes)
}

pub async fn run(config: &Config, args: ProvisionArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let store = crate::open_store(config).await?;
    let result = apply(
        &store,
        &args.file.display().to_string(),
        &text,
        args.prune,
        args.dry_run,
    )
    .await;
    store.close().await;
    let changes = result?;
    if args.json {
        println!("{}", serde_json::json!({"changes": changes, "applied": !args.dry_run}));
    } else if changes.is_empty() {
        println!("no changes");
    } else {
        for c in &changes {
            println!("{c}");
        }
        let verb = if args.dry_run {
            "would be made (dry run)"
        } else {
            "applied"
        };
        println!("{} change(s) {verb}", changes.len());
    }
    Ok(())
}

#[cfg(test)]
#[path = "provision_test.rs"]
mod tests;

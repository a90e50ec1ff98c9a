//! Operations on the operator-configured model: enterprises, admins, agents, extensions,
//! trunks, caller ids, blacklist entries, push targets, balance top-ups.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{query, query_as, Row};
use dialbridge_core::{
    AgentSettings, BlacklistPattern, CallPower, CallerId, Cno, DestinationPolicy, DestinationRates, Enterprise,
    EnterpriseId, EnterpriseSettings, ExtensionNumber, Money, NumberFormat, NumberLimit, PushTarget, SipAddress, Trunk,
};

use crate::corrupt;
use crate::{classify_constraint, StoreError, Tx};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}

fn opt_u32(value: Option<u32>) -> Option<i64> {
    value.map(i64::from)
}

/// A write that must have touched one row: `NotFound(what)` when it touched none.
fn exactly_one(done: crate::db::Done, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if done.rows_affected() == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

fn to_u32(field: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{field} = {value}")))
}

/// An agent as stored: its settings and whether it has a login password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: i64,
    pub enterprise_id: EnterpriseId,
    pub cno: Cno,
    pub settings: AgentSettings,
    pub has_password: bool,
    /// Raised by each kick: sessions issued before it are over.
    pub session_epoch: i64,
}

/// An admin account's credential: md5 of its password, which the legacy seed scheme needs.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredential {
    pub enterprise_id: EnterpriseId,
    pub user_name: String,
    pub password_md5: String,
}

impl std::fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredential")
            .field("enterprise_id", &self.enterprise_id)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

/// A trunk as stored: its settings and whether it has a digest password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkRecord {
    pub trunk: Trunk,
    pub has_password: bool,
}

/// A phone an agent has used, and whether it is the bound one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPhoneRecord {
    pub cno: Cno,
    pub phone_type: dialbridge_core::PhoneType,
    pub number: String,
    pub bound: bool,
}

const ENTERPRISE_COLUMNS: &str =
    "id, name, status, time_zone, balance, rate_per_minute, outbound_enabled, interface_enabled, \
     default_caller_id, sync_default, agent_ring_timeout_secs, customer_ring_timeout_secs, wrapup_secs, \
     number_limit_count, number_limit_window_minutes, concurrency_cap, agent_caller_id, credit_limit, held, \
     max_call_minutes, allowed_countries, allowed_classes, destination_rates, push_order, push_order_wait_secs, \
     allowed_origins, pause_reasons, recording, recording_max_minutes, recording_retention_days, record_file_form";

fn enterprise_from_row(row: &Row) -> Result<Enterprise, StoreError> {
    let number_limit = match (
        row.try_get::<Option<i64>>("number_limit_count")?,
        row.try_get::<Option<i64>>("number_limit_window_minutes")?,
    ) {
        (Some(count), Some(window)) => Some(NumberLimit {
            count: to_u32("number_limit_count", count)?,
            window_minutes: to_u32("number_limit_window_minutes", window)?,
        }),
        _ => None,
    };
    Ok(Enterprise {
        id: EnterpriseId::new(row.try_get("id")?).map_err(corrupt)?,
        balance: Money::from_ten_thousandths(row.try_get("balance")?),
        held: Money::from_ten_thousandths(row.try_get("held")?),
        settings: EnterpriseSettings {
            name: row.try_get("name")?,
            status: row.try_get::<String>("status")?.parse().map_err(corrupt)?,
            time_zone: row.try_get("time_zone")?,
            rate_per_minute: Money::from_ten_thousandths(row.try_get("rate_per_minute")?),
            credit_limit: Money::from_ten_thousandths(row.try_get("credit_limit")?),
            max_call_minutes: row
                .try_get::<Option<i64>>("max_call_minutes")?
                .map(|m| to_u32("max_call_minutes", m))
                .transpose()?,
            outbound_enabled: row.try_get::<i64>("outbound_enabled")? != 0,
            interface_enabled: row.try_get::<i64>("interface_enabled")? != 0,
            default_caller_id: row.try_get("default_caller_id")?,
            agent_caller_id: row.try_get("agent_caller_id")?,
            sync_default: row.try_get::<i64>("sync_default")? != 0,
            agent_ring_timeout_secs: to_u32("agent_ring_timeout_secs", row.try_get("agent_ring_timeout_secs")?)?,
            customer_ring_timeout_secs: to_u32(
                "customer_ring_timeout_secs",
                row.try_get("customer_ring_timeout_secs")?,
            )?,
            wrapup_secs: to_u32("wrapup_secs", row.try_get("wrapup_secs")?)?,
            number_limit,
            concurrency_cap: row
                .try_get::<Option<i64>>("concurrency_cap")?
                .map(|c| to_u32("concurrency_cap", c))
                .transpose()?,
            destinations: DestinationPolicy::parse(
                &row.try_get::<String>("allowed_countries")?,
                &row.try_get::<String>("allowed_classes")?,
            )
            .map_err(corrupt)?,
            allowed_origins: row
                .try_get::<String>("allowed_origins")?
                .split(' ')
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
            pause_reasons: row
                .try_get::<String>("pause_reasons")?
                .lines()
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            push_order: row.try_get::<String>("push_order")?.parse().map_err(corrupt)?,
            push_order_wait_secs: to_u32("push_order_wait_secs", row.try_get("push_order_wait_secs")?)?,
            destination_rates: DestinationRates::parse(&row.try_get::<String>("destination_rates")?)
                .map_err(corrupt)?,
            recording: row.try_get::<String>("recording")?.parse().map_err(corrupt)?,
            recording_max_minutes: to_u32("recording_max_minutes", row.try_get("recording_max_minutes")?)?,
            recording_retention_days: row
                .try_get::<Option<i64>>("recording_retention_days")?
                .map(|d| to_u32("recording_retention_days", d))
                .transpose()?,
            record_file_form: row.try_get::<String>("record_file_form")?.parse().map_err(corrupt)?,
        },
    })
}

/// `password_hash` is read for `has_password` (and by the configuration cache's bulk read).
const AGENT_COLUMNS: &str = "id, enterprise_id, cno, name, password_hash, active, outbound_allowed, call_power, \
     area_code, wrapup_secs, session_epoch, recording";

fn agent_from_row(row: &Row) -> Result<AgentRecord, StoreError> {
    Ok(AgentRecord {
        id: row.try_get("id")?,
        enterprise_id: EnterpriseId::new(row.try_get("enterprise_id")?).map_err(corrupt)?,
        cno: Cno::parse(&row.try_get::<String>("cno")?).map_err(corrupt)?,
        has_password: row.try_get::<Option<String>>("password_hash")?.is_some(),
        session_epoch: row.try_get("session_epoch")?,
        settings: AgentSettings {
            name: row.try_get("name")?,
            active: row.try_get::<i64>("active")? != 0,
            outbound_allowed: row.try_get::<i64>("outbound_allowed")? != 0,
            call_power: CallPower::parse(&row.try_get::<String>("call_power")?).map_err(corrupt)?,
            area_code: row.try_get("area_code")?,
            wrapup_secs: row
                .try_get::<Option<i64>>("wrapup_secs")?
                .map(|s| to_u32("wrapup_secs", s))
                .transpose()?,
            recording: row
                .try_get::<Option<String>>("recording")?
                .map(|m| m.parse())
                .transpose()
                .map_err(corrupt)?,
        },
    })
}

impl Tx<'_> {
    // ---- enterprises ----

    pub async fn enterprise(&mut self, id: EnterpriseId) -> Result<Option<Enterprise>, StoreError> {
        let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises WHERE id = $1");
        let row = query(&sql).bind(id.get()).fetch_optional(&mut self.conn).await?;
        row.as_ref().map(enterprise_from_row).transpose()
    }

    pub async fn enterprises(&mut self) -> Result<Vec<Enterprise>, StoreError> {
        let sql = format!("SELECT {ENTERPRISE_COLUMNS} FROM enterprises ORDER BY id");
        let rows = query(&sql).fetch_all(&mut self.conn).await?;
        rows.iter().map(enterprise_from_row).collect()
    }

    pub async fn insert_enterprise(
        &mut self,
        id: EnterpriseId,
        settings: &EnterpriseSettings,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        settings.validate()?;
        let now = now_ms();
        let sql = "INSERT INTO enterprises (id, name, status, time_zone, balance, rate_per_minute, outbound_enabled, \
                   interface_enabled, default_caller_id, sync_default, agent_ring_timeout_secs, customer_ring_timeout_secs, \
                   wrapup_secs, number_limit_count, number_limit_window_minutes, concurrency_cap, agent_caller_id, credit_limit, \
                   max_call_minutes, allowed_countries, allowed_classes, destination_rates, push_order, push_order_wait_secs, \
                   allowed_origins, pause_reasons, recording, recording_max_minutes, recording_retention_days, \
                   record_file_form, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                   $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $30)";
        bind_enterprise_settings(query(sql).bind(id.get()), settings)
            .bind(now)
            .execute(&mut self.conn)
            .await
            .map_err(|e| classify_constraint(e, || format!("enterprise {id}")))?;
        Ok(())
    }

    pub async fn update_enterprise(
        &mut self,
        id: EnterpriseId,
        settings: &EnterpriseSettings,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        settings.validate()?;
        let sql = "UPDATE enterprises SET name = $2, status = $3, time_zone = $4, rate_per_minute = $5, \
                   outbound_enabled = $6, interface_enabled = $7, default_caller_id = $8, sync_default = $9, \
                   agent_ring_timeout_secs = $10, customer_ring_timeout_secs = $11, wrapup_secs = $12, \
                   number_limit_count = $13, number_limit_window_minutes = $14, concurrency_cap = $15, agent_caller_id = $16, \
                   credit_limit = $17, max_call_minutes = $18, allowed_countries = $19, allowed_classes = $20, \
                   destination_rates = $21, push_order = $22, push_order_wait_secs = $23, allowed_origins = $24, \
                   pause_reasons = $25, recording = $26, recording_max_minutes = $27, recording_retention_days = $28, \
                   record_file_form = $29, updated_at = $30 \
                   WHERE id = $1";
        let done = bind_enterprise_settings(query(sql).bind(id.get()), settings)
            .bind(now_ms())
            .execute(&mut self.conn)
            .await?;
        exactly_one(done, || format!("enterprise {id}"))
    }

    /// Adds `amount` (positive: a top-up; negative: an adjustment) to the balance and writes a
    /// ledger row; returns the new balance.
    pub async fn top_up(
        &mut self,
        id: EnterpriseId,
        amount: Money,
        reference: Option<&str>,
    ) -> Result<Money, StoreError> {
        let kind = if amount >= Money::ZERO {
            crate::LedgerKind::TopUp
        } else {
            crate::LedgerKind::Adjustment
        };
        let row: Option<(i64,)> =
            query_as("UPDATE enterprises SET balance = balance + $2, updated_at = $3 WHERE id = $1 RETURNING balance")
                .bind(id.get())
                .bind(amount.ten_thousandths())
                .bind(now_ms())
                .fetch_optional(&mut self.conn)
                .await?;
        let (balance,) = row.ok_or_else(|| StoreError::NotFound(format!("enterprise {id}")))?;
        self.write_ledger(id, amount, balance, kind, reference).await?;
        Ok(Money::from_ten_thousandths(balance))
    }

    /// One money movement's ledger row.
    pub(crate) async fn write_ledger(
        &mut self,
        id: EnterpriseId,
        amount: Money,
        balance_after: i64,
        kind: crate::LedgerKind,
        reference: Option<&str>,
    ) -> Result<(), StoreError> {
        let ledger_id = self.next_id("balance_ledger").await?;
        query(
            "INSERT INTO balance_ledger (id, enterprise_id, amount, balance_after, kind, reference, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(ledger_id)
        .bind(id.get())
        .bind(amount.ten_thousandths())
        .bind(balance_after)
        .bind(kind.as_str())
        .bind(reference)
        .bind(now_ms())
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// The enterprise's money now: balance, credit limit and what its running calls hold
    /// (configuration caches hold everything else of it).
    pub async fn money(&mut self, id: EnterpriseId) -> Result<Option<dialbridge_core::Credit>, StoreError> {
        let row: Option<(i64, i64, i64)> =
            query_as("SELECT balance, credit_limit, held FROM enterprises WHERE id = $1")
                .bind(id.get())
                .fetch_optional(&mut self.conn)
                .await?;
        Ok(row.map(|(balance, credit_limit, held)| dialbridge_core::Credit {
            balance: Money::from_ten_thousandths(balance),
            credit_limit: Money::from_ten_thousandths(credit_limit),
            held: Money::from_ten_thousandths(held),
        }))
    }

    /// The configuration generation: raised by every committed configuration write.
    pub async fn config_generation(&mut self) -> Result<i64, StoreError> {
        let (generation,): (i64,) = query_as("SELECT generation FROM config_generation WHERE id = 1")
            .fetch_one(&mut self.conn)
            .await?;
        Ok(generation)
    }

    // ---- admin accounts ----

    /// Every admin account with md5 of its password (for an in-memory configuration).
    pub async fn all_admin_credentials(&mut self) -> Result<Vec<AdminCredential>, StoreError> {
        let rows: Vec<(i64, String, String)> =
            query_as("SELECT enterprise_id, user_name, password_md5_sealed FROM enterprise_admins")
                .fetch_all(&mut self.conn)
                .await?;
        rows.into_iter()
            .map(|(enterprise, user_name, sealed)| {
                Ok(AdminCredential {
                    enterprise_id: EnterpriseId::new(enterprise).map_err(corrupt)?,
                    user_name,
                    password_md5: self.store.sealer().open(&sealed)?,
                })
            })
            .collect()
    }

    pub async fn admin_user_names(&mut self, enterprise: EnterpriseId) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            query_as("SELECT user_name FROM enterprise_admins WHERE enterprise_id = $1 ORDER BY user_name")
                .bind(enterprise.get())
                .fetch_all(&mut self.conn)
                .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// md5(admin password), the secret the legacy seed scheme is computed from.
    pub async fn admin_password_md5(
        &mut self,
        enterprise: EnterpriseId,
        user_name: &str,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            query_as("SELECT password_md5_sealed FROM enterprise_admins WHERE enterprise_id = $1 AND user_name = $2")
                .bind(enterprise.get())
                .bind(user_name)
                .fetch_optional(&mut self.conn)
                .await?;
        row.map(|(sealed,)| self.store.sealer().open(&sealed)).transpose()
    }

    /// Creates the admin account or changes its password.
    pub async fn set_admin(
        &mut self,
        enterprise: EnterpriseId,
        user_name: &str,
        password: &str,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        dialbridge_core::validate_user_name(user_name)?;
        dialbridge_core::validate_password("password", password)?;
        let sealed = self.store.sealer().seal(&crate::md5_hex(password));
        query(
            "INSERT INTO enterprise_admins (enterprise_id, user_name, password_md5_sealed, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (enterprise_id, user_name) DO UPDATE SET password_md5_sealed = excluded.password_md5_sealed",
        )
        .bind(enterprise.get())
        .bind(user_name)
        .bind(sealed)
        .bind(now_ms())
        .execute(&mut self.conn)
        .await
        .map_err(|e| classify_constraint(e, || format!("admin {user_name} of enterprise {enterprise}")))?;
        Ok(())
    }

    pub async fn delete_admin(&mut self, enterprise: EnterpriseId, user_name: &str) -> Result<(), StoreError> {
        self.config_changed = true;
        let done = query("DELETE FROM enterprise_admins WHERE enterprise_id = $1 AND user_name = $2")
            .bind(enterprise.get())
            .bind(user_name)
            .execute(&mut self.conn)
            .await?;
        exactly_one(done, || format!("admin {user_name} of enterprise {enterprise}"))
    }

    // ---- agents ----

    pub async fn agent(&mut self, enterprise: EnterpriseId, cno: &Cno) -> Result<Option<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE enterprise_id = $1 AND cno = $2");
        let row = query(&sql)
            .bind(enterprise.get())
            .bind(cno.as_str())
            .fetch_optional(&mut self.conn)
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    pub async fn agents(&mut self, enterprise: EnterpriseId) -> Result<Vec<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE enterprise_id = $1 ORDER BY cno");
        let rows = query(&sql).bind(enterprise.get()).fetch_all(&mut self.conn).await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Every agent of every enterprise with its password hash (for an in-memory configuration,
    /// whose holder checks passwords with [`crate::PasswordHashing::verify`]).
    /// Ends the agent's sessions (its event-stream tokens and open sockets); false when there
    /// is no such agent.
    pub async fn kick_agent(&mut self, enterprise: EnterpriseId, cno: &Cno) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE agents SET session_epoch = session_epoch + 1, updated_at = $3 WHERE enterprise_id = $1 AND cno = $2",
        )
        .bind(enterprise.get())
        .bind(cno.as_str())
        .bind(now_ms())
        .execute(&mut self.conn)
        .await?;
        self.config_changed = true;
        Ok(done.rows_affected() > 0)
    }

    pub async fn all_agents_with_password_hashes(&mut self) -> Result<Vec<(AgentRecord, Option<String>)>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY enterprise_id, cno");
        let rows = query(&sql).fetch_all(&mut self.conn).await?;
        rows.iter()
            .map(|row| Ok((agent_from_row(row)?, row.try_get::<Option<String>>("password_hash")?)))
            .collect()
    }

    /// Creates an agent; `password` is the login password in clear (stored as a slow hash of
    /// its md5, the form the legacy `pwd` carries). Returns the agent's id.
    pub async fn insert_agent(
        &mut self,
        enterprise: EnterpriseId,
        cno: &Cno,
        settings: &AgentSettings,
        password: Option<&str>,
    ) -> Result<i64, StoreError> {
        self.config_changed = true;
        settings.validate()?;
        if self.enterprise(enterprise).await?.is_none() {
            return Err(StoreError::NotFound(format!("enterprise {enterprise}")));
        }
        let hash = password.map(|p| self.hash_agent_password(p)).transpose()?;
        let id = self.next_id("agents").await?;
        let now = now_ms();
        query(
            "INSERT INTO agents (id, enterprise_id, cno, name, password_hash, active, outbound_allowed, call_power, area_code, \
             wrapup_secs, recording, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(id)
        .bind(enterprise.get())
        .bind(cno.as_str())
        .bind(&settings.name)
        .bind(hash)
        .bind(flag(settings.active))
        .bind(flag(settings.outbound_allowed))
        .bind(settings.call_power.as_str())
        .bind(settings.area_code.as_deref())
        .bind(opt_u32(settings.wrapup_secs))
        .bind(settings.recording.map(|m| m.as_str()))
        .bind(now)
        .execute(&mut self.conn)
        .await
        .map_err(|e| classify_constraint(e, || format!("agent {cno} of enterprise {enterprise}")))?;
        self.insert_agent_runtime(id).await?;
        Ok(id)
    }

    pub async fn update_agent(
        &mut self,
        enterprise: EnterpriseId,
        cno: &Cno,
        settings: &AgentSettings,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        settings.validate()?;
        let done = query(
            "UPDATE agents SET name = $3, active = $4, outbound_allowed = $5, call_power = $6, area_code = $7, wrapup_secs = $8, \
             recording = $9, updated_at = $10 WHERE enterprise_id = $1 AND cno = $2",
        )
        .bind(enterprise.get())
        .bind(cno.as_str())
        .bind(&settings.name)
        .bind(flag(settings.active))
        .bind(flag(settings.outbound_allowed))
        .bind(settings.call_power.as_str())
        .bind(settings.area_code.as_deref())
        .bind(opt_u32(settings.wrapup_secs))
        .bind(settings.recording.map(|m| m.as_str()))
        .bind(now_ms())
        .execute(&mut self.conn)
        .await?;
        exactly_one(done, || format!("agent {cno} of enterprise {enterprise}"))
    }

    pub async fn set_agent_password(
        &mut self,
        enterprise: EnterpriseId,
        cno: &Cno,
        password: &str,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        let hash = self.hash_agent_password(password)?;
        let done = query("UPDATE agents SET password_hash = $3, updated_at = $4 WHERE enterprise_id = $1 AND cno = $2")
            .bind(enterprise.get())
            .bind(cno.as_str())
            .bind(hash)
            .bind(now_ms())
            .execute(&mut self.conn)
            .await?;
        exactly_one(done, || format!("agent {cno} of enterprise {enterprise}"))
    }

    /// Whether `pwd_md5` (lowercase hex md5 of the login password) is the agent's.
    pub async fn agent_password_matches(
        &mut self,
        enterprise: EnterpriseId,
        cno: &Cno,
        pwd_md5: &str,
    ) -> Result<bool, StoreError> {
        let row: Option<(Option<String>,)> =
            query_as("SELECT password_hash FROM agents WHERE enterprise_id = $1 AND cno = $2")
                .bind(enterprise.get())
                .bind(cno.as_str())
                .fetch_optional(&mut self.conn)
                .await?;
        Ok(match row {
            Some((Some(hash),)) => self.store.hashing().verify(pwd_md5, &hash),
            _ => false,
        })
    }

    fn hash_agent_password(&self, password: &str) -> Result<String, StoreError> {
        dialbridge_core::validate_password("password", password)?;
        self.store.hashing().hash(&crate::md5_hex(password))
    }

    pub async fn delete_agent(&mut self, enterprise: EnterpriseId, cno: &Cno) -> Result<(), StoreError> {
        self.config_changed = true;
        let done = query("DELETE FROM agents WHERE enterprise_id = $1 AND cno = $2")
            .bind(enterprise.get())
            .bind(cno.as_str())
            .execute(&mut self.conn)
            .await
            .map_err(|e| classify_constraint(e, || format!("agent {cno}")))?;
        exactly_one(done, || format!("agent {cno} of enterprise {enterprise}"))
    }

    pub async fn agent_phones(&mut self, enterprise: EnterpriseId) -> Result<Vec<AgentPhoneRecord>, StoreError> {
        let rows: Vec<(String, i64, String, i64)> = query_as(
            "SELECT a.cno, p.phone_type, p.number, p.is_bound FROM agent_phones p JOIN agents a ON a.id = p.agent_id \
             WHERE p.enterprise_id = $1 ORDER BY a.cno, p.created_at",
        )
        .bind(enterprise.get())
        .fetch_all(&mut self.conn)
        .await?;
        rows.into_iter()
            .map(|(cno, phone_type, number, bound)| {
                Ok(AgentPhoneRecord {
                    cno: Cno::parse(&cno).map_err(corrupt)?,
                    phone_type: dialbridge_core::PhoneType::from_legacy_code(phone_type)
                        .ok_or_else(|| StoreError::Corrupt(format!("phone_type = {phone_type}")))?,
                    number,
                    bound: bound != 0,
                })
            })
            .collect()
    }

    // ---- extensions ----

    pub async fn extensions(&mut self, enterprise: EnterpriseId) -> Result<Vec<ExtensionNumber>, StoreError> {
        let rows: Vec<(String,)> = query_as("SELECT number FROM extensions WHERE enterprise_id = $1 ORDER BY number")
            .bind(enterprise.get())
            .fetch_all(&mut self.conn)
            .await?;
        rows.into_iter()
            .map(|(n,)| ExtensionNumber::parse(&n).map_err(corrupt))
            .collect()
    }

    /// The extension's SIP password in clear (the registrar's digest check needs it).
    pub async fn extension_password(
        &mut self,
        enterprise: EnterpriseId,
        number: &ExtensionNumber,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            query_as("SELECT sip_password_sealed FROM extensions WHERE enterprise_id = $1 AND number = $2")
                .bind(enterprise.get())
                .bind(number.as_str())
                .fetch_optional(&mut self.conn)
                .await?;
        row.map(|(sealed,)| self.store.sealer().open(&sealed)).transpose()
    }

    /// Creates the extension or changes its SIP password.
    pub async fn set_extension(
        &mut self,
        enterprise: EnterpriseId,
        number: &ExtensionNumber,
        sip_password: &str,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        dialbridge_core::validate_password("password", sip_password)?;
        let sealed = self.store.sealer().seal(sip_password);
        query(
            "INSERT INTO extensions (enterprise_id, number, sip_password_sealed, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (enterprise_id, number) DO UPDATE SET sip_password_sealed = excluded.sip_password_sealed",
        )
        .bind(enterprise.get())
        .bind(number.as_str())
        .bind(sealed)
        .bind(now_ms())
        .execute(&mut self.conn)
        .await
        .map_err(|e| classify_constraint(e, || format!("extension {number} of enterprise {enterprise}")))?;
        Ok(())
    }

    pub async fn delete_extension(
        &mut self,
        enterprise: EnterpriseId,
        number: &ExtensionNumber,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        let done = query("DELETE FROM extensions WHERE enterprise_id = $1 AND number = $2")
            .bind(enterprise.get())
            .bind(number.as_str())
            .execute(&mut self.conn)
            .await?;
        exactly_one(done, || format!("extension {number} of enterprise {enterprise}"))
    }

    // ---- trunks ----

    pub async fn trunks(&mut self) -> Result<Vec<TrunkRecord>, StoreError> {
        let rows = query(
            "SELECT name, host, port, transport, auth_username, auth_password_sealed, \
             outbound_proxy, max_channels, customer_number_format, caller_id_format, priority, keepalive_secs, \
             register_secs, sources FROM trunks ORDER BY name",
        )
        .fetch_all(&mut self.conn)
        .await?;
        let grants: Vec<(String, i64)> =
            query_as("SELECT trunk_name, enterprise_id FROM trunk_enterprises ORDER BY enterprise_id")
                .fetch_all(&mut self.conn)
                .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                let enterprises = grants
                    .iter()
                    .filter(|(t, _)| *t == name)
                    .map(|(_, e)| EnterpriseId::new(*e))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(corrupt)?;
                let proxy: Option<String> = row.try_get("outbound_proxy")?;
                Ok(TrunkRecord {
                    has_password: row.try_get::<Option<String>>("auth_password_sealed")?.is_some(),
                    trunk: Trunk {
                        address: SipAddress {
                            host: row.try_get("host")?,
                            port: u16::try_from(row.try_get::<i64>("port")?)
                                .map_err(|_| StoreError::Corrupt("trunk port".into()))?,
                        },
                        transport: row.try_get::<String>("transport")?.parse().map_err(corrupt)?,
                        auth_username: row.try_get("auth_username")?,
                        outbound_proxy: proxy
                            .map(|p| SipAddress::parse("outbound_proxy", &p))
                            .transpose()
                            .map_err(corrupt)?,
                        max_channels: to_u32("max_channels", row.try_get("max_channels")?)?,
                        enterprises,
                        customer_number_format: NumberFormat::parse(&row.try_get::<String>("customer_number_format")?)
                            .map_err(corrupt)?,
                        caller_id_format: NumberFormat::parse(&row.try_get::<String>("caller_id_format")?)
                            .map_err(corrupt)?,
                        priority: to_u32("priority", row.try_get("priority")?)?,
                        keepalive_secs: to_u32("keepalive_secs", row.try_get("keepalive_secs")?)?,
                        register_secs: to_u32("register_secs", row.try_get("register_secs")?)?,
                        sources: row
                            .try_get::<String>("sources")?
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(dialbridge_core::parse_trunk_source)
                            .collect::<Result<_, _>>()
                            .map_err(corrupt)?,
                        name,
                    },
                })
            })
            .collect()
    }

    pub async fn trunk(&mut self, name: &str) -> Result<Option<TrunkRecord>, StoreError> {
        Ok(self.trunks().await?.into_iter().find(|t| t.trunk.name == name))
    }

    pub async fn trunk_password(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = query_as("SELECT auth_password_sealed FROM trunks WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut self.conn)
            .await?;
        row.and_then(|(sealed,)| sealed)
            .map(|s| self.store.sealer().open(&s))
            .transpose()
    }

    /// Creates or replaces a trunk and the list of enterprises allowed to use it.
    /// `password`: `Some` sets the digest password, `None` keeps the stored one (or none).
    pub async fn upsert_trunk(&mut self, trunk: &Trunk, password: Option<&str>) -> Result<(), StoreError> {
        self.config_changed = true;
        trunk.validate()?;
        if let Some(p) = password {
            dialbridge_core::validate_password("auth_password", p)?;
        }
        let sealed = password.map(|p| self.store.sealer().seal(p));
        let now = now_ms();
        query(
            "INSERT INTO trunks (name, host, port, transport, auth_username, auth_password_sealed, outbound_proxy, max_channels, \
             customer_number_format, caller_id_format, priority, keepalive_secs, register_secs, sources, created_at, \
             updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
             ON CONFLICT (name) DO UPDATE SET host = excluded.host, port = excluded.port, transport = excluded.transport, \
             auth_username = excluded.auth_username, \
             auth_password_sealed = COALESCE(excluded.auth_password_sealed, trunks.auth_password_sealed), \
             outbound_proxy = excluded.outbound_proxy, max_channels = excluded.max_channels, \
             customer_number_format = excluded.customer_number_format, caller_id_format = excluded.caller_id_format, \
             priority = excluded.priority, keepalive_secs = excluded.keepalive_secs, \
             register_secs = excluded.register_secs, sources = excluded.sources, updated_at = excluded.updated_at",
        )
        .bind(&trunk.name)
        .bind(&trunk.address.host)
        .bind(i64::from(trunk.address.port))
        .bind(trunk.transport.as_str())
        .bind(trunk.auth_username.as_deref())
        .bind(sealed)
        .bind(trunk.outbound_proxy.as_ref().map(|p| p.to_string()))
        .bind(i64::from(trunk.max_channels))
        .bind(trunk.customer_number_format.to_string())
        .bind(trunk.caller_id_format.to_string())
        .bind(i64::from(trunk.priority))
        .bind(i64::from(trunk.keepalive_secs))
        .bind(i64::from(trunk.register_secs))
        .bind(
            trunk
                .sources
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .bind(now)
        .execute(&mut self.conn)
        .await?;
        query("DELETE FROM trunk_enterprises WHERE trunk_name = $1")
            .bind(&trunk.name)
            .execute(&mut self.conn)
            .await?;
        for enterprise in &trunk.enterprises {
            query("INSERT INTO trunk_enterprises (trunk_name, enterprise_id) VALUES ($1, $2)")
                .bind(&trunk.name)
                .bind(enterprise.get())
                .execute(&mut self.conn)
                .await
                .map_err(|e| classify_constraint(e, || format!("trunk {} for enterprise {enterprise}", trunk.name)))?;
        }
        Ok(())
    }

    pub async fn delete_trunk(&mut self, name: &str) -> Result<(), StoreError> {
        self.config_changed = true;
        let done = query("DELETE FROM trunks WHERE name = $1")
            .bind(name)
            .execute(&mut self.conn)
            .await
            .map_err(|e| classify_constraint(e, || format!("trunk {name} (used by caller ids)")))?;
        exactly_one(done, || format!("trunk {name}"))
    }

    // ---- caller ids ----

    pub async fn caller_ids(&mut self, enterprise: Option<EnterpriseId>) -> Result<Vec<CallerId>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            match enterprise {
                Some(e) => query_as(
                    "SELECT number, enterprise_id, trunk_name FROM caller_ids WHERE enterprise_id = $1 ORDER BY number",
                )
                .bind(e.get())
                .fetch_all(&mut self.conn)
                .await?,
                None => {
                    query_as("SELECT number, enterprise_id, trunk_name FROM caller_ids ORDER BY number")
                        .fetch_all(&mut self.conn)
                        .await?
                }
            };
        rows.into_iter()
            .map(|(number, enterprise_id, trunk)| {
                Ok(CallerId {
                    number,
                    enterprise_id: EnterpriseId::new(enterprise_id).map_err(corrupt)?,
                    trunk,
                })
            })
            .collect()
    }

    /// Creates a caller id or moves it to another trunk. A number owned by another enterprise is
    /// refused: one enterprise can never send another's caller id.
    pub async fn upsert_caller_id(&mut self, caller_id: &CallerId) -> Result<(), StoreError> {
        self.config_changed = true;
        let number = dialbridge_core::validate_caller_id(&caller_id.number)?;
        let owner: Option<(i64,)> = query_as("SELECT enterprise_id FROM caller_ids WHERE number = $1")
            .bind(&number)
            .fetch_optional(&mut self.conn)
            .await?;
        if let Some((owner,)) = owner {
            if owner != caller_id.enterprise_id.get() {
                return Err(StoreError::Conflict(format!(
                    "caller id {number} belongs to another enterprise"
                )));
            }
        }
        let trunk = self
            .trunk(&caller_id.trunk)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trunk {}", caller_id.trunk)))?;
        if !trunk.trunk.enterprises.contains(&caller_id.enterprise_id) {
            return Err(StoreError::Conflict(format!(
                "trunk {} is not available to enterprise {}",
                caller_id.trunk, caller_id.enterprise_id
            )));
        }
        query(
            "INSERT INTO caller_ids (number, enterprise_id, trunk_name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (number) DO UPDATE SET trunk_name = excluded.trunk_name",
        )
        .bind(&number)
        .bind(caller_id.enterprise_id.get())
        .bind(&caller_id.trunk)
        .bind(now_ms())
        .execute(&mut self.conn)
        .await
        .map_err(|e| classify_constraint(e, || format!("caller id {number}")))?;
        Ok(())
    }

    pub async fn delete_caller_id(&mut self, enterprise: EnterpriseId, number: &str) -> Result<(), StoreError> {
        self.config_changed = true;
        let done = query("DELETE FROM caller_ids WHERE enterprise_id = $1 AND number = $2")
            .bind(enterprise.get())
            .bind(number)
            .execute(&mut self.conn)
            .await?;
        exactly_one(done, || format!("caller id {number} of enterprise {enterprise}"))
    }

    // ---- blacklist ----

    pub async fn blacklist(&mut self, enterprise: EnterpriseId) -> Result<Vec<BlacklistPattern>, StoreError> {
        let rows: Vec<(String,)> =
            query_as("SELECT pattern FROM blacklist_entries WHERE enterprise_id = $1 ORDER BY pattern")
                .bind(enterprise.get())
                .fetch_all(&mut self.conn)
                .await?;
        rows.into_iter()
            .map(|(p,)| BlacklistPattern::parse(&p).map_err(corrupt))
            .collect()
    }

    /// Every enterprise's blacklist entries.
    pub async fn all_blacklists(&mut self) -> Result<Vec<(EnterpriseId, BlacklistPattern)>, StoreError> {
        let rows: Vec<(i64, String)> =
            query_as("SELECT enterprise_id, pattern FROM blacklist_entries ORDER BY pattern")
                .fetch_all(&mut self.conn)
                .await?;
        rows.into_iter()
            .map(|(e, p)| {
                Ok((
                    EnterpriseId::new(e).map_err(corrupt)?,
                    BlacklistPattern::parse(&p).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    pub async fn insert_blacklist(
        &mut self,
        enterprise: EnterpriseId,
        pattern: &BlacklistPattern,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        query("INSERT INTO blacklist_entries (enterprise_id, pattern, created_at) VALUES ($1, $2, $3)")
            .bind(enterprise.get())
            .bind(pattern.as_str())
            .bind(now_ms())
            .execute(&mut self.conn)
            .await
            .map_err(|e| classify_constraint(e, || format!("blacklist entry {pattern} of enterprise {enterprise}")))?;
        Ok(())
    }

    pub async fn delete_blacklist(
        &mut self,
        enterprise: EnterpriseId,
        pattern: &BlacklistPattern,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        let done = query("DELETE FROM blacklist_entries WHERE enterprise_id = $1 AND pattern = $2")
            .bind(enterprise.get())
            .bind(pattern.as_str())
            .execute(&mut self.conn)
            .await?;
        exactly_one(done, || format!("blacklist entry {pattern} of enterprise {enterprise}"))
    }

    // ---- push targets ----

    pub async fn push_targets(&mut self, enterprise: EnterpriseId) -> Result<Vec<PushTarget>, StoreError> {
        let rows = query(
            "SELECT name, push_type, url, method, timeout_ms, retries, format, charset, name_mapping FROM push_targets \
             WHERE enterprise_id = $1 ORDER BY name",
        )
        .bind(enterprise.get())
        .fetch_all(&mut self.conn)
        .await?;
        rows.iter()
            .map(|row| {
                let mapping: String = row.try_get("name_mapping")?;
                Ok(PushTarget {
                    name: row.try_get("name")?,
                    push_type: row.try_get::<String>("push_type")?.parse().map_err(corrupt)?,
                    url: row.try_get("url")?,
                    method: row.try_get::<String>("method")?.parse().map_err(corrupt)?,
                    timeout_ms: to_u32("timeout_ms", row.try_get("timeout_ms")?)?,
                    retries: to_u32("retries", row.try_get("retries")?)?,
                    format: row.try_get::<String>("format")?.parse().map_err(corrupt)?,
                    charset: row.try_get::<String>("charset")?.parse().map_err(corrupt)?,
                    name_mapping: serde_json::from_str(&mapping)
                        .map_err(|e| StoreError::Corrupt(format!("name_mapping: {e}")))?,
                })
            })
            .collect()
    }

    pub async fn upsert_push_target(
        &mut self,
        enterprise: EnterpriseId,
        target: &PushTarget,
    ) -> Result<(), StoreError> {
        self.config_changed = true;
        target.validate()?;
        let mapping = serde_json::to_string(&target.name_mapping).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = now_ms();
        query(
            "INSERT INTO push_targets (enterprise_id, name, push_type, url, method, timeout_ms, retries, format, name_mapping, \
             charset, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (enterprise_id, name) DO UPDATE SET push_type = excluded.push_type, url = excluded.url, \
             method = excluded.method, timeout_ms = excluded.timeout_ms, retries = excluded.retries, format = excluded.format, \
             name_mapping = excluded.name_mapping, charset = excluded.charset, updated_at = excluded.updated_at",
        )
        .bind(enterprise.get())
        .bind(&target.name)
        .bind(target.push_type.as_str())
        .bind(&target.url)
        .bind(target.method.as_str())
        .bind(i64::from(target.timeout_ms))
        .bind(i64::from(target.retries))
        .bind(target.format.as_str())
        .bind(mapping)
        .bind(target.charset.as_str())
        .bind(now)
        .execute(&mut self.conn)
        .await
        .map_err(|e| classify_constraint(e, || format!("push target {} of enterprise {enterprise}", target.name)))?;
        Ok(())
    }

    pub async fn delete_push_target(&mut self, enterprise: EnterpriseId, name: &str) -> Result<(), StoreError> {
        self.config_changed = true;
        let done = query("DELETE FROM push_targets WHERE enterprise_id = $1 AND name = $2")
            .bind(enterprise.get())
            .bind(name)
            .execute(&mut self.conn)
            .await?;
        exactly_one(done, || format!("push target {name} of enterprise {enterprise}"))
    }
}

fn bind_enterprise_settings<'q>(query: crate::db::Query<'q>, s: &EnterpriseSettings) -> crate::db::Query<'q> {
    query
        .bind(s.name.as_str())
        .bind(s.status.as_str())
        .bind(s.time_zone.as_str())
        .bind(s.rate_per_minute.ten_thousandths())
        .bind(flag(s.outbound_enabled))
        .bind(flag(s.interface_enabled))
        .bind(s.default_caller_id.as_deref())
        .bind(flag(s.sync_default))
        .bind(i64::from(s.agent_ring_timeout_secs))
        .bind(i64::from(s.customer_ring_timeout_secs))
        .bind(i64::from(s.wrapup_secs))
        .bind(s.number_limit.map(|l| i64::from(l.count)))
        .bind(s.number_limit.map(|l| i64::from(l.window_minutes)))
        .bind(opt_u32(s.concurrency_cap))
        .bind(s.agent_caller_id.as_deref())
        .bind(s.credit_limit.ten_thousandths())
        .bind(opt_u32(s.max_call_minutes))
        .bind(s.destinations.countries_text())
        .bind(s.destinations.classes_text())
        .bind(s.destination_rates.to_string())
        .bind(s.push_order.as_str())
        .bind(i64::from(s.push_order_wait_secs))
        .bind(s.allowed_origins.join(" "))
        .bind(s.pause_reasons.join("\n"))
        .bind(s.recording.as_str())
        .bind(i64::from(s.recording_max_minutes))
        .bind(opt_u32(s.recording_retention_days))
        .bind(s.record_file_form.as_str())
}

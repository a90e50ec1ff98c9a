//! Runtime: agent state (with the outbound lock), bound phones, call detail records and refused
//! requests.

use crate::db::{query, query_as, Row};
use dialbridge_core::agent::{AgentCall, AgentState, Availability, CallPhase, LoginStatus};
use dialbridge_core::call::{EndReason, Side};
use dialbridge_core::{EnterpriseId, Money, PhoneType};

use crate::config::now_ms;
use crate::corrupt;
use crate::{classify_constraint, Backend, StoreError, Tx};

/// An agent's state as stored, with the version its next change must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAgentState {
    pub state: AgentState,
    pub version: i64,
}

/// A phone an agent has used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneUse {
    pub id: i64,
    /// The legacy code: 1 telephone, 2 extension, 4 remote.
    pub phone_type: i64,
    pub number: String,
    pub bound: bool,
    pub created_at: i64,
}

/// The agent fields only the legacy agent-management interface reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyAgentFields {
    pub power: i64,
    pub client_type: i64,
}

/// A refused request as recorded: one refusal, or the refusals before authentication of one
/// minute from one source counted together (the first one's values as a sample).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRecord {
    pub at: i64,
    /// The latest refusal counted in it.
    pub last_at: i64,
    pub count: u64,
    pub enterprise_id: Option<i64>,
    /// The client's address.
    pub source: Option<String>,
    pub cno: Option<String>,
    pub customer_number: Option<String>,
    /// The code the caller was answered (the legacy `res`).
    pub res: String,
    pub reason: String,
}

/// A refusal to record. Values from the request must come already cut and escaped
/// ([`dialbridge_core::text::printable`]).
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    pub enterprise: Option<i64>,
    pub source: Option<&'a str>,
    /// Well-formed only, when `counted`: it names the aggregate.
    pub cno: Option<&'a str>,
    pub customer_number: Option<&'a str>,
    pub res: &'a str,
    pub reason: &'a str,
    /// Refused before authentication: counted with the same refusals of its minute. The caller
    /// names the aggregate only by what is finite (an existing enterprise, an existing agent's
    /// cno, the source), so what a stranger sends adds a bounded number of rows a minute per
    /// source.
    pub counted: bool,
}

/// How far a running call got, as recorded while it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CdrProgress {
    pub agent_answered_at: Option<i64>,
    pub bridged_at: Option<i64>,
    /// The last heartbeat of the bridged call.
    pub alive_at: Option<i64>,
    /// Since when the agent has had the customer on hold.
    pub on_hold_since: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrStart {
    pub unique_id: String,
    pub enterprise_id: EnterpriseId,
    pub agent_id: i64,
    pub cno: String,
    pub agent_phone: String,
    pub agent_phone_type: PhoneType,
    pub customer_number: String,
    pub customer_area_code: Option<String>,
    pub customer_number_type: Option<u8>,
    pub caller_id: String,
    pub trunk_name: String,
    pub user_field: String,
    pub node: String,
    pub requested_at: i64,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrEnd {
    pub agent_ringing_at: Option<i64>,
    pub agent_answered_at: Option<i64>,
    pub customer_ringing_at: Option<i64>,
    pub bridged_at: Option<i64>,
    pub ended_at: i64,
    /// The legacy status: 21, 22, 24 or 28.
    pub status: u8,
    pub end_reason: EndReason,
    pub hung_up_by: Side,
    pub sip_cause: u16,
    pub agent_sip_code: Option<u16>,
    pub customer_sip_code: Option<u16>,
    pub bridge_seconds: u64,
    pub cost: Money,
    pub packets_agent_to_customer: u64,
    pub packets_customer_to_agent: u64,
    /// The recording's file name (`recordFile`); empty when the call was not recorded.
    pub record_file: String,
}

impl CdrEnd {
    /// An end with these essentials and nothing else recorded (no times, codes, cost or media).
    pub fn new(ended_at: i64, status: u8, end_reason: EndReason, hung_up_by: Side) -> Self {
        Self {
            agent_ringing_at: None,
            agent_answered_at: None,
            customer_ringing_at: None,
            bridged_at: None,
            ended_at,
            status,
            end_reason,
            hung_up_by,
            sip_cause: 0,
            agent_sip_code: None,
            customer_sip_code: None,
            bridge_seconds: 0,
            cost: Money::ZERO,
            packets_agent_to_customer: 0,
            packets_customer_to_agent: 0,
            record_file: String::new(),
        }
    }
}

/// A CDR as stored (`end` is `None` while the call runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cdr {
    pub start: CdrStart,
    pub end: Option<CdrEnd>,
}

/// Which CDRs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct CdrQuery {
    pub enterprise_id: Option<EnterpriseId>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub unique_id: Option<String>,
    pub user_field: Option<String>,
    pub customer_number: Option<String>,
    pub cno: Option<String>,
    pub offset: u32,
    pub limit: u32,
}

fn encode_availability(a: &Availability) -> String {
    match a {
        Availability::Online => "online".to_owned(),
        Availability::Pause(reason) => format!("pause:{reason}"),
    }
}

fn decode_availability(text: &str) -> Availability {
    match text.strip_prefix("pause:") {
        Some(reason) => Availability::Pause(reason.to_owned()),
        None => Availability::Online,
    }
}

fn opt_i64(v: Option<u16>) -> Option<i64> {
    v.map(i64::from)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const CDR_COLUMNS: &str = "unique_id, enterprise_id, agent_id, cno, agent_phone, agent_phone_type, customer_number, \
     customer_area_code, customer_number_type, caller_id, trunk_name, user_field, node, requested_at, agent_ringing_at, \
     agent_answered_at, customer_ringing_at, bridged_at, ended_at, status, end_reason, hung_up_by, sip_cause, \
     agent_sip_code, customer_sip_code, bridge_seconds, cost, packets_agent_to_customer, packets_customer_to_agent, \
     record_file";

fn cdr_from_row(row: &Row) -> Result<Cdr, StoreError> {
    let phone_type: i64 = row.try_get("agent_phone_type")?;
    let start = CdrStart {
        unique_id: row.try_get("unique_id")?,
        enterprise_id: EnterpriseId::new(row.try_get("enterprise_id")?).map_err(corrupt)?,
        agent_id: row.try_get("agent_id")?,
        cno: row.try_get("cno")?,
        agent_phone: row.try_get("agent_phone")?,
        agent_phone_type: PhoneType::from_legacy_code(phone_type)
            .ok_or_else(|| StoreError::Corrupt(format!("agent_phone_type = {phone_type}")))?,
        customer_number: row.try_get("customer_number")?,
        customer_area_code: row.try_get("customer_area_code")?,
        customer_number_type: row
            .try_get::<Option<i64>>("customer_number_type")?
            .and_then(|t| u8::try_from(t).ok()),
        caller_id: row.try_get("caller_id")?,
        trunk_name: row.try_get("trunk_name")?,
        user_field: row.try_get("user_field")?,
        node: row.try_get("node")?,
        requested_at: row.try_get("requested_at")?,
    };
    let end = match row.try_get::<Option<i64>>("ended_at")? {
        None => None,
        Some(ended_at) => {
            let code = |name: &str| -> Result<Option<u16>, StoreError> {
                Ok(row.try_get::<Option<i64>>(name)?.and_then(|c| u16::try_from(c).ok()))
            };
            Some(CdrEnd {
                agent_ringing_at: row.try_get("agent_ringing_at")?,
                agent_answered_at: row.try_get("agent_answered_at")?,
                customer_ringing_at: row.try_get("customer_ringing_at")?,
                bridged_at: row.try_get("bridged_at")?,
                ended_at,
                status: u8::try_from(row.try_get::<Option<i64>>("status")?.unwrap_or(0)).unwrap_or(0),
                end_reason: row
                    .try_get::<Option<String>>("end_reason")?
                    .unwrap_or_default()
                    .parse()
                    .map_err(corrupt)?,
                hung_up_by: row
                    .try_get::<Option<String>>("hung_up_by")?
                    .unwrap_or_default()
                    .parse()
                    .map_err(corrupt)?,
                sip_cause: code("sip_cause")?.unwrap_or(0),
                agent_sip_code: code("agent_sip_code")?,
                customer_sip_code: code("customer_sip_code")?,
                bridge_seconds: to_u64(row.try_get::<Option<i64>>("bridge_seconds")?.unwrap_or(0)),
                cost: Money::from_ten_thousandths(row.try_get::<Option<i64>>("cost")?.unwrap_or(0)),
                packets_agent_to_customer: to_u64(
                    row.try_get::<Option<i64>>("packets_agent_to_customer")?.unwrap_or(0),
                ),
                packets_customer_to_agent: to_u64(
                    row.try_get::<Option<i64>>("packets_customer_to_agent")?.unwrap_or(0),
                ),
                record_file: row.try_get("record_file")?,
            })
        }
    };
    Ok(Cdr { start, end })
}

impl Tx<'_> {
    // ---- agent state ----

    pub async fn agent_state(&mut self, agent_id: i64) -> Result<StoredAgentState, StoreError> {
        let row = query(
            "SELECT login_status, pause_description, after_call, wrapup_until, call_unique_id, call_phase, version \
             FROM agent_runtime WHERE agent_id = $1",
        )
        .bind(agent_id)
        .fetch_optional(&mut self.conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("agent #{agent_id}")))?;
        let login = match row.try_get::<String>("login_status")?.as_str() {
            "online" => LoginStatus::Online,
            "pause" => LoginStatus::Pause,
            _ => LoginStatus::Offline,
        };
        let call = match (
            row.try_get::<Option<String>>("call_unique_id")?,
            row.try_get::<Option<String>>("call_phase")?,
        ) {
            (Some(unique_id), Some(phase)) => Some(AgentCall {
                unique_id,
                phase: if phase == "connected" {
                    CallPhase::Connected
                } else {
                    CallPhase::Setup
                },
            }),
            _ => None,
        };
        Ok(StoredAgentState {
            state: AgentState {
                login,
                pause_description: row.try_get("pause_description")?,
                after_call: decode_availability(&row.try_get::<String>("after_call")?),
                wrapup_until: row.try_get("wrapup_until")?,
                call,
            },
            version: row.try_get("version")?,
        })
    }

    /// Writes the agent's new state if nobody changed it since `expected_version` was read;
    /// false when someone did (the caller lost a race and must re-read).
    pub async fn save_agent_state(
        &mut self,
        agent_id: i64,
        state: &AgentState,
        expected_version: i64,
    ) -> Result<bool, StoreError> {
        let (call_id, phase) = match &state.call {
            Some(c) => (
                Some(c.unique_id.as_str()),
                Some(if c.phase == CallPhase::Connected {
                    "connected"
                } else {
                    "setup"
                }),
            ),
            None => (None, None),
        };
        let done = query(
            "UPDATE agent_runtime SET login_status = $3, pause_description = $4, after_call = $5, wrapup_until = $6, \
             call_unique_id = $7, call_phase = $8, version = version + 1, updated_at = $9 WHERE agent_id = $1 AND version = $2",
        )
        .bind(agent_id)
        .bind(expected_version)
        .bind(state.login.as_str())
        .bind(state.pause_description.as_deref())
        .bind(encode_availability(&state.after_call))
        .bind(state.wrapup_until)
        .bind(call_id)
        .bind(phase)
        .bind(now_ms())
        .execute(&mut self.conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The agents in a wrap-up (when a server starts: each one's end is to be told), as
    /// (enterprise, agent id, cno, end of the wrap-up).
    pub async fn agents_in_wrapup(&mut self) -> Result<Vec<(EnterpriseId, i64, String, i64)>, StoreError> {
        let rows = query(
            "SELECT a.enterprise_id, a.id, a.cno, r.wrapup_until FROM agent_runtime r JOIN agents a ON a.id = r.agent_id \
             WHERE r.wrapup_until IS NOT NULL",
        )
        .fetch_all(&mut self.conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    EnterpriseId::new(row.try_get("enterprise_id")?).map_err(corrupt)?,
                    row.try_get("id")?,
                    row.try_get("cno")?,
                    row.try_get("wrapup_until")?,
                ))
            })
            .collect()
    }

    pub(crate) async fn insert_agent_runtime(&mut self, agent_id: i64) -> Result<(), StoreError> {
        query("INSERT INTO agent_runtime (agent_id, login_status, after_call, version, updated_at) VALUES ($1, 'offline', 'online', 0, $2)")
            .bind(agent_id)
            .bind(now_ms())
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    // ---- legacy agent fields ----

    /// The legacy agent-management interface's `power` and `clientType` of an agent.
    pub async fn agent_legacy_fields(&mut self, agent_id: i64) -> Result<LegacyAgentFields, StoreError> {
        let row: Option<(i64, i64)> = query_as("SELECT legacy_power, legacy_client_type FROM agents WHERE id = $1")
            .bind(agent_id)
            .fetch_optional(&mut self.conn)
            .await?;
        let (power, client_type) = row.ok_or_else(|| StoreError::NotFound(format!("agent #{agent_id}")))?;
        Ok(LegacyAgentFields { power, client_type })
    }

    pub async fn set_agent_legacy_fields(
        &mut self,
        agent_id: i64,
        power: i64,
        client_type: i64,
    ) -> Result<(), StoreError> {
        query("UPDATE agents SET legacy_power = $2, legacy_client_type = $3 WHERE id = $1")
            .bind(agent_id)
            .bind(power)
            .bind(client_type)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// The phones an agent has used, oldest first.
    pub async fn phones_of(&mut self, agent_id: i64) -> Result<Vec<PhoneUse>, StoreError> {
        let rows: Vec<(i64, i64, String, i64, i64)> = query_as(
            "SELECT id, phone_type, number, is_bound, created_at FROM agent_phones WHERE agent_id = $1 ORDER BY created_at, id",
        )
        .bind(agent_id)
        .fetch_all(&mut self.conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, phone_type, number, bound, created_at)| PhoneUse {
                id,
                phone_type,
                number,
                bound: bound != 0,
                created_at,
            })
            .collect())
    }

    /// An agent by its id within an enterprise.
    pub async fn agent_by_id(&mut self, enterprise: EnterpriseId, agent_id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = query_as("SELECT cno FROM agents WHERE enterprise_id = $1 AND id = $2")
            .bind(enterprise.get())
            .bind(agent_id)
            .fetch_optional(&mut self.conn)
            .await?;
        Ok(row.map(|(c,)| c))
    }

    // ---- bound phones ----

    pub async fn bound_phone(&mut self, agent_id: i64) -> Result<Option<(PhoneType, String)>, StoreError> {
        let row: Option<(i64, String)> =
            query_as("SELECT phone_type, number FROM agent_phones WHERE agent_id = $1 AND is_bound = 1")
                .bind(agent_id)
                .fetch_optional(&mut self.conn)
                .await?;
        Ok(row.and_then(|(t, n)| PhoneType::from_legacy_code(t).map(|t| (t, n))))
    }

    /// Binds a phone to the agent (and remembers it among the phones it used). `Conflict` when
    /// another agent has it bound.
    pub async fn bind_phone(
        &mut self,
        enterprise: EnterpriseId,
        agent_id: i64,
        phone_type: PhoneType,
        number: &str,
    ) -> Result<(), StoreError> {
        let other: Option<(i64,)> = query_as(
            "SELECT agent_id FROM agent_phones WHERE enterprise_id = $1 AND phone_type = $2 AND number = $3 AND is_bound = 1 AND agent_id <> $4",
        )
        .bind(enterprise.get())
        .bind(i64::from(phone_type.legacy_code()))
        .bind(number)
        .bind(agent_id)
        .fetch_optional(&mut self.conn)
        .await?;
        if other.is_some() {
            return Err(StoreError::Conflict(format!(
                "phone {number} is bound to another agent"
            )));
        }
        self.unbind_phone(agent_id).await?;
        let updated =
            query("UPDATE agent_phones SET is_bound = 1 WHERE agent_id = $1 AND phone_type = $2 AND number = $3")
                .bind(agent_id)
                .bind(i64::from(phone_type.legacy_code()))
                .bind(number)
                .execute(&mut self.conn)
                .await?;
        if updated.rows_affected() == 0 {
            let id = self.next_id("agent_phones").await?;
            query(
                "INSERT INTO agent_phones (id, agent_id, enterprise_id, phone_type, number, is_bound, created_at) VALUES ($1, $2, $3, $4, $5, 1, $6)",
            )
            .bind(id)
            .bind(agent_id)
            .bind(enterprise.get())
            .bind(i64::from(phone_type.legacy_code()))
            .bind(number)
            .bind(now_ms())
            .execute(&mut self.conn)
            .await
            .map_err(|e| classify_constraint(e, || format!("phone {number}")))?;
        }
        Ok(())
    }

    pub async fn unbind_phone(&mut self, agent_id: i64) -> Result<(), StoreError> {
        query("UPDATE agent_phones SET is_bound = 0 WHERE agent_id = $1 AND is_bound = 1")
            .bind(agent_id)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    // ---- call detail records ----

    pub async fn insert_cdr(&mut self, start: &CdrStart) -> Result<(), StoreError> {
        query(
            "INSERT INTO cdrs (unique_id, enterprise_id, agent_id, cno, agent_phone, agent_phone_type, customer_number, \
             customer_area_code, customer_number_type, caller_id, trunk_name, user_field, node, requested_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&start.unique_id)
        .bind(start.enterprise_id.get())
        .bind(start.agent_id)
        .bind(&start.cno)
        .bind(&start.agent_phone)
        .bind(i64::from(start.agent_phone_type.legacy_code()))
        .bind(&start.customer_number)
        .bind(start.customer_area_code.as_deref())
        .bind(start.customer_number_type.map(i64::from))
        .bind(&start.caller_id)
        .bind(&start.trunk_name)
        .bind(&start.user_field)
        .bind(&start.node)
        .bind(start.requested_at)
        .execute(&mut self.conn)
        .await
        .map_err(|e| classify_constraint(e, || format!("CDR {}", start.unique_id)))?;
        Ok(())
    }

    /// Records the trunk that actually carried the customer's leg (after a failover).
    pub async fn set_cdr_trunk(&mut self, unique_id: &str, trunk_name: &str) -> Result<(), StoreError> {
        query("UPDATE cdrs SET trunk_name = $2 WHERE unique_id = $1")
            .bind(unique_id)
            .bind(trunk_name)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Completes a CDR; false when it was already complete (a call is closed once).
    pub async fn finish_cdr(&mut self, unique_id: &str, end: &CdrEnd) -> Result<bool, StoreError> {
        let done = query(
            "UPDATE cdrs SET agent_ringing_at = $2, agent_answered_at = $3, customer_ringing_at = $4, bridged_at = $5, \
             ended_at = $6, status = $7, end_reason = $8, hung_up_by = $9, sip_cause = $10, agent_sip_code = $11, \
             customer_sip_code = $12, bridge_seconds = $13, cost = $14, packets_agent_to_customer = $15, \
             packets_customer_to_agent = $16, record_file = $17, on_hold_since = NULL WHERE unique_id = $1 AND ended_at IS NULL",
        )
        .bind(unique_id)
        .bind(end.agent_ringing_at)
        .bind(end.agent_answered_at)
        .bind(end.customer_ringing_at)
        .bind(end.bridged_at)
        .bind(end.ended_at)
        .bind(i64::from(end.status))
        .bind(end.end_reason.as_str())
        .bind(end.hung_up_by.as_str())
        .bind(i64::from(end.sip_cause))
        .bind(opt_i64(end.agent_sip_code))
        .bind(opt_i64(end.customer_sip_code))
        .bind(i64::try_from(end.bridge_seconds).unwrap_or(i64::MAX))
        .bind(end.cost.ten_thousandths())
        .bind(i64::try_from(end.packets_agent_to_customer).unwrap_or(i64::MAX))
        .bind(i64::try_from(end.packets_customer_to_agent).unwrap_or(i64::MAX))
        .bind(&end.record_file)
        .execute(&mut self.conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how far a running call got, so that a restart knows the phase it reached.
    pub async fn mark_cdr_progress(
        &mut self,
        unique_id: &str,
        agent_answered_at: Option<i64>,
        bridged_at: Option<i64>,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE cdrs SET agent_answered_at = COALESCE($2, agent_answered_at), bridged_at = COALESCE($3, bridged_at) \
             WHERE unique_id = $1 AND ended_at IS NULL",
        )
        .bind(unique_id)
        .bind(agent_answered_at)
        .bind(bridged_at)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// The running call's customer was put on hold at this time, or taken off it (`None`).
    pub async fn mark_cdr_on_hold(&mut self, unique_id: &str, since: Option<i64>) -> Result<(), StoreError> {
        query("UPDATE cdrs SET on_hold_since = $2 WHERE unique_id = $1 AND ended_at IS NULL")
            .bind(unique_id)
            .bind(since)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// A running bridged call is still up at `at` (its heartbeat).
    pub async fn mark_cdr_alive(&mut self, unique_id: &str, at: i64) -> Result<(), StoreError> {
        query("UPDATE cdrs SET alive_at = $2 WHERE unique_id = $1 AND ended_at IS NULL")
            .bind(unique_id)
            .bind(at)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// The progress times recorded for a running call.
    pub async fn cdr_progress(&mut self, unique_id: &str) -> Result<CdrProgress, StoreError> {
        let row = query("SELECT agent_answered_at, bridged_at, alive_at, on_hold_since FROM cdrs WHERE unique_id = $1")
            .bind(unique_id)
            .fetch_optional(&mut self.conn)
            .await?;
        let Some(row) = row else {
            return Ok(CdrProgress::default());
        };
        Ok(CdrProgress {
            agent_answered_at: row.try_get("agent_answered_at")?,
            bridged_at: row.try_get("bridged_at")?,
            alive_at: row.try_get("alive_at")?,
            on_hold_since: row.try_get("on_hold_since")?,
        })
    }

    pub async fn cdr(&mut self, unique_id: &str) -> Result<Option<Cdr>, StoreError> {
        let sql = format!("SELECT {CDR_COLUMNS} FROM cdrs WHERE unique_id = $1");
        let row = query(&sql).bind(unique_id).fetch_optional(&mut self.conn).await?;
        row.as_ref().map(cdr_from_row).transpose()
    }

    /// CDRs of calls still running (after a crash: the calls to close).
    pub async fn open_cdrs(&mut self) -> Result<Vec<Cdr>, StoreError> {
        let sql = format!("SELECT {CDR_COLUMNS} FROM cdrs WHERE ended_at IS NULL ORDER BY requested_at");
        let rows = query(&sql).fetch_all(&mut self.conn).await?;
        rows.iter().map(cdr_from_row).collect()
    }

    pub async fn cdrs(&mut self, q: &CdrQuery) -> Result<Vec<Cdr>, StoreError> {
        // Filters are bound in a fixed order; absent ones compare against NULL and pass.
        let sql = format!(
            "SELECT {CDR_COLUMNS} FROM cdrs WHERE ($1 IS NULL OR enterprise_id = $1) AND ($2 IS NULL OR requested_at >= $2) \
             AND ($3 IS NULL OR requested_at <= $3) AND ($4 IS NULL OR unique_id = $4) AND ($5 IS NULL OR user_field = $5) \
             AND ($6 IS NULL OR customer_number = $6) AND ($7 IS NULL OR cno = $7) \
             ORDER BY requested_at DESC, unique_id DESC LIMIT $8 OFFSET $9"
        );
        let rows = query(&sql)
            .bind(q.enterprise_id.map(EnterpriseId::get))
            .bind(q.from)
            .bind(q.to)
            .bind(q.unique_id.as_deref())
            .bind(q.user_field.as_deref())
            .bind(q.customer_number.as_deref())
            .bind(q.cno.as_deref())
            .bind(i64::from(q.limit))
            .bind(i64::from(q.offset))
            .fetch_all(&mut self.conn)
            .await?;
        rows.iter().map(cdr_from_row).collect()
    }

    /// Accepted calls to `number` since `since` (the per-number call limit).
    pub async fn calls_to_number_since(
        &mut self,
        enterprise: EnterpriseId,
        number: &str,
        since: i64,
    ) -> Result<u64, StoreError> {
        let (count,): (i64,) = query_as(
            "SELECT COUNT(*) FROM cdrs WHERE enterprise_id = $1 AND customer_number = $2 AND requested_at >= $3",
        )
        .bind(enterprise.get())
        .bind(number)
        .bind(since)
        .fetch_one(&mut self.conn)
        .await?;
        Ok(to_u64(count))
    }

    /// Makes the counts an acceptance decides on exact until this transaction ends: the
    /// enterprise's running calls and calls to a number (when `enterprise` is given) and each of
    /// `trunks`' running calls. On PostgreSQL it locks those rows (the enterprise first, then the
    /// trunks in name order, so acceptances never wait for each other in a cycle): a concurrent
    /// acceptance waits here, then counts what this one wrote. `FOR NO KEY UPDATE`, not
    /// `FOR UPDATE`: it does not conflict with the key-share locks of inserts that reference the
    /// rows (events, CDRs), so those never deadlock with an admission. On SQLite a write transaction
    /// already holds the database's one write lock, so there is nothing to take.
    /// Call it first in the acceptance transaction, before any count.
    pub async fn lock_for_admission(
        &mut self,
        enterprise: Option<EnterpriseId>,
        trunks: &[&str],
    ) -> Result<(), StoreError> {
        if self.store.backend() == Backend::Sqlite {
            return Ok(());
        }
        if let Some(enterprise) = enterprise {
            query("SELECT id FROM enterprises WHERE id = $1 FOR NO KEY UPDATE")
                .bind(enterprise.get())
                .execute(&mut self.conn)
                .await?;
        }
        let mut names = trunks.to_vec();
        names.sort_unstable();
        names.dedup();
        for name in names {
            query("SELECT name FROM trunks WHERE name = $1 FOR NO KEY UPDATE")
                .bind(name)
                .execute(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    /// Calls of the enterprise running now (its concurrency cap) and on a trunk.
    pub async fn running_calls(
        &mut self,
        enterprise: Option<EnterpriseId>,
        trunk: Option<&str>,
    ) -> Result<u64, StoreError> {
        let (count,): (i64,) = query_as(
            "SELECT COUNT(*) FROM cdrs WHERE ended_at IS NULL AND ($1 IS NULL OR enterprise_id = $1) AND ($2 IS NULL OR trunk_name = $2)",
        )
        .bind(enterprise.map(EnterpriseId::get))
        .bind(trunk)
        .fetch_one(&mut self.conn)
        .await?;
        Ok(to_u64(count))
    }

    // ---- refused requests ----

    pub async fn record_refusal(&mut self, refused: &Refused<'_>) -> Result<(), StoreError> {
        let at = now_ms();
        let bucket = refused.counted.then(|| {
            format!(
                "{}|{}|{}|{}|{}",
                refused.enterprise.map_or_else(String::new, |e| e.to_string()),
                refused.source.unwrap_or_default(),
                refused.cno.unwrap_or_default(),
                refused.res,
                at / 60_000
            )
        });
        let id = self.next_id("refused_requests").await?;
        query(
            "INSERT INTO refused_requests \
             (id, enterprise_id, cno, customer_number, res, reason, at, source, count, last_at, bucket) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $7, $9) \
             ON CONFLICT (bucket) DO UPDATE SET count = refused_requests.count + 1, last_at = excluded.last_at",
        )
        .bind(id)
        .bind(refused.enterprise)
        .bind(refused.cno)
        .bind(refused.customer_number)
        .bind(refused.res)
        .bind(refused.reason)
        .bind(at)
        .bind(refused.source)
        .bind(bucket)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// The latest refusals, newest first: of one enterprise, or of all (with those that named
    /// none).
    pub async fn refusals(
        &mut self,
        enterprise: Option<EnterpriseId>,
        limit: u32,
    ) -> Result<Vec<RefusalRecord>, StoreError> {
        let rows = query(
            "SELECT at, last_at, count, enterprise_id, source, cno, customer_number, res, reason FROM refused_requests \
             WHERE $1 IS NULL OR enterprise_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(enterprise.map(EnterpriseId::get))
        .bind(i64::from(limit))
        .fetch_all(&mut self.conn)
        .await?;
        rows.iter()
            .map(|row| {
                let at: i64 = row.try_get("at")?;
                Ok(RefusalRecord {
                    at,
                    last_at: row.try_get::<Option<i64>>("last_at")?.unwrap_or(at),
                    count: to_u64(row.try_get("count")?),
                    enterprise_id: row.try_get("enterprise_id")?,
                    source: row.try_get("source")?,
                    cno: row.try_get("cno")?,
                    customer_number: row.try_get("customer_number")?,
                    res: row.try_get("res")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }
}

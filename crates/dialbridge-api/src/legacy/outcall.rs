//! `/interface/PreviewOutcall`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use dialbridge_core::agent::AgentRefusal;
use dialbridge_core::text::{printable, SHOWN_CHARS};
use dialbridge_core::{Cno, EnterpriseId};
use dialbridge_service::{OutcallRequest, Refusal as CallRefusal, RingLimits};
use dialbridge_store::{Refused, StoreError};
use serde_json::json;

use super::{auth, reply, Params};
use crate::credentials::Verdict;
use crate::AppState;

const MAX_USER_FIELD: usize = 1024;
/// Why a throttled request was refused unevaluated.
const THROTTLED: &str = "authentication throttled: too many failed attempts from this source";

pub async fn preview_outcall(
    State(app): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    params: Params,
) -> Response {
    match place(&app, &params).await {
        Ok(body) => reply(&params, body),
        // Refused unheard: counted by the throttle's metric, neither logged nor recorded one
        // by one (a flood would otherwise write at its own rate).
        Err(refusal) if refusal.reason == THROTTLED => reply(&params, json!({ "res": refusal.res })),
        Err(refusal) => {
            if refusal.res == "2" {
                // Malformed requests count against their source like unknown accounts.
                app.credentials.malformed(params.source());
            }
            let shown = |name| params.get(name).map(|value| printable(value, SHOWN_CHARS));
            tracing::info!(
                res = refusal.res,
                reason = %printable(&refusal.reason, 4 * SHOWN_CHARS),
                %source,
                enterprise = ?shown("enterpriseId"),
                cno = ?shown("cno"),
                "PreviewOutcall refused"
            );
            record(&app, source, &params, &refusal).await;
            reply(&params, json!({ "res": refusal.res }))
        }
    }
}

/// A refused PreviewOutcall as the legacy wire says it: its `res` code, and a reason for the
/// operator's log.
#[derive(Debug)]
struct Refusal {
    res: &'static str,
    reason: String,
    /// Refused after the caller proved who it is (else anyone could have sent it).
    authenticated: bool,
}

/// Refused before authentication.
fn unauthenticated(res: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        res,
        reason: reason.into(),
        authenticated: false,
    }
}

fn bad(reason: &str) -> Refusal {
    unauthenticated("2", reason)
}

/// The configuration could not be read: before authentication.
impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        let refusal = CallRefusal::from(e);
        unauthenticated(res_code(&refusal), refusal.to_string())
    }
}

/// The call service refused an authenticated request.
impl From<CallRefusal> for Refusal {
    fn from(refusal: CallRefusal) -> Self {
        Refusal {
            res: res_code(&refusal),
            reason: refusal.to_string(),
            authenticated: true,
        }
    }
}

/// The spec's `res` for each reason the call service refuses a call (§2.1).
pub(crate) fn res_code(refusal: &CallRefusal) -> &'static str {
    match refusal {
        CallRefusal::EnterpriseInactive(_) => "41",
        CallRefusal::AgentDisabled => "4",
        CallRefusal::OutboundDisabled
        | CallRefusal::NoCallerId
        | CallRefusal::DefaultCallerIdGone
        | CallRefusal::CallerIdTrunkGone(_) => "6",
        CallRefusal::BalanceExhausted => "5",
        CallRefusal::BadCustomerNumber(_)
        | CallRefusal::ExtensionAsCustomer
        | CallRefusal::DestinationForbidden(_)
        | CallRefusal::CallPowerForbids { .. } => "7",
        CallRefusal::Blacklisted(_) => "11",
        CallRefusal::UnknownCallerId => "14",
        CallRefusal::NumberLimitReached { .. } => "40",
        CallRefusal::Agent(AgentRefusal::Offline | AgentRefusal::AlreadyOnline) => "12",
        CallRefusal::Agent(AgentRefusal::AlreadyCalling) | CallRefusal::LockLost => "33",
        CallRefusal::Agent(AgentRefusal::InCall) => "13",
        CallRefusal::NoBoundPhone | CallRefusal::PhoneUnreachable => "9",
        CallRefusal::ConcurrencyCapReached | CallRefusal::NoTrunk(_) | CallRefusal::Internal => "10",
    }
}

async fn place(app: &AppState, params: &Params) -> Result<serde_json::Value, Refusal> {
    let enterprise_id = EnterpriseId::parse(params.get("enterpriseId").ok_or_else(|| bad("enterpriseId missing"))?)
        .map_err(|_| bad("enterpriseId malformed"))?;
    let cno = Cno::parse(params.get("cno").ok_or_else(|| bad("cno missing"))?).map_err(|_| bad("cno malformed"))?;
    let pwd = params.get("pwd").ok_or_else(|| bad("pwd missing"))?;
    let customer_number = params
        .get("customerNumber")
        .ok_or_else(|| bad("customerNumber missing"))?;
    let sync = match params.get("sync") {
        None => None,
        Some("1") => Some(true),
        Some("0") => Some(false),
        Some(_) => return Err(bad("sync must be 0 or 1")),
    };
    let user_field = params.raw("userField").unwrap_or_default().to_owned();
    if user_field.len() > MAX_USER_FIELD {
        return Err(bad("userField longer than 1024 bytes"));
    }

    let configuration = app.calls.configuration().await?;
    let source = params.source();
    let Some((configured, agent)) = configuration
        .enterprise(enterprise_id)
        .and_then(|e| e.agent(&cno).map(|agent| (e, agent)))
    else {
        // Naming agents that do not exist is what guessing looks like: counted per source.
        if app.credentials.admit(source, None).is_some() {
            return Err(unauthenticated("3", THROTTLED));
        }
        app.credentials.malformed(source);
        return Err(unauthenticated("8", format!("no agent {cno}")));
    };
    let verdict = match params.get("userName") {
        Some(user) => auth::check_admin(app, source, enterprise_id, user, params.get("seed"), pwd).await?,
        None => {
            auth::check_agent(
                app,
                source,
                enterprise_id,
                &cno,
                configured.agent_password_hash(&cno),
                pwd,
            )
            .await
        }
    };
    match verdict {
        Verdict::Valid => {}
        Verdict::Invalid => return Err(unauthenticated("3", "authentication failed")),
        Verdict::Throttled(_) => return Err(unauthenticated("3", THROTTLED)),
        // Guessing must not starve calls: a full hash queue is the platform's capacity, not a
        // wrong password.
        Verdict::Busy => return Err(unauthenticated("10", "busy: too many logins being checked")),
    }
    let enterprise = &configured.enterprise;
    let sync = sync.unwrap_or(enterprise.settings.sync_default);
    let request = OutcallRequest {
        customer_number: customer_number.to_owned(),
        user_field,
        caller_id: params.get("clidLeftNumber").map(str::to_owned),
        ring_limits: RingLimits::default(),
    };
    let accepted = app
        .calls
        .preview_outcall(&configuration, configured, agent, request)
        .await?;
    tracing::info!(unique_id = %accepted.unique_id, %enterprise_id, %cno, sync, "PreviewOutcall accepted");
    if !sync {
        return Ok(json!({ "res": "0", "uniqueId": accepted.unique_id }));
    }
    // Sync: the agent leg's setup decides, within its ring timeout plus 5 s.
    let wait = accepted.agent_ring_timeout + Duration::from_secs(5);
    match tokio::time::timeout(wait, accepted.agent_answered).await {
        Ok(Ok(true)) => Ok(json!({ "res": "0", "uniqueId": accepted.unique_id })),
        _ => Ok(json!({ "res": "1" })),
    }
}

/// Records a call refused to an agent's toolbar (authenticated: one row each, as a refused
/// PreviewOutcall's).
pub(crate) async fn record_toolbar_refusal(
    app: &AppState,
    source: std::net::IpAddr,
    enterprise: EnterpriseId,
    cno: &str,
    customer_number: &str,
    res: &'static str,
    reason: &str,
) {
    let source = source.to_string();
    let customer_number = printable(customer_number, SHOWN_CHARS);
    let reason = printable(reason, 4 * SHOWN_CHARS);
    let refused = Refused {
        enterprise: Some(enterprise.get()),
        source: Some(&source),
        cno: Some(cno),
        customer_number: Some(&customer_number),
        res,
        reason: &reason,
        counted: false,
    };
    store_refusal(app, &refused).await;
}

async fn store_refusal(app: &AppState, refused: &Refused<'_>) {
    let result = async {
        let mut tx = app.calls.store().begin().await?;
        tx.record_refusal(refused).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record a refused request");
    }
}

/// Records the refusal: each one after authentication; before it, counted with the same of its
/// minute from the same source. Values from the request are cut and escaped first.
async fn record(app: &AppState, source: SocketAddr, params: &Params, refusal: &Refusal) {
    let enterprise = params.get("enterpriseId").and_then(|e| EnterpriseId::parse(e).ok());
    // What names an aggregate must be finite for a stranger: an enterprise that exists, the
    // cno only of an agent that exists (a wrong password), an IPv6 source by its /64.
    let enterprise = match refusal.authenticated {
        true => enterprise,
        false => match app.calls.configuration().await {
            Ok(configuration) => enterprise.filter(|e| configuration.enterprise(*e).is_some()),
            Err(_) => None,
        },
    };
    let shown = |name| params.get(name).map(|value| printable(value, SHOWN_CHARS));
    let cno = match (refusal.authenticated, refusal.res) {
        (true, _) => shown("cno"),
        (false, "3") => params
            .get("cno")
            .and_then(|c| Cno::parse(c).ok())
            .map(|c| c.to_string()),
        (false, _) => None,
    };
    let customer_number = shown("customerNumber");
    let reason = printable(&refusal.reason, 4 * SHOWN_CHARS);
    let source = match source.ip() {
        std::net::IpAddr::V6(v6) => match ipnet::Ipv6Net::new(v6, 64) {
            Ok(net) => net.trunc().to_string(),
            Err(_) => v6.to_string(),
        },
        v4 => v4.to_string(),
    };
    let enterprise = enterprise.map(EnterpriseId::get);
    let refused = Refused {
        enterprise,
        source: Some(&source),
        cno: cno.as_deref(),
        customer_number: customer_number.as_deref(),
        res: refusal.res,
        reason: &reason,
        counted: !refusal.authenticated,
    };
    store_refusal(app, &refused).await;
}

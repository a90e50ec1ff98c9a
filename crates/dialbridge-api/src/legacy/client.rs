//! Agent sessions and hang-up: `/interface/client/*` and `/interface/HangUp` (admin seed
//! authentication). Replies in the `code` style (ClientOnline, ClientOffline, ChangeStatus) or
//! the `result` style (ChangeBindTel, HangUp).

use axum::extract::State;
use axum::response::Response;
use dialbridge_core::agent::{AgentRefusal, AgentState, Availability};
use dialbridge_core::{Cno, Enterprise, EnterpriseId, ExtensionNumber, PhoneType};
use dialbridge_store::{AgentRecord, StoreError, Tx};
use serde_json::json;

use super::auth::SeedRefusal;
use super::{auth, reply, Params};
use crate::AppState;
use dialbridge_service::now_ms;

/// A refusal in the `code` style; `result` style handlers turn it into `{"result":"error"}`.
struct Failure {
    code: &'static str,
    msg: String,
}

fn fail(code: &'static str, msg: impl Into<String>) -> Failure {
    Failure { code, msg: msg.into() }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error in an agent request");
        fail("99", "internal error")
    }
}

fn code_reply(params: &Params, result: Result<(), Failure>) -> Response {
    match result {
        Ok(()) => reply(params, json!({"code": "0", "msg": "ok"})),
        Err(f) => reply(params, json!({"code": f.code, "msg": f.msg})),
    }
}

fn result_reply(params: &Params, result: Result<(), Failure>) -> Response {
    match result {
        Ok(()) => reply(params, json!({"result": "success"})),
        Err(f) => reply(params, json!({"result": "error", "msg": f.msg})),
    }
}

/// Admin seed authentication, then the agent named by `cno`.
/// Admin seed authentication, in the `code` style.
async fn admin(app: &AppState, params: &Params) -> Result<EnterpriseId, Failure> {
    match auth::admin_seed(app, params).await? {
        Ok(enterprise) => Ok(enterprise),
        Err(r @ (SeedRefusal::BadEnterprise | SeedRefusal::MissingCredentials)) => Err(fail("2", r.message())),
        Err(r) => Err(fail("3", r.message())),
    }
}

/// Admin seed authentication and the `cno` the request names, before any database work (a
/// guess holds no connection).
async fn admin_and_cno(app: &AppState, params: &Params) -> Result<(EnterpriseId, Cno), Failure> {
    let cno = params
        .get("cno")
        .and_then(|c| Cno::parse(c).ok())
        .ok_or_else(|| fail("2", "bad cno"))?;
    Ok((admin(app, params).await?, cno))
}

/// The authenticated enterprise and the agent named.
async fn enterprise_and_agent(
    tx: &mut Tx<'_>,
    (enterprise_id, cno): (EnterpriseId, Cno),
) -> Result<(Enterprise, AgentRecord), Failure> {
    let enterprise = tx
        .enterprise(enterprise_id)
        .await?
        .ok_or_else(|| fail("3", "authentication failed"))?;
    let agent = tx
        .agent(enterprise_id, &cno)
        .await?
        .ok_or_else(|| fail("8", "no such agent"))?;
    Ok((enterprise, agent))
}

/// The phone a request names: `type` (default 1) and `bindTel`, checked against the enterprise.
async fn phone_of(tx: &mut Tx<'_>, enterprise: &Enterprise, params: &Params) -> Result<(PhoneType, String), Failure> {
    let phone_type = match params.get("type") {
        None => PhoneType::Telephone,
        Some(t) => t
            .parse::<i64>()
            .ok()
            .and_then(PhoneType::from_legacy_code)
            .ok_or_else(|| fail("32", "bad phone type"))?,
    };
    let tel = params.get("bindTel").ok_or_else(|| fail("2", "bindTel is required"))?;
    let number = phone_type.validate_number(tel).map_err(|e| fail("32", e.reason))?;
    if phone_type == PhoneType::Extension {
        let extension = ExtensionNumber::parse(number.digits()).map_err(|e| fail("32", e.reason))?;
        if tx.extension_password(enterprise.id, &extension).await?.is_none() {
            return Err(fail("32", format!("no extension {extension}")));
        }
    }
    Ok((phone_type, number.digits().to_owned()))
}

fn refusal(r: AgentRefusal) -> Failure {
    match r {
        AgentRefusal::AlreadyOnline => fail("12", "already online"),
        AgentRefusal::Offline => fail("12", "agent offline"),
        AgentRefusal::AlreadyCalling | AgentRefusal::InCall => fail("13", "agent in a call"),
    }
}

/// Applies a change to the agent's state within `tx` (the version check makes it atomic).
async fn change_agent(
    tx: &mut Tx<'_>,
    agent: &AgentRecord,
    change: impl FnOnce(&AgentState) -> Result<AgentState, AgentRefusal>,
) -> Result<(), Failure> {
    let stored = tx.agent_state(agent.id).await?;
    let next = change(&stored.state).map_err(refusal)?;
    if !tx.save_agent_state(agent.id, &next, stored.version).await? {
        return Err(fail("13", "the agent changed meanwhile; try again"));
    }
    Ok(())
}

/// Binds a phone; one bound to another agent is refused with 31.
async fn bind(
    tx: &mut Tx<'_>,
    enterprise: &Enterprise,
    agent: &AgentRecord,
    phone_type: PhoneType,
    number: &str,
) -> Result<(), Failure> {
    match tx.bind_phone(enterprise.id, agent.id, phone_type, number).await {
        Err(StoreError::Conflict(_)) => Err(fail("31", "the phone is bound to another agent")),
        other => Ok(other?),
    }
}

/// Ends a session request: the agent's status push for its state now, in the same transaction,
/// then the commit.
async fn finish(app: &AppState, mut tx: Tx<'_>, enterprise: EnterpriseId, agent: &AgentRecord) -> Result<(), Failure> {
    let state = tx.agent_state(agent.id).await?.state;
    app.calls
        .push_status(&mut tx, enterprise, agent.id, agent.cno.as_str(), &state, "")
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn client_online(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let named = admin_and_cno(&app, &params).await?;
        let mut tx = app.calls.store().begin().await?;
        let (enterprise, agent) = enterprise_and_agent(&mut tx, named).await?;
        let availability = match params.get("status") {
            None | Some("1") => Availability::Online,
            Some("2") => Availability::Pause(params.get("description").unwrap_or("pause").to_owned()),
            Some(_) => return Err(fail("2", "status must be 1 or 2")),
        };
        let (phone_type, number) = phone_of(&mut tx, &enterprise, &params).await?;
        change_agent(&mut tx, &agent, |s| s.log_in(availability, now_ms())).await?;
        bind(&mut tx, &enterprise, &agent, phone_type, &number).await?;
        finish(&app, tx, enterprise.id, &agent).await
    }
    .await;
    code_reply(&params, result)
}

pub async fn client_offline(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let named = admin_and_cno(&app, &params).await?;
        let mut tx = app.calls.store().begin().await?;
        let (enterprise, agent) = enterprise_and_agent(&mut tx, named).await?;
        change_agent(&mut tx, &agent, |s| s.log_out(now_ms())).await?;
        if params.get("unBind") == Some("1") {
            tx.unbind_phone(agent.id).await?;
        }
        finish(&app, tx, enterprise.id, &agent).await
    }
    .await;
    code_reply(&params, result)
}

pub async fn change_status(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let named = admin_and_cno(&app, &params).await?;
        let mut tx = app.calls.store().begin().await?;
        let (enterprise, agent) = enterprise_and_agent(&mut tx, named).await?;
        let availability = match params.get("type") {
            Some("1") => Availability::Online,
            Some("2") => Availability::Pause(params.get("description").unwrap_or("pause").to_owned()),
            _ => return Err(fail("2", "type must be 1 or 2")),
        };
        change_agent(&mut tx, &agent, |s| s.change_status(availability, now_ms())).await?;
        finish(&app, tx, enterprise.id, &agent).await
    }
    .await;
    code_reply(&params, result)
}

pub async fn change_bind_tel(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let named = admin_and_cno(&app, &params).await?;
        let mut tx = app.calls.store().begin().await?;
        let (enterprise, agent) = enterprise_and_agent(&mut tx, named).await?;
        let (phone_type, number) = phone_of(&mut tx, &enterprise, &params).await?;
        let stored = tx.agent_state(agent.id).await?;
        if stored.state.call.is_some() {
            return Err(fail("13", "agent not idle"));
        }
        bind(&mut tx, &enterprise, &agent, phone_type, &number).await?;
        finish(&app, tx, enterprise.id, &agent).await
    }
    .await;
    result_reply(&params, result)
}

pub async fn hang_up(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let enterprise_id = admin(&app, &params).await?;
        let mut tx = app.calls.store().begin_read().await?;
        let unique_id = match (params.get("uniqueId"), params.get("cno")) {
            (Some(unique_id), _) => {
                let cdr = tx.cdr(unique_id).await?;
                // Another enterprise's call is "no call" for this one.
                cdr.filter(|c| c.start.enterprise_id == enterprise_id && c.end.is_none())
                    .map(|c| c.start.unique_id)
            }
            (None, Some(cno)) => {
                let cno = Cno::parse(cno).map_err(|_| fail("2", "bad cno"))?;
                let agent = tx
                    .agent(enterprise_id, &cno)
                    .await?
                    .ok_or_else(|| fail("8", "no such agent"))?;
                tx.agent_state(agent.id).await?.state.call.map(|c| c.unique_id)
            }
            (None, None) => return Err(fail("2", "cno or uniqueId is required")),
        };
        drop(tx);
        match unique_id {
            Some(id) if app.calls.engine().hang_up(&id) => Ok(()),
            _ => Err(fail("0", "no call")),
        }
    }
    .await;
    result_reply(&params, result)
}

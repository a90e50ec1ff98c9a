//! Agent sessions and hang-up: `/interface/client/*` and `/interface/HangUp` (admin seed
//! authentication). Replies in the `code` style (ClientOnline, ClientOffline, ChangeStatus) or
//! the `result` style (ChangeBindTel, HangUp).

use axum::extract::State;
use axum::response::Response;
use dialbridge_core::agent::{AgentRefusal, Availability};
use dialbridge_core::{Cno, EnterpriseId, PhoneType};
use dialbridge_service::{CallOf, PhoneChoice, SessionRefusal};
use dialbridge_store::StoreError;
use serde_json::json;

use super::auth::SeedRefusal;
use super::{auth, reply, Params};
use crate::AppState;

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

/// The phone a request names: `type` (default 1) and `bindTel`.
fn phone_of(params: &Params) -> Result<PhoneChoice<'_>, Failure> {
    let phone_type = match params.get("type") {
        None => PhoneType::Telephone,
        Some(t) => t
            .parse::<i64>()
            .ok()
            .and_then(PhoneType::from_legacy_code)
            .ok_or_else(|| fail("32", "bad phone type"))?,
    };
    let number = params.get("bindTel").ok_or_else(|| fail("2", "bindTel is required"))?;
    Ok(PhoneChoice { phone_type, number })
}

/// The legacy code (`code` style) of each reason a session request is refused.
pub(crate) fn session_code(refusal: &SessionRefusal) -> &'static str {
    match refusal {
        SessionRefusal::NoSuchAgent => "8",
        SessionRefusal::BadPhone(_) => "32",
        SessionRefusal::PhoneBoundToAnother => "31",
        SessionRefusal::Agent(AgentRefusal::AlreadyOnline | AgentRefusal::Offline) => "12",
        SessionRefusal::Agent(AgentRefusal::AlreadyCalling | AgentRefusal::InCall)
        | SessionRefusal::ChangedMeanwhile
        | SessionRefusal::NotIdle => "13",
        SessionRefusal::NoCall => "0",
        SessionRefusal::NotADigit(_)
        | SessionRefusal::NotInWrapup
        | SessionRefusal::NotBridged
        | SessionRefusal::NotRecorded
        | SessionRefusal::Softphone(_) => "2",
        SessionRefusal::Internal => "99",
    }
}

impl From<SessionRefusal> for Failure {
    fn from(r: SessionRefusal) -> Self {
        fail(session_code(&r), r.to_string())
    }
}

fn availability(status: Option<&str>, params: &Params, field: &str) -> Result<Availability, Failure> {
    match status {
        Some("1") => Ok(Availability::Online),
        Some("2") => Ok(Availability::Pause(
            params.get("description").unwrap_or("pause").to_owned(),
        )),
        _ => Err(fail("2", format!("{field} must be 1 or 2"))),
    }
}

pub async fn client_online(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let (enterprise, cno) = admin_and_cno(&app, &params).await?;
        let availability = availability(params.get("status").or(Some("1")), &params, "status")?;
        let phone = phone_of(&params)?;
        Ok(app.calls.log_in(enterprise, &cno, availability, phone).await?)
    }
    .await;
    code_reply(&params, result)
}

pub async fn client_offline(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let (enterprise, cno) = admin_and_cno(&app, &params).await?;
        let unbind = params.get("unBind") == Some("1");
        Ok(app.calls.log_out(enterprise, &cno, unbind).await?)
    }
    .await;
    code_reply(&params, result)
}

pub async fn change_status(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let (enterprise, cno) = admin_and_cno(&app, &params).await?;
        let availability = availability(params.get("type"), &params, "type")?;
        Ok(app.calls.change_status(enterprise, &cno, availability).await?)
    }
    .await;
    code_reply(&params, result)
}

pub async fn change_bind_tel(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let (enterprise, cno) = admin_and_cno(&app, &params).await?;
        let phone = phone_of(&params)?;
        Ok(app.calls.change_phone(enterprise, &cno, phone).await?)
    }
    .await;
    result_reply(&params, result)
}

pub async fn hang_up(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let enterprise = admin(&app, &params).await?;
        let cno;
        let call = match (params.get("uniqueId"), params.get("cno")) {
            (Some(unique_id), _) => CallOf::UniqueId(unique_id),
            (None, Some(given)) => {
                cno = Cno::parse(given).map_err(|_| fail("2", "bad cno"))?;
                CallOf::Agent(&cno)
            }
            (None, None) => return Err(fail("2", "cno or uniqueId is required")),
        };
        Ok(app.calls.hang_up_call(enterprise, call).await?)
    }
    .await;
    result_reply(&params, result)
}

//! Agent management: `/interfaceAction/clientInterface!<method>.action` (admin password
//! authentication; `validateCno` answers without credentials and is rate-limited per source).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use dialbridge_core::agent::AgentState;
use dialbridge_core::{validate_area_code, AgentSettings, Cno, EnterpriseId};
use dialbridge_store::{AgentRecord, StoreError, Tx};
use serde_json::{json, Value};

use super::{auth, reply, Params};
use crate::AppState;
use dialbridge_service::now_ms;

type Outcome = Result<Value, String>;

fn store_error(e: StoreError) -> String {
    tracing::error!(error = %e, "store error in agent management");
    "internal error".to_owned()
}

fn answer(params: &Params, outcome: Outcome) -> Response {
    match outcome {
        Ok(body) => reply(params, body),
        Err(msg) => reply(params, json!({"result": "error", "msg": msg})),
    }
}

/// Admin password authentication: `password` = md5(admin password), or with a `seed`,
/// md5(md5(admin password) + seed).
async fn authenticate(app: &AppState, params: &Params) -> Result<EnterpriseId, String> {
    match auth::admin_family(app, params, "password").await.map_err(store_error)? {
        Ok(enterprise) => Ok(enterprise),
        Err(auth::SeedRefusal::MissingCredentials) => Err("userName and password are required".into()),
        Err(refusal) => Err(refusal.message().to_owned()),
    }
}

/// The agent named by `id` or `cno`.
async fn target(tx: &mut Tx<'_>, enterprise: EnterpriseId, params: &Params) -> Result<AgentRecord, String> {
    let cno = match (params.get("id"), params.get("cno")) {
        (Some(id), _) => {
            let id: i64 = id.parse().map_err(|_| "bad id")?;
            tx.agent_by_id(enterprise, id)
                .await
                .map_err(store_error)?
                .ok_or("no such agent")?
        }
        (None, Some(cno)) => cno.to_owned(),
        (None, None) => return Err("cno or id is required".into()),
    };
    let cno = Cno::parse(&cno).map_err(|e| e.reason)?;
    tx.agent(enterprise, &cno)
        .await
        .map_err(store_error)?
        .ok_or_else(|| "no such agent".into())
}

async fn view_of(tx: &mut Tx<'_>, agent: &AgentRecord) -> Result<Value, String> {
    let fields = tx.agent_legacy_fields(agent.id).await.map_err(store_error)?;
    Ok(json!({
        "id": agent.id,
        "cno": agent.cno.as_str(),
        "name": agent.settings.name,
        "areaCode": agent.settings.area_code.clone().unwrap_or_default(),
        "power": fields.power.to_string(),
        "clientType": fields.client_type.to_string(),
        "active": if agent.settings.active { "1" } else { "0" },
    }))
}

fn small_code(params: &Params, name: &str, allowed: &[i64], default: i64) -> Result<i64, String> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|v| allowed.contains(v))
            .ok_or_else(|| format!("bad {name}")),
    }
}

pub async fn save(State(app): State<AppState>, params: Params) -> Response {
    let outcome = async {
        // Authenticated before any database work: a guess holds no connection.
        let enterprise = authenticate(&app, &params).await?;
        let mut tx = app.calls.store().begin().await.map_err(store_error)?;
        let power = small_code(&params, "power", &[0, 1], 0)?;
        let client_type = small_code(&params, "clientType", &[1, 2], 1)?;
        if let Some(area) = params.get("areaCode") {
            validate_area_code(area).map_err(|e| e.reason)?;
        }
        let existing = match params.get("id") {
            Some(_) => Some(target(&mut tx, enterprise, &params).await?),
            None => {
                let cno = Cno::parse(params.get("cno").ok_or("cno is required")?).map_err(|e| e.reason)?;
                tx.agent(enterprise, &cno).await.map_err(store_error)?
            }
        };
        let id = match existing {
            Some(agent) => {
                let mut settings = agent.settings.clone();
                if let Some(name) = params.get("name") {
                    settings.name = name.to_owned();
                }
                if let Some(area) = params.get("areaCode") {
                    settings.area_code = Some(area.to_owned());
                }
                tx.update_agent(enterprise, &agent.cno, &settings)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(pwd) = params.get("pwd") {
                    tx.set_agent_password(enterprise, &agent.cno, pwd)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                agent.id
            }
            None => {
                let cno = Cno::parse(params.get("cno").ok_or("cno is required")?).map_err(|e| e.reason)?;
                let mut settings = AgentSettings::new(params.get("name").unwrap_or(cno.as_str()));
                settings.area_code = params.get("areaCode").map(str::to_owned);
                tx.insert_agent(enterprise, &cno, &settings, params.get("pwd"))
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        tx.set_agent_legacy_fields(id, power, client_type)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(json!({"result": "success", "id": id}))
    }
    .await;
    answer(&params, outcome)
}

pub async fn view(State(app): State<AppState>, params: Params) -> Response {
    let outcome = async {
        // Authenticated before any database work: a guess holds no connection.
        let enterprise = authenticate(&app, &params).await?;
        let mut tx = app.calls.store().begin_read().await.map_err(store_error)?;
        let agent = target(&mut tx, enterprise, &params).await?;
        Ok(json!({"result": "success", "msg": view_of(&mut tx, &agent).await?}))
    }
    .await;
    answer(&params, outcome)
}

pub async fn list(State(app): State<AppState>, params: Params) -> Response {
    let outcome = async {
        // Authenticated before any database work: a guess holds no connection.
        let enterprise = authenticate(&app, &params).await?;
        let mut tx = app.calls.store().begin_read().await.map_err(store_error)?;
        let mut rows = Vec::new();
        for agent in tx.agents(enterprise).await.map_err(store_error)? {
            rows.push(view_of(&mut tx, &agent).await?);
        }
        Ok(json!({"result": "success", "msg": rows}))
    }
    .await;
    answer(&params, outcome)
}

pub async fn delete(State(app): State<AppState>, params: Params) -> Response {
    let outcome = async {
        // Authenticated before any database work: a guess holds no connection.
        let enterprise = authenticate(&app, &params).await?;
        let mut tx = app.calls.store().begin().await.map_err(store_error)?;
        let agent = target(&mut tx, enterprise, &params).await?;
        let state: AgentState = tx.agent_state(agent.id).await.map_err(store_error)?.state.at(now_ms());
        if state.call.is_some() {
            return Err("agent in a call".to_owned());
        }
        tx.delete_agent(enterprise, &agent.cno)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(store_error)?;
        Ok(json!({"result": "success"}))
    }
    .await;
    answer(&params, outcome)
}

/// Per-source budget of `validateCno` calls: it answers without credentials, so it must not be
/// a way to enumerate an enterprise's agents quickly.
#[derive(Default)]
pub struct ValidateLimiter {
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

const VALIDATE_PER_MINUTE: u32 = 60;

impl ValidateLimiter {
    fn allow(&self, source: IpAddr) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, (since, _)| since.elapsed().as_secs() < 60);
        let entry = seen.entry(source).or_insert((Instant::now(), 0));
        entry.1 += 1;
        entry.1 <= VALIDATE_PER_MINUTE
    }
}

pub async fn validate_cno(
    State(app): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    params: Params,
) -> Response {
    if !app.validate_limiter.allow(source.ip()) {
        return reply(&params, json!({"result": false}));
    }
    let exists = async {
        let enterprise = EnterpriseId::parse(params.get("enterpriseId")?).ok()?;
        let cno = Cno::parse(params.get("cno")?).ok()?;
        let mut tx = app.calls.store().begin_read().await.ok()?;
        tx.agent(enterprise, &cno).await.ok()?
    }
    .await
    .is_some();
    reply(&params, json!({"result": exists}))
}

pub async fn query_bind_tel(State(app): State<AppState>, params: Params) -> Response {
    let outcome = async {
        let enterprise = auth::admin_seed(&app, &params)
            .await
            .map_err(store_error)?
            .map_err(|r| r.message().to_owned())?;
        let mut tx = app.calls.store().begin_read().await.map_err(store_error)?;
        let agent = target(&mut tx, enterprise, &params).await?;
        let phones = tx.phones_of(agent.id).await.map_err(store_error)?;
        let data: Vec<Value> = phones
            .into_iter()
            .map(|phone| {
                json!({
                    "id": phone.id,
                    "enterpriseId": enterprise.get(),
                    "cno": agent.cno.as_str(),
                    "tel": phone.number,
                    "telType": phone.phone_type,
                    "isBind": if phone.bound { 1 } else { 0 },
                    "createTime": phone.created_at,
                })
            })
            .collect();
        Ok(json!({"result": 0, "data": data}))
    }
    .await;
    answer(&params, outcome)
}

//! `/interfaceAction/cdrObInterface!listCdrOb.action`: the enterprise's CDRs, newest first.

use axum::extract::State;
use axum::response::Response;
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use dialbridge_core::call::Side;
use dialbridge_core::EnterpriseId;
use dialbridge_store::{Cdr, CdrQuery};
use serde_json::{json, Value};

use super::{auth, reply, Params};
use crate::AppState;

const MAX_LIMIT: u32 = 1000;

fn error(params: &super::Params, msg: &str) -> Response {
    reply(params, json!({"result": "error", "msg": msg}))
}

pub async fn list_cdr_ob(State(app): State<AppState>, params: Params) -> Response {
    let result = async {
        let (enterprise_id, zone) = match authenticated_zone(&app, &params).await? {
            Ok(found) => found,
            Err(refusal) => return Ok(Err(refusal.message())),
        };
        let mut tx = app.calls.store().begin_read().await?;
        let time = |name: &str| -> Result<Option<i64>, &'static str> {
            params
                .get(name)
                .map(|t| {
                    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                        .ok()
                        .and_then(|n| zone.from_local_datetime(&n).earliest())
                        .map(|d| d.timestamp_millis())
                        .ok_or("times are yyyy-MM-dd HH:mm:ss")
                })
                .transpose()
        };
        let (from, to) = match (time("startTime"), time("endTime")) {
            (Ok(from), Ok(to)) => (from, to),
            _ => return Ok(Err("times are yyyy-MM-dd HH:mm:ss")),
        };
        let limit = params
            .get("limit")
            .and_then(|l| l.parse::<u32>().ok())
            .unwrap_or(MAX_LIMIT)
            .clamp(1, MAX_LIMIT);
        let offset = params.get("start").and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
        let mut q = CdrQuery {
            enterprise_id: Some(enterprise_id),
            from,
            to,
            unique_id: params.get("uniqueId").map(str::to_owned),
            user_field: params.get("userField").map(str::to_owned),
            offset,
            limit,
            ..CdrQuery::default()
        };
        match (params.get("title"), params.get("value")) {
            (Some("customer_number"), Some(v)) => q.customer_number = Some(v.to_owned()),
            (Some("cno"), Some(v)) => q.cno = Some(v.to_owned()),
            _ => {}
        }
        let configuration = app.calls.configuration().await?;
        let settings = configuration.enterprise(enterprise_id).map(|c| &c.enterprise.settings);
        let rows: Vec<Value> = tx
            .cdrs(&q)
            .await?
            .iter()
            .filter(|c| c.end.is_some())
            .map(|c| {
                let record_file = match (settings, &c.end) {
                    (Some(settings), Some(end)) => app.calls.shown_record_file(settings, &end.record_file),
                    _ => String::new(),
                };
                row(c, zone, &record_file)
            })
            .collect();
        Ok::<_, dialbridge_store::StoreError>(Ok(rows))
    }
    .await;
    match result {
        Ok(Ok(rows)) => reply(&params, json!({"result": "success", "msg": {"data": rows}})),
        Ok(Err(msg)) => error(&params, msg),
        Err(e) => {
            tracing::error!(error = %e, "CDR query failed");
            error(&params, "internal error")
        }
    }
}

/// `!listCdrObDetail.action?id=<uniqueId>`: one row per leg of the call.
pub async fn list_cdr_ob_detail(State(app): State<AppState>, params: Params) -> Response {
    let Some(unique_id) = params.get("id") else {
        return error(&params, "id is required");
    };
    let result = async {
        let (enterprise_id, zone) = match authenticated_zone(&app, &params).await? {
            Ok(found) => found,
            Err(refusal) => return Ok(Err(refusal.message())),
        };
        let mut tx = app.calls.store().begin_read().await?;
        let cdr = tx
            .cdr(unique_id)
            .await?
            .filter(|c| c.start.enterprise_id == enterprise_id);
        let Some(Cdr { start, end: Some(end) }) = cdr else {
            return Ok(Ok(Vec::new()));
        };
        let seconds = |from: Option<i64>| {
            from.map_or(0, |f| {
                u64::try_from((end.ended_at - f).max(0)).unwrap_or(0).div_ceil(1000)
            })
        };
        let mut rows = vec![json!({
            "status": if end.agent_answered_at.is_some() { "座席接听" } else { "座席未接听" },
            "startTime": local(Some(start.requested_at), zone),
            "answerTime": local(end.agent_answered_at, zone),
            "endTime": local(Some(end.ended_at), zone),
            "billDuration": hms(seconds(end.agent_answered_at)),
            "cost": "0.000",
            "sipCause": end.agent_sip_code.map(|c| c.to_string()).unwrap_or_default(),
        })];
        if end.agent_answered_at.is_some() {
            rows.push(json!({
                "status": status_text(end.status),
                "startTime": local(end.agent_answered_at, zone),
                "answerTime": local(end.bridged_at, zone),
                "endTime": local(Some(end.ended_at), zone),
                "billDuration": hms(end.bridge_seconds),
                "cost": end.cost.to_legacy_cost(),
                "sipCause": end.customer_sip_code.map(|c| c.to_string()).unwrap_or_default(),
            }));
        }
        Ok::<_, dialbridge_store::StoreError>(Ok(rows))
    }
    .await;
    match result {
        // Here `msg` is the list itself, as the legacy platform answered (clients read `msg[0]`).
        Ok(Ok(rows)) => reply(&params, json!({"result": "success", "msg": rows})),
        Ok(Err(msg)) => error(&params, msg),
        Err(e) => {
            tracing::error!(error = %e, "CDR detail query failed");
            error(&params, "internal error")
        }
    }
}

/// Admin seed authentication, and the enterprise's time zone (CDR times are local).
/// (From the in-memory configuration: a guess does no database work.)
async fn authenticated_zone(
    app: &AppState,
    params: &super::Params,
) -> Result<Result<(EnterpriseId, Tz), auth::SeedRefusal>, dialbridge_store::StoreError> {
    let enterprise_id = match auth::admin_seed(app, params).await? {
        Ok(e) => e,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let configuration = app.calls.configuration().await?;
    let Some(configured) = configuration.enterprise(enterprise_id) else {
        return Ok(Err(auth::SeedRefusal::Failed));
    };
    Ok(Ok((
        enterprise_id,
        configured
            .enterprise
            .settings
            .time_zone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai),
    )))
}

fn local(ms: Option<i64>, zone: Tz) -> String {
    ms.and_then(|ms| zone.timestamp_millis_opt(ms).single())
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn hms(seconds: u64) -> String {
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

/// The status text of a CDR status code (the spec's §4).
pub fn status_text(status: u8) -> &'static str {
    match status {
        28 => "双方接听",
        21 => "客户未接听",
        22 => "客户呼叫失败",
        24 => "座席未接听",
        _ => "",
    }
}

fn row(cdr: &Cdr, zone: Tz, record_file: &str) -> Value {
    let s = &cdr.start;
    let Some(e) = &cdr.end else { return Value::Null };
    let total = u64::try_from((e.ended_at - s.requested_at).max(0))
        .unwrap_or(0)
        .div_ceil(1000);
    json!({
        "uniqueId": s.unique_id,
        "customerNumber": s.customer_number,
        "customerProvince": "",
        "customerCity": "",
        "numberTrunk": s.caller_id,
        "cno": s.cno,
        "clientNumber": s.agent_phone,
        "status": status_text(e.status),
        "startTime": local(Some(s.requested_at), zone),
        "bridgeTime": local(e.bridged_at, zone),
        "bridgeDuration": hms(e.bridge_seconds),
        "totalDuration": hms(total),
        "cost": e.cost.to_legacy_cost(),
        "recordFile": record_file,
        "callType": "预览外呼",
        "endReason": if e.hung_up_by == Side::Customer { "是" } else { "否" },
        "userField": s.user_field,
        "sipCause": e.sip_cause.to_string(),
    })
}

#[cfg(test)]
#[path = "cdr_test.rs"]
mod tests;

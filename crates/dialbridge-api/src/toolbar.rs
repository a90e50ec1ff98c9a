//! The agent toolbar: its page and widget, embedded in the binary and served as they are
//! (plain ES modules, nothing to build), and the commands a toolbar sends over the event
//! stream's WebSocket. A command is `{"id": …, "command": "login", "args": {…}}`; each gets one
//! `{"type": "reply", "id": …, "ok": true|false, "code": …, "message": …}`. `code` is the
//! legacy code the same request would get over HTTP (`res` for `previewOutcall`), so a CRM
//! that knows those knows these.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use dialbridge_core::agent::Availability;
use dialbridge_core::{Cno, PhoneType};
use dialbridge_service::{CallOf, OutcallRequest, PhoneChoice, RingLimits, SessionRefusal};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::legacy::client::session_code;
use crate::legacy::outcall::{record_toolbar_refusal, res_code};
use crate::live::Viewer;
use crate::AppState;

const PAGE: &str = include_str!("../assets/toolbar/index.html");
const WIDGET: &str = include_str!("../assets/toolbar/toolbar.js");
const STYLE: &str = include_str!("../assets/toolbar/toolbar.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // A CRM page on another origin imports the widget as a module, which browsers fetch
            // with CORS; it holds nothing secret.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

/// `GET /toolbar`: the standalone agent page.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /toolbar/toolbar.js`: the widget a CRM page embeds (and the page uses).
pub async fn widget() -> Response {
    asset("text/javascript; charset=utf-8", WIDGET)
}

/// `GET /toolbar/toolbar.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The live toolbar session of each agent: a second `login` kicks the first out (observers,
/// which never log in, are never kicked).
#[derive(Default)]
pub struct ToolbarSessions {
    next: AtomicU64,
    live: Mutex<HashMap<i64, (u64, oneshot::Sender<()>)>>,
}

impl ToolbarSessions {
    /// Makes a socket the agent's toolbar session; the one before it is told to go. The
    /// receiver fires when a later one takes over.
    pub fn claim(&self, agent_id: i64) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (kick, kicked) = oneshot::channel();
        let previous = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent_id, (id, kick));
        if let Some((_, kick)) = previous {
            tracing::info!(agent_id, "a toolbar login took over the agent's toolbar session");
            let _ = kick.send(());
        }
        (id, kicked)
    }

    /// The agent's live toolbar session, if it has one.
    pub fn live(&self, agent_id: i64) -> Option<u64> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&agent_id)
            .map(|(id, _)| *id)
    }

    /// The socket of session `id` closed: the agent has no toolbar session, unless a later one
    /// took over.
    pub fn release(&self, agent_id: i64, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(&agent_id).is_some_and(|(current, _)| *current == id) {
            live.remove(&agent_id);
        }
    }
}

/// The longest SDP offer a softphone may send (Chromium's audio-only offers are ~5 KB).
const MAX_SDP_BYTES: usize = 64 * 1024;

/// A command as the toolbar sends it.
#[derive(Debug, Deserialize)]
pub struct Command {
    #[serde(default)]
    pub id: Value,
    pub command: String,
    #[serde(default)]
    pub args: Map<String, Value>,
}

/// What a command did, before it is a reply.
pub enum Outcome {
    Done(Value),
    /// `login`: this socket is now the agent's toolbar session.
    LoggedIn,
    Refused {
        code: &'static str,
        message: String,
    },
}

impl Outcome {
    pub fn reply(&self, id: &Value) -> Value {
        match self {
            Outcome::Done(data) => json!({"type": "reply", "id": id, "ok": true, "data": data}),
            Outcome::LoggedIn => json!({"type": "reply", "id": id, "ok": true, "data": {}}),
            Outcome::Refused { code, message } => {
                json!({"type": "reply", "id": id, "ok": false, "code": code, "message": message})
            }
        }
    }
}

fn refused(code: &'static str, message: impl Into<String>) -> Outcome {
    Outcome::Refused {
        code,
        message: message.into(),
    }
}

fn session(result: Result<(), SessionRefusal>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done(json!({})),
        Err(r) => refused(session_code(&r), r.to_string()),
    }
}

fn text<'a>(args: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    args.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The phone a `login` or `changeBindTel` names: `bindTel` and `type` (1 telephone, 2
/// extension, 4 remote phone; as the legacy `type`).
fn phone(args: &Map<String, Value>) -> Result<Option<PhoneChoice<'_>>, Outcome> {
    let Some(number) = text(args, "bindTel") else {
        return Ok(None);
    };
    let code = match args.get("type") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(_) => 0,
    };
    let phone_type = PhoneType::from_legacy_code(code).ok_or_else(|| refused("32", "bad phone type"))?;
    Ok(Some(PhoneChoice { phone_type, number }))
}

/// Runs one command of an agent's toolbar. Only an agent's own session commands, and only once
/// it logged in on this socket (so that one toolbar per agent holds: the older one is kicked);
/// an admin's stream only observes.
pub async fn execute(app: &AppState, viewer: &Viewer, source: IpAddr, command: &Command, logged_in: bool) -> Outcome {
    let Viewer::Agent {
        enterprise,
        cno,
        agent_id,
    } = viewer
    else {
        return refused("3", "commands need an agent's session (this one observes)");
    };
    if !logged_in && !matches!(command.command.as_str(), "login" | "lastCalls") {
        return refused("12", "log in on this toolbar first");
    }
    let enterprise = *enterprise;
    let Ok(cno) = Cno::parse(cno) else {
        return refused("8", "no such agent");
    };
    let args = &command.args;
    match command.command.as_str() {
        // A reconnecting toolbar (`resume`: the session its login was given) takes its session
        // back only if no other toolbar took it meanwhile (its own old socket may not be seen
        // closed yet), and never brings back online an agent a CRM took offline.
        "login" if args.get("resume").is_some() => {
            let own = args.get("resume").and_then(Value::as_u64);
            if app.toolbars.live(*agent_id).is_some_and(|live| Some(live) != own) {
                return refused("kickout", "logged in elsewhere");
            }
            match app.calls.attach_if_online(enterprise, &cno).await {
                Ok(true) => Outcome::LoggedIn,
                Ok(false) => refused("12", "agent offline"),
                Err(r) => refused(session_code(&r), r.to_string()),
            }
        }
        "login" => match phone(args) {
            Ok(phone) => match app.calls.attach(enterprise, &cno, phone).await {
                Ok(()) => Outcome::LoggedIn,
                Err(r) => refused(session_code(&r), r.to_string()),
            },
            Err(outcome) => outcome,
        },
        "logout" => session(app.calls.log_out(enterprise, &cno, false).await),
        "pause" => {
            let description = text(args, "pauseDescription").unwrap_or("pause").to_owned();
            if let Some(refusal) = pause_reason_refused(app, enterprise, &description).await {
                return refusal;
            }
            session(
                app.calls
                    .change_status(enterprise, &cno, Availability::Pause(description))
                    .await,
            )
        }
        "unpause" => session(app.calls.change_status(enterprise, &cno, Availability::Online).await),
        "changeBindTel" => match phone(args) {
            Ok(Some(phone)) => session(app.calls.change_phone(enterprise, &cno, phone).await),
            Ok(None) => refused("2", "bindTel is required"),
            Err(outcome) => outcome,
        },
        "previewOutcallCancel" | "unlink" => session(app.calls.hang_up_call(enterprise, CallOf::Agent(&cno)).await),
        "previewOutcall" => preview_outcall(app, enterprise, &cno, source, args).await,
        "prolongWrapup" => {
            let seconds = args.get("seconds").and_then(Value::as_u64).unwrap_or(30).min(3600);
            session(
                app.calls
                    .prolong_wrapup(enterprise, &cno, u32::try_from(seconds).unwrap_or(3600))
                    .await,
            )
        }
        "lastCalls" => {
            let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(10).clamp(1, 50);
            match app
                .calls
                .last_calls(enterprise, &cno, u32::try_from(limit).unwrap_or(10))
                .await
            {
                Ok(cdrs) => Outcome::Done(json!({"calls": cdrs.iter().map(call_summary).collect::<Vec<_>>()})),
                Err(r) => refused(session_code(&r), r.to_string()),
            }
        }
        // The softphone's answer to the call it rings with: its SDP offer, our answer back.
        "answer" => {
            let (Some(unique_id), Some(offer)) = (text(args, "uniqueId"), text(args, "sdp")) else {
                return refused("2", "answer needs uniqueId and sdp (the browser's offer)");
            };
            if offer.len() > MAX_SDP_BYTES {
                return refused("2", "the offer is too long");
            }
            match app
                .calls
                .answer_softphone(enterprise, &cno, unique_id, offer.to_owned())
                .await
            {
                Ok(answer) => Outcome::Done(json!({"sdp": answer})),
                Err(r) => refused(session_code(&r), r.to_string()),
            }
        }
        "decline" => match text(args, "uniqueId") {
            Some(unique_id) => session(app.calls.decline_softphone(enterprise, &cno, unique_id).await),
            None => refused("2", "decline needs uniqueId"),
        },
        "hold" => session(app.calls.hold_call(enterprise, &cno, true).await),
        "unhold" => session(app.calls.hold_call(enterprise, &cno, false).await),
        "pauseRecording" => session(app.calls.pause_agent_recording(enterprise, &cno, true).await),
        "resumeRecording" => session(app.calls.pause_agent_recording(enterprise, &cno, false).await),
        "dtmf" => match text(args, "digit").map(|d| d.chars().collect::<Vec<_>>()).as_deref() {
            Some([digit]) => session(app.calls.send_digit(enterprise, &cno, *digit).await),
            _ => refused("2", "digit must be one of 0-9, *, #, A-D"),
        },
        other => refused("2", format!("unknown command {other:?}")),
    }
}

/// Why a toolbar may not pause with `description`: a system reason (wrap-up, calling), or one
/// not on the enterprise's list when it has one.
async fn pause_reason_refused(
    app: &AppState,
    enterprise: dialbridge_core::EnterpriseId,
    description: &str,
) -> Option<Outcome> {
    use dialbridge_core::agent::{PAUSE_OUT_CALLING, PAUSE_WRAPUP};
    if description == PAUSE_WRAPUP || description == PAUSE_OUT_CALLING {
        return Some(refused("2", format!("{description} is the system's own pause reason")));
    }
    let reasons = app
        .calls
        .configuration()
        .await
        .ok()?
        .enterprise(enterprise)
        .map(|c| c.enterprise.settings.pause_reasons.clone())
        .unwrap_or_default();
    (!reasons.is_empty() && !reasons.iter().any(|r| r == description)).then(|| {
        refused(
            "2",
            format!("{description:?} is not one of the enterprise's pause reasons"),
        )
    })
}

/// One of the agent's last calls as the toolbar lists it (`status` is the CDR's status code:
/// 28 bridged, 21 / 22 the customer did not answer / could not be called, 24 the agent did not
/// answer; absent while the call runs).
fn call_summary(cdr: &dialbridge_store::Cdr) -> Value {
    json!({
        "uniqueId": cdr.start.unique_id,
        "customerNumber": cdr.start.customer_number,
        "requestedAt": cdr.start.requested_at,
        "status": cdr.end.as_ref().map(|e| e.status),
        "bridgeSeconds": cdr.end.as_ref().map(|e| e.bridge_seconds),
    })
}

async fn preview_outcall(
    app: &AppState,
    enterprise: dialbridge_core::EnterpriseId,
    cno: &Cno,
    source: IpAddr,
    args: &Map<String, Value>,
) -> Outcome {
    let Some(tel) = text(args, "tel") else {
        return refused("2", "tel is required");
    };
    let user_field = args.get("userField").and_then(Value::as_str).unwrap_or("").to_owned();
    if user_field.len() > 1024 {
        return refused("2", "userField longer than 1024 bytes");
    }
    let Ok(configuration) = app.calls.configuration().await else {
        return refused("10", "internal error");
    };
    let Some((configured, agent)) = configuration
        .enterprise(enterprise)
        .and_then(|e| e.agent(cno).map(|agent| (e, agent)))
    else {
        return refused("8", "no such agent");
    };
    let mut ring_limits = RingLimits::default();
    for (name, limit) in [
        ("agentTimeout", &mut ring_limits.agent_secs),
        ("customerTimeout", &mut ring_limits.customer_secs),
    ] {
        match args.get(name) {
            None | Some(Value::Null) => {}
            Some(value) => match value.as_u64().filter(|s| (5..=300).contains(s)) {
                Some(seconds) => *limit = u32::try_from(seconds).ok(),
                None => return refused("2", format!("{name} must be a number of seconds from 5 to 300")),
            },
        }
    }
    let request = OutcallRequest {
        customer_number: tel.to_owned(),
        user_field,
        caller_id: text(args, "clidLeftNumber").map(str::to_owned),
        ring_limits,
    };
    match app
        .calls
        .preview_outcall(&configuration, configured, agent, request)
        .await
    {
        Ok(accepted) => {
            tracing::info!(unique_id = %accepted.unique_id, %enterprise, %cno, "toolbar previewOutcall accepted");
            Outcome::Done(json!({"uniqueId": accepted.unique_id}))
        }
        Err(refusal) => {
            let res = res_code(&refusal);
            let reason = refusal.to_string();
            tracing::info!(res, %reason, %enterprise, %cno, %source, "toolbar previewOutcall refused");
            record_toolbar_refusal(app, source, enterprise, cno.as_str(), tel, res, &reason).await;
            refused(res, reason)
        }
    }
}

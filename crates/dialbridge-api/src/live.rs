//! The live event stream for browsers (the agent toolbar) and CRMs: a short-lived token from
//! `/api/v1/session`, then a WebSocket at `/api/v1/events?token=…[&since=SEQ]` that sends a
//! snapshot and then every event of the agent (or, for an admin, of the enterprise) as its
//! transaction commits: the store's event feed fans events out from memory, so an idle socket
//! costs nothing and the database is read only to catch up. The outbox's event ids are the
//! sequence numbers, so a client that reconnects with the last one it saw gets what it missed.

use std::collections::HashSet;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dialbridge_core::{Cno, EnterpriseId};
use dialbridge_service::configuration::Configuration;
use dialbridge_service::CallService;
use dialbridge_store::OutboxEvent;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::broadcast::error::RecvError;

use crate::credentials::Verdict;
use crate::legacy::{auth, Params};
use crate::AppState;
use dialbridge_service::now_ms;

const TOKEN_LIFETIME_MS: i64 = 3_600_000;
/// The close code of a stream whose credential was revoked (the application's range).
const SESSION_REVOKED: u16 = 4001;

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Agent {
        enterprise: EnterpriseId,
        agent_id: i64,
        cno: String,
    },
    Admin {
        enterprise: EnterpriseId,
        user: String,
    },
}

impl Viewer {
    fn enterprise(&self) -> EnterpriseId {
        match self {
            Viewer::Agent { enterprise, .. } | Viewer::Admin { enterprise, .. } => *enterprise,
        }
    }
}

fn mac(key: &[u8; 32], text: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(text.as_bytes());
    URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// The token key: HMAC of a label under the server's key, so tokens survive a restart and the
/// key that seals stored secrets signs nothing else.
pub fn derive_token_key(server_key: &[u8; 32]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(server_key).expect("HMAC takes any key length");
    m.update(b"dialbridge-event-stream-tokens");
    m.finalize().into_bytes().into()
}

/// What a token carries of the credential it was issued on: a MAC of the agent's password hash
/// and session epoch (raised by a kick), or of the admin's md5. Once the password changes, the
/// agent is kicked, disabled or deleted, the admin's password changes or the admin is deleted,
/// or the enterprise is no longer active, the credential's mark is another (or there is none),
/// and the token is refused.
fn credential_mark(key: &[u8; 32], configuration: &Configuration, viewer: &Viewer) -> Option<String> {
    // A disabled or closed enterprise's sessions end with it.
    let configured = configuration
        .enterprise(viewer.enterprise())
        .filter(|c| c.enterprise.settings.status == dialbridge_core::EnterpriseStatus::Active)?;
    let credential = match viewer {
        Viewer::Agent { agent_id, cno, .. } => {
            let cno = Cno::parse(cno).ok()?;
            let agent = configured
                .agent(&cno)
                .filter(|a| a.id == *agent_id && a.settings.active)?;
            let hash = configured.agent_password_hash(&cno).unwrap_or_default();
            format!("agent|{hash}|{}", agent.session_epoch)
        }
        Viewer::Admin { user, .. } => format!("admin|{}", configured.admin_password_md5(user)?),
    };
    Some(mac(key, &credential)[..16].to_owned())
}

/// `v2.<enterprise>.<who>.<credential mark>.<expiry ms>.<mac>`; who is `a<agent id>:<cno>` or
/// `m<admin user name, base64url>`.
pub fn issue_token(key: &[u8; 32], viewer: &Viewer, mark: &str, now: i64) -> String {
    let who = match viewer {
        Viewer::Agent { agent_id, cno, .. } => format!("a{agent_id}:{cno}"),
        Viewer::Admin { user, .. } => format!("m{}", URL_SAFE_NO_PAD.encode(user)),
    };
    let body = format!("v2.{}.{who}.{mark}.{}", viewer.enterprise(), now + TOKEN_LIFETIME_MS);
    format!("{body}.{}", mac(key, &body))
}

/// The viewer a token speaks for and the credential mark it was issued on, if it is ours and
/// unexpired (whether the credential is still the same is for the caller to check).
pub fn check_token(key: &[u8; 32], token: &str, now: i64) -> Option<(Viewer, String)> {
    let (body, signature) = token.rsplit_once('.')?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        mac(key, body).as_bytes(),
        signature.as_bytes(),
    )) {
        return None;
    }
    let mut parts = body.split('.');
    let (version, enterprise, who, mark, expiry) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if version != "v2" || parts.next().is_some() || expiry.parse::<i64>().ok()? < now {
        return None;
    }
    let enterprise = EnterpriseId::parse(enterprise).ok()?;
    let viewer = match who.split_at_checked(1)? {
        ("m", user) => Viewer::Admin {
            enterprise,
            user: String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()?,
        },
        ("a", agent) => {
            let (id, cno) = agent.split_once(':')?;
            Viewer::Agent {
                enterprise,
                agent_id: id.parse().ok()?,
                cno: cno.to_owned(),
            }
        }
        _ => return None,
    };
    Some((viewer, mark.to_owned()))
}

/// Whether `mark` is still the viewer's credential in `configuration`.
fn mark_holds(key: &[u8; 32], configuration: &Configuration, viewer: &Viewer, mark: &str) -> bool {
    credential_mark(key, configuration, viewer)
        .is_some_and(|now| bool::from(subtle::ConstantTimeEq::ct_eq(now.as_bytes(), mark.as_bytes())))
}

/// Whether the credential a token was issued on is still the viewer's (a database that does
/// not answer refuses it: the client retries).
async fn still_valid(app: &AppState, viewer: &Viewer, mark: &str) -> bool {
    match app.calls.configuration().await {
        Ok(configuration) => mark_holds(&app.token_key, &configuration, viewer, mark),
        Err(_) => false,
    }
}

/// The viewer a token speaks for, if it is ours, unexpired and its credential unchanged.
pub async fn authorised(app: &AppState, token: Option<&str>) -> Option<Viewer> {
    let (viewer, mark) = check_token(&app.token_key, token?, now_ms())?;
    still_valid(app, &viewer, &mark).await.then_some(viewer)
}

/// The configuration, watched for the open streams: one task reads it once a second while
/// any stream is open and publishes it when it changed, so a thousand toolbars cost one read a
/// second, and each re-checks its credential only when the configuration moved.
#[derive(Default)]
pub struct ConfigWatch {
    latest: tokio::sync::watch::Sender<Option<Arc<Configuration>>>,
    running: AtomicBool,
}

impl ConfigWatch {
    fn subscribe(self: &Arc<Self>, calls: &CallService) -> tokio::sync::watch::Receiver<Option<Arc<Configuration>>> {
        let receiver = self.latest.subscribe();
        if !self.running.swap(true, Ordering::AcqRel) {
            let (watch, calls) = (self.clone(), calls.clone());
            tokio::spawn(async move { watch.run(calls).await });
        }
        receiver
    }

    async fn run(&self, calls: CallService) {
        loop {
            tokio::time::sleep(REVOCATION_CHECK).await;
            if self.latest.receiver_count() == 0 {
                self.running.store(false, Ordering::Release);
                // A stream that subscribed just now found the task running: keep it.
                if self.latest.receiver_count() == 0 || self.running.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
            if let Ok(configuration) = calls.configuration().await {
                self.latest.send_if_modified(|held| {
                    let moved = held.as_ref().is_none_or(|old| !Arc::ptr_eq(old, &configuration));
                    if moved {
                        *held = Some(configuration);
                    }
                    moved
                });
            }
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// `/api/v1/session`: an agent (`enterpriseId`, `cno`, `pwd` = md5 of its password) or an admin
/// (`enterpriseId`, `userName`, `seed`, `pwd`) gets a token for the event stream; an admin that
/// also names a `cno` gets that agent's token (what a CRM hands its toolbar page).
pub async fn session(State(app): State<AppState>, params: Params) -> Response {
    let Some(enterprise) = params.get("enterpriseId").and_then(|e| EnterpriseId::parse(e).ok()) else {
        return error(StatusCode::BAD_REQUEST, "enterpriseId is required (7 digits)");
    };
    // The toolbar's own page sends the password itself (over TLS, or on this machine), as a
    // browser has no MD5; CRMs send `pwd` as the legacy interface does.
    let hashed = params.get("password").map(auth::md5_hex);
    let Some(pwd) = params.get("pwd").or(hashed.as_deref()) else {
        return error(StatusCode::BAD_REQUEST, "pwd is required");
    };
    let Ok(configuration) = app.calls.configuration().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    };
    let configured = configuration.enterprise(enterprise);
    let source = params.source();
    let refused = |verdict: Verdict| match verdict {
        Verdict::Throttled(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                axum::Json(json!({"error": "too many failed attempts: try again later"})),
            )
                .into_response()
        }
        Verdict::Busy => error(StatusCode::SERVICE_UNAVAILABLE, "busy: try again"),
        Verdict::Valid | Verdict::Invalid => error(StatusCode::UNAUTHORIZED, "authentication failed"),
    };
    let viewer = match (params.get("userName"), params.get("cno")) {
        (Some(user), named) => {
            let seed = Some(params.get("seed").unwrap_or(""));
            match auth::check_admin(&app, source, enterprise, user, seed, pwd).await {
                // A CRM's backend mints a token for one of its agents (for an embedded
                // toolbar): the page never holds a password.
                Ok(Verdict::Valid) => match named {
                    Some(cno) => {
                        let agent = Cno::parse(cno)
                            .ok()
                            .and_then(|cno| configured.and_then(|c| c.agent(&cno)).map(|agent| (agent.id, cno)));
                        let Some((agent_id, cno)) = agent else {
                            return error(StatusCode::NOT_FOUND, "no such agent");
                        };
                        Viewer::Agent {
                            enterprise,
                            agent_id,
                            cno: cno.to_string(),
                        }
                    }
                    None => Viewer::Admin {
                        enterprise,
                        user: user.to_owned(),
                    },
                },
                Ok(verdict) => return refused(verdict),
                Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
            }
        }
        (None, Some(cno)) => {
            let Ok(cno) = Cno::parse(cno) else {
                return error(StatusCode::BAD_REQUEST, "cno must be 4-6 digits");
            };
            let agent = configured.and_then(|c| c.agent(&cno).map(|agent| (agent.id, c.agent_password_hash(&cno))));
            let hash = agent.and_then(|(_, hash)| hash);
            match (
                auth::check_agent(&app, source, enterprise, &cno, hash, pwd).await,
                agent,
            ) {
                (Verdict::Valid, Some((agent_id, _))) => Viewer::Agent {
                    enterprise,
                    agent_id,
                    cno: cno.to_string(),
                },
                (verdict, _) => return refused(verdict),
            }
        }
        (None, None) => return error(StatusCode::BAD_REQUEST, "cno or userName is required"),
    };
    let Some(mark) = credential_mark(&app.token_key, &configuration, &viewer) else {
        return error(StatusCode::UNAUTHORIZED, "authentication failed");
    };
    let token = issue_token(&app.token_key, &viewer, &mark, now_ms());
    axum::Json(json!({"token": token, "expiresIn": TOKEN_LIFETIME_MS / 1000})).into_response()
}

/// Whether a browser page from `origin` may open the stream: the server's own pages (the
/// origin names the host the request came to), and those of the enterprise's `allowed_origins`.
/// Without an `Origin` the client is no browser page (a CRM's server): its token decides.
fn origin_allowed(origin: Option<&str>, host: Option<&str>, public_origin: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let public = public_origin.is_some_and(|public| public.eq_ignore_ascii_case(origin.trim_end_matches('/')));
    let own = public
        || origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .zip(host)
            .is_some_and(|(origin_host, host)| origin_host.eq_ignore_ascii_case(host));
    own || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

/// `/api/v1/events`: the WebSocket.
pub async fn events(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
    params: Params,
) -> Response {
    let Some((viewer, mark)) = params
        .get("token")
        .and_then(|t| check_token(&app.token_key, t, now_ms()))
    else {
        return error(StatusCode::UNAUTHORIZED, "a valid token is required");
    };
    if !still_valid(&app, &viewer, &mark).await {
        return error(StatusCode::UNAUTHORIZED, "the session was revoked: log in again");
    }
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    let allowed = match app.calls.configuration().await {
        Ok(configuration) => configuration
            .enterprise(viewer.enterprise())
            .map(|c| c.enterprise.settings.allowed_origins.clone())
            .unwrap_or_default(),
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    };
    if !origin_allowed(
        header(header::ORIGIN),
        header(header::HOST),
        app.public_origin.as_deref(),
        &allowed,
    ) {
        return error(
            StatusCode::FORBIDDEN,
            "this page's origin is not one of the enterprise's allowed_origins",
        );
    }
    let since = params.get("since").and_then(|s| s.parse::<i64>().ok());
    let source = params.source();
    // Commands are small (a softphone's offer is a few KiB): nothing near axum's 64 MiB default.
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| stream(app, viewer, mark, since, source, socket))
}

/// The message type of an outbox event on the stream.
fn message_type(event_type: &str) -> &'static str {
    match event_type {
        "ringing" => "previewOutcallRinging",
        "bridge" => "previewOutcallBridge",
        "hangup" => "hangup",
        "hold" => "hold",
        "unhold" => "unhold",
        _ => "status",
    }
}

/// Whether an agent sees an event: its own status, and its own calls.
fn concerns(viewer: &Viewer, stream_key: &str, payload: &Value) -> bool {
    match viewer {
        Viewer::Admin { .. } => true,
        Viewer::Agent { agent_id, cno, .. } => {
            stream_key == format!("agent:{agent_id}")
                || (!stream_key.starts_with("agent:")
                    && [payload.get("cno"), payload.get("cdr_bridged_cno")]
                        .into_iter()
                        .flatten()
                        .any(|c| c == cno.as_str()))
        }
    }
}

/// The snapshot message and the newest event id it reflects.
async fn snapshot(app: &AppState, viewer: &Viewer) -> Result<(i64, Value), dialbridge_store::StoreError> {
    let mut tx = app.calls.store().begin_read().await?;
    let latest = tx.latest_event_id(viewer.enterprise()).await?;
    let now = now_ms();
    let mut agents = Vec::new();
    for agent in tx.agents(viewer.enterprise()).await? {
        if let Viewer::Agent { agent_id, .. } = viewer {
            if *agent_id != agent.id {
                continue;
            }
        }
        let state = tx.agent_state(agent.id).await?.state.at(now);
        let (progress, recording) = match &state.call {
            Some(call) => (
                Some(tx.cdr_progress(&call.unique_id).await?),
                tx.recording_of_call(&call.unique_id).await?,
            ),
            None => (None, None),
        };
        let phone = tx.bound_phone(agent.id).await?;
        let reachable = app.calls.phone_reachable(viewer.enterprise(), phone.as_ref());
        agents.push(json!({
            "cno": agent.cno.as_str(),
            "bindTel": phone.as_ref().map_or("", |(_, n)| n.as_str()),
            "loginStatus": state.login.as_str(),
            "deviceStatus": state.device(reachable).as_str(),
            "pauseDescription": state.pause_description.clone().unwrap_or_default(),
            "uniqueId": state.call.as_ref().map_or("", |c| c.unique_id.as_str()),
            "wrapupTime": state.wrapup_seconds_left(now),
            // A toolbar that reloads during a call shows it as it is: talking, or on hold.
            "bridged": progress.as_ref().is_some_and(|p| p.bridged_at.is_some()),
            "onHold": progress.as_ref().is_some_and(|p| p.on_hold_since.is_some()),
            "recordingPaused": recording.as_ref().is_some_and(|r| r.paused_since.is_some()),
        }));
    }
    let kind = match viewer {
        Viewer::Agent { .. } => "agent",
        Viewer::Admin { .. } => "admin",
    };
    let pause_reasons = app
        .calls
        .configuration()
        .await?
        .enterprise(viewer.enterprise())
        .map(|c| c.enterprise.settings.pause_reasons.clone())
        .unwrap_or_default();
    Ok((
        latest,
        json!({"type": "snapshot", "seq": latest, "viewer": kind, "agents": agents, "pauseReasons": pause_reasons}),
    ))
}

/// How often the configuration is read for the open streams' credentials.
const REVOCATION_CHECK: Duration = Duration::from_secs(1);

/// The close code of a toolbar session another login took over (the application's range).
const KICKED_OUT: u16 = 4002;

async fn stream(
    app: AppState,
    viewer: Viewer,
    mark: String,
    since: Option<i64>,
    source: std::net::IpAddr,
    socket: WebSocket,
) {
    let mut toolbar = None;
    follow(&app, &viewer, &mark, since, source, socket, &mut toolbar).await;
    if let (Some(id), Viewer::Agent { agent_id, .. }) = (toolbar, &viewer) {
        app.toolbars.release(*agent_id, id);
        // A softphone page went with the socket: the agent's device is unavailable now.
        tell_softphone_status(&app, &viewer).await;
    }
}

/// Pushes an agent's status when its device changed with its softphone page.
async fn tell_softphone_status(app: &AppState, viewer: &Viewer) {
    let Viewer::Agent { enterprise, cno, .. } = viewer else {
        return;
    };
    let Ok(cno) = dialbridge_core::Cno::parse(cno) else {
        return;
    };
    if matches!(app.calls.softphone_of(*enterprise, &cno).await, Ok(Some(_))) {
        if let Err(e) = app.calls.tell_status(*enterprise, &cno).await {
            tracing::warn!(error = %e, "cannot push the status after the softphone page changed");
        }
    }
}

/// The stream itself; `toolbar` is this socket's toolbar session once it logged in.
async fn follow(
    app: &AppState,
    viewer: &Viewer,
    mark: &str,
    since: Option<i64>,
    source: std::net::IpAddr,
    mut socket: WebSocket,
    toolbar: &mut Option<u64>,
) {
    let (app, viewer, mark) = (app.clone(), viewer.clone(), mark.to_owned());
    let mut kicked: Option<tokio::sync::oneshot::Receiver<()>> = None;
    // Subscribed before the snapshot is read, so nothing committed after it is missed.
    let mut feed = app.calls.store().subscribe_events();
    let Ok((latest, snapshot)) = snapshot(&app, &viewer).await else {
        return;
    };
    if socket.send(Message::Text(snapshot.to_string().into())).await.is_err() {
        return;
    }
    let mut last = since.unwrap_or(latest);
    // Events read from the store that the feed may still bring: not sent twice.
    let mut caught_up = HashSet::new();
    if since.is_some()
        && catch_up(&app, &viewer, &mut last, &mut caught_up, &mut socket)
            .await
            .is_err()
    {
        return;
    }
    let mut configuration = app.config_watch.subscribe(&app.calls);
    // The agent's softphone, while this toolbar is logged in on one: the calls it rings with
    // come here; the socket is pinged, and one silent for SOFTPHONE_SILENCE ends (and with it
    // the page's call: a lost network does not hold a call for the media timeout).
    let mut softphone: Option<Softphone> = None;
    let mut last_heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval(SOFTPHONE_PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = feed.recv() => event,
            signal = async {
                match softphone.as_mut() {
                    Some(attached) => attached.signals.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(signal) = signal else {
                    softphone = None;
                    continue;
                };
                let message = softphone_message(&app, signal);
                if socket.send(Message::Text(message.to_string().into())).await.is_err() {
                    return;
                }
                continue;
            }
            () = tokio::time::sleep_until(last_heard + SOFTPHONE_SILENCE), if softphone.is_some() => {
                tracing::info!("a softphone's toolbar went silent: closing it");
                return;
            }
            _ = ping.tick(), if softphone.is_some() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
                continue;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Text(text))) => {
                    last_heard = tokio::time::Instant::now();
                    let reply = match serde_json::from_str::<crate::toolbar::Command>(&text) {
                        Ok(command) => {
                            let outcome =
                                crate::toolbar::execute(&app, &viewer, source, &command, toolbar.is_some()).await;
                            if let (crate::toolbar::Outcome::LoggedIn, Viewer::Agent { agent_id, .. }) = (&outcome, &viewer) {
                                if toolbar.is_none() {
                                    let (id, kick) = app.toolbars.claim(*agent_id);
                                    *toolbar = Some(id);
                                    kicked = Some(kick);
                                }
                            }
                            let mut reply = outcome.reply(&command.id);
                            if let (crate::toolbar::Outcome::LoggedIn, Some(session)) = (&outcome, *toolbar) {
                                // What a reconnect names to take this session back.
                                reply["data"]["session"] = json!(session);
                            }
                            if matches!(command.command.as_str(), "login" | "logout" | "changeBindTel") {
                                sync_softphone(&app, &viewer, toolbar.is_some(), &mut softphone).await;
                                last_heard = tokio::time::Instant::now();
                            }
                            reply
                        }
                        Err(e) => json!({"type": "reply", "ok": false, "code": "2", "message": format!("not a command: {e}")}),
                    };
                    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Ok(_)) => {
                    last_heard = tokio::time::Instant::now();
                    continue;
                }
            },
            kick = async {
                match kicked.as_mut() {
                    Some(kick) => kick.await,
                    None => std::future::pending().await,
                }
            } => {
                if kick.is_err() {
                    // No later login took over (the registry let go of this session): nothing
                    // to wait for any more.
                    kicked = None;
                    continue;
                }
                let message = json!({"type": "kickout", "time": now_ms(), "data": {"reason": "logged in elsewhere"}});
                let _ = socket.send(Message::Text(message.to_string().into())).await;
                let close = CloseFrame {
                    code: KICKED_OUT,
                    reason: "logged in elsewhere".into(),
                };
                let _ = socket.send(Message::Close(Some(close))).await;
                return;
            }
            changed = configuration.changed() => {
                let holds = changed.is_ok()
                    && configuration
                        .borrow_and_update()
                        .as_ref()
                        .is_none_or(|c| mark_holds(&app.token_key, c, &viewer, &mark));
                if holds {
                    continue;
                }
                let close = CloseFrame {
                    code: SESSION_REVOKED,
                    reason: "session revoked".into(),
                };
                let _ = socket.send(Message::Close(Some(close))).await;
                return;
            }
        };
        let sent = match event {
            Ok(event) if event.enterprise_id != viewer.enterprise() => Ok(()),
            Ok(event) => {
                if caught_up.remove(&event.id) {
                    continue;
                }
                caught_up.clear();
                last = last.max(event.id);
                send_event(&viewer, &event, &mut socket).await
            }
            Err(RecvError::Lagged(_)) => catch_up(&app, &viewer, &mut last, &mut caught_up, &mut socket).await,
            Err(RecvError::Closed) => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// How often a softphone's toolbar is pinged, and how long it may stay silent.
const SOFTPHONE_PING: Duration = Duration::from_secs(3);
const SOFTPHONE_SILENCE: Duration = Duration::from_secs(9);

/// The longest message a toolbar may send.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The softphone a toolbar socket carries.
struct Softphone {
    /// Kept while attached: dropping it detaches the page (and ends a call it carries).
    _attachment: dialbridge_service::SoftphoneAttachment,
    aor: String,
    signals: tokio::sync::mpsc::UnboundedReceiver<dialbridge_service::SoftphoneSignal>,
}

/// Attaches this socket as the agent's softphone while its toolbar is logged in on one, and
/// detaches it otherwise.
async fn sync_softphone(app: &AppState, viewer: &Viewer, logged_in: bool, softphone: &mut Option<Softphone>) {
    let Viewer::Agent { enterprise, cno, .. } = viewer else {
        return;
    };
    let wanted = match dialbridge_core::Cno::parse(cno) {
        Ok(cno) if logged_in => match app.calls.softphone_of(*enterprise, &cno).await {
            Ok(wanted) => wanted,
            // Unknown now: the page stays as it is (detaching it would end its call).
            Err(_) => return,
        },
        _ => None,
    };
    match (wanted, softphone.as_ref()) {
        (Some(aor), Some(attached)) if attached.aor == aor => {}
        (Some(aor), _) => {
            let (attachment, signals) = app.calls.attach_softphone(&aor);
            tracing::info!(%aor, "a toolbar is attached as the agent's softphone");
            *softphone = Some(Softphone {
                _attachment: attachment,
                aor,
                signals,
            });
            // Its device is reachable now: the status the login pushed said otherwise.
            tell_softphone_status(app, viewer).await;
        }
        (None, _) => *softphone = None,
    }
}

/// What the page is told of its softphone's calls.
fn softphone_message(app: &AppState, signal: dialbridge_service::SoftphoneSignal) -> Value {
    match signal {
        dialbridge_service::SoftphoneSignal::Incoming {
            unique_id,
            customer_number,
        } => json!({"type": "incomingCall", "time": now_ms(), "data": {
            "uniqueId": unique_id,
            "customerNumber": customer_number,
            "autoAnswerMs": app.softphone.auto_answer.as_millis() as u64,
            "iceServers": app.softphone.ice_servers,
        }}),
        dialbridge_service::SoftphoneSignal::Ended { unique_id } => {
            json!({"type": "callEnded", "time": now_ms(), "data": {"uniqueId": unique_id}})
        }
    }
}

/// Sends what the store has after `last` (a reconnect's `since`, or what a lagging socket
/// missed), remembering each id in `caught_up`. When retention has swept past `last`, a `gap`
/// message comes first (the snapshot is the state to trust): the mark is read in the same
/// transaction as the events, so no sweep between the two can hide a hole. A store error ends
/// the stream (the client reconnects with `since`) rather than skipping what it could not read.
async fn catch_up(
    app: &AppState,
    viewer: &Viewer,
    last: &mut i64,
    caught_up: &mut HashSet<i64>,
    socket: &mut WebSocket,
) -> Result<(), axum::Error> {
    let read = |last: i64| async move {
        let mut tx = app.calls.store().begin_read().await?;
        let swept_through = tx.push_events_swept_through().await?;
        let events = tx.events_since(viewer.enterprise(), last, 500).await?;
        Ok::<_, dialbridge_store::StoreError>((swept_through, events))
    };
    let mut gap_told = false;
    loop {
        let (swept_through, events) = read(*last).await.map_err(|e| {
            tracing::warn!(error = %e, "the event stream cannot read the outbox; closing it");
            axum::Error::new(e)
        })?;
        if !gap_told && *last < swept_through {
            gap_told = true;
            let gap = json!({"type": "gap", "seq": *last, "time": now_ms(), "data": {"missingThrough": swept_through}});
            socket.send(Message::Text(gap.to_string().into())).await?;
        }
        let Some(newest) = events.last().map(|e| e.id) else {
            return Ok(());
        };
        for event in &events {
            caught_up.insert(event.id);
            send_event(viewer, event, socket).await?;
        }
        *last = newest;
    }
}

/// One outbox event as the stream's messages, if it concerns the viewer.
async fn send_event(viewer: &Viewer, event: &OutboxEvent, socket: &mut WebSocket) -> Result<(), axum::Error> {
    let data: Value = serde_json::from_str(&event.payload).unwrap_or_default();
    if !concerns(viewer, &event.stream_key, &data) {
        return Ok(());
    }
    // The status that puts the agent's phone ringing for a call is also the call's start.
    let starts_call = event.event_type == "agent_status"
        && data.get("deviceStatus").and_then(Value::as_str) == Some("ringing")
        && data
            .get("uniqueId")
            .and_then(Value::as_str)
            .is_some_and(|u| !u.is_empty());
    let mut types = vec![message_type(&event.event_type)];
    if starts_call {
        types.insert(0, "previewOutcallStart");
    }
    for kind in types {
        let message = json!({"type": kind, "seq": event.id, "time": event.created_at, "data": data});
        socket.send(Message::Text(message.to_string().into())).await?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "live_test.rs"]
mod tests;

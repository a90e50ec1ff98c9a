//! dialbridge's HTTP surface. Today: `GET /healthz` and Prometheus `GET /metrics`. The legacy
//! interface (`/interface/*`, `/interfaceAction/*`) and the modern API will be mounted here.
//!
//! Architecture invariant: handlers translate between the wire and the engine/store; they hold
//! no call state of their own.

mod credentials;
mod legacy;
pub mod live;
mod recordings;
pub mod toolbar;

/// The readers of request input, for the `cargo fuzz` targets (`fuzz/`).
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::{header, HeaderMap};

    /// A legacy request's parameters from its query, content type and body.
    pub async fn legacy_params(query: Option<&str>, content_type: &str, body: &[u8]) -> crate::legacy::Params {
        let mut headers = HeaderMap::new();
        if let Ok(value) = content_type.parse() {
            headers.insert(header::CONTENT_TYPE, value);
        }
        crate::legacy::params_of(query, &headers, &axum::body::Bytes::copy_from_slice(body)).await
    }
}

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dialbridge_store::Store;

pub use dialbridge_service::{CallService, Metrics};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub calls: CallService,
    pub agent_auth: Arc<legacy::AgentAuthCache>,
    /// Failure budgets and the password hash's bounded pool, for every credential family.
    pub credentials: Arc<credentials::Credentials>,
    /// The configuration as the open event streams watch it (revocation).
    pub config_watch: Arc<live::ConfigWatch>,
    pub validate_limiter: Arc<legacy::ValidateLimiter>,
    /// Signs the event stream's tokens (derived from the server's key).
    pub token_key: [u8; 32],
    /// Each agent's live toolbar session (a second login kicks the first).
    pub toolbars: Arc<toolbar::ToolbarSessions>,
    /// The origin browsers reach the server at, behind a proxy that rewrites `Host`.
    pub public_origin: Option<String>,
    /// What the toolbar's softphone is told with each call.
    pub softphone: SoftphoneSettings,
}

/// How a softphone page answers: after ringing this long, with these STUN/TURN servers (the
/// browser's `RTCIceServer` list, as JSON).
#[derive(Debug, Clone)]
pub struct SoftphoneSettings {
    pub auto_answer: std::time::Duration,
    pub ice_servers: serde_json::Value,
}

impl Default for SoftphoneSettings {
    fn default() -> Self {
        Self {
            auto_answer: std::time::Duration::from_millis(1500),
            ice_servers: serde_json::json!([]),
        }
    }
}

impl AppState {
    pub fn new(calls: CallService, metrics: Arc<Metrics>, token_key: [u8; 32]) -> Self {
        Self {
            store: calls.store().clone(),
            credentials: Arc::new(credentials::Credentials::new(
                calls.store().hashing().clone(),
                metrics.clone(),
            )),
            metrics,
            calls,
            agent_auth: Arc::default(),
            config_watch: Arc::default(),
            validate_limiter: Arc::default(),
            token_key,
            toolbars: Arc::default(),
            public_origin: None,
            softphone: SoftphoneSettings::default(),
        }
    }

    /// The origin browsers reach the server at (`http.public_origin`), if not its `Host`.
    pub fn with_public_origin(mut self, origin: Option<String>) -> Self {
        self.public_origin = origin;
        self
    }

    pub fn with_softphone(mut self, softphone: SoftphoneSettings) -> Self {
        self.softphone = softphone;
        self
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/session", axum::routing::any(live::session))
        .route("/api/v1/events", get(live::events))
        .route("/toolbar", get(toolbar::page))
        .route("/toolbar/toolbar.js", get(toolbar::widget))
        .route("/toolbar/toolbar.css", get(toolbar::style))
        .route(
            "/api/v1/calls/{unique_id}/recording/{action}",
            axum::routing::post(recordings::pause),
        )
        .route("/{day}/{file_name}", get(recordings::download_legacy))
        .route("/voices/record/{day}/{file_name}", get(recordings::download_legacy))
        .merge(legacy::router())
        .with_state(state)
}

/// The whole HTTP response to a request whose head is over the server's limit, from the
/// head's first bytes: a legacy path's "bad parameters" JSON with HTTP 200, anything else a JSON
/// 414 (the request line alone is too long) or 431.
pub fn over_long_head(head_start: &[u8]) -> Vec<u8> {
    let line_end = head_start.iter().position(|&b| b == b'\n');
    let line = &head_start[..line_end.unwrap_or(head_start.len())];
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    let path = String::from_utf8_lossy(target.split(|&b| b == b'?').next().unwrap_or_default());
    let (status, body) = match legacy::too_large(&path) {
        Some(body) => ("200 OK", body),
        None if line_end.is_none() => (
            "414 URI Too Long",
            serde_json::json!({"error": "request line too long"}),
        ),
        None => (
            "431 Request Header Fields Too Large",
            serde_json::json!({"error": "request headers too large"}),
        ),
    };
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json;charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// 200 when the database answers, 503 otherwise, with a JSON body saying which.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "unavailable", "error": "database does not answer"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
#[path = "lib_test.rs"]
mod tests;

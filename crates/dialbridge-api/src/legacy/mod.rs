//! The legacy outbound-call interface, wire-exact (the spec's `legacy-interface.md`). This
//! module alone knows the legacy paths, parameter names, `res`/`code`/`result` conventions and
//! authentication families; the call itself is placed by [`dialbridge_service::CallService`].

mod agents;
pub(crate) mod auth;

pub use agents::ValidateLimiter;
pub use auth::AgentAuthCache;
mod cdr;
mod charset;
pub(crate) mod client;
pub(crate) mod outcall;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::Value;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/interface/PreviewOutcall", any(outcall::preview_outcall))
        .route("/interface/client/ClientOnline", any(client::client_online))
        .route("/interface/client/ClientOffline", any(client::client_offline))
        .route("/interface/client/ChangeStatus", any(client::change_status))
        .route("/interface/client/ChangeBindTel", any(client::change_bind_tel))
        .route("/interface/HangUp", any(client::hang_up))
        .route(
            "/interfaceAction/cdrObInterface!listCdrOb.action",
            any(cdr::list_cdr_ob),
        )
        .route(
            "/interfaceAction/cdrObInterface!listCdrObDetail.action",
            any(cdr::list_cdr_ob_detail),
        )
        .route("/interfaceAction/clientInterface!save.action", any(agents::save))
        .route("/interfaceAction/clientInterface!view.action", any(agents::view))
        .route("/interfaceAction/clientInterface!list.action", any(agents::list))
        .route("/interfaceAction/clientInterface!delete.action", any(agents::delete))
        .route(
            "/interfaceAction/clientInterface!validateCno.action",
            any(agents::validate_cno),
        )
        .route(
            "/interfaceAction/clientInterface!queryBindTel.action",
            any(agents::query_bind_tel),
        )
}

/// The parameters of a legacy request: the query string and, for a form POST, the body; the
/// first value of a name wins. Unknown names are simply never read. With them, the client's
/// address (what credential failures are counted against), and the charset its `charset`
/// parameter declared (what its multipart fields are read in, unless they say otherwise).
pub struct Params {
    values: HashMap<String, String>,
    source: Option<std::net::IpAddr>,
    declared: Option<&'static encoding_rs::Encoding>,
}

impl Params {
    pub fn parse(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Self {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let query_pairs = query.map(|q| charset::raw_pairs(q.as_bytes())).unwrap_or_default();
        let form = content_type.is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let body_pairs = if form || (query.is_none() && !body.is_empty() && !body.starts_with(b"--")) {
            charset::raw_pairs(body)
        } else {
            Vec::new()
        };
        let all = || query_pairs.iter().chain(&body_pairs);
        let declared = charset::parameter(all().map(|(name, value)| (name.as_slice(), value.as_slice())));
        let guessed = charset::guess(all().map(|(_, value)| value.as_slice()));
        let query_charset = declared.unwrap_or(guessed);
        let body_charset = declared
            .or_else(|| content_type.and_then(charset::content_type_charset))
            .unwrap_or(guessed);
        let mut values = HashMap::new();
        let decoded = query_pairs
            .iter()
            .map(|pair| (pair, query_charset))
            .chain(body_pairs.iter().map(|pair| (pair, body_charset)));
        for ((name, value), encoding) in decoded {
            // Names are ASCII in every client; a value's charset does not apply to them.
            values
                .entry(String::from_utf8_lossy(name).into_owned())
                .or_insert_with(|| charset::decode(value, encoding));
        }
        Self {
            values,
            source: None,
            declared,
        }
    }

    /// The client's address; an unspecified one when the server did not say (tests).
    pub fn source(&self) -> std::net::IpAddr {
        self.source
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    /// The value, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The value as sent, untrimmed (`userField` keeps its spaces); `None` when absent.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// The legacy answer to a request too large to read (its head over the server's limit): the
/// "bad parameters" reply of the path's family, still HTTP 200 as every legacy reply; `None`
/// for a path that is not a legacy one.
pub fn too_large(path: &str) -> Option<Value> {
    const MSG: &str = "request too large";
    match path {
        "/interface/PreviewOutcall" => Some(serde_json::json!({"res": "2"})),
        "/interface/client/ClientOnline" | "/interface/client/ClientOffline" | "/interface/client/ChangeStatus" => {
            Some(serde_json::json!({"code": "2", "msg": MSG}))
        }
        _ if path.starts_with("/interface/") || path.starts_with("/interfaceAction/") => {
            Some(serde_json::json!({"result": "error", "msg": MSG}))
        }
        _ => None,
    }
}

/// Every legacy reply: HTTP 200 with JSON (or JSONP when a safe `callback` is given).
pub fn reply(params: &Params, body: Value) -> Response {
    let json = body.to_string();
    match params.get("callback").filter(|c| is_safe_callback(c)) {
        Some(callback) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/javascript;charset=utf-8")],
            format!("{callback}({json})"),
        )
            .into_response(),
        None => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
            json,
        )
            .into_response(),
    }
}

/// `^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$`: a function name, never script.
fn is_safe_callback(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
    first_ok && name.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
}

/// Bodies larger than this are not read: their parameters are missing, and the endpoint answers
/// its "bad parameters" code (still HTTP 200, as every legacy reply).
const MAX_BODY: usize = 1 << 20;

/// The parameters as an extractor: query string, form or multipart body. Never rejects.
impl<S: Send + Sync> axum::extract::FromRequest<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: axum::extract::Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
        let mut params = params_of(parts.uri.query(), &parts.headers, &body).await;
        params.source = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(params)
    }
}

/// The request's parameters; a `multipart/form-data` body's text fields count like form fields.
pub(crate) async fn params_of(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Params {
    let mut params = Params::parse(query, headers, body);
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    if let Some(boundary) = boundary {
        let stream = futures_util::stream::once(std::future::ready(Ok::<Bytes, std::io::Error>(body.clone())));
        let mut multipart = multer::Multipart::new(stream, boundary);
        let mut fields = Vec::new();
        while let Ok(Some(field)) = multipart.next_field().await {
            let Some(name) = field.name().map(str::to_owned) else {
                continue;
            };
            let own = field
                .content_type()
                .and_then(|mime| charset::content_type_charset(mime.as_ref()));
            if let Ok(bytes) = field.bytes().await {
                fields.push((name, bytes, own));
            }
        }
        // A `charset` field declares the others' charset, as a `charset` parameter does.
        let declared = params
            .declared
            .or_else(|| charset::parameter(fields.iter().map(|(name, bytes, _)| (name.as_bytes(), bytes.as_ref()))));
        let guessed = charset::guess(
            fields
                .iter()
                .filter(|(_, _, own)| own.is_none())
                .map(|(_, bytes, _)| bytes.as_ref()),
        );
        for (name, bytes, own) in fields {
            let encoding = own.or(declared).unwrap_or(guessed);
            params
                .values
                .entry(name)
                .or_insert_with(|| charset::decode(&bytes, encoding));
        }
    }
    params
}

#[cfg(test)]
#[path = "mod_test.rs"]
mod tests;

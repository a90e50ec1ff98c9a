//! Recordings over HTTP. The legacy download URLs (the spec's §7): `GET /{YYYYMMDD}/{recordFile}`
//! and `/voices/record/{YYYYMMDD}/{recordFile}` with admin seed credentials, `recordSide` 1
//! customer / 2 agent / 3 mixed (the default), byte ranges. They are the one exception to
//! "every legacy reply is HTTP 200 JSON": audio is 200 or 206, and a refusal is 401 / 403 / 404
//! (400 for a bad `recordSide`, 416 for a range past the end) with a JSON
//! `{"result":"error","msg":…}` body, which a CRM cannot mistake for the recording.
//!
//! And `POST /api/v1/calls/{uniqueId}/recording/pause|resume` with an event-stream token.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use dialbridge_recording::{MonoView, Side};
use dialbridge_service::RecordingRefusal;
use serde_json::json;

use crate::legacy::{auth, Params};
use crate::live::{self, Viewer};
use crate::AppState;

/// What one read of a download takes from the file.
const CHUNK: u64 = 64 * 1024;

fn refusal(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({"result": "error", "msg": msg}))).into_response()
}

pub async fn download_legacy(
    State(app): State<AppState>,
    method: Method,
    Path((day, file_name)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params,
) -> Response {
    download(app, method == Method::HEAD, &day, &file_name, &headers, &params).await
}

/// `head_only`: a HEAD request (axum answers it with the GET route, without the body): it reads
/// no audio, so it is not recorded as a download.
async fn download(
    app: AppState,
    head_only: bool,
    day: &str,
    file_name: &str,
    headers: &HeaderMap,
    params: &Params,
) -> Response {
    if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) || !file_name.ends_with(".wav") {
        return refusal(StatusCode::NOT_FOUND, "not found");
    }
    let enterprise = match auth::admin_seed(&app, params).await {
        Ok(Ok(enterprise)) => enterprise,
        Ok(Err(refused)) => return refusal(StatusCode::UNAUTHORIZED, refused.message()),
        Err(e) => {
            tracing::error!(error = %e, "recording download: store error");
            return refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let side = match params.get("recordSide") {
        None => Side::Mixed,
        Some(code) => match Side::from_legacy(code) {
            Some(side) => side,
            None => {
                return refusal(
                    StatusCode::BAD_REQUEST,
                    "recordSide is 1 (customer), 2 (agent) or 3 (mixed)",
                )
            }
        },
    };
    let found = match app.calls.recording_for_download(enterprise, day, file_name).await {
        Ok(found) => found,
        Err(RecordingRefusal::OtherEnterprise) => {
            return refusal(StatusCode::FORBIDDEN, "the recording is another enterprise's")
        }
        Err(RecordingRefusal::Internal) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        Err(_) => return refusal(StatusCode::NOT_FOUND, "no such recording"),
    };
    let row = found.row;
    let view = match dialbridge_recording::blocking(move || MonoView::open(found.file, side)).await {
        Ok(view) => Arc::new(view),
        Err(e) => {
            tracing::error!(file = %row.file_name, error = %e, "a kept recording cannot be read");
            return refusal(StatusCode::NOT_FOUND, "no such recording");
        }
    };
    let total = view.len();
    // A Range header that does not parse (or counts other units) is ignored (RFC 9110 §14.2):
    // the whole file; one that parses but lies past the end is refused (416).
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|text| http_range_header::parse_range_header(text).ok())
        .map(|parsed| parsed.validate(total).ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, total),
        // One range is served; a browser never asks for more at once (several: the whole file).
        Some(Some(ranges)) if ranges.len() == 1 => {
            (StatusCode::PARTIAL_CONTENT, *ranges[0].start(), ranges[0].end() + 1)
        }
        Some(Some(_)) => (StatusCode::OK, 0, total),
        Some(None) => {
            let mut response = refusal(StatusCode::RANGE_NOT_SATISFIABLE, "the range is outside the recording");
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{total}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };
    let actor = format!("admin:{}", params.get("userName").unwrap_or(""));
    let detail = format!("side={side:?} bytes={start}-{}", end.saturating_sub(1));
    if !head_only {
        if app
            .calls
            .note_recording_access(&row, "download", &actor, &detail)
            .await
            .is_err()
        {
            return refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
        tracing::info!(file = %row.file_name, %actor, %detail, "recording downloaded");
    }

    let stream = futures_util::stream::unfold(start, move |at| {
        let view = view.clone();
        async move {
            if at >= end {
                return None;
            }
            let to = (at + CHUNK).min(end);
            let read = dialbridge_recording::blocking(move || view.read(at, to)).await;
            Some((read.map(Bytes::from), to))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end - 1)) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// `POST /api/v1/calls/{uniqueId}/recording/{pause|resume}` (`Authorization: Bearer <token>`
/// from `/api/v1/session`): an agent's token pauses its own call's recording, an admin's any
/// of the enterprise's calls.
pub async fn pause(
    State(app): State<AppState>,
    Path((unique_id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let error = |status: StatusCode, message: &str| (status, axum::Json(json!({"error": message}))).into_response();
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return error(StatusCode::NOT_FOUND, "the action is pause or resume"),
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(viewer) = live::authorised(&app, token).await else {
        return error(
            StatusCode::UNAUTHORIZED,
            "a valid token from /api/v1/session is required",
        );
    };
    let (enterprise, agent) = match &viewer {
        Viewer::Agent {
            enterprise, agent_id, ..
        } => (*enterprise, Some(*agent_id)),
        Viewer::Admin { enterprise, .. } => (*enterprise, None),
    };
    match app.calls.pause_recording(enterprise, agent, &unique_id, paused).await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({"uniqueId": unique_id, "paused": paused})),
        )
            .into_response(),
        Err(RecordingRefusal::NotRecorded) => error(StatusCode::CONFLICT, "the call is not recorded"),
        Err(RecordingRefusal::Internal) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        Err(_) => error(StatusCode::NOT_FOUND, "no such running call"),
    }
}

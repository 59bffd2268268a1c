//! HTTP routes: room creation, health, metrics, the WebSocket upgrade and the invite page.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confer_protocol::{CreateRoomRequest, CreateRoomResponse, Role, WS_PATH};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use crate::Shared;
use crate::token::Claims;

/// Hard limit on a message; between [`confer_protocol::MAX_FRAME_BYTES`] and this the client gets
/// `too-large` and keeps its connection, beyond it the connection closes with 1009.
pub(crate) const HARD_MESSAGE_LIMIT: usize = 256 * 1024;

/// Longest consent line a room may ask its guest to agree to.
const MAX_CONSENT_CHARS: usize = 500;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/rooms", post(create_room))
        .route(WS_PATH, get(websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/join/{room}", get(crate::guest::page))
        .route("/guest/{*path}", get(crate::guest::asset))
        .with_state(shared)
}

#[derive(serde::Serialize)]
struct ApiError {
    error: &'static str,
    message: String,
}

fn api_error(status: StatusCode, error: &'static str, message: impl Into<String>) -> Response {
    let body = ApiError {
        error,
        message: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

/// Compares without an early exit, so response timing does not reveal the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn create_room(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorized =
        presented.is_some_and(|key| constant_time_eq(key.as_bytes(), shared.api_key.as_bytes()));
    if !authorized {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "POST /v1/rooms needs `Authorization: Bearer <api key>`",
        );
    }
    let request: CreateRoomRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateRoomRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return api_error(StatusCode::BAD_REQUEST, "bad-request", format!("body: {e}"));
            }
        }
    };
    let cfg = &shared.config;
    let ttl = request.ttl_s.unwrap_or(cfg.room_ttl_s);
    if ttl == 0 || ttl > cfg.room_ttl_max_s {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("ttl_s must be between 1 and {}", cfg.room_ttl_max_s),
        );
    }
    let room = crate::random_id(16);
    let expires_at = crate::unix_now() + ttl;
    let auto_admit = request.auto_admit.unwrap_or(false);
    let consent = request
        .consent
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if consent
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_CONSENT_CHARS)
    {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("consent must be at most {MAX_CONSENT_CHARS} characters"),
        );
    }
    let claims = |role, name, consent| Claims {
        room: room.clone(),
        role,
        exp: expires_at,
        name,
        jti: crate::random_id(12),
        auto_admit,
        consent,
    };
    let host_name = request
        .host_name
        .map(|n| crate::clean_name(&n))
        .filter(|n| !n.is_empty());
    let host_token = shared.tokens.issue(&claims(Role::Host, host_name, None));
    let guest_token = shared.tokens.issue(&claims(Role::Guest, None, consent));
    // The token rides in the fragment: browsers never send it to a server or in a Referer.
    let guest_url = format!("{}/join/{room}#{guest_token}", shared.public_url);
    tracing::info!(%room, auto_admit, ttl, "room created");
    let response = CreateRoomResponse {
        room,
        host_token,
        guest_token,
        guest_url,
        expires_at,
    };
    (StatusCode::CREATED, axum::Json(response)).into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.metrics.encode();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Whether a browser page from `origin` may open the socket (see `--allowed-origin`).
fn origin_allowed(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // native clients send no Origin
    };
    let allowed = &shared.config.allowed_origins;
    if allowed.is_empty() {
        // Same origin only: the Origin's authority must be the Host the request went to.
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        return host.is_some() && authority == host;
    }
    allowed.iter().any(|a| a == "*" || a == origin)
}

async fn websocket(State(shared): State<Arc<Shared>>, mut req: Request) -> Response {
    let headers = req.headers();
    if !origin_allowed(&shared, headers) {
        return api_error(
            StatusCode::FORBIDDEN,
            "forbidden-origin",
            "origin not allowed",
        );
    }
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "not a WebSocket upgrade",
        );
    };
    if !is_upgrade || !version_ok {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "not a WebSocket upgrade",
        );
    }
    if shared.shutdown.is_cancelled() {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "server is stopping",
        );
    }
    let open = usize::try_from(shared.metrics.connections.get()).unwrap_or(0);
    if open >= shared.config.max_connections {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many connections",
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_shared = Arc::clone(&shared);
    shared.tracker.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(8 * 1024)
            .max_message_size(Some(HARD_MESSAGE_LIMIT))
            .max_frame_size(Some(HARD_MESSAGE_LIMIT));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config))
                .await;
        crate::conn::run(ws, task_shared).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}

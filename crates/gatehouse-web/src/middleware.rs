//! What happens around every request.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;
use crate::context::{RequestContext, new_reference, scope};
use crate::error::WebError;
use crate::session::{Visitor, cookie_name, read_cookie};

/// Gives the request a reference and logs it when done. The log line has the
/// route's pattern (`/reset/{token}`), never the path itself, so no token
/// from a reset link ever reaches a log.
pub async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let context = RequestContext {
        reference: new_reference(),
        service: state.gatehouse.settings.service_name.as_str().into(),
    };
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let reference = context.reference.clone();
    let response = scope(context, next.run(req)).await;
    tracing::info!(
        target: "gatehouse::http",
        reference = %reference,
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        millis = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// The client's address: the peer, or — only when configured, behind a
/// proxy — the address the proxy appended to `X-Forwarded-For`.
fn client_ip(state: &AppState, req: &Request) -> String {
    if state.trust_forwarded_for
        && let Some(forwarded) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
    {
        return forwarded.to_owned();
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// Loads the visitor's session (server-side timeouts applied) for the handlers.
pub async fn load_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let client_ip = client_ip(&state, &req);
    let session = match read_cookie(req.headers(), cookie_name(&state)) {
        Some(value) if !req.uri().path().starts_with("/assets/") => {
            match state.gatehouse.session(&value).await {
                Ok(s) => s,
                Err(e) => return crate::error::WebError::from(e).into_page(),
            }
        }
        _ => None,
    };
    req.extensions_mut().insert(Visitor { session, client_ip });
    next.run(req).await
}

/// axum answers a request it cannot parse (a query string, a path value, a
/// body) with plain text naming its internals ("Failed to deserialize query
/// string: duplicate field `q`", a Rust type): that answer becomes this
/// service's page, with a reference, keeping the status.
pub async fn rejections_as_pages(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !status.is_client_error() || !plain_text {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => WebError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => WebError::MethodNotAllowed,
        _ => WebError::BadRequest(format!("refused before the handler: {status}")),
    };
    let mut page = error.into_page();
    *page.status_mut() = status;
    page
}

/// The content security policy: nothing from anywhere else, no inline script or style.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
    font-src 'self'; connect-src 'self'; manifest-src 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Security headers on every response.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // No page here may tell another site its address: reset pages carry tokens.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if state.gatehouse.settings.is_https() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

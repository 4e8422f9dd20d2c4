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
use crate::session::{Visitor, cookie_name, form_cookie_name, read_cookie};

/// Gives the request a reference, and logs and times it when done. The log
/// line and the `gatehouse_http_request_duration_seconds` metric have the
/// route's pattern (`/reset/{token}`), never the path itself, so no token
/// from a reset link ever reaches a log or a metric.
pub async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let context = RequestContext {
        reference: new_reference(),
        service: state.gatehouse.settings().service_name.as_str().into(),
    };
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let reference = context.reference.clone();
    let response = scope(context, next.run(req)).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    state.gatehouse.metrics().observe_request(
        method.as_str(),
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        status,
        took,
    );
    tracing::info!(
        target: "gatehouse::http",
        reference = %reference,
        method = %method,
        route = %route.as_ref().map_or("(no route)", MatchedPath::as_str),
        status,
        millis = took.as_millis() as u64,
        "request"
    );
    response
}

/// Routes whose POST has no [`deadline`]: the console's staff-file upload
/// (preview) and import. Their time grows with the file (up to
/// `GATEHOUSE_CONSOLE_UPLOAD_MIB`, configurable to 4 GiB) and with the
/// uploader's link: a 2,000,000-row import takes about 50 s on a good day, so
/// any fixed bound either cuts real imports (each then rolled back, to be
/// redone from the start, and still as slow) or is too long to help. Only a
/// signed-in administrator with a second factor gets past their first check,
/// rarely and one at a time, so they make no pile-up of held connections;
/// the preview checks who is asking before it reads a byte of the upload.
/// An administrator whose import hangs on a lost database sees it hang, as
/// `gatehouse import` on the command line would.
const WITHOUT_DEADLINE: &[&str] = &["/console/import", "/console/import/{id}"];

/// Bounds the whole handling of a request by `GATEHOUSE_REQUEST_TIMEOUT`.
/// A database that stops answering in the middle of a statement (packets
/// dropped, not refused) would otherwise hold the request for ever: the
/// database timeout bounds only the wait for a connection, and sqlx has no
/// client-side statement timeout. The person would see a page that never
/// loads while the request holds its connection.
///
/// When the bound passes, the handler's future is dropped, which is safe
/// because of how the handlers write:
/// - every multi-step write is one transaction, and a transaction dropped
///   before its commit is rolled back (sqlx queues the `ROLLBACK` on the
///   connection; a database that never hears it ends the transaction when
///   the connection dies), so nothing is ever half-written;
/// - a sign-in claims its attempt, and commits the claim, before the
///   password is checked (claim-before-check), so a sign-in dropped after
///   the check is a counted failure, never a free guess;
/// - password hashing runs on a blocking thread with an owned permit, which
///   finishes and frees its permit whatever happens to the future.
///
/// What the bound cannot know is whether an earlier transaction of the
/// request committed before a later statement hung, so the page does not
/// say that nothing was saved. Nothing is audited (the database is what is
/// not answering); a warning is logged with the route and the reference.
pub async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |p| p.as_str().to_owned());
    if req.method() == axum::http::Method::POST && WITHOUT_DEADLINE.contains(&route.as_str()) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let reference = crate::context::current().map_or_else(String::new, |c| c.reference);
            tracing::warn!(
                reference = %reference,
                method = %method,
                route = %route,
                limit_secs = state.request_timeout.as_secs(),
                "request abandoned after GATEHOUSE_REQUEST_TIMEOUT: the database may have stopped answering"
            );
            WebError::TakingTooLong.into_page()
        }
    }
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
    let (session, session_id) = match read_cookie(req.headers(), cookie_name(&state)) {
        Some(value) if !req.uri().path().starts_with("/assets/") => {
            match state.gatehouse.session(&value).await {
                Ok(Some(s)) => (Some(s), gatehouse_domain::SecretToken::parse(&value)),
                Ok(None) => (None, None),
                Err(e) => return crate::error::WebError::from(e).into_page(),
            }
        }
        _ => (None, None),
    };
    let form_id = read_cookie(req.headers(), form_cookie_name(&state))
        .and_then(|v| gatehouse_domain::SecretToken::parse(&v));
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    req.extensions_mut().insert(Visitor {
        session,
        client_ip,
        user_agent,
        form_id,
        session_id,
    });
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

/// The content security policy: nothing from anywhere else, no inline script
/// or style. `form-action` comes last: a page inside an application's
/// sign-in appends that application's origin to it (`oidc::AllowFormAction`).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
    font-src 'self'; connect-src 'self'; manifest-src 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Security headers on every response.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut response = next.run(req).await;
    let csp = match response.extensions().get::<crate::oidc::AllowFormAction>() {
        Some(allow) => HeaderValue::from_str(&format!("{CSP} {}", allow.0))
            .unwrap_or(HeaderValue::from_static(CSP)),
        None => HeaderValue::from_static(CSP),
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
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
    if state.gatehouse.settings().is_https() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    // Pages are never cached; an asset, or a document a handler marked
    // cacheable (discovery, the JWKS), keeps its own header.
    if !is_asset && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

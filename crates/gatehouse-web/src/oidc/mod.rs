//! The OpenID Connect endpoints and forward auth: thin handlers over
//! `gatehouse_core::oidc`.
//!
//! While a person signs in for an application, its request waits in a
//! cookie signed with the service's key (`gatehouse-authorize`), so that the
//! login page, the recovery flow, the second factor and the consent page can
//! all hand the person back to the application when they are done.

mod authorize;
mod endpoints;
mod forward_auth;
mod logout;

pub use authorize::{authorize, consent, continue_authorization};
pub use endpoints::{discovery, jwks, preflight, revoke, token, userinfo};
pub use forward_auth::{local_path, verify};
pub use logout::{end_session, end_session_confirmed};

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use gatehouse_core::oidc::authorize::Pending;

use crate::AppState;
use crate::error::WebError;
use crate::session::{cookie, read_cookie};

/// Asks the security headers to let this page's forms lead to `origin`
/// too: Chromium applies `form-action` to the redirects that follow a
/// form, so a login page inside an application's sign-in must allow the
/// application's address, or the person is stranded here.
#[derive(Debug, Clone)]
pub struct AllowFormAction(pub String);

impl AllowFormAction {
    /// For a waiting request: its application's redirect origin, if it is
    /// plainly one (a scheme, a host, maybe a port).
    pub fn for_pending(pending: &Pending) -> Option<Self> {
        let origin = &pending.redirect_origin;
        let plain = !origin.is_empty()
            && origin
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/.-[]".contains(&b));
        plain.then(|| Self(origin.clone()))
    }

    /// Adds the allowance to a response.
    pub fn apply(allow: Option<Self>, mut response: Response) -> Response {
        if let Some(allow) = allow {
            response.extensions_mut().insert(allow);
        }
        response
    }
}

/// The waiting-request cookie's name.
fn pending_cookie_name(state: &AppState) -> &'static str {
    if state.gatehouse.settings().is_https() {
        "__Host-gatehouse-authorize"
    } else {
        "gatehouse-authorize"
    }
}

/// The request waiting in this browser, if any.
pub async fn pending_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Pending>, WebError> {
    match read_cookie(headers, pending_cookie_name(state)) {
        Some(value) => Ok(state.gatehouse.pending_from_cookie(&value).await?),
        None => Ok(None),
    }
}

/// The `Set-Cookie` value that keeps `pending` while the person signs in.
fn keep_pending(state: &AppState, pending: &Pending) -> Result<HeaderValue, WebError> {
    let value = state.gatehouse.pending_cookie(pending)?;
    let seconds = gatehouse_core::oidc::authorize::PENDING_LIFETIME.seconds();
    cookie(
        state,
        pending_cookie_name(state),
        &value,
        &format!("; Max-Age={seconds}"),
    )
}

/// The `Set-Cookie` value that forgets the waiting request.
fn forget_pending(state: &AppState) -> Result<HeaderValue, WebError> {
    cookie(state, pending_cookie_name(state), "", "; Max-Age=0")
}

/// Where the login page sends a person once signed in, when a request is
/// waiting for them.
pub const CONTINUE: &str = gatehouse_core::oidc::Paths::AUTHORIZE_CONTINUE;

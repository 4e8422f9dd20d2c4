//! The visitor's cookies: the session cookie, the form cookie of a visitor
//! who has no session, and the cookie that carries an opened reset link to
//! its form.
//!
//! Both are `HttpOnly`, `SameSite=Lax`, path `/`, and — when the public
//! URL is HTTPS — `Secure` with the `__Host-` prefix, which also forbids a
//! `Domain` attribute. Neither has an expiry of its own: the server ends
//! sessions, and a form id is only ever the seed of a form token.

use axum::http::{HeaderMap, HeaderValue, header};
use gatehouse_core::SessionRecord;
use gatehouse_domain::SecretToken;

use crate::AppState;
use crate::error::WebError;

/// Who is asking: their session (if any) and their address.
#[derive(Clone, Debug, Default)]
pub struct Visitor {
    /// The live session named by their cookie.
    pub session: Option<SessionRecord>,
    /// The client's address, for audit records and throttling.
    pub client_ip: String,
    /// The browser's `User-Agent`, as sent.
    pub user_agent: Option<String>,
    /// The id in their form cookie, if they sent a well-formed one.
    pub form_id: Option<SecretToken>,
    /// The id in their session cookie, when it names a live session.
    pub session_id: Option<SecretToken>,
}

impl Visitor {
    /// Who is asking, as core records it.
    pub fn caller(&self) -> gatehouse_core::Caller {
        gatehouse_core::Caller::new(&self.client_ip, self.user_agent.as_deref())
    }

    /// The signed-in account, if any.
    pub fn account_id(&self) -> Option<i64> {
        self.session.as_ref().and_then(|s| s.account_id)
    }
}

/// The session cookie's name.
pub fn cookie_name(state: &AppState) -> &'static str {
    if state.gatehouse.settings().is_https() {
        "__Host-gatehouse"
    } else {
        "gatehouse"
    }
}

/// The value of the session cookie in a request, if present.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value with the attributes every cookie of this service has.
pub(crate) fn cookie(
    state: &AppState,
    name: &str,
    value: &str,
    extra: &str,
) -> Result<HeaderValue, WebError> {
    let secure = if state.gatehouse.settings().is_https() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax{extra}{secure}"
    ))
    .map_err(|e| WebError::Internal(format!("cookie header: {e}")))
}

/// The form cookie's name.
pub fn form_cookie_name(state: &AppState) -> &'static str {
    if state.gatehouse.settings().is_https() {
        "__Host-gatehouse-form"
    } else {
        "gatehouse-form"
    }
}

/// The device cookie's name (see `GATEHOUSE_DEVICE_COOKIES`).
fn device_cookie_name(state: &AppState) -> &'static str {
    if state.gatehouse.settings().is_https() {
        "__Host-gatehouse-device"
    } else {
        "gatehouse-device"
    }
}

/// The reset link cookie's name.
fn reset_cookie_name(state: &AppState) -> &'static str {
    if state.gatehouse.settings().is_https() {
        "__Host-gatehouse-reset"
    } else {
        "gatehouse-reset"
    }
}

/// The value of the reset link cookie in a request, if present.
pub fn read_reset_cookie(state: &AppState, headers: &HeaderMap) -> Option<String> {
    read_cookie(headers, reset_cookie_name(state))
}

/// The `Set-Cookie` value that carries an opened link (signed by core:
/// [`gatehouse_core::Gatehouse::reset_cookie`]) for as long as it waits.
pub fn reset_cookie(state: &AppState, value: &str) -> Result<HeaderValue, WebError> {
    let seconds = gatehouse_core::reset::RESET_STATE_LIFETIME.seconds();
    cookie(
        state,
        reset_cookie_name(state),
        value,
        &format!("; Max-Age={seconds}"),
    )
}

/// The `Set-Cookie` value that removes the reset link cookie.
pub fn clear_reset_cookie(state: &AppState) -> Result<HeaderValue, WebError> {
    cookie(state, reset_cookie_name(state), "", "; Max-Age=0")
}

/// How long a remembered browser stays remembered without signing in: as
/// long as its counter is kept (the housekeeping forgets counters untouched
/// for 30 days).
const DEVICE_COOKIE_SECONDS: u32 = 30 * 24 * 60 * 60;

/// The browser's device cookie, when device cookies are on and it sent a
/// well-formed one.
pub fn read_device_cookie(state: &AppState, headers: &HeaderMap) -> Option<SecretToken> {
    if !state.gatehouse.settings().device_cookies {
        return None;
    }
    read_cookie(headers, device_cookie_name(state)).and_then(|v| SecretToken::parse(&v))
}

/// The `Set-Cookie` value that makes this browser a remembered one.
pub fn device_cookie(state: &AppState, token: &SecretToken) -> Result<HeaderValue, WebError> {
    cookie(
        state,
        device_cookie_name(state),
        &token.encode(),
        &format!("; Max-Age={DEVICE_COOKIE_SECONDS}"),
    )
}

/// The browser-id cookie's name (see `GATEHOUSE_NEW_BROWSER_NOTICES`).
fn browser_cookie_name(state: &AppState) -> &'static str {
    if state.gatehouse.settings().is_https() {
        "__Host-gatehouse-browser"
    } else {
        "gatehouse-browser"
    }
}

/// How long a browser keeps its id: about as long as browsers allow.
const BROWSER_COOKIE_SECONDS: u32 = 400 * 24 * 60 * 60;

/// The browser's id, when new-browser notices are on and it sent one.
pub fn read_browser_cookie(state: &AppState, headers: &HeaderMap) -> Option<SecretToken> {
    if !state.gatehouse.settings().new_browser_notices {
        return None;
    }
    read_cookie(headers, browser_cookie_name(state)).and_then(|v| SecretToken::parse(&v))
}

/// The `Set-Cookie` value that gives this browser its id.
pub fn browser_cookie(state: &AppState, token: &SecretToken) -> Result<HeaderValue, WebError> {
    cookie(
        state,
        browser_cookie_name(state),
        &token.encode(),
        &format!("; Max-Age={BROWSER_COOKIE_SECONDS}"),
    )
}

/// The `Set-Cookie` value that gives the visitor `token`.
pub fn set_cookie(state: &AppState, token: &SecretToken) -> Result<HeaderValue, WebError> {
    cookie(state, cookie_name(state), &token.encode(), "")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> Result<HeaderValue, WebError> {
    cookie(state, cookie_name(state), "", "; Max-Age=0")
}

/// The form token a public form (sign-in, recovery, reset) carries for
/// this visitor, with the `Set-Cookie` to send when they need a form cookie.
///
/// A visitor with a session uses their session's token. One without gets
/// a token made from their form cookie (see
/// [`gatehouse_core::Gatehouse::public_form_token`]), so that showing them
/// a form writes nothing to the database.
pub fn public_form_token(
    state: &AppState,
    visitor: &Visitor,
) -> Result<(String, Option<HeaderValue>), WebError> {
    if let Some(session) = &visitor.session {
        return Ok((session.csrf_token.clone(), None));
    }
    if let Some(id) = &visitor.form_id {
        return Ok((state.gatehouse.public_form_token(id), None));
    }
    let id = SecretToken::generate().map_err(|e| WebError::Internal(e.to_string()))?;
    let set = cookie(state, form_cookie_name(state), &id.encode(), "")?;
    Ok((state.gatehouse.public_form_token(&id), Some(set)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; gatehouse=abc; b=2"),
        );
        assert_eq!(read_cookie(&h, "gatehouse").as_deref(), Some("abc"));
        assert_eq!(read_cookie(&h, "gate"), None);
        let mut two = HeaderMap::new();
        two.append(header::COOKIE, HeaderValue::from_static("x=1"));
        two.append(header::COOKIE, HeaderValue::from_static("gatehouse=def"));
        assert_eq!(read_cookie(&two, "gatehouse").as_deref(), Some("def"));
    }
}

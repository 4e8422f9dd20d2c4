//! The visitor's session cookie.
//!
//! The cookie is `HttpOnly`, `SameSite=Lax`, path `/`, and — when the public
//! URL is HTTPS — `Secure` with the `__Host-` prefix, which also forbids a
//! `Domain` attribute. It has no expiry of its own: the server ends sessions.

use axum::http::{HeaderMap, HeaderValue, header};
use gatehouse_domain::SecretToken;
use gatehouse_store::SessionRecord;

use crate::AppState;
use crate::error::WebError;

/// Who is asking: their session (if any) and their address.
#[derive(Clone, Debug, Default)]
pub struct Visitor {
    /// The live session named by their cookie.
    pub session: Option<SessionRecord>,
    /// The client's address, for audit records and throttling.
    pub client_ip: String,
}

impl Visitor {
    /// The signed-in account, if any.
    pub fn account_id(&self) -> Option<i64> {
        self.session.as_ref().and_then(|s| s.account_id)
    }
}

/// The session cookie's name.
pub fn cookie_name(state: &AppState) -> &'static str {
    if state.gatehouse.settings.is_https() {
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

fn cookie(state: &AppState, value: &str, extra: &str) -> Result<HeaderValue, WebError> {
    let secure = if state.gatehouse.settings.is_https() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{extra}",
        cookie_name(state)
    ))
    .map_err(|e| WebError::Internal(format!("cookie header: {e}")))
}

/// The device cookie's name (see `GATEHOUSE_DEVICE_COOKIES`).
fn device_cookie_name(state: &AppState) -> &'static str {
    if state.gatehouse.settings.is_https() {
        "__Host-gatehouse-device"
    } else {
        "gatehouse-device"
    }
}

/// How long a remembered browser stays remembered without signing in: as
/// long as its counter is kept (the housekeeping forgets counters untouched
/// for 30 days).
const DEVICE_COOKIE_SECONDS: u32 = 30 * 24 * 60 * 60;

/// The browser's device cookie, when device cookies are on and it sent a
/// well-formed one.
pub fn read_device_cookie(state: &AppState, headers: &HeaderMap) -> Option<SecretToken> {
    if !state.gatehouse.settings.device_cookies {
        return None;
    }
    read_cookie(headers, device_cookie_name(state)).and_then(|v| SecretToken::parse(&v))
}

/// The `Set-Cookie` value that makes this browser a remembered one.
pub fn device_cookie(state: &AppState, token: &SecretToken) -> Result<HeaderValue, WebError> {
    let secure = if state.gatehouse.settings.is_https() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={DEVICE_COOKIE_SECONDS}{secure}",
        device_cookie_name(state),
        token.encode()
    ))
    .map_err(|e| WebError::Internal(format!("cookie header: {e}")))
}

/// The `Set-Cookie` value that gives the visitor `token`.
pub fn set_cookie(state: &AppState, token: &SecretToken) -> Result<HeaderValue, WebError> {
    cookie(state, &token.encode(), "")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> Result<HeaderValue, WebError> {
    cookie(state, "", "; Max-Age=0")
}

/// The visitor's session, started now if they have none; with the
/// `Set-Cookie` to send when it is new.
pub async fn ensure(
    state: &AppState,
    visitor: &Visitor,
) -> Result<(SessionRecord, Option<HeaderValue>), WebError> {
    if let Some(session) = &visitor.session {
        return Ok((session.clone(), None));
    }
    let new = state.gatehouse.start_session().await?;
    Ok((new.record, Some(set_cookie(state, &new.token)?)))
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

//! Cross-site request forgery protection for every form.
//!
//! Two checks, both required:
//! 1. where the browser says where the request came from (`Sec-Fetch-Site`,
//!    or failing that `Origin`), it must be this site;
//! 2. the form must carry the visitor's form token, compared in constant
//!    time: their session's, or, on the public forms (sign-in, recovery),
//!    the one derived from their form cookie when they have no session. A
//!    page sent with `Referrer-Policy: no-referrer` makes browsers post
//!    `Origin: null`: there the token alone decides.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use gatehouse_core::SessionRecord;
use gatehouse_core::keys::Purpose;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::WebError;
use crate::session::Visitor;

/// A form that passed the CSRF checks, with the session it belongs to.
pub struct CsrfForm<T> {
    /// The parsed fields.
    pub form: T,
    /// The visitor's session.
    pub session: SessionRecord,
    /// The visitor.
    pub visitor: Visitor,
}

/// A public form (one for people who are not signed in) that passed the
/// CSRF checks: the visitor may have no session.
pub struct PublicForm<T> {
    /// The parsed fields.
    pub form: T,
    /// The visitor (with their session, if they have one).
    pub visitor: Visitor,
    /// The token the form carried, for the page shown again after it.
    pub csrf_token: String,
}

#[derive(serde::Deserialize)]
struct Token {
    #[serde(default)]
    csrf_token: String,
}

/// Passes when the request is not cross-site and `token` is the visitor's
/// session's form token or, when `public`, their form cookie's; otherwise
/// the refusal is audited and the answer is 403.
pub(crate) async fn check(
    state: &AppState,
    visitor: &Visitor,
    cross_site: bool,
    token: &str,
    public: bool,
) -> Result<(), WebError> {
    let g = &state.gatehouse;
    // Checked by core against the service's key (and the one before a
    // rotation, so a form open at the time still works).
    let session_ok = match (&visitor.session, &visitor.session_id) {
        (Some(_), Some(id)) if !token.is_empty() => {
            g.form_token_matches(Purpose::SessionForm, id, token)
                .await?
        }
        _ => false,
    };
    let form_ok = match &visitor.form_id {
        Some(id) if public && !session_ok && !token.is_empty() => {
            g.form_token_matches(Purpose::PublicForm, id, token).await?
        }
        _ => false,
    };
    if !cross_site && (session_ok || form_ok) {
        return Ok(());
    }
    let why = if cross_site {
        "cross-site request"
    } else if visitor.session.is_none() && !public {
        "no session"
    } else if visitor.session.is_none() && visitor.form_id.is_none() {
        "no session or form cookie"
    } else {
        "form token missing or wrong"
    };
    // The refusal stands whether or not it could be recorded.
    g.form_refused(&visitor.caller(), visitor.account_id(), why)
        .await
        .ok();
    Err(WebError::Forbidden)
}

/// Whether the browser's own account of where the request came from allows it.
pub(crate) fn same_site(headers: &HeaderMap, state: &AppState) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true; // an old browser or a non-browser client: the token decides
    };
    if origin == "null" {
        return true;
    }
    let public = state
        .gatehouse
        .settings()
        .public_url
        .origin()
        .ascii_serialization();
    if origin == public {
        return true;
    }
    // Behind no proxy, a browser may use another name for this host (localhost
    // for 127.0.0.1): the origin then names the host the request went to.
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    match (url::Url::parse(origin), host) {
        (Ok(o), Some(host)) => {
            let authority = match o.port() {
                Some(port) => format!("{}:{port}", o.host_str().unwrap_or_default()),
                None => o.host_str().unwrap_or_default().to_owned(),
            };
            authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

/// The fields of a form that passed the checks, its token and its visitor.
async fn checked<T: DeserializeOwned>(
    req: Request,
    state: &AppState,
    public: bool,
) -> Result<(T, String, Visitor), WebError> {
    let visitor = req
        .extensions()
        .get::<Visitor>()
        .cloned()
        .unwrap_or_default();
    let cross_site = !same_site(req.headers(), state);
    // The header timeout ends at the blank line: without a bound here a
    // client that then sends the body a byte at a time holds the
    // connection (and a task) for ever. Forms are at most 16 KiB, so the
    // same allowance is ample for any real browser.
    let body = tokio::time::timeout(state.header_timeout, Bytes::from_request(req, state))
        .await
        .map_err(|_| WebError::RequestTimeout)?
        .map_err(|e| WebError::BadRequest(format!("form body: {e}")))?;
    let token = serde_urlencoded::from_bytes::<Token>(&body)
        .map(|t| t.csrf_token)
        .unwrap_or_default();
    check(state, &visitor, cross_site, &token, public).await?;
    let form = serde_urlencoded::from_bytes::<T>(&body)
        .map_err(|e| WebError::BadRequest(format!("form fields: {e}")))?;
    Ok((form, token, visitor))
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (form, _, visitor) = checked(req, state, false).await?;
        // The check passes only with the session's own token.
        let session = visitor.session.clone().ok_or(WebError::Forbidden)?;
        Ok(CsrfForm {
            form,
            session,
            visitor,
        })
    }
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for PublicForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (form, csrf_token, visitor) = checked(req, state, true).await?;
        Ok(PublicForm {
            form,
            visitor,
            csrf_token,
        })
    }
}

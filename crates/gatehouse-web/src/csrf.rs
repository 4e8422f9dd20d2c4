//! Cross-site request forgery protection for every form.
//!
//! Two checks, both required:
//! 1. where the browser says where the request came from (`Sec-Fetch-Site`,
//!    or failing that `Origin`), it must be this site;
//! 2. the form must carry the token of the visitor's session, compared in
//!    constant time. A page sent with `Referrer-Policy: no-referrer` makes
//!    browsers post `Origin: null`: there the token alone decides.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use gatehouse_domain::SecretToken;
use gatehouse_store::SessionRecord;
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

#[derive(serde::Deserialize)]
struct Token {
    #[serde(default)]
    csrf_token: String,
}

/// The visitor's session, if `token` is its form token and the request is
/// not cross-site; otherwise the refusal is audited and the answer is 403.
pub(crate) async fn check(
    state: &AppState,
    visitor: &Visitor,
    cross_site: bool,
    token: &str,
) -> Result<SessionRecord, WebError> {
    let session = visitor.session.clone();
    let token_ok = match (&session, SecretToken::parse(token)) {
        (Some(s), Some(given)) => {
            SecretToken::parse(&s.csrf_token).is_some_and(|expected| expected.matches(&given))
        }
        _ => false,
    };
    let (Some(session), false, true) = (session, cross_site, token_ok) else {
        let event = gatehouse_store::AuditRecord {
            at: Some(state.gatehouse.clock.now()),
            event: gatehouse_domain::audit::AuditEvent::CsrfRefused
                .as_str()
                .to_owned(),
            client_ip: Some(visitor.client_ip.clone()),
            account_id: visitor.account_id(),
            detail: Some(if cross_site {
                "cross-site request".to_owned()
            } else if visitor.session.is_none() {
                "no session".to_owned()
            } else {
                "form token missing or wrong".to_owned()
            }),
            ..gatehouse_store::AuditRecord::default()
        };
        state.gatehouse.store.audit(&event).await.ok();
        return Err(WebError::Forbidden);
    };
    Ok(session)
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
        .settings
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

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
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
        let session = check(state, &visitor, cross_site, &token).await?;
        let form = serde_urlencoded::from_bytes::<T>(&body)
            .map_err(|e| WebError::BadRequest(format!("form fields: {e}")))?;
        Ok(CsrfForm {
            form,
            session,
            visitor,
        })
    }
}

//! The authorization endpoint, the resumption of a waiting request, and
//! the consent page.

use axum::Extension;
use axum::extract::{RawForm, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use gatehouse_core::oidc::authorize::{AuthorizeOutcome, Pending};
use gatehouse_domain::oidc::authorize::RawRequest;

use super::{AllowFormAction, forget_pending, keep_pending, pending_of};
use crate::AppState;
use crate::csrf::CsrfForm;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::Visitor;
use crate::views::{ConsentPage, MessagePage, render};

type WebResult = Result<Response, WebError>;

fn with_header(mut response: Response, value: axum::http::HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

/// Turns core's answer into a response: a page, a redirect, or the wait
/// for the person (the request kept in its cookie).
async fn answer(state: &AppState, visitor: &Visitor, outcome: AuthorizeOutcome) -> WebResult {
    match outcome {
        AuthorizeOutcome::Refused(why) => {
            let page = MessagePage {
                l: layout(state, visitor.session.as_ref(), false),
                heading: "There is a problem with the application that sent you here".to_owned(),
                paragraphs: vec![
                    why.to_string(),
                    "Go back to the application and try again. If this keeps happening, contact the System Administrator."
                        .to_owned(),
                ],
                reference: None,
                action: None,
            };
            Ok(with_header(
                render(StatusCode::BAD_REQUEST, &page),
                forget_pending(state)?,
            ))
        }
        AuthorizeOutcome::Redirect(to) => Ok(with_header(see_other(&to), forget_pending(state)?)),
        AuthorizeOutcome::SignIn(pending) => Ok(with_header(
            see_other("/login"),
            keep_pending(state, &pending)?,
        )),
        AuthorizeOutcome::SecondFactor(pending) => Ok(with_header(
            see_other("/console/second-factor"),
            keep_pending(state, &pending)?,
        )),
        AuthorizeOutcome::Consent(pending) => {
            let Some(session) = visitor.session.as_ref() else {
                return Ok(with_header(
                    see_other("/login"),
                    keep_pending(state, &pending)?,
                ));
            };
            let page = consent_view(state, session, &pending);
            let allow = AllowFormAction::for_pending(&pending);
            Ok(with_header(
                AllowFormAction::apply(allow, render(StatusCode::OK, &page)),
                keep_pending(state, &pending)?,
            ))
        }
    }
}

fn consent_view(
    state: &AppState,
    session: &gatehouse_core::SessionRecord,
    pending: &Pending,
) -> ConsentPage {
    let scopes = &pending.request.scopes;
    let mut shared = vec!["that it is you (an identifier that stays the same)".to_owned()];
    if scopes.profile {
        shared.push("your name and username".to_owned());
    }
    if scopes.email {
        shared.push("your email address".to_owned());
    }
    if scopes.staff {
        shared.push("your employer, employee number and role".to_owned());
    }
    ConsentPage {
        l: layout(state, Some(session), false),
        csrf: session.csrf_token.clone(),
        client_name: pending.client_name.clone(),
        shared,
    }
}

/// `GET` or `POST /oauth2/authorize`: the request's parameters come from
/// the query, or the form of a POST (OpenID Connect Core §3.1.2.1).
pub async fn authorize(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    RawForm(form): RawForm,
) -> WebResult {
    // A GET's query, or a POST's form: RawForm reads whichever it is.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&form)
        .map_err(|e| WebError::BadRequest(format!("the request's parameters: {e}")))?;
    let raw = RawRequest::new(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let outcome = state
        .gatehouse
        .authorize(&raw, visitor.session.as_ref(), &visitor.caller())
        .await?;
    answer(&state, &visitor, outcome).await
}

/// `GET /oauth2/authorize/continue`: where the login page, the second
/// factor and the reset flow send a person whose application is waiting.
pub async fn continue_authorization(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> WebResult {
    let Some(pending) = pending_of(&state, &headers).await? else {
        // Nothing waits (the cookie expired, or this was bookmarked).
        return Ok(see_other(if visitor.account_id().is_some() {
            "/account"
        } else {
            "/login"
        }));
    };
    let outcome = state
        .gatehouse
        .resume_authorization(pending, visitor.session.as_ref(), &visitor.caller(), None)
        .await?;
    answer(&state, &visitor, outcome).await
}

/// The consent form.
#[derive(serde::Deserialize)]
pub struct ConsentInput {
    #[serde(default)]
    decision: String,
}

/// `POST /oauth2/consent`
pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: CsrfForm<ConsentInput>,
) -> WebResult {
    let Some(pending) = pending_of(&state, &headers).await? else {
        return Ok(see_other("/account"));
    };
    let consented = match form.form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => {
            return Err(WebError::BadRequest(
                "decision must be allow or deny".to_owned(),
            ));
        }
    };
    let outcome = state
        .gatehouse
        .resume_authorization(
            pending,
            Some(&form.session),
            &form.visitor.caller(),
            Some(consented),
        )
        .await?;
    answer(&state, &form.visitor, outcome).await
}

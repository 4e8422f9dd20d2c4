//! The end-session endpoint (RP-Initiated Logout 1.0): an application sends
//! the person here to sign out of Gatehouse, and gets them back.

use axum::Extension;
use axum::extract::{RawForm, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use gatehouse_core::oidc::logout::{EndSession, EndSessionRequest};
use gatehouse_domain::oidc::client::ClientUri;

use super::AllowFormAction;
use crate::AppState;
use crate::csrf::CsrfForm;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::{Visitor, clear_cookie};
use crate::views::{EndSessionPage, MessagePage, render};

type WebResult = Result<Response, WebError>;

/// The request's parameters.
#[derive(serde::Deserialize, Default)]
pub struct EndSessionInput {
    #[serde(default)]
    id_token_hint: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    post_logout_redirect_uri: String,
    #[serde(default)]
    state: String,
}

impl EndSessionInput {
    fn request(&self) -> EndSessionRequest {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        EndSessionRequest {
            id_token_hint: some(&self.id_token_hint),
            client_id: some(&self.client_id),
            post_logout_redirect_uri: some(&self.post_logout_redirect_uri),
            state: some(&self.state),
        }
    }
}

async fn answer(
    state: &AppState,
    visitor: &Visitor,
    input: &EndSessionInput,
    outcome: EndSession,
) -> WebResult {
    match outcome {
        EndSession::Done(after) => {
            let mut response = see_other(after.as_deref().unwrap_or("/logged-out"));
            if visitor.session.is_some() {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, clear_cookie(state)?);
            }
            Ok(response)
        }
        EndSession::Refused(why) => {
            let page = MessagePage {
                l: layout(state, visitor.session.as_ref(), false),
                heading: "There is a problem with the application that sent you here".to_owned(),
                paragraphs: vec![why],
                reference: None,
                action: None,
            };
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        EndSession::Confirm { client_name } => {
            let Some(session) = visitor.session.as_ref() else {
                return Ok(see_other("/logged-out"));
            };
            let page = EndSessionPage {
                l: layout(state, Some(session), false),
                csrf: session.csrf_token.clone(),
                client_name,
                client_id: input.client_id.clone(),
                post_logout_redirect_uri: input.post_logout_redirect_uri.clone(),
                state: input.state.clone(),
            };
            // The form's answer redirects to the application's address.
            let allow = ClientUri::parse(&input.post_logout_redirect_uri)
                .ok()
                .map(|u| AllowFormAction(u.origin()))
                .filter(|a| !a.0.is_empty());
            Ok(AllowFormAction::apply(allow, render(StatusCode::OK, &page)))
        }
    }
}

/// `GET` or `POST /oauth2/logout`
pub async fn end_session(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    RawForm(body): RawForm,
) -> WebResult {
    let input: EndSessionInput = serde_urlencoded::from_bytes(&body)
        .map_err(|e| WebError::BadRequest(format!("the request's parameters: {e}")))?;
    let outcome = state
        .gatehouse
        .end_session_request(
            &input.request(),
            visitor.session.as_ref(),
            &visitor.caller(),
            false,
        )
        .await?;
    answer(&state, &visitor, &input, outcome).await
}

/// `POST /oauth2/logout/confirm`: the person said yes.
pub async fn end_session_confirmed(
    State(state): State<AppState>,
    form: CsrfForm<EndSessionInput>,
) -> WebResult {
    let outcome = state
        .gatehouse
        .end_session_request(
            &form.form.request(),
            Some(&form.session),
            &form.visitor.caller(),
            true,
        )
        .await?;
    let mut response = answer(&state, &form.visitor, &form.form, outcome).await?;
    response.headers_mut().insert(
        "clear-site-data",
        HeaderValue::from_static("\"cache\", \"cookies\""),
    );
    Ok(response)
}

//! Passkeys on the web: the "Passkeys" page of My account, and the JSON
//! endpoints the page's script calls for each ceremony (its options, then
//! the browser's answer). Every rule is core's; these handlers parse, call
//! core and answer.
//!
//! The endpoints take ordinary form posts (the credential is one field
//! holding the browser's JSON), so they pass through the same CSRF checks
//! as every other form: the session's token, or a public form's on the
//! login page.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::passkeys::{
    CeremonyStart, PasskeyRefusal, PasskeySignInOutcome, Refusable, RemoveOutcome,
};
use gatehouse_core::sign_in::BrowserCookies;

use crate::AppState;
use crate::csrf::{CsrfForm, PublicForm};
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::{Visitor, set_cookie};
use crate::views::{PasskeysPage, render};

type WebResult = Result<Response, WebError>;

/// A JSON answer for the page's script.
fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The options of a ceremony, or why it cannot start.
fn options(started: Refusable<CeremonyStart>) -> Response {
    match started {
        Ok(start) => json(
            StatusCode::OK,
            &serde_json::json!({ "ceremony": start.ceremony, "options": start.options }),
        ),
        Err(refusal) => refused(&refusal),
    }
}

/// A refusal, for the script to show.
fn refused(refusal: &PasskeyRefusal) -> Response {
    let status = match refusal {
        PasskeyRefusal::NotEnabled => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    json(status, &serde_json::json!({ "error": refusal.message() }))
}

/// Where the script goes next.
fn go_to(to: &str) -> Response {
    json(StatusCode::OK, &serde_json::json!({ "redirect": to }))
}

/// The "Add a passkey" form's options request.
#[derive(serde::Deserialize)]
pub struct NameInput {
    #[serde(default)]
    name: String,
}

/// A ceremony's answer: its id and the browser's credential as JSON.
#[derive(serde::Deserialize)]
pub struct Answer {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    next: String,
}

/// The login page's options request (a username only for security keys
/// that keep no passkey).
#[derive(serde::Deserialize)]
pub struct SignInStart {
    #[serde(default)]
    username: String,
}

/// A remove button's form.
#[derive(serde::Deserialize)]
pub struct RemoveInput {
    #[serde(default)]
    id: i64,
    #[serde(default)]
    password: String,
}

/// The passkeys page, with an error beside the remove form of `failed`.
async fn passkeys_view(
    state: &AppState,
    visitor: &Visitor,
    failed: Option<(i64, String)>,
) -> WebResult {
    let Some(session) = visitor.account_id().and(visitor.session.as_ref()) else {
        return Ok(see_other("/login"));
    };
    let g = &state.gatehouse;
    if !g.settings().passkeys {
        return Err(WebError::NotFound);
    }
    let keys = g.own_passkeys(session).await?;
    let flash = g.take_flash(session).await?;
    let page = PasskeysPage {
        l: layout(state, Some(session), failed.is_some()),
        csrf: session.csrf_token.clone(),
        flash,
        failed_id: failed.as_ref().map_or(-1, |(id, _)| *id),
        error: failed.map(|(_, m)| m),
        passkeys: keys,
        name_max: gatehouse_core::passkeys::NAME_MAX,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /account/passkeys`
pub async fn page(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    passkeys_view(&state, &visitor, None).await
}

/// `POST /account/passkeys/options`: the options for adding a passkey.
pub async fn register_options(
    State(state): State<AppState>,
    form: CsrfForm<NameInput>,
) -> WebResult {
    let started = state
        .gatehouse
        .start_passkey_registration(&form.session, &form.form.name)
        .await?;
    Ok(options(started))
}

/// `POST /account/passkeys/add`: the browser's new passkey.
pub async fn register(State(state): State<AppState>, form: CsrfForm<Answer>) -> WebResult {
    let g = &state.gatehouse;
    let added = g
        .finish_passkey_registration(
            &form.session,
            &form.form.ceremony,
            &form.form.credential,
            &form.visitor.caller(),
        )
        .await?;
    Ok(match added {
        Ok(name) => {
            g.set_flash(
                &form.session,
                &format!(
                    "Your passkey \u{201c}{name}\u{201d} has been added. You can use it to log in."
                ),
            )
            .await?;
            go_to("/account/passkeys")
        }
        Err(refusal) => refused(&refusal),
    })
}

/// `POST /account/passkeys/remove`: remove one, after the password.
pub async fn remove(State(state): State<AppState>, form: CsrfForm<RemoveInput>) -> WebResult {
    let g = &state.gatehouse;
    let settings = g.settings();
    let CsrfForm {
        form,
        session,
        visitor,
    } = form;
    let outcome = g
        .remove_own_passkey(&session, form.id, &form.password, &visitor.caller())
        .await?;
    let message = match outcome {
        RemoveOutcome::Removed(name) => {
            g.set_flash(
                &session,
                &format!("Your passkey \u{201c}{name}\u{201d} has been removed."),
            )
            .await?;
            return Ok(see_other("/account/passkeys"));
        }
        RemoveOutcome::NotFound => return Ok(see_other("/account/passkeys")),
        RemoveOutcome::NoPassword => "Enter your password to remove this passkey".to_owned(),
        RemoveOutcome::WrongPassword { attempts_left } => format!(
            "The password is incorrect. You have {attempts_left} attempt{} left before your account is locked for {}.",
            if attempts_left == 1 { "" } else { "s" },
            settings.policy.lockout.duration.for_people()
        ),
        RemoveOutcome::Locked { until } => format!(
            "Your account is locked until {}, because the password was entered incorrectly {} times. Nobody can lift the lock early.",
            settings.when(until),
            settings.policy.lockout.threshold
        ),
        RemoveOutcome::PasswordDisabled => "Your password no longer works, because it was entered incorrectly too many times. Use Forgotten | Request Username/Password | Unlock Account to set a new one.".to_owned(),
        RemoveOutcome::OnlyFactor => "This is the only way you have left to pass the helpdesk console's second check, so it cannot be removed. Add another passkey first.".to_owned(),
        RemoveOutcome::SecondFactorFirst => return Ok(see_other("/console/second-factor")),
    };
    let mut page = passkeys_view(&state, &visitor, Some((form.id, message))).await?;
    *page.status_mut() = StatusCode::BAD_REQUEST;
    Ok(page)
}

/// `POST /login/passkey/options`: the options for signing in.
pub async fn sign_in_options(
    State(state): State<AppState>,
    form: PublicForm<SignInStart>,
) -> WebResult {
    let typed = Some(form.form.username.as_str()).filter(|u| !u.trim().is_empty());
    Ok(options(state.gatehouse.start_passkey_sign_in(typed).await?))
}

/// `POST /login/passkey`: the browser's assertion; on success the session
/// cookie is set and the script is told where to go.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: PublicForm<Answer>,
) -> WebResult {
    let PublicForm { form, visitor, .. } = form;
    let browser = crate::session::read_browser_cookie(&state, &headers);
    let outcome = state
        .gatehouse
        .finish_passkey_sign_in(
            &form.ceremony,
            &form.credential,
            &visitor.caller(),
            visitor.session.as_ref().map(|s| &s.id_hash),
            BrowserCookies {
                device: None,
                browser: browser.as_ref(),
            },
        )
        .await?;
    match outcome {
        PasskeySignInOutcome::SignedIn {
            session,
            privileged,
            browser,
        } => {
            let waiting = crate::oidc::pending_of(&state, &headers).await?;
            let next = crate::oidc::local_path(&form.next).unwrap_or_default();
            let to = if waiting.is_some() {
                crate::oidc::CONTINUE
            } else if privileged {
                "/console"
            } else if !next.is_empty() {
                next
            } else {
                "/account"
            };
            let mut response = go_to(to);
            response
                .headers_mut()
                .append(header::SET_COOKIE, set_cookie(&state, &session.token)?);
            if let Some(token) = browser {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    crate::session::browser_cookie(&state, &token)?,
                );
            }
            Ok(response)
        }
        PasskeySignInOutcome::Refused(refusal) => Ok(refused(&refusal)),
    }
}

/// `POST /console/second-factor/passkey/options`
pub async fn second_factor_options(
    State(state): State<AppState>,
    form: CsrfForm<NameInput>,
) -> WebResult {
    Ok(options(
        state
            .gatehouse
            .start_passkey_second_factor(&form.session)
            .await?,
    ))
}

/// `POST /console/second-factor/passkey`
pub async fn second_factor(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: CsrfForm<Answer>,
) -> WebResult {
    let passed = state
        .gatehouse
        .finish_passkey_second_factor(
            &form.session,
            &form.form.ceremony,
            &form.form.credential,
            &form.visitor.caller(),
        )
        .await?;
    Ok(match passed {
        Ok(()) => {
            let waiting = crate::oidc::pending_of(&state, &headers).await?;
            go_to(if waiting.is_some() {
                crate::oidc::CONTINUE
            } else {
                "/console"
            })
        }
        Err(refusal) => refused(&refusal),
    })
}

/// `POST /reset/passkey/options`: the options for using a passkey before
/// setting a new password (the link this browser holds names the account).
pub async fn reset_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: PublicForm<crate::handlers::NoFields>,
) -> WebResult {
    let Some(link) = crate::handlers::held_link(&state, &headers).await? else {
        return Ok(refused(&PasskeyRefusal::UnknownCeremony));
    };
    let caller = form.visitor.caller();
    Ok(options(
        state
            .gatehouse
            .start_passkey_reset(link.id, &caller)
            .await?,
    ))
}

/// `POST /reset/passkey`: the browser's assertion; on success the reset
/// cookie says the passkey was used, and the script goes back to the form.
pub async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: PublicForm<Answer>,
) -> WebResult {
    let g = &state.gatehouse;
    let Some(link) = crate::handlers::held_link(&state, &headers).await? else {
        return Ok(refused(&PasskeyRefusal::UnknownCeremony));
    };
    let passed = g
        .finish_passkey_reset(
            link.id,
            &form.form.ceremony,
            &form.form.credential,
            &form.visitor.caller(),
        )
        .await?;
    Ok(match passed {
        Ok(()) => {
            let mut response = go_to("/reset");
            response.headers_mut().append(
                header::SET_COOKIE,
                crate::session::reset_cookie(&state, &g.reset_cookie_after_passkey(link.id))?,
            );
            response
        }
        Err(refusal) => refused(&refusal),
    })
}

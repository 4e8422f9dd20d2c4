//! A person's own account, signed in: "My account", changing the password,
//! "Where you're signed in" and "Recent activity". Each page is for the
//! signed-in person only; a visitor who is not signed in is sent to log in.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::SessionRecord;
use gatehouse_core::own_account::{ACTIVITY_DAYS, PasswordChange, PasswordChangeOutcome};
use gatehouse_domain::recovery::FieldError;

use crate::AppState;
use crate::csrf::CsrfForm;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::Visitor;
use crate::views::{AccountPage, ActivityPage, ChangePasswordPage, SessionsPage, render};

type WebResult = Result<Response, WebError>;

/// The signed-in session, if the visitor has one.
fn signed_in(visitor: &Visitor) -> Option<&SessionRecord> {
    visitor.account_id().and(visitor.session.as_ref())
}

/// The signed-in session, or the handler answers with the login page.
macro_rules! or_log_in {
    ($visitor:expr) => {
        match signed_in($visitor) {
            Some(session) => session,
            None => return Ok(see_other("/login")),
        }
    };
}

/// `GET /account`
pub async fn account(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let session = or_log_in!(&visitor);
    let g = &state.gatehouse;
    let Some(account) = g.own_account(session).await? else {
        return Ok(see_other("/login"));
    };
    let last_sign_in = account.previous_sign_in_at.map_or_else(
        || "This is your first sign-in".to_owned(),
        |at| g.settings().when(at),
    );
    let flash = g.take_flash(session).await?;
    let page = AccountPage {
        l: layout(&state, Some(session), false),
        csrf: session.csrf_token.clone(),
        name: format!("{} {}", account.first_name, account.last_name),
        username: account.username.to_string(),
        employer: account.employer_name.clone(),
        last_sign_in,
        flash,
        console: account.role != gatehouse_domain::Role::Staff,
        passkeys: g.settings().passkeys,
    };
    Ok(render(StatusCode::OK, &page))
}

fn password_view(
    state: &AppState,
    session: &SessionRecord,
    errors: Vec<FieldError>,
    locked_until: Option<String>,
) -> ChangePasswordPage {
    let s = state.gatehouse.settings();
    ChangePasswordPage {
        l: layout(state, Some(session), !errors.is_empty()),
        csrf: session.csrf_token.clone(),
        locked_until,
        requirements: s.policy.password.requirements(),
        min_length: s.policy.password.min_length,
        errors,
    }
}

/// `GET /account/password`
pub async fn password_page(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let session = or_log_in!(&visitor);
    Ok(render(
        StatusCode::OK,
        &password_view(&state, session, Vec::new(), None),
    ))
}

/// `POST /account/password`
pub async fn change_password(
    State(state): State<AppState>,
    form: CsrfForm<PasswordChange>,
) -> WebResult {
    let g = &state.gatehouse;
    let settings = g.settings();
    let outcome = g
        .change_password(&form.session, &form.form, &form.visitor.caller())
        .await?;
    let wrong = |message: String| {
        vec![FieldError {
            field: "current-password",
            message,
        }]
    };
    let (errors, locked) = match outcome {
        PasswordChangeOutcome::Changed { others_signed_out } => {
            let others = match others_signed_out {
                0 => String::new(),
                1 => " Your other device has been signed out.".to_owned(),
                n => format!(" Your {n} other devices have been signed out."),
            };
            g.set_flash(
                &form.session,
                &format!("Your password has been changed.{others}"),
            )
            .await?;
            return Ok(see_other("/account"));
        }
        PasswordChangeOutcome::Invalid(errors) => (errors, None),
        PasswordChangeOutcome::WrongCurrent { attempts_left } => (
            wrong(format!(
                "The current password is incorrect. You have {attempts_left} attempt{} left before your account is locked for {}.",
                if attempts_left == 1 { "" } else { "s" },
                settings.policy.lockout.duration.for_people()
            )),
            None,
        ),
        PasswordChangeOutcome::Locked { until } => (Vec::new(), Some(settings.when(until))),
        PasswordChangeOutcome::PasswordDisabled => (
            wrong("Your password no longer works, because it was entered incorrectly too many times. Use Forgotten | Request Username/Password | Unlock Account to get an email with a link to set a new password.".to_owned()),
            None,
        ),
    };
    let page = password_view(&state, &form.session, errors, locked);
    Ok(render(StatusCode::OK, &page))
}

/// `GET /account/sessions`
pub async fn sessions(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let session = or_log_in!(&visitor);
    let g = &state.gatehouse;
    let (sessions, applications) = g.where_signed_in(session).await?;
    let page = SessionsPage {
        l: layout(&state, Some(session), false),
        csrf: session.csrf_token.clone(),
        flash: g.take_flash(session).await?,
        others: sessions.iter().any(|s| !s.this_device),
        sessions,
        applications,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The session a "Sign out" button names.
#[derive(serde::Deserialize)]
pub struct EndSessionForm {
    #[serde(default)]
    sid: String,
}

/// `POST /account/sessions/end`: one of the person's other sessions.
pub async fn end_session(
    State(state): State<AppState>,
    form: CsrfForm<EndSessionForm>,
) -> WebResult {
    let g = &state.gatehouse;
    if !g
        .end_own_session(&form.session, &form.form.sid, &form.visitor.caller())
        .await?
    {
        // Not one of this person's other sessions, whatever it names.
        return Err(WebError::NotFound);
    }
    g.set_flash(&form.session, "That device has been signed out.")
        .await?;
    Ok(see_other("/account/sessions"))
}

/// `POST /account/sessions/end-others`
pub async fn end_other_sessions(
    State(state): State<AppState>,
    form: CsrfForm<crate::handlers::NoFields>,
) -> WebResult {
    let g = &state.gatehouse;
    let ended = g
        .end_other_sessions(&form.session, &form.visitor.caller())
        .await?;
    let message = match ended {
        0 => "You were not signed in anywhere else.".to_owned(),
        1 => "Your other device has been signed out.".to_owned(),
        n => format!("Your {n} other devices have been signed out."),
    };
    g.set_flash(&form.session, &message).await?;
    Ok(see_other("/account/sessions"))
}

/// The application a "Sign out of this application" button names.
#[derive(serde::Deserialize)]
pub struct ApplicationForm {
    #[serde(default)]
    client_id: String,
}

/// `POST /account/applications/sign-out`
pub async fn sign_out_of_application(
    State(state): State<AppState>,
    form: CsrfForm<ApplicationForm>,
) -> WebResult {
    let g = &state.gatehouse;
    if !g
        .sign_out_of_application(&form.session, &form.form.client_id, &form.visitor.caller())
        .await?
    {
        return Err(WebError::NotFound);
    }
    g.set_flash(
        &form.session,
        "You have been signed out of that application.",
    )
    .await?;
    Ok(see_other("/account/sessions"))
}

/// `GET /account/activity`
pub async fn activity(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let session = or_log_in!(&visitor);
    let lines = state.gatehouse.own_activity(session).await?;
    let page = ActivityPage {
        l: layout(&state, Some(session), false),
        days: ACTIVITY_DAYS,
        lines,
    };
    Ok(render(StatusCode::OK, &page))
}

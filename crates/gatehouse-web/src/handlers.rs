//! The handlers: parse, call a service, render.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::SessionRecord;
use gatehouse_core::recovery::RequestOutcome;
use gatehouse_core::reset::{HeldLink, LinkLookup, LinkProblem, ResetInput, ResetOutcome};
use gatehouse_core::sign_in::{BrowserCookies, SignInInput, SignInOutcome};
use gatehouse_domain::recovery::{FieldError, RecoveryInput, check_recovery_form};

use crate::AppState;
use crate::csrf::{CsrfForm, PublicForm};
use crate::error::WebError;
use crate::session::{Visitor, clear_cookie, public_form_token, set_cookie};
use crate::views::{
    ConfirmationPage, HomePage, Layout, LinkProblemPage, LoginPage, MessagePage, RecoverPage,
    ResetPage, render,
};

type WebResult = Result<Response, WebError>;

pub(crate) fn layout(state: &AppState, session: Option<&SessionRecord>, has_error: bool) -> Layout {
    Layout {
        service: state.gatehouse.settings().service_name.clone(),
        signed_in_csrf: session
            .filter(|s| s.account_id.is_some())
            .map(|s| s.csrf_token.clone()),
        has_error,
    }
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `GET /`
pub async fn home(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> Response {
    let s = state.gatehouse.settings();
    render(
        StatusCode::OK,
        &HomePage {
            l: layout(&state, visitor.session.as_ref(), false),
            domains: s.allowed_domains.for_people(),
            ttl: s.policy.reset_link_ttl.for_people(),
            threshold: s.policy.lockout.threshold,
            lock: s.policy.lockout.duration.for_people(),
        },
    )
}

/// What a login page shows besides the form: the application waiting for
/// the person, and where to go back to afterwards.
#[derive(Default)]
struct LoginContext {
    /// The application whose sign-in this is.
    pending: Option<gatehouse_core::oidc::authorize::Pending>,
    /// A path on this origin to return to (forward auth).
    next: String,
}

fn login_view(
    state: &AppState,
    csrf: String,
    username: String,
    errors: Vec<FieldError>,
    flash: Option<String>,
    context: &LoginContext,
) -> LoginPage {
    let policy = &state.gatehouse.settings().policy;
    // Only a visitor who is not signed in is shown this page.
    LoginPage {
        l: layout(state, None, !errors.is_empty()),
        csrf,
        username,
        errors,
        flash,
        threshold: policy.lockout.threshold,
        lock: policy.lockout.duration.for_people(),
        client_name: context.pending.as_ref().map(|p| p.client_name.clone()),
        next: context.next.clone(),
        passkeys: state.gatehouse.settings().passkeys,
    }
}

/// A login page, with what the waiting application's redirect needs.
fn login_response(page: &LoginPage, context: &LoginContext) -> Response {
    let allow = context
        .pending
        .as_ref()
        .and_then(crate::oidc::AllowFormAction::for_pending);
    crate::oidc::AllowFormAction::apply(allow, render(StatusCode::OK, page))
}

/// What the login page was sent to say (after a password was set), and
/// where to go back to (forward auth).
#[derive(serde::Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `GET /login`
pub async fn login_page(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> WebResult {
    let pending = crate::oidc::pending_of(&state, &headers).await?;
    // A signed-in person is shown the form only when an application needs
    // them to sign in again (`prompt=login`, `max_age`).
    if visitor.account_id().is_some() && pending.is_none() {
        return Ok(see_other("/account"));
    }
    let (csrf, cookie) = public_form_token(&state, &visitor)?;
    // Fixed sentences chosen by the query, never text from it.
    let flash = match query.password.as_str() {
        "set" => Some(PASSWORD_SET.to_owned()),
        "set-up" => Some(format!(
            "{PASSWORD_SET} You will then be asked to set up your authenticator app."
        )),
        _ => match &visitor.session {
            Some(session) => state.gatehouse.take_flash(session).await?,
            None => None,
        },
    };
    let username = pending
        .as_ref()
        .and_then(|p| p.request.login_hint.clone())
        .unwrap_or_default();
    let context = LoginContext {
        pending,
        next: crate::oidc::local_path(&query.next)
            .unwrap_or_default()
            .to_owned(),
    };
    let page = login_view(&state, csrf, username, Vec::new(), flash, &context);
    Ok(with_cookie(login_response(&page, &context), cookie))
}

/// The login form: the sign-in, and where to go back to.
#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(flatten)]
    input: SignInInput,
    #[serde(default)]
    next: String,
}

/// `POST /login`
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: PublicForm<LoginForm>,
) -> WebResult {
    let PublicForm {
        form: LoginForm { input: form, next },
        visitor,
        csrf_token,
    } = form;
    let context = LoginContext {
        pending: crate::oidc::pending_of(&state, &headers).await?,
        next: crate::oidc::local_path(&next)
            .unwrap_or_default()
            .to_owned(),
    };
    let settings = state.gatehouse.settings();
    let device = crate::session::read_device_cookie(&state, &headers);
    let browser = crate::session::read_browser_cookie(&state, &headers);
    let outcome = state
        .gatehouse
        .sign_in(
            &form,
            &visitor.caller(),
            visitor.session.as_ref().map(|s| &s.id_hash),
            BrowserCookies {
                device: device.as_ref(),
                browser: browser.as_ref(),
            },
        )
        .await?;
    let message = match outcome {
        SignInOutcome::SignedIn {
            session: new,
            privileged,
            device,
            browser,
        } => {
            // An application waiting for the person comes first; then the
            // page they came from (forward auth). Helpdesk and admin go on
            // to the second factor and the console.
            let to = if context.pending.is_some() {
                crate::oidc::CONTINUE
            } else if privileged {
                "/console"
            } else if !context.next.is_empty() {
                context.next.as_str()
            } else {
                "/account"
            };
            let response = see_other(to);
            let response = with_cookie(response, Some(set_cookie(&state, &new.token)?));
            let device = device
                .map(|token| crate::session::device_cookie(&state, &token))
                .transpose()?;
            let browser = browser
                .map(|token| crate::session::browser_cookie(&state, &token))
                .transpose()?;
            return Ok(with_cookie(with_cookie(response, device), browser));
        }
        SignInOutcome::Invalid(errors) => {
            let page = login_view(&state, csrf_token, form.username, errors, None, &context);
            return Ok(login_response(&page, &context));
        }
        SignInOutcome::Failed { attempts_left } => format!(
            "The username or password is incorrect. You have {attempts_left} attempt{} left before your account is locked for {}.",
            if attempts_left == 1 { "" } else { "s" },
            settings.policy.lockout.duration.for_people()
        ),
        SignInOutcome::Locked { until, .. } => format!(
            "Your account is locked until {}, because the password was entered incorrectly {} times. You cannot log in or reset your password until then, and nobody can lift the lock early.",
            settings.when(until),
            settings.policy.lockout.threshold
        ),
        SignInOutcome::AccountDisabled => "Your account has been disabled by an administrator. Contact the System Administrator if you think this is wrong.".to_owned(),
        SignInOutcome::Disabled => "Your password no longer works, because it was entered incorrectly too many times. Use Forgotten | Request Username/Password | Unlock Account to get an email with a link to set a new password.".to_owned(),
    };
    let errors = vec![FieldError {
        field: "username",
        message,
    }];
    let page = login_view(&state, csrf_token, form.username, errors, None, &context);
    Ok(login_response(&page, &context))
}

fn recover_view(
    state: &AppState,
    visitor: &Visitor,
    csrf: String,
    input: RecoveryInput,
    errors: Vec<FieldError>,
) -> RecoverPage {
    let s = state.gatehouse.settings();
    let first_domain = s
        .allowed_domains
        .domains()
        .first()
        .cloned()
        .unwrap_or_default();
    let dob_error = errors
        .iter()
        .find(|e| e.field == "dob-day")
        .map(|e| e.message.clone());
    RecoverPage {
        l: layout(state, visitor.session.as_ref(), !errors.is_empty()),
        csrf,
        email: input.email,
        day: input.day,
        month: input.month,
        year: input.year,
        username: input.username,
        email_hint: format!(
            "(Example: first.last@{first_domain}) This must be your {} email address. If you do not have access to it, call IT to retrieve your login details.",
            s.allowed_domains.for_people()
        ),
        username_hint: format!(
            "Only required if you have more than one NHS Employer and wish to reset a specific account. If known, enter your {} username to receive details for this account only. We advise you to leave it blank: your username will be in the email.",
            s.service_name
        ),
        errors,
        dob_error,
    }
}

/// `GET /recover`
pub async fn recover_page(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let (csrf, cookie) = public_form_token(&state, &visitor)?;
    let page = recover_view(&state, &visitor, csrf, RecoveryInput::default(), Vec::new());
    Ok(with_cookie(render(StatusCode::OK, &page), cookie))
}

/// `POST /recover`
pub async fn recover(State(state): State<AppState>, form: PublicForm<RecoveryInput>) -> WebResult {
    let PublicForm {
        form,
        visitor,
        csrf_token,
    } = form;
    let g = &state.gatehouse;
    let today = g.settings().today(g.clock().now());
    match check_recovery_form(&form, today, &g.settings().allowed_domains) {
        Err(errors) => {
            let page = recover_view(&state, &visitor, csrf_token, form, errors);
            Ok(render(StatusCode::OK, &page))
        }
        Ok(request) => match g.request_recovery(&request, &visitor.caller()).await? {
            RequestOutcome::Recorded => Ok(see_other("/recover/confirmation")),
            RequestOutcome::ClientLimit => Err(WebError::TooManyRequests),
        },
    }
}

/// `GET /recover/confirmation`
pub async fn confirmation(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> Response {
    render(
        StatusCode::OK,
        &ConfirmationPage {
            l: layout(&state, visitor.session.as_ref(), false),
            ttl: state
                .gatehouse
                .settings()
                .policy
                .reset_link_ttl
                .for_people(),
        },
    )
}

/// The confirmation on the login page after a password was set.
const PASSWORD_SET: &str =
    "Your password has been set. Log in with your username and new password.";

/// `GET /reset/{token}`: moves the token out of the address bar into a
/// signed cookie and redirects. Never spends the link (mail scanners open
/// links), and writes nothing unless the link is unknown.
pub async fn open_reset_link(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    Path(token): Path<String>,
) -> WebResult {
    let g = &state.gatehouse;
    let link = match g.open_reset_link(&token, &visitor.caller()).await? {
        LinkLookup::Found(id) => Some(id),
        LinkLookup::Unknown => None,
        LinkLookup::TooManyGuesses => return Err(WebError::TooManyLinkGuesses),
    };
    let cookie = crate::session::reset_cookie(&state, &g.reset_cookie(link))?;
    Ok(with_cookie(see_other("/reset"), Some(cookie)))
}

/// The link the visitor's reset cookie carries, if it is valid.
pub(crate) async fn held_link(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<HeldLink>, WebError> {
    match crate::session::read_reset_cookie(state, headers) {
        Some(value) => Ok(state.gatehouse.held_link(&value).await?),
        None => Ok(None),
    }
}

fn link_problem(
    state: &AppState,
    session: Option<&SessionRecord>,
    problem: LinkProblem,
) -> Response {
    let s = state.gatehouse.settings();
    let (heading, paragraphs) = match problem {
        LinkProblem::Unknown => (
            "This link is not valid",
            vec![
                "Check that you used the whole link from your most recent password reset email. If you copied it, copy all of it.".to_owned(),
                "Your browser must allow cookies from this site for the link to work.".to_owned(),
            ],
        ),
        LinkProblem::Expired => (
            "This link is no longer valid",
            vec![format!(
                "Password reset links must be used within {}. This one has expired.",
                s.policy.reset_link_ttl.for_people()
            )],
        ),
        LinkProblem::Used => (
            "This link is no longer valid",
            vec!["This link has already been used to set a password. Each link works only once.".to_owned()],
        ),
        LinkProblem::Replaced => (
            "This link is no longer valid",
            vec!["A newer password reset email has been sent since this one, and it replaces this link. Use the link in your most recent email.".to_owned()],
        ),
        LinkProblem::PasswordChanged => (
            "This link is no longer valid",
            vec!["The password for this account has been changed since this email was sent.".to_owned()],
        ),
        LinkProblem::EmailChanged => (
            "This link is no longer valid",
            vec!["The email address for this account has been changed since this email was sent.".to_owned()],
        ),
        LinkProblem::AccountDisabled => (
            "This account has been disabled",
            vec!["An administrator has disabled this account, so its password cannot be set. Contact the System Administrator if you think this is wrong.".to_owned()],
        ),
    };
    render(
        StatusCode::OK,
        &LinkProblemPage {
            l: layout(state, session, false),
            heading: heading.to_owned(),
            paragraphs,
        },
    )
}

/// What the reset form shows besides its fields.
#[derive(Debug, Clone, Copy, Default)]
struct ResetForm {
    first_time: bool,
    locked_until: Option<gatehouse_domain::Timestamp>,
    set_up: bool,
    needs_code: bool,
    needs_passkey: bool,
}

fn reset_view(
    state: &AppState,
    visitor: &Visitor,
    csrf: String,
    form: ResetForm,
    username: String,
    errors: Vec<FieldError>,
) -> ResetPage {
    let s = state.gatehouse.settings();
    ResetPage {
        l: layout(state, visitor.session.as_ref(), !errors.is_empty()),
        csrf,
        first_time: form.first_time,
        locked_until: form.locked_until.map(|u| s.when(u)),
        set_up: form.set_up,
        needs_code: form.needs_code,
        needs_passkey: form.needs_passkey,
        requirements: s.policy.password.requirements(),
        min_length: s.policy.password.min_length,
        username,
        errors,
    }
}

/// The form a held link shows, or the problem with the link.
async fn reset_form(
    state: &AppState,
    link: HeldLink,
) -> Result<Result<ResetForm, LinkProblem>, WebError> {
    Ok(match state.gatehouse.reset_page(link).await? {
        gatehouse_core::reset::ResetPage::Form {
            first_time,
            locked_until,
            set_up,
            needs_code,
            needs_passkey,
        } => Ok(ResetForm {
            first_time,
            locked_until,
            set_up,
            needs_code,
            needs_passkey,
        }),
        gatehouse_core::reset::ResetPage::Unusable(problem) => Err(problem),
    })
}

/// `GET /reset`
pub async fn reset_page(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> WebResult {
    let session = visitor.session.as_ref();
    let Some(link) = held_link(&state, &headers).await? else {
        return Ok(link_problem(&state, session, LinkProblem::Unknown));
    };
    match reset_form(&state, link).await? {
        Ok(form) => {
            let (csrf, cookie) = public_form_token(&state, &visitor)?;
            let page = reset_view(&state, &visitor, csrf, form, String::new(), Vec::new());
            Ok(with_cookie(render(StatusCode::OK, &page), cookie))
        }
        Err(problem) => Ok(link_problem(&state, session, problem)),
    }
}

/// `POST /reset`
pub async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: PublicForm<ResetInput>,
) -> WebResult {
    let PublicForm {
        form,
        visitor,
        csrf_token,
    } = form;
    let session = visitor.session.as_ref();
    let Some(link) = held_link(&state, &headers).await? else {
        return Ok(link_problem(&state, session, LinkProblem::Unknown));
    };
    let g = &state.gatehouse;
    match g.complete_reset(link, &form, &visitor.caller()).await? {
        ResetOutcome::Done { set_up } => {
            let mut response = see_other(if set_up {
                "/login?password=set-up"
            } else {
                "/login?password=set"
            });
            response.headers_mut().append(
                header::SET_COOKIE,
                crate::session::clear_reset_cookie(&state)?,
            );
            Ok(response)
        }
        ResetOutcome::Invalid(errors) => match reset_form(&state, link).await? {
            Ok(shown) => {
                let page = reset_view(&state, &visitor, csrf_token, shown, form.username, errors);
                Ok(render(StatusCode::OK, &page))
            }
            Err(problem) => Ok(link_problem(&state, session, problem)),
        },
        ResetOutcome::Locked { until } => {
            let shown = ResetForm {
                locked_until: Some(until),
                ..ResetForm::default()
            };
            let page = reset_view(
                &state,
                &visitor,
                csrf_token,
                shown,
                String::new(),
                Vec::new(),
            );
            Ok(render(StatusCode::OK, &page))
        }
        ResetOutcome::Unusable(problem) => Ok(link_problem(&state, session, problem)),
    }
}

#[derive(serde::Deserialize)]
pub struct NoFields {}

/// `POST /logout`
pub async fn logout(State(state): State<AppState>, form: CsrfForm<NoFields>) -> WebResult {
    state
        .gatehouse
        .end_session(&form.session, &form.visitor.caller())
        .await?;
    let mut response = see_other("/logged-out");
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_cookie(&state)?);
    response.headers_mut().insert(
        "clear-site-data",
        HeaderValue::from_static("\"cache\", \"cookies\""),
    );
    Ok(response)
}

/// `GET /logged-out`
pub async fn logged_out(State(state): State<AppState>) -> Response {
    render(
        StatusCode::OK,
        &MessagePage {
            l: layout(&state, None, false),
            heading: "You have logged out".to_owned(),
            paragraphs: vec!["Close this window if you are using a shared computer.".to_owned()],
            reference: None,
            action: Some(("/login".to_owned(), "Log in".to_owned())),
        },
    )
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the database answers, within a couple of seconds, with
/// the schema this build needs (`Gatehouse::readiness`). The 503 names
/// the kind of problem only; the log has the detail.
pub async fn readyz(State(state): State<AppState>) -> Response {
    use gatehouse_core::housekeeping::NotReady;
    match state.gatehouse.readiness().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            let body = match why {
                NotReady::DatabaseSilent | NotReady::DatabaseUnavailable(_) => {
                    "database unavailable\n"
                }
                NotReady::Schema(_) => "database schema mismatch\n",
            };
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

/// Any other path.
pub async fn not_found() -> WebError {
    WebError::NotFound
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> WebError {
    WebError::MethodNotAllowed
}

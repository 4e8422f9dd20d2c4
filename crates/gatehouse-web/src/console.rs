//! The helpdesk console: privileged pages behind a role and a second factor.
//!
//! Every console page starts with [`privileged`], which sends a person who
//! is not signed in to the login page, a privileged person who has not
//! passed the second factor in this session to it, and refuses (403, and an
//! audit record) anyone whose role does not allow the console.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::privileged::{CodeOutcome, ConsoleAccess};
use gatehouse_domain::Role;
use gatehouse_domain::recovery::FieldError;
use gatehouse_store::{AccountRecord, SessionRecord};

use crate::AppState;
use crate::csrf::CsrfForm;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::Visitor;
use crate::views::{
    ConsoleAccountPage, ConsoleHomePage, ConsoleMailPage, RecoveryCodesPage, SecondFactorPage,
    render,
};

type WebResult = Result<Response, WebError>;

/// Most people listed by one search.
const SEARCH_LIMIT: u32 = 50;

/// Who may see a console page: the session, the account and its role, or
/// the response to send instead.
struct Privileged {
    session: SessionRecord,
    /// Admin-only actions check this; the pages so far are for both roles.
    #[allow(dead_code)]
    role: Role,
}

async fn privileged(
    state: &AppState,
    visitor: &Visitor,
    page: &str,
) -> Result<Result<Privileged, Response>, WebError> {
    let Some(session) = visitor.session.clone().filter(|s| s.account_id.is_some()) else {
        return Ok(Err(see_other("/login")));
    };
    let (account, access) = state.gatehouse.console_access(&session).await?;
    match access {
        ConsoleAccess::Granted(role) => Ok(Ok(Privileged { session, role })),
        ConsoleAccess::MustEnrol | ConsoleAccess::MustVerify => {
            Ok(Err(see_other("/console/second-factor")))
        }
        ConsoleAccess::NotPrivileged => {
            state
                .gatehouse
                .console_refused(account.as_ref(), page, &visitor.client_ip)
                .await?;
            Err(WebError::NotAllowed)
        }
    }
}

fn second_factor_view(
    state: &AppState,
    session: &SessionRecord,
    enrolment: Option<&gatehouse_core::privileged::Enrolment>,
    error: Option<String>,
) -> Result<SecondFactorPage, WebError> {
    let settings = &state.gatehouse.settings;
    let qr_svg = match enrolment {
        Some(e) => qr_svg(&e.uri)?,
        None => String::new(),
    };
    Ok(SecondFactorPage {
        l: layout(state, Some(session), error.is_some()),
        csrf: session.csrf_token.clone(),
        service: settings.service_name.clone(),
        enrol_key: enrolment.map(|e| e.secret.base32_grouped()),
        qr_svg,
        errors: error
            .iter()
            .map(|m| FieldError {
                field: "code",
                message: m.clone(),
            })
            .collect(),
        code_error: error,
        threshold: settings.policy.lockout.threshold,
        lock: settings.policy.lockout.duration.for_people(),
    })
}

/// The QR code as inline SVG (no image request, so nothing for the CSP to allow).
fn qr_svg(uri: &str) -> Result<String, WebError> {
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| WebError::Internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg").unwrap_or(0);
    Ok(svg[start..].replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code to scan with your authenticator app\" ",
        1,
    ))
}

/// The signed-in privileged account that must pass the second factor now.
async fn pending(
    state: &AppState,
    visitor: &Visitor,
) -> Result<Result<(SessionRecord, AccountRecord, bool), Response>, WebError> {
    let Some(session) = visitor.session.clone().filter(|s| s.account_id.is_some()) else {
        return Ok(Err(see_other("/login")));
    };
    let (account, access) = state.gatehouse.console_access(&session).await?;
    match (access, account) {
        (ConsoleAccess::Granted(_), _) => Ok(Err(see_other("/console"))),
        (ConsoleAccess::MustEnrol, Some(account)) => Ok(Ok((session, account, true))),
        (ConsoleAccess::MustVerify, Some(account)) => Ok(Ok((session, account, false))),
        (_, account) => {
            state
                .gatehouse
                .console_refused(account.as_ref(), "second factor", &visitor.client_ip)
                .await?;
            Err(WebError::NotAllowed)
        }
    }
}

/// `GET /console/second-factor`: set up an authenticator app, or enter its code.
pub async fn second_factor_page(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let (session, account, enrolling) = match pending(&state, &visitor).await? {
        Ok(p) => p,
        Err(response) => return Ok(response),
    };
    let enrolment = if enrolling {
        state.gatehouse.enrolment(&account).await?
    } else {
        None
    };
    let page = second_factor_view(&state, &session, enrolment.as_ref(), None)?;
    Ok(render(StatusCode::OK, &page))
}

/// The second-factor form.
#[derive(serde::Deserialize)]
pub struct CodeInput {
    #[serde(default)]
    code: String,
}

/// `POST /console/second-factor`
pub async fn second_factor(State(state): State<AppState>, form: CsrfForm<CodeInput>) -> WebResult {
    let CsrfForm {
        form,
        session: _,
        visitor,
    } = form;
    let (session, account, enrolling) = match pending(&state, &visitor).await? {
        Ok(p) => p,
        Err(response) => return Ok(response),
    };
    let g = &state.gatehouse;
    let typed = form.code.trim();
    let error = if typed.is_empty() {
        Some("Enter the 6-digit code from your authenticator app".to_owned())
    } else if typed.chars().count() > 32 {
        Some("Enter the 6-digit code from your authenticator app, or a recovery code".to_owned())
    } else {
        match g
            .check_second_factor(&session, &account, typed, &visitor.client_ip)
            .await?
        {
            CodeOutcome::Passed { recovery_codes } if !recovery_codes.is_empty() => {
                let page = RecoveryCodesPage {
                    l: layout(&state, Some(&session), false),
                    codes: recovery_codes
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect(),
                };
                return Ok(render(StatusCode::OK, &page));
            }
            CodeOutcome::Passed { .. } => return Ok(see_other("/console")),
            CodeOutcome::Wrong { attempts_left } => Some(format!(
                "The code is not right. Check the time on your phone is correct and type the newest code. You have {attempts_left} attempt{} left before your account is locked for {}.",
                if attempts_left == 1 { "" } else { "s" },
                g.settings.policy.lockout.duration.for_people()
            )),
            CodeOutcome::Locked { until } => Some(format!(
                "Your account is locked until {}, because a password or code was entered incorrectly {} times. Nobody can lift the lock early.",
                g.settings.when(until),
                g.settings.policy.lockout.threshold
            )),
        }
    };
    let enrolment = if enrolling {
        g.enrolment(&account).await?
    } else {
        None
    };
    let page = second_factor_view(&state, &session, enrolment.as_ref(), error)?;
    Ok(render(StatusCode::OK, &page))
}

/// The search box.
#[derive(serde::Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
}

/// `GET /console`: find a person; "did the email go out?".
pub async fn home(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<SearchQuery>,
) -> WebResult {
    let p = match privileged(&state, &visitor, "/console").await? {
        Ok(p) => p,
        Err(response) => return Ok(response),
    };
    let typed = query.q.unwrap_or_default();
    let typed = typed.trim().chars().take(256).collect::<String>();
    let results = if typed.is_empty() {
        Vec::new()
    } else {
        state
            .gatehouse
            .store
            .search_accounts(&typed, SEARCH_LIMIT)
            .await
            .map_err(gatehouse_core::Error::from)?
    };
    let page = ConsoleHomePage {
        l: layout(&state, Some(&p.session), false),
        searched: !typed.is_empty(),
        query: typed,
        results,
        limit: SEARCH_LIMIT as usize,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /console/accounts/{username}`
pub async fn account(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    Path(username): Path<String>,
) -> WebResult {
    let p = match privileged(&state, &visitor, "/console/accounts").await? {
        Ok(p) => p,
        Err(response) => return Ok(response),
    };
    let g = &state.gatehouse;
    let Some(status) = g.account_status(&username).await? else {
        return Err(WebError::NotFound);
    };
    let a = &status.account;
    let when = |at: Option<gatehouse_domain::Timestamp>| {
        at.map_or_else(|| "never".to_owned(), |t| g.settings.when(t))
    };
    let rows = vec![
        ("Username".to_owned(), a.username.clone()),
        (
            "Employer".to_owned(),
            format!("{} {}", a.employer_code, a.employer_name),
        ),
        ("Email".to_owned(), a.email.clone()),
        (
            "Employee number".to_owned(),
            a.employee_number
                .clone()
                .unwrap_or_else(|| "none".to_owned()),
        ),
        ("Date of birth".to_owned(), a.date_of_birth.clone()),
        ("Role".to_owned(), a.role.clone()),
        (
            "Password".to_owned(),
            match (&a.password_hash, status.password_disabled) {
                (None, _) => "Never set: first-time access is pending".to_owned(),
                (Some(_), true) => {
                    "Disabled after too many failures: the person must ask for a new email"
                        .to_owned()
                }
                (Some(_), false) => format!("Set {}", when(a.password_changed_at)),
            },
        ),
        (
            "Lock".to_owned(),
            status.locked_until.map_or_else(
                || "Not locked".to_owned(),
                |until| format!("Locked until {}", g.settings.when(until)),
            ),
        ),
        (
            "Failures".to_owned(),
            format!(
                "{} in a row now; {} since the last success or reset",
                status.consecutive_failures, status.total_failures
            ),
        ),
        ("Last sign-in".to_owned(), when(a.last_sign_in_at)),
        ("Active sessions".to_owned(), status.sessions.to_string()),
    ];
    let page = ConsoleAccountPage {
        l: layout(&state, Some(&p.session), false),
        name: format!("{} {}", a.first_name, a.last_name),
        username: a.username.clone(),
        email: a.email.clone(),
        email_query: url::form_urlencoded::byte_serialize(a.email.as_bytes()).collect(),
        locked_until: status.locked_until.map(|u| g.settings.when(u)),
        threshold: g.settings.policy.lockout.threshold,
        rows,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The address to look up.
#[derive(serde::Deserialize)]
pub struct MailQuery {
    #[serde(default)]
    email: String,
}

/// `GET /console/mail?email=…`: did the email go out?
pub async fn mail(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<MailQuery>,
) -> WebResult {
    let p = match privileged(&state, &visitor, "/console/mail").await? {
        Ok(p) => p,
        Err(response) => return Ok(response),
    };
    let typed: String = query.email.trim().chars().take(320).collect();
    if typed.is_empty() {
        return Ok(see_other("/console"));
    }
    let history = state.gatehouse.mail_history(&typed).await?;
    let page = ConsoleMailPage {
        l: layout(&state, Some(&p.session), false),
        email: history.email,
        requests: history.requests,
        emails: history.emails,
    };
    Ok(render(StatusCode::OK, &page))
}

//! Finding a person, their account page and what the helpdesk and
//! administrators do to it, and "did the email go out?".

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gatehouse_core::accounts::EmailChangeRefusal;
use gatehouse_domain::recovery::FieldError;

use crate::AppState;
use crate::csrf::CsrfForm;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::Visitor;
use crate::views::{ConsoleAccountPage, ConsoleHomePage, ConsoleMailPage, render};

use super::{Privileged, SEARCH_LIMIT, WebResult, admin_only, privileged};

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
    let p = or_redirect!(privileged(&state, &visitor, "/console"));
    let typed = query.q.unwrap_or_default();
    let typed = typed.trim().chars().take(256).collect::<String>();
    let results = if typed.is_empty() {
        Vec::new()
    } else {
        state
            .gatehouse
            .find_accounts(&p.actor(), &typed, SEARCH_LIMIT)
            .await?
    };
    let page = ConsoleHomePage {
        l: layout(&state, Some(&p.session), false),
        admin: p.admin(),
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
    let p = or_redirect!(privileged(&state, &visitor, "/console/accounts"));
    let flash = state.gatehouse.take_flash(&p.session).await?;
    account_view(
        &state,
        &p,
        &username,
        Vec::new(),
        flash,
        ActionInput::default(),
    )
    .await
}

/// What was typed into the account page's forms, kept when one is refused.
#[derive(serde::Deserialize, Default, Clone)]
pub struct ActionInput {
    #[serde(default)]
    email: String,
    /// Each form's reason field has its own id (and so name) on the page.
    #[serde(
        default,
        alias = "unlock-reason",
        alias = "disable-reason",
        alias = "sessions-reason"
    )]
    reason: String,
}

async fn account_view(
    state: &AppState,
    p: &Privileged,
    username: &str,
    errors: Vec<FieldError>,
    flash: Option<String>,
    typed: ActionInput,
) -> WebResult {
    let g = &state.gatehouse;
    let status = g.account_status(&p.actor(), username).await?;
    let a = &status.account;
    let when = |at: Option<gatehouse_domain::Timestamp>| {
        at.map_or_else(|| "never".to_owned(), |t| g.settings().when(t))
    };
    // How many passkeys, never the keys (read once the member was allowed
    // to see the account, above).
    let passkeys = g.passkey_count(a.id).await?;
    let mut rows = vec![
        ("Username".to_owned(), a.username.to_string()),
        (
            "Employer".to_owned(),
            format!("{} {}", a.employer_code, a.employer_name),
        ),
        ("Email".to_owned(), a.email.to_string()),
        (
            "Employee number".to_owned(),
            a.employee_number
                .clone()
                .unwrap_or_else(|| "none".to_owned()),
        ),
        ("Date of birth".to_owned(), a.date_of_birth.clone()),
        ("Role".to_owned(), a.role.as_str().to_owned()),
        (
            "Account".to_owned(),
            a.disabled_at.map_or_else(
                || "Enabled".to_owned(),
                |at| format!("Disabled by an administrator at {}", g.settings().when(at)),
            ),
        ),
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
                |until| format!("Locked until {}", g.settings().when(until)),
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
    if g.settings().passkeys || passkeys > 0 {
        rows.push(("Passkeys".to_owned(), passkeys.to_string()));
    }
    let admin = p.admin();
    let page = ConsoleAccountPage {
        sessions: status.sessions,
        l: layout(state, Some(&p.session), !errors.is_empty()),
        csrf: p.session.csrf_token.clone(),
        name: format!("{} {}", a.first_name, a.last_name),
        username: a.username.to_string(),
        email: a.email.to_string(),
        email_query: url::form_urlencoded::byte_serialize(a.email.as_str().as_bytes()).collect(),
        locked_until: status.locked_until.map(|u| g.settings().when(u)),
        threshold: g.settings().policy.lockout.threshold,
        can_unlock: admin && g.settings().allow_early_unlock,
        can_disable: admin,
        disabled: a.disabled_at.is_some(),
        domains: g.settings().allowed_domains.for_people(),
        rows,
        errors,
        flash,
        typed_email: typed.email,
        typed_reason: typed.reason,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/accounts/{username}/{action}`: change the email address
/// (helpdesk and admin), disable, enable or unlock (admin only).
pub async fn account_action(
    State(state): State<AppState>,
    Path((username, action)): Path<(String, String)>,
    form: CsrfForm<ActionInput>,
) -> WebResult {
    let CsrfForm {
        form,
        session: _,
        visitor,
    } = form;
    let what = format!("/console/accounts/{action}");
    let p = if matches!(action.as_str(), "disable" | "enable" | "unlock") {
        or_redirect!(admin_only(&state, &visitor, &what))
    } else {
        or_redirect!(privileged(&state, &visitor, &what))
    };
    let g = &state.gatehouse;
    let who = &p.actor();
    let refusal = match action.as_str() {
        "email" => match g
            .change_email(&username, &form.email, who, &form.reason)
            .await?
        {
            Ok(a) => Ok(format!(
                "{}'s email address is now {}. Their reset links were voided, their sessions ended, and both addresses will be told.",
                a.username, a.email
            )),
            Err(refusal) => Err(match refusal {
                EmailChangeRefusal::BadAddress(why) => FieldError {
                    field: "email",
                    message: format!("Enter an email address in an allowed domain: {why}"),
                },
                EmailChangeRefusal::OtherPerson(_) => FieldError {
                    field: "email",
                    message: sentence(&refusal.to_string()),
                },
                EmailChangeRefusal::Unchanged => FieldError {
                    field: "email",
                    message: "That is already the account's email address".to_owned(),
                },
                EmailChangeRefusal::NoReason => FieldError {
                    field: "reason",
                    message: "Enter why the email address is changing".to_owned(),
                },
            }),
        },
        "disable" | "enable" => match g
            .set_account_disabled(&username, action == "disable", who, &form.reason)
            .await?
        {
            Ok(a) => Ok(format!(
                "{} is now {}.",
                a.username,
                if a.disabled_at.is_some() {
                    "disabled: it cannot sign in or set a password, and its sessions have ended"
                } else {
                    "enabled"
                }
            )),
            Err(refusal) => Err(FieldError {
                field: "disable-reason",
                message: sentence(&refusal.to_string()),
            }),
        },
        "sessions" => match g.end_sessions(&username, who, &form.reason).await? {
            Ok((a, ended)) => Ok(format!(
                "{ended} session{} of {} ended: they must log in again everywhere.",
                if ended == 1 { "" } else { "s" },
                a.username
            )),
            Err(refusal) => Err(FieldError {
                field: "sessions-reason",
                message: sentence(&refusal.to_string()),
            }),
        },
        "unlock" => match g.lift_lock(&username, who, &form.reason).await? {
            Ok(a) => Ok(format!("{}'s lock has been lifted.", a.username)),
            Err(refusal) => Err(FieldError {
                field: "unlock-reason",
                message: sentence(&refusal.to_string()),
            }),
        },
        _ => return Err(WebError::NotFound),
    };
    match refusal {
        Ok(message) => {
            g.set_flash(&p.session, &message).await?;
            let to = format!(
                "/console/accounts/{}",
                url::form_urlencoded::byte_serialize(username.as_bytes()).collect::<String>()
            );
            Ok(see_other(&to))
        }
        Err(error) => account_view(&state, &p, &username, vec![error], None, form).await,
    }
}

/// "give a reason" → "Give a reason".
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().collect::<String>() + chars.as_str()
    })
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
    let p = or_redirect!(privileged(&state, &visitor, "/console/mail"));
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

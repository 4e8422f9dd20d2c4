//! The second factor: setting up an authenticator app, and its code at
//! each sign-in to the console.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_core::privileged::CodeOutcome;
use gatehouse_core::{AccountRecord, SessionRecord};
use gatehouse_domain::recovery::FieldError;

use crate::AppState;
use crate::csrf::CsrfForm;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::Visitor;
use crate::views::{RecoveryCodesPage, SecondFactorPage, render};

use super::{WebResult, pending};

/// The set-up page (while `enrolling`) or the code page, with an error.
async fn second_factor_view(
    state: &AppState,
    session: &SessionRecord,
    account: &AccountRecord,
    enrolling: bool,
    error: Option<String>,
) -> WebResult {
    let enrolment = if enrolling {
        state.gatehouse.enrolment(account).await?
    } else {
        None
    };
    let enrolment = enrolment.as_ref();
    let settings = state.gatehouse.settings();
    let qr_svg = match enrolment {
        Some(e) => qr_svg(&e.uri)?,
        None => String::new(),
    };
    let passkey = state.gatehouse.has_passkeys(account.id).await?;
    let passkey_only = state.gatehouse.passkey_only();
    let page = SecondFactorPage {
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
        passkey,
        passkey_only,
    };
    Ok(render(StatusCode::OK, &page))
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

/// `GET /console/second-factor`: set up an authenticator app, or enter its code.
pub async fn second_factor_page(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> WebResult {
    let (session, account, enrolling) = or_redirect!(pending(&state, &visitor));
    let page = second_factor_view(&state, &session, &account, enrolling, None).await?;
    for_application(&state, &headers, page).await
}

/// A page whose form may end in an application's sign-in: its
/// `form-action` must allow the application's address (see
/// `oidc::AllowFormAction`).
async fn for_application(state: &AppState, headers: &HeaderMap, page: Response) -> WebResult {
    let waiting = crate::oidc::pending_of(state, headers).await?;
    let allow = waiting
        .as_ref()
        .and_then(crate::oidc::AllowFormAction::for_pending);
    Ok(crate::oidc::AllowFormAction::apply(allow, page))
}

/// The second-factor form.
#[derive(serde::Deserialize)]
pub struct CodeInput {
    #[serde(default)]
    code: String,
}

/// `POST /console/second-factor`
pub async fn second_factor(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: CsrfForm<CodeInput>,
) -> WebResult {
    // Once the code passes, an application waiting for the person comes
    // before the console.
    let next = if crate::oidc::pending_of(&state, &headers).await?.is_some() {
        crate::oidc::CONTINUE
    } else {
        "/console"
    };
    let CsrfForm {
        form,
        session: _,
        visitor,
    } = form;
    let (session, account, enrolling) = or_redirect!(pending(&state, &visitor));
    let g = &state.gatehouse;
    let typed = form.code.trim();
    let error = if typed.is_empty() {
        Some("Enter the 6-digit code from your authenticator app".to_owned())
    } else if typed.chars().count() > 32 {
        Some("Enter the 6-digit code from your authenticator app, or a recovery code".to_owned())
    } else {
        match g
            .check_second_factor(&session, &account, typed, &visitor.caller())
            .await?
        {
            CodeOutcome::Passed { recovery_codes } if !recovery_codes.is_empty() => {
                let page = RecoveryCodesPage {
                    l: layout(&state, Some(&session), false),
                    codes: recovery_codes
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect(),
                    next: next.to_owned(),
                };
                return Ok(render(StatusCode::OK, &page));
            }
            CodeOutcome::Passed { .. } => return Ok(see_other(next)),
            CodeOutcome::Wrong { attempts_left } => Some(format!(
                "The code is not right. Check the time on your phone is correct and type the newest code. You have {attempts_left} attempt{} left before your account is locked for {}.",
                if attempts_left == 1 { "" } else { "s" },
                g.settings().policy.lockout.duration.for_people()
            )),
            CodeOutcome::PasskeyOnly => Some(
                "The helpdesk console accepts only a passkey as its second check. Use your passkey.".to_owned(),
            ),
            CodeOutcome::Locked { until } => Some(format!(
                "Your account is locked until {}, because a password or code was entered incorrectly {} times. Nobody can lift the lock early.",
                g.settings().when(until),
                g.settings().policy.lockout.threshold
            )),
        }
    };
    let page = second_factor_view(&state, &session, &account, enrolling, error).await?;
    for_application(&state, &headers, page).await
}

//! The helpdesk console: privileged pages behind a role and a second factor.
//!
//! Every console page starts with [`privileged`], which sends a person who
//! is not signed in to the login page, a privileged person who has not
//! passed the second factor in this session to it, and refuses (403, and an
//! audit record) anyone whose role does not allow the console.

use axum::Extension;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::response::Response;
use gatehouse_core::accounts::EmailChangeRefusal;
use gatehouse_core::administration::ActionRefusal;
use gatehouse_core::audit_log::{AuditQuery, audit_csv};
use gatehouse_core::import::Preview;
use gatehouse_core::privileged::{CodeOutcome, ConsoleAccess};
use gatehouse_core::{Actor, Member};
use gatehouse_domain::Role;
use gatehouse_domain::recovery::FieldError;
use gatehouse_store::{AccountRecord, SessionRecord};

use crate::AppState;
use crate::csrf::CsrfForm;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::Visitor;
use crate::views::{
    ConsoleAccountPage, ConsoleAuditPage, ConsoleHomePage, ConsoleImportPage, ConsoleMailPage,
    RecoveryCodesPage, SecondFactorPage, render,
};

type WebResult = Result<Response, WebError>;

/// What a guard ([`privileged`], [`admin_only`], [`pending`]) allows, or the
/// redirect it asks for, returned from the handler at once.
macro_rules! or_redirect {
    ($guard:expr) => {
        match $guard.await? {
            Ok(allowed) => allowed,
            Err(response) => return Ok(response),
        }
    };
}

/// Most people listed by one search.
const SEARCH_LIMIT: u32 = 50;

/// Who may see a console page: the session, and the member core made of it
/// (whose role core checks again on every action).
struct Privileged {
    session: SessionRecord,
    member: Member,
}

impl Privileged {
    fn actor(&self) -> Actor {
        Actor::Member(self.member.clone())
    }

    fn admin(&self) -> bool {
        self.member.role() == Role::Admin
    }
}

async fn privileged(
    state: &AppState,
    visitor: &Visitor,
    page: &str,
) -> Result<Result<Privileged, Response>, WebError> {
    let Some(session) = visitor.session.clone().filter(|s| s.account_id.is_some()) else {
        return Ok(Err(see_other("/login")));
    };
    let (account, access) = state
        .gatehouse
        .console_access(&session, &visitor.client_ip)
        .await?;
    match (access, account) {
        (ConsoleAccess::Granted(member), Some(_)) => Ok(Ok(Privileged { session, member })),
        (
            ConsoleAccess::MustEnrol | ConsoleAccess::MustVerify | ConsoleAccess::NeedsSetUpLink,
            _,
        ) => Ok(Err(see_other("/console/second-factor"))),
        (_, account) => {
            state
                .gatehouse
                .console_refused(account.as_ref(), page, &visitor.client_ip)
                .await?;
            Err(WebError::NotAllowed)
        }
    }
}

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

/// The signed-in privileged account that must pass the second factor now.
async fn pending(
    state: &AppState,
    visitor: &Visitor,
) -> Result<Result<(SessionRecord, AccountRecord, bool), Response>, WebError> {
    let Some(session) = visitor.session.clone().filter(|s| s.account_id.is_some()) else {
        return Ok(Err(see_other("/login")));
    };
    let (account, access) = state
        .gatehouse
        .console_access(&session, &visitor.client_ip)
        .await?;
    match (access, account) {
        (ConsoleAccess::Granted(_), _) => Ok(Err(see_other("/console"))),
        (ConsoleAccess::MustEnrol, Some(account)) => Ok(Ok((session, account, true))),
        (ConsoleAccess::MustVerify, Some(account)) => Ok(Ok((session, account, false))),
        (ConsoleAccess::NeedsSetUpLink, Some(_)) => Ok(Err(needs_set_up_link(state, &session))),
        (_, account) => {
            state
                .gatehouse
                .console_refused(account.as_ref(), "second factor", &visitor.client_ip)
                .await?;
            Err(WebError::NotAllowed)
        }
    }
}

/// The page for a privileged person who has no authenticator and no set-up
/// link: only the operator can give them one.
fn needs_set_up_link(state: &AppState, session: &SessionRecord) -> Response {
    render(
        StatusCode::OK,
        &crate::views::MessagePage {
            l: layout(state, Some(session), false),
            heading: "Your authenticator app has not been set up".to_owned(),
            paragraphs: vec![
                "The helpdesk console needs a code from an authenticator app as well as your password.".to_owned(),
                "An authenticator app can only be set up through a set-up link from the System Administrator. Ask them for one: it lets you set your password, and then your authenticator app.".to_owned(),
            ],
            reference: None,
            action: Some(("/account".to_owned(), "Go to My account".to_owned())),
        },
    )
}

/// `GET /console/second-factor`: set up an authenticator app, or enter its code.
pub async fn second_factor_page(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let (session, account, enrolling) = or_redirect!(pending(&state, &visitor));
    second_factor_view(&state, &session, &account, enrolling, None).await
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
    let (session, account, enrolling) = or_redirect!(pending(&state, &visitor));
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
                g.settings().policy.lockout.duration.for_people()
            )),
            CodeOutcome::Locked { until } => Some(format!(
                "Your account is locked until {}, because a password or code was entered incorrectly {} times. Nobody can lift the lock early.",
                g.settings().when(until),
                g.settings().policy.lockout.threshold
            )),
        }
    };
    second_factor_view(&state, &session, &account, enrolling, error).await
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
    let Some(status) = g.account_status(&p.actor(), username).await? else {
        return Err(WebError::NotFound);
    };
    let a = &status.account;
    let when = |at: Option<gatehouse_domain::Timestamp>| {
        at.map_or_else(|| "never".to_owned(), |t| g.settings().when(t))
    };
    let rows = vec![
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
                EmailChangeRefusal::NoSuchAccount => return Err(WebError::NotFound),
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
            Err(ActionRefusal::NoSuchAccount) => return Err(WebError::NotFound),
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
            Err(ActionRefusal::NoSuchAccount) => return Err(WebError::NotFound),
            Err(refusal) => Err(FieldError {
                field: "sessions-reason",
                message: sentence(&refusal.to_string()),
            }),
        },
        "unlock" => match g.lift_lock(&username, who, &form.reason).await? {
            Ok(a) => Ok(format!("{}'s lock has been lifted.", a.username)),
            Err(ActionRefusal::NoSuchAccount) => return Err(WebError::NotFound),
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

/// Events shown on the audit page; a download holds up to [`AUDIT_EXPORT_LIMIT`].
const AUDIT_PAGE_LIMIT: u32 = 200;
/// Events in one CSV download.
const AUDIT_EXPORT_LIMIT: u32 = 100_000;

/// The audit page's query: the filters, and whether to download.
#[derive(serde::Deserialize, Default)]
pub struct AuditParams {
    #[serde(flatten)]
    query: AuditQuery,
    #[serde(default)]
    format: String,
}

/// `GET /console/audit`: the audit log with filters; `format=csv` downloads it.
pub async fn audit(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    Query(params): Query<AuditParams>,
) -> WebResult {
    let p = or_redirect!(privileged(&state, &visitor, "/console/audit"));
    let csv = params.format == "csv";
    let limit = if csv {
        AUDIT_EXPORT_LIMIT
    } else {
        AUDIT_PAGE_LIMIT
    };
    let (lines, errors) = match state.gatehouse.audit_log(&params.query, limit).await? {
        Ok(lines) => (lines, Vec::new()),
        Err(errors) => (Vec::new(), errors),
    };
    if csv && errors.is_empty() {
        let body = audit_csv(&lines)?;
        let mut response = (StatusCode::OK, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"gatehouse-audit.csv\""),
        );
        return Ok(response);
    }
    let q = &params.query;
    let csv_query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("username", &q.username)
        .append_pair("event", &q.event)
        .append_pair("actor", &q.actor)
        .append_pair("from", &q.from)
        .append_pair("to", &q.to)
        .append_pair("format", "csv")
        .finish();
    let page = ConsoleAuditPage {
        l: layout(&state, Some(&p.session), !errors.is_empty()),
        query: params.query,
        errors,
        lines,
        limit: AUDIT_PAGE_LIMIT as usize,
        csv_query,
    };
    Ok(render(StatusCode::OK, &page))
}

/// Problems listed on the page when a file is refused (all are counted).
const PROBLEMS_SHOWN: usize = 200;

/// Admin only: anyone else is refused, and the refusal audited.
async fn admin_only(
    state: &AppState,
    visitor: &Visitor,
    what: &str,
) -> Result<Result<Privileged, Response>, WebError> {
    let p = match privileged(state, visitor, what).await? {
        Ok(p) => p,
        Err(response) => return Ok(Err(response)),
    };
    if !p.admin() {
        state
            .gatehouse
            .console_refused(
                None,
                &format!("{} {what}", p.actor().audit_name()),
                &visitor.client_ip,
            )
            .await?;
        return Err(WebError::NotAllowed);
    }
    Ok(Ok(p))
}

fn import_page(p: &Privileged, state: &AppState) -> ConsoleImportPage {
    ConsoleImportPage {
        l: layout(state, Some(&p.session), false),
        csrf: p.session.csrf_token.clone(),
        flash: None,
        errors: Vec::new(),
        file_name: String::new(),
        preview: None,
        staged_id: 0,
        problems: Vec::new(),
        problem_count: 0,
    }
}

/// `GET /console/import`: choose a staff file (admin).
pub async fn import_form(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let p = or_redirect!(admin_only(&state, &visitor, "/console/import"));
    let mut page = import_page(&p, &state);
    page.flash = state.gatehouse.take_flash(&p.session).await?;
    Ok(render(StatusCode::OK, &page))
}

/// The form token and the file (its name and bytes) of an upload.
async fn read_upload(
    multipart: &mut Multipart,
) -> Result<(String, Option<(String, Vec<u8>)>), axum::extract::multipart::MultipartError> {
    let mut token = String::new();
    let mut file = None;
    while let Some(field) = multipart.next_field().await? {
        match field.name() {
            Some("csrf_token") => token = field.text().await?,
            Some("file") => {
                let name = field.file_name().unwrap_or("").chars().take(200).collect();
                file = Some((name, field.bytes().await?.to_vec()));
            }
            _ => {}
        }
    }
    Ok((token, file))
}

/// `POST /console/import` (multipart): check the file and show what would
/// change; nothing is written but the staged file.
pub async fn import_preview(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    headers: axum::http::HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> WebResult {
    // Who is asking is known before the body is read: only an
    // administrator's upload is read at all.
    let p = or_redirect!(admin_only(&state, &visitor, "/console/import"));
    // axum's own answer to a body that is not multipart is plain text
    // naming its internals: this service's 400 page instead.
    let mut multipart = multipart.map_err(|e| WebError::BadRequest(format!("upload: {e}")))?;
    let (token, file) = match read_upload(&mut multipart).await {
        Ok(upload) => upload,
        // Nothing is changed by showing the form again, so no form token
        // is needed to say the file was too big.
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let mut page = import_page(&p, &state);
            page.l.has_error = true;
            page.errors.push(FieldError {
                field: "file",
                message: format!(
                    "The file is larger than {} MiB: load it on the server with gatehouse import",
                    state.upload_limit / (1024 * 1024)
                ),
            });
            return Ok(render(StatusCode::PAYLOAD_TOO_LARGE, &page));
        }
        Err(e) => return Err(WebError::BadRequest(format!("upload: {e}"))),
    };
    let cross_site = !crate::csrf::same_site(&headers, &state);
    crate::csrf::check(&state, &visitor, cross_site, &token, false).await?;
    let mut page = import_page(&p, &state);
    let Some((name, content)) = file.filter(|(_, c)| !c.is_empty()) else {
        page.l.has_error = true;
        page.errors.push(FieldError {
            field: "file",
            message: "Choose a staff file (a CSV file)".to_owned(),
        });
        return Ok(render(StatusCode::OK, &page));
    };
    page.file_name = if name.is_empty() {
        "the file".to_owned()
    } else {
        name.clone()
    };
    match state
        .gatehouse
        .preview_staff_file(&p.actor(), &page.file_name, &content)
        .await?
    {
        Preview::Ready { report, staged_id } => {
            page.staged_id = staged_id;
            page.preview = Some(report.summary);
        }
        Preview::Problems(problems) => {
            page.problem_count = problems.len();
            page.problems = problems
                .iter()
                .take(PROBLEMS_SHOWN)
                .map(ToString::to_string)
                .collect();
        }
    }
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/import/{id}`: import a previewed file.
pub async fn import_apply(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    form: CsrfForm<crate::handlers::NoFields>,
) -> WebResult {
    let p = or_redirect!(admin_only(&state, &form.visitor, "/console/import"));
    let g = &state.gatehouse;
    let Some((name, outcome)) = g.import_staged(&p.actor(), id).await? else {
        g.set_flash(
            &p.session,
            "That preview has expired or was already imported. Choose the file again.",
        )
        .await?;
        return Ok(see_other("/console/import"));
    };
    match outcome {
        Ok(report) => {
            let s = report.summary;
            g.set_flash(
                &p.session,
                &format!(
                    "{name} was imported: {} people added, {} changed, {} already up to date, {} email address change{}.",
                    s.created,
                    s.updated,
                    s.unchanged,
                    s.email_changes.len(),
                    if s.email_changes.len() == 1 { "" } else { "s" }
                ),
            )
            .await?;
            Ok(see_other("/console/import"))
        }
        Err(problems) => {
            // Something changed between the preview and now (another import).
            let mut page = import_page(&p, &state);
            page.file_name = name;
            page.problem_count = problems.len();
            page.problems = problems
                .iter()
                .take(PROBLEMS_SHOWN)
                .map(ToString::to_string)
                .collect();
            Ok(render(StatusCode::OK, &page))
        }
    }
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

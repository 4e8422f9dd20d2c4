//! The pages, as askama templates over plain structs.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_domain::recovery::FieldError;

/// What the page layout needs.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The service's name.
    pub service: String,
    /// The form token for the header's "Log out", when someone is signed in.
    pub signed_in_csrf: Option<String>,
    /// Whether the page shows errors (the title then starts "Error: ").
    pub has_error: bool,
}

impl Layout {
    /// A layout with no one signed in and no errors.
    pub fn plain(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            signed_in_csrf: None,
            has_error: false,
        }
    }
}

/// Renders a page with a status. A template that fails to render (which
/// askama's compile-time checks make unlikely) is a plain-text 500.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, html).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a page template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sorry, there is a problem with the service. Try again later.",
            )
                .into_response()
        }
    }
}

fn error_in<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.message.as_str())
}

/// A heading, some paragraphs, maybe a button: errors and simple notices.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub l: Layout,
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub reference: Option<String>,
    pub action: Option<(String, String)>,
}

/// The home page.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub l: Layout,
    pub domains: String,
    pub ttl: String,
    pub threshold: u32,
    pub lock: String,
}

/// Log in.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub l: Layout,
    pub csrf: String,
    pub username: String,
    pub errors: Vec<FieldError>,
    pub flash: Option<String>,
    pub threshold: u32,
    pub lock: String,
    /// The application this sign-in is for, if one is waiting.
    pub client_name: Option<String>,
    /// A path on this origin to go back to afterwards.
    pub next: String,
    /// Passkeys are turned on: "Sign in with a passkey" is offered.
    pub passkeys: bool,
}

impl LoginPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

/// One registered application, as the console lists it.
pub struct ClientLine {
    pub name: String,
    pub id: String,
    pub kind: String,
    pub redirect_uris: String,
    pub logout_notices: bool,
    pub consent: bool,
    pub state: String,
}

/// The registered applications (admin).
#[derive(Template)]
#[template(path = "console_clients.html")]
pub struct ConsoleClientsPage {
    pub l: Layout,
    pub clients: Vec<ClientLine>,
    pub discovery: String,
}

/// An application asks whether it may sign the person in.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub l: Layout,
    pub csrf: String,
    pub client_name: String,
    pub shared: Vec<String>,
}

/// An application asked to log the person out: are they sure?
#[derive(Template)]
#[template(path = "end_session.html")]
pub struct EndSessionPage {
    pub l: Layout,
    pub csrf: String,
    pub client_name: Option<String>,
    pub client_id: String,
    pub post_logout_redirect_uri: String,
    pub state: String,
}

/// Forgotten | Request Username/Password | Unlock Account.
#[derive(Template)]
#[template(path = "recover.html")]
pub struct RecoverPage {
    pub l: Layout,
    pub csrf: String,
    pub email: String,
    pub day: String,
    pub month: String,
    pub year: String,
    pub username: String,
    pub email_hint: String,
    pub username_hint: String,
    pub errors: Vec<FieldError>,
    pub dob_error: Option<String>,
}

impl RecoverPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

/// Confirmation.
#[derive(Template)]
#[template(path = "confirmation.html")]
pub struct ConfirmationPage {
    pub l: Layout,
    pub ttl: String,
}

/// The reset form.
#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage {
    pub l: Layout,
    pub csrf: String,
    pub first_time: bool,
    pub locked_until: Option<String>,
    /// An operator's set-up link: an authenticator app comes next.
    pub set_up: bool,
    /// A helpdesk or admin account with an authenticator: a code is asked for too.
    pub needs_code: bool,
    /// A helpdesk or admin account whose second factor is a passkey, not
    /// yet used in this browser: the password form waits for it.
    pub needs_passkey: bool,
    pub requirements: Vec<String>,
    pub min_length: usize,
    pub username: String,
    pub errors: Vec<FieldError>,
}

impl ResetPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

/// "This link is no longer valid".
#[derive(Template)]
#[template(path = "link_problem.html")]
pub struct LinkProblemPage {
    pub l: Layout,
    pub heading: String,
    pub paragraphs: Vec<String>,
}

/// My account.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub l: Layout,
    pub csrf: String,
    pub name: String,
    pub username: String,
    pub employer: String,
    pub last_sign_in: String,
    pub flash: Option<String>,
    /// Helpdesk and admin: a way into the console.
    pub console: bool,
    /// Passkeys are turned on: a link to them.
    pub passkeys: bool,
}

/// My account's passkeys: the list, removing one, adding one.
#[derive(Template)]
#[template(path = "passkeys.html")]
pub struct PasskeysPage {
    pub l: Layout,
    pub csrf: String,
    pub flash: Option<String>,
    /// The passkey whose remove form failed (-1 for none).
    pub failed_id: i64,
    /// Why it failed.
    pub error: Option<String>,
    pub passkeys: Vec<gatehouse_core::passkeys::PasskeyLine>,
    pub name_max: usize,
}

/// Change password, signed in.
#[derive(Template)]
#[template(path = "change_password.html")]
pub struct ChangePasswordPage {
    pub l: Layout,
    pub csrf: String,
    pub locked_until: Option<String>,
    pub requirements: Vec<String>,
    pub min_length: usize,
    pub errors: Vec<FieldError>,
}

impl ChangePasswordPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

/// Where you're signed in: devices and applications.
#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage {
    pub l: Layout,
    pub csrf: String,
    pub flash: Option<String>,
    pub sessions: Vec<gatehouse_core::own_account::SignedIn>,
    /// Whether any session is not this one.
    pub others: bool,
    pub applications: Vec<gatehouse_core::own_account::SignedInApplication>,
}

/// Recent activity on the person's own account.
#[derive(Template)]
#[template(path = "activity.html")]
pub struct ActivityPage {
    pub l: Layout,
    pub days: i64,
    pub lines: Vec<gatehouse_core::own_account::ActivityLine>,
}

/// Set up or enter the second factor.
#[derive(Template)]
#[template(path = "second_factor.html")]
pub struct SecondFactorPage {
    pub l: Layout,
    pub csrf: String,
    pub service: String,
    /// While enrolling: the manual key, grouped.
    pub enrol_key: Option<String>,
    /// While enrolling: the QR code, as inline SVG.
    pub qr_svg: String,
    pub errors: Vec<FieldError>,
    pub code_error: Option<String>,
    pub threshold: u32,
    pub lock: String,
    /// The account has a passkey: "Use a passkey" is offered.
    pub passkey: bool,
    /// Only a passkey is accepted (no code form).
    pub passkey_only: bool,
}

/// The recovery codes, shown once.
#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub l: Layout,
    pub codes: Vec<String>,
    /// Where "continue" goes: the console, or an application waiting.
    pub next: String,
}

/// The console's home: find a person, "did the email go out?".
#[derive(Template)]
#[template(path = "console_home.html")]
pub struct ConsoleHomePage {
    pub l: Layout,
    pub admin: bool,
    pub query: String,
    pub searched: bool,
    pub results: Vec<gatehouse_core::AccountRecord>,
    pub limit: usize,
}

/// One account, for the helpdesk.
#[derive(Template)]
#[template(path = "console_account.html")]
pub struct ConsoleAccountPage {
    pub l: Layout,
    pub sessions: i64,
    pub csrf: String,
    pub name: String,
    pub username: String,
    pub email: String,
    pub email_query: String,
    pub locked_until: Option<String>,
    pub threshold: u32,
    pub can_unlock: bool,
    pub can_disable: bool,
    pub disabled: bool,
    pub domains: String,
    pub rows: Vec<(String, String)>,
    pub errors: Vec<FieldError>,
    pub flash: Option<String>,
    pub typed_email: String,
    pub typed_reason: String,
}

impl ConsoleAccountPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

/// Requests and emails for one address.
#[derive(Template)]
#[template(path = "console_mail.html")]
pub struct ConsoleMailPage {
    pub l: Layout,
    pub email: String,
    pub requests: Vec<gatehouse_core::mail_history::RequestLine>,
    pub emails: Vec<gatehouse_core::mail_history::EmailLine>,
}

/// The audit log with its filters.
#[derive(Template)]
#[template(path = "console_audit.html")]
pub struct ConsoleAuditPage {
    pub l: Layout,
    pub query: gatehouse_core::audit_log::AuditQuery,
    pub errors: Vec<FieldError>,
    pub lines: Vec<gatehouse_core::audit_log::AuditLine>,
    pub limit: usize,
    pub csv_query: String,
}

impl ConsoleAuditPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

/// Load the staff file: upload, preview, import.
#[derive(Template)]
#[template(path = "console_import.html")]
pub struct ConsoleImportPage {
    pub l: Layout,
    pub csrf: String,
    pub flash: Option<String>,
    pub errors: Vec<FieldError>,
    pub file_name: String,
    pub preview: Option<gatehouse_core::ImportSummary>,
    pub staged_id: i64,
    pub problems: Vec<String>,
    pub problem_count: usize,
    /// Whether the file is imported as a full one (leavers disabled).
    pub full: bool,
    /// A full import's employers with their leavers and limits.
    pub coverage: Vec<gatehouse_domain::import::EmployerLeavers>,
    /// Why a full import would be (or was) refused, in one sentence.
    pub refusal: Option<String>,
    /// The limit typed for the import, as typed.
    pub max_leavers: String,
    /// What is wrong with the typed limit.
    pub max_error: Option<String>,
}

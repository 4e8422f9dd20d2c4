//! The helpdesk console: privileged pages behind a role and a second factor.
//!
//! Every console page starts with [`privileged`], which sends a person who
//! is not signed in to the login page, a privileged person who has not
//! passed the second factor in this session to it, and refuses (403, and an
//! audit record) anyone whose role does not allow the console.

use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::privileged::ConsoleAccess;
use gatehouse_core::{AccountRecord, SessionRecord};
use gatehouse_core::{Actor, Member};
use gatehouse_domain::Role;

use crate::AppState;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::Visitor;
use crate::views::render;

pub(super) type WebResult = Result<Response, WebError>;

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

mod accounts;
mod audit;
mod clients;
mod import;
mod second_factor;

pub use accounts::{account, account_action, home, mail};
pub use audit::audit;
pub use clients::clients;
pub use import::{import_apply, import_form, import_preview};
pub use second_factor::{second_factor, second_factor_page};

/// Most people listed by one search.
pub(super) const SEARCH_LIMIT: u32 = 50;

/// Who may see a console page: the session, and the member core made of it
/// (whose role core checks again on every action).
pub(super) struct Privileged {
    pub(super) session: SessionRecord,
    pub(super) member: Member,
}

impl Privileged {
    /// The member, as core's actor for the actions they ask for.
    pub(super) fn actor(&self) -> Actor {
        Actor::Member(self.member.clone())
    }

    /// Whether the member is an administrator (the pages only admins see).
    pub(super) fn admin(&self) -> bool {
        self.member.role() == Role::Admin
    }
}

/// The signed-in visitor's session, account and what core says of their
/// console access; the login page for anyone not signed in.
async fn signed_in_access(
    state: &AppState,
    visitor: &Visitor,
) -> Result<Result<(SessionRecord, Option<AccountRecord>, ConsoleAccess), Response>, WebError> {
    let Some(session) = visitor.session.clone().filter(|s| s.account_id.is_some()) else {
        return Ok(Err(see_other("/login")));
    };
    let (account, access) = state
        .gatehouse
        .console_access(&session, &visitor.caller())
        .await?;
    Ok(Ok((session, account, access)))
}

/// The guard of every console page: the login page for a visitor not
/// signed in, the second factor for one who has not passed it in this
/// session, a 403 (audited as `page`) for a role the console is not for.
pub(super) async fn privileged(
    state: &AppState,
    visitor: &Visitor,
    page: &str,
) -> Result<Result<Privileged, Response>, WebError> {
    let (session, account, access) = match signed_in_access(state, visitor).await? {
        Ok(found) => found,
        Err(response) => return Ok(Err(response)),
    };
    match (access, account) {
        (ConsoleAccess::Granted(member), Some(_)) => Ok(Ok(Privileged { session, member })),
        (
            ConsoleAccess::MustEnrol | ConsoleAccess::MustVerify | ConsoleAccess::NeedsSetUpLink,
            _,
        ) => Ok(Err(see_other("/console/second-factor"))),
        (_, account) => {
            state
                .gatehouse
                .console_refused(account.as_ref(), page, &visitor.caller())
                .await?;
            Err(WebError::NotAllowed)
        }
    }
}

/// The signed-in privileged account that must pass the second factor now.
pub(super) async fn pending(
    state: &AppState,
    visitor: &Visitor,
) -> Result<Result<(SessionRecord, AccountRecord, bool), Response>, WebError> {
    let (session, account, access) = match signed_in_access(state, visitor).await? {
        Ok(found) => found,
        Err(response) => return Ok(Err(response)),
    };
    match (access, account) {
        (ConsoleAccess::Granted(_), _) => Ok(Err(see_other("/console"))),
        (ConsoleAccess::MustEnrol, Some(account)) => Ok(Ok((session, account, true))),
        (ConsoleAccess::MustVerify, Some(account)) => Ok(Ok((session, account, false))),
        (ConsoleAccess::NeedsSetUpLink, Some(_)) => Ok(Err(needs_set_up_link(state, &session))),
        (_, account) => {
            state
                .gatehouse
                .console_refused(account.as_ref(), "second factor", &visitor.caller())
                .await?;
            Err(WebError::NotAllowed)
        }
    }
}

/// The page for a privileged person who has no authenticator and no set-up
/// link: only the operator can give them one.
pub(super) fn needs_set_up_link(state: &AppState, session: &SessionRecord) -> Response {
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

/// Admin only: anyone else is refused, and the refusal audited.
pub(super) async fn admin_only(
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
                &visitor.caller(),
            )
            .await?;
        return Err(WebError::NotAllowed);
    }
    Ok(Ok(p))
}

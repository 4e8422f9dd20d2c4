//! Roles, and the set-up links through which helpdesk and admin members get
//! their password and authenticator app: the operator's business alone.
//!
//! A set-up link works like a reset link (it sets the password, once,
//! within the reset link lifetime), and then opens a window of the same
//! length in which the person who used it, signing in with the password
//! they just chose, sets up an authenticator app. The operator hands it over
//! by a channel they trust; it is never emailed. A recovery email's link
//! never opens the window: the mailbox of a privileged account is not proof
//! enough, and until the console refused it a helpdesk member could change
//! an administrator's address and read their reset email.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::reset_link::{LinkPurpose, VoidReason};
use gatehouse_domain::{Role, SecretToken, Timestamp, UsernameKey};
use gatehouse_store::{AccountRecord, NewResetLink, accounts, audit, reset_links, second_factor};

use crate::administration::ActionRefusal;
use crate::{Action, Actor, Error, Gatehouse, Result};

/// A one-time set-up link, shown once to the operator.
#[derive(Debug, Clone)]
pub struct SetUpLink {
    /// The link (it carries the secret token: never logged).
    pub link: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// What a role change did.
#[derive(Debug, Clone)]
pub struct RoleChange {
    /// The account, with its new role.
    pub account: AccountRecord,
    /// A set-up link, when the account is now privileged and has no
    /// authenticator yet.
    pub set_up: Option<SetUpLink>,
}

/// Who `gatehouse admin create-admin` makes.
#[derive(Debug, Clone)]
pub struct NewAdmin {
    /// The employer, as in the staff file (`999 Demo Trust`).
    pub employer: String,
    /// A username, or blank to generate one.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth, as in the staff file.
    pub date_of_birth: String,
    /// Email, in an allowed domain.
    pub email: String,
}

/// What `create_admin` made.
#[derive(Debug, Clone)]
pub struct CreatedAdmin {
    /// The account.
    pub account: AccountRecord,
    /// The set-up link: their password, then their authenticator app.
    pub set_up: SetUpLink,
}

impl Gatehouse {
    /// Whether `account` has a confirmed authenticator.
    async fn has_second_factor(&self, account: &AccountRecord) -> Result<bool> {
        Ok(second_factor::get(&mut *self.read().await?, account.id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some()))
    }

    /// Issues a set-up link for `account`, voiding its other links, with
    /// the audit record `event` (its detail gets the link's expiry).
    async fn issue_set_up_link(
        &self,
        actor: &Actor,
        account: &AccountRecord,
        event: AuditEvent,
        detail: &str,
    ) -> Result<SetUpLink> {
        let now = self.clock.now();
        let expires_at = now.plus(self.settings.policy.reset_link_ttl);
        let token = SecretToken::generate()?;
        let mut tx = self.begin().await?;
        reset_links::void(&mut tx, account.id, VoidReason::Replaced, now, None).await?;
        reset_links::insert(
            &mut tx,
            &NewResetLink {
                account_id: account.id,
                hash: &token.hash(),
                purpose: LinkPurpose::SetUp,
                recovery_request_id: None,
                now,
                expires_at,
            },
        )
        .await?;
        let detail = format!(
            "{detail}set-up link issued, valid until {}",
            expires_at.rfc3339()
        );
        audit::record(&mut tx, &self.action(event, actor, account, detail)).await?;
        tx.commit().await?;
        Ok(SetUpLink {
            link: self.settings.link(&format!("/reset/{}", token.encode())),
            expires_at,
        })
    }

    /// Sets the role of the account with this username (the operator's
    /// task); [`Error::NoSuchAccount`] if there is none. Audited with the
    /// actor and the old role. An account made helpdesk or admin that has
    /// no authenticator gets a set-up link.
    pub async fn set_role(&self, username: &str, role: Role, actor: &Actor) -> Result<RoleChange> {
        let key = UsernameKey::from_typed(username);
        let Some(account) = accounts::by_username(&mut *self.read().await?, &key).await? else {
            return Err(Error::NoSuchAccount);
        };
        self.authorise(actor, Action::ManagePrivilege, Some(&account))
            .await?;
        let now = self.clock.now();
        if account.role != role {
            accounts::set_role(&mut *self.write().await?, account.id, role, now).await?;
            let detail = format!("{} -> {}", account.role.as_str(), role.as_str());
            self.audit(&self.action(AuditEvent::RoleChanged, actor, &account, detail))
                .await?;
        }
        let set_up = if role != Role::Staff && !self.has_second_factor(&account).await? {
            Some(
                self.issue_set_up_link(actor, &account, AuditEvent::SetUpLinkIssued, "")
                    .await?,
            )
        } else {
            None
        };
        let account = accounts::by_id(&mut *self.read().await?, account.id)
            .await?
            .ok_or(Error::NoSuchAccount)?;
        Ok(RoleChange { account, set_up })
    }

    /// Creates (or promotes, if the staff file already has this person) an
    /// administrator, and issues a set-up link, so no password is ever
    /// typed on a command line. `Ok(Err(problems))` when the details are
    /// not valid, in the staff file's words.
    pub async fn create_admin(
        &self,
        admin: &NewAdmin,
        actor: &Actor,
    ) -> Result<std::result::Result<CreatedAdmin, Vec<String>>> {
        self.authorise(actor, Action::ManagePrivilege, None).await?;
        // Through the staff file's own reader and planner, so an
        // administrator is validated, named and matched like anyone else.
        let mut writer = csv::Writer::from_writer(Vec::new());
        for record in [
            [
                "employer",
                "username",
                "first_name",
                "last_name",
                "date_of_birth",
                "email",
                "employee_number",
                "role",
            ],
            [
                &admin.employer,
                &admin.username,
                &admin.first_name,
                &admin.last_name,
                &admin.date_of_birth,
                &admin.email,
                "",
                "admin",
            ],
        ] {
            writer
                .write_record(record)
                .map_err(|e| Error::render("the administrator's staff file row", e))?;
        }
        let file = writer
            .into_inner()
            .map_err(|e| Error::render("the administrator's staff file row", e))?;
        let report = match self.import_staff(file.as_slice(), false, actor).await? {
            Ok(report) => report,
            Err(rows) => return Ok(Err(rows.iter().map(|r| r.reason.clone()).collect())),
        };
        let username = match report.generated.first() {
            Some((_, generated)) => generated.clone(),
            None if !admin.username.trim().is_empty() => admin.username.trim().to_owned(),
            None => {
                // The person was already on file: find them as the import
                // did, by email address and date of birth.
                let email = admin.email.trim().to_ascii_lowercase();
                let found = accounts::for_recovery(
                    &mut *self.read().await?,
                    &email,
                    &normalise_date(&admin.date_of_birth),
                    None,
                )
                .await?;
                match found.into_iter().find(|a| a.role == Role::Admin) {
                    Some(a) => a.username.to_string(),
                    None => {
                        return Ok(Err(vec![
                            "the person could not be found after the import".to_owned(),
                        ]));
                    }
                }
            }
        };
        let Some(account) = accounts::by_username(
            &mut *self.read().await?,
            &UsernameKey::from_typed(&username),
        )
        .await?
        else {
            return Ok(Err(vec![format!("no account has the username {username}")]));
        };
        let set_up = self
            .issue_set_up_link(actor, &account, AuditEvent::AdminCreated, "")
            .await?;
        Ok(Ok(CreatedAdmin { account, set_up }))
    }

    /// Clears a privileged account's authenticator and recovery codes (a
    /// lost phone with no codes left), ends its sessions, and issues a
    /// set-up link through which its owner sets a new password and a new
    /// authenticator. Audited with the actor and reason.
    pub async fn reset_second_factor(
        &self,
        username: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<std::result::Result<(AccountRecord, SetUpLink), ActionRefusal>> {
        let account = match self
            .action_target(actor, Action::ManagePrivilege, username, reason)
            .await?
        {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if account.role == Role::Staff {
            return Ok(Err(ActionRefusal::NotPrivileged));
        }
        let mut tx = self.begin().await?;
        second_factor::clear(&mut tx, account.id).await?;
        let now = self.clock.now();
        let notice = crate::security_notices::SecurityNotice::SecondFactorReset;
        self.queue_security_notice(&mut tx, &account, &notice, None, now)
            .await?;
        tx.commit().await?;
        self.wake_outbox();
        let detail = format!("reason: {}; ", reason.trim());
        let set_up = self
            .issue_set_up_link(actor, &account, AuditEvent::SecondFactorReset, &detail)
            .await?;
        Ok(Ok((account, set_up)))
    }
}

/// `DD/MM/YYYY` or `YYYY-MM-DD` as stored (`YYYY-MM-DD`).
fn normalise_date(text: &str) -> String {
    let t = text.trim();
    match t.split('/').collect::<Vec<_>>().as_slice() {
        [d, m, y] => format!("{y}-{m:0>2}-{d:0>2}"),
        _ => t.to_owned(),
    }
}

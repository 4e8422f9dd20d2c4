//! `gatehouse import`: loading the staff file.
//!
//! The whole file is read and checked, then planned against what is stored,
//! then written in one transaction. Any bad row means nothing is written.

use std::io::Read;

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::import::{ImportPlan, RowError, plan_import, read_staff_file};
use gatehouse_domain::{Role, Username};
use gatehouse_store::{ImportSummary, accounts, audit, import, outbox};

use crate::{Action, Actor, Gatehouse, Result};

/// How long a staff file previewed in the console waits for "Import".
pub const STAGED_IMPORT_LIFETIME: gatehouse_domain::Span = gatehouse_domain::Span::hours(1);

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Counts and email changes.
    pub summary: ImportSummary,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The usernames generated for new people, with their source lines.
    pub generated: Vec<(u64, String)>,
}

fn summarise(plan: &ImportPlan) -> ImportSummary {
    ImportSummary {
        employers_created: plan
            .employers
            .iter()
            .filter(|e| e.existing_id.is_none())
            .count(),
        employers_renamed: plan
            .employers
            .iter()
            .filter(|e| e.existing_id.is_some())
            .count(),
        created: plan.creates.len(),
        updated: plan.updates.len(),
        unchanged: plan.unchanged,
        email_changes: plan
            .updates
            .iter()
            .filter_map(|u| {
                u.old_email
                    .as_ref()
                    .map(|old| gatehouse_store::EmailChange {
                        account_id: u.id,
                        username: u.username.clone(),
                        old_email: gatehouse_domain::EmailAddress::from_trusted(old.clone()),
                        new_email: u.row.email.clone(),
                    })
            })
            .collect(),
    }
}

impl Gatehouse {
    /// Imports a staff file (an administrator's or the operator's task).
    /// `Ok(Err(rows))` lists every problem; nothing was written.
    pub async fn import_staff(
        &self,
        file: impl Read,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<Result<ImportReport, Vec<RowError>>> {
        self.authorise(actor, Action::ImportStaff, None).await?;
        let now = self.clock.now();
        let rows = match read_staff_file(
            file,
            self.settings.today(now),
            &self.settings.allowed_domains,
        ) {
            Ok(rows) => rows,
            Err(errors) => return Ok(Err(errors)),
        };
        let (employers, accounts) = import::index(&mut *self.read().await?).await?;
        let plan = match plan_import(rows, &employers, &accounts) {
            Ok(plan) => plan,
            Err(errors) => return Ok(Err(errors)),
        };
        let generated = plan
            .creates
            .iter()
            .filter(|c| c.generated)
            .map(|c| (c.line, c.username.to_string()))
            .collect();
        if dry_run {
            return Ok(Ok(ImportReport {
                summary: summarise(&plan),
                dry_run: true,
                generated,
            }));
        }
        // Each role the file changes is audited on its account, as
        // `gatehouse admin grant` does: a file can make someone an admin.
        let role_changes: Vec<(&Username, &str, Role)> = plan
            .updates
            .iter()
            .filter_map(|u| Some((&u.username, u.old_role?.as_str(), u.row.role?)))
            .chain(plan.creates.iter().filter_map(|c| {
                let role = c.row.role.filter(|r| *r != Role::Staff)?;
                Some((&c.username, "new account", role))
            }))
            .collect();
        let mut tx = self.begin().await?;
        let summary = import::apply(&mut tx, &plan, now).await?;
        for (username, old, new) in &role_changes {
            if let Some(account) = accounts::by_username(&mut tx, &username.key()).await? {
                let detail = format!("{old} -> {}; by a staff file import", new.as_str());
                let event = self.action(AuditEvent::RoleChanged, actor, &account, detail);
                audit::record(&mut tx, &event).await?;
            }
        }
        for change in &summary.email_changes {
            if let Some(account) = accounts::by_id(&mut tx, change.account_id).await? {
                for email in
                    self.email_change_notices(&account, &change.old_email, &change.new_email, now)?
                {
                    outbox::enqueue(&mut tx, &email, now).await?;
                }
                let detail = "changed by a staff file import".to_owned();
                let event = self.action(AuditEvent::EmailChanged, actor, &account, detail);
                audit::record(&mut tx, &event).await?;
            }
        }
        let mut event = self.event(AuditEvent::StaffImported);
        event.actor = Some(actor.audit_name());
        event.client_ip = actor.client_ip().map(str::to_owned);
        event.detail = Some(format!(
            "{} created, {} updated, {} unchanged, {} employer(s) added",
            summary.created, summary.updated, summary.unchanged, summary.employers_created
        ));
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        if !summary.email_changes.is_empty() {
            self.outbox_wake.notify_one();
        }
        Ok(Ok(ImportReport {
            summary,
            dry_run: false,
            generated,
        }))
    }
}

/// What previewing an uploaded staff file found.
#[derive(Debug, Clone)]
pub enum Preview {
    /// The file is good: what it would change, and the number under which
    /// it waits for "Import" (an hour at most, for its uploader only).
    Ready {
        /// What it would change.
        report: ImportReport,
        /// The staged file's number.
        staged_id: i64,
    },
    /// Every problem in the file; nothing is kept.
    Problems(Vec<RowError>),
}

impl Gatehouse {
    /// Checks an uploaded staff file and says what it would change, keeping
    /// the file for its uploader to import after the preview (a console
    /// member's task: the operator imports with `gatehouse import`).
    pub async fn preview_staff_file(
        &self,
        actor: &Actor,
        file_name: &str,
        content: &[u8],
    ) -> Result<Preview> {
        let report = match self.import_staff(content, true, actor).await? {
            Ok(report) => report,
            Err(problems) => return Ok(Preview::Problems(problems)),
        };
        let uploader = actor.account_id().ok_or_else(|| {
            crate::Error::Internal("only a console member stages a staff file".to_owned())
        })?;
        let staged_id = import::stage(
            &mut *self.write().await?,
            uploader,
            file_name,
            content,
            self.clock.now(),
        )
        .await?;
        Ok(Preview::Ready { report, staged_id })
    }

    /// Imports the staged file `id` its uploader previewed: its name and
    /// the import's outcome, or `None` when the preview has expired or was
    /// imported already. The file is forgotten either way.
    pub async fn import_staged(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<Option<(String, std::result::Result<ImportReport, Vec<RowError>>)>> {
        self.authorise(actor, Action::ImportStaff, None).await?;
        let Some(uploader) = actor.account_id() else {
            return Ok(None);
        };
        let since = self.clock.now().minus(STAGED_IMPORT_LIFETIME);
        let Some((name, content)) =
            import::staged(&mut *self.read().await?, id, uploader, since).await?
        else {
            return Ok(None);
        };
        let outcome = self.import_staff(content.as_slice(), false, actor).await?;
        import::drop_staged(&mut *self.write().await?, Some(id), since).await?;
        Ok(Some((name, outcome)))
    }
}

//! `gatehouse import`: loading the staff file.
//!
//! The whole file is read and checked, then planned against what is stored,
//! then written in one transaction. Any bad row means nothing is written.

use std::io::Read;

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::import::{ImportPlan, RowError, plan_import, read_staff_file};
use gatehouse_store::ImportSummary;

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
                        username: u.username.to_string(),
                        old_email: old.clone(),
                        new_email: u.row.email.to_string(),
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
        let (employers, accounts) = self.store.import_index().await?;
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
        let role_changes: Vec<(String, String, String)> = plan
            .updates
            .iter()
            .filter_map(|u| {
                let old = u.old_role.as_ref()?;
                let new = u.row.role?;
                Some((u.username.to_string(), old.clone(), new.as_str().to_owned()))
            })
            .chain(plan.creates.iter().filter_map(|c| {
                let role = c.row.role.filter(|r| *r != gatehouse_domain::Role::Staff)?;
                Some((
                    c.username.to_string(),
                    "new account".to_owned(),
                    role.as_str().to_owned(),
                ))
            }))
            .collect();
        let mut tx = self.store.begin().await?;
        let summary = tx.apply_import(&plan, now).await?;
        for (username, old, new) in &role_changes {
            let key = gatehouse_domain::UsernameKey::from_typed(username);
            if let Some(account) = tx.account_by_username(&key).await? {
                let detail = format!("{old} -> {new}; by a staff file import");
                tx.audit(&self.action(AuditEvent::RoleChanged, actor, &account, detail))
                    .await?;
            }
        }
        for change in &summary.email_changes {
            if let Some(account) = tx.account_by_id(change.account_id).await? {
                for email in
                    self.email_change_notices(&account, &change.old_email, &change.new_email, now)?
                {
                    tx.enqueue_email(&email, now).await?;
                }
                let detail = "changed by a staff file import".to_owned();
                tx.audit(&self.action(AuditEvent::EmailChanged, actor, &account, detail))
                    .await?;
            }
        }
        let mut event = self.event(AuditEvent::StaffImported);
        event.actor = Some(actor.audit_name());
        event.client_ip = actor.client_ip().map(str::to_owned);
        event.detail = Some(format!(
            "{} created, {} updated, {} unchanged, {} employer(s) added",
            summary.created, summary.updated, summary.unchanged, summary.employers_created
        ));
        tx.audit(&event).await?;
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

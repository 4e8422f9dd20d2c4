//! `gatehouse import`: loading the staff file.
//!
//! The file is read and checked row by row into scratch tables, then
//! planned against what is stored and written a few employers at a time
//! (`parts`), all in one transaction: memory holds one part, whatever the
//! file's size. Any bad row means nothing is written.
//! A full import also disables the people of its employers who are missing
//! from the file, in the same transaction, unless there are more of them
//! than the safety limit allows, when nothing is written either.

mod parts;
mod staged;

use std::io::Read;

use gatehouse_domain::Timestamp;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::import::{EmployerLeavers, FullImport, RowError};
use gatehouse_store::import::ImportScratch;
use gatehouse_store::{AuditRecord, ImportSummary, Tx, accounts, audit, import, outbox};

use crate::{Action, Actor, Error, Gatehouse, Result};

pub use staged::Preview;

/// How long a staff file previewed in the console waits for "Import".
pub const STAGED_IMPORT_LIFETIME: gatehouse_domain::Span = gatehouse_domain::Span::hours(1);

/// How to import a staff file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Check the file and say what would change, writing nothing.
    pub dry_run: bool,
    /// A full import: the file lists every member of staff of its
    /// employers, and anyone of theirs missing from it is disabled.
    pub full: Option<FullImport>,
    /// How many rows are planned together (whole employers at a time);
    /// `None`: 25,000. Memory grows with it; smaller parts mean more
    /// round trips to the database.
    pub part_rows: Option<usize>,
}

/// Why an import changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportRefusal {
    /// Every problem in the file (or in the employers a full import names).
    Problems(Vec<RowError>),
    /// A full import would disable more people of these employers than
    /// their safety limit allows.
    TooManyLeavers(Vec<EmployerLeavers>),
}

/// "a full import would disable 40 of the 120 enabled people of employer 432
/// (Community Health NHS Trust), more than its limit of 6".
pub fn too_many_leavers(over: &[EmployerLeavers]) -> String {
    let parts: Vec<String> = over
        .iter()
        .map(|e| {
            format!(
                "{} of the {} enabled people of employer {} ({}), more than its limit of {}",
                e.leavers, e.enabled, e.code, e.name, e.limit
            )
        })
        .collect();
    format!("a full import would disable {}", parts.join(", and "))
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Counts and email changes, leavers and returners.
    pub summary: ImportSummary,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The usernames generated for new people, with their source lines
    /// (the first thousand).
    pub generated: Vec<(u64, String)>,
    /// For a full import, each employer it covers with its leavers and limit.
    pub coverage: Vec<EmployerLeavers>,
}

impl ImportReport {
    /// Whether this was (or would be) a full import.
    pub fn full(&self) -> bool {
        !self.coverage.is_empty()
    }

    /// The covered employers over their limit: a dry run that would be
    /// refused says so.
    pub fn over_limit(&self) -> Vec<EmployerLeavers> {
        self.coverage
            .iter()
            .filter(|c| c.over_limit())
            .cloned()
            .collect()
    }
}

impl Gatehouse {
    /// Imports a staff file (an administrator's or the operator's task),
    /// leaving people missing from it alone. `Ok(Err(rows))` lists every
    /// problem; nothing was written.
    pub async fn import_staff(
        &self,
        file: impl Read,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<std::result::Result<ImportReport, Vec<RowError>>> {
        let options = ImportOptions {
            dry_run,
            ..ImportOptions::default()
        };
        match self.import_staff_with(file, &options, actor).await? {
            Ok(report) => Ok(Ok(report)),
            Err(ImportRefusal::Problems(rows)) => Ok(Err(rows)),
            Err(ImportRefusal::TooManyLeavers(_)) => Err(Error::Internal(
                "an import that is not full found leavers".to_owned(),
            )),
        }
    }

    /// Imports a staff file as `options` say: a dry run writes nothing, and
    /// a full import also disables the people of its employers missing
    /// from the file (their sessions and applications' grants end, their
    /// reset links are voided, each is audited), all in one transaction
    /// with the rest. `Ok(Err(refusal))`: nothing was written.
    pub async fn import_staff_with(
        &self,
        file: impl Read,
        options: &ImportOptions,
        actor: &Actor,
    ) -> Result<std::result::Result<ImportReport, ImportRefusal>> {
        self.authorise(actor, Action::ImportStaff, None).await?;
        let now = self.clock.now();
        // Whoever imports is never their own leaver, whatever the caller said.
        let full = options.full.clone().map(|full| FullImport {
            importer: actor.account_id(),
            ..full
        });
        // One transaction from the first row read to the last written: a
        // dry run, a file with problems or a refused full import rolls it
        // all back, so a file imports whole or not at all.
        let mut tx = self.begin().await?;
        let mut scratch = ImportScratch::open(&self.store, &mut tx, now).await?;
        let outcome = self
            .import_in(
                &mut tx,
                &mut scratch,
                file,
                options,
                full.as_ref(),
                actor,
                now,
            )
            .await;
        let commit = matches!(&outcome, Ok(Ok(report)) if !report.dry_run);
        scratch.finish(tx, commit).await?;
        let outcome = outcome?;
        if let Ok(report) = &outcome
            && commit
        {
            if !report.summary.email_changes.is_empty() {
                self.outbox_wake.notify_one();
            }
            if !report.summary.leavers.is_empty() {
                self.wake_logout_notices();
            }
        }
        Ok(outcome)
    }

    /// [`Gatehouse::import_staff_with`] in its transaction.
    #[allow(clippy::too_many_arguments)]
    async fn import_in(
        &self,
        tx: &mut Tx,
        scratch: &mut ImportScratch,
        file: impl Read,
        options: &ImportOptions,
        full: Option<&FullImport>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<std::result::Result<ImportReport, ImportRefusal>> {
        let today = self.settings.today(now);
        let staged = match self
            .stage_and_plan(tx, scratch, file, full, options.part_rows, now)
            .await?
        {
            Ok(staged) => staged,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let parts::Staged {
            mut summary,
            generated,
            coverage,
            role_changes,
            to_add,
        } = staged;
        if options.dry_run {
            return Ok(Ok(ImportReport {
                summary,
                dry_run: true,
                generated,
                coverage,
            }));
        }
        let over: Vec<EmployerLeavers> = coverage
            .iter()
            .filter(|c| c.over_limit())
            .cloned()
            .collect();
        if !over.is_empty() {
            return Ok(Err(ImportRefusal::TooManyLeavers(over)));
        }
        let started = std::time::Instant::now();
        let added = import::add_staged_accounts(tx, scratch, to_add, now).await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis(),
            added,
            "import: new accounts written"
        );
        summary.created = usize::try_from(added).unwrap_or(usize::MAX);
        // Each role the file changes is audited on its account, as
        // `gatehouse admin grant` does: a file can make someone an admin.
        for (username, old, new) in &role_changes {
            if let Some(account) = accounts::by_username(tx, &username.key()).await? {
                let detail = format!("{old} -> {}; by a staff file import", new.as_str());
                let event = self.action(AuditEvent::RoleChanged, actor, &account, detail);
                audit::record(tx, &event).await?;
            }
        }
        for change in &summary.email_changes {
            if let Some(account) = accounts::by_id(tx, change.account_id).await? {
                for email in
                    self.email_change_notices(&account, &change.old_email, &change.new_email, now)?
                {
                    outbox::enqueue(tx, &email, now).await?;
                }
                let detail = "changed by a staff file import".to_owned();
                let event = self.action(AuditEvent::EmailChanged, actor, &account, detail);
                audit::record(tx, &event).await?;
            }
        }
        // Each leaver and returner is audited on their account, as a
        // disabling or enabling by hand is, with the file's date as reason
        // (written together: a transfer can make tens of thousands).
        let moved = |event, reason: &str, people: Vec<(i64, &str)>| -> Vec<AuditRecord> {
            people
                .into_iter()
                .map(|(id, username)| AuditRecord {
                    detail: Some(format!("reason: {reason} the staff file of {today}")),
                    ..self.on_account(event, actor, id, username)
                })
                .collect()
        };
        let leavers = summary.leavers.iter().map(|l| (l.id, l.username.as_str()));
        audit::record_many(
            tx,
            &moved(AuditEvent::AccountDisabled, "not in", leavers.collect()),
        )
        .await?;
        let returners = summary
            .returners
            .iter()
            .map(|r| (r.id, r.username.as_str()));
        audit::record_many(
            tx,
            &moved(AuditEvent::AccountEnabled, "back in", returners.collect()),
        )
        .await?;
        let mut event = self.event(AuditEvent::StaffImported);
        event.actor = Some(actor.audit_name());
        event.client_ip = actor.client_ip().map(str::to_owned);
        event.detail = Some(format!(
            "{} created, {} updated, {} unchanged, {} employer(s) added{}",
            summary.created,
            summary.updated,
            summary.unchanged,
            summary.employers_created,
            leavers_detail(&summary, full.is_some()),
        ));
        audit::record(tx, &event).await?;
        Ok(Ok(ImportReport {
            summary,
            dry_run: false,
            generated,
            coverage,
        }))
    }

    /// An audit record of `event` done by `actor` to the account `id`
    /// named `username`, with no detail yet.
    fn on_account(&self, event: AuditEvent, actor: &Actor, id: i64, username: &str) -> AuditRecord {
        AuditRecord {
            actor: Some(actor.audit_name()),
            client_ip: actor.client_ip().map(str::to_owned),
            account_id: Some(id),
            username: Some(username.to_owned()),
            ..self.event(event)
        }
    }
}

/// The end of the `staff.imported` detail: leavers and returners, when
/// there are any or the import was full.
fn leavers_detail(summary: &ImportSummary, full: bool) -> String {
    let mut detail = String::new();
    if full {
        detail.push_str(&format!(
            ", full: {} disabled as not in the file",
            summary.leavers.len()
        ));
    }
    if !summary.returners.is_empty() {
        detail.push_str(&format!(
            ", {} enabled as back in the file",
            summary.returners.len()
        ));
    }
    detail
}

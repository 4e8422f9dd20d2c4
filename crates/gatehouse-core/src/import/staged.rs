//! Staff files uploaded in the console: previewed, kept for their
//! uploader, then imported.

use gatehouse_domain::import::{FullImport, RowError};
use gatehouse_store::import;

use super::{ImportOptions, ImportRefusal, ImportReport, STAGED_IMPORT_LIFETIME};
use crate::{Action, Actor, Gatehouse, Result};

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
    /// Checks an uploaded staff file and says what it would change (with
    /// `full`, also who would be disabled for missing from it), keeping
    /// the file for its uploader to import after the preview (a console
    /// member's task: the operator imports with `gatehouse import`).
    pub async fn preview_staff_file(
        &self,
        actor: &Actor,
        file_name: &str,
        content: &[u8],
        full: Option<FullImport>,
    ) -> Result<Preview> {
        let options = ImportOptions {
            dry_run: true,
            full,
            ..ImportOptions::default()
        };
        let report = match self.import_staff_with(content, &options, actor).await? {
            Ok(report) => report,
            Err(ImportRefusal::Problems(problems)) => return Ok(Preview::Problems(problems)),
            Err(ImportRefusal::TooManyLeavers(_)) => {
                return Err(crate::Error::Internal(
                    "a dry run was refused for its leavers".to_owned(),
                ));
            }
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

    /// Imports the staged file `id` its uploader previewed (with `full`, as
    /// a full import): its name and the import's outcome, or `None` when
    /// the preview has expired or was imported already. The file is
    /// forgotten once imported or refused for its rows; a full import
    /// refused for too many leavers keeps it, so that the administrator can
    /// raise the limit and import it without choosing it again.
    pub async fn import_staged(
        &self,
        actor: &Actor,
        id: i64,
        full: Option<FullImport>,
    ) -> Result<Option<(String, std::result::Result<ImportReport, ImportRefusal>)>> {
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
        let options = ImportOptions {
            dry_run: false,
            full,
            ..ImportOptions::default()
        };
        let outcome = self
            .import_staff_with(content.as_slice(), &options, actor)
            .await?;
        if !matches!(outcome, Err(ImportRefusal::TooManyLeavers(_))) {
            import::drop_staged(&mut *self.write().await?, Some(id), since).await?;
        }
        Ok(Some((name, outcome)))
    }
}

//! Backups of the embedded SQLite database, taken while the service runs,
//! and putting one back. PostgreSQL has its own, better tools (pg_dump,
//! continuous archiving: docs/deploy.md).

use std::path::{Path, PathBuf};

use gatehouse_domain::audit::AuditEvent;
use gatehouse_store::{PoolSettings, SchemaState, SqlStore, backend_of};

use crate::{Error, Gatehouse, Result};

/// Why a backup or a restore was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupRefusal {
    /// The backup's path is taken: a backup never overwrites a file.
    Exists(PathBuf),
    /// The backup file is not there.
    Missing(PathBuf),
    /// The database is PostgreSQL.
    NotSqlite,
    /// The database file is there, and `--replace` was not given.
    DatabaseExists(PathBuf),
    /// The file is not a whole Gatehouse database this build can use.
    Unusable(String),
}

impl std::fmt::Display for BackupRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupRefusal::Exists(p) => {
                write!(f, "{} exists already: choose a new file", p.display())
            }
            BackupRefusal::Missing(p) => write!(f, "{} does not exist", p.display()),
            BackupRefusal::NotSqlite => f.write_str(
                "GATEHOUSE_DATABASE_URL is PostgreSQL: back it up with pg_dump or continuous archiving (docs/deploy.md)",
            ),
            BackupRefusal::DatabaseExists(p) => write!(
                f,
                "the database {} exists: stop the service, then run restore again with --replace to move it aside",
                p.display()
            ),
            BackupRefusal::Unusable(why) => f.write_str(why),
        }
    }
}

/// A restored database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Its schema version once restored (an older backup is migrated).
    pub schema_version: i64,
    /// Where the database it replaced was moved, if there was one.
    pub moved_aside: Option<PathBuf>,
}

/// The file of a `sqlite://` URL.
fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    if backend_of(database_url) != Some(gatehouse_store::Backend::Sqlite) {
        return None;
    }
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let file = path.split_once('?').map_or(path, |(file, _)| file);
    Some(PathBuf::from(file))
}

/// `path` with `suffix` after its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl Gatehouse {
    /// Writes a consistent copy of the SQLite database to the new file
    /// `path` while sign-ins go on; refuses a path that exists. Audited.
    pub async fn back_up(&self, path: &Path) -> Result<std::result::Result<u64, BackupRefusal>> {
        if self.store.backend() != gatehouse_store::Backend::Sqlite {
            return Ok(Err(BackupRefusal::NotSqlite));
        }
        if path.exists() {
            return Ok(Err(BackupRefusal::Exists(path.to_owned())));
        }
        let text = path
            .to_str()
            .ok_or_else(|| Error::Internal("the backup path is not UTF-8".to_owned()))?;
        if let Err(e) = self.store.back_up_into(text).await {
            // What a failed copy left is not a backup.
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        let bytes = std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| Error::Internal(format!("the backup {text} cannot be read: {e}")))?;
        let mut event = self.event(AuditEvent::BackupTaken);
        event.actor = Some("backup (command line)".to_owned());
        event.detail = Some(format!("{text}, {bytes} bytes"));
        self.audit(&event).await?;
        Ok(Ok(bytes))
    }
}

/// Puts the backup `backup` in place as the database of `database_url`
/// (SQLite only), with the service stopped: the file is copied beside the
/// database, checked whole (`PRAGMA integrity_check`) and of a schema this
/// build knows (an older one is migrated), and only then renamed into
/// place. A database already there is refused unless `replace`, which
/// moves it (and its WAL files) aside first.
pub async fn restore(
    backup: &Path,
    database_url: &str,
    replace: bool,
    now: gatehouse_domain::Timestamp,
) -> Result<std::result::Result<Restored, BackupRefusal>> {
    let Some(target) = sqlite_file(database_url) else {
        return Ok(Err(BackupRefusal::NotSqlite));
    };
    if !backup.is_file() {
        return Ok(Err(BackupRefusal::Missing(backup.to_owned())));
    }
    if target.exists() && !replace {
        return Ok(Err(BackupRefusal::DatabaseExists(target)));
    }
    let io = |what: &str, e: std::io::Error| Error::Internal(format!("{what}: {e}"));
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create the database's folder", e))?;
    }
    let staged = beside(&target, ".restoring");
    // A restore that stopped part-way may have left its copy.
    let cleanup = || {
        for leftover in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(beside(&staged, leftover));
        }
    };
    cleanup();
    std::fs::copy(backup, &staged).map_err(|e| io("cannot copy the backup", e))?;
    let version = match check(&staged).await {
        Ok(Ok(version)) => version,
        Ok(Err(refusal)) => {
            cleanup();
            return Ok(Err(refusal));
        }
        Err(e) => {
            cleanup();
            return Err(e);
        }
    };
    let moved_aside = if target.exists() {
        let aside = beside(&target, &format!(".before-restore-{}", now.unix()));
        for part in ["", "-wal", "-shm"] {
            let from = beside(&target, part);
            if from.exists() {
                std::fs::rename(&from, beside(&aside, part))
                    .map_err(|e| io("cannot move the database aside", e))?;
            }
        }
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staged, &target).map_err(|e| io("cannot put the backup in place", e))?;
    Ok(Ok(Restored {
        schema_version: version,
        moved_aside,
    }))
}

/// Opens the copy at `path`, checks it whole and of a schema this build
/// can use, migrates an older one, and closes it (WAL folded back in, so
/// the file alone is the database).
async fn check(path: &Path) -> Result<std::result::Result<i64, BackupRefusal>> {
    let url = format!("sqlite://{}", path.display());
    let unusable = |why: String| Ok(Err(BackupRefusal::Unusable(why)));
    let store = match SqlStore::connect(&url, PoolSettings::default()).await {
        Ok(store) => store,
        Err(e) => return unusable(format!("the backup cannot be opened as SQLite: {e}")),
    };
    let verdict = match store.integrity_problem().await {
        Err(e) => unusable(format!("the backup cannot be read as SQLite: {e}")),
        Ok(Some(problem)) => unusable(format!("the backup is damaged: {problem}")),
        Ok(None) => match store.schema().await? {
            SchemaState::Empty => unusable("the backup holds no Gatehouse database".to_owned()),
            SchemaState::Ahead { database, build } => unusable(format!(
                "the backup's schema is version {database}, newer than this build's {build}: restore it with the release that took it"
            )),
            SchemaState::Dirty(v) => unusable(format!(
                "the backup was taken while migration {v} had failed part-way"
            )),
            SchemaState::Current(_) | SchemaState::Behind { .. } => {
                store.migrate().await?;
                match store.schema().await? {
                    SchemaState::Current(v) => Ok(Ok(v)),
                    other => unusable(format!("the backup's schema is {other:?} after migrating")),
                }
            }
        },
    };
    store.close().await;
    verdict
}

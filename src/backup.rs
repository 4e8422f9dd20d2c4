//! `gatehouse backup` and `gatehouse restore`: the embedded SQLite
//! database copied while the service runs, and put back while it is
//! stopped.

use std::path::Path;
use std::process::ExitCode;

use gatehouse_domain::Timestamp;

use crate::app;
use crate::config::Config;
use crate::failure::Failure;
use crate::terminal::refuse;

/// Writes a consistent copy of the database to `path`.
pub async fn back_up(config: &Config, path: &Path) -> Result<ExitCode, Failure> {
    let g = app::for_a_command(config, false).await?;
    let started = std::time::Instant::now();
    match g
        .back_up(path)
        .await
        .map_err(Failure::service("the backup failed"))?
    {
        Ok(bytes) => {
            println!(
                "Backed up to {} ({:.1} MiB in {:.1} s). It is a plain SQLite file: `gatehouse restore {}` puts it back.",
                path.display(),
                bytes as f64 / 1_048_576.0,
                started.elapsed().as_secs_f64(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => Ok(refuse(false, 1, &format!("Not backed up: {refusal}."))),
    }
}

/// Puts the backup at `backup` in place as the database.
pub async fn restore(config: &Config, backup: &Path, replace: bool) -> Result<ExitCode, Failure> {
    let now = Timestamp::from_unix(jiff::Timestamp::now().as_second());
    match gatehouse_core::backup::restore(backup, &config.database_url, replace, now)
        .await
        .map_err(Failure::service(
            "the restore failed; the database was not changed",
        ))? {
        Ok(restored) => {
            if let Some(aside) = &restored.moved_aside {
                println!("The database that was there is now {}.", aside.display());
            }
            println!(
                "Restored {} (schema version {}). Start the service; tell the helpdesk that passwords set and emails sent since the backup are undone.",
                backup.display(),
                restored.schema_version
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => Ok(refuse(false, 1, &format!("Not restored: {refusal}."))),
    }
}

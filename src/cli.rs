//! The `gatehouse` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gatehouse_domain::CorrectedClock;

pub use crate::admin::AdminTask;
use crate::app::{self, Application, Options};
use crate::config::{Config, ConfigError};
use crate::failure::Failure;

/// Sign-in and self-service account access for a staff record system.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, long_about = None)]
pub struct Cli {
    /// A TOML file of settings (environment variables override it).
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web service, with the email and recovery worker in-process.
    Serve {
        /// Do not run the email and recovery worker in this process.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run the service on its embedded defaults with a small sample organisation.
    Demo,
    /// Load or update staff from a CSV file.
    Import {
        /// The staff file (UTF-8 CSV with a header row).
        file: PathBuf,
        /// Check the file and say what would change, without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// The file lists every member of staff of its employers: disable
        /// the enabled people of those employers who are missing from it.
        #[arg(long)]
        full: bool,
        /// With --full: the file is complete for this employer only (as the
        /// file's employer column writes it); repeat for several. Without
        /// it, every employer in the file.
        #[arg(long, value_name = "EMPLOYER", requires = "full")]
        employer: Vec<String>,
        /// With --full: the most people of each employer the import may
        /// disable (per employer; default 5% of its enabled staff, at least
        /// 1). A full import that would disable more changes nothing.
        #[arg(long, value_name = "N", requires = "full")]
        max_leavers: Option<usize>,
    },
    /// Operator tasks: account status, roles, email changes, the audit log.
    Admin {
        /// Print JSON instead of text, for scripts.
        #[arg(long, global = true)]
        json: bool,
        /// The task.
        #[command(subcommand)]
        task: AdminTask,
    },
    /// Write a consistent copy of the SQLite database to a new file while
    /// the service runs (PostgreSQL: pg_dump, see docs/deploy.md).
    Backup {
        /// The new file (refused if it exists).
        path: PathBuf,
    },
    /// Put a backup in place as the SQLite database, with the service
    /// stopped: it is checked whole and of a schema this build knows first.
    Restore {
        /// The backup file.
        backup: PathBuf,
        /// Move the database that is there aside (to
        /// `….before-restore-TIME`) instead of refusing.
        #[arg(long)]
        replace: bool,
    },
    /// Apply database migrations, then exit.
    Migrate,
    /// Run only the email and recovery worker.
    Worker,
}

/// Runs the command line; the exit code says whether it worked.
pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e.into()),
    };
    crate::telemetry::init(
        config.log_json,
        matches!(cli.command, Command::Import { .. }),
    );
    let result = match cli.command {
        Command::Serve { no_worker } => serve(&config, !no_worker, false).await,
        Command::Demo => serve(&config, true, true).await,
        Command::Import {
            file,
            dry_run,
            full,
            employer,
            max_leavers,
        } => {
            let full = full.then_some(gatehouse_domain::import::FullImport {
                employers: employer,
                max_leavers,
                importer: None,
            });
            crate::import::run(
                &config,
                &file,
                gatehouse_core::import::ImportOptions {
                    dry_run,
                    full,
                    ..Default::default()
                },
            )
            .await
        }
        Command::Admin { json, task } => crate::admin::run(&config, task, json).await,
        Command::Backup { path } => crate::backup::back_up(&config, &path).await,
        Command::Restore { backup, replace } => {
            crate::backup::restore(&config, &backup, replace).await
        }
        Command::Migrate => migrate(&config).await,
        Command::Worker => worker(&config).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &Failure) -> ExitCode {
    eprintln!("error: {}", e.line());
    e.exit_code()
}

async fn serve(config: &Config, workers: bool, demo: bool) -> Result<ExitCode, Failure> {
    let options = Options {
        run_workers: workers,
        ..Options::default()
    };
    let clock = CorrectedClock::default();
    let app = Application::build(config, Arc::new(clock.clone()), options).await?;
    app::keep_in_step(app.gatehouse().clone(), clock, true).await;
    if demo {
        crate::demo::prepare(app.gatehouse(), config).await?;
    }
    tracing::info!(address = %app.address(), public_url = %config.public_url, mail = %config.mail_url.describe(), "serving");
    // With JSON logs every line on standard error must be a JSON record
    // (log shippers parse each one); the "serving" record above says the same.
    if !demo && !config.log_json {
        eprintln!(
            "Gatehouse is serving {} at {}",
            config.service_name,
            config.public_url.as_str().trim_end_matches('/')
        );
    }
    app.run(app::shutdown_on_signals())
        .await
        .map_err(|source| Failure::Io {
            doing: "the server stopped".to_owned(),
            source,
        })?;
    Ok(ExitCode::SUCCESS)
}

async fn worker(config: &Config) -> Result<ExitCode, Failure> {
    let gatehouse = app::for_a_command(config, true).await?;
    let mailer = gatehouse_mail::Mailer::new(
        &config.mail_url,
        &config.mail_from,
        config.mail_timeout.to_std(),
    )
    .map_err(|e| ConfigError(format!("GATEHOUSE_MAIL_URL: {e}")))?;
    let metrics = app::MetricsListener::bind(config).await?;
    let shutdown = app::shutdown_on_signals();
    let mut set = tokio::task::JoinSet::new();
    if let Some(metrics) = metrics {
        metrics.spawn(&mut set, &gatehouse, &shutdown);
    }
    app::spawn_workers(
        &mut set,
        &gatehouse,
        mailer,
        Options::default().poll,
        &shutdown,
    );
    eprintln!("Gatehouse worker running ({})", config.mail_url.describe());
    while set.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

async fn migrate(config: &Config) -> Result<ExitCode, Failure> {
    let store =
        gatehouse_store::SqlStore::connect(&config.database_url, app::pool_settings(config))
            .await
            .map_err(|e| app::database_error(config, &e))?;
    let before = store
        .schema()
        .await
        .map_err(|e| app::database_error(config, &e))?;
    store
        .migrate()
        .await
        .map_err(|e| app::database_error(config, &e))?;
    let after = store
        .schema()
        .await
        .map_err(|e| app::database_error(config, &e))?;
    match (before, after) {
        (gatehouse_store::SchemaState::Current(v), _) => {
            println!("The database schema was already up to date (version {v}).");
        }
        (_, gatehouse_store::SchemaState::Current(v)) => {
            println!("The database schema is now up to date (version {v}).");
        }
        (_, other) => println!("The database schema is {other:?}."),
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

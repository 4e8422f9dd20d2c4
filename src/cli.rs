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
use crate::terminal::printable;

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
    crate::telemetry::init(config.log_json);
    let result = match cli.command {
        Command::Serve { no_worker } => serve(&config, !no_worker, false).await,
        Command::Demo => serve(&config, true, true).await,
        Command::Import { file, dry_run } => import(&config, &file, dry_run).await,
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

async fn import(config: &Config, file: &PathBuf, dry_run: bool) -> Result<ExitCode, Failure> {
    let gatehouse = app::for_a_command(config, false).await?;
    let reader = std::fs::File::open(file).map_err(|source| Failure::Io {
        doing: format!("{}: cannot open it", file.display()),
        source,
    })?;
    let started = std::time::Instant::now();
    let report = gatehouse
        .import_staff(
            std::io::BufReader::new(reader),
            dry_run,
            &gatehouse_core::Actor::IMPORT,
        )
        .await
        .map_err(Failure::service("the import failed, nothing was changed"))?;
    match report {
        Err(errors) => {
            eprintln!(
                "{}: {} problem{} found; nothing was imported.",
                file.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            for e in &errors {
                eprintln!("  {}", printable(&e.to_string()));
            }
            Ok(ExitCode::from(1))
        }
        Ok(report) => {
            let s = &report.summary;
            let verb = if report.dry_run { "would be" } else { "were" };
            println!(
                "{}: {} people {verb} added, {} updated, {} already up to date; {} employer{} {verb} added{}.",
                file.display(),
                s.created,
                s.updated,
                s.unchanged,
                s.employers_created,
                if s.employers_created == 1 { "" } else { "s" },
                if s.email_changes.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} email address change{} (links voided, both addresses told)",
                        s.email_changes.len(),
                        if s.email_changes.len() == 1 { "" } else { "s" }
                    )
                }
            );
            if report.dry_run {
                println!("Dry run: nothing was changed.");
            } else {
                println!("Done in {:.1} s.", started.elapsed().as_secs_f64());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! The `gatehouse` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gatehouse_core::Gatehouse;
use gatehouse_domain::{Clock, SystemClock, Timestamp, UsernameKey};
use gatehouse_store::AuditFilter;

use crate::app::{self, Application, Options};
use crate::config::{Config, ConfigError};

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
    /// Operator tasks: account status, email changes, the audit log.
    Admin {
        /// The task.
        #[command(subcommand)]
        task: AdminTask,
    },
    /// Apply database migrations, then exit.
    Migrate,
    /// Run only the email and recovery worker.
    Worker,
}

/// Operator tasks.
#[derive(Debug, Subcommand)]
pub enum AdminTask {
    /// Show an account: employer, email, whether a password is set, lock, failures, sessions.
    Status {
        /// The account's username.
        username: String,
    },
    /// Change an account's email address (voids its links, ends its sessions, tells both addresses).
    SetEmail {
        /// The account's username.
        username: String,
        /// The new address (in an allowed domain).
        email: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// List security events, newest first.
    Audit {
        /// Only events about this account.
        #[arg(long)]
        username: Option<String>,
        /// Only events with this name (e.g. sign_in.failed).
        #[arg(long)]
        event: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// For an email address: every recovery request and every email, with its status.
    Mail {
        /// The email address.
        email: String,
    },
    /// Set an account's role: staff, helpdesk or admin. Helpdesk and admin
    /// must set up an authenticator app at their next sign-in to the console.
    Grant {
        /// The account's username.
        username: String,
        /// staff, helpdesk or admin.
        role: String,
    },
    /// Create an administrator (or make an existing person one) and print a
    /// one-time link to set their password; no password is typed here.
    CreateAdmin {
        /// The employer, as in the staff file (e.g. "999 Demo Trust").
        #[arg(long)]
        employer: String,
        /// First name.
        #[arg(long)]
        first_name: String,
        /// Last name.
        #[arg(long)]
        last_name: String,
        /// Date of birth, YYYY-MM-DD or DD/MM/YYYY.
        #[arg(long)]
        date_of_birth: String,
        /// Email address, in an allowed domain.
        #[arg(long)]
        email: String,
        /// A username; generated ESR style when left out.
        #[arg(long, default_value = "")]
        username: String,
    },
}

/// Runs the command line; the exit code says whether it worked.
pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    crate::telemetry::init(config.log_json);
    let result = match cli.command {
        Command::Serve { no_worker } => serve(&config, !no_worker, false).await,
        Command::Demo => serve(&config, true, true).await,
        Command::Import { file, dry_run } => import(&config, &file, dry_run).await,
        Command::Admin { task } => admin(&config, task).await,
        Command::Migrate => migrate(&config).await,
        Command::Worker => worker(&config).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

async fn serve(config: &Config, workers: bool, demo: bool) -> Result<ExitCode, ConfigError> {
    let options = Options {
        run_workers: workers,
        ..Options::default()
    };
    let app = Application::build(config, clock(), options).await?;
    if demo {
        crate::demo::prepare(app.gatehouse(), config).await?;
    }
    tracing::info!(address = %app.address(), public_url = %config.public_url, mail = %config.mail_url.describe(), "serving");
    if !demo {
        eprintln!(
            "Gatehouse is serving {} at {}",
            config.service_name,
            config.public_url.as_str().trim_end_matches('/')
        );
    }
    app.run(app::shutdown_on_signals())
        .await
        .map_err(|e| ConfigError(format!("GATEHOUSE_LISTEN: the server stopped: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

async fn worker(config: &Config) -> Result<ExitCode, ConfigError> {
    let gatehouse = app::services(config, clock()).await?;
    let mailer = gatehouse_mail::Mailer::new(
        &config.mail_url,
        &config.mail_from,
        config.mail_timeout.to_std(),
    )
    .map_err(|e| ConfigError(format!("GATEHOUSE_MAIL_URL: {e}")))?;
    let shutdown = app::shutdown_on_signals();
    let mut set = tokio::task::JoinSet::new();
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

async fn migrate(config: &Config) -> Result<ExitCode, ConfigError> {
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

async fn import(config: &Config, file: &PathBuf, dry_run: bool) -> Result<ExitCode, ConfigError> {
    let gatehouse = app::services(config, clock()).await?;
    let reader = std::fs::File::open(file)
        .map_err(|e| ConfigError(format!("{}: cannot open it: {e}", file.display())))?;
    let started = std::time::Instant::now();
    let report = gatehouse
        .import_staff(std::io::BufReader::new(reader), dry_run, "import")
        .await
        .map_err(|e| ConfigError(format!("the import failed, nothing was changed: {e}")))?;
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

/// Text from records, with control characters shown escaped so nothing typed
/// by anyone can move the cursor or forge a line in an operator's terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn when(g: &Gatehouse, at: Option<Timestamp>) -> String {
    at.map_or_else(|| "never".to_owned(), |t| g.settings.when(t))
}

async fn admin(config: &Config, task: AdminTask) -> Result<ExitCode, ConfigError> {
    let g = app::services(config, clock()).await?;
    let db = |e: gatehouse_core::Error| ConfigError(format!("GATEHOUSE_DATABASE_URL: {e}"));
    match task {
        AdminTask::Status { username } => {
            let Some(s) = g.account_status(&username).await.map_err(db)? else {
                eprintln!("No account has the username {}.", printable(&username));
                return Ok(ExitCode::from(1));
            };
            let a = &s.account;
            let lock = match s.locked_until {
                Some(until) => format!(
                    "locked until {} (nobody can lift it early)",
                    g.settings.when(until)
                ),
                None => "not locked".to_owned(),
            };
            let rows = [
                ("Username", a.username.clone()),
                ("Name", format!("{} {}", a.first_name, a.last_name)),
                (
                    "Employer",
                    format!("{} {}", a.employer_code, a.employer_name),
                ),
                ("Email", a.email.clone()),
                (
                    "Employee number",
                    a.employee_number.clone().unwrap_or_else(|| "-".to_owned()),
                ),
                ("Role", a.role.clone()),
                (
                    "Password",
                    match (&a.password_hash, s.password_disabled) {
                        (None, _) => "never set (first-time access pending)".to_owned(),
                        (Some(_), true) => {
                            "disabled after too many failures: a reset is needed".to_owned()
                        }
                        (Some(_), false) => format!("set {}", when(&g, a.password_changed_at)),
                    },
                ),
                ("Lock", lock),
                (
                    "Failures",
                    format!(
                        "{} in a row now, {} since the last success or reset",
                        s.consecutive_failures, s.total_failures
                    ),
                ),
                ("Last sign-in", when(&g, a.last_sign_in_at)),
                ("Sessions", s.sessions.to_string()),
            ];
            for (k, v) in rows {
                println!("{k:<16} {}", printable(&v));
            }
        }
        AdminTask::Grant { username, role } => {
            let role = match gatehouse_domain::Role::parse(&role) {
                Ok(role) => role,
                Err(why) => {
                    eprintln!("Not changed: {}.", printable(&why));
                    return Ok(ExitCode::from(2));
                }
            };
            match g
                .set_role(&username, role, "admin (command line)")
                .await
                .map_err(db)?
            {
                Some(account) => println!(
                    "{} is now {}.{}",
                    account.username,
                    account.role,
                    if role == gatehouse_domain::Role::Staff {
                        ""
                    } else {
                        " They will set up an authenticator app at their next sign-in to the console."
                    }
                ),
                None => {
                    eprintln!("No account has the username {}.", printable(&username));
                    return Ok(ExitCode::from(1));
                }
            }
        }
        AdminTask::CreateAdmin {
            employer,
            first_name,
            last_name,
            date_of_birth,
            email,
            username,
        } => {
            let admin = gatehouse_core::privileged::NewAdmin {
                employer,
                username,
                first_name,
                last_name,
                date_of_birth,
                email,
            };
            match g
                .create_admin(&admin, "admin (command line)")
                .await
                .map_err(db)?
            {
                Ok(created) => {
                    println!(
                        "{} ({} {}) is an administrator.",
                        created.account.username,
                        printable(&created.account.first_name),
                        printable(&created.account.last_name)
                    );
                    println!(
                        "Give them this one-time link to set their password (valid until {}):",
                        g.settings.when(created.expires_at)
                    );
                    println!("{}", created.link);
                    println!(
                        "At their first sign-in to the console they will set up an authenticator app."
                    );
                }
                Err(problems) => {
                    eprintln!("Not created:");
                    for p in problems {
                        eprintln!("  {}", printable(&p));
                    }
                    return Ok(ExitCode::from(1));
                }
            }
        }
        AdminTask::SetEmail {
            username,
            email,
            reason,
        } => match g
            .change_email(&username, &email, "admin (command line)", &reason)
            .await
            .map_err(db)?
        {
            Ok(account) => println!(
                "{}'s email address is now {}. Outstanding reset links were voided, sessions ended, and both addresses will be told.",
                account.username, account.email
            ),
            Err(refusal) => {
                eprintln!("Not changed: {refusal}.");
                return Ok(ExitCode::from(1));
            }
        },
        AdminTask::Audit {
            username,
            event,
            limit,
        } => {
            let account_id = match &username {
                Some(u) => match g
                    .store
                    .account_by_username(&UsernameKey::from_typed(u))
                    .await
                {
                    Ok(Some(a)) => Some(a.id),
                    Ok(None) => {
                        eprintln!("No account has the username {}.", printable(u));
                        return Ok(ExitCode::from(1));
                    }
                    Err(e) => return Err(db(e.into())),
                },
                None => None,
            };
            let events = g
                .store
                .audit_events(&AuditFilter {
                    account_id,
                    event,
                    limit,
                    ..Default::default()
                })
                .await
                .map_err(|e| db(e.into()))?;
            for e in events {
                println!(
                    "{}  {:<30} {:<14} {:<14} {:<15} {}",
                    e.at.rfc3339(),
                    printable(&e.event),
                    printable(e.actor.as_deref().unwrap_or("-")),
                    printable(e.username.as_deref().unwrap_or("-")),
                    printable(e.client_ip.as_deref().unwrap_or("-")),
                    printable(e.detail.as_deref().unwrap_or(""))
                );
            }
        }
        AdminTask::Mail { email } => {
            let history = g.mail_history(&email).await.map_err(db)?;
            println!("Recovery requests for {}:", printable(&history.email));
            if history.requests.is_empty() {
                println!("  none");
            }
            for r in &history.requests {
                println!("  {}  request {}: {}", r.when, r.id, r.outcome);
            }
            println!("Emails to {}:", printable(&history.email));
            if history.emails.is_empty() {
                println!("  none");
            }
            for e in &history.emails {
                println!(
                    "  {}  {} email {}: {}",
                    e.when,
                    e.kind,
                    e.id,
                    printable(&e.status)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

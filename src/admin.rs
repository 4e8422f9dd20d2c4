//! `gatehouse admin`: the operator's tasks from the command line, the same
//! services the console uses, with readable output or `--json` for scripts.
//! Every change is audited with the actor `admin (command line)`.

use std::process::ExitCode;

use clap::Subcommand;
use gatehouse_core::audit_log::{AuditQuery, audit_csv};
use gatehouse_core::set_up::{NewAdmin, SetUpLink};
use gatehouse_core::{Actor, Gatehouse};
use gatehouse_domain::{Role, Timestamp};
use serde_json::json;

use crate::config::Config;
use crate::failure::Failure;
use crate::terminal::{printable, refuse};

/// Who the command line acts as, in the audit log.
const ACTOR: &Actor = &Actor::COMMAND_LINE;

/// Operator tasks.
#[derive(Debug, Subcommand)]
pub enum AdminTask {
    /// Find people by username, email address, employee number, surname, or first name and surname.
    Find {
        /// What to look for.
        query: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show an account: employer, email, role, whether a password is set, lock, failures, sessions.
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
        /// Only events done by this actor (e.g. "admin 999PPATEL01").
        #[arg(long)]
        actor: Option<String>,
        /// From this day (YYYY-MM-DD or DD/MM/YYYY).
        #[arg(long)]
        from: Option<String>,
        /// To this day, included.
        #[arg(long)]
        to: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print CSV (for a spreadsheet) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// For an email address: every recovery request and every email, with its status.
    Mail {
        /// The email address.
        email: String,
    },
    /// Set an account's role: staff, helpdesk or admin. A helpdesk or admin
    /// account with no authenticator app gets a one-time set-up link, printed
    /// here, to hand to its owner: it sets their password, then their
    /// authenticator app.
    Grant {
        /// The account's username.
        username: String,
        /// staff, helpdesk or admin.
        role: String,
    },
    /// Create an administrator (or make an existing person one) and print a
    /// one-time set-up link for their password and authenticator app; no
    /// password is typed here.
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
    /// Disable an account: it cannot sign in, set a password or get recovery emails.
    Disable {
        /// The account's username.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Enable a disabled account.
    Enable {
        /// The account's username.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// End every session of an account (a lost or shared device).
    EndSessions {
        /// The account's username.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Forget a helpdesk or admin account's authenticator app and recovery
    /// codes (a lost phone, no codes left), end its sessions, and print a
    /// one-time set-up link for a new password and authenticator app. Check
    /// who is asking first, and hand the link over in person or by phone.
    ResetSecondFactor {
        /// The account's username.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Remove every passkey of an account (a lost phone or security key);
    /// audited. The person signs in with their password and may add new ones.
    RemovePasskeys {
        /// The account's username.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Lift a lock early: refused unless GATEHOUSE_ALLOW_EARLY_UNLOCK is on.
    Unlock {
        /// The account's username.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Replace the service's key for form tokens and reset link cookies
    /// (forms open now still work until the next rotation).
    RotateKeys,
    /// Register and manage the applications that sign people in through
    /// this service (OpenID Connect clients).
    Client {
        /// The task.
        #[command(subcommand)]
        task: crate::clients::ClientTask,
    },
    /// Print everything held about a person as JSON (a subject access
    /// request): never a password hash, token or secret. Audited.
    ExportPerson {
        /// The account's username.
        username: String,
    },
    /// Erase a person's personal details (names, date of birth, email
    /// address, employee number, password, second factor, links, emails):
    /// the account is disabled for good, its username stays reserved and
    /// its audit trail keeps it. Refused for helpdesk and admin accounts.
    ErasePerson {
        /// The account's username.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Replace the keys that sign ID tokens: published now, signing once
    /// applications have fetched them.
    RotateSigningKey {
        /// Sign with the new keys at once and withdraw the old ones (a key
        /// that may be compromised); applications' sessions may end.
        #[arg(long)]
        immediately: bool,
    },
}

/// Prints a set-up link for the operator to hand over.
fn print_set_up(g: &Gatehouse, set_up: &SetUpLink) {
    println!(
        "Give them this one-time set-up link, in person or by phone (valid until {}):",
        g.settings().when(set_up.expires_at)
    );
    println!("{}", set_up.link);
    println!(
        "It sets their password; when they then log in, they set up an authenticator app for the console."
    );
}

/// A set-up link as JSON (or null).
fn set_up_json(set_up: Option<&SetUpLink>) -> serde_json::Value {
    set_up.map_or(
        serde_json::Value::Null,
        |s| json!({ "link": s.link, "expires_at": s.expires_at.rfc3339() }),
    )
}

fn when(g: &Gatehouse, at: Option<Timestamp>) -> String {
    at.map_or_else(|| "never".to_owned(), |t| g.settings().when(t))
}

/// Who a person is, for `find` and `status`.
fn person(a: &gatehouse_core::AccountRecord) -> serde_json::Value {
    json!({
        "username": a.username,
        "first_name": a.first_name,
        "last_name": a.last_name,
        "employer_code": a.employer_code,
        "employer_name": a.employer_name,
        "email": a.email,
        "employee_number": a.employee_number,
    })
}

fn rfc(at: Option<Timestamp>) -> serde_json::Value {
    at.map_or(serde_json::Value::Null, |t| json!(t.rfc3339()))
}

/// Runs one task.
pub async fn run(config: &Config, task: AdminTask, json: bool) -> Result<ExitCode, Failure> {
    let named = task.username().unwrap_or_default().to_owned();
    match run_task(config, task, json).await {
        Err(Failure::Service {
            source: gatehouse_core::Error::NoSuchAccount,
            ..
        }) => Ok(refuse(
            json,
            1,
            &format!("No account has the username {named}."),
        )),
        done => done,
    }
}

impl AdminTask {
    /// The account a task names, if it names one.
    fn username(&self) -> Option<&str> {
        match self {
            AdminTask::Status { username }
            | AdminTask::SetEmail { username, .. }
            | AdminTask::Grant { username, .. }
            | AdminTask::Disable { username, .. }
            | AdminTask::Enable { username, .. }
            | AdminTask::EndSessions { username, .. }
            | AdminTask::ResetSecondFactor { username, .. }
            | AdminTask::RemovePasskeys { username, .. }
            | AdminTask::Unlock { username, .. }
            | AdminTask::ExportPerson { username }
            | AdminTask::ErasePerson { username, .. } => Some(username),
            AdminTask::Audit { username, .. } => username.as_deref(),
            AdminTask::Find { .. }
            | AdminTask::Mail { .. }
            | AdminTask::CreateAdmin { .. }
            | AdminTask::RotateKeys
            | AdminTask::Client { .. }
            | AdminTask::RotateSigningKey { .. } => None,
        }
    }
}

async fn run_task(config: &Config, task: AdminTask, json: bool) -> Result<ExitCode, Failure> {
    let g = crate::app::for_a_command(config, false).await?;
    let db = Failure::service("the task could not be done");
    match task {
        AdminTask::Find { query, limit } => {
            let found = g.find_accounts(ACTOR, &query, limit).await.map_err(db)?;
            if json {
                let people: Vec<serde_json::Value> = found.iter().map(person).collect();
                println!("{}", serde_json::Value::Array(people));
            } else if found.is_empty() {
                return Ok(refuse(json, 1, "Nobody found."));
            } else {
                for a in &found {
                    println!(
                        "{:<16} {:<28} {:<36} {}",
                        printable(a.username.as_str()),
                        printable(&format!("{} {}", a.first_name, a.last_name)),
                        printable(a.email.as_str()),
                        printable(&a.employer_name)
                    );
                }
            }
        }
        AdminTask::Status { username } => {
            let s = g.account_status(ACTOR, &username).await.map_err(db)?;
            let a = &s.account;
            if json {
                let mut out = person(a);
                if let Some(fields) = out.as_object_mut() {
                    for (k, v) in [
                        ("role", json!(a.role)),
                        ("disabled_at", rfc(a.disabled_at)),
                        ("password_set", json!(a.password_hash.is_some())),
                        ("password_changed_at", rfc(a.password_changed_at)),
                        ("password_disabled", json!(s.password_disabled)),
                        ("locked_until", rfc(s.locked_until)),
                        ("consecutive_failures", json!(s.consecutive_failures)),
                        ("total_failures", json!(s.total_failures)),
                        ("last_sign_in_at", rfc(a.last_sign_in_at)),
                        ("sessions", json!(s.sessions)),
                    ] {
                        fields.insert(k.to_owned(), v);
                    }
                }
                println!("{out}");
                return Ok(ExitCode::SUCCESS);
            }
            let lock = match s.locked_until {
                Some(until) => format!(
                    "locked until {}{}",
                    g.settings().when(until),
                    if g.settings().allow_early_unlock {
                        ""
                    } else {
                        " (nobody can lift it early)"
                    }
                ),
                None => "not locked".to_owned(),
            };
            let rows = [
                ("Username", a.username.to_string()),
                ("Name", format!("{} {}", a.first_name, a.last_name)),
                (
                    "Employer",
                    format!("{} {}", a.employer_code, a.employer_name),
                ),
                ("Email", a.email.to_string()),
                (
                    "Employee number",
                    a.employee_number.clone().unwrap_or_else(|| "-".to_owned()),
                ),
                ("Role", a.role.as_str().to_owned()),
                (
                    "Account",
                    a.disabled_at.map_or_else(
                        || "enabled".to_owned(),
                        |at| format!("disabled at {}", g.settings().when(at)),
                    ),
                ),
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
        AdminTask::SetEmail {
            username,
            email,
            reason,
        } => match g
            .change_email(&username, &email, ACTOR, &reason)
            .await
            .map_err(db)?
        {
            Ok(account) if json => {
                println!(
                    "{}",
                    json!({ "username": account.username, "email": account.email })
                );
            }
            Ok(account) => println!(
                "{}'s email address is now {}. Outstanding reset links were voided, sessions ended, and both addresses will be told.",
                account.username, account.email
            ),
            Err(refusal) => return Ok(refuse(json, 1, &format!("Not changed: {refusal}."))),
        },
        AdminTask::Audit {
            username,
            event,
            actor,
            from,
            to,
            limit,
            csv,
        } => {
            let query = AuditQuery {
                username: username.unwrap_or_default(),
                event: event.unwrap_or_default(),
                actor: actor.unwrap_or_default(),
                from: from.unwrap_or_default(),
                to: to.unwrap_or_default(),
            };
            let lines = match g.audit_log(&query, limit).await.map_err(db)? {
                Ok(lines) => lines,
                Err(errors) => {
                    let messages: Vec<String> = errors.into_iter().map(|e| e.message).collect();
                    return Ok(refuse(json, 1, &format!("{}.", messages.join("; "))));
                }
            };
            if json {
                println!("{}", json!(lines));
            } else if csv {
                print!("{}", audit_csv(&lines).map_err(db)?);
            } else {
                for e in lines {
                    println!(
                        "{}  {:<30} {:<22} {:<14} {:<15} {}",
                        e.at,
                        printable(&e.event),
                        printable(if e.actor.is_empty() { "-" } else { &e.actor }),
                        printable(if e.username.is_empty() {
                            "-"
                        } else {
                            &e.username
                        }),
                        printable(if e.client_ip.is_empty() {
                            "-"
                        } else {
                            &e.client_ip
                        }),
                        printable(&e.detail)
                    );
                }
            }
        }
        AdminTask::Mail { email } => {
            let history = g.mail_history(&email).await.map_err(db)?;
            if json {
                println!("{}", json!(history));
                return Ok(ExitCode::SUCCESS);
            }
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
        AdminTask::Grant { username, role } => {
            let role = match Role::parse(&role) {
                Ok(role) => role,
                Err(why) => return Ok(refuse(json, 2, &format!("Not changed: {why}."))),
            };
            let change = g.set_role(&username, role, ACTOR).await.map_err(db)?;
            match change {
                change if json => {
                    println!(
                        "{}",
                        json!({
                            "username": change.account.username,
                            "role": change.account.role,
                            "set_up": set_up_json(change.set_up.as_ref()),
                        })
                    );
                }
                change => {
                    println!(
                        "{} is now {}.",
                        change.account.username,
                        change.account.role.as_str()
                    );
                    if let Some(set_up) = &change.set_up {
                        print_set_up(&g, set_up);
                    }
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
            let admin = NewAdmin {
                employer,
                username,
                first_name,
                last_name,
                date_of_birth,
                email,
            };
            match g.create_admin(&admin, ACTOR).await.map_err(db)? {
                Ok(created) if json => println!(
                    "{}",
                    json!({
                        "username": created.account.username,
                        "link": created.set_up.link,
                        "expires_at": created.set_up.expires_at.rfc3339(),
                    })
                ),
                Ok(created) => {
                    println!(
                        "{} ({} {}) is an administrator.",
                        created.account.username,
                        printable(&created.account.first_name),
                        printable(&created.account.last_name)
                    );
                    print_set_up(&g, &created.set_up);
                }
                Err(problems) => {
                    return Ok(refuse(
                        json,
                        1,
                        &format!("Not created: {}.", problems.join("; ")),
                    ));
                }
            }
        }
        AdminTask::Disable { username, reason } => {
            return disabled(&g, json, &username, true, &reason)
                .await
                .map_err(db);
        }
        AdminTask::Enable { username, reason } => {
            return disabled(&g, json, &username, false, &reason)
                .await
                .map_err(db);
        }
        AdminTask::EndSessions { username, reason } => {
            match g
                .end_sessions(&username, ACTOR, &reason)
                .await
                .map_err(db)?
            {
                Ok((account, ended)) if json => {
                    println!(
                        "{}",
                        json!({ "username": account.username, "sessions_ended": ended })
                    );
                }
                Ok((account, ended)) => println!(
                    "{ended} session{} of {} ended.",
                    if ended == 1 { "" } else { "s" },
                    account.username
                ),
                Err(refusal) => return Ok(refuse(json, 1, &format!("Not done: {refusal}."))),
            }
        }
        AdminTask::ResetSecondFactor { username, reason } => {
            match g
                .reset_second_factor(&username, ACTOR, &reason)
                .await
                .map_err(db)?
            {
                Ok((account, set_up)) if json => {
                    println!(
                        "{}",
                        json!({
                            "username": account.username,
                            "second_factor": null,
                            "set_up": set_up_json(Some(&set_up)),
                        })
                    );
                }
                Ok((account, set_up)) => {
                    println!(
                        "{}'s authenticator app and recovery codes are forgotten and their sessions ended.",
                        account.username
                    );
                    print_set_up(&g, &set_up);
                }
                Err(refusal) => return Ok(refuse(json, 1, &format!("Not done: {refusal}."))),
            }
        }
        AdminTask::RemovePasskeys { username, reason } => {
            match g
                .remove_passkeys_by_operator(&username, ACTOR, &reason)
                .await
                .map_err(db)?
            {
                Ok((account, removed)) if json => {
                    println!(
                        "{}",
                        json!({ "username": account.username, "passkeys_removed": removed })
                    );
                }
                Ok((account, removed)) => println!(
                    "{removed} passkey(s) of {} removed and every session ended: they sign in with their password and may add new ones.",
                    account.username
                ),
                Err(refusal) => return Ok(refuse(json, 1, &format!("Not done: {refusal}."))),
            }
        }
        AdminTask::Unlock { username, reason } => {
            match g.lift_lock(&username, ACTOR, &reason).await.map_err(db)? {
                Ok(account) if json => {
                    println!(
                        "{}",
                        json!({ "username": account.username, "locked": false })
                    );
                }
                Ok(account) => println!("{}'s lock has been lifted.", account.username),
                Err(refusal) => return Ok(refuse(json, 1, &format!("Not unlocked: {refusal}."))),
            }
        }
        AdminTask::Client { task } => return crate::clients::run(&g, task, json).await,
        AdminTask::ExportPerson { username } => {
            return crate::person::export(&g, &username).await.map_err(db);
        }
        AdminTask::ErasePerson { username, reason } => {
            return crate::person::erase(&g, json, &username, &reason)
                .await
                .map_err(db);
        }
        AdminTask::RotateSigningKey { immediately } => {
            return crate::clients::rotate_signing_keys(&g, json, immediately).await;
        }
        AdminTask::RotateKeys => {
            let generation = g.rotate_keys(ACTOR).await.map_err(db)?;
            if json {
                println!("{}", json!({ "generation": generation }));
            } else {
                println!(
                    "The service's key is now generation {generation}. Forms open now keep working until the next rotation; every node picks the new key up when it first sees it."
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn disabled(
    g: &Gatehouse,
    json: bool,
    username: &str,
    disable: bool,
    reason: &str,
) -> Result<ExitCode, gatehouse_core::Error> {
    match g
        .set_account_disabled(username, disable, ACTOR, reason)
        .await?
    {
        Ok(account) if json => println!(
            "{}",
            json!({ "username": account.username, "disabled_at": rfc(account.disabled_at) })
        ),
        Ok(account) => println!(
            "{} is now {}.",
            account.username,
            if disable {
                "disabled: it cannot sign in, set a password or get recovery emails, and its sessions have ended"
            } else {
                "enabled"
            }
        ),
        Err(refusal) => return Ok(refuse(json, 1, &format!("Not changed: {refusal}."))),
    }
    Ok(ExitCode::SUCCESS)
}

//! `gatehouse demo`: the service on its embedded defaults, with a small
//! sample organisation: six people at two employers, one person at both.

use gatehouse_core::{Actor, Gatehouse};

use crate::config::{Config, ConfigError};
use crate::failure::Failure;

/// The sample organisation, in the staff file format.
pub const SAMPLE_STAFF: &str = include_str!("../demo/staff.csv");

/// Who loads the sample organisation, in the audit log.
const DEMO: &Actor = &Actor::Operator("demo");

/// Loads the sample organisation (again: importing is idempotent) and
/// prints where to go, who to be, and where emails land.
pub async fn prepare(gatehouse: &Gatehouse, config: &Config) -> Result<(), Failure> {
    let report = gatehouse
        .import_staff(SAMPLE_STAFF.as_bytes(), false, DEMO)
        .await
        .map_err(Failure::service("the demo data could not be loaded"))?
        .map_err(|rows| {
            let first = rows.first().map(ToString::to_string).unwrap_or_default();
            ConfigError(format!(
                "the demo data does not fit this configuration: {first}"
            ))
        })?;
    let mut people = Vec::new();
    let mut set_up_links = Vec::new();
    for line in SAMPLE_STAFF.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        if let [_, _, first, last, _, email, _, role] = fields.as_slice()
            && let Ok(role @ (gatehouse_domain::Role::Helpdesk | gatehouse_domain::Role::Admin)) =
                gatehouse_domain::Role::parse(role)
        {
            // As the operator would: a set-up link for each privileged
            // person who has no authenticator app yet.
            let store_error = Failure::service("the demo's set-up links could not be made");
            let found = gatehouse
                .find_accounts(DEMO, email, 1)
                .await
                .map_err(store_error)?;
            if let Some(account) = found.first()
                && let Some(set_up) = gatehouse
                    .set_role(account.username.as_str(), role, DEMO)
                    .await
                    .map_err(store_error)?
                    .set_up
            {
                set_up_links.push((format!("{first} {last}"), role, set_up.link));
            }
        }
        if let [_, _, first, last, dob, email, ..] = fields.as_slice() {
            let name = format!("{first} {last}");
            if !people
                .iter()
                .any(|(n, _, _): &(String, String, String)| *n == name)
            {
                people.push((name, (*email).to_owned(), (*dob).to_owned()));
            }
        }
    }
    let mail = match &config.mail_url {
        gatehouse_mail::MailUrl::File(dir) => {
            let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            format!("Emails are written as .eml files to {}", shown.display())
        }
        other => format!("Emails go to the {}", other.describe()),
    };
    println!();
    println!("Gatehouse demo: {}", config.service_name);
    println!();
    println!(
        "  Open {} in your browser.",
        config.public_url.as_str().trim_end_matches('/')
    );
    println!("  {mail}");
    println!("  (open a .eml file with a text editor or email program to find the link).");
    println!();
    println!(
        "Sample people ({} loaded). None has a password yet: choose",
        report.summary.created + report.summary.unchanged + report.summary.updated
    );
    println!(
        "\"Forgotten | Request Username/Password | Unlock Account\" and enter an email and date of birth:"
    );
    println!();
    println!("  {:<16} {:<24} Date of birth", "Name", "Email");
    for (name, email, dob) in &people {
        let dob = gatehouse_domain::DateOfBirth::parse(dob, jiff::civil::date(2100, 1, 1))
            .map(|d| {
                let iso = d.iso();
                let p: Vec<&str> = iso.split('-').collect();
                format!(
                    "{} {} {}",
                    p[2].trim_start_matches('0'),
                    p[1].trim_start_matches('0'),
                    p[0]
                )
            })
            .unwrap_or_else(|_| (*dob).clone());
        println!("  {name:<16} {email:<24} {dob}");
    }
    println!();
    println!(
        "  Jane Smith works for both employers: one email gives both usernames, each with its own link."
    );
    println!(
        "  Three wrong passwords lock an account for {}.",
        config.policy.lockout.duration.for_people()
    );
    println!(
        "  Grace O'Neill (helpdesk) and Priya Patel (admin) reach the helpdesk console at /console"
    );
    println!(
        "  with a code from an authenticator app (any TOTP app: the page shows a QR code and a key)."
    );
    if !set_up_links.is_empty() {
        println!(
            "  The operator hands them a one-time set-up link (gatehouse admin grant): open it to set"
        );
        println!("  the password, then log in and set up the authenticator app:");
        for (name, role, link) in &set_up_links {
            println!("    {name} ({}): {link}", role.as_str());
        }
    }
    println!();
    println!("Press Ctrl+C to stop.");
    Ok(())
}

//! `gatehouse import FILE [--dry-run] [--full [--employer E…] [--max-leavers N]]`:
//! what it prints and the exit status scripts rely on.

use std::path::Path;
use std::process::ExitCode;

use gatehouse_core::import::{ImportOptions, ImportRefusal, ImportReport, too_many_leavers};
use gatehouse_domain::Role;
use gatehouse_domain::import::EmployerLeavers;

use crate::app;
use crate::config::Config;
use crate::failure::Failure;
use crate::terminal::printable;

/// Imports `file` as `options` say and prints what changed (or would):
/// exit status 0 when it was imported (or would be), 1 when the file has
/// problems or a full import would disable more people than allowed.
pub async fn run(
    config: &Config,
    file: &Path,
    options: ImportOptions,
) -> Result<ExitCode, Failure> {
    let gatehouse = app::for_a_command(config, false).await?;
    let reader = std::fs::File::open(file).map_err(|source| Failure::Io {
        doing: format!("{}: cannot open it", file.display()),
        source,
    })?;
    let started = std::time::Instant::now();
    let outcome = gatehouse
        .import_staff_with(
            std::io::BufReader::new(reader),
            &options,
            &gatehouse_core::Actor::IMPORT,
        )
        .await
        .map_err(Failure::service("the import failed, nothing was changed"))?;
    match outcome {
        Err(ImportRefusal::Problems(errors)) => {
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
        Err(ImportRefusal::TooManyLeavers(over)) => {
            refuse(file, &over);
            Ok(ExitCode::from(1))
        }
        Ok(report) => {
            print_report(file, &report);
            let over = report.over_limit();
            if report.dry_run {
                println!("Dry run: nothing was changed.");
                if !over.is_empty() {
                    refuse(file, &over);
                    return Ok(ExitCode::from(1));
                }
            } else {
                println!("Done in {:.1} s.", started.elapsed().as_secs_f64());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The one line that says a full import would disable too many people,
/// and how to allow it.
fn refuse(file: &Path, over: &[EmployerLeavers]) {
    let needed = over.iter().map(|e| e.leavers).max().unwrap_or_default();
    eprintln!(
        "error: {}: {}; nothing was changed. If they have all left, run it again with --max-leavers {needed}.",
        file.display(),
        printable(&too_many_leavers(over))
    );
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_report(file: &Path, report: &ImportReport) {
    let s = &report.summary;
    let verb = if report.dry_run { "would be" } else { "were" };
    // The first line is as it has always been: scripts read it.
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
    if !s.returners.is_empty() {
        let enabled = if report.dry_run {
            "Would be enabled again"
        } else {
            "Enabled again"
        };
        println!(
            "{enabled}, back in the file: {}.",
            plural(s.returners.len(), "person", "people")
        );
        for r in &s.returners {
            println!("  returner: {} (line {})", printable(&r.username), r.line);
        }
    }
    if !report.full() {
        return;
    }
    for e in &report.coverage {
        println!(
            "Employer {} ({}): {} of its {} enabled people {verb} disabled as not in the file (limit {}).",
            printable(&e.code),
            printable(&e.name),
            e.leavers,
            e.enabled,
            e.limit
        );
    }
    // One username a line, so that a script (or a person) can read the
    // list of leavers off a dry run.
    for l in &s.leavers {
        // A helpdesk member or administrator leaving is worth a second look.
        let role = match l.role {
            Role::Staff => String::new(),
            other => format!(", {}", other.as_str()),
        };
        println!(
            "  leaver: {} (employer {}{role})",
            printable(&l.username),
            printable(&l.employer_code)
        );
    }
}

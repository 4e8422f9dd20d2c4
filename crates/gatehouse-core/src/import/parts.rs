//! Importing a staff file a few employers at a time: the file is read row
//! by row into scratch tables, then planned and written one part (whole
//! employers, about [`PART_ROWS`] rows) at a time, all in one transaction.
//! Memory holds one part's rows and accounts, whatever the file's size.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;

use gatehouse_domain::Role;
use gatehouse_domain::import::{
    EmployerBook, EmployerLeavers, FullImport, ImportPlan, LeaverScope, StaffFile,
    duplicate_numbers, duplicate_username, plan_rows, shared_between_rows,
};
use gatehouse_domain::{Timestamp, Username};
use gatehouse_store::import::{self, ImportScratch};
use gatehouse_store::{ImportSummary, Tx};

use super::ImportRefusal;
use crate::{Gatehouse, Result};

/// Rows planned together unless the import says otherwise: employers are
/// added to a part until it holds this many (one employer larger than this
/// is a part on its own).
const PART_ROWS: usize = 25_000;

/// Rows staged per statement while the file is read.
const STAGE_ROWS: usize = 10_000;

/// Generated usernames kept for the report (the set-up page shows the first).
pub(super) const GENERATED_SHOWN: usize = 1_000;

/// What planning and writing a file in a transaction came to.
pub(super) struct Staged {
    /// Counts, email changes, leavers and returners.
    pub summary: ImportSummary,
    /// The first [`GENERATED_SHOWN`] usernames generated, with their lines.
    pub generated: Vec<(u64, String)>,
    /// Each employer a full import covers.
    pub coverage: Vec<EmployerLeavers>,
    /// Roles the file gives or changes: (username, the role before or
    /// "new account", the role after).
    pub role_changes: Vec<(Username, &'static str, Role)>,
    /// People to add (noted in the scratch tables, not yet written).
    pub to_add: usize,
}

/// Lines of the file, as a bit each.
#[derive(Default)]
struct Lines(Vec<u64>);

impl Lines {
    fn insert(&mut self, line: u64) {
        let (word, bit) = ((line / 64) as usize, line % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn any(&self) -> bool {
        self.0.iter().any(|w| *w != 0)
    }

    fn contains(&self, line: u64) -> bool {
        self.0
            .get((line / 64) as usize)
            .is_some_and(|w| w & (1 << (line % 64)) != 0)
    }
}

impl Gatehouse {
    /// Reads `file` into `scratch`, then plans it part by part, writing
    /// each part's employers, changes, leavers and returners in `tx` (the
    /// new people are only noted in `scratch`). `Err(refusal)`: the file
    /// has problems; whatever was written must be rolled back.
    pub(super) async fn stage_and_plan(
        &self,
        tx: &mut Tx,
        scratch: &mut ImportScratch,
        file: impl Read,
        full: Option<&FullImport>,
        part_rows: Option<usize>,
        now: Timestamp,
    ) -> Result<std::result::Result<Staged, ImportRefusal>> {
        let today = self.settings.today(now);
        let started = std::time::Instant::now();
        let mut book = EmployerBook::new(&import::employers(tx).await?);
        let mut reader = match StaffFile::open(file, today, &self.settings.allowed_domains) {
            Ok(reader) => reader,
            Err(problems) => return Ok(Err(ImportRefusal::Problems(problems))),
        };
        let mut batch = Vec::with_capacity(STAGE_ROWS);
        while let Some(row) = reader.next_row() {
            let code = book.resolve(&row.employer);
            batch.push((row, code));
            if batch.len() == STAGE_ROWS {
                scratch.stage_rows(tx, &batch).await?;
                batch.clear();
            }
        }
        scratch.stage_rows(tx, &batch).await?;
        drop(batch);
        let mut errors = reader.finish();
        scratch.rows_staged(tx).await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis(),
            "import: file staged"
        );
        for (line, username, first) in scratch.duplicate_usernames(tx).await? {
            errors.push(duplicate_username(line as u64, &username, first as u64));
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Ok(Err(ImportRefusal::Problems(errors)));
        }

        let names = book.names();
        let covered = book.covered(full, &mut errors);
        let (employers_created, employers_renamed) =
            import::write_employers(tx, book.changes()).await?;
        let mut staged = Staged {
            summary: ImportSummary {
                employers_created,
                employers_renamed,
                ..ImportSummary::default()
            },
            generated: Vec::new(),
            coverage: Vec::new(),
            role_changes: Vec::new(),
            to_add: 0,
        };
        let part_rows = part_rows.unwrap_or(PART_ROWS).max(1);
        let parts = parts(scratch.employers(tx).await?, covered.as_ref(), part_rows);
        let codes_by_id = book.codes_by_id();
        let mut touched = Lines::default();
        let mut part_of: HashMap<String, usize> = HashMap::new();
        let mut feed = scratch.feed(&self.store, &parts).await?;
        for (index, codes) in parts.iter().enumerate() {
            part_of.extend(codes.iter().map(|c| (c.clone(), index)));
            let part_covered: Option<BTreeSet<String>> = covered
                .as_ref()
                .map(|c| codes.iter().filter(|x| c.contains(*x)).cloned().collect());
            let scope = full
                .zip(part_covered.as_ref())
                .map(|(full, covered)| LeaverScope {
                    full,
                    covered,
                    names: &names,
                });
            let ids: Vec<i64> = codes.iter().filter_map(|c| book.id_of(c)).collect();
            let mut accounts = scratch.accounts_for(tx, codes, &ids).await?;
            let mut reserved = HashSet::new();
            // The plan is checked against what lies outside the part, and
            // made again (rarely) until nothing there contradicts it: an
            // address it adds or changes that an account of another
            // employer holds is one more account to weigh (one address,
            // one person); a username it generates that is taken elsewhere
            // is reserved.
            let mut first = Some(scratch.next_part(&mut feed, tx, codes).await?);
            let plan = loop {
                let rows = match first.take() {
                    Some(rows) => rows,
                    None => scratch.rows_of(tx, codes).await?,
                };
                // An employer's rows are all in its part.
                let duplicates = duplicate_numbers(&rows);
                if !duplicates.is_empty() {
                    errors.extend(duplicates);
                    break None;
                }
                let plan = match plan_rows(rows, &accounts, &codes_by_id, &reserved, scope) {
                    Err(problems) => {
                        errors.extend(problems);
                        break None;
                    }
                    Ok(plan) => plan,
                };
                let mut holders = scratch
                    .holders_elsewhere(tx, &changed_addresses(&plan), &ids)
                    .await?;
                scratch.stage_new(tx, index, &plan.creates).await?;
                let (taken, more) = scratch.outside(tx, index, &ids).await?;
                holders.extend(more);
                let mut known: HashSet<i64> = accounts.iter().map(|a| a.id).collect();
                holders.retain(|a| known.insert(a.id));
                if taken.is_empty() && holders.is_empty() {
                    break Some(plan);
                }
                scratch.discard_new(tx, index).await?;
                reserved.extend(taken);
                accounts.extend(holders);
            };
            drop(accounts);
            let Some(plan) = plan else {
                continue;
            };
            note(&plan, &mut staged, &mut touched);
            // Once the file has a problem nothing will be written; the
            // rest is only planned, to find every problem.
            if errors.is_empty() {
                import::write_changes(tx, &plan, now, &mut staged.summary).await?;
            }
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis(),
            parts = parts.len(),
            "import: parts planned"
        );
        // Rows of different parts that give one address to two people.
        let shared = if parts.len() > 1 && touched.any() {
            scratch.shared_addresses(tx).await?
        } else {
            Vec::new()
        };
        let holders = shared
            .into_iter()
            .map(|(code, mut holder)| {
                holder.part = part_of.get(&code).copied().unwrap_or_default();
                holder
            })
            .collect::<Vec<_>>();
        errors.extend(shared_between_rows(&holders, |line| touched.contains(line)));
        if errors.is_empty() {
            Ok(Ok(staged))
        } else {
            errors.sort_by_key(|e| e.line);
            Ok(Err(ImportRefusal::Problems(errors)))
        }
    }
}

/// The addresses of people whose details a plan changes (so that who
/// holds the address may change).
fn changed_addresses(plan: &ImportPlan) -> Vec<String> {
    let mut keys: Vec<String> = plan
        .updates
        .iter()
        .filter(|u| touches_person(&u.changed))
        .map(|u| u.row.email.key())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Whether changing `fields` changes who holds an address.
fn touches_person(fields: &[&str]) -> bool {
    fields
        .iter()
        .any(|f| matches!(*f, "email" | "first_name" | "last_name" | "date_of_birth"))
}

/// Notes what a part's plan adds and changes: counts, generated usernames,
/// role changes, coverage, and the lines that add or change a person.
fn note(plan: &ImportPlan, staged: &mut Staged, touched: &mut Lines) {
    staged.to_add += plan.creates.len();
    staged.summary.created += plan.creates.len();
    for c in &plan.creates {
        touched.insert(c.line);
        if c.generated && staged.generated.len() < GENERATED_SHOWN {
            staged.generated.push((c.line, c.username.to_string()));
        }
        if let Some(role) = c.row.role.filter(|r| *r != Role::Staff) {
            staged
                .role_changes
                .push((c.username.clone(), "new account", role));
        }
    }
    for u in &plan.updates {
        if touches_person(&u.changed) {
            touched.insert(u.line);
        }
        if let (Some(old), Some(new)) = (u.old_role, u.row.role) {
            staged
                .role_changes
                .push((u.username.clone(), old.as_str(), new));
        }
    }
    staged.coverage.extend(plan.coverage.iter().cloned());
}

/// The file's employers (with their numbers of rows) in parts of at most
/// `part_rows` rows (or one employer), and each covered employer with no
/// rows in a part of its own (all of its people are leavers).
fn parts(
    employers: Vec<(String, i64)>,
    covered: Option<&BTreeSet<String>>,
    part_rows: usize,
) -> Vec<Vec<String>> {
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut rows: usize = 0;
    let in_file: HashSet<&str> = employers.iter().map(|(c, _)| c.as_str()).collect();
    let without_rows: Vec<String> = covered
        .into_iter()
        .flatten()
        .filter(|c| !in_file.contains(c.as_str()))
        .cloned()
        .collect();
    for (code, count) in employers {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        match parts.last_mut() {
            Some(part) if rows.saturating_add(count) <= part_rows => {
                part.push(code);
                rows += count;
            }
            _ => {
                parts.push(vec![code]);
                rows = count;
            }
        }
    }
    parts.extend(without_rows.into_iter().map(|c| vec![c]));
    parts
}

//! Planning what a checked staff file changes in storage.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::employers::EmployerBook;
use super::leavers::{
    Candidate, EmployerLeavers, FullImport, Leaver, Returner, disabled_as_leaver, find_leavers,
};
use super::read::{RowError, StaffRow};
use super::shared::check_shared_addresses;
use crate::account::{EmployeeNumber, Role, Username, UsernameKey};
use crate::time::Timestamp;
use crate::username;

/// An employer already stored.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct KnownEmployer {
    /// Storage id.
    pub id: i64,
    /// Organisation number.
    pub code: String,
    /// Name.
    pub name: String,
}

/// What the planner needs to know of an account already stored.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct KnownAccount {
    /// Storage id.
    pub id: i64,
    /// The employer's id.
    pub employer_id: i64,
    /// Username as stored.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Email as stored.
    pub email: String,
    /// Employee number, if any.
    pub employee_number: Option<String>,
    /// Role as stored.
    pub role: Role,
    /// When the account was disabled; `None` while enabled.
    pub disabled_at: Option<Timestamp>,
    /// When a full import disabled it as a leaver (see
    /// [`disabled_as_leaver`]).
    pub left_at: Option<Timestamp>,
}

impl KnownAccount {
    /// Whether a full import disabled the account (and nobody has since
    /// disabled it by hand): appearing in a file again enables it.
    pub fn is_leaver(&self) -> bool {
        disabled_as_leaver(self.disabled_at, self.left_at)
    }
}

/// A person to add.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Source line.
    pub line: u64,
    /// The employer's number (the employer may be new too).
    pub employer_code: String,
    /// The username (given or generated).
    pub username: Username,
    /// Whether the username was generated.
    pub generated: bool,
    /// The person as the file gives them.
    pub row: StaffRow,
}

/// A person to change.
#[derive(Debug, Clone)]
pub struct AccountUpdate {
    /// Source line.
    pub line: u64,
    /// The account's id.
    pub id: i64,
    /// The username after the change.
    pub username: Username,
    /// The email address before the change, when it changes.
    pub old_email: Option<String>,
    /// The role before the change, when it changes.
    pub old_role: Option<Role>,
    /// The person as the file gives them.
    pub row: StaffRow,
    /// The names of the fields that change.
    pub changed: Vec<&'static str>,
}

/// An employer to add or rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployerChange {
    /// Organisation number.
    pub code: String,
    /// Name.
    pub name: String,
    /// The id when it already exists (a rename).
    pub existing_id: Option<i64>,
}

/// Everything a file changes, worked out before anything is written.
#[derive(Debug, Clone, Default)]
pub struct ImportPlan {
    /// Employers to add or rename.
    pub employers: Vec<EmployerChange>,
    /// People to add.
    pub creates: Vec<NewAccount>,
    /// People to change.
    pub updates: Vec<AccountUpdate>,
    /// People already exactly as the file says.
    pub unchanged: usize,
    /// People a full import disabled who are in this file again: enabled.
    pub returners: Vec<Returner>,
    /// People of the covered employers missing from the file (a full
    /// import only): disabled.
    pub leavers: Vec<Leaver>,
    /// Each employer a full import covers, with its leavers and limit.
    pub coverage: Vec<EmployerLeavers>,
}

impl ImportPlan {
    /// The covered employers that would lose more people than their limit
    /// allows: a full import with any is refused.
    pub fn over_limit(&self) -> Vec<&EmployerLeavers> {
        self.coverage.iter().filter(|c| c.over_limit()).collect()
    }
}

/// Works out what importing `rows` over the stored `employers` and `accounts` changes.
///
/// A row is the same person as a stored account when (in this order) its
/// username matches, or its employee number matches within the employer, or
/// its email and date of birth match within the employer. People in storage
/// but not in the file are left alone: a file may cover one employer only.
pub fn plan_import(
    rows: Vec<StaffRow>,
    employers: &[KnownEmployer],
    accounts: &[KnownAccount],
) -> Result<ImportPlan, Vec<RowError>> {
    plan_staff_file(rows, employers, accounts, None)
}

/// [`plan_import`], and with `full` a full import: the enabled people of
/// the employers it covers whom no row matches are leavers. Either way, a
/// row that is an account a full import disabled makes it a returner.
pub fn plan_staff_file(
    rows: Vec<StaffRow>,
    employers: &[KnownEmployer],
    accounts: &[KnownAccount],
    full: Option<&FullImport>,
) -> Result<ImportPlan, Vec<RowError>> {
    let mut book = EmployerBook::new(employers);
    let rows: Vec<(StaffRow, String)> = rows
        .into_iter()
        .map(|row| {
            let code = book.resolve(&row.employer);
            (row, code)
        })
        .collect();
    let names = book.names();
    let mut errors = Vec::new();
    let covered = book.covered(full, &mut errors);
    let scope = full
        .zip(covered.as_ref())
        .map(|(full, covered)| LeaverScope {
            full,
            covered,
            names: &names,
        });
    let planned = plan_rows(rows, accounts, &book.codes_by_id(), &HashSet::new(), scope);
    match planned {
        Ok(plan) if errors.is_empty() => Ok(ImportPlan {
            employers: book.changes().to_vec(),
            ..plan
        }),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            errors.sort_by_key(|e| e.line);
            Err(errors)
        }
    }
}

/// Which employers' leavers a plan looks for: `covered` (of a full import
/// `full`), `names` giving each employer number's name.
#[derive(Debug, Clone, Copy)]
pub struct LeaverScope<'a> {
    /// The full import.
    pub full: &'a FullImport,
    /// The employer numbers whose missing people are leavers.
    pub covered: &'a BTreeSet<String>,
    /// Every employer number's name.
    pub names: &'a HashMap<String, String>,
}

/// Plans `rows` (each with its employer's number) against `accounts`: every
/// stored account of the rows' employers, and any other a row's username or
/// email address is. `employer_codes` gives every stored employer's number
/// by id; usernames in `reserved` are never generated (they are taken
/// somewhere `accounts` does not show). With `leavers`, the enabled
/// accounts of the covered employers that no row is are leavers. The plan
/// has no employer changes: those come from the [`EmployerBook`] that gave
/// the rows their numbers.
pub fn plan_rows(
    rows: Vec<(StaffRow, String)>,
    accounts: &[KnownAccount],
    employer_codes: &HashMap<i64, String>,
    reserved: &HashSet<String>,
    leavers: Option<LeaverScope<'_>>,
) -> Result<ImportPlan, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut plan = ImportPlan::default();
    let code_of_id: HashMap<i64, &str> = employer_codes
        .iter()
        .map(|(id, code)| (*id, code.as_str()))
        .collect();

    // Accounts, indexed every way a row can match them.
    let by_username: HashMap<UsernameKey, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (UsernameKey::from_typed(&a.username), i))
        .collect();
    let mut by_number: HashMap<(&str, &str), usize> = HashMap::new();
    let mut by_email_dob: HashMap<(&str, String, &str), usize> = HashMap::new();
    for (i, a) in accounts.iter().enumerate() {
        let code = code_of_id.get(&a.employer_id).copied().unwrap_or_default();
        if let Some(n) = &a.employee_number {
            by_number.insert((code, n.as_str()), i);
        }
        by_email_dob.insert(
            (code, a.email.to_ascii_lowercase(), a.date_of_birth.as_str()),
            i,
        );
    }

    // Usernames the file asks for explicitly are reserved before any is generated.
    let mut taken: HashSet<String> = by_username.keys().map(|k| k.as_str().to_owned()).collect();
    taken.extend(reserved.iter().cloned());
    for (row, _) in &rows {
        if let Some(u) = &row.username {
            taken.insert(u.key().as_str().to_owned());
        }
    }
    let mut matched: HashMap<usize, u64> = HashMap::new();
    let mut pending_new = Vec::new();

    for (row, code) in rows {
        let found = row
            .username
            .as_ref()
            .and_then(|u| by_username.get(&u.key()).copied())
            .or_else(|| {
                row.employee_number
                    .as_ref()
                    .and_then(|n| by_number.get(&(code.as_str(), n.as_str())).copied())
            })
            .or_else(|| {
                by_email_dob
                    .get(&(
                        code.as_str(),
                        row.email.key(),
                        row.date_of_birth.iso().as_str(),
                    ))
                    .copied()
                    .filter(|i| {
                        // An employee number in the file must not be overridden
                        // by an email match with a different number.
                        match (&row.employee_number, &accounts[*i].employee_number) {
                            (Some(a), Some(b)) => a.as_str() == b,
                            _ => true,
                        }
                    })
            });
        let Some(index) = found else {
            pending_new.push((row, code));
            continue;
        };
        if let Some(n) = &row.employee_number
            && let Some(&other) = by_number.get(&(code.as_str(), n.as_str()))
            && other != index
        {
            errors.push(RowError {
                line: row.line,
                reason: format!(
                    "username {} and employee_number {} belong to different people ({} and {})",
                    accounts[index].username,
                    n.as_str(),
                    accounts[index].username,
                    accounts[other].username
                ),
            });
            continue;
        }
        let known = &accounts[index];
        let known_code = code_of_id
            .get(&known.employer_id)
            .copied()
            .unwrap_or_default();
        if known_code != code {
            errors.push(RowError {
                line: row.line,
                reason: format!(
                    "username {} belongs to a person at employer {known_code}, not {code}",
                    known.username
                ),
            });
            continue;
        }
        if let Some(first) = matched.insert(index, row.line) {
            errors.push(RowError {
                line: row.line,
                reason: format!("this is the same person as line {first}"),
            });
            continue;
        }
        let username = match &row.username {
            Some(u) if u.key() != UsernameKey::from_typed(&known.username) => {
                if by_username.contains_key(&u.key()) {
                    errors.push(RowError {
                        line: row.line,
                        reason: format!("username {u} is already used by another person"),
                    });
                    continue;
                }
                u.clone()
            }
            _ => Username::from_trusted(known.username.clone()),
        };
        let mut changed = Vec::new();
        if username.as_str() != known.username {
            changed.push("username");
        }
        if row.first_name.as_str() != known.first_name {
            changed.push("first_name");
        }
        if row.last_name.as_str() != known.last_name {
            changed.push("last_name");
        }
        if row.date_of_birth.iso() != known.date_of_birth {
            changed.push("date_of_birth");
        }
        let email_changed = row.email.as_str() != known.email;
        if email_changed {
            changed.push("email");
        }
        if row.employee_number.as_ref().map(EmployeeNumber::as_str)
            != known.employee_number.as_deref()
            && row.employee_number.is_some()
        {
            changed.push("employee_number");
        }
        let role_changed = row.role.is_some_and(|r| r != known.role);
        if role_changed {
            changed.push("role");
        }
        let returning = known.is_leaver();
        if returning {
            plan.returners.push(Returner {
                line: row.line,
                id: known.id,
                username: username.to_string(),
            });
        }
        if changed.is_empty() {
            // A returner whose details are as they were is counted as
            // coming back, not as up to date.
            if !returning {
                plan.unchanged += 1;
            }
        } else {
            plan.updates.push(AccountUpdate {
                line: row.line,
                id: known.id,
                username,
                // Only a change of address (not of letter case) voids links and is told to both addresses.
                old_email: (email_changed && row.email.key() != known.email.to_ascii_lowercase())
                    .then(|| known.email.clone()),
                old_role: role_changed.then_some(known.role),
                row,
                changed,
            });
        }
    }

    for (row, code) in pending_new {
        let (username, generated) = match &row.username {
            Some(u) => (u.clone(), false),
            None => {
                let stem = username::stem(&code, row.first_name.as_str(), row.last_name.as_str());
                match username::generate(&stem, |c| taken.contains(c)) {
                    Some(u) => (u, true),
                    None => {
                        errors.push(RowError {
                            line: row.line,
                            reason: format!(
                                "no username is free for {stem}01 to {stem}999: give one in the username column"
                            ),
                        });
                        continue;
                    }
                }
            }
        };
        taken.insert(username.key().as_str().to_owned());
        plan.creates.push(NewAccount {
            line: row.line,
            employer_code: code,
            username,
            generated,
            row,
        });
    }

    check_shared_addresses(&plan, accounts, &mut errors);
    if let Some(scope) = leavers {
        let candidates = accounts.iter().enumerate().map(|(i, a)| Candidate {
            id: a.id,
            username: &a.username,
            employer_code: code_of_id.get(&a.employer_id).copied().unwrap_or_default(),
            role: a.role,
            enabled: a.disabled_at.is_none(),
            in_file: matched.contains_key(&i),
        });
        (plan.leavers, plan.coverage) =
            find_leavers(candidates, scope.covered, scope.names, scope.full);
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

//! Planning what a checked staff file changes in storage.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::leavers::{
    Candidate, EmployerLeavers, FullImport, Leaver, Returner, covered_employers,
    disabled_as_leaver, find_leavers,
};
use super::read::{RowError, StaffRow};
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

/// Numbers given to employers that the file names without a number.
const ALLOCATED_CODES_FROM: u32 = 900;

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
    let mut errors = Vec::new();
    let mut plan = ImportPlan::default();

    // Employers: by number, or by name for files that give only names.
    let mut by_code: HashMap<String, (Option<i64>, String)> = employers
        .iter()
        .map(|e| (e.code.clone(), (Some(e.id), e.name.clone())))
        .collect();
    let mut by_name: HashMap<String, String> = employers
        .iter()
        .map(|e| (e.name.to_lowercase(), e.code.clone()))
        .collect();
    let mut next_code = ALLOCATED_CODES_FROM;
    let mut row_codes = Vec::with_capacity(rows.len());
    for row in &rows {
        let code = match (&row.employer.code, &row.employer.name) {
            (Some(code), name) => {
                let entry = by_code.entry(code.clone()).or_insert_with(|| {
                    let name = name.clone().unwrap_or_else(|| format!("Employer {code}"));
                    plan.employers.push(EmployerChange {
                        code: code.clone(),
                        name: name.clone(),
                        existing_id: None,
                    });
                    (None, name)
                });
                if let Some(name) = name
                    && entry.1 != *name
                {
                    entry.1 = name.clone();
                    match plan.employers.iter_mut().find(|c| c.code == *code) {
                        Some(change) => change.name = name.clone(),
                        None => plan.employers.push(EmployerChange {
                            code: code.clone(),
                            name: name.clone(),
                            existing_id: entry.0,
                        }),
                    }
                }
                by_name.insert(entry.1.to_lowercase(), code.clone());
                code.clone()
            }
            (None, Some(name)) => match by_name.get(&name.to_lowercase()) {
                Some(code) => code.clone(),
                None => {
                    while by_code.contains_key(&next_code.to_string()) {
                        next_code += 1;
                    }
                    let code = next_code.to_string();
                    by_code.insert(code.clone(), (None, name.clone()));
                    by_name.insert(name.to_lowercase(), code.clone());
                    plan.employers.push(EmployerChange {
                        code: code.clone(),
                        name: name.clone(),
                        existing_id: None,
                    });
                    code
                }
            },
            (None, None) => String::new(),
        };
        row_codes.push(code);
    }
    let code_of_id: HashMap<i64, &str> =
        employers.iter().map(|e| (e.id, e.code.as_str())).collect();
    // The employers the rows name: those a full import covers by default.
    let in_file: BTreeSet<String> = row_codes
        .iter()
        .filter(|c| !c.is_empty())
        .cloned()
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
    for row in &rows {
        if let Some(u) = &row.username {
            taken.insert(u.key().as_str().to_owned());
        }
    }
    let mut matched: HashMap<usize, u64> = HashMap::new();
    let mut pending_new = Vec::new();

    for (row, code) in rows.into_iter().zip(row_codes) {
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
    if let Some(full) = full {
        let names: HashMap<String, String> = by_code
            .iter()
            .map(|(code, (_, name))| (code.clone(), name.clone()))
            .collect();
        match covered_employers(full, &names, &in_file) {
            Ok(covered) => {
                let candidates = accounts.iter().enumerate().map(|(i, a)| Candidate {
                    id: a.id,
                    username: &a.username,
                    employer_code: code_of_id.get(&a.employer_id).copied().unwrap_or_default(),
                    role: a.role,
                    enabled: a.disabled_at.is_none(),
                    in_file: matched.contains_key(&i),
                });
                (plan.leavers, plan.coverage) = find_leavers(candidates, &covered, &names, full);
            }
            Err(problems) => errors.extend(problems),
        }
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// Who a person is, for telling whether two accounts are one person's (one
/// per employer, as Jane Smith has two): names and date of birth.
fn person_of(first: &str, last: &str, date_of_birth: &str) -> (String, String, String) {
    (
        first.to_lowercase(),
        last.to_lowercase(),
        date_of_birth.to_owned(),
    )
}

/// One holder of an address after the import: a stored account (by its
/// index among the known accounts) or a new person on a line of the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holder {
    Stored(usize),
    New(usize),
}

/// Adds `holder` to the holders of the address hashed to `key`.
fn hold_key(
    first: &mut HashMap<u64, Option<Holder>>,
    more: &mut HashMap<u64, Vec<Holder>>,
    key: u64,
    holder: Holder,
) {
    match first.get_mut(&key) {
        Some(Some(_)) => more.entry(key).or_default().push(holder),
        Some(slot) => *slot = Some(holder),
        None => {
            first.insert(key, Some(holder));
        }
    }
}

/// Refuses every row that would make an address the address of two
/// different people: the recovery email for one would then carry the
/// username and reset link of the other. Only rows that add a person or
/// change one are checked, so an address two people already shared before
/// this check existed does not stop every later import.
fn check_shared_addresses(
    plan: &ImportPlan,
    accounts: &[KnownAccount],
    errors: &mut Vec<RowError>,
) {
    let hash = |key: &str| {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key)
    };
    // The addresses the file adds or changes, and who then holds them. Most
    // have one holder, kept in `first`; the second and later in `more`.
    let mut first: HashMap<u64, Option<Holder>> = HashMap::new();
    let mut more: HashMap<u64, Vec<Holder>> = HashMap::new();
    for update in &plan.updates {
        first.entry(hash(&update.row.email.key())).or_insert(None);
    }
    for (i, create) in plan.creates.iter().enumerate() {
        let key = hash(&create.row.email.key());
        hold_key(&mut first, &mut more, key, Holder::New(i));
    }
    if first.is_empty() {
        return;
    }
    let updated: HashMap<i64, &AccountUpdate> = plan.updates.iter().map(|u| (u.id, u)).collect();
    // Each stored account's address after the import.
    let stored_email = |i: usize| -> String {
        let a = &accounts[i];
        match updated.get(&a.id) {
            Some(u) => u.row.email.key(),
            None => a.email.to_ascii_lowercase(),
        }
    };
    // Each stored account as it will be: (address, person).
    let stored = |i: usize| -> (String, (String, String, String)) {
        let a = &accounts[i];
        let person = match updated.get(&a.id) {
            Some(u) => person_of(
                u.row.first_name.as_str(),
                u.row.last_name.as_str(),
                &u.row.date_of_birth.iso(),
            ),
            None => person_of(&a.first_name, &a.last_name, &a.date_of_birth),
        };
        (stored_email(i), person)
    };
    for i in 0..accounts.len() {
        let key = hash(&stored_email(i));
        if first.contains_key(&key) {
            hold_key(&mut first, &mut more, key, Holder::Stored(i));
        }
    }
    let of = |holder: Holder| -> (String, (String, String, String)) {
        match holder {
            Holder::Stored(i) => stored(i),
            Holder::New(i) => {
                let row = &plan.creates[i].row;
                (
                    row.email.key(),
                    person_of(
                        row.first_name.as_str(),
                        row.last_name.as_str(),
                        &row.date_of_birth.iso(),
                    ),
                )
            }
        }
    };
    // Only the rows that add or change a person are checked: the line of
    // each stored account they change.
    let index_of: HashMap<i64, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id, i))
        .collect();
    let changed_lines: HashMap<usize, u64> = plan
        .updates
        .iter()
        .filter(|u| {
            u.changed
                .iter()
                .any(|f| matches!(*f, "email" | "first_name" | "last_name" | "date_of_birth"))
        })
        .filter_map(|u| index_of.get(&u.id).map(|i| (*i, u.line)))
        .collect();
    let line_of = |holder: Holder| match holder {
        Holder::Stored(i) => changed_lines.get(&i).copied(),
        Holder::New(i) => Some(plan.creates[i].line),
    };
    // Only addresses with more than one holder can be shared.
    for (key, rest) in &more {
        let list: Vec<Holder> = first
            .get(key)
            .copied()
            .flatten()
            .into_iter()
            .chain(rest.iter().copied())
            .collect();
        let people: Vec<(Holder, String, (String, String, String))> = list
            .iter()
            .map(|h| {
                let (email, person) = of(*h);
                (*h, email, person)
            })
            .collect();
        for (me, email, person) in &people {
            let Some(line) = line_of(*me) else {
                continue;
            };
            let other = people
                .iter()
                .find(|(h, e, p)| h != me && e == email && p != person)
                .map(|(h, ..)| *h);
            let reason = match other {
                Some(Holder::Stored(i)) => format!(
                    "email {email:?} is on file for another person (account {}): one address must not reach two people's accounts",
                    accounts[i].username
                ),
                Some(Holder::New(i)) => format!(
                    "email {email:?} is also on line {} for another person: one address must not reach two people's accounts",
                    plan.creates[i].line
                ),
                None => continue,
            };
            errors.push(RowError { line, reason });
        }
    }
}

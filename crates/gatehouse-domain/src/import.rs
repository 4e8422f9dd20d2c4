//! The staff file (`gatehouse import`): reading and checking it, then
//! planning what it changes.
//!
//! Format (DESIGN.md): UTF-8, RFC 4180, a header row; columns
//! `employer,username,first_name,last_name,date_of_birth,email` and optionally
//! `employee_number,role`, in any order. A file with any bad row imports
//! nothing: every problem is reported with its line number, so the HR team
//! can fix the whole file in one go.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::account::{
    AllowedDomains, DateOfBirth, DateProblem, EmailAddress, EmailProblem, EmployeeNumber,
    EmployerRef, PersonName, Role, Username, UsernameKey,
};
use crate::username;

/// Columns every file must have.
pub const REQUIRED_COLUMNS: [&str; 6] = [
    "employer",
    "username",
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
];
/// Columns a file may have.
pub const OPTIONAL_COLUMNS: [&str; 2] = ["employee_number", "role"];

/// One person, as the file describes them.
#[derive(Debug, Clone)]
pub struct StaffRow {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    /// Their employer.
    pub employer: EmployerRef,
    /// Their username, if the file gives one.
    pub username: Option<Username>,
    /// First name.
    pub first_name: PersonName,
    /// Last name.
    pub last_name: PersonName,
    /// Date of birth.
    pub date_of_birth: DateOfBirth,
    /// Work email address.
    pub email: EmailAddress,
    /// Employee number, if given.
    pub employee_number: Option<EmployeeNumber>,
    /// Role, if the file gives one. A file without the column, or a blank
    /// cell, leaves a stored account's role alone (an HR feed never demotes
    /// an administrator by omission); a new account is then staff.
    pub role: Option<Role>,
}

/// A problem with one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The line number (the header is line 1; 0 means the file as a whole).
    pub line: u64,
    /// What is wrong, in words an HR officer can act on.
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "file: {}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

fn file_error(reason: impl Into<String>) -> Vec<RowError> {
    vec![RowError {
        line: 0,
        reason: reason.into(),
    }]
}

/// Reads and checks a whole file. Either every row is good, or every problem is returned.
pub fn read_staff_file(
    input: impl Read,
    today: jiff::civil::Date,
    allowed: &AllowedDomains,
) -> Result<Vec<StaffRow>, Vec<RowError>> {
    let newlines = std::rc::Rc::new(std::cell::RefCell::new(Newlines::default()));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(CountingReader {
            inner: input,
            offset: 0,
            newlines: newlines.clone(),
        });
    // The line a text editor shows for the record starting at `byte`: the
    // csv crate's own count is one short after a header ending in CRLF.
    let line_at = |byte: u64| newlines.borrow_mut().line_at(byte);
    let headers = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(file_error(format!("the header row could not be read: {e}"))),
    };
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return Err(file_error("the file is empty: it needs a header row"));
    }
    let mut columns: HashMap<String, usize> = HashMap::new();
    let mut errors = Vec::new();
    for (i, raw) in headers.iter().enumerate() {
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(file_error("the header row is not UTF-8 text"));
        };
        let name = text
            .trim_start_matches('\u{feff}') // Excel's byte-order mark
            .trim()
            .to_ascii_lowercase();
        if !REQUIRED_COLUMNS.contains(&name.as_str()) && !OPTIONAL_COLUMNS.contains(&name.as_str())
        {
            errors.push(RowError {
                line: 1,
                reason: format!(
                    "unknown column {name:?}; the columns are {} and optionally {}",
                    REQUIRED_COLUMNS.join(", "),
                    OPTIONAL_COLUMNS.join(", ")
                ),
            });
        } else if columns.insert(name.clone(), i).is_some() {
            errors.push(RowError {
                line: 1,
                reason: format!("column {name:?} appears twice"),
            });
        }
    }
    for required in REQUIRED_COLUMNS {
        if !columns.contains_key(required) {
            errors.push(RowError {
                line: 1,
                reason: format!("missing column {required:?}"),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = line_at(reader.position().byte());
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                errors.push(RowError {
                    line: e.position().map_or(line, |p| line_at(p.byte())),
                    reason: format!("this line could not be read as CSV: {e}"),
                });
                break;
            }
        }
        // The record ends on the line of its terminator (or of the file's
        // last byte); it starts as many lines up as its quoted fields hold
        // line breaks. (Its own position may be a blank line before it.)
        let end = reader.position().byte().saturating_sub(1);
        let breaks: usize = record
            .iter()
            .map(|field| field.iter().filter(|b| **b == b'\n').count())
            .sum();
        let line = line_at(end).saturating_sub(breaks as u64).max(line);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // a blank line, often at the end of a file from Excel
        }
        if record.len() != headers.len() {
            errors.push(RowError {
                line,
                reason: format!(
                    "has {} fields but the header has {}",
                    record.len(),
                    headers.len()
                ),
            });
            continue;
        }
        match parse_row(line, &record, &columns, today, allowed) {
            Ok(row) => rows.push(row),
            Err(mut e) => errors.append(&mut e),
        }
    }
    check_duplicates(&rows, &mut errors);
    if rows.is_empty() && errors.is_empty() {
        errors.push(RowError {
            line: 0,
            reason: "the file has a header but no people".to_owned(),
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// Where the line breaks of the file read so far are, for turning a
/// record's byte offset into the line a text editor shows. Only the breaks
/// the csv reader has read ahead of the current record are kept: a
/// 2,000,000-row file costs no more than one buffer's worth.
#[derive(Debug, Default)]
struct Newlines {
    /// Offsets of line feeds not yet passed by a record.
    ahead: std::collections::VecDeque<u64>,
    /// Line feeds already passed.
    passed: u64,
}

impl Newlines {
    /// The line (from 1) holding the byte at `offset`, for offsets that
    /// never go backwards.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.ahead.front().is_some_and(|&at| at < offset) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// Passes a file through, noting where its line feeds are. CRLF ends a
/// line at its LF, LF alone too, and a line break inside a quoted field is
/// a line as a text editor counts it.
struct CountingReader<R> {
    inner: R,
    offset: u64,
    newlines: std::rc::Rc<std::cell::RefCell<Newlines>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut newlines = self.newlines.borrow_mut();
        for (i, byte) in buf[..n].iter().enumerate() {
            if *byte == b'\n' {
                newlines.ahead.push_back(self.offset + i as u64);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

fn parse_row(
    line: u64,
    record: &csv::ByteRecord,
    columns: &HashMap<String, usize>,
    today: jiff::civil::Date,
    allowed: &AllowedDomains,
) -> Result<StaffRow, Vec<RowError>> {
    let mut errors = Vec::new();
    // Each column's text: "" when the optional column is absent.
    let mut text = |name: &str| -> String {
        let Some(&index) = columns.get(name) else {
            return String::new();
        };
        match std::str::from_utf8(record.get(index).unwrap_or_default()) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                errors.push(RowError {
                    line,
                    reason: format!("{name} is not UTF-8 text"),
                });
                String::new()
            }
        }
    };
    let employer = text("employer");
    let username = text("username");
    let first = text("first_name");
    let last = text("last_name");
    let dob = text("date_of_birth");
    let email = text("email");
    let employee_number = text("employee_number");
    let role = text("role");

    let mut keep = Keep { line, errors };
    let employer = keep.take(EmployerRef::parse(&employer));
    let username = if username.trim().is_empty() {
        Some(None)
    } else {
        keep.take(Username::parse(&username).map(Some))
    };
    let first_name = keep.take(PersonName::parse(&first).map_err(|e| format!("first_name {e}")));
    let last_name = keep.take(PersonName::parse(&last).map_err(|e| format!("last_name {e}")));
    let date_of_birth = keep.take(DateOfBirth::parse(&dob, today).map_err(|p| match p {
        DateProblem::Empty => "date_of_birth is empty".to_owned(),
        DateProblem::NotReal => {
            format!("date_of_birth {dob:?} is not a real date written YYYY-MM-DD or DD/MM/YYYY")
        }
        DateProblem::InFuture => format!("date_of_birth {dob:?} is not in the past"),
        DateProblem::TooLongAgo => format!("date_of_birth {dob:?} is before 1900"),
    }));
    let email = keep.take(match EmailAddress::parse(&email) {
        Ok(addr) if allowed.permits(&addr) => Ok(addr),
        Ok(_) => Err(format!(
            "email {email:?} is not in an allowed domain ({})",
            allowed.for_people()
        )),
        Err(EmailProblem::Empty) => Err("email is empty".to_owned()),
        Err(EmailProblem::TooLong) => Err("email is too long".to_owned()),
        Err(EmailProblem::Format) => Err(format!("email {email:?} is not an email address")),
    });
    let employee_number = keep.take(EmployeeNumber::parse(&employee_number));
    let role = if role.trim().is_empty() {
        Some(None)
    } else {
        keep.take(Role::parse(&role).map(Some))
    };
    let errors = keep.errors;
    match (
        employer,
        username,
        first_name,
        last_name,
        date_of_birth,
        email,
        employee_number,
        role,
    ) {
        (
            Some(employer),
            Some(username),
            Some(first_name),
            Some(last_name),
            Some(date_of_birth),
            Some(email),
            Some(employee_number),
            Some(role),
        ) if errors.is_empty() => Ok(StaffRow {
            line,
            employer,
            username,
            first_name,
            last_name,
            date_of_birth,
            email,
            employee_number,
            role,
        }),
        _ => Err(errors),
    }
}

/// Collects the problems of one row while keeping its good values.
struct Keep {
    line: u64,
    errors: Vec<RowError>,
}

impl Keep {
    fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|reason| {
                self.errors.push(RowError {
                    line: self.line,
                    reason,
                })
            })
            .ok()
    }
}

/// The employer as the file identifies it: by number if it has one, else by name.
fn employer_identity(e: &EmployerRef) -> String {
    match (&e.code, &e.name) {
        (Some(code), _) => format!("#{code}"),
        (None, Some(name)) => name.to_lowercase(),
        (None, None) => String::new(),
    }
}

fn check_duplicates(rows: &[StaffRow], errors: &mut Vec<RowError>) {
    let mut usernames: HashMap<UsernameKey, u64> = HashMap::new();
    let mut numbers: HashMap<(String, String), u64> = HashMap::new();
    for row in rows {
        if let Some(u) = &row.username
            && let Some(first) = usernames.insert(u.key(), row.line)
        {
            errors.push(RowError {
                line: row.line,
                reason: format!("username {u} is also on line {first}"),
            });
        }
        if let Some(n) = &row.employee_number {
            let key = (employer_identity(&row.employer), n.as_str().to_owned());
            if let Some(first) = numbers.insert(key, row.line) {
                errors.push(RowError {
                    line: row.line,
                    reason: format!(
                        "employee_number {} at this employer is also on line {first}",
                        n.as_str()
                    ),
                });
            }
        }
    }
}

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
        if changed.is_empty() {
            plan.unchanged += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> jiff::civil::Date {
        jiff::civil::date(2026, 11, 25)
    }

    fn allowed() -> AllowedDomains {
        AllowedDomains::parse("nhs.net").expect("valid")
    }

    fn read(text: &str) -> Result<Vec<StaffRow>, Vec<RowError>> {
        read_staff_file(text.as_bytes(), today(), &allowed())
    }

    const HEADER: &str = "employer,username,first_name,last_name,date_of_birth,email";

    #[test]
    fn a_good_file_reads_every_row() {
        let rows = read(&format!(
            "{HEADER}\n999 Demo Trust,,Jane,Smith,1985-03-14,jane.smith@nhs.net\n\
             432,432JDOE01,John,Doe,01/02/1970,John.Doe@NHS.net\n"
        ))
        .expect("valid");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].username, None);
        assert_eq!(
            rows[1].username.as_ref().map(|u| u.as_str()),
            Some("432JDOE01")
        );
        assert_eq!(rows[1].date_of_birth.iso(), "1970-02-01");
        assert_eq!(rows[1].role, None, "no role column: roles are left alone");
    }

    #[test]
    fn columns_may_come_in_any_order_with_optional_ones_and_a_bom() {
        let rows = read(
            "\u{feff}Email,role,employee_number,date_of_birth,last_name,first_name,username,employer\n\
             jane@nhs.net,helpdesk,E123,1985-03-14,Smith,Jane,,999\n",
        )
        .expect("valid");
        assert_eq!(rows[0].role, Some(Role::Helpdesk));
        assert_eq!(
            rows[0].employee_number.as_ref().map(|n| n.as_str()),
            Some("E123")
        );
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line_and_reason() {
        let errors = read(&format!(
            "{HEADER},role\n\
             999,,Jane,Smith,1985-03-14,jane@nhs.net,staff\n\
             999,,,Smith,31/02/1985,jane@gmail.com,staff\n\
             999,,Ann,Lee,1985-03-14,not-an-email,boss\n\
             \"999\",\"bad name!\",Bo,Li,2090-01-01,bo@nhs.net,staff\n"
        ))
        .expect_err("invalid");
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 3, 3, 4, 4, 5, 5]);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text[0].contains("first_name is empty"), "{text:?}");
        assert!(
            text[1].contains("date_of_birth") && text[1].contains("real date"),
            "{text:?}"
        );
        assert!(
            text[2].contains("not in an allowed domain (nhs.net)"),
            "{text:?}"
        );
        assert!(text[3].contains("not an email address"), "{text:?}");
        assert!(text[4].contains("role must be"), "{text:?}");
        assert!(text[5].contains("username may only contain"), "{text:?}");
        assert!(text[6].contains("in the past"), "{text:?}");
    }

    #[test]
    fn header_problems_are_reported_before_rows() {
        let errors = read("employer,username,first_name,emial,date_of_birth\n").expect_err("bad");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t.contains("unknown column \"emial\"")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("missing column \"last_name\"")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("missing column \"email\"")),
            "{text:?}"
        );
        assert!(read("").is_err());
        assert!(
            read(&format!("{HEADER}\n")).is_err(),
            "a header alone imports nobody"
        );
    }

    /// Issue 16, defect 5: with CRLF line endings (what Excel and most HR
    /// systems export, and what RFC 4180 specifies) every line number was
    /// one short. The number must be the one a text editor shows, for LF,
    /// CRLF and quoted fields holding line breaks.
    #[test]
    fn line_numbers_are_the_editors_for_lf_crlf_and_quoted_line_breaks() {
        let good = "999,,Jane,Smith,1985-03-14,jane@nhs.net";
        let bad = "999,,Ann,Lee,1985-03-14,not-an-email";
        let quoted = "\"999 Smith,\nJones\",,Bo,Li,1985-03-14,bo@nhs.net";
        for (what, eol) in [("LF", "\n"), ("CRLF", "\r\n")] {
            // Header on line 1, the bad row on line 4.
            let file = [HEADER, good, good, bad, ""].join(eol);
            let errors = read(&file).expect_err("invalid");
            assert_eq!(errors[0].line, 4, "{what}: {errors:?}");
            // A quoted field with a line break takes two lines: the bad
            // row after it is on line 5 in an editor.
            let file = [HEADER, good, &quoted.replace('\n', eol), bad, ""].join(eol);
            let errors = read(&file).expect_err("invalid");
            let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
            assert!(lines.contains(&5), "{what}, quoted: {errors:?}");
            assert!(!lines.contains(&4), "{what}, quoted: {errors:?}");
            // Good rows are numbered the same way.
            let file = [HEADER, good, "", &good.replace("Jane", "Ann"), ""].join(eol);
            let rows = read(&file).expect("valid");
            let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
            assert_eq!(lines, [2, 4], "{what}");
        }
    }

    #[test]
    fn wrong_field_counts_and_bad_quotes_are_reported() {
        let errors = read(&format!("{HEADER}\n999,,Jane,Smith,1985-03-14\n")).expect_err("bad");
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].reason.contains("5 fields"));
        let errors = read(&format!(
            "{HEADER}\n999,,\"Jane,Smith,1985-03-14,jane@nhs.net\n"
        ))
        .expect_err("bad");
        assert_eq!(errors[0].line, 2);
    }

    #[test]
    fn quoted_fields_may_hold_commas_and_line_breaks_are_refused_in_names() {
        let rows = read(&format!(
            "{HEADER}\n\"999 Smith, Jones and Partners\",,Jane,Smith,1985-03-14,jane@nhs.net\n"
        ))
        .expect("valid");
        assert_eq!(
            rows[0].employer.name.as_deref(),
            Some("Smith, Jones and Partners")
        );
        let errors = read(&format!(
            "{HEADER}\n999,,\"Ja\nne\",Smith,1985-03-14,jane@nhs.net\n"
        ))
        .expect_err("bad");
        assert!(errors[0].reason.contains("control character"), "{errors:?}");
    }

    /// Issue 16, defect 7: bidirectional controls and line separators were
    /// accepted in names, letting an HR file make one person look like
    /// another in the console and in emails.
    #[test]
    fn names_with_bidirectional_controls_or_line_separators_are_refused() {
        for (c, what) in [
            ('\u{202E}', "bidirectional control"),
            ('\u{2066}', "bidirectional control"),
            ('\u{2069}', "bidirectional control"),
            ('\u{200F}', "bidirectional control"),
            ('\u{2028}', "line or paragraph separator"),
            ('\u{2029}', "line or paragraph separator"),
            ('\u{200B}', "invisible character"),
        ] {
            let errors = read(&format!(
                "{HEADER}\n999,,Jane,Smith,1985-03-14,jane@nhs.net\n\
                 999,,Ann,Le{c}e,1985-03-14,ann@nhs.net\n\
                 999 Tr{c}ust,,Bo,Li,1985-03-14,bo@nhs.net\n"
            ))
            .expect_err("refused");
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let code = format!("U+{:04X}", u32::from(c));
            assert_eq!(errors.len(), 2, "{text:?}");
            assert!(
                text[0].starts_with("line 3: last_name contains a") && text[0].contains(what),
                "{text:?}"
            );
            assert!(text[0].contains(&code), "{text:?}");
            assert!(
                text[1].starts_with("line 4: employer contains a") && text[1].contains(what),
                "{text:?}"
            );
        }
        // Scripts that need the zero-width joiners keep them.
        assert!(
            read(&format!(
                "{HEADER}\n999,,Jane,Smi\u{200D}th,1985-03-14,jane@nhs.net\n"
            ))
            .is_ok()
        );
    }

    #[test]
    fn duplicates_within_the_file_are_reported() {
        let errors = read(&format!(
            "{HEADER},employee_number\n\
             999,A1,Jane,Smith,1985-03-14,jane@nhs.net,1\n\
             999,a1,John,Smith,1985-03-14,john@nhs.net,2\n\
             999,,Ann,Lee,1985-03-14,ann@nhs.net,1\n"
        ))
        .expect_err("duplicates");
        assert_eq!(errors.len(), 2);
        assert!(errors[0].reason.contains("also on line 2"));
        assert!(errors[1].reason.contains("employee_number 1"));
    }

    #[test]
    fn not_utf8_is_reported() {
        let mut bytes = format!("{HEADER}\n999,,J").into_bytes();
        bytes.push(0xff);
        bytes.extend_from_slice(b"ne,Smith,1985-03-14,jane@nhs.net\n");
        let errors = read_staff_file(bytes.as_slice(), today(), &allowed()).expect_err("bad");
        assert!(errors[0].reason.contains("not UTF-8"), "{errors:?}");
    }

    fn demo_rows() -> Vec<StaffRow> {
        read(&format!(
            "{HEADER},employee_number\n\
             999 Demo Trust,,Jane,Smith,1985-03-14,jane.smith@nhs.net,E1\n\
             999 Demo Trust,,John,Smith,1990-01-01,john.smith@nhs.net,E2\n\
             432 Other Trust,,Jane,Smith,1985-03-14,jane.smith@nhs.net,\n\
             Leeds Teaching Hospitals,,Ann,Lee,1970-05-05,ann.lee@nhs.net,\n"
        ))
        .expect("valid")
    }

    #[test]
    fn a_first_import_creates_employers_and_generates_usernames() {
        let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
        let names: Vec<&str> = plan.creates.iter().map(|c| c.username.as_str()).collect();
        assert_eq!(
            names,
            ["999JSMITH01", "999JSMITH02", "432JSMITH01", "900ALEE01"]
        );
        assert!(plan.creates.iter().all(|c| c.generated));
        let codes: Vec<&str> = plan.employers.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["999", "432", "900"]);
        assert_eq!(plan.employers[2].name, "Leeds Teaching Hospitals");
    }

    fn stored(plan: &ImportPlan) -> (Vec<KnownEmployer>, Vec<KnownAccount>) {
        let employers: Vec<KnownEmployer> = plan
            .employers
            .iter()
            .enumerate()
            .map(|(i, e)| KnownEmployer {
                id: i as i64 + 1,
                code: e.code.clone(),
                name: e.name.clone(),
            })
            .collect();
        let accounts = plan
            .creates
            .iter()
            .enumerate()
            .map(|(i, c)| KnownAccount {
                id: i as i64 + 100,
                employer_id: employers
                    .iter()
                    .find(|e| e.code == c.employer_code)
                    .map(|e| e.id)
                    .unwrap_or_default(),
                username: c.username.to_string(),
                first_name: c.row.first_name.as_str().to_owned(),
                last_name: c.row.last_name.as_str().to_owned(),
                date_of_birth: c.row.date_of_birth.iso(),
                email: c.row.email.to_string(),
                employee_number: c
                    .row
                    .employee_number
                    .as_ref()
                    .map(|n| n.as_str().to_owned()),
                role: c.row.role.unwrap_or_default(),
            })
            .collect();
        (employers, accounts)
    }

    #[test]
    fn a_file_without_roles_never_demotes_but_an_explicit_role_changes_it() {
        let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
        let (employers, mut accounts) = stored(&plan);
        accounts[0].role = Role::Admin;
        let again = plan_import(demo_rows(), &employers, &accounts).expect("plans");
        assert_eq!(
            again.updates.len(),
            0,
            "no role given: the admin stays admin"
        );
        let mut rows = demo_rows();
        rows[0].role = Some(Role::Staff);
        let demoted = plan_import(rows, &employers, &accounts).expect("plans");
        assert_eq!(demoted.updates.len(), 1);
        assert_eq!(demoted.updates[0].changed, ["role"]);
    }

    #[test]
    fn reimporting_the_same_file_changes_nothing() {
        let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
        let (employers, accounts) = stored(&plan);
        let again = plan_import(demo_rows(), &employers, &accounts).expect("plans");
        assert_eq!(again.creates.len(), 0);
        assert_eq!(again.updates.len(), 0);
        assert_eq!(again.employers.len(), 0);
        assert_eq!(again.unchanged, 4);
    }

    #[test]
    fn reimport_updates_in_place_and_flags_email_changes() {
        let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
        let (employers, accounts) = stored(&plan);
        let changed = read(&format!(
            "{HEADER},employee_number\n\
             999 Demo Trust,,Jane,Smith-Jones,1985-03-14,jane.smith-jones@nhs.net,E1\n\
             999 Demo Trust,,John,Smith,1990-01-01,JOHN.SMITH@nhs.net,E2\n\
             999 Demo Trust,,Zed,New,1999-09-09,zed@nhs.net,E9\n"
        ))
        .expect("valid");
        let plan = plan_import(changed, &employers, &accounts).expect("plans");
        assert_eq!(plan.updates.len(), 2);
        let jane = &plan.updates[0];
        assert_eq!(
            jane.username.as_str(),
            "999JSMITH01",
            "a username is never regenerated"
        );
        assert_eq!(jane.changed, ["last_name", "email"]);
        assert_eq!(jane.old_email.as_deref(), Some("jane.smith@nhs.net"));
        let john = &plan.updates[1];
        assert_eq!(john.changed, ["email"]);
        assert_eq!(
            john.old_email, None,
            "a change of case is not a new address"
        );
        assert_eq!(plan.creates.len(), 1);
        assert_eq!(plan.creates[0].username.as_str(), "999ZNEW01");
    }

    /// Issue 16, defect 3: the console refused an email change to another
    /// person's address, but the staff file accepted it, after which one
    /// mailbox received another person's username and reset link.
    #[test]
    fn the_staff_file_refuses_one_address_for_two_different_people() {
        let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
        let (employers, accounts) = stored(&plan);
        // A newcomer with a stored person's address.
        let rows = read(&format!(
            "{HEADER}\n999 Demo Trust,,Ann,Jones,1980-01-01,John.Smith@nhs.net\n"
        ))
        .expect("valid");
        let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 2);
        assert!(
            errors[0]
                .reason
                .contains("is on file for another person (account 999JSMITH02)"),
            "{errors:?}"
        );
        // A stored person changed to another's address.
        let rows = read(&format!(
            "{HEADER}\n999 Demo Trust,999JSMITH01,Jane,Smith,1985-03-14,ann.lee@nhs.net\n"
        ))
        .expect("valid");
        let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
        assert!(errors[0].reason.contains("account 900ALEE01"), "{errors:?}");
        // Two newcomers in one file: both lines are reported.
        let rows = read(&format!(
            "{HEADER}\n999,,Bo,Li,1980-01-01,shared@nhs.net\n\
             999,,Cy,Ng,1981-01-01,shared@nhs.net\n"
        ))
        .expect("valid");
        let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "line 2: email \"shared@nhs.net\" is also on line 3 for another person: one address must not reach two people's accounts",
                "line 3: email \"shared@nhs.net\" is also on line 2 for another person: one address must not reach two people's accounts",
            ]
        );
        // One person at a third employer may share their address; two
        // people may swap addresses in one file.
        let rows = read(&format!(
            "{HEADER}\n555 Third Trust,,JANE,smith,14/03/1985,jane.smith@nhs.net\n\
             999 Demo Trust,999JSMITH02,John,Smith,1990-01-01,ann.lee@nhs.net\n\
             900,900ALEE01,Ann,Lee,1970-05-05,john.smith@nhs.net\n"
        ))
        .expect("valid");
        let plan = plan_import(rows, &employers, &accounts).expect("allowed");
        assert_eq!((plan.creates.len(), plan.updates.len()), (1, 2));
    }

    #[test]
    fn a_username_cannot_move_a_person_between_employers_or_be_stolen() {
        let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
        let (employers, accounts) = stored(&plan);
        let rows = read(&format!(
            "{HEADER}\n432,999JSMITH01,Jane,Smith,1985-03-14,jane.smith@nhs.net\n"
        ))
        .expect("valid");
        let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
        assert!(
            errors[0]
                .reason
                .contains("belongs to a person at employer 999"),
            "{errors:?}"
        );
        let rows = read(&format!(
            "{HEADER},employee_number\n999,999JSMITH02,Jane,Smith,1985-03-14,jane.smith@nhs.net,E1\n"
        ))
        .expect("valid");
        let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
        assert!(
            errors[0].reason.contains("belong to different people"),
            "{errors:?}"
        );
        let rows = read(&format!(
            "{HEADER},employee_number\n999,999JSMITH02,Jane,Smith,1985-03-14,jane.smith@nhs.net,E1\n"
        ))
        .expect("valid");
        assert!(plan_import(rows, &employers, &accounts).is_err());
    }

    #[test]
    fn explicit_usernames_are_reserved_before_generation() {
        let rows = read(&format!(
            "{HEADER}\n999,,Jane,Smith,1985-03-14,jane@nhs.net\n999,999JSMITH01,John,Smith,1985-03-14,john@nhs.net\n"
        ))
        .expect("valid");
        let plan = plan_import(rows, &[], &[]).expect("plans");
        let names: Vec<&str> = plan.creates.iter().map(|c| c.username.as_str()).collect();
        assert_eq!(names, ["999JSMITH02", "999JSMITH01"]);
    }
}

//! Reading a staff file and checking every row.

use std::collections::HashMap;
use std::io::Read;

use crate::account::{
    AllowedDomains, DateOfBirth, DateProblem, EmailAddress, EmailProblem, EmployeeNumber,
    EmployerRef, PersonName, Role, Username, UsernameKey,
};

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
    let mut file = StaffFile::open(input, today, allowed)?;
    let mut rows = Vec::new();
    while let Some(row) = file.next_row() {
        rows.push(row);
    }
    let mut errors = file.finish();
    check_duplicates(&rows, &mut errors);
    if errors.is_empty() {
        Ok(rows)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// A staff file read one good row at a time, so that a file of millions of
/// people never has to be held in memory: the problems of bad rows are
/// kept (and the rows skipped) for [`StaffFile::finish`]. Rows naming the
/// same username, or the same employee number at one employer, are not
/// compared here: whoever keeps the rows does that ([`check_duplicates`]
/// for rows held in memory).
pub struct StaffFile<'a, R> {
    reader: csv::Reader<CountingReader<R>>,
    fields: usize,
    columns: HashMap<String, usize>,
    today: jiff::civil::Date,
    allowed: &'a AllowedDomains,
    record: csv::ByteRecord,
    errors: Vec<RowError>,
    rows: u64,
    done: bool,
}

impl<'a, R: Read> StaffFile<'a, R> {
    /// Reads and checks the header row: every problem with it, or a file
    /// ready for its rows.
    pub fn open(
        input: R,
        today: jiff::civil::Date,
        allowed: &'a AllowedDomains,
    ) -> Result<Self, Vec<RowError>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::None)
            .from_reader(CountingReader {
                inner: input,
                offset: 0,
                newlines: Newlines::default(),
            });
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
            if !REQUIRED_COLUMNS.contains(&name.as_str())
                && !OPTIONAL_COLUMNS.contains(&name.as_str())
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
        Ok(Self {
            reader,
            fields: headers.len(),
            columns,
            today,
            allowed,
            record: csv::ByteRecord::new(),
            errors,
            rows: 0,
            done: false,
        })
    }

    /// The line a text editor shows for the record starting at `byte`: the
    /// csv crate's own count is one short after a header ending in CRLF.
    fn line_at(&mut self, byte: u64) -> u64 {
        self.reader.get_mut().newlines.line_at(byte)
    }

    /// The next good row, or `None` at the end of the file (or at a line
    /// that is not CSV, after which nothing more can be read).
    pub fn next_row(&mut self) -> Option<StaffRow> {
        while !self.done {
            let line = self.line_at(self.reader.position().byte());
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(line, |p| self.line_at(p.byte()));
                    self.errors.push(RowError {
                        line,
                        reason: format!("this line could not be read as CSV: {e}"),
                    });
                    self.done = true;
                    break;
                }
            }
            // The record ends on the line of its terminator (or of the
            // file's last byte); it starts as many lines up as its quoted
            // fields hold line breaks. (Its own position may be a blank
            // line before it.)
            let end = self.reader.position().byte().saturating_sub(1);
            let breaks: usize = self
                .record
                .iter()
                .map(|field| field.iter().filter(|b| **b == b'\n').count())
                .sum();
            let line = self.line_at(end).saturating_sub(breaks as u64).max(line);
            if self
                .record
                .iter()
                .all(|f| f.iter().all(u8::is_ascii_whitespace))
            {
                continue; // a blank line, often at the end of a file from Excel
            }
            if self.record.len() != self.fields {
                self.errors.push(RowError {
                    line,
                    reason: format!(
                        "has {} fields but the header has {}",
                        self.record.len(),
                        self.fields
                    ),
                });
                continue;
            }
            match parse_row(line, &self.record, &self.columns, self.today, self.allowed) {
                Ok(row) => {
                    self.rows += 1;
                    return Some(row);
                }
                Err(mut e) => self.errors.append(&mut e),
            }
        }
        None
    }

    /// Every problem found, in the order found (a file with a header and no
    /// people is one); read the rows first.
    pub fn finish(mut self) -> Vec<RowError> {
        while self.next_row().is_some() {}
        if self.rows == 0 && self.errors.is_empty() {
            self.errors.push(RowError {
                line: 0,
                reason: "the file has a header but no people".to_owned(),
            });
        }
        self.errors
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
    newlines: Newlines,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, byte) in buf[..n].iter().enumerate() {
            if *byte == b'\n' {
                self.newlines.ahead.push_back(self.offset + i as u64);
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

/// Adds a problem for each row naming a username, or an employee number at
/// its employer, that an earlier row names.
pub fn check_duplicates(rows: &[StaffRow], errors: &mut Vec<RowError>) {
    let mut usernames: HashMap<UsernameKey, u64> = HashMap::new();
    let mut numbers: HashMap<(String, String), u64> = HashMap::new();
    for row in rows {
        if let Some(u) = &row.username
            && let Some(first) = usernames.insert(u.key(), row.line)
        {
            errors.push(duplicate_username(row.line, u.as_str(), first));
        }
        if let Some(n) = &row.employee_number {
            let key = (employer_identity(&row.employer), n.as_str().to_owned());
            if let Some(first) = numbers.insert(key, row.line) {
                errors.push(duplicate_number(row.line, n.as_str(), first));
            }
        }
    }
}

/// The rows (each with its employer's number) giving an employee number an
/// earlier row of the same employer gives: a problem for each.
pub fn duplicate_numbers(rows: &[(StaffRow, String)]) -> Vec<RowError> {
    let mut first: HashMap<(&str, &str), u64> = HashMap::new();
    let mut errors = Vec::new();
    for (row, code) in rows {
        if let Some(n) = &row.employee_number
            && let Some(first) = first.insert((code.as_str(), n.as_str()), row.line)
        {
            errors.push(duplicate_number(row.line, n.as_str(), first));
        }
    }
    errors
}

/// The problem of a row on `line` naming the username an earlier row (on
/// `first`) names.
pub fn duplicate_username(line: u64, username: &str, first: u64) -> RowError {
    RowError {
        line,
        reason: format!("username {username} is also on line {first}"),
    }
}

/// The problem of a row on `line` giving the employee number an earlier row
/// (on `first`) gives at the same employer.
pub fn duplicate_number(line: u64, number: &str, first: u64) -> RowError {
    RowError {
        line,
        reason: format!("employee_number {number} at this employer is also on line {first}"),
    }
}

//! The values that describe a person's account, each validated when it is parsed.
//!
//! A value of one of these types is known to be well formed; code that holds
//! one does not check it again. Parse errors carry the sentence a person sees.

use std::fmt;

/// The longest username accepted anywhere.
pub const USERNAME_MAX: usize = 64;

/// A username as stored: letters, digits, `.`, `_` and `-`; compared without regard to case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// The form of a username used for lookups and uniqueness: ASCII upper case.
///
/// A sign-in attempt is counted against this key whether or not an account has
/// it, so that unknown usernames lock exactly as real ones do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsernameKey(String);

impl Username {
    /// Parses a username given by an administrator (CSV, command line).
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("username is empty".to_owned());
        }
        if s.chars().count() > USERNAME_MAX {
            return Err(format!("username is longer than {USERNAME_MAX} characters"));
        }
        if s.len() < 2 {
            return Err("username must be at least 2 characters".to_owned());
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "username may only contain letters, digits, '.', '_' and '-' (found {bad:?})"
            ));
        }
        Ok(Self(s.to_ascii_uppercase()))
    }

    /// Wraps a username already validated and stored by this service.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The username as shown to people.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lookup key.
    pub fn key(&self) -> UsernameKey {
        UsernameKey(self.0.to_ascii_uppercase())
    }
}

impl serde::Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl serde::Serialize for EmailAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl UsernameKey {
    /// The key for whatever a person typed into a Username box.
    ///
    /// Anything is accepted (it may not be a username at all): the key is
    /// only used to look up and to count attempts. Surrounding spaces are
    /// dropped and ASCII letters upper-cased, so `jsmith01 ` and `JSMITH01`
    /// are one account and one lockout counter.
    pub fn from_typed(input: &str) -> Self {
        Self(input.trim().to_ascii_uppercase())
    }

    /// Wraps a key read back from storage.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The attempt counter of this username tried from one remembered
    /// browser (device cookies), named by the hash of its cookie. It cannot
    /// collide with a typed username, whose ASCII letters are always upper
    /// case, while this key has lower-case ones.
    pub fn for_device(&self, device: &crate::TokenHash) -> Self {
        let hex: String = device
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self(format!("{} device:{hex}", self.0))
    }
}

/// The longest email address accepted (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;

/// An email address: ASCII only, one `@`, a dotted domain, nothing that could
/// end or add a mail header. Compared without regard to case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

/// Why an email address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailProblem {
    /// Nothing was entered.
    Empty,
    /// Not of the form `name@domain`.
    Format,
    /// Longer than [`EMAIL_MAX`].
    TooLong,
}

impl EmailAddress {
    /// Parses an address typed by a person or read from the HR file.
    pub fn parse(input: &str) -> Result<Self, EmailProblem> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailProblem::Empty);
        }
        if s.len() > EMAIL_MAX {
            return Err(EmailProblem::TooLong);
        }
        // ASCII only: the allowed secure domains are ASCII, and refusing
        // non-ASCII removes Unicode case-folding collisions (GitHub's dotless-ı,
        // Django CVE-2019-19844) instead of trying to define them.
        if !s.is_ascii() {
            return Err(EmailProblem::Format);
        }
        let (local, domain) = s.split_once('@').ok_or(EmailProblem::Format)?;
        if local.is_empty()
            || local.len() > 64
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        {
            return Err(EmailProblem::Format);
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.len() > 63
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            return Err(EmailProblem::Format);
        }
        Ok(Self(s.to_owned()))
    }

    /// Wraps an address already validated and stored by this service.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lookup key: the whole address in lower case.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The domain part, lower case.
    pub fn domain(&self) -> String {
        self.0
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The address with most of the local part hidden, for audit records and
    /// operator output: `j***h@nhs.net`.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                let first = local.chars().next().unwrap_or('*');
                let last = local.chars().last().unwrap_or('*');
                if local.chars().count() <= 2 {
                    format!("{first}*@{domain}")
                } else {
                    format!("{first}***{last}@{domain}")
                }
            }
            None => "***".to_owned(),
        }
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.masked())
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The secure email domains that reset emails may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedDomains(Vec<String>);

impl Default for AllowedDomains {
    /// `nhs.net`, as in the seed.
    fn default() -> Self {
        Self(vec!["nhs.net".to_owned()])
    }
}

impl AllowedDomains {
    /// Parses a comma-separated list such as `nhs.net` or `nhs.net, nhs.uk`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut domains = Vec::new();
        for raw in list.split(',') {
            let d = raw.trim().trim_start_matches('@').to_ascii_lowercase();
            if d.is_empty() {
                continue;
            }
            EmailAddress::parse(&format!("x@{d}"))
                .map_err(|_| format!("{raw:?} is not a domain name"))?;
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        if domains.is_empty() {
            return Err("at least one domain is needed".to_owned());
        }
        Ok(Self(domains))
    }

    /// Whether mail may go to `address`: its domain is one of the list, exactly.
    pub fn permits(&self, address: &EmailAddress) -> bool {
        let domain = address.domain();
        self.0.contains(&domain)
    }

    /// The domains, lower case, in configured order.
    pub fn domains(&self) -> &[String] {
        &self.0
    }

    /// The domains as people read them: `nhs.net`, `nhs.net or nhs.uk`.
    pub fn for_people(&self) -> String {
        match self.0.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        }
    }
}

/// A date of birth: a real calendar date, in the past, not before 1900.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateOfBirth(jiff::civil::Date);

/// Why a date of birth was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateProblem {
    /// Nothing entered.
    Empty,
    /// Not a real date (31 February, month 13, letters).
    NotReal,
    /// Today or later.
    InFuture,
    /// Before 1900.
    TooLongAgo,
}

impl DateProblem {
    /// The sentence shown to a person.
    pub fn message(self) -> &'static str {
        match self {
            DateProblem::Empty => "Enter your date of birth",
            DateProblem::NotReal => "Date of birth must be a real date",
            DateProblem::InFuture => "Date of birth must be in the past",
            DateProblem::TooLongAgo => "Date of birth must be after 1900",
        }
    }
}

impl DateOfBirth {
    /// Builds a date from day, month and year boxes, as typed.
    pub fn from_parts(
        day: &str,
        month: &str,
        year: &str,
        today: jiff::civil::Date,
    ) -> Result<Self, DateProblem> {
        let (day, month, year) = (day.trim(), month.trim(), year.trim());
        if day.is_empty() && month.is_empty() && year.is_empty() {
            return Err(DateProblem::Empty);
        }
        let num = |s: &str, max_len: usize| -> Result<i64, DateProblem> {
            if s.is_empty() || s.len() > max_len || !s.chars().all(|c| c.is_ascii_digit()) {
                return Err(DateProblem::NotReal);
            }
            s.parse().map_err(|_| DateProblem::NotReal)
        };
        let d = num(day, 2)?;
        let m = num(month, 2)?;
        let y = num(year, 4)?;
        if year.len() != 4 {
            return Err(DateProblem::NotReal);
        }
        Self::from_ymd(y, m, d, today)
    }

    /// Parses `YYYY-MM-DD` or `DD/MM/YYYY`, the two forms the HR file may use.
    pub fn parse(text: &str, today: jiff::civil::Date) -> Result<Self, DateProblem> {
        let s = text.trim();
        if s.is_empty() {
            return Err(DateProblem::Empty);
        }
        let digits = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_digit());
        let parts: Vec<&str>;
        let (y, m, d) = if s.contains('-') {
            parts = s.split('-').collect();
            match parts.as_slice() {
                [y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2) => (*y, *m, *d),
                _ => return Err(DateProblem::NotReal),
            }
        } else {
            parts = s.split('/').collect();
            match parts.as_slice() {
                [d, m, y] if digits(y, 4) && digits(m, 2) && digits(d, 2) => (*y, *m, *d),
                _ => return Err(DateProblem::NotReal),
            }
        };
        let n = |p: &str| p.parse::<i64>().map_err(|_| DateProblem::NotReal);
        Self::from_ymd(n(y)?, n(m)?, n(d)?, today)
    }

    fn from_ymd(y: i64, m: i64, d: i64, today: jiff::civil::Date) -> Result<Self, DateProblem> {
        let y = i16::try_from(y).map_err(|_| DateProblem::NotReal)?;
        let m = i8::try_from(m).map_err(|_| DateProblem::NotReal)?;
        let d = i8::try_from(d).map_err(|_| DateProblem::NotReal)?;
        let date = jiff::civil::Date::new(y, m, d).map_err(|_| DateProblem::NotReal)?;
        if date >= today {
            return Err(DateProblem::InFuture);
        }
        if y < 1900 {
            return Err(DateProblem::TooLongAgo);
        }
        Ok(Self(date))
    }

    /// Reads back a date stored as `YYYY-MM-DD` by this service.
    pub fn from_stored(text: &str) -> Option<Self> {
        text.parse::<jiff::civil::Date>().ok().map(Self)
    }

    /// `YYYY-MM-DD`, the stored form.
    pub fn iso(self) -> String {
        self.0.to_string()
    }
}

impl fmt::Debug for DateOfBirth {
    // A date of birth is personal data: debug output must not spill it into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DateOfBirth(..)")
    }
}

/// What is wrong with a character in a name shown to people, if anything.
///
/// Control characters, and the invisible characters that change how the
/// text around them is shown: bidirectional controls (U+202A–U+202E,
/// U+2066–U+2069, U+200E, U+200F, U+061C), line and paragraph separators
/// (U+2028, U+2029), and zero-width spaces and joiners that do not join
/// (U+200B, U+2060–U+2064, U+FEFF, U+00AD, U+180E). An HR file with these
/// could make one person's name read as another's in the console and in
/// emails ("Trojan Source", CVE-2021-42574). The zero-width joiner and
/// non-joiner (U+200C, U+200D) are kept: some scripts need them.
pub fn unsafe_character(text: &str) -> Option<String> {
    text.chars().find_map(|c| {
        let what = match c {
            '\u{2028}' | '\u{2029}' => "a line or paragraph separator",
            '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}' => "a bidirectional control character",
            '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}' => {
                "an invisible character"
            }
            c if c.is_control() => "a control character",
            _ => return None,
        };
        Some(format!("contains {what} (U+{:04X})", u32::from(c)))
    })
}

/// A first or last name: printable, 1 to 100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Parses a name from the HR file.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("is empty".to_owned());
        }
        if s.chars().count() > 100 {
            return Err("is longer than 100 characters".to_owned());
        }
        if let Some(problem) = unsafe_character(s) {
            return Err(problem);
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a name this service checked and stored.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

/// What a person may do in the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs in to see their own record (the default).
    #[default]
    Staff,
    /// Answers "I never got the email" and updates email addresses.
    Helpdesk,
    /// Loads the HR file and runs the service.
    Admin,
}

impl Role {
    /// Parses `staff`, `helpdesk` or `admin` (any case); blank means staff.
    pub fn parse(input: &str) -> Result<Self, String> {
        match input.trim().to_ascii_lowercase().as_str() {
            "" | "staff" => Ok(Role::Staff),
            "helpdesk" => Ok(Role::Helpdesk),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "role must be staff, helpdesk or admin (found {other:?})"
            )),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::Helpdesk => "helpdesk",
            Role::Admin => "admin",
        }
    }

    /// Reads a stored name exactly; `None` for anything else (never a
    /// default: a role the service does not know is not "staff").
    pub fn from_stored(name: &str) -> Option<Self> {
        match name {
            "staff" => Some(Role::Staff),
            "helpdesk" => Some(Role::Helpdesk),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An employee number from the HR file: 1 to 32 letters, digits, `-` or `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EmployeeNumber(String);

impl EmployeeNumber {
    /// Parses an employee number; blank means none.
    pub fn parse(input: &str) -> Result<Option<Self>, String> {
        let s = input.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if s.len() > 32 {
            return Err("employee_number is longer than 32 characters".to_owned());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/')
        {
            return Err("employee_number may only contain letters, digits, '-' and '/'".to_owned());
        }
        Ok(Some(Self(s.to_owned())))
    }

    /// The number as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a number this service checked and stored.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

/// An employer as written in the HR file's `employer` column.
///
/// The column holds the employer's organisation number, optionally followed
/// by its name (`432 East Suffolk and North Essex NHS Foundation Trust`), or a
/// name alone. Generated usernames start with the number, as ESR's do; an
/// employer given by name alone is numbered by the service when first seen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EmployerRef {
    /// The organisation number, when the file gives one.
    pub code: Option<String>,
    /// The name, when the file gives one.
    pub name: Option<String>,
}

impl EmployerRef {
    /// Parses the `employer` column.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("employer is empty".to_owned());
        }
        if s.chars().count() > 200 {
            return Err("employer is longer than 200 characters".to_owned());
        }
        if let Some(problem) = unsafe_character(s) {
            return Err(format!("employer {problem}"));
        }
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Ok(Self {
                code: None,
                name: Some(s.to_owned()),
            });
        }
        if digits.len() > 6 {
            return Err("employer number is longer than 6 digits".to_owned());
        }
        let rest = s[digits.len()..].trim_start();
        let rest = rest
            .strip_prefix('-')
            .or_else(|| rest.strip_prefix(':'))
            .unwrap_or(rest)
            .trim();
        if !rest.is_empty() && s[digits.len()..].starts_with(|c: char| c.is_alphanumeric()) {
            // "12ABC": digits glued to letters are a name, not a number.
            return Ok(Self {
                code: None,
                name: Some(s.to_owned()),
            });
        }
        Ok(Self {
            code: Some(digits),
            name: (!rest.is_empty()).then(|| rest.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> jiff::civil::Date {
        jiff::civil::date(2026, 11, 25)
    }

    #[test]
    fn usernames_are_case_insensitive_and_trimmed() {
        let u = Username::parse(" 999jsmith01 ").expect("valid");
        assert_eq!(u.as_str(), "999JSMITH01");
        assert_eq!(u.key(), UsernameKey::from_typed("999JSmith01  "));
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("x").is_err());
        assert!(Username::parse(&"A".repeat(65)).is_err());
        assert!(
            Username::parse("jsmith\r\n").is_ok(),
            "outer whitespace is trimmed"
        );
        assert!(Username::parse("js\nmith").is_err());
    }

    #[test]
    fn emails_refuse_header_injection_and_unicode() {
        assert!(EmailAddress::parse("jane.smith@nhs.net").is_ok());
        assert!(EmailAddress::parse("Jane.Smith+ESR@NHS.net").is_ok());
        for bad in [
            "jane@nhs.net\r\nBcc: x@evil.test",
            "jane@nhs.net\nBcc: x@evil.test",
            "jane smith@nhs.net",
            "mıke@nhs.net",
            "jane@nhs",
            "@nhs.net",
            "jane@@nhs.net",
            "jane@nhs..net",
            ".jane@nhs.net",
            "\"jane\"@nhs.net",
            "jane@-nhs.net",
            "jane@nhs.net,other@nhs.net",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(EmailAddress::parse("").err(), Some(EmailProblem::Empty));
        let long = format!("{}@nhs.net", "a".repeat(250));
        assert_eq!(
            EmailAddress::parse(&long).err(),
            Some(EmailProblem::TooLong)
        );
    }

    #[test]
    fn email_keys_and_domains_ignore_case() {
        let e = EmailAddress::parse("Jane.Smith@NHS.Net").expect("valid");
        assert_eq!(e.key(), "jane.smith@nhs.net");
        assert_eq!(e.domain(), "nhs.net");
        assert_eq!(e.masked(), "J***h@NHS.Net");
        let allowed = AllowedDomains::parse("nhs.net").expect("valid");
        assert!(allowed.permits(&e));
        let other = EmailAddress::parse("jane@evilnhs.net").expect("valid");
        assert!(!allowed.permits(&other));
        let sub = EmailAddress::parse("jane@x.nhs.net").expect("valid");
        assert!(!allowed.permits(&sub), "subdomains are not the domain");
    }

    #[test]
    fn allowed_domains_parse_lists() {
        let a = AllowedDomains::parse(" nhs.net, @NHS.UK ,nhs.net").expect("valid");
        assert_eq!(a.domains(), ["nhs.net", "nhs.uk"]);
        assert_eq!(a.for_people(), "nhs.net or nhs.uk");
        assert!(AllowedDomains::parse(" , ").is_err());
        assert!(AllowedDomains::parse("not a domain").is_err());
    }

    #[test]
    fn dates_of_birth_must_be_real_and_past() {
        let ok = DateOfBirth::from_parts("14", "3", "1985", today()).expect("valid");
        assert_eq!(ok.iso(), "1985-03-14");
        assert_eq!(
            DateOfBirth::from_parts("", "", "", today()),
            Err(DateProblem::Empty)
        );
        assert_eq!(
            DateOfBirth::from_parts("30", "2", "1990", today()),
            Err(DateProblem::NotReal)
        );
        assert_eq!(
            DateOfBirth::from_parts("1", "1", "2030", today()),
            Err(DateProblem::InFuture)
        );
        assert_eq!(
            DateOfBirth::from_parts("25", "11", "2026", today()),
            Err(DateProblem::InFuture)
        );
        assert_eq!(
            DateOfBirth::from_parts("1", "1", "1800", today()),
            Err(DateProblem::TooLongAgo)
        );
        assert_eq!(
            DateOfBirth::from_parts("1", "1", "85", today()),
            Err(DateProblem::NotReal)
        );
        assert_eq!(
            DateOfBirth::from_parts("x", "1", "1985", today()),
            Err(DateProblem::NotReal)
        );
    }

    #[test]
    fn dates_of_birth_parse_both_file_forms() {
        let a = DateOfBirth::parse("1985-03-14", today()).expect("iso");
        let b = DateOfBirth::parse("14/03/1985", today()).expect("uk");
        assert_eq!(a, b);
        for bad in [
            "1985-3-14",
            "3/14/1985",
            "14-03-1985",
            "1985/03/14",
            "31/02/1990",
            "tomorrow",
        ] {
            assert!(
                DateOfBirth::parse(bad, today()).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn employers_read_number_and_name() {
        let e = EmployerRef::parse("432 East Suffolk and North Essex NHS Foundation Trust")
            .expect("valid");
        assert_eq!(e.code.as_deref(), Some("432"));
        assert_eq!(
            e.name.as_deref(),
            Some("East Suffolk and North Essex NHS Foundation Trust")
        );
        let e = EmployerRef::parse("999").expect("valid");
        assert_eq!((e.code.as_deref(), e.name), (Some("999"), None));
        let e = EmployerRef::parse("999 - Demo Trust").expect("valid");
        assert_eq!(e.name.as_deref(), Some("Demo Trust"));
        let e = EmployerRef::parse("Leeds Teaching Hospitals").expect("valid");
        assert_eq!(
            (e.code, e.name.as_deref()),
            (None, Some("Leeds Teaching Hospitals"))
        );
        let e = EmployerRef::parse("3M Health").expect("valid");
        assert_eq!(e.code, None);
        assert!(EmployerRef::parse("  ").is_err());
        assert!(EmployerRef::parse("1234567").is_err());
    }

    #[test]
    fn roles_default_to_staff() {
        assert_eq!(Role::parse(""), Ok(Role::Staff));
        assert_eq!(Role::parse("Admin"), Ok(Role::Admin));
        assert!(Role::parse("root").is_err());
    }
}

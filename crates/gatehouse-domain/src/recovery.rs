//! "Forgotten | Request Username/Password | Unlock Account": the form, and
//! what a request leads to.
//!
//! The form is checked here, with the wording of the seed. A valid request
//! is only recorded; the page that follows is the same whether or not
//! anything matched (no enumeration), and matching happens later, in the
//! recovery worker, against the address on record.

use crate::account::{AllowedDomains, DateOfBirth, EmailAddress, EmailProblem, USERNAME_MAX};

/// What was typed into the form.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RecoveryInput {
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Date of birth: Day.
    #[serde(default, rename = "dob-day")]
    pub day: String,
    /// Date of birth: Month.
    #[serde(default, rename = "dob-month")]
    pub month: String,
    /// Date of birth: Year.
    #[serde(default, rename = "dob-year")]
    pub year: String,
    /// Username (optional).
    #[serde(default)]
    pub username: String,
}

/// A valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRequest {
    /// The email typed (mail goes to the address on record, never to this).
    pub email: EmailAddress,
    /// The date of birth typed.
    pub date_of_birth: DateOfBirth,
    /// The username typed, upper case, if any.
    pub username: Option<String>,
}

/// A problem with one field of a form, for the error summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The id of the input the error summary links to.
    pub field: &'static str,
    /// The message, as shown above the field and in the summary.
    pub message: String,
}

/// Checks the recovery form.
pub fn check_recovery_form(
    input: &RecoveryInput,
    today: jiff::civil::Date,
    allowed: &AllowedDomains,
) -> Result<RecoveryRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let example = format!(
        "first.last@{}",
        allowed.domains().first().map_or("nhs.net", String::as_str)
    );
    let email = match EmailAddress::parse(&input.email) {
        Ok(e) if allowed.permits(&e) => Some(e),
        Ok(_) => {
            errors.push(FieldError {
                field: "email",
                message: format!("This must be your {} email address", allowed.for_people()),
            });
            None
        }
        Err(EmailProblem::Empty) => {
            errors.push(FieldError {
                field: "email",
                message: "Enter your email address".to_owned(),
            });
            None
        }
        Err(EmailProblem::Format | EmailProblem::TooLong) => {
            errors.push(FieldError {
                field: "email",
                message: format!("Enter an email address in the correct format, like {example}"),
            });
            None
        }
    };
    let dob = match DateOfBirth::from_parts(&input.day, &input.month, &input.year, today) {
        Ok(d) => Some(d),
        Err(problem) => {
            errors.push(FieldError {
                field: "dob-day",
                message: problem.message().to_owned(),
            });
            None
        }
    };
    let username = input.username.trim();
    let username = if username.is_empty() {
        None
    } else if username.chars().count() > USERNAME_MAX
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        errors.push(FieldError {
            field: "username",
            message: "Enter your username as it is written in your email, or leave it blank"
                .to_owned(),
        });
        None
    } else {
        Some(username.to_ascii_uppercase())
    };
    match (email, dob) {
        (Some(email), Some(date_of_birth)) if errors.is_empty() => Ok(RecoveryRequest {
            email,
            date_of_birth,
            username,
        }),
        _ => Err(errors),
    }
}

/// How a recovery request ended, as helpdesk sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// An email went to the address on record, covering this many accounts.
    Matched(u32),
    /// No account has that email and date of birth (and username, if given).
    NoMatch,
    /// The address on record has had its allowance of emails this hour.
    Throttled,
    /// The address on record is not in an allowed domain.
    DomainNotAllowed,
}

impl RecoveryOutcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryOutcome::Matched(_) => "matched",
            RecoveryOutcome::NoMatch => "no_match",
            RecoveryOutcome::Throttled => "throttled",
            RecoveryOutcome::DomainNotAllowed => "domain_not_allowed",
        }
    }

    /// Reads a stored name, with the number of accounts a match covered.
    pub fn from_stored(name: &str, matched_accounts: Option<i64>) -> Option<Self> {
        match name {
            "matched" => Some(RecoveryOutcome::Matched(
                u32::try_from(matched_accounts.unwrap_or(0)).unwrap_or(0),
            )),
            "no_match" => Some(RecoveryOutcome::NoMatch),
            "throttled" => Some(RecoveryOutcome::Throttled),
            "domain_not_allowed" => Some(RecoveryOutcome::DomainNotAllowed),
            _ => None,
        }
    }
}

/// Where a recovery request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Recorded, not yet matched by the recovery worker.
    Pending,
    /// Matched, with its outcome.
    Processed,
}

impl RequestStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Processed => "processed",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(RequestStatus::Pending),
            "processed" => Some(RequestStatus::Processed),
            _ => None,
        }
    }
}

/// Recovery throttling (docs/design.md, "Policy defaults").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// Emails per address on record per hour (silently: the same confirmation).
    pub emails_per_address_per_hour: u32,
    /// Requests per client address per hour; high, since a whole hospital
    /// can share one address.
    pub requests_per_client_per_hour: u32,
    /// Unknown reset links opened per client address per hour before every
    /// link from that address is refused (NIST SP 800-63B-4 §4.2.1.2:
    /// guessing links SHALL be throttled); generous, for the same reason.
    pub link_guesses_per_client_per_hour: u32,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            emails_per_address_per_hour: 3,
            requests_per_client_per_hour: 10_000,
            link_guesses_per_client_per_hour: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> jiff::civil::Date {
        jiff::civil::date(2026, 11, 25)
    }

    fn input(email: &str, d: &str, m: &str, y: &str, u: &str) -> RecoveryInput {
        RecoveryInput {
            email: email.to_owned(),
            day: d.to_owned(),
            month: m.to_owned(),
            year: y.to_owned(),
            username: u.to_owned(),
        }
    }

    fn check(i: &RecoveryInput) -> Result<RecoveryRequest, Vec<FieldError>> {
        check_recovery_form(
            i,
            today(),
            &AllowedDomains::parse("nhs.net").expect("valid"),
        )
    }

    #[test]
    fn a_complete_form_is_a_request() {
        let r = check(&input(
            " Jane.Smith@NHS.net ",
            "14",
            "03",
            "1985",
            " 999jsmith01 ",
        ))
        .expect("valid");
        assert_eq!(r.email.key(), "jane.smith@nhs.net");
        assert_eq!(r.date_of_birth.iso(), "1985-03-14");
        assert_eq!(r.username.as_deref(), Some("999JSMITH01"));
        let r = check(&input("jane@nhs.net", "1", "1", "1985", "")).expect("valid");
        assert_eq!(r.username, None);
    }

    #[test]
    fn the_email_must_be_in_the_allowed_domain() {
        let e = check(&input("jane@gmail.com", "1", "1", "1985", "")).expect_err("refused");
        assert_eq!(e[0].message, "This must be your nhs.net email address");
        assert_eq!(e[0].field, "email");
        let two = check_recovery_form(
            &input("jane@gmail.com", "1", "1", "1985", ""),
            today(),
            &AllowedDomains::parse("nhs.net,nhs.uk").expect("valid"),
        )
        .expect_err("refused");
        assert_eq!(
            two[0].message,
            "This must be your nhs.net or nhs.uk email address"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = check(&input("", "31", "2", "1990", "bad name")).expect_err("refused");
        let fields: Vec<&str> = e.iter().map(|f| f.field).collect();
        assert_eq!(fields, ["email", "dob-day", "username"]);
        assert_eq!(e[0].message, "Enter your email address");
        assert_eq!(e[1].message, "Date of birth must be a real date");
        let e = check(&input("jane@nhs.net\r\nBcc: a@b.c", "", "", "", "")).expect_err("refused");
        assert!(
            e[0].message
                .starts_with("Enter an email address in the correct format")
        );
        assert_eq!(e[1].message, "Enter your date of birth");
    }

    #[test]
    fn outcomes_have_stable_names() {
        assert_eq!(RecoveryOutcome::Matched(2).as_str(), "matched");
        assert_eq!(RecoveryOutcome::NoMatch.as_str(), "no_match");
        assert_eq!(RecoveryOutcome::Throttled.as_str(), "throttled");
        assert_eq!(
            RecoveryOutcome::DomainNotAllowed.as_str(),
            "domain_not_allowed"
        );
    }
}

//! The emails the service sends, as plain text and HTML.
//!
//! Every value put into an email comes from the service's own records or
//! configuration; the HTML is escaped by askama, and subjects are fixed
//! text. Nothing a person typed reaches a header.

use askama::Template;
use gatehouse_domain::EmailAddress;
use gatehouse_store::NewEmail;

use crate::error::{Error, Result};

/// One account's part of a recovery email.
#[derive(Debug, Clone)]
pub struct RecoveryEntry {
    /// The employer's name.
    pub employer: String,
    /// The username.
    pub username: String,
    /// The account has never had a password (first-time access).
    pub first_time: bool,
    /// The reset link, unless the account is locked.
    pub link: Option<String>,
    /// Until when the account is locked, as people read it.
    pub locked_until: Option<String>,
}

/// The email that answers a recovery request.
#[derive(Debug, Clone)]
pub struct RecoveryEmail {
    /// The service's name.
    pub service: String,
    /// One entry per matched account.
    pub accounts: Vec<RecoveryEntry>,
    /// The link lifetime, as people read it (`4 hours`).
    pub ttl: String,
    /// Whether any entry has a link.
    pub has_links: bool,
}

#[derive(Template)]
#[template(path = "email/recovery.txt")]
struct RecoveryText<'a> {
    c: &'a RecoveryEmail,
}

#[derive(Template)]
#[template(path = "email/recovery.html")]
struct RecoveryHtml<'a> {
    c: &'a RecoveryEmail,
}

/// A short notification: paragraphs of text.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The service's name.
    pub service: String,
    /// The paragraphs.
    pub paragraphs: Vec<String>,
}

#[derive(Template)]
#[template(path = "email/notice.txt")]
struct NoticeText<'a> {
    n: &'a Notice,
}

#[derive(Template)]
#[template(path = "email/notice.html")]
struct NoticeHtml<'a> {
    n: &'a Notice,
}

fn render(t: &impl Template) -> Result<String> {
    t.render().map_err(|e| Error::render("an email", e))
}

impl RecoveryEmail {
    /// The subject line.
    pub fn subject(&self) -> String {
        format!("Your {} username and password reset", self.service)
    }

    /// The text and HTML bodies.
    pub fn bodies(&self) -> Result<(String, String)> {
        Ok((
            render(&RecoveryText { c: self })?,
            render(&RecoveryHtml { c: self })?,
        ))
    }
}

impl Notice {
    /// The text and HTML bodies.
    pub fn bodies(&self) -> Result<(String, String)> {
        Ok((
            render(&NoticeText { n: self })?,
            render(&NoticeHtml { n: self })?,
        ))
    }

    /// This notice as an outbox email.
    pub fn to_email(
        &self,
        kind: &'static str,
        subject: String,
        recipient: &EmailAddress,
        account_id: Option<i64>,
    ) -> Result<NewEmail> {
        let (text_body, html_body) = self.bodies()?;
        Ok(NewEmail {
            kind,
            recipient: recipient.clone(),
            subject,
            text_body,
            html_body,
            account_id,
            recovery_request_id: None,
            send_by: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(accounts: Vec<RecoveryEntry>) -> RecoveryEmail {
        let has_links = accounts.iter().any(|a| a.link.is_some());
        RecoveryEmail {
            service: "Electronic Staff Record".to_owned(),
            accounts,
            ttl: "4 hours".to_owned(),
            has_links,
        }
    }

    #[test]
    fn a_recovery_email_lists_each_account_with_its_own_link() {
        let e = email(vec![
            RecoveryEntry {
                employer: "Demo Trust".to_owned(),
                username: "999JSMITH01".to_owned(),
                first_time: true,
                link: Some("https://esr.example/reset/AAA".to_owned()),
                locked_until: None,
            },
            RecoveryEntry {
                employer: "Other Trust".to_owned(),
                username: "432JSMITH01".to_owned(),
                first_time: false,
                link: None,
                locked_until: Some("10:32pm on 25 November 2026".to_owned()),
            },
        ]);
        let (text, html) = e.bodies().expect("renders");
        assert!(text.contains("Username: 999JSMITH01"));
        assert!(
            text.contains("Set your password by opening this link:\nhttps://esr.example/reset/AAA")
        );
        assert!(text.contains("locked until 10:32pm on 25 November 2026"));
        assert!(text.contains("within 4 hours"));
        assert!(text.contains("2 accounts"));
        assert!(html.contains("<a href=\"https://esr.example/reset/AAA\">Set your password</a>"));
        assert_eq!(
            e.subject(),
            "Your Electronic Staff Record username and password reset"
        );
    }

    #[test]
    fn html_parts_escape_whatever_the_records_hold() {
        let e = email(vec![RecoveryEntry {
            employer: "<a href=//evil>x</a> {{7*7}}".to_owned(),
            username: "\"><img src=x onerror=alert(1)>".to_owned(),
            first_time: false,
            link: Some("https://esr.example/reset/B".to_owned()),
            locked_until: None,
        }]);
        let (_, html) = e.bodies().expect("renders");
        assert!(!html.contains("<a href=//evil>"));
        assert!(!html.contains("<img"));
        assert!(
            html.contains("{{7*7}}"),
            "templates are not evaluated twice"
        );
    }

    #[test]
    fn a_locked_only_email_has_no_link_instructions() {
        let e = email(vec![RecoveryEntry {
            employer: "Demo Trust".to_owned(),
            username: "999JSMITH01".to_owned(),
            first_time: false,
            link: None,
            locked_until: Some("9:00am on 26 November 2026".to_owned()),
        }]);
        let (text, _) = e.bodies().expect("renders");
        assert!(!text.contains("within 4 hours"));
        assert!(text.contains("make a new request after that time"));
    }
}

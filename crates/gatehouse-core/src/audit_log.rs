//! The audit log as the console and `gatehouse admin audit` show it:
//! filtered by who acted, what happened, when, and which account; exported
//! as CSV that a spreadsheet opens without running anything in it.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::recovery::FieldError;
use gatehouse_domain::{Timestamp, UsernameKey};
use gatehouse_store::{AuditFilter, accounts, audit};

use crate::{Gatehouse, Result};

/// The filters, as typed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditQuery {
    /// Only events about this account.
    #[serde(default)]
    pub username: String,
    /// Only this event (`sign_in.failed`, `account.email_changed`, …).
    #[serde(default)]
    pub event: String,
    /// Only events by this actor (`admin 999PPATEL01`, …).
    #[serde(default)]
    pub actor: String,
    /// From this day (`YYYY-MM-DD` or `DD/MM/YYYY`), in the service's time zone.
    #[serde(default)]
    pub from: String,
    /// To this day, inclusive.
    #[serde(default)]
    pub to: String,
}

/// One event, in words.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditLine {
    /// When, for people.
    pub when: String,
    /// When, RFC 3339 (UTC).
    pub at: String,
    /// What.
    pub event: String,
    /// Who acted, if not the person themselves.
    pub actor: String,
    /// The account concerned.
    pub username: String,
    /// The client address.
    pub client_ip: String,
    /// Details.
    pub detail: String,
    /// The browser, as it named itself, when a person's browser did it.
    pub user_agent: String,
}

fn parse_day(text: &str) -> Option<jiff::civil::Date> {
    let t = text.trim();
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return Some(d);
    }
    let parts: Vec<&str> = t.split('/').collect();
    match parts.as_slice() {
        [d, m, y] => jiff::civil::Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok(),
        _ => None,
    }
}

impl Gatehouse {
    fn start_of(&self, day: jiff::civil::Date) -> Option<Timestamp> {
        day.to_zoned_datetime(self.settings.time_zone.clone())
            .ok()
            .map(|z| Timestamp::from_unix(z.timestamp().as_second()))
    }

    /// The events matching `query`, newest first, at most `limit`; or what
    /// is wrong with the query, field by field.
    pub async fn audit_log(
        &self,
        query: &AuditQuery,
        limit: u32,
    ) -> Result<std::result::Result<Vec<AuditLine>, Vec<FieldError>>> {
        let mut errors = Vec::new();
        let mut filter = AuditFilter {
            limit,
            ..AuditFilter::default()
        };
        let username = query.username.trim();
        if !username.is_empty() {
            match accounts::by_username(
                &mut *self.read().await?,
                &UsernameKey::from_typed(username),
            )
            .await?
            {
                Some(a) => filter.account_id = Some(a.id),
                None => errors.push(FieldError {
                    field: "username",
                    message: format!("No account has the username {username}"),
                }),
            }
        }
        let nonempty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        if let Some(name) = nonempty(&query.event) {
            match AuditEvent::from_stored(&name) {
                Some(event) => filter.event = Some(event),
                None => errors.push(FieldError {
                    field: "event",
                    message: format!(
                        "There is no event called {name}: use a name from the log, such as sign_in.failed"
                    ),
                }),
            }
        }
        filter.actor = nonempty(&query.actor);
        for (field, text, end) in [("from", &query.from, false), ("to", &query.to, true)] {
            if text.trim().is_empty() {
                continue;
            }
            let at = parse_day(text).and_then(|d| {
                if end {
                    d.tomorrow().ok().and_then(|d| self.start_of(d))
                } else {
                    self.start_of(d)
                }
            });
            match at {
                Some(at) if end => filter.until = Some(at),
                Some(at) => filter.since = Some(at),
                None => errors.push(FieldError {
                    field,
                    message: format!(
                        "Enter a real date for “{}”, written YYYY-MM-DD or DD/MM/YYYY",
                        if end { "To" } else { "From" }
                    ),
                }),
            }
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let rows = audit::list(&mut *self.read().await?, &filter).await?;
        Ok(Ok(rows
            .into_iter()
            .map(|row| row.record)
            .map(|r| AuditLine {
                when: self.settings.when(r.at),
                at: r.at.rfc3339(),
                event: r.event.as_str().to_owned(),
                actor: r.actor.unwrap_or_default(),
                username: r.username.unwrap_or_default(),
                client_ip: r.client_ip.unwrap_or_default(),
                detail: r.detail.unwrap_or_default(),
                user_agent: r.user_agent.unwrap_or_default(),
            })
            .collect()))
    }
}

/// A cell a spreadsheet will show as text, never run as a formula (OWASP
/// CSV injection): a leading `=`, `+`, `-`, `@`, tab or return gets a `'`.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The events as CSV (RFC 4180), with a header row.
pub fn audit_csv(lines: &[AuditLine]) -> std::result::Result<String, crate::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| crate::Error::render("the audit export", e);
    w.write_record([
        "at",
        "event",
        "actor",
        "username",
        "client_ip",
        "detail",
        "user_agent",
    ])
    .map_err(fail)?;
    for l in lines {
        w.write_record([
            cell(&l.at),
            cell(&l.event),
            cell(&l.actor),
            cell(&l.username),
            cell(&l.client_ip),
            cell(&l.detail),
            cell(&l.user_agent),
        ])
        .map_err(fail)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| crate::Error::render("the audit export", e))?;
    String::from_utf8(bytes).map_err(|e| crate::Error::render("the audit export", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        let line = AuditLine {
            when: String::new(),
            at: "2026-11-29T10:00:00Z".to_owned(),
            event: "account.email_changed".to_owned(),
            actor: "helpdesk 999AKHAN01".to_owned(),
            username: "999JSMITH01".to_owned(),
            client_ip: "10.0.0.1".to_owned(),
            detail: "=HYPERLINK(\"http://evil\",\"x\")".to_owned(),
            user_agent: "@evil".to_owned(),
        };
        let text = audit_csv(&[line]).expect("csv");
        assert!(text.starts_with("at,event,actor,username,client_ip,detail,user_agent\n"));
        assert!(
            text.contains("\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""),
            "{text}"
        );
        assert!(text.ends_with(",'@evil\n"), "{text}");
        for danger in ["+1", "-1", "@SUM(A1)"] {
            assert_eq!(cell(danger), format!("'{danger}"));
        }
        assert_eq!(cell("sign_in.failed"), "sign_in.failed");
    }

    #[test]
    fn days_are_read_both_ways() {
        assert_eq!(
            parse_day("2026-11-29"),
            Some(jiff::civil::date(2026, 11, 29))
        );
        assert_eq!(
            parse_day("29/11/2026"),
            Some(jiff::civil::date(2026, 11, 29))
        );
        assert_eq!(parse_day("31/02/2026"), None);
        assert_eq!(parse_day("yesterday"), None);
    }
}

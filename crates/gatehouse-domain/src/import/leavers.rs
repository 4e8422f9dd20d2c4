//! A full import: the file lists every member of staff of its employers,
//! so the people of those employers who are missing from it have left and
//! are disabled, and someone disabled that way who appears again has come
//! back and is enabled.
//!
//! A safety limit per employer stops a truncated or wrong file from
//! disabling a whole trust: more leavers than the limit refuses the import.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::read::RowError;
use crate::account::{EmployerRef, Role};
use crate::time::Timestamp;

/// The share of an employer's enabled staff, in percent, that a full
/// import may disable before it is refused, unless the operator allows more.
pub const DEFAULT_LEAVER_PERCENT: usize = 5;

/// What makes an import a full one: the employers it is complete for and
/// the safety limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullImport {
    /// The employers the file lists every member of staff of, written as
    /// the file's `employer` column writes them (a number, a number and a
    /// name, or a name alone); empty: every employer in the file.
    pub employers: Vec<String>,
    /// The most people of any one employer the import may disable; `None`:
    /// [`default_leaver_limit`] of that employer's enabled staff.
    pub max_leavers: Option<usize>,
    /// The account of the administrator importing the file: never a leaver,
    /// since nobody disables their own account.
    pub importer: Option<i64>,
}

/// Someone a full import disables: an enabled account of a covered
/// employer that no row of the file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaver {
    /// The account's id.
    pub id: i64,
    /// Its username.
    pub username: String,
    /// Its employer's number.
    pub employer_code: String,
    /// Its role (a helpdesk or admin member can leave too).
    pub role: Role,
}

/// Someone a full import disabled before who is in this file again: their
/// account is enabled, keeping its username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returner {
    /// The row's line.
    pub line: u64,
    /// The account's id.
    pub id: i64,
    /// Its username.
    pub username: String,
}

/// One employer a full import covers: its leavers against its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployerLeavers {
    /// The employer's number.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its enabled accounts before the import.
    pub enabled: usize,
    /// How many of them the import would disable.
    pub leavers: usize,
    /// The most it may disable.
    pub limit: usize,
}

impl EmployerLeavers {
    /// Whether the import would disable more people than it may.
    pub fn over_limit(&self) -> bool {
        self.leavers > self.limit
    }
}

/// The default safety limit for an employer with `enabled` enabled
/// accounts: 5%, rounded down, but at least 1, so that one person leaving a
/// small employer does not need the operator every night.
pub fn default_leaver_limit(enabled: usize) -> usize {
    (enabled * DEFAULT_LEAVER_PERCENT / 100).max(1)
}

/// Whether an account was disabled by a full import (and not since by
/// hand): `left_at` is written with `disabled_at` by a full import only,
/// and any later disabling writes another `disabled_at`.
pub fn disabled_as_leaver(disabled_at: Option<Timestamp>, left_at: Option<Timestamp>) -> bool {
    disabled_at.is_some() && disabled_at == left_at
}

/// The employer numbers a full import covers: those `full` names, or every
/// one in the file. `known` maps every employer number (stored or added by
/// the file) to its name; `in_file` holds the numbers the rows use.
pub(super) fn covered_employers(
    full: &FullImport,
    known: &HashMap<String, String>,
    in_file: &BTreeSet<String>,
) -> Result<BTreeSet<String>, Vec<RowError>> {
    if full.employers.is_empty() {
        return Ok(in_file.clone());
    }
    let mut covered = BTreeSet::new();
    let mut errors = Vec::new();
    for given in &full.employers {
        let problem = |reason: String| RowError {
            line: 0,
            reason: format!("--employer {given:?}: {reason}"),
        };
        let found = match EmployerRef::parse(given) {
            Err(reason) => Err(problem(reason)),
            Ok(EmployerRef {
                code: Some(code), ..
            }) => known
                .contains_key(&code)
                .then_some(code.clone())
                .ok_or_else(|| {
                    problem(format!(
                        "no employer numbered {code} is in the file or on record"
                    ))
                }),
            Ok(EmployerRef { name, .. }) => {
                let name = name.unwrap_or_default().to_lowercase();
                known
                    .iter()
                    .find(|(_, n)| n.to_lowercase() == name)
                    .map(|(code, _)| code.clone())
                    .ok_or_else(|| {
                        problem("no employer of that name is in the file or on record".to_owned())
                    })
            }
        };
        match found {
            Ok(code) => {
                covered.insert(code);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(covered)
    } else {
        Err(errors)
    }
}

/// One stored account as the leaver search sees it.
pub(super) struct Candidate<'a> {
    /// The account's id.
    pub id: i64,
    /// Its username.
    pub username: &'a str,
    /// Its employer's number.
    pub employer_code: &'a str,
    /// Its role.
    pub role: Role,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether a row of the file is this account.
    pub in_file: bool,
}

/// The leavers among `candidates` (every stored account) for the `covered`
/// employers, and each covered employer's count against its limit, in
/// employer order. `names` maps employer numbers to names.
pub(super) fn find_leavers<'a>(
    candidates: impl Iterator<Item = Candidate<'a>>,
    covered: &BTreeSet<String>,
    names: &HashMap<String, String>,
    full: &FullImport,
) -> (Vec<Leaver>, Vec<EmployerLeavers>) {
    let mut leavers = Vec::new();
    let mut enabled: BTreeMap<&str, usize> = covered.iter().map(|c| (c.as_str(), 0)).collect();
    for c in candidates {
        if !c.enabled {
            continue;
        }
        let Some(count) = enabled.get_mut(c.employer_code) else {
            continue;
        };
        *count += 1;
        if !c.in_file && full.importer != Some(c.id) {
            leavers.push(Leaver {
                id: c.id,
                username: c.username.to_owned(),
                employer_code: c.employer_code.to_owned(),
                role: c.role,
            });
        }
    }
    leavers.sort_by(|a, b| (&a.employer_code, &a.username).cmp(&(&b.employer_code, &b.username)));
    let coverage = enabled
        .into_iter()
        .map(|(code, enabled)| EmployerLeavers {
            code: code.to_owned(),
            name: names.get(code).cloned().unwrap_or_default(),
            enabled,
            leavers: leavers.iter().filter(|l| l.employer_code == code).count(),
            limit: full
                .max_leavers
                .unwrap_or_else(|| default_leaver_limit(enabled)),
        })
        .collect();
    (leavers, coverage)
}

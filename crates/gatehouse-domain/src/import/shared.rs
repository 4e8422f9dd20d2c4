//! One email address for one person: an address that reaches two people's
//! accounts would carry one person's username and reset link to the other.

use std::collections::HashMap;

use super::plan::{AccountUpdate, ImportPlan, KnownAccount};
use super::read::RowError;

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
pub(super) fn check_shared_addresses(
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

/// A row of the file as a holder of its address, for
/// [`shared_between_rows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressHolder {
    /// The row's line.
    pub line: u64,
    /// The address, lower case.
    pub email_key: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Which of the plans the file was planned in the row was in: rows of
    /// one plan were compared there.
    pub part: usize,
}

/// The rows that give one address to two people when the file is planned
/// a few employers at a time (each a part): `holders` are rows sharing an
/// address with a row of another employer; each that adds or changes a person (`touched`)
/// and shares its address with a different person is a problem, as
/// [`plan_rows`](super::plan_rows) finds within the employers it plans.
pub fn shared_between_rows(
    holders: &[AddressHolder],
    touched: impl Fn(u64) -> bool,
) -> Vec<RowError> {
    let mut by_address: HashMap<&str, Vec<&AddressHolder>> = HashMap::new();
    for holder in holders {
        by_address
            .entry(&holder.email_key)
            .or_default()
            .push(holder);
    }
    let mut errors = Vec::new();
    for group in by_address.values() {
        for me in group {
            if !touched(me.line) {
                continue;
            }
            let person = person_of(&me.first_name, &me.last_name, &me.date_of_birth);
            let other = group.iter().find(|h| {
                h.part != me.part
                    && person_of(&h.first_name, &h.last_name, &h.date_of_birth) != person
            });
            if let Some(other) = other {
                errors.push(RowError {
                    line: me.line,
                    reason: format!(
                        "email {:?} is also on line {} for another person: one address must not reach two people's accounts",
                        me.email_key, other.line
                    ),
                });
            }
        }
    }
    errors.sort_by_key(|e| e.line);
    errors
}

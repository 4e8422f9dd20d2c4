//! Which employer each row of a staff file is: by number, or by name for
//! files that give only names, numbering new ones as they are first seen.

use std::collections::{BTreeSet, HashMap};

use super::leavers::{FullImport, covered_employers};
use super::plan::{EmployerChange, KnownEmployer};
use super::read::RowError;
use crate::account::EmployerRef;

/// Numbers given to employers that the file names without a number.
const ALLOCATED_CODES_FROM: u32 = 900;

/// The employers a staff file names, resolved row by row in file order
/// (the numbers given to unnumbered employers, and which name wins a
/// rename, depend on that order): small, whatever the file's size.
#[derive(Debug, Clone)]
pub struct EmployerBook {
    /// Every number, stored or added: its id if stored, and its name.
    by_code: HashMap<String, (Option<i64>, String)>,
    /// Lower-case names to numbers.
    by_name: HashMap<String, String>,
    next_code: u32,
    changes: Vec<EmployerChange>,
    /// The numbers the rows use.
    in_file: BTreeSet<String>,
}

impl EmployerBook {
    /// A book of the stored employers.
    pub fn new(employers: &[KnownEmployer]) -> Self {
        Self {
            by_code: employers
                .iter()
                .map(|e| (e.code.clone(), (Some(e.id), e.name.clone())))
                .collect(),
            by_name: employers
                .iter()
                .map(|e| (e.name.to_lowercase(), e.code.clone()))
                .collect(),
            next_code: ALLOCATED_CODES_FROM,
            changes: Vec::new(),
            in_file: BTreeSet::new(),
        }
    }

    /// The number of the employer a row names, adding or renaming it as
    /// the file says.
    pub fn resolve(&mut self, employer: &EmployerRef) -> String {
        let code = match (&employer.code, &employer.name) {
            (Some(code), name) => {
                let changes = &mut self.changes;
                let entry = self.by_code.entry(code.clone()).or_insert_with(|| {
                    let name = name.clone().unwrap_or_else(|| format!("Employer {code}"));
                    changes.push(EmployerChange {
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
                    match changes.iter_mut().find(|c| c.code == *code) {
                        Some(change) => change.name = name.clone(),
                        None => changes.push(EmployerChange {
                            code: code.clone(),
                            name: name.clone(),
                            existing_id: entry.0,
                        }),
                    }
                }
                self.by_name.insert(entry.1.to_lowercase(), code.clone());
                code.clone()
            }
            (None, Some(name)) => match self.by_name.get(&name.to_lowercase()) {
                Some(code) => code.clone(),
                None => {
                    while self.by_code.contains_key(&self.next_code.to_string()) {
                        self.next_code += 1;
                    }
                    let code = self.next_code.to_string();
                    self.by_code.insert(code.clone(), (None, name.clone()));
                    self.by_name.insert(name.to_lowercase(), code.clone());
                    self.changes.push(EmployerChange {
                        code: code.clone(),
                        name: name.clone(),
                        existing_id: None,
                    });
                    code
                }
            },
            (None, None) => String::new(),
        };
        if !code.is_empty() {
            self.in_file.insert(code.clone());
        }
        code
    }

    /// The employers to add or rename.
    pub fn changes(&self) -> &[EmployerChange] {
        &self.changes
    }

    /// Every employer number (stored or added) with its name.
    pub fn names(&self) -> HashMap<String, String> {
        self.by_code
            .iter()
            .map(|(code, (_, name))| (code.clone(), name.clone()))
            .collect()
    }

    /// The numbers of the stored employers by their ids.
    pub fn codes_by_id(&self) -> HashMap<i64, String> {
        self.by_code
            .iter()
            .filter_map(|(code, (id, _))| id.map(|id| (id, code.clone())))
            .collect()
    }

    /// The id of a stored employer.
    pub fn id_of(&self, code: &str) -> Option<i64> {
        self.by_code.get(code).and_then(|(id, _)| *id)
    }

    /// The employer numbers a full import covers: those `full` names, or
    /// every one in the file; `None` for an import that is not full, or
    /// (adding the problems to `errors`) when `full` names an employer
    /// that is neither in the file nor stored.
    pub fn covered(
        &self,
        full: Option<&FullImport>,
        errors: &mut Vec<RowError>,
    ) -> Option<BTreeSet<String>> {
        match covered_employers(full?, &self.names(), &self.in_file) {
            Ok(covered) => Some(covered),
            Err(problems) => {
                errors.extend(problems);
                None
            }
        }
    }
}

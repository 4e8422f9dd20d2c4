//! The staff file (`gatehouse import`): reading and checking it, then
//! planning what it changes.
//!
//! Format (docs/design.md, "The staff file"): UTF-8, RFC 4180, a header row; columns
//! `employer,username,first_name,last_name,date_of_birth,email` and optionally
//! `employee_number,role`, in any order. A file with any bad row imports
//! nothing: every problem is reported with its line number, so the HR team
//! can fix the whole file in one go.

mod employers;
mod leavers;
mod plan;
mod read;
mod shared;

pub use employers::EmployerBook;
pub use leavers::{
    DEFAULT_LEAVER_PERCENT, EmployerLeavers, FullImport, Leaver, Returner, default_leaver_limit,
    disabled_as_leaver,
};
pub use plan::*;
pub use read::*;
pub use shared::{AddressHolder, shared_between_rows};

#[cfg(test)]
mod leavers_tests;
#[cfg(test)]
mod tests;

//! Gatehouse's integration tests: one binary, every flow and invariant,
//! against the whole service on a random port.

mod cli;
mod console;
mod console_cases;
mod crash_cases;
mod db;
mod deadline;
mod faults;
mod flows;
mod fuzz_corpus;
mod helpers;
mod link_cases;
mod links;
mod lockout;
mod mail;
mod multinode;
mod privileged_access;
mod recovery;
mod recovery_cases;
mod security;
mod sign_in_cases;
mod staff_file;
mod web_cases;

//! Gatehouse's integration tests: one binary, every flow and invariant,
//! against the whole service on a random port.

mod cli;
mod console;
mod crash;
mod deadline;
mod faults;
mod flows;
mod fuzz_corpus;
mod helpers;
mod import_parts;
mod leavers;
mod links;
mod mail;
mod metrics;
mod multinode;
mod oidc;
mod own_account;
mod passkey_reset;
mod passkeys;
mod privileged_access;
mod recovery;
mod retention;
mod security;
mod sign_in;
mod staff_file;
mod web;

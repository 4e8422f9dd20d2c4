//! The `gatehouse` binary's parts: configuration, wiring, the command line
//! and the demo. Kept in a library so integration tests can start the
//! service in-process.

pub mod admin;
pub mod app;
pub mod backup;
pub mod cli;
pub mod clients;
pub mod config;
pub mod demo;
pub mod failure;
pub mod import;
pub mod person;
pub mod telemetry;
pub mod terminal;

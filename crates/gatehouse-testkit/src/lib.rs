//! Helpers for Gatehouse's tests and benchmarks: an in-process SMTP server,
//! and throwaway PostgreSQL databases.

pub mod postgres;
pub mod smtp;

pub use postgres::TestDatabase;
pub use smtp::{SinkMode, SmtpSink};

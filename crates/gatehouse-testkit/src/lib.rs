//! Helpers for Gatehouse's tests and benchmarks.

pub mod smtp;

pub use smtp::{SinkMode, SmtpSink};

//! Helpers for Gatehouse's tests and benchmarks: an in-process SMTP server,
//! throwaway PostgreSQL databases, and a TCP proxy that can be cut.

pub mod postgres;
pub mod proxy;
pub mod smtp;

pub use postgres::TestDatabase;
pub use proxy::{ProxyState, TcpProxy};
pub use smtp::{SinkMode, SmtpSink};

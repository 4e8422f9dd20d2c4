//! The test harness, one concern a file:
//!
//! - [`app`]: the whole service in-process on a random port, with a
//!   temporary database, a real SMTP server and a clock the test moves; the
//!   real binary for tests that run it as a process;
//! - [`browser`]: [`Browser`], the one client every test drives the service
//!   with, and what it reads in pages, headers and cookies;
//! - [`mail`]: what reaches the SMTP server and the outbox, and the links
//!   and usernames in it;
//! - [`authenticator`]: a software passkey (P-256) for the WebAuthn ceremonies;
//! - [`db`]: the tests' own view of the database;
//! - [`people`]: the sample people, as [`Person`] values, and staff files
//!   made of them.

pub mod app;
pub mod authenticator;
pub mod browser;
pub mod db;
pub mod mail;
pub mod people;

pub use app::*;
pub use authenticator::*;
pub use browser::*;
pub use db::*;
pub use mail::*;
pub use people::*;

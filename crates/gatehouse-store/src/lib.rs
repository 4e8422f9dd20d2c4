//! Gatehouse's storage: SQLite (the embedded default, one node) and
//! PostgreSQL (several nodes), one module per aggregate.
//!
//! Each module owns its tables' typed rows (`sqlx::FromRow` over domain
//! types, which the domain stores as themselves: an unknown value read back
//! is an error) and the query functions over them. Every query function
//! takes a connection, so the same function serves a caller on a pooled
//! connection ([`SqlStore::read`], [`SqlStore::write`]) and one inside a
//! transaction ([`SqlStore::begin`]); what must happen together takes a
//! [`Tx`]. The rules (what to write, and when) live in `gatehouse-core`;
//! this crate only speaks SQL.
//!
//! Both backends pass the same conformance suite (`tests/conformance.rs`),
//! their schemas are compared (`tests/schema.rs`), and every statement the
//! suite runs must be answered through an index (`tests/indexes.rs`).

pub mod accounts;
pub mod attempts;
pub mod audit;
pub mod browsers;
mod database;
pub mod erasure;
mod error;
pub mod housekeeping;
pub mod import;
pub mod keys;
mod lease;
pub mod oidc;
pub mod outbox;
pub mod passkeys;
pub mod recovery;
pub mod reset_links;
pub mod retention;
pub mod second_factor;
pub mod sessions;

pub use accounts::AccountRecord;
pub use attempts::{CounterChange, CounterUpdate, SignInSuccess};
pub use audit::{AuditFilter, AuditRecord, AuditRow};
pub use database::{PoolSettings, PoolUse, Pooled, SchemaState, SqlStore, Tx, backend_of};
pub use error::{Result, StoreError};
pub use housekeeping::QueueDepths;
pub use import::{EmailChange, ImportSummary};
pub use keys::ServiceKey;
pub use outbox::{Backlog, Delivery, DeliveryResult, NewEmail, OutboxEmail, OutboxSummary};
pub use recovery::{RecoveryRequestRow, RecoveryRequestSummary};
pub use reset_links::{NewResetLink, ResetLinkRow};
pub use second_factor::SecondFactorRow;
pub use sessions::SessionRecord;
/// A connection, as every query function takes it (pooled or inside a
/// transaction).
pub use sqlx::AnyConnection as Connection;
/// What the database driver reports (a transaction's commit, say).
pub use sqlx::Error as DatabaseError;

/// Which database engine a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file: the embedded default, one node.
    Sqlite,
    /// PostgreSQL: several nodes.
    Postgres,
}

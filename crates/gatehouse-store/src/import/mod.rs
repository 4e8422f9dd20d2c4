//! The staff file's writes: what the planner (in the domain) decided, in
//! one transaction; and staff files an administrator uploaded, kept between
//! their preview and their import.
//!
//! The service imports through [`ImportScratch`], a few employers at a
//! time ([`write_employers`], [`write_changes`], [`add_staged_accounts`]).
//! [`index`] and [`apply`] plan and write a whole file in memory: the
//! conformance suite builds its fixtures with them, on files of a few rows.

use std::collections::HashMap;

use gatehouse_domain::import::{
    AccountUpdate, EmployerChange, ImportPlan, KnownAccount, KnownEmployer, Leaver, Returner,
};
use gatehouse_domain::reset_link::VoidReason;
use gatehouse_domain::{EmailAddress, Timestamp, Username};
use sqlx::{AnyConnection, AssertSqlSafe};

mod lookups;
mod postgres;
mod scratch;

pub use lookups::{RowFeed, StagedRow};
pub use scratch::ImportScratch;

use crate::database::{backend_of_connection, placeholders};
use crate::{Backend, Result, StoreError, Tx, accounts, reset_links, sessions};

/// New accounts from which an import into SQLite builds the accounts
/// table's indexes afterwards instead of row by row.
const BULK_LOAD_ROWS: usize = 50_000;

/// Accounts read per statement when an import loads every stored account.
const IMPORT_INDEX_PAGE: i64 = 20_000;

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Employers added.
    pub employers_created: usize,
    /// Employers renamed.
    pub employers_renamed: usize,
    /// People added.
    pub created: usize,
    /// People changed.
    pub updated: usize,
    /// People already as the file says.
    pub unchanged: usize,
    /// Accounts whose email address changed (their links voided, sessions ended).
    pub email_changes: Vec<EmailChange>,
    /// People a full import disabled for missing from the file.
    pub leavers: Vec<Leaver>,
    /// People disabled by a full import before, enabled by being in the file again.
    pub returners: Vec<Returner>,
}

/// An email address changed by an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChange {
    /// The account.
    pub account_id: i64,
    /// Its username.
    pub username: Username,
    /// The old address.
    pub old_email: EmailAddress,
    /// The new address.
    pub new_email: EmailAddress,
}

/// Every stored employer.
pub async fn employers(conn: &mut AnyConnection) -> Result<Vec<KnownEmployer>> {
    Ok(sqlx::query_as("SELECT id, code, name FROM employers")
        .fetch_all(&mut *conn)
        .await?)
}

/// Employers and accounts, for planning an import in memory.
pub async fn index(conn: &mut AnyConnection) -> Result<(Vec<KnownEmployer>, Vec<KnownAccount>)> {
    let employers = self::employers(conn).await?;
    // In pages by id: one statement for two million accounts would hold
    // every raw row in memory at once, beside the decoded copies.
    let mut accounts: Vec<KnownAccount> = Vec::new();
    let mut after = 0_i64;
    loop {
        let page: Vec<KnownAccount> = sqlx::query_as(
            "SELECT id, employer_id, username, first_name, last_name, date_of_birth, email, \
             employee_number, role, disabled_at, left_at FROM accounts \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(IMPORT_INDEX_PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let full = page.len() as i64 == IMPORT_INDEX_PAGE;
        accounts.extend(page);
        match accounts.last() {
            Some(last) if full => after = last.id,
            _ => break,
        }
    }
    Ok((employers, accounts))
}

/// Writes an import plan: employers, new people, changes. In the caller's
/// transaction, so that a file imports whole or not at all.
pub async fn apply(tx: &mut Tx, plan: &ImportPlan, now: Timestamp) -> Result<ImportSummary> {
    let backend = backend_of_connection(tx);
    let mut summary = ImportSummary::default();
    (summary.employers_created, summary.employers_renamed) =
        write_employers(tx, &plan.employers).await?;
    let employer_ids: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT code, id FROM employers")
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();

    let bulk = BulkLoad::begin(tx, plan.creates.len()).await?;
    let result = insert_new_accounts(tx, backend, plan, now, &mut summary, &employer_ids).await;
    let result = bulk.end(tx, result).await;
    result?;
    write_changes(tx, plan, now, &mut summary).await?;
    Ok(summary)
}

/// Adds the new people an import staged in `scratch` (as
/// [`ImportScratch::add_new_accounts`]), `count` of them, into SQLite as a
/// bulk load when there are many.
pub async fn add_staged_accounts(
    tx: &mut Tx,
    scratch: &ImportScratch,
    count: usize,
    now: Timestamp,
) -> Result<u64> {
    let bulk = BulkLoad::begin(tx, count).await?;
    let result = scratch.add_new_accounts(tx, now).await;
    bulk.end(tx, result).await
}

/// Adding many accounts at once: on SQLite a bigger page cache, and the
/// accounts table's indexes built afterwards.
struct BulkLoad {
    sqlite: bool,
    /// What was dropped and how to make it again.
    rebuild: Vec<(String, String)>,
}

impl BulkLoad {
    /// Prepares to add `count` accounts.
    async fn begin(tx: &mut Tx, count: usize) -> Result<Self> {
        let sqlite = backend_of_connection(tx) == Backend::Sqlite && count > 0;
        if sqlite {
            // SQLite's default page cache is 2 MiB; a large import inserts
            // into several indexes in key order that is not insertion
            // order, and with a small cache every insert re-reads and
            // re-writes pages through the kernel (half the time of a
            // 500,000-row import, in perf). The cache only grows as pages
            // are used, and goes back to the default before this
            // connection is reused.
            sqlx::query("PRAGMA cache_size = -262144")
                .execute(&mut **tx)
                .await?;
        }
        // Inserting 2,000,000 rows one by one into the secondary indexes
        // (each in an order of its own) took most of the import; building
        // each index afterwards from sorted keys is several times faster.
        // The indexes are dropped and made again from their own stored
        // definitions inside this transaction, so nobody sees the table
        // without them, and a unique index that no longer holds fails the
        // import as a whole. SQLite's readers keep reading (they see the
        // table as it was); PostgreSQL's wait for the transaction, so
        // there this is done only for a load that more than doubles the
        // table, when there is next to nobody to sign in yet.
        let bulk = count >= BULK_LOAD_ROWS
            && match backend_of_connection(tx) {
                Backend::Sqlite => true,
                Backend::Postgres => {
                    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
                        .fetch_one(&mut **tx)
                        .await?;
                    usize::try_from(stored).unwrap_or(usize::MAX) < count
                }
            };
        // (What to drop, how to make it again.) On PostgreSQL, the
        // constraints checked row by row (unique usernames, the employer
        // exists) are dropped and added again too, each checked once over
        // the table; the primary key stays: other tables' foreign keys
        // need it.
        let found_sql = match backend_of_connection(tx) {
            Backend::Sqlite => {
                "SELECT 'DROP INDEX \"' || name || '\"', sql FROM sqlite_master \
                 WHERE type = 'index' AND tbl_name = 'accounts' AND sql IS NOT NULL"
            }
            Backend::Postgres => {
                "SELECT 'ALTER TABLE accounts DROP CONSTRAINT \"' || conname || '\"', \
                 'ALTER TABLE accounts ADD CONSTRAINT \"' || conname || '\" ' \
                 || pg_get_constraintdef(oid) \
                 FROM pg_constraint WHERE conrelid = 'accounts'::regclass \
                 AND contype IN ('u', 'f') \
                 UNION ALL SELECT 'DROP INDEX \"' || i.relname || '\"', \
                 pg_get_indexdef(i.oid) FROM pg_index x \
                 JOIN pg_class i ON i.oid = x.indexrelid \
                 WHERE x.indrelid = 'accounts'::regclass AND NOT EXISTS \
                 (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
            }
        };
        let rebuild = if bulk {
            let found: Vec<(String, String)> =
                sqlx::query_as(found_sql).fetch_all(&mut **tx).await?;
            for (drop, _) in &found {
                sqlx::query(AssertSqlSafe(drop.clone()))
                    .execute(&mut **tx)
                    .await?;
            }
            found
        } else {
            Vec::new()
        };
        Ok(Self { sqlite, rebuild })
    }

    /// Rebuilds what [`BulkLoad::begin`] dropped, passing on the outcome
    /// of the load (or of the rebuild, if the load went well).
    async fn end<T>(self, tx: &mut Tx, loaded: Result<T>) -> Result<T> {
        let mut result = loaded;
        for (_, sql) in &self.rebuild {
            if result.is_ok()
                && let Err(e) = sqlx::query(AssertSqlSafe(sql.clone()))
                    .execute(&mut **tx)
                    .await
            {
                result = Err(e.into());
            }
        }
        if self.sqlite {
            sqlx::query("PRAGMA cache_size = -2000")
                .execute(&mut **tx)
                .await?;
        }
        result
    }
}

/// Adds and renames employers: how many were added and renamed.
pub async fn write_employers(tx: &mut Tx, changes: &[EmployerChange]) -> Result<(usize, usize)> {
    let (mut created, mut renamed) = (0, 0);
    for change in changes {
        match change.existing_id {
            Some(id) => {
                sqlx::query("UPDATE employers SET name = $2 WHERE id = $1")
                    .bind(id)
                    .bind(&change.name)
                    .execute(&mut **tx)
                    .await?;
                renamed += 1;
            }
            None => {
                sqlx::query("INSERT INTO employers (code, name) VALUES ($1, $2)")
                    .bind(&change.code)
                    .bind(&change.name)
                    .execute(&mut **tx)
                    .await?;
                created += 1;
            }
        }
    }
    Ok((created, renamed))
}

/// Accounts changed by one statement when leavers are disabled or
/// returners enabled.
const SET_BATCH: usize = 1_000;

/// Writes a plan's changes to stored accounts (its updates, leavers and
/// returners, not its new people), adding them to `summary`.
pub async fn write_changes(
    tx: &mut Tx,
    plan: &ImportPlan,
    now: Timestamp,
    summary: &mut ImportSummary,
) -> Result<()> {
    update_accounts(tx, &plan.updates, now, summary).await?;
    summary.unchanged += plan.unchanged;
    leavers_and_returners(tx, plan, now, summary).await
}

/// Disables a full import's leavers (their sessions and applications'
/// grants end, their reset links are voided) and enables its returners.
/// Each is written only if the account is still as the plan found it, so
/// an account disabled by hand since the plan is neither marked a leaver
/// nor enabled.
async fn leavers_and_returners(
    tx: &mut Tx,
    plan: &ImportPlan,
    now: Timestamp,
    summary: &mut ImportSummary,
) -> Result<()> {
    // A thousand accounts a statement: a transfer of a whole employer
    // makes tens of thousands of leavers at once.
    for batch in plan.leavers.chunks(SET_BATCH) {
        let ids: Vec<i64> = batch.iter().map(|l| l.id).collect();
        let disabled = accounts::disable_leavers(tx, &ids, now).await?;
        reset_links::void_for_accounts(tx, &disabled, VoidReason::AccountDisabled, now).await?;
        summary.leavers.extend(
            batch
                .iter()
                .filter(|l| disabled.binary_search(&l.id).is_ok())
                .cloned(),
        );
    }
    for batch in plan.returners.chunks(SET_BATCH) {
        let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
        let enabled = accounts::enable_returners(tx, &ids, now).await?;
        summary.returners.extend(
            batch
                .iter()
                .filter(|r| enabled.binary_search(&r.id).is_ok())
                .cloned(),
        );
    }
    Ok(())
}

/// A planned import's new accounts, in batches.
async fn insert_new_accounts(
    tx: &mut Tx,
    backend: Backend,
    plan: &ImportPlan,
    now: Timestamp,
    summary: &mut ImportSummary,
    employer_ids: &HashMap<String, i64>,
) -> Result<()> {
    let employer_id = |code: &str| {
        employer_ids
            .get(code)
            .copied()
            .ok_or_else(|| StoreError::Config(format!("employer {code} vanished mid-import")))
    };
    let batch_rows = match backend {
        // Parameters per statement (13 per row): SQLite allows 32,766,
        // PostgreSQL 65,535.
        Backend::Sqlite => 2_500,
        Backend::Postgres => 5_000,
    };
    for batch in plan.creates.chunks(batch_rows) {
        let mut sql = String::from(
            "INSERT INTO accounts (employer_id, username, username_key, first_name, \
             last_name, date_of_birth, email, email_key, employee_number, role, created_at, \
             updated_at, last_name_key) VALUES ",
        );
        sql.push_str(&placeholders(backend, batch.len(), 13));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in batch {
            q = q
                .bind(employer_id(&c.employer_code)?)
                .bind(c.username.as_str().to_owned())
                .bind(c.username.key().as_str().to_owned())
                .bind(c.row.first_name.as_str().to_owned())
                .bind(c.row.last_name.as_str().to_owned())
                .bind(c.row.date_of_birth.iso())
                .bind(c.row.email.as_str().to_owned())
                .bind(c.row.email.key())
                .bind(
                    c.row
                        .employee_number
                        .as_ref()
                        .map(|n| n.as_str().to_owned()),
                )
                .bind(c.row.role.unwrap_or_default())
                .bind(now)
                .bind(now)
                .bind(c.row.last_name.as_str().to_lowercase());
        }
        q.execute(&mut **tx).await?;
        summary.created += batch.len();
    }
    // New accounts start with no attempt history, even if their username
    // was tried before it existed.
    for batch in plan.creates.chunks(batch_rows) {
        let list = placeholders(backend, batch.len(), 1);
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM sign_in_attempts WHERE username_key IN ({list})"
        )));
        for c in batch {
            q = q.bind(c.username.key().as_str().to_owned());
        }
        q.execute(&mut **tx).await?;
    }

    Ok(())
}

/// Changes stored accounts as the file says; a change of email address
/// voids their reset links and ends their sessions.
async fn update_accounts(
    tx: &mut Tx,
    updates: &[AccountUpdate],
    now: Timestamp,
    summary: &mut ImportSummary,
) -> Result<()> {
    for u in updates {
        sqlx::query(
            "UPDATE accounts SET username = $2, username_key = $3, first_name = $4, \
             last_name = $5, date_of_birth = $6, email = $7, email_key = $8, \
             employee_number = COALESCE($9, employee_number), role = COALESCE($10, role), \
             updated_at = $11, \
             last_name_key = $12 WHERE id = $1",
        )
        .bind(u.id)
        .bind(u.username.as_str())
        .bind(u.username.key().as_str())
        .bind(u.row.first_name.as_str())
        .bind(u.row.last_name.as_str())
        .bind(u.row.date_of_birth.iso())
        .bind(u.row.email.as_str())
        .bind(u.row.email.key())
        .bind(u.row.employee_number.as_ref().map(|n| n.as_str()))
        .bind(u.row.role)
        .bind(now)
        .bind(u.row.last_name.as_str().to_lowercase())
        .execute(&mut **tx)
        .await?;
        summary.updated += 1;
        if let Some(old) = &u.old_email {
            reset_links::void(tx, u.id, VoidReason::EmailChanged, now, None).await?;
            sessions::end_all_of(tx, u.id, now).await?;
            summary.email_changes.push(EmailChange {
                account_id: u.id,
                username: u.username.clone(),
                old_email: EmailAddress::from_trusted(old.clone()),
                new_email: u.row.email.clone(),
            });
        }
    }
    Ok(())
}

/// Keeps an uploaded staff file between its preview and its import; returns its id.
pub async fn stage(
    conn: &mut AnyConnection,
    account_id: i64,
    file_name: &str,
    content: &[u8],
    now: Timestamp,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO staged_imports (account_id, file_name, content, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(account_id)
    .bind(file_name)
    .bind(content)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// A staged file, if it exists, was uploaded by `account_id`, and is
/// younger than `since`: its name and content.
pub async fn staged(
    conn: &mut AnyConnection,
    id: i64,
    account_id: i64,
    since: Timestamp,
) -> Result<Option<(String, Vec<u8>)>> {
    Ok(sqlx::query_as(
        "SELECT file_name, content FROM staged_imports \
         WHERE id = $1 AND account_id = $2 AND created_at >= $3",
    )
    .bind(id)
    .bind(account_id)
    .bind(since)
    .fetch_optional(conn)
    .await?)
}

/// Forgets a staged file (after its import), or every one older than `before`.
pub async fn drop_staged(
    conn: &mut AnyConnection,
    id: Option<i64>,
    before: Timestamp,
) -> Result<u64> {
    let query = match id {
        Some(id) => sqlx::query("DELETE FROM staged_imports WHERE id = $1").bind(id),
        None => sqlx::query("DELETE FROM staged_imports WHERE created_at < $1").bind(before),
    };
    Ok(query.execute(conn).await?.rows_affected())
}

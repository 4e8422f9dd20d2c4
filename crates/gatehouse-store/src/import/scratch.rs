//! A staff file staged in the database while it is imported, so that an
//! import of two million people holds a few employers' rows in memory at a
//! time, not the file and every stored account at once.
//!
//! Two scratch tables live for one import: the file's good rows, and the
//! usernames of the people it adds. On SQLite they are temporary tables of
//! the import's own transaction. On PostgreSQL they are unlogged tables
//! filled with `COPY` on a connection of their own (sqlx's `Any` driver
//! cannot speak COPY), read by the import's transaction, and dropped when
//! it ends; any left by an import that died are dropped by the next after
//! a day. Nothing in them is ever the service's state: the import's
//! transaction writes the accounts, all or nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use gatehouse_domain::account::EmployeeNumber;
use gatehouse_domain::import::{NewAccount, StaffRow};
use gatehouse_domain::{Role, Timestamp, Username};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::postgres::{Streaming, copy_from_channel, copy_in, copy_line, drop_abandoned};
use crate::database::placeholders;
use crate::{Backend, Result, SqlStore, StoreError, Tx};

/// The columns of the staged rows, in the order they are written.
const ROW_COLUMNS: &str = "line, code, username, username_key, first_name, last_name, \
     last_name_key, date_of_birth, email, email_key, employee_number, role";

/// Rows per multi-row `INSERT` on SQLite (12 parameters each; SQLite allows
/// 32,766 per statement).
const SQLITE_ROWS_PER_INSERT: usize = 2_500;

/// Tells apart the scratch tables of imports started in one second by one process.
static NEXT_SCRATCH: AtomicU64 = AtomicU64::new(0);

/// One import's scratch tables. End the import with
/// [`ImportScratch::finish`] whatever its outcome.
pub struct ImportScratch {
    pub(super) backend: Backend,
    pub(super) rows: String,
    pub(super) new: String,
    /// Whether any staged row gives a username.
    pub(super) usernames: bool,
    /// PostgreSQL: the connection that creates, fills and drops the
    /// tables (while the file is staged, the COPY task has it).
    pub(super) copy: Option<PgConnection>,
    /// PostgreSQL: the COPY staging the file, while it runs.
    pub(super) streaming: Option<Streaming>,
}

impl std::fmt::Debug for ImportScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportScratch")
            .field("rows", &self.rows)
            .field("new", &self.new)
            .finish_non_exhaustive()
    }
}

impl ImportScratch {
    /// Creates the scratch tables for an import running in `tx`.
    pub async fn open(store: &SqlStore, tx: &mut Tx, now: Timestamp) -> Result<Self> {
        let suffix = format!(
            "{}_{}_{}",
            now.unix(),
            std::process::id(),
            NEXT_SCRATCH.fetch_add(1, Ordering::Relaxed)
        );
        let rows = format!("gatehouse_import_rows_{suffix}");
        let new = format!("gatehouse_import_new_{suffix}");
        // On SQLite the line is the rowid: free to index, and rows arrive
        // in line order.
        let line = match store.backend() {
            Backend::Sqlite => "INTEGER PRIMARY KEY",
            Backend::Postgres => "BIGINT NOT NULL",
        };
        let row_table = format!(
            "{rows} (line {line}, code TEXT NOT NULL, username TEXT, \
             username_key TEXT, first_name TEXT NOT NULL, last_name TEXT NOT NULL, \
             last_name_key TEXT NOT NULL, date_of_birth TEXT NOT NULL, email TEXT NOT NULL, \
             email_key TEXT NOT NULL, employee_number TEXT, role TEXT)"
        );
        let new_table = format!(
            "{new} (line BIGINT NOT NULL, part BIGINT NOT NULL, username TEXT NOT NULL, \
             username_key TEXT NOT NULL, email_key TEXT NOT NULL)"
        );
        let new_index = format!("CREATE INDEX {new}_part ON {new} (part)");
        let copy = match store.backend() {
            Backend::Sqlite => {
                for sql in [
                    format!("CREATE TEMP TABLE {row_table}"),
                    format!("CREATE TEMP TABLE {new_table}"),
                    new_index,
                ] {
                    sqlx::query(AssertSqlSafe(sql)).execute(&mut **tx).await?;
                }
                None
            }
            Backend::Postgres => {
                let mut conn = store.copy_connection().await?;
                drop_abandoned(&mut conn, now).await?;
                for sql in [
                    format!("CREATE UNLOGGED TABLE {row_table}"),
                    format!("CREATE UNLOGGED TABLE {new_table}"),
                    new_index,
                ] {
                    sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await?;
                }
                Some(conn)
            }
        };
        if store.backend() == Backend::Postgres {
            // The import's statements are many and each is planned once:
            // compiling them (PostgreSQL's JIT, on by default) cost more
            // than it saved. Its sorts, hashes and index builds run over
            // the whole file: more memory than a request's keeps them off
            // disk, for this transaction only.
            for sql in [
                "SET LOCAL jit = off",
                "SET LOCAL work_mem = '64MB'",
                "SET LOCAL maintenance_work_mem = '256MB'",
            ] {
                sqlx::query(sql).execute(&mut **tx).await?;
            }
        }
        Ok(Self {
            backend: store.backend(),
            rows,
            new,
            usernames: false,
            copy,
            streaming: None,
        })
    }

    /// Ends the import's transaction `tx` (committing it if `commit`,
    /// else rolling it back) and drops the scratch tables: on SQLite
    /// first, in the transaction; on PostgreSQL after, since the import's
    /// transaction holds a lock on them until it ends.
    pub async fn finish(mut self, mut tx: Tx, commit: bool) -> Result<()> {
        // An import that stopped while staging: its COPY is ended (and
        // its error ignored) to get the connection back.
        let _ = self.end_copy().await;
        let end = |tx: Tx| async move {
            if commit {
                tx.commit().await
            } else {
                tx.rollback().await
            }
        };
        if self.backend == Backend::Postgres {
            let ended = end(tx).await;
            // Without its connection (its task panicked), the tables are
            // left for a later import to drop as abandoned.
            if let Some(conn) = self.copy.as_mut() {
                let drop = format!("DROP TABLE IF EXISTS {}, {}", self.rows, self.new);
                sqlx::query(AssertSqlSafe(drop)).execute(&mut *conn).await?;
            }
            ended?;
        } else {
            if commit {
                for table in [&self.rows, &self.new] {
                    sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS temp.{table}")))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            end(tx).await?;
        }
        Ok(())
    }

    /// Stages good rows of the file, each with its employer's number.
    pub async fn stage_rows(&mut self, tx: &mut Tx, rows: &[(StaffRow, String)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.usernames |= rows.iter().any(|(row, _)| row.username.is_some());
        if self.backend == Backend::Postgres {
            let mut data = String::with_capacity(rows.len() * 160);
            for (row, code) in rows {
                let key = row.username.as_ref().map(|u| u.key());
                let fields = [
                    Some(row.line.to_string().as_str()),
                    Some(code.as_str()),
                    row.username.as_ref().map(Username::as_str),
                    key.as_ref().map(|k| k.as_str()),
                    Some(row.first_name.as_str()),
                    Some(row.last_name.as_str()),
                    Some(row.last_name.as_str().to_lowercase().as_str()),
                    Some(row.date_of_birth.iso().as_str()),
                    Some(row.email.as_str()),
                    Some(row.email.key().as_str()),
                    row.employee_number.as_ref().map(EmployeeNumber::as_str),
                    row.role.map(Role::as_str),
                ]
                .map(|f| f.map(str::to_owned));
                copy_line(&mut data, &fields);
            }
            return self.send_to_copy(data).await;
        }
        for batch in rows.chunks(SQLITE_ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO {} ({ROW_COLUMNS}) VALUES {}",
                self.rows,
                placeholders(self.backend, batch.len(), 12)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (row, code) in batch {
                q = q
                    .bind(row.line as i64)
                    .bind(code.clone())
                    .bind(row.username.as_ref().map(|u| u.as_str().to_owned()))
                    .bind(row.username.as_ref().map(|u| u.key().as_str().to_owned()))
                    .bind(row.first_name.as_str().to_owned())
                    .bind(row.last_name.as_str().to_owned())
                    .bind(row.last_name.as_str().to_lowercase())
                    .bind(row.date_of_birth.iso())
                    .bind(row.email.as_str().to_owned())
                    .bind(row.email.key())
                    .bind(row.employee_number.as_ref().map(|n| n.as_str().to_owned()))
                    .bind(row.role.map(|r| r.as_str().to_owned()));
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// PostgreSQL: hands rows in COPY's text format to the one `COPY` that
    /// stages the file, started on the first call. It runs in a task of
    /// its own, so that the database takes in one batch while the next is
    /// read from the file.
    async fn send_to_copy(&mut self, data: String) -> Result<()> {
        if self.streaming.is_none() {
            let conn = self.copy.take().ok_or_else(|| {
                StoreError::Config("the import's COPY connection is gone".to_owned())
            })?;
            let statement = format!("COPY {} ({ROW_COLUMNS}) FROM STDIN", self.rows);
            let (sender, receiver) = tokio::sync::mpsc::channel(4);
            let task = tokio::spawn(copy_from_channel(conn, statement, receiver));
            self.streaming = Some(Streaming { sender, task });
        }
        let Some(streaming) = self.streaming.as_ref() else {
            return Ok(());
        };
        if streaming.sender.send(data).await.is_err() {
            // The COPY stopped: its own error says why.
            self.end_copy().await?;
            return Err(StoreError::Config(
                "the COPY staging the file stopped".to_owned(),
            ));
        }
        Ok(())
    }

    /// Ends the COPY that stages the file, if one runs, and takes its
    /// connection back.
    async fn end_copy(&mut self) -> Result<()> {
        let Some(Streaming { sender, task }) = self.streaming.take() else {
            return Ok(());
        };
        drop(sender);
        let (conn, result) = task
            .await
            .map_err(|e| StoreError::Config(format!("the COPY staging the file failed: {e}")))?;
        self.copy = Some(conn);
        result
    }

    /// Indexes the staged rows for the lookups that follow; call once
    /// every row is staged.
    pub async fn rows_staged(&mut self, tx: &mut Tx) -> Result<()> {
        self.end_copy().await?;
        let rows = &self.rows;
        // SQLite reads a part's rows from this index alone: through the
        // table they are a row here and a row there of a file bigger
        // than its cache, read and read again.
        let by_code = match self.backend {
            Backend::Sqlite => "code, line, username, username_key, first_name, last_name, \
                 date_of_birth, email, employee_number, role"
                .to_owned(),
            Backend::Postgres => "code, line".to_owned(),
        };
        let statements = [
            format!("CREATE INDEX {rows}_code ON {rows} ({by_code})"),
            format!(
                "CREATE INDEX {rows}_username ON {rows} (username_key) \
                 WHERE username_key IS NOT NULL"
            ),
            format!("ANALYZE {rows}"),
        ];
        for sql in statements {
            match self.copy.as_mut() {
                Some(conn) => {
                    sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await?;
                }
                None => {
                    sqlx::query(AssertSqlSafe(sql)).execute(&mut **tx).await?;
                }
            }
        }
        Ok(())
    }

    /// Forgets the people part `part` adds, to plan it again.
    pub async fn discard_new(&mut self, tx: &mut Tx, part: usize) -> Result<()> {
        let part = i64::try_from(part).unwrap_or(i64::MAX);
        let sql = format!("DELETE FROM {} WHERE part = $1", self.new);
        match self.copy.as_mut() {
            Some(conn) => {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(part)
                    .execute(&mut *conn)
                    .await?;
            }
            None => {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(part)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// Notes the people part `part` adds: line, username and address.
    pub async fn stage_new(
        &mut self,
        tx: &mut Tx,
        part: usize,
        creates: &[NewAccount],
    ) -> Result<()> {
        if creates.is_empty() {
            return Ok(());
        }
        let columns = "line, part, username, username_key, email_key";
        if let Some(conn) = self.copy.as_mut() {
            let mut data = String::with_capacity(creates.len() * 80);
            for c in creates {
                copy_line(
                    &mut data,
                    &[
                        Some(c.line.to_string()),
                        Some(part.to_string()),
                        Some(c.username.as_str().to_owned()),
                        Some(c.username.key().as_str().to_owned()),
                        Some(c.row.email.key()),
                    ],
                );
            }
            let sql = format!("COPY {} ({columns}) FROM STDIN", self.new);
            return copy_in(conn, &sql, data).await;
        }
        let part = i64::try_from(part).unwrap_or(i64::MAX);
        for batch in creates.chunks(SQLITE_ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO {} ({columns}) VALUES {}",
                self.new,
                placeholders(self.backend, batch.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for c in batch {
                q = q
                    .bind(c.line as i64)
                    .bind(part)
                    .bind(c.username.as_str().to_owned())
                    .bind(c.username.key().as_str().to_owned())
                    .bind(c.row.email.key());
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Adds the people noted by [`ImportScratch::stage_new`] as accounts,
    /// in file order, and clears the sign-in attempts recorded against
    /// their usernames before they existed. Returns how many were added.
    pub async fn add_new_accounts(&self, tx: &mut Tx, now: Timestamp) -> Result<u64> {
        let (rows, new) = (&self.rows, &self.new);
        let added = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO accounts (employer_id, username, username_key, first_name, last_name, \
             date_of_birth, email, email_key, employee_number, role, created_at, updated_at, \
             last_name_key) \
             SELECT e.id, n.username, n.username_key, r.first_name, r.last_name, \
             r.date_of_birth, r.email, r.email_key, r.employee_number, \
             COALESCE(r.role, $1), $2, $2, r.last_name_key \
             FROM {new} n JOIN {rows} r ON r.line = n.line JOIN employers e ON e.code = r.code \
             ORDER BY n.line"
        )))
        .bind(Role::default().as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM sign_in_attempts WHERE username_key IN (SELECT username_key FROM {new})"
        )))
        .execute(&mut **tx)
        .await?;
        Ok(added)
    }
}

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

use gatehouse_domain::account::{EmployeeNumber, EmployerRef, PersonName};
use gatehouse_domain::import::{AddressHolder, KnownAccount, NewAccount, StaffRow};
use gatehouse_domain::{DateOfBirth, EmailAddress, Role, Timestamp, Username};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::postgres::{
    Streaming, copy_from_channel, copy_in, copy_line, drop_abandoned, read_part,
};
use crate::database::placeholders;
use crate::{Backend, Result, SqlStore, StoreError, Tx};

/// An account's columns as a plan knows it ([`KnownAccount`]).
const ACCOUNT_COLUMNS: &str = "a.id, a.employer_id, a.username, a.first_name, a.last_name, \
     a.date_of_birth, a.email, a.employee_number, a.role, a.disabled_at, a.left_at";

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
    backend: Backend,
    rows: String,
    new: String,
    /// Whether any staged row gives a username.
    usernames: bool,
    /// PostgreSQL: the connection that creates, fills and drops the
    /// tables (while the file is staged, the COPY task has it).
    copy: Option<PgConnection>,
    /// PostgreSQL: the COPY staging the file, while it runs.
    streaming: Option<Streaming>,
}

impl std::fmt::Debug for ImportScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportScratch")
            .field("rows", &self.rows)
            .field("new", &self.new)
            .finish_non_exhaustive()
    }
}

/// A staged row read back: the row (its employer given by number) and that number.
pub type StagedRow = (StaffRow, String);

/// The staged rows of each part in turn ([`ImportScratch::feed`]).
pub struct RowFeed {
    /// PostgreSQL: the parts read ahead.
    receiver: Option<tokio::sync::mpsc::Receiver<Result<Vec<StagedRow>>>>,
}

impl std::fmt::Debug for RowFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowFeed").finish_non_exhaustive()
    }
}

/// A staged row as stored.
pub(super) type RawRow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// The statement reading the staged rows of `codes` employers from `table`.
pub(super) fn rows_sql(backend: Backend, table: &str, codes: usize) -> String {
    format!(
        "SELECT line, code, username, first_name, last_name, date_of_birth, email, \
         employee_number, role FROM {table} WHERE code IN ({}) ORDER BY line",
        placeholders(backend, codes, 1)
    )
}

/// A staged row from what was stored.
pub(super) fn staged_row(raw: RawRow) -> Result<StagedRow> {
    let (line, code, username, first, last, dob, email, number, role) = raw;
    let date_of_birth = DateOfBirth::from_stored(&dob).ok_or_else(|| {
        StoreError::Config(format!("a staged date of birth {dob:?} is not a date"))
    })?;
    let row = StaffRow {
        line: u64::try_from(line).unwrap_or_default(),
        employer: EmployerRef {
            code: Some(code.clone()),
            name: None,
        },
        username: username.map(Username::from_trusted),
        first_name: PersonName::from_trusted(first),
        last_name: PersonName::from_trusted(last),
        date_of_birth,
        email: EmailAddress::from_trusted(email),
        employee_number: number.map(EmployeeNumber::from_trusted),
        role: role.as_deref().and_then(Role::from_stored),
    };
    Ok((row, code))
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

    /// Rows naming a username an earlier row names: (line, username, the
    /// earlier row's line), in line order.
    pub async fn duplicate_usernames(&self, tx: &mut Tx) -> Result<Vec<(i64, String, i64)>> {
        if !self.usernames {
            return Ok(Vec::new());
        }
        let rows = &self.rows;
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT r.line, r.username, d.first FROM {rows} r JOIN \
             (SELECT username_key, MIN(line) AS first FROM {rows} WHERE username_key IS NOT NULL \
              GROUP BY username_key HAVING COUNT(*) > 1) d ON d.username_key = r.username_key \
             WHERE r.line <> d.first ORDER BY r.line"
        )))
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Each employer number in the file with its number of rows, in order.
    pub async fn employers(&self, tx: &mut Tx) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT code, COUNT(*) FROM {} GROUP BY code ORDER BY code",
            self.rows
        )))
        .fetch_all(&mut **tx)
        .await?)
    }

    /// The staged rows of the employers `codes`, in line order.
    pub async fn rows_of(&self, tx: &mut Tx, codes: &[String]) -> Result<Vec<StagedRow>> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = sqlx::query_as::<_, RawRow>(AssertSqlSafe(rows_sql(
            self.backend,
            &self.rows,
            codes.len(),
        )));
        for code in codes {
            q = q.bind(code.clone());
        }
        q.fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(staged_row)
            .collect()
    }

    /// Starts reading the rows of `parts` (lists of employer numbers) in
    /// turn for [`ImportScratch::next_part`]. On PostgreSQL a task reads
    /// them on a connection of its own, a part ahead of the one being
    /// planned, so that the database reads while the service plans; on
    /// SQLite, whose scratch tables only the import's connection sees,
    /// each part is read when asked for.
    pub async fn feed(&self, store: &SqlStore, parts: &[Vec<String>]) -> Result<RowFeed> {
        if self.backend == Backend::Sqlite {
            return Ok(RowFeed { receiver: None });
        }
        let mut conn = store.copy_connection().await?;
        sqlx::query("SET jit = off").execute(&mut conn).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let table = self.rows.clone();
        let parts = parts.to_vec();
        tokio::spawn(async move {
            for codes in parts {
                let rows = read_part(&mut conn, &table, &codes).await;
                let failed = rows.is_err();
                if sender.send(rows).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(RowFeed {
            receiver: Some(receiver),
        })
    }

    /// The rows of the next part `codes` of a [`RowFeed`], in line order.
    pub async fn next_part(
        &self,
        feed: &mut RowFeed,
        tx: &mut Tx,
        codes: &[String],
    ) -> Result<Vec<StagedRow>> {
        match feed.receiver.as_mut() {
            None => self.rows_of(tx, codes).await,
            Some(receiver) => receiver.recv().await.unwrap_or_else(|| {
                Err(StoreError::Config(
                    "the import stopped reading its staged rows".to_owned(),
                ))
            }),
        }
    }

    /// The stored accounts a plan of the employers `codes` starts from:
    /// theirs (`employer_ids` are those of them already stored), and any
    /// other that one of their rows names by username.
    pub async fn accounts_for(
        &self,
        tx: &mut Tx,
        codes: &[String],
        employer_ids: &[i64],
    ) -> Result<Vec<KnownAccount>> {
        let mut accounts = Vec::new();
        if !employer_ids.is_empty() {
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.employer_id IN ({})",
                in_list(self.backend, 0, employer_ids.len())
            );
            let mut q = sqlx::query_as::<_, KnownAccount>(AssertSqlSafe(sql));
            for id in employer_ids {
                q = q.bind(*id);
            }
            accounts = q.fetch_all(&mut **tx).await?;
        }
        if self.usernames && !codes.is_empty() {
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS} FROM {} r JOIN accounts a \
                 ON a.username_key = r.username_key WHERE r.code IN ({})",
                self.rows,
                in_list(self.backend, 0, codes.len())
            );
            accounts.extend(self.elsewhere(tx, sql, codes, employer_ids).await?);
        }
        Ok(accounts)
    }

    /// The stored accounts of employers other than `employer_ids` whose
    /// address is one of `email_keys`.
    pub async fn holders_elsewhere(
        &self,
        tx: &mut Tx,
        email_keys: &[String],
        employer_ids: &[i64],
    ) -> Result<Vec<KnownAccount>> {
        let mut holders = Vec::new();
        for batch in email_keys.chunks(5_000) {
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.email_key IN ({})",
                in_list(self.backend, 0, batch.len())
            );
            holders.extend(self.elsewhere(tx, sql, batch, employer_ids).await?);
        }
        Ok(holders)
    }

    /// The accounts `sql` selects (its parameters `keys`), but for those
    /// of the employers `employer_ids`.
    async fn elsewhere(
        &self,
        tx: &mut Tx,
        mut sql: String,
        keys: &[String],
        employer_ids: &[i64],
    ) -> Result<Vec<KnownAccount>> {
        if !employer_ids.is_empty() {
            sql.push_str(&format!(
                " AND a.employer_id NOT IN ({})",
                in_list(self.backend, keys.len(), employer_ids.len())
            ));
        }
        let mut q = sqlx::query_as::<_, KnownAccount>(AssertSqlSafe(sql));
        for key in keys {
            q = q.bind(key.clone());
        }
        for id in employer_ids {
            q = q.bind(*id);
        }
        Ok(q.fetch_all(&mut **tx).await?)
    }

    /// What lies outside part `part` and contradicts the people it adds
    /// (noted by [`ImportScratch::stage_new`]): the usernames generated for
    /// them that are taken, by a stored account or a row of the file; and
    /// the stored accounts of other employers than `employer_ids` holding
    /// their addresses. (A username generated for one employer never
    /// equals one generated for another: it is the employer's number, then
    /// a letter.)
    pub async fn outside(
        &self,
        tx: &mut Tx,
        part: usize,
        employer_ids: &[i64],
    ) -> Result<(Vec<String>, Vec<KnownAccount>)> {
        let part = i64::try_from(part).unwrap_or(i64::MAX);
        let new = &self.new;
        let mut sql = format!(
            "SELECT n.username_key FROM {new} n JOIN accounts a \
             ON a.username_key = n.username_key WHERE n.part = $1"
        );
        if self.usernames {
            sql.push_str(&format!(
                " UNION SELECT n.username_key FROM {new} n JOIN {} r \
                 ON r.username_key = n.username_key WHERE n.part = $1 AND r.line <> n.line",
                self.rows
            ));
        }
        let taken = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
            .bind(part)
            .fetch_all(&mut **tx)
            .await?;
        let mut sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM {new} n JOIN accounts a \
             ON a.email_key = n.email_key WHERE n.part = $1"
        );
        if !employer_ids.is_empty() {
            sql.push_str(&format!(
                " AND a.employer_id NOT IN ({})",
                in_list(self.backend, 1, employer_ids.len())
            ));
        }
        let mut q = sqlx::query_as::<_, KnownAccount>(AssertSqlSafe(sql)).bind(part);
        for id in employer_ids {
            q = q.bind(*id);
        }
        let holders = q.fetch_all(&mut **tx).await?;
        Ok((taken, holders))
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

    /// The rows whose address a row of another employer also gives, with
    /// the address, names and date of birth, by address then line.
    pub async fn shared_addresses(&self, tx: &mut Tx) -> Result<Vec<(String, AddressHolder)>> {
        let rows = &self.rows;
        let raw: Vec<(i64, String, String, String, String, String)> =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT r.line, r.code, r.email_key, r.first_name, r.last_name, r.date_of_birth \
                 FROM {rows} r JOIN (SELECT email_key FROM {rows} GROUP BY email_key \
                 HAVING MIN(code) <> MAX(code)) s ON s.email_key = r.email_key \
                 ORDER BY r.email_key, r.line"
            )))
            .fetch_all(&mut **tx)
            .await?;
        Ok(raw
            .into_iter()
            .map(
                |(line, code, email_key, first_name, last_name, date_of_birth)| {
                    (
                        code,
                        AddressHolder {
                            line: u64::try_from(line).unwrap_or_default(),
                            email_key,
                            first_name,
                            last_name,
                            date_of_birth,
                            part: 0,
                        },
                    )
                },
            )
            .collect())
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

/// `count` placeholders numbered from `from + 1`, comma-separated, for an
/// `IN` list that is not the statement's first.
fn in_list(backend: Backend, from: usize, count: usize) -> String {
    match backend {
        Backend::Sqlite => placeholders(backend, count, 1),
        Backend::Postgres => (from + 1..=from + count)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

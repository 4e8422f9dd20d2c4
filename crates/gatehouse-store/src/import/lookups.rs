//! Reading an import's scratch tables back: each part's rows and the
//! stored accounts its plan needs, and what the file shows across parts.

use gatehouse_domain::account::{EmployeeNumber, EmployerRef, PersonName};
use gatehouse_domain::import::{AddressHolder, KnownAccount, StaffRow};
use gatehouse_domain::{DateOfBirth, EmailAddress, Role, Username};
use sqlx::AssertSqlSafe;

use super::postgres::read_part;
use super::scratch::ImportScratch;
use crate::database::placeholders;
use crate::{Backend, Result, SqlStore, StoreError, Tx};

/// An account's columns as a plan knows it ([`KnownAccount`]).
const ACCOUNT_COLUMNS: &str = "a.id, a.employer_id, a.username, a.first_name, a.last_name, \
     a.date_of_birth, a.email, a.employee_number, a.role, a.disabled_at, a.left_at";

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

//! PostgreSQL's side of an import's scratch tables: `COPY` on a connection
//! of their own (sqlx's `Any` driver cannot speak it), the staged rows read
//! ahead on another, and the tables an import that died left behind.

use gatehouse_domain::Timestamp;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::lookups::{RawRow, StagedRow, rows_sql, staged_row};
use crate::{Backend, Result};

/// Scratch tables left by an import that died are dropped after this long.
const ABANDONED_AFTER_SECONDS: i64 = 86_400;

/// The COPY that stages the file, in a task of its own.
pub(super) struct Streaming {
    pub(super) sender: tokio::sync::mpsc::Sender<String>,
    pub(super) task: tokio::task::JoinHandle<(PgConnection, Result<()>)>,
}

/// PostgreSQL: the staged rows of the employers `codes`, in line order.
pub(super) async fn read_part(
    conn: &mut PgConnection,
    table: &str,
    codes: &[String],
) -> Result<Vec<StagedRow>> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let sql = rows_sql(Backend::Postgres, table, codes.len());
    let mut q = sqlx::query_as::<sqlx::Postgres, RawRow>(AssertSqlSafe(sql));
    for code in codes {
        q = q.bind(code.clone());
    }
    q.fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(staged_row)
        .collect()
}

/// Appends one line of COPY's text format: tab-separated, `\N` for NULL,
/// and backslash, tab, line feed and carriage return escaped.
pub(super) fn copy_line(out: &mut String, fields: &[Option<String>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match field {
            None => out.push_str("\\N"),
            Some(text) => {
                for c in text.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out.push('\n');
}

/// Runs `statement` (a `COPY … FROM STDIN`) with everything sent on
/// `receiver` until it closes, and gives the connection back.
pub(super) async fn copy_from_channel(
    mut conn: PgConnection,
    statement: String,
    mut receiver: tokio::sync::mpsc::Receiver<String>,
) -> (PgConnection, Result<()>) {
    let result = async {
        let mut copy = conn.copy_in_raw(&statement).await?;
        while let Some(data) = receiver.recv().await {
            if let Err(e) = copy.send(data.into_bytes()).await {
                copy.abort("the import stopped").await.ok();
                return Err(e.into());
            }
        }
        copy.finish().await?;
        Ok(())
    }
    .await;
    (conn, result)
}

/// Runs one `COPY … FROM STDIN` with `data`.
pub(super) async fn copy_in(conn: &mut PgConnection, statement: &str, data: String) -> Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(e) = copy.send(data.into_bytes()).await {
        copy.abort("the import stopped").await.ok();
        return Err(e.into());
    }
    copy.finish().await?;
    Ok(())
}

/// Drops the scratch tables of imports that started more than a day ago:
/// such an import died before it could drop them.
pub(super) async fn drop_abandoned(conn: &mut PgConnection, now: Timestamp) -> Result<()> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
         AND tablename LIKE 'gatehouse\\_import\\_%'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for table in tables {
        // gatehouse_import_{rows|new}_{seconds}_{process}_{n}
        let started = table.split('_').nth(3).and_then(|s| s.parse::<i64>().ok());
        if started.is_some_and(|s| now.unix() - s > ABANDONED_AFTER_SECONDS)
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

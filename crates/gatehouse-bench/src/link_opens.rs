//! What opening a reset link writes: the same link opened again and again
//! by a client that keeps no cookies (a mail scanner, a link checker, a
//! flood), and links that name nothing. Counted as rows added to the
//! database per 1,000 opens, and measured for each binary given, so an old
//! build and a new one can be compared in one run.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gatehouse_domain::SecretToken;

use crate::servers::{gatehouse_database, start_gatehouse};

/// Rows added by `opens` opens of one known link and of unknown ones.
pub struct Opened {
    /// Rows added by opening a link that exists.
    pub known: i64,
    /// Rows added by opening links that name nothing.
    pub unknown: i64,
    /// Opens of a known link per second, for a sense of what a flood costs.
    pub known_per_second: f64,
}

/// Every row of every table of the database at `url`, counted.
async fn rows(url: &str) -> Result<i64> {
    let pool = sqlx::AnyPool::connect(url).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&pool)
    .await?;
    let mut total = 0;
    for table in tables {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&pool)
                .await?;
        total += n;
    }
    pool.close().await;
    Ok(total)
}

/// Opens `path` on `origin` `opens` times, each time as a client with no
/// cookies; every answer must be a redirect.
async fn open(origin: &str, path: &str, opens: usize) -> Result<f64> {
    let started = std::time::Instant::now();
    for _ in 0..opens {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let answer = client.get(format!("{origin}{path}")).send().await?;
        if answer.status() != 303 {
            bail!("GET {path} answered {}", answer.status());
        }
    }
    Ok(opens as f64 / started.elapsed().as_secs_f64())
}

/// Opens one known link and then unknown links, `opens` times each, on a
/// fresh SQLite database served by `binary`.
pub async fn measure(binary: &Path, opens: usize) -> Result<Opened> {
    let dir = tempfile::tempdir()?;
    let url = gatehouse_database(binary, dir.path(), 10, None).await?;
    // A usable link for the first account, as a recovery email would carry.
    let token = SecretToken::generate()?;
    let pool = sqlx::AnyPool::connect(&url).await?;
    sqlx::query(
        "INSERT INTO reset_links (account_id, token_hash, created_at, expires_at) \
         VALUES ((SELECT MIN(id) FROM accounts), $1, 0, 4102444800)",
    )
    .bind(token.hash().as_bytes().as_slice())
    .execute(&pool)
    .await?;
    pool.close().await;
    // The cap on unknown links would answer 429 after 100: lifted, so
    // every unknown open is counted the same way.
    let server = start_gatehouse(
        binary,
        &url,
        dir.path(),
        false,
        &[("GATEHOUSE_LINK_GUESSES_PER_CLIENT_PER_HOUR", "10000000")],
    )
    .await?;
    let before = rows(&url).await?;
    let known_per_second = open(&server.origin, &format!("/reset/{}", token.encode()), opens)
        .await
        .context("opening a known link")?;
    let after_known = rows(&url).await?;
    let unknown = SecretToken::generate()?;
    open(
        &server.origin,
        &format!("/reset/{}", unknown.encode()),
        opens,
    )
    .await
    .context("opening an unknown link")?;
    let after_unknown = rows(&url).await?;
    Ok(Opened {
        known: after_known - before,
        unknown: after_unknown - after_known,
        known_per_second,
    })
}

//! Every statement the storage layer runs is answered through an index, on
//! both backends, so sign-in, recovery and the workers stay fast however
//! many staff, sessions, links and emails the database holds.
//!
//! The test runs the whole conformance scenario set with sqlx's statement
//! log captured, then asks each backend for the plan of every distinct
//! statement it saw. A plan that reads a whole large table fails the test,
//! unless the statement is on the short list below of deliberate scans.
//! One test function, so that no other test's statements mix in.

#[macro_use]
mod scenarios;
use scenarios::*;

use std::collections::BTreeSet;
use std::sync::Mutex;

use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor, Row};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Statements seen since the last `take`.
static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Records the SQL of every statement sqlx logs.
struct StatementLog;

#[derive(Default)]
struct StatementFields {
    summary: String,
    statement: String,
}

impl Visit for StatementFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for StatementLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        // sqlx logs a short summary, and the full text only when it differs.
        let sql = if fields.statement.trim().is_empty() {
            fields.summary
        } else {
            fields.statement
        };
        let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let verb = sql.split(' ').next().unwrap_or("").to_ascii_uppercase();
        if matches!(
            verb.as_str(),
            "SELECT" | "UPDATE" | "DELETE" | "INSERT" | "WITH"
        ) {
            SEEN.lock().expect("lock").insert(sql);
        }
    }
}

fn take() -> BTreeSet<String> {
    std::mem::take(&mut *SEEN.lock().expect("lock"))
}

/// Statements allowed to read a whole large table, and why.
const DELIBERATE_SCANS: &[(&str, &str)] = &[
    (
        "FROM _sqlx_migrations",
        "the migration table holds one row per schema version",
    ),
    (
        "FROM audit_events ORDER BY id DESC LIMIT",
        "the newest events, unfiltered: reads as many rows as the limit, then stops",
    ),
    (
        "DELETE FROM sign_in_attempts WHERE updated_at <",
        "the hourly purge of stale counters, off the request path",
    ),
];

fn deliberate(sql: &str) -> bool {
    DELIBERATE_SCANS.iter().any(|(s, _)| sql.contains(s))
}

/// Tables small by nature, where a scan is fine: one row per employer, per
/// registered application, per signing key (a handful, each withdrawn
/// within the hour after a rotation).
fn small_table(name: &str) -> bool {
    matches!(
        name,
        "employers" | "e" | "sqlite_master" | "oidc_clients" | "oidc_signing_keys"
    )
}

/// The full scans of large tables in SQLite's plan for `sql`.
async fn sqlite_scans(conn: &mut AnyConnection, sql: &str) -> Vec<String> {
    let rows = conn
        .fetch_all(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN QUERY PLAN {sql}: {e}"));
    // An INSERT … VALUES reads no rows. SQLite's plan for one still lists
    // scans of the tables whose foreign keys point at the new row: they run
    // only to settle deferred constraint violations, which this schema never
    // has (its foreign keys are immediate).
    if sql.starts_with("INSERT") && sql.contains(" VALUES ") && !sql.contains("SELECT") {
        return Vec::new();
    }
    rows.iter()
        .map(|r| r.try_get::<String, _>(3).expect("detail"))
        .filter(|detail| {
            // "SCAN t" or "SCAN t USING COVERING INDEX i": every row of t.
            let mut words = detail.split(' ');
            words.next() == Some("SCAN")
                && words
                    .next()
                    .is_some_and(|t| !small_table(t) && t != "CONSTANT")
        })
        .collect()
}

/// The sequential scans of large tables in PostgreSQL's generic plan for `sql`.
async fn postgres_scans(conn: &mut AnyConnection, sql: &str) -> Vec<String> {
    let params = sql
        .split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0);
    // The log has no parameter types: let PostgreSQL infer each, and where
    // it cannot (`$3 IS NULL OR …`), declare that one text and try again.
    let mut types = vec!["unknown"; params];
    let mut last_declared = None;
    loop {
        conn.execute("DEALLOCATE ALL").await.expect("deallocate");
        let declared = if params == 0 {
            String::new()
        } else {
            format!("({})", types.join(", "))
        };
        match conn
            .execute(AssertSqlSafe(format!(
                "PREPARE statement_under_test{declared} AS {sql}"
            )))
            .await
        {
            Ok(_) => break,
            Err(e) => {
                let text = e.to_string();
                let unknown = text
                    .split("could not determine data type of parameter $")
                    .nth(1)
                    .and_then(|rest| {
                        rest.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                            .parse::<usize>()
                            .ok()
                    });
                match (unknown, last_declared) {
                    (Some(n), _) if n >= 1 && types[n - 1] == "unknown" => {
                        types[n - 1] = "text";
                        last_declared = Some(n - 1);
                    }
                    // Text was the wrong guess (`$1 IS NULL OR account_id = $1`).
                    (None, Some(i))
                        if types[i] == "text" && text.contains("operator does not exist") =>
                    {
                        types[i] = "bigint";
                    }
                    _ => panic!("PREPARE {sql}: {e}"),
                }
            }
        }
    }
    let nulls = vec!["NULL"; params].join(", ");
    let execute = if params == 0 {
        "EXPLAIN EXECUTE statement_under_test".to_owned()
    } else {
        format!("EXPLAIN EXECUTE statement_under_test({nulls})")
    };
    let rows = conn
        .fetch_all(AssertSqlSafe(execute))
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"));
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0).expect("plan line"))
        .collect();
    let mut scans = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let table = |marker: &str| {
            line.split(marker)
                .nth(1)
                .and_then(|rest| {
                    rest.split(" on ")
                        .nth(usize::from(marker != "Seq Scan on "))
                })
                .and_then(|rest| rest.split(' ').next())
                .map(str::to_owned)
        };
        if let Some(t) = table("Seq Scan on ") {
            if !small_table(&t) {
                scans.push(line.clone());
            }
            continue;
        }
        // With scans forbidden the planner may walk a whole index instead:
        // an index scan with no condition on the index reads every row too.
        let index_scan = [
            "Index Scan using ",
            "Index Scan Backward using ",
            "Index Only Scan using ",
        ]
        .iter()
        .find_map(|m| table(m));
        if let Some(t) = index_scan {
            let has_condition = lines[i + 1..]
                .iter()
                .take_while(|l| !l.contains("->"))
                .any(|l| l.trim_start().starts_with("Index Cond:"));
            if !has_condition && !small_table(&t) {
                scans.push(line.clone());
            }
        }
    }
    scans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_statement_on_the_request_path_uses_an_index() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(StatementLog))
        .expect("the only subscriber");

    macro_rules! run_all {
        ($backend:ident: $($scenario:ident),* $(,)?) => {
            $( { let (store, _guard) = $backend().await; $scenario(store).await; } )*
        };
    }

    let mut failures = Vec::new();

    take();
    with_scenarios! { run_all!(sqlite:) }
    let statements = take();
    assert!(
        statements
            .iter()
            .any(|s| s.contains("FROM sign_in_attempts")),
        "sqlx's statement log was not captured: {statements:?}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/plans.db", dir.path().display());
    let store = gatehouse_store::SqlStore::open(&url, gatehouse_store::PoolSettings::default())
        .await
        .expect("open");
    store.close().await;
    let mut conn = AnyConnection::connect(&url).await.expect("connect");
    for sql in statements.iter().filter(|s| !deliberate(s)) {
        for scan in sqlite_scans(&mut conn, sql).await {
            failures.push(format!("SQLite: {scan}\n    in {sql}"));
        }
    }
    let sqlite_count = statements.len();

    take();
    with_scenarios! { run_all!(postgres:) }
    let statements = take();
    let db = gatehouse_testkit::TestDatabase::create()
        .await
        .expect("PostgreSQL");
    let store =
        gatehouse_store::SqlStore::connect(&db.url, gatehouse_store::PoolSettings::default())
            .await
            .expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;
    let mut conn = AnyConnection::connect(&db.url).await.expect("connect");
    // Costs alone would pick a scan of a small test table; forbidding scans
    // makes the planner use an index wherever one can answer the statement.
    conn.execute("SET enable_seqscan = off").await.expect("set");
    conn.execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("set");
    for sql in statements.iter().filter(|s| !deliberate(s)) {
        for scan in postgres_scans(&mut conn, sql).await {
            failures.push(format!("PostgreSQL: {}\n    in {sql}", scan.trim()));
        }
    }
    conn.close().await.expect("close");
    drop(db);

    assert!(
        failures.is_empty(),
        "{} of {sqlite_count} SQLite and {} PostgreSQL statements read a whole table:\n{}",
        failures.len(),
        statements.len(),
        failures.join("\n")
    );
}

//! A rolling deploy runs nodes of the previous release beside the new ones
//! on the migrated database: the statements the previous release sends,
//! copied here as it sends them, must still work on both backends.

use gatehouse_store::{PoolSettings, SqlStore};
use sqlx::{AnyPool, AssertSqlSafe, Row};

/// The previous release's record of a right password (migration 9's view).
const SIGN_IN_SUCCESS: &str = "INSERT INTO sign_in_successes (counter_key, claimed_version, consecutive, total, \
     locked_until, claims, at, account_id, previous_session, id_hash, session_account_id, \
     csrf_token, created_at, last_seen_at, reset_link_id, reset_until, flash, \
     second_factor_at, audit_at, event, actor, audit_account_id, username, client_ip, \
     detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)";

/// Its other statements that name the columns this release stopped using.
const OTHERS: [&str; 3] = [
    "INSERT INTO sessions (id_hash, account_id, csrf_token, created_at, last_seen_at, \
     reset_link_id, reset_until, flash, second_factor_at) \
     VALUES ($1, NULL, '', 0, 0, 1, 99, NULL, NULL)",
    "UPDATE sessions SET reset_link_id = 2, reset_until = 100 WHERE id_hash = $1",
    "INSERT INTO reset_links (account_id, token_hash, recovery_request_id, created_at, \
     expires_at) VALUES ((SELECT MIN(id) FROM accounts), $1, NULL, 0, 100)",
];

async fn previous_release_statements_work(url: &str) {
    let store = SqlStore::connect(url, PoolSettings::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(url).await.expect("connect");
    for sql in [
        "INSERT INTO employers (id, code, name) VALUES (1, '999', 'Demo Trust')",
        "INSERT INTO accounts (id, employer_id, username, username_key, first_name, last_name, \
         date_of_birth, email, email_key, created_at, updated_at) VALUES (1, 1, '999JSMITH01', \
         '999JSMITH01', 'Jane', 'Smith', '1985-03-14', 'jane.smith@nhs.net', \
         'jane.smith@nhs.net', 0, 0)",
        "INSERT INTO sign_in_attempts (username_key, consecutive, total, locked_until, claims, \
         second_factor_failures, version, updated_at) VALUES ('999JSMITH01', 1, 1, NULL, 1, 1, 7, 0)",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    sqlx::query(AssertSqlSafe(SIGN_IN_SUCCESS))
        .bind("999JSMITH01")
        .bind(7_i64)
        .bind(0_i64)
        .bind(0_i64)
        .bind(None::<i64>)
        .bind(1_i64)
        .bind(60_i64)
        .bind(1_i64)
        .bind(None::<Vec<u8>>)
        .bind(vec![1u8; 32])
        .bind(1_i64)
        .bind("")
        .bind(60_i64)
        .bind(60_i64)
        .bind(None::<i64>)
        .bind(None::<i64>)
        .bind(None::<String>)
        .bind(None::<i64>)
        .bind(60_i64)
        .bind("sign_in.succeeded")
        .bind(None::<String>)
        .bind(1_i64)
        .bind("999JSMITH01")
        .bind("192.0.2.1")
        .bind(None::<String>)
        .execute(&pool)
        .await
        .expect("the previous release's sign-in is recorded");
    let row = sqlx::query(
        "SELECT consecutive, second_factor_failures, version FROM sign_in_attempts \
         WHERE username_key = '999JSMITH01'",
    )
    .fetch_one(&pool)
    .await
    .expect("read");
    let counter: (i64, i64, i64) = (
        row.try_get("consecutive").expect("consecutive"),
        row.try_get("second_factor_failures").expect("codes"),
        row.try_get("version").expect("version"),
    );
    assert_eq!(
        counter,
        (0, 0, 8),
        "written, with the code count it cannot know set to 0"
    );
    for (i, sql) in OTHERS.iter().enumerate() {
        sqlx::query(AssertSqlSafe(*sql))
            .bind(vec![u8::try_from(i + 2).expect("small"); 32])
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    pool.close().await;
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    previous_release_statements_work(&format!("sqlite://{}/g.db", dir.path().display())).await;
}

#[tokio::test]
async fn on_postgres() {
    let db = gatehouse_testkit::TestDatabase::create()
        .await
        .expect("PostgreSQL must be running: see GATEHOUSE_TEST_POSTGRES_URL");
    previous_release_statements_work(&db.url).await;
}

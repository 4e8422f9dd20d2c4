//! A fresh PostgreSQL database for each test, so tests run in parallel and
//! leave nothing behind.
//!
//! The server is `GATEHOUSE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust authentication, as
//! `.ci/run` sets up); a test fails if it is not reachable.

use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

/// The server tests use.
pub fn server_url() -> String {
    std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for as long as this value.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: String,
    server: String,
}

impl TestDatabase {
    /// Creates an empty database with a random name.
    pub async fn create() -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let server = server_url();
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)
            .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
        let name = format!(
            "gatehouse_test_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut admin = AnyConnection::connect(&server).await?;
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        admin.close().await?;
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => format!("{server}/{name}"),
        };
        Ok(Self { url, name, server })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs outside async; a short-lived runtime on its own thread
        // removes the database (closing anything still connected to it).
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = AnyConnection::connect(&server).await {
                    let _ = admin
                        .execute(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

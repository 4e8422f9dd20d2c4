//! The database: its pools, its schema and migrations, and the connections
//! the aggregate modules' queries run on.
//!
//! Every query function in this crate takes a connection
//! (`&mut AnyConnection`), so the same function serves a caller with a
//! pooled connection and one inside a transaction. What must happen
//! together takes a [`Tx`].

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor};

use crate::{Backend, Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A write transaction: dropped without [`sqlx::Transaction::commit`], it
/// rolls back.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A connection from one of the pools.
pub type Pooled = sqlx::pool::PoolConnection<sqlx::Any>;

/// How the pool is sized and how long to wait for the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_connections: u32,
    /// How long to wait for a connection (and, on SQLite, for the write lock).
    pub timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Where the database's schema stands against the migrations this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration this build knows is applied, and no other.
    Current(i64),
    /// No migration has been applied.
    Empty,
    /// Older than this build: `gatehouse migrate` brings it up to date.
    Behind {
        /// The newest version applied.
        database: i64,
        /// The newest version this build knows.
        build: i64,
    },
    /// Newer than this build: a newer `gatehouse` migrated it.
    Ahead {
        /// The newest version applied.
        database: i64,
        /// The newest version this build knows.
        build: i64,
    },
    /// A migration failed part-way and must be repaired by hand.
    Dirty(i64),
}

/// How one of the pools' connections are used at a moment, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Which pool: `reads` and `writes` on SQLite, `all` on PostgreSQL
    /// (where reads and writes share one pool).
    pub pool: &'static str,
    /// Connections open.
    pub open: u32,
    /// Of those, connections idle in the pool.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// The database, as every process opens it: a pool for reads, and one for
/// writes.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// Reads (and on PostgreSQL everything).
    pool: AnyPool,
    /// Writes. On SQLite a pool of one connection: SQLite has one write lock
    /// per file, and writers that meet it sleep in its busy handler (1 ms,
    /// 2 ms, 5 ms, … up to 100 ms at a time) while the lock may already be
    /// free; queueing for one connection instead wakes the next writer at
    /// once. Under sign-in load that sleeping left the hashing cores idle
    /// (BENCHMARKS.md). On PostgreSQL the same pool as reads.
    writer: AnyPool,
    backend: Backend,
}

/// Which engine a URL names.
pub fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

impl SqlStore {
    /// Opens the database a URL names (`sqlite://PATH` or `postgres://…`) for
    /// serving. SQLite, the single-node default, is created and migrated on
    /// first start; PostgreSQL must already be at this build's schema
    /// (`gatehouse migrate` runs once per deploy), or opening fails saying so.
    pub async fn open(url: &str, settings: PoolSettings) -> Result<Self> {
        let store = Self::connect(url, settings).await?;
        match store.backend {
            Backend::Sqlite => {
                if let SchemaState::Ahead { database, build } = store.schema().await? {
                    return Err(ahead(database, build));
                }
                store.migrate().await?;
            }
            Backend::Postgres => match store.schema().await? {
                SchemaState::Current(_) => {}
                SchemaState::Empty => {
                    return Err(StoreError::Schema(
                        "the database has no Gatehouse schema yet: run `gatehouse migrate` first"
                            .to_owned(),
                    ));
                }
                SchemaState::Behind { database, build } => {
                    return Err(StoreError::Schema(format!(
                        "the database schema is at version {database} and this build needs {build}: run `gatehouse migrate` first"
                    )));
                }
                SchemaState::Ahead { database, build } => return Err(ahead(database, build)),
                SchemaState::Dirty(v) => return Err(dirty(v)),
            },
        }
        Ok(store)
    }

    /// Connects without looking at the schema.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url).ok_or_else(|| {
            StoreError::Config("expected sqlite://PATH or postgres://…".to_owned())
        })?;
        let (pool, writer) = match backend {
            Backend::Sqlite => connect_sqlite(url, settings).await?,
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.timeout)
                    .connect(url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            pool,
            writer,
            backend,
        })
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// The schema versions a backend's migrations define, oldest first.
    pub fn known_versions(backend: Backend) -> Vec<i64> {
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.iter().map(|m| m.version).collect()
    }

    /// Applies pending migrations (refusing a database newer than this build).
    pub async fn migrate(&self) -> Result<()> {
        match self.schema().await? {
            SchemaState::Ahead { database, build } => return Err(ahead(database, build)),
            SchemaState::Dirty(v) => return Err(dirty(v)),
            _ => {}
        }
        self.migrator().run(&self.writer).await?;
        Ok(())
    }

    /// Where the schema stands.
    pub async fn schema(&self) -> Result<SchemaState> {
        let build = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let exists: i64 = match self.backend {
            Backend::Sqlite => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
            }
            Backend::Postgres => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
            }
        };
        if exists == 0 {
            return Ok(SchemaState::Empty);
        }
        // `success` is a boolean, which the Any driver cannot read from SQLite.
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT version, CASE WHEN success THEN 1 ELSE 0 END FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut newest = 0;
        for (version, success) in &rows {
            if *success == 0 {
                return Ok(SchemaState::Dirty(*version));
            }
            newest = newest.max(*version);
        }
        Ok(if rows.is_empty() {
            SchemaState::Empty
        } else if newest > build {
            SchemaState::Ahead {
                database: newest,
                build,
            }
        } else if newest < build {
            SchemaState::Behind {
                database: newest,
                build,
            }
        } else {
            SchemaState::Current(newest)
        })
    }

    /// Writes a consistent copy of a SQLite database to the new file
    /// `path` while the service goes on using it (`VACUUM INTO`: one read
    /// transaction, so writers are not held up). On PostgreSQL, `pg_dump`
    /// and continuous archiving do this better, so it is refused.
    pub async fn back_up_into(&self, path: &str) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                // A reader of its own, taken out of the pool: readers are
                // query-only, and `VACUUM INTO` writes (the new file only).
                // The writer stays free for sign-ins meanwhile.
                let mut conn = self.pool.acquire().await?.detach();
                conn.execute("PRAGMA query_only = OFF").await?;
                let done = sqlx::query("VACUUM INTO $1")
                    .bind(path)
                    .execute(&mut conn)
                    .await;
                conn.close().await?;
                done?;
                Ok(())
            }
            Backend::Postgres => Err(StoreError::Config(
                "on PostgreSQL, back up with pg_dump or continuous archiving (docs/deploy.md)"
                    .to_owned(),
            )),
        }
    }

    /// Whether the SQLite database is whole (`PRAGMA integrity_check`):
    /// `None` if it is, else what SQLite found first.
    pub async fn integrity_problem(&self) -> Result<Option<String>> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let found: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        Ok((found != "ok").then_some(found))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for reads. On SQLite it refuses writes.
    pub async fn read(&self) -> Result<Pooled> {
        Ok(self.pool.acquire().await?)
    }

    /// A connection for a statement that writes on its own (see
    /// `writer` above for why SQLite has one).
    pub async fn write(&self) -> Result<Pooled> {
        Ok(self.writer.acquire().await?)
    }

    /// PostgreSQL: a connection of its own for `COPY`, which sqlx's `Any`
    /// driver cannot speak (an import stages its file with it).
    pub(crate) async fn copy_connection(&self) -> Result<sqlx::postgres::PgConnection> {
        use sqlx::{ConnectOptions, Connection};
        let url = self.pool.connect_options().database_url.clone();
        let options = sqlx::postgres::PgConnectOptions::from_url(&url)?;
        Ok(sqlx::postgres::PgConnection::connect_with(&options).await?)
    }

    /// A write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so that one that reads then writes never has to
    /// give up half-way to another writer.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    /// How the pools' connections are used now (no database round trip).
    pub fn pool_use(&self) -> Vec<PoolUse> {
        let of = |pool: &'static str, p: &AnyPool| PoolUse {
            pool,
            open: p.size(),
            idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            max: p.options().get_max_connections(),
        };
        match self.backend {
            Backend::Sqlite => vec![of("reads", &self.pool), of("writes", &self.writer)],
            Backend::Postgres => vec![of("all", &self.pool)],
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The database server's clock, in milliseconds since the Unix epoch,
    /// where several nodes share the database (PostgreSQL); `None` on
    /// SQLite, whose one machine has one clock.
    pub async fn database_time_ms(&self) -> Result<Option<i64>> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            // clock_timestamp(), not now(): now() is the start of the
            // transaction, which a pooled connection may have begun earlier.
            Backend::Postgres => Ok(Some(
                sqlx::query_scalar(
                    "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)",
                )
                .fetch_one(&self.pool)
                .await?,
            )),
        }
    }
}

fn ahead(database: i64, build: i64) -> StoreError {
    StoreError::Schema(format!(
        "the database schema is at version {database}, newer than this build knows ({build}): run a newer gatehouse"
    ))
}

fn dirty(version: i64) -> StoreError {
    StoreError::Schema(format!(
        "migration {version} failed part-way; repair the database by hand before starting"
    ))
}

/// Row ids as the inside of an SQL `IN (…)`: integers this service read
/// from its own tables, written into the statement rather than bound, so
/// that one statement takes a batch of any size on both backends. Such a
/// statement's text is new each time, so it is run with
/// `persistent(false)`: not kept prepared on the connection.
pub(crate) fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// `rows` groups of `columns` parameters for a multi-row statement:
/// `(?,?),(?,?)` on SQLite, `($1,$2),($3,$4)` on PostgreSQL. A single column
/// gives a plain list (`?,?` or `$1,$2`). SQLite gets anonymous parameters
/// because sqlx resolves each `$N` by name, which SQLite answers with a
/// linear scan: quadratic over a batch (88% of an import's time, by perf).
pub(crate) fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        if columns > 1 {
            out.push('(');
        }
        for c in 0..columns {
            if c > 0 {
                out.push(',');
            }
            n += 1;
            match backend {
                Backend::Sqlite => out.push('?'),
                Backend::Postgres => {
                    out.push('$');
                    out.push_str(&n.to_string());
                }
            }
        }
        if columns > 1 {
            out.push(')');
        }
    }
    out
}

/// Opens a SQLite file (creating it and its folder) in WAL mode: a pool of
/// readers and a pool of one writer.
async fn connect_sqlite(url: &str, settings: PoolSettings) -> Result<(AnyPool, AnyPool)> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (file, query) = path.split_once('?').unwrap_or((path, ""));
    if file.is_empty() {
        return Err(StoreError::Config(
            "the sqlite URL has no file name".to_owned(),
        ));
    }
    if let Some(dir) = Path::new(file).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!("cannot create the folder {}: {e}", dir.display()))
        })?;
    }
    let url = if query.contains("mode=") {
        format!("sqlite://{path}")
    } else if query.is_empty() {
        format!("sqlite://{file}?mode=rwc")
    } else {
        format!("sqlite://{file}?{query}&mode=rwc")
    };
    // WAL is a property of the file: set it once, on one connection, before
    // the pool opens several (changing it needs an exclusive lock).
    let mut first = AnyConnection::connect(&url).await?;
    first.execute("PRAGMA journal_mode = WAL").await?;
    first.close().await?;
    let pool = |connections: u32, read_only: bool| {
        // The busy timeout still matters: other processes (a separate
        // `gatehouse worker`, an import) share the file's write lock.
        let busy = format!("PRAGMA busy_timeout = {}", settings.timeout.as_millis());
        AnyPoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .acquire_timeout(settings.timeout)
            // sqlx pings every connection it hands out; on SQLite that is a
            // round trip to the connection's thread for a file that cannot
            // go away, about a fifth of a sign-in's hand-offs (perf).
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let busy = busy.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(busy)).await?;
                    // In WAL mode NORMAL loses no committed data when the process
                    // crashes, only possibly the latest commits on power loss.
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    if read_only {
                        // A write sent to the readers fails at once instead of
                        // competing for the lock, so none can slip past the writer.
                        conn.execute("PRAGMA query_only = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
    };
    let readers = pool(settings.max_connections, true).await?;
    let writer = pool(1, false).await?;
    Ok((readers, writer))
}

/// The engine a connection talks to.
pub(crate) fn backend_of_connection(conn: &AnyConnection) -> Backend {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

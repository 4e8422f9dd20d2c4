//! The SQLite and PostgreSQL schemas must match: the same migration
//! versions, tables, columns (type, nullability, default), primary keys,
//! unique constraints, indexes, foreign keys and checked columns. A change
//! made to one migration folder and not the other fails here.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{Backend, PoolSettings, SqlStore};
use sqlx::{AnyPool, Row};

/// Everything compared, per table.
#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    /// name → (type class, not null, default)
    columns: BTreeMap<String, (String, bool, Option<String>)>,
    primary_key: Vec<String>,
    unique: BTreeSet<Vec<String>>,
    /// name → (columns, unique), for indexes created by name
    indexes: BTreeMap<String, (Vec<String>, bool)>,
    /// (column, referenced table, referenced column)
    foreign_keys: BTreeSet<(String, String, String)>,
    checked: BTreeSet<String>,
}

fn type_class(t: &str) -> String {
    match t.to_ascii_lowercase().as_str() {
        "integer" | "bigint" => "integer",
        "text" => "text",
        "blob" | "bytea" => "bytes",
        other => return format!("unknown {other}"),
    }
    .to_owned()
}

fn normalise_default(d: Option<String>) -> Option<String> {
    d.map(|d| {
        d.replace("::text", "")
            .trim_matches(|c| c == '(' || c == ')')
            .to_owned()
    })
}

async fn text(pool: &AnyPool, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .ok()
                        .flatten()
                        .or_else(|| {
                            r.try_get::<Option<i64>, _>(i)
                                .ok()
                                .flatten()
                                .map(|n| n.to_string())
                        })
                })
                .collect()
        })
        .collect()
}

fn s(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// The column definitions of a `CREATE TABLE` statement, split at the
/// commas outside parentheses (SQLite appends an added column to the last
/// line of the stored statement).
fn column_definitions(create: &str) -> Vec<String> {
    let create: String = create
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let body = match (create.find('('), create.rfind(')')) {
        (Some(start), Some(end)) if start < end => &create[start + 1..end],
        _ => return Vec::new(),
    };
    let mut parts = vec![String::new()];
    let mut depth = 0;
    for c in body.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

async fn sqlite_schema(pool: &AnyPool) -> BTreeMap<String, Table> {
    let mut out = BTreeMap::new();
    let tables = text(
        pool,
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .await;
    for t in tables {
        let name = s(&t[0]);
        let mut table = Table::default();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for c in text(
            pool,
            &format!(
                "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{name}')"
            ),
        )
        .await
        {
            let is_pk: i64 = s(&c[4]).parse().unwrap_or(0);
            if is_pk > 0 {
                pk.push((is_pk, s(&c[0])));
            }
            let default = if is_pk > 0 {
                None
            } else {
                normalise_default(c[3].clone())
            };
            table.columns.insert(
                s(&c[0]),
                (type_class(&s(&c[1])), s(&c[2]) == "1" || is_pk > 0, default),
            );
        }
        pk.sort();
        table.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        for i in text(
            pool,
            &format!("SELECT name, \"unique\", origin FROM pragma_index_list('{name}')"),
        )
        .await
        {
            let index = s(&i[0]);
            let columns: Vec<String> = text(
                pool,
                &format!("SELECT name FROM pragma_index_info('{index}') ORDER BY seqno"),
            )
            .await
            .iter()
            .map(|r| s(&r[0]))
            .collect();
            let unique = s(&i[1]) == "1";
            match s(&i[2]).as_str() {
                "pk" => {}
                "u" => {
                    table.unique.insert(columns);
                }
                _ => {
                    if unique {
                        table.unique.insert(columns.clone());
                    }
                    table.indexes.insert(index, (columns, unique));
                }
            }
        }
        for f in text(
            pool,
            &format!("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list('{name}')"),
        )
        .await
        {
            table.foreign_keys.insert((s(&f[0]), s(&f[1]), s(&f[2])));
        }
        for definition in column_definitions(&s(&t[1])) {
            if definition.contains("CHECK (")
                && let Some(column) = definition.split_whitespace().next()
            {
                table.checked.insert(column.to_owned());
            }
        }
        out.insert(name, table);
    }
    out
}

async fn postgres_schema(pool: &AnyPool) -> BTreeMap<String, Table> {
    let mut out = BTreeMap::new();
    let tables = text(
        pool,
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .await;
    for t in tables {
        let name = s(&t[0]);
        let mut table = Table::default();
        for c in text(
            pool,
            &format!(
                "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text \
                 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{name}'"
            ),
        )
        .await
        {
            table.columns.insert(
                s(&c[0]),
                (type_class(&s(&c[1])), s(&c[2]) == "NO", normalise_default(c[3].clone())),
            );
        }
        // Indexes: pg_index with the column names in key order.
        let indexes = text(
            pool,
            &format!(
                "SELECT ic.relname::text, ix.indisunique::int::bigint, ix.indisprimary::int::bigint, \
                   (SELECT string_agg(a.attname::text, ',' ORDER BY k.n) \
                      FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n) \
                      JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum), \
                   EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ix.indexrelid)::int::bigint \
                 FROM pg_index ix JOIN pg_class ic ON ic.oid = ix.indexrelid \
                 JOIN pg_class tc ON tc.oid = ix.indrelid \
                 WHERE tc.relname = '{name}' AND tc.relnamespace = current_schema()::regnamespace"
            ),
        )
        .await;
        for i in indexes {
            let columns: Vec<String> = s(&i[3]).split(',').map(str::to_owned).collect();
            let unique = s(&i[1]) == "1";
            if s(&i[2]) == "1" {
                table.primary_key = columns;
            } else if s(&i[4]) == "1" {
                table.unique.insert(columns);
            } else {
                if unique {
                    table.unique.insert(columns.clone());
                }
                table.indexes.insert(s(&i[0]), (columns, unique));
            }
        }
        for f in text(
            pool,
            &format!(
                "SELECT a.attname::text, rt.relname::text, ra.attname::text FROM pg_constraint c \
                 JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class rt ON rt.oid = c.confrelid \
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                 JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1] \
                 WHERE c.contype = 'f' AND t.relname = '{name}' AND t.relnamespace = current_schema()::regnamespace"
            ),
        )
        .await
        {
            table.foreign_keys.insert((s(&f[0]), s(&f[1]), s(&f[2])));
        }
        for c in text(
            pool,
            &format!(
                "SELECT a.attname::text FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                 WHERE c.contype = 'c' AND t.relname = '{name}' AND t.relnamespace = current_schema()::regnamespace"
            ),
        )
        .await
        {
            table.checked.insert(s(&c[0]));
        }
        out.insert(name, table);
    }
    out
}

#[test]
fn both_migration_folders_hold_the_same_versions_and_names() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |sub: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join(sub))
            .expect("folder")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("sqlite"), names("postgres"));
    assert_eq!(
        SqlStore::known_versions(Backend::Sqlite),
        SqlStore::known_versions(Backend::Postgres)
    );
}

#[tokio::test]
async fn sqlite_and_postgres_schemas_match() {
    let dir = tempfile::tempdir().expect("dir");
    let lite = SqlStore::open(
        &format!("sqlite://{}/s.db", dir.path().display()),
        PoolSettings::default(),
    )
    .await
    .expect("sqlite");
    lite.close().await;
    let pg = gatehouse_testkit::TestDatabase::create()
        .await
        .expect("PostgreSQL must be running");
    let store = SqlStore::connect(&pg.url, PoolSettings::default())
        .await
        .expect("pg");
    store.migrate().await.expect("migrate");
    store.close().await;

    sqlx::any::install_default_drivers();
    let lite = AnyPool::connect(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .expect("open");
    let pool = AnyPool::connect(&pg.url).await.expect("open");
    let a = sqlite_schema(&lite).await;
    let b = postgres_schema(&pool).await;
    // Views (the sign-in's one-statement write) are compared by name and
    // columns: what the store inserts into them.
    let lite_views = text(
        &lite,
        "SELECT m.name || ': ' || group_concat(c.name, ', ') FROM sqlite_master m, \
         pragma_table_info(m.name) c WHERE m.type = 'view' GROUP BY m.name ORDER BY m.name",
    )
    .await;
    let pg_views = text(
        &pool,
        "SELECT c.table_name::text || ': ' || string_agg(c.column_name::text, ', ' ORDER BY c.ordinal_position) \
         FROM information_schema.columns c JOIN information_schema.views v \
         ON v.table_schema = c.table_schema AND v.table_name = c.table_name \
         WHERE c.table_schema = current_schema() GROUP BY c.table_name ORDER BY c.table_name",
    )
    .await;
    assert_eq!(lite_views, pg_views, "views");
    assert_eq!(lite_views.len(), 1, "the sign-in view: {lite_views:?}");
    pool.close().await;
    assert!(a.len() >= 9, "the SQLite schema was read: {:?}", a.keys());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "tables"
    );
    for (name, table) in &a {
        let other = &b[name];
        assert_eq!(table.columns, other.columns, "columns of {name}");
        assert_eq!(
            table.primary_key, other.primary_key,
            "primary key of {name}"
        );
        assert_eq!(table.unique, other.unique, "unique constraints of {name}");
        assert_eq!(table.indexes, other.indexes, "indexes of {name}");
        assert_eq!(
            table.foreign_keys, other.foreign_keys,
            "foreign keys of {name}"
        );
        assert_eq!(table.checked, other.checked, "checked columns of {name}");
    }
    assert!(
        a["accounts"]
            .unique
            .contains(&vec!["username_key".to_owned()])
    );
    assert!(a["outbox"].indexes.contains_key("outbox_due"));
    assert!(!a["accounts"].foreign_keys.is_empty());
}

//! A staff file is planned and written a few employers at a time (a
//! part), so that two million people never sit in memory at once. Parts
//! must not change the outcome: the same usernames as all at once, every
//! problem found whichever part it is in, nothing written if any part has
//! one, and (on PostgreSQL) no scratch table left behind.

use gatehouse_core::import::{ImportOptions, ImportRefusal, ImportReport};

use crate::helpers::*;

const HEADER: &str = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n";

/// Three employers, namesakes at two of them, and Mary at two employers
/// with one address (one person, so allowed).
const THREE_EMPLOYERS: &str = "100 Trust A,,John,Smith,1980-01-01,john.smith.1@nhs.net,A1\n\
200 Trust B,,John,Smith,1981-01-01,john.smith.2@nhs.net,B1\n\
100 Trust A,,John,Smith,1982-02-02,john.smith.3@nhs.net,A2\n\
300 Trust C,,Mary,Jones,1970-05-05,mary.jones@nhs.net,C1\n\
200 Trust B,,Mary,Jones,1970-05-05,Mary.Jones@nhs.net,B2\n";

/// Imports `rows` as the operator does, `part_rows` rows per part.
async fn import_in_parts(
    app: &TestApp,
    rows: &str,
    part_rows: usize,
    dry_run: bool,
) -> Result<ImportReport, ImportRefusal> {
    let options = ImportOptions {
        dry_run,
        part_rows: Some(part_rows),
        ..ImportOptions::default()
    };
    app.gatehouse
        .import_staff_with(format!("{HEADER}{rows}").as_bytes(), &options, OPERATOR)
        .await
        .expect("import runs")
}

/// Every account as "username employer email", in username order.
async fn accounts(app: &TestApp) -> Vec<String> {
    use sqlx::{Connection as _, Row as _};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url())
        .await
        .expect("connect");
    let rows = sqlx::query(
        "SELECT a.username, e.code, a.email, a.first_name, a.last_name, a.date_of_birth \
         FROM accounts a JOIN employers e ON e.id = a.employer_id ORDER BY a.username",
    )
    .fetch_all(&mut conn)
    .await
    .expect("accounts");
    rows.iter()
        .map(|r| {
            (0..6)
                .map(|i| r.try_get::<String, _>(i).expect("text"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn problems(outcome: Result<ImportReport, ImportRefusal>) -> Vec<String> {
    match outcome {
        Err(ImportRefusal::Problems(problems)) => problems.iter().map(|p| p.to_string()).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_employer_at_a_time_imports_what_one_part_does() {
    let whole = TestApp::spawn().await;
    let parts = TestApp::spawn().await;
    let report = import_in_parts(&whole, THREE_EMPLOYERS, 25_000, false)
        .await
        .expect("imported");
    assert_eq!(report.summary.created, 5);
    let report = import_in_parts(&parts, THREE_EMPLOYERS, 1, false)
        .await
        .expect("imported");
    assert_eq!(report.summary.created, 5);
    assert_eq!(report.summary.employers_created, 3);
    let expected = accounts(&whole).await;
    assert_eq!(accounts(&parts).await, expected);
    assert!(
        expected
            .iter()
            .any(|a| a.starts_with("100JSMITH02 100 john.smith.3@nhs.net")),
        "{expected:?}"
    );

    // Again, in parts: everyone is found, nothing changes.
    let again = import_in_parts(&parts, THREE_EMPLOYERS, 1, false)
        .await
        .expect("imported");
    assert_eq!(
        (
            again.summary.created,
            again.summary.updated,
            again.summary.unchanged
        ),
        (0, 0, 5)
    );
    assert_eq!(accounts(&parts).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_address_given_to_two_people_of_different_parts_is_refused_on_both_lines() {
    let app = TestApp::spawn().await;
    let file = "100 Trust A,,Pat,Doe,1980-01-01,shared@nhs.net,A1\n\
                200 Trust B,,Sam,Roe,1981-02-03,Shared@nhs.net,B1\n";
    let found = problems(import_in_parts(&app, file, 1, false).await);
    assert_eq!(
        found,
        [
            "line 2: email \"shared@nhs.net\" is also on line 3 for another person: one address must not reach two people's accounts",
            "line 3: email \"shared@nhs.net\" is also on line 2 for another person: one address must not reach two people's accounts",
        ],
    );
    assert!(accounts(&app).await.is_empty(), "nothing was imported");

    // A new person of one part at the address of an account another part
    // changes to it is refused too.
    import_in_parts(
        &app,
        "100 Trust A,,Pat,Doe,1980-01-01,pat@nhs.net,A1\n",
        1,
        false,
    )
    .await
    .expect("imported");
    let file = "100 Trust A,,Pat,Doe,1980-01-01,new@nhs.net,A1\n\
                200 Trust B,,Sam,Roe,1981-02-03,new@nhs.net,B1\n";
    let found = problems(import_in_parts(&app, file, 1, false).await);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        accounts(&app).await[0].contains(" pat@nhs.net "),
        "Pat keeps the address on file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_username_taken_elsewhere_is_never_generated() {
    let app = TestApp::spawn().await;
    // Stored at another employer under a username that employer 100's
    // first John Smith would be given.
    import_in_parts(
        &app,
        "500 Trust E,100JSMITH01,Jo,Smith,1970-01-01,jo@nhs.net,E1\n",
        1,
        false,
    )
    .await
    .expect("imported");
    // And named by a row of a later part than the John Smith it would clash with.
    let file = "100 Trust A,,John,Smith,1980-01-01,john.smith.1@nhs.net,A1\n\
                600 Trust F,100JSMITH02,Jon,Smyth,1971-01-01,jon@nhs.net,F1\n";
    let report = import_in_parts(&app, file, 1, false)
        .await
        .expect("imported");
    assert_eq!(report.generated, [(2, "100JSMITH03".to_owned())]);
    let all = accounts(&app).await;
    assert!(all[0].starts_with("100JSMITH01 500 jo@nhs.net"), "{all:?}");
    assert!(all[1].starts_with("100JSMITH02 600 jon@nhs.net"), "{all:?}");
    assert!(
        all[2].starts_with("100JSMITH03 100 john.smith.1@nhs.net"),
        "{all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_problem_in_any_part_leaves_every_part_unwritten() {
    let app = TestApp::spawn().await;
    import_in_parts(&app, THREE_EMPLOYERS, 1, false)
        .await
        .expect("imported");
    let before = snapshot(&app.database_url()).await;
    // Employer 100's first row changes an address (fine on its own); a
    // row of 200 names employer 100's account, and so does one of 300.
    let file = "100 Trust A,,John,Smith,1980-01-01,john.new@nhs.net,A1\n\
                200 Trust B,100JSMITH02,John,Smith,1982-02-02,john.smith.3@nhs.net,B9\n\
                300 Trust C,100JSMITH01,Mary,Jones,1970-05-05,mary.jones@nhs.net,C9\n";
    let found = problems(import_in_parts(&app, file, 1, false).await);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with(
            "line 3: username 100JSMITH02 belongs to a person at employer 100, not 200"
        ),
        "{found:?}"
    );
    assert!(
        found[1].starts_with(
            "line 4: username 100JSMITH01 belongs to a person at employer 100, not 300"
        ),
        "{found:?}"
    );
    let after = snapshot(&app.database_url()).await;
    for table in ["accounts", "employers", "reset_links", "sessions", "outbox"] {
        assert_eq!(after.get(table), before.get(table), "{table} is unchanged");
    }

    // A dry run in parts says what would change and writes nothing.
    let file = "100 Trust A,,John,Smith,1980-01-01,john.new@nhs.net,A1\n\
                400 Trust D,,Ann,Lee,1990-01-01,ann.lee@nhs.net,D1\n";
    let report = import_in_parts(&app, file, 1, true).await.expect("dry run");
    assert_eq!((report.summary.created, report.summary.updated), (1, 1));
    assert_eq!(report.summary.email_changes.len(), 1);
    let after = snapshot(&app.database_url()).await;
    for table in ["accounts", "employers", "reset_links", "sessions", "outbox"] {
        assert_eq!(after.get(table), before.get(table), "{table} is unchanged");
    }
}

/// PostgreSQL's scratch tables are real (unlogged) tables: each import
/// drops its own, whatever its outcome, and drops any an import that died
/// left more than a day ago.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_scratch_table_outlives_its_import() {
    let app = TestApp::spawn().await;
    if !on_postgres() {
        // SQLite's scratch tables are temporary tables of the import's
        // own transaction: none is ever written to the database file.
        import_in_parts(&app, THREE_EMPLOYERS, 1, false)
            .await
            .expect("imported");
        problems(
            import_in_parts(
                &app,
                "100 Trust A,,,Smith,1980-01-01,x@nhs.net,A9\n",
                1,
                false,
            )
            .await,
        );
        let scratch = "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'gatehouse_import_%'";
        assert_eq!(count(&app.database_url(), scratch).await, 0);
        assert_eq!(accounts(&app).await.len(), 5);
        return;
    }
    let url = app.database_url();
    let now = gatehouse_domain::Clock::now(&app.clock).unix();
    let recent = format!("gatehouse_import_rows_{}_1_1", now - 3_600);
    let abandoned = format!("gatehouse_import_rows_{}_1_1", now - 2 * 86_400);
    execute_sql(
        &url,
        &format!("CREATE UNLOGGED TABLE {recent} (line BIGINT); CREATE UNLOGGED TABLE {abandoned} (line BIGINT)"),
    )
    .await;
    let scratch = "SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'gatehouse_import_%'";
    import_in_parts(&app, THREE_EMPLOYERS, 1, false)
        .await
        .expect("imported");
    assert_eq!(count(&url, scratch).await, 1, "only the recent one is left");
    let left = format!("SELECT COUNT(*) FROM pg_tables WHERE tablename = '{recent}'");
    assert_eq!(
        count(&url, &left).await,
        1,
        "an import still running is left alone"
    );
    execute_sql(&url, &format!("DROP TABLE {recent}")).await;

    let bad = "100 Trust A,100JSMITH01,Someone,Else,1999-01-01,else@nhs.net,A9\n\
               200 Trust B,100JSMITH01,Other,Person,1998-01-01,other@nhs.net,B9\n";
    problems(import_in_parts(&app, bad, 1, false).await);
    import_in_parts(&app, THREE_EMPLOYERS, 1, true)
        .await
        .expect("dry run");
    assert_eq!(count(&url, scratch).await, 0);
}

/// The accounts table's indexes and constraints, as the database lists them.
async fn accounts_schema(app: &TestApp) -> Vec<String> {
    use sqlx::{Connection as _, Row as _};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url())
        .await
        .expect("connect");
    let sql = if on_postgres() {
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'accounts' \
         UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = 'accounts'::regclass ORDER BY 1"
    } else {
        "SELECT COALESCE(sql, name) FROM sqlite_master WHERE tbl_name = 'accounts' ORDER BY 1"
    };
    let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("schema");
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).expect("text"))
        .collect()
}

/// A load of 50,000 people or more into a table it more than doubles
/// builds the accounts table's indexes (and on PostgreSQL its unique and
/// foreign key constraints) after the rows instead of row by row: each
/// comes back as it was, and still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bulk_load_leaves_every_index_and_constraint_as_it_was() {
    let app = TestApp::spawn().await;
    let before = accounts_schema(&app).await;
    assert!(before.len() >= 6, "{before:?}");
    let mut file = String::with_capacity(50_000 * 64);
    for i in 0..50_000_u32 {
        let employer = 100 + i % 7;
        // A surname of its own (letters: a generated username keeps no digits).
        let surname: String = (0..4)
            .map(|d| char::from(b'a' + u8::try_from(i / 26_u32.pow(d) % 26).expect("letter")))
            .collect();
        file.push_str(&format!(
            "{employer} Trust,,Pat,{surname},1980-01-01,p{i}@nhs.net,N{i}\n"
        ));
    }
    let report = match import_in_parts(&app, &file, 20_000, false).await {
        Ok(report) => report,
        Err(ImportRefusal::Problems(p)) => panic!("{} problems, first {:?}", p.len(), p[0]),
        Err(other) => panic!("{other:?}"),
    };
    assert_eq!(report.summary.created, 50_000);
    assert_eq!(accounts_schema(&app).await, before);
    // The unique username still holds: a row naming an existing username
    // for a new person at another employer is refused, not written.
    let clash = "200 Trust X,100PAAAA01,Sam,Other,1990-01-01,sam@nhs.net,X1\n";
    let found = problems(import_in_parts(&app, clash, 1, false).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        count(&app.database_url(), "SELECT COUNT(*) FROM accounts").await,
        50_000
    );
}

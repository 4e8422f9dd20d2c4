//! Crashes and outages in the middle of work, on the real `gatehouse serve`
//! process: `kill -9` at each step of the recovery pipeline, inside the
//! reset transaction and between a password check and its record; the
//! database unreachable in the middle of requests; and what survives a
//! restart.
//!
//! The process is stopped at a chosen step from outside, never by code
//! paths added for tests: a table lock held on another connection makes the
//! service block at a known statement (confirmed in `pg_stat_activity`), or
//! the SMTP sink holds its answer. Table locks only single out one statement
//! on PostgreSQL (SQLite has one lock for the whole file, and each of the
//! service's transactions takes it up front), so those tests always run on
//! PostgreSQL, as multinode.rs does, whichever backend the suite uses.

use std::process::{Command, Stdio};
use std::time::Duration;

use gatehouse_testkit::{SinkMode, SmtpSink, TcpProxy, TestDatabase};
use sqlx::{AnyConnection, AssertSqlSafe, Connection as _, Row as _};

use crate::helpers::{
    AMIR, BIN, Browser, GOOD_PASSWORD, JANE, Person, ResponseExt as _, STAFF, Server, count,
    error_messages, free_port, healthy, on_postgres, reference_of, reset_links, sets_a_session,
};

/// Amir's password before a reset.
const OLD_PASSWORD: &str = GOOD_PASSWORD;
/// Amir's password after a reset.
const NEW_PASSWORD: &str = "orchard lantern pebble";

/// Which database a [`Service`] runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    /// The suite's backend (`GATEHOUSE_TEST_BACKEND`).
    Suite,
    /// PostgreSQL, whatever the suite runs on.
    Postgres,
}

/// One real `gatehouse serve` process on its own database, with STAFF
/// imported, restartable on the same port, database and mail server.
struct Service {
    dir: tempfile::TempDir,
    _db: Option<TestDatabase>,
    /// The database as the test reaches it (not through any proxy).
    db_url: String,
    /// The database as the service reaches it.
    service_db_url: String,
    smtp: SmtpSink,
    port: u16,
    child: Option<Server>,
    extra: Vec<(String, String)>,
}

// The process goes first, before its directory and database are removed.
impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Service {
    async fn start(on: On, extra: &[(&str, &str)]) -> Self {
        let mut service = Self::prepare(on, extra).await;
        service.spawn().await;
        service
    }

    /// Everything but the running process.
    async fn prepare(on: On, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let (db, db_url) = if on == On::Postgres || on_postgres() {
            let db = TestDatabase::create()
                .await
                .expect("PostgreSQL must be running: see GATEHOUSE_TEST_POSTGRES_URL");
            let url = db.url.clone();
            (Some(db), url)
        } else {
            (
                None,
                format!("sqlite://{}/gatehouse.db", dir.path().display()),
            )
        };
        let service = Self {
            dir,
            _db: db,
            service_db_url: db_url.clone(),
            db_url,
            smtp: SmtpSink::start().await.expect("smtp"),
            port: free_port(),
            child: None,
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        if service.postgres() {
            service.run(&["migrate"]);
        }
        std::fs::write(service.dir.path().join("staff.csv"), STAFF).expect("write");
        service.run(&["import", "staff.csv"]);
        service
    }

    fn postgres(&self) -> bool {
        self.db_url.starts_with("postgres")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GATEHOUSE_DATABASE_URL", &self.service_db_url)
            .env("GATEHOUSE_MAIL_URL", self.smtp.url())
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("GATEHOUSE_PUBLIC_URL", self.base())
            // Short, so that work a killed process had claimed is taken
            // over within seconds rather than the default minute.
            .env("GATEHOUSE_WORKER_LEASE", "4s")
            .env("GATEHOUSE_MAIL_TIMEOUT", "3s")
            .env("GATEHOUSE_HASH_CONCURRENCY", "2")
            .env("GATEHOUSE_LOG", "info")
            .current_dir(self.dir.path());
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let mut c = self.command();
        c.arg("serve").stdout(Stdio::null()).stderr(log);
        self.child = Some(Server(c.spawn().expect("starts")));
        assert!(
            healthy(&self.base()).await,
            "the server did not start: {}",
            self.log()
        );
    }

    /// `kill -9`: the process finishes nothing, not even a transaction.
    fn kill(&mut self) {
        self.child = None;
    }

    /// `kill -9`, then start again on the same database and port.
    async fn crash_and_restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// A clean stop (SIGTERM, as systemd sends), then start again.
    async fn stop_and_restart(&mut self) {
        if let Some(mut server) = self.child.take() {
            let child = &mut server.0;
            let pid = child.id().to_string();
            let killed = Command::new("kill").args(["-TERM", &pid]).status();
            assert!(killed.is_ok_and(|s| s.success()), "SIGTERM sent");
            let status = child.wait().expect("stops");
            assert!(status.success(), "a clean stop: {status:?}");
        }
        self.spawn().await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    async fn db(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.db_url).await.expect("connect")
    }

    async fn number(&self, sql: &str) -> i64 {
        count(&self.db_url, sql).await
    }

    /// A new browser on the service.
    fn browser(&self) -> Browser {
        Browser::new(&self.base(), &self.base())
    }

    /// A new browser that waits up to 20 s for an answer.
    fn patient_browser(&self) -> Browser {
        self.browser().with_timeout(Duration::from_secs(20))
    }

    async fn request_recovery(&self, person: &Person) {
        let r = self.browser().request_recovery(person.recovery()).await;
        assert_eq!(r.status(), 303, "the request is confirmed");
    }

    /// Opens `link` in a new browser and sets `password` through it.
    async fn reset_through(&self, link: &str, username: &str, password: &str) {
        self.browser()
            .set_password_through(link, username, password)
            .await;
    }

    /// Sets Amir's password to `NEW_PASSWORD` through the first link in
    /// `mail`: the link the email carried still works.
    async fn reset_through_first_link(&self, mail: &gatehouse_testkit::smtp::ReceivedMail) {
        let link = &reset_links(mail, &self.base())[0];
        self.reset_through(link, "999AKHAN01", NEW_PASSWORD).await;
    }

    /// Gives Amir (999AKHAN01) a password through the recovery email.
    async fn give_amir_a_password(&self) {
        let before = self.smtp.messages().len();
        self.request_recovery(&AMIR).await;
        let mail = self
            .smtp
            .wait_for(before + 1, Duration::from_secs(20))
            .await;
        let link = reset_links(&mail[before], &self.base())[0].clone();
        self.reset_through(&link, "999AKHAN01", OLD_PASSWORD).await;
    }

    /// Gives Amir a password, signs him in in a browser, then has a fresh
    /// recovery link sent: the browser and the link.
    async fn signed_in_with_a_fresh_link(&self) -> (Browser, String) {
        self.give_amir_a_password().await;
        let signed_in = self.browser();
        assert_eq!(
            signed_in.log_in("999AKHAN01", OLD_PASSWORD).await.status(),
            303
        );
        self.request_recovery(&AMIR).await;
        // The first recovery email, the password-set notice, and this one.
        let mail = self.smtp.wait_for(3, Duration::from_secs(20)).await;
        (signed_in, newest_link(&mail, &self.base()))
    }

    /// Waits until `n` messages have arrived, then for longer than a lease
    /// and a poll, so that any repeat would have arrived too.
    async fn settled_mail(&self, n: usize) -> Vec<gatehouse_testkit::smtp::ReceivedMail> {
        let mail = self.smtp.wait_for(n, Duration::from_secs(30)).await;
        assert!(mail.len() >= n, "only {} of {n} emails arrived", mail.len());
        tokio::time::sleep(Duration::from_secs(6)).await;
        self.smtp.messages()
    }
}

/// The first link in the newest email that has one.
fn newest_link(mail: &[gatehouse_testkit::smtp::ReceivedMail], base: &str) -> String {
    mail.iter()
        .rev()
        .find_map(|m| reset_links(m, base).into_iter().next())
        .expect("an email with a link")
}

fn to(mail: &[gatehouse_testkit::smtp::ReceivedMail], email: &str) -> usize {
    mail.iter()
        .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(email)))
        .count()
}

/// POSTs `form` (token included) to `url` as `browser` in a task of its
/// own, so that the test can act while the request is held; the task ends
/// with the answer, or the error if none came, and how long it took.
fn post_in_background(
    browser: &Browser,
    url: String,
    form: &[(&str, &str)],
) -> tokio::task::JoinHandle<(reqwest::Result<reqwest::Response>, Duration)> {
    let browser = browser.clone();
    let form: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = browser.http().post(url).form(&form).send().await;
        (r, started.elapsed())
    })
}

/// A PostgreSQL table lock held on a connection of the test's own, until released.
struct TableLock(AnyConnection);

impl TableLock {
    async fn take(service: &Service, table: &str, mode: &str) -> Self {
        let mut conn = service.db().await;
        sqlx::query("BEGIN")
            .execute(&mut conn)
            .await
            .expect("begin");
        sqlx::query(AssertSqlSafe(format!("LOCK TABLE {table} IN {mode} MODE")))
            .execute(&mut conn)
            .await
            .expect("lock");
        Self(conn)
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("unlock");
        let _ = self.0.close().await;
    }
}

/// Waits until a statement of the service containing `needle` waits for a
/// lock; returns that backend's process id.
async fn blocked_at(service: &Service, needle: &str) -> i64 {
    blocked_at_besides(service, needle, &[]).await
}

/// [`blocked_at`], for a backend other than those in `others`.
async fn blocked_at_besides(service: &Service, needle: &str, others: &[i64]) -> i64 {
    let mut conn = service.db().await;
    let mut seen = Vec::new();
    for _ in 0..400 {
        let rows = sqlx::query(
            "SELECT pid::bigint, query FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
             AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut conn)
        .await
        .expect("pg_stat_activity");
        seen = rows
            .iter()
            .map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)))
            .collect::<Vec<_>>();
        if let Some((pid, _)) = seen
            .iter()
            .find(|(pid, q)| q.contains(needle) && !others.contains(pid))
        {
            return *pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing waits at {needle:?}; waiting: {seen:?}");
}

/// The tables a backend's open transaction has written (holds row-exclusive locks on).
async fn written_by(service: &Service, pid: i64) -> Vec<String> {
    let mut conn = service.db().await;
    let rows = sqlx::query(
        "SELECT DISTINCT c.relname::text FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE l.pid = $1 AND l.mode = 'RowExclusiveLock' AND l.granted AND c.relkind = 'r' \
         ORDER BY 1",
    )
    .bind(pid)
    .fetch_all(&mut conn)
    .await
    .expect("pg_locks");
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

/// Waits until the PostgreSQL backend `pid` (a killed process's) is gone,
/// so its transaction has certainly ended.
async fn gone(service: &Service, pid: i64) {
    let mut conn = service.db().await;
    for _ in 0..400 {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&mut conn)
            .await
            .expect("pg_stat_activity");
        if n == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the killed process's database session did not end");
}

// ---------------------------------------------------------------------------
// kill -9 at each step of the recovery pipeline.
//
// The steps (crates/gatehouse-core/src/recovery.rs, gatehouse-mail's
// OutboxWorker, gatehouse-store's sql.rs):
// 1. the request is recorded (committed with its audit event) and waits;
// 2. a worker has claimed it (`lease_until` set, committed on its own) and
//    not yet matched it;
// 3. matching, in ONE transaction: read the accounts, void older links,
//    insert the new links, mark the request processed, write the outbox
//    row, audit, commit;
// 4. the outbox row is claimed (lease, attempts + 1) and the mail server has
//    the whole message but has not answered;
// 5. the mail server said 250 and the "sent" record is not yet written.
// ---------------------------------------------------------------------------

/// Steps 1 and 2 at once: the worker is stopped at its first read of the
/// matching transaction (the employers table it joins locked), so the first request
/// is claimed and the second, recorded behind it, waits unclaimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_with_one_request_claimed_and_another_waiting_each_gets_exactly_one_email() {
    let mut service = Service::start(On::Postgres, &[]).await;
    // Sessions (made by every form page) refer to accounts, so a lock on
    // accounts would stop the web pages too; the worker's read joins employers.
    let employers = TableLock::take(&service, "employers", "ACCESS EXCLUSIVE").await;
    service.request_recovery(&AMIR).await;
    let worker = blocked_at(&service, "FROM accounts a JOIN employers").await;
    service.request_recovery(&JANE).await;
    // Longer than the worker's poll: the second request is not taken while
    // the worker is held in the first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM recovery_requests WHERE status = 'pending' AND lease_until IS NOT NULL AND email_key = 'amir.khan@nhs.net'")
            .await,
        1,
        "step 2: the first request is claimed, not matched"
    );
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM recovery_requests WHERE status = 'pending' AND lease_until IS NULL AND email_key = 'jane.smith@nhs.net'")
            .await,
        1,
        "step 1: the second request is recorded, not claimed"
    );
    service.kill();
    employers.release().await;
    gone(&service, worker).await;
    assert!(service.smtp.messages().is_empty());

    service.spawn().await;
    // Jane's request is taken at once; Amir's when the dead worker's lease ends.
    let mail = service.settled_mail(2).await;
    assert_eq!(mail.len(), 2, "one email per request, none twice");
    assert_eq!(to(&mail, AMIR.email), 1);
    assert_eq!(to(&mail, JANE.email), 1);
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM reset_links WHERE voided_at IS NULL")
            .await,
        3,
        "Amir's link and Jane's two; no request matched twice"
    );
    assert_eq!(service.number("SELECT COUNT(*) FROM reset_links").await, 3);
    let amir = mail
        .iter()
        .find(|m| to(std::slice::from_ref(m), AMIR.email) == 1)
        .expect("Amir's email");
    service.reset_through_first_link(amir).await;
}

/// Step 3: the worker is let through its first read and stopped at the
/// transaction's first audit insert (the audit table locked against
/// writes), after it has written the links, the request's outcome and the
/// outbox row. Killed there, all of it rolls back; after the restart the
/// request is matched once and mailed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_inside_the_matching_transaction_writes_nothing_and_is_matched_once_after() {
    let mut service = Service::start(On::Postgres, &[]).await;
    // Sessions (made by every form page) refer to accounts, so a lock on
    // accounts would stop the web pages too; the worker's read joins employers.
    let employers = TableLock::take(&service, "employers", "ACCESS EXCLUSIVE").await;
    service.request_recovery(&AMIR).await;
    blocked_at(&service, "FROM accounts a JOIN employers").await;
    // EXCLUSIVE lets reads through and stops every insert.
    let audit = TableLock::take(&service, "audit_events", "EXCLUSIVE").await;
    employers.release().await;
    let worker = blocked_at(&service, "INSERT INTO audit_events").await;
    let written = written_by(&service, worker).await;
    for table in ["outbox", "recovery_requests", "reset_links"] {
        assert!(
            written.iter().any(|t| t == table),
            "the link, the outcome and the email, all in the open transaction: {written:?}"
        );
    }
    for table in ["reset_links", "outbox"] {
        assert_eq!(
            service
                .number(&format!("SELECT COUNT(*) FROM {table}"))
                .await,
            0,
            "nothing of it visible before the commit"
        );
    }
    service.kill();
    audit.release().await;
    gone(&service, worker).await;
    assert_eq!(
        service.number("SELECT COUNT(*) FROM reset_links").await,
        0,
        "rolled back"
    );
    assert_eq!(service.number("SELECT COUNT(*) FROM outbox").await, 0);
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM recovery_requests WHERE status = 'pending'")
            .await,
        1,
        "the request waits to be taken again"
    );

    service.spawn().await;
    let mail = service.settled_mail(1).await;
    assert_eq!(mail.len(), 1, "mailed once");
    assert_eq!(service.number("SELECT COUNT(*) FROM reset_links").await, 1);
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
            .await,
        1
    );
    service.reset_through_first_link(&mail[0]).await;
}

/// Step 4: the mail server has the whole message and holds its answer.
/// With no "250", the message was never accepted; after the restart the
/// email is sent once, when the dead worker's lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_while_the_mail_server_holds_its_answer_sends_the_email_once_after_restart() {
    let mut service = Service::start(On::Suite, &[]).await;
    service.smtp.set_mode(SinkMode::Hold);
    service.request_recovery(&AMIR).await;
    assert_eq!(
        service.smtp.wait_held(1, Duration::from_secs(10)).await,
        1,
        "the message reached the mail server"
    );
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND attempts = 1 AND lease_until IS NOT NULL")
            .await,
        1,
        "claimed and being sent"
    );
    service.kill();
    service.smtp.set_mode(SinkMode::Accept);
    assert!(service.smtp.messages().is_empty(), "never accepted");

    service.spawn().await;
    let mail = service.settled_mail(1).await;
    assert_eq!(mail.len(), 1, "sent once after the restart");
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND attempts = 2")
            .await,
        1
    );
    service.reset_through_first_link(&mail[0]).await;
}

/// Step 5: the mail server said 250 while the outbox was locked against
/// writes (PostgreSQL: a table lock; SQLite: the write lock), so the "sent"
/// record waits. Killed there, the email is sent again after the lease:
/// the one duplicate docs/security.md ("At-least-once email") and
/// docs/deploy.md document, with the same Message-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_after_the_mail_server_accepted_but_before_it_was_recorded_sends_one_repeat_with_the_same_message_id()
 {
    // SQLite's busy wait outlasts the test's hold on the write lock (and
    // the request bound must outlast that wait plus the hash wait).
    let mut service = Service::start(
        On::Suite,
        &[
            ("GATEHOUSE_DATABASE_TIMEOUT", "60s"),
            ("GATEHOUSE_REQUEST_TIMEOUT", "90s"),
        ],
    )
    .await;
    service.smtp.set_mode(SinkMode::Hold);
    service.request_recovery(&AMIR).await;
    assert_eq!(service.smtp.wait_held(1, Duration::from_secs(10)).await, 1);

    let mut sqlite_lock = None;
    let mut pg_lock = None;
    if service.postgres() {
        pg_lock = Some(TableLock::take(&service, "outbox", "EXCLUSIVE").await);
    } else {
        let mut holder = service.db().await;
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .expect("the write lock");
        sqlite_lock = Some(holder);
    }
    service.smtp.set_mode(SinkMode::Accept);
    assert_eq!(
        service
            .smtp
            .wait_for(1, Duration::from_secs(10))
            .await
            .len(),
        1,
        "the mail server accepted it"
    );
    let worker = if service.postgres() {
        Some(blocked_at(&service, "UPDATE outbox SET status = 'sent'").await)
    } else {
        // SQLite cannot show who waits; the record cannot be written while
        // the test holds the only write lock, and the busy wait is 60 s.
        tokio::time::sleep(Duration::from_millis(500)).await;
        None
    };
    service.kill();
    if let Some(lock) = pg_lock {
        lock.release().await;
    }
    if let Some(mut holder) = sqlite_lock {
        let status: String = sqlx::query_scalar("SELECT status FROM outbox")
            .fetch_one(&mut holder)
            .await
            .expect("status");
        assert_eq!(status, "queued", "the 250 was never recorded");
        sqlx::query("ROLLBACK")
            .execute(&mut holder)
            .await
            .expect("unlock");
    }
    if let Some(pid) = worker {
        gone(&service, pid).await;
    }
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM outbox WHERE status = 'queued'")
            .await,
        1
    );

    service.spawn().await;
    let mail = service.settled_mail(2).await;
    assert_eq!(mail.len(), 2, "sent again once, and only once");
    let ids: Vec<Option<String>> = mail.iter().map(|m| m.header("Message-ID")).collect();
    assert!(ids[0].is_some(), "a Message-ID");
    assert_eq!(ids[0], ids[1], "the repeat can be recognised as one");
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
            .await,
        1
    );
}

// ---------------------------------------------------------------------------
// H93: a crash during the reset POST is all or nothing.
// ---------------------------------------------------------------------------

/// The reset transaction (gatehouse-core reset.rs: consume the link, set the
/// password, void other links, end sessions, reset the counter, queue the
/// notice, audit, commit) is stopped at its last statement, the audit insert
/// (the audit table locked against writes), after every other write, and
/// the process is killed there. Nothing of it remains: the old password
/// works, the link is unused and still works, the session is intact, no
/// notice is sent. Then the same link does the whole reset.
///
/// Security case H93 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_killed_inside_the_reset_transaction_changes_nothing_and_the_link_still_works() {
    let mut service = Service::start(On::Postgres, &[]).await;
    let (signed_in, link) = service.signed_in_with_a_fresh_link().await;
    let resetting = service.browser();
    let opened = resetting.http().get(&link).send().await.expect("GET");
    assert_eq!(opened.headers()["location"], "/reset");
    let token = resetting.form_token("/reset").await;

    let audit = TableLock::take(&service, "audit_events", "EXCLUSIVE").await;
    let post = post_in_background(
        &resetting,
        service.url("/reset"),
        &[
            ("username", "999AKHAN01"),
            ("password", NEW_PASSWORD),
            ("confirm-password", NEW_PASSWORD),
            ("csrf_token", &token),
        ],
    );
    let request = blocked_at(&service, "INSERT INTO audit_events").await;
    let written = written_by(&service, request).await;
    for table in ["accounts", "reset_links", "sessions", "outbox"] {
        assert!(
            written.iter().any(|t| t == table),
            "{table} written in the open transaction: {written:?}"
        );
    }
    service.kill();
    audit.release().await;
    gone(&service, request).await;
    assert!(
        post.await.expect("task").0.is_err(),
        "the browser got no answer"
    );
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM reset_links WHERE used_at IS NULL AND voided_at IS NULL")
            .await,
        1,
        "the link is unused"
    );

    service.spawn().await;
    let account_page = service.url("/account");
    let account = signed_in
        .http()
        .get(&account_page)
        .send()
        .await
        .expect("GET");
    assert_eq!(account.status(), 200, "the session was not ended");
    assert!(account.body().await.contains("999AKHAN01"));
    assert_eq!(
        service
            .browser()
            .log_in("999AKHAN01", NEW_PASSWORD)
            .await
            .status(),
        200,
        "the new password was never set"
    );
    assert_eq!(
        service
            .browser()
            .log_in("999AKHAN01", OLD_PASSWORD)
            .await
            .status(),
        303,
        "the old password still works"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        service.smtp.messages().len(),
        3,
        "no password-changed notice"
    );

    // Everything, through the same link.
    service
        .reset_through(&link, "999AKHAN01", NEW_PASSWORD)
        .await;
    let ended = signed_in
        .http()
        .get(&account_page)
        .send()
        .await
        .expect("GET");
    assert_eq!(ended.headers()["location"], "/login", "sessions ended");
    assert_eq!(
        service
            .browser()
            .log_in("999AKHAN01", NEW_PASSWORD)
            .await
            .status(),
        303
    );
    let mail = service.smtp.wait_for(4, Duration::from_secs(20)).await;
    assert_eq!(mail.len(), 4, "one notice");
    assert!(
        mail[3]
            .header("Subject")
            .unwrap_or_default()
            .contains("password has been set")
    );
}

// ---------------------------------------------------------------------------
// H94: a crash between the password check and its record is never free.
// ---------------------------------------------------------------------------

/// Each wrong password is stopped after the check, at the record of the
/// failure (the audit insert, the audit table locked against writes), and
/// the process killed there. The attempt was claimed, and committed, before
/// the check: three such crashes lock the account, and the right password
/// is then refused without being checked.
///
/// Security case H94 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_sign_ins_killed_after_the_password_check_are_each_counted_and_lock_the_account() {
    let mut service = Service::start(On::Postgres, &[]).await;
    service.give_amir_a_password().await;
    for crash in 1..=3 {
        let browser = service.browser();
        let token = browser.form_token("/login").await;
        let audit = TableLock::take(&service, "audit_events", "EXCLUSIVE").await;
        let post = post_in_background(
            &browser,
            service.url("/login"),
            &[
                ("username", "999AKHAN01"),
                ("password", "not the password at all"),
                ("csrf_token", &token),
            ],
        );
        let request = blocked_at(&service, "INSERT INTO audit_events").await;
        assert_eq!(
            service
                .number("SELECT MAX(consecutive) FROM sign_in_attempts")
                .await,
            crash,
            "claimed and committed before the check"
        );
        service.kill();
        audit.release().await;
        gone(&service, request).await;
        assert!(post.await.expect("task").0.is_err(), "no answer");
        service.spawn().await;
    }
    let browser = service.browser();
    let r = browser.log_in("999AKHAN01", OLD_PASSWORD).await;
    assert_eq!(r.status(), 200, "the right password does not sign in");
    assert!(!sets_a_session(&r));
    let errors = error_messages(&r.body().await);
    assert!(
        errors
            .first()
            .is_some_and(|m| m.starts_with("Your account is locked until")),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------------------
// H99: what must survive a restart.
// ---------------------------------------------------------------------------

/// A lock, a failure count, an open link and a session, checked after a
/// clean restart (SIGTERM) and after `kill -9`.
///
/// Security case H99 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_a_failure_count_an_open_link_and_a_session_survive_a_restart_and_kill_9() {
    let mut service = Service::start(On::Suite, &[]).await;
    let (signed_in, link) = service.signed_in_with_a_fresh_link().await;
    for _ in 0..3 {
        service
            .browser()
            .log_in("999JSMITH01", "wrong guess one")
            .await;
    }
    for _ in 0..2 {
        service
            .browser()
            .log_in("432JSMITH01", "wrong guess two")
            .await;
    }

    for clean in [true, false] {
        if clean {
            service.stop_and_restart().await;
        } else {
            service.crash_and_restart().await;
        }
        let how = if clean {
            "after SIGTERM"
        } else {
            "after kill -9"
        };
        let account = signed_in
            .http()
            .get(service.url("/account"))
            .send()
            .await
            .expect("GET");
        assert_eq!(account.status(), 200, "the session, {how}");
        assert!(account.body().await.contains("999AKHAN01"));

        let r = service
            .browser()
            .log_in("999JSMITH01", "wrong guess one")
            .await;
        let errors = error_messages(&r.body().await);
        assert!(
            errors
                .first()
                .is_some_and(|m| m.starts_with("Your account is locked until")),
            "the lock, {how}: {errors:?}"
        );
        assert_eq!(
            service
                .number("SELECT COUNT(*) FROM sign_in_attempts WHERE consecutive = 2 AND locked_until IS NULL")
                .await,
            1,
            "the count of two, {how}"
        );
        let opened = service
            .browser()
            .http()
            .get(&link)
            .send()
            .await
            .expect("GET");
        assert_eq!(opened.headers()["location"], "/reset", "the link, {how}");
    }
    // The count of two is live: one more failure locks.
    let r = service
        .browser()
        .log_in("432JSMITH01", "wrong guess two")
        .await;
    let errors = error_messages(&r.body().await);
    assert!(
        errors
            .first()
            .is_some_and(|m| m.starts_with("Your account is locked until")),
        "{errors:?}"
    );
    service
        .reset_through(&link, "999AKHAN01", NEW_PASSWORD)
        .await;
}

// ---------------------------------------------------------------------------
// H86: the database unreachable in the middle of requests.
// ---------------------------------------------------------------------------

/// `host:port` of a PostgreSQL URL, and the same URL through `proxy_port`.
fn through_proxy(url: &str, proxy_port: u16) -> (String, String) {
    let after_at = url.find('@').map_or(0, |i| i + 1);
    let end = url[after_at..]
        .find('/')
        .map_or(url.len(), |i| after_at + i);
    let server = url[after_at..end].to_owned();
    let proxied = format!("{}127.0.0.1:{proxy_port}{}", &url[..after_at], &url[end..]);
    (server, proxied)
}

/// The 503 page, with its per-request reference taken out.
async fn unavailable_page(r: reqwest::Response, what: &str) -> String {
    assert_eq!(r.status(), 503, "{what}");
    assert_eq!(r.headers()["retry-after"], "30", "{what}");
    assert!(!sets_a_session(&r), "{what}: no session");
    let page = r.body().await;
    assert!(
        page.contains("Sorry, the service is unavailable"),
        "{what}: {page}"
    );
    assert!(page.contains("Nothing you sent has been saved"), "{what}");
    assert!(
        !page.to_lowercase().contains("postgres"),
        "no internals shown"
    );
    let reference = reference_of(&page);
    page.replace(&reference, "REF")
}

/// What any half-written request would have left behind.
async fn footprint(service: &Service) -> Vec<i64> {
    let mut counts = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM recovery_requests",
        "SELECT COUNT(*) FROM sign_in_attempts",
        "SELECT COUNT(*) FROM sessions",
        "SELECT COUNT(*) FROM sessions WHERE account_id IS NOT NULL",
        "SELECT COUNT(*) FROM reset_links WHERE used_at IS NULL AND voided_at IS NULL",
        "SELECT COUNT(*) FROM audit_events",
        "SELECT COUNT(*) FROM outbox",
    ] {
        counts.push(service.number(sql).await);
    }
    counts
}

/// PostgreSQL is reached through a proxy that the test cuts (the shared
/// server itself is never stopped): first every connection reset, with one
/// request in the middle of its transaction, then every packet dropped, so
/// that connecting hangs until `GATEHOUSE_DATABASE_TIMEOUT`. Sign-in for a
/// real and an unknown username, a recovery request and a reset link all
/// get the same clear 503, no session and nothing saved; when the database
/// is back, the same process serves them again.
///
/// Security case H86 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_cut_off_mid_request_answers_503_to_everyone_saves_nothing_and_comes_back() {
    let mut service = Service::prepare(On::Postgres, &[("GATEHOUSE_DATABASE_TIMEOUT", "2s")]).await;
    let proxy = {
        let (server, _) = through_proxy(&service.db_url, 0);
        TcpProxy::start(&server).await.expect("proxy")
    };
    service.service_db_url = through_proxy(&service.db_url, proxy.port()).1;
    service.spawn().await;
    let pid = service.child.as_ref().map(|s| s.0.id());
    service.request_recovery(&AMIR).await;
    let mail = service.smtp.wait_for(1, Duration::from_secs(20)).await;
    let link = newest_link(&mail, &service.base());
    let patient = || service.patient_browser();

    for blackhole in [false, true] {
        let cut = if blackhole {
            "packets dropped"
        } else {
            "connections reset"
        };
        // Forms opened while the database was there.
        let mut sign_ins = Vec::new();
        for username in ["999AKHAN01", "NOBODY99"] {
            let browser = patient();
            let token = browser.form_token("/login").await;
            sign_ins.push((username, browser, token));
        }
        let recovering = patient();
        let recover_token = recovering.form_token("/recover").await;
        let recover_form = [
            ("email", JANE.email),
            ("dob-day", JANE.date_of_birth.0),
            ("dob-month", JANE.date_of_birth.1),
            ("dob-year", JANE.date_of_birth.2),
            ("csrf_token", recover_token.as_str()),
        ];
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = footprint(&service).await;

        if blackhole {
            proxy.blackhole();
        } else {
            // One request is in the middle of its transaction (waiting on
            // a lock) when every connection is reset.
            let lock = TableLock::take(&service, "recovery_requests", "ACCESS EXCLUSIVE").await;
            let in_flight = post_in_background(&recovering, service.url("/recover"), &recover_form);
            blocked_at(&service, "recovery_requests").await;
            proxy.reset();
            let r = in_flight.await.expect("task").0.expect("an answer");
            unavailable_page(r, "a request cut off mid-way").await;
            lock.release().await;
        }

        let mut pages = Vec::new();
        for (username, browser, token) in &sign_ins {
            let started = std::time::Instant::now();
            let r = browser
                .post_form(
                    "/login",
                    token,
                    &[("username", username), ("password", OLD_PASSWORD)],
                )
                .await;
            pages.push(unavailable_page(r, &format!("{cut}: sign-in as {username}")).await);
            let waited = started.elapsed();
            assert!(
                waited < Duration::from_secs(8),
                "{cut}: the wait is bounded by GATEHOUSE_DATABASE_TIMEOUT: {waited:?}"
            );
            if blackhole {
                // Silence is only noticed by waiting: this was a hang, cut short.
                assert!(waited >= Duration::from_millis(1500), "{waited:?}");
            }
        }
        assert_eq!(pages[0], pages[1], "{cut}: the same page whoever it is");
        let r = recovering
            .http()
            .post(service.url("/recover"))
            .form(&recover_form)
            .send()
            .await
            .expect("an answer");
        unavailable_page(r, &format!("{cut}: a recovery request")).await;
        let r = patient().http().get(&link).send().await.expect("an answer");
        unavailable_page(r, &format!("{cut}: a reset link")).await;
        assert_eq!(
            footprint(&service).await,
            before,
            "{cut}: nothing half-written"
        );

        proxy.restore();
        // The same process, without a restart.
        assert_eq!(service.child.as_ref().map(|s| s.0.id()), pid);
        for (username, browser, _) in &sign_ins {
            let r = browser.log_in(username, "not the password at all").await;
            assert_eq!(r.status(), 200, "{cut}: {username} is answered again");
            let errors = error_messages(&r.body().await);
            assert!(
                errors
                    .first()
                    .is_some_and(|m| m.starts_with("The username or password is incorrect")),
                "{errors:?}"
            );
        }
        let opened = patient().http().get(&link).send().await.expect("GET");
        assert_eq!(
            opened.headers()["location"],
            "/reset",
            "{cut}: the link still works"
        );
    }
    service.request_recovery(&JANE).await;
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM recovery_requests")
            .await,
        2,
        "only the requests made while the database was there"
    );
}

// ---------------------------------------------------------------------------
// H86: the database silent in the middle of a statement (GATEHOUSE_REQUEST_TIMEOUT).
// ---------------------------------------------------------------------------

/// The page for a request abandoned at `GATEHOUSE_REQUEST_TIMEOUT`; returns
/// its reference.
async fn taking_too_long_page(r: reqwest::Response, what: &str) -> String {
    assert_eq!(r.status(), 503, "{what}");
    assert_eq!(r.headers()["retry-after"], "120", "{what}");
    assert_eq!(r.headers()["cache-control"], "no-store", "{what}");
    assert!(
        r.headers().contains_key("content-security-policy"),
        "{what}: the security headers too"
    );
    assert!(!sets_a_session(&r), "{what}: no session");
    let page = r.body().await;
    assert!(
        page.contains("Sorry, the service is taking too long to answer"),
        "{what}: {page}"
    );
    assert!(page.contains("Try again in a few minutes"), "{what}");
    // The request may have committed something before it hung.
    assert!(
        !page.contains("Nothing you sent has been saved"),
        "{what}: no promise it cannot keep"
    );
    assert!(
        !page.to_lowercase().contains("postgres"),
        "no internals shown"
    );
    let reference = reference_of(&page);
    assert_eq!(reference.len(), 9, "{what}: a reference: {page}");
    reference
}

/// PostgreSQL stops answering (every packet dropped) while a recovery
/// request and a wrong-password sign-in each have a statement in flight
/// inside their transactions (both held at the audit insert by a table
/// lock, then the lock released after the cut, so the statements run but
/// their answers are lost). The connection wait cannot help there: without
/// `GATEHOUSE_REQUEST_TIMEOUT` both would hang for ever. Each gets the 503
/// "taking too long" page at the bound; the recovery request is rolled
/// back whole; the sign-in, claimed before its check, stays a counted
/// failure, and its failure record (one statement, which the server may
/// have run and committed though its answer was lost) is why the page
/// promises nothing about what was saved; a warning names each route and
/// reference, and no password; and once the database is back, the same
/// process answers both normally.
///
/// Security case H86 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_silent_mid_statement_answers_503_at_the_request_timeout_writes_nothing_half_and_comes_back()
 {
    const BOUND: Duration = Duration::from_secs(3);
    let mut service = Service::prepare(
        On::Postgres,
        &[
            ("GATEHOUSE_DATABASE_TIMEOUT", "1s"),
            ("GATEHOUSE_HASH_WAIT", "1s"),
            ("GATEHOUSE_REQUEST_TIMEOUT", "3s"),
        ],
    )
    .await;
    let proxy = {
        let (server, _) = through_proxy(&service.db_url, 0);
        TcpProxy::start(&server).await.expect("proxy")
    };
    service.service_db_url = through_proxy(&service.db_url, proxy.port()).1;
    service.spawn().await;
    let pid = service.child.as_ref().map(|s| s.0.id());
    service.give_amir_a_password().await;
    service.settled_mail(2).await;
    let patient = || service.patient_browser();
    let recovering = patient();
    let recover_token = recovering.form_token("/recover").await;
    let signing_in = patient();
    let login_token = signing_in.form_token("/login").await;
    let before = footprint(&service).await;
    let requests_before = service
        .number("SELECT COUNT(*) FROM recovery_requests")
        .await;
    const SIGN_IN_FAILURES: &str =
        "SELECT COUNT(*) FROM audit_events WHERE event = 'sign_in.failed'";
    let failures_before = service.number(SIGN_IN_FAILURES).await;
    let recoveries_audited_before = service
        .number("SELECT COUNT(*) FROM audit_events WHERE event = 'recovery.requested'")
        .await;

    let audit = TableLock::take(&service, "audit_events", "EXCLUSIVE").await;
    let recover = post_in_background(
        &recovering,
        service.url("/recover"),
        &[
            ("email", JANE.email),
            ("dob-day", JANE.date_of_birth.0),
            ("dob-month", JANE.date_of_birth.1),
            ("dob-year", JANE.date_of_birth.2),
            ("csrf_token", &recover_token),
        ],
    );
    let recover_pid = blocked_at(&service, "INSERT INTO audit_events").await;
    let written = written_by(&service, recover_pid).await;
    assert!(
        written.iter().any(|t| t == "recovery_requests"),
        "the request is written in the open transaction: {written:?}"
    );
    let sign_in = post_in_background(
        &signing_in,
        service.url("/login"),
        &[
            ("username", "999AKHAN01"),
            ("password", "not the password at all"),
            ("csrf_token", &login_token),
        ],
    );
    let sign_in_pid =
        blocked_at_besides(&service, "INSERT INTO audit_events", &[recover_pid]).await;
    assert_eq!(
        service
            .number("SELECT MAX(consecutive) FROM sign_in_attempts")
            .await,
        1,
        "the attempt was claimed, and committed, before the check"
    );

    proxy.blackhole();
    // The held statements go on, but their answers never arrive.
    audit.release().await;
    let mut references = Vec::new();
    for (task, what) in [(recover, "a recovery request"), (sign_in, "a sign-in")] {
        let (r, waited) = task.await.expect("task");
        let r = r.unwrap_or_else(|e| panic!("{what}: no answer within 20 s: {e}"));
        references.push(taking_too_long_page(r, what).await);
        assert!(
            waited >= BOUND - Duration::from_millis(100) && waited < BOUND + Duration::from_secs(4),
            "{what}: answered at the bound, not by the connection wait: {waited:?}"
        );
    }

    proxy.restore();
    // The proxy closes the silent connections, so the server's sessions,
    // and with them the open transaction, end.
    gone(&service, recover_pid).await;
    gone(&service, sign_in_pid).await;
    assert_eq!(
        service
            .number("SELECT MAX(consecutive) FROM sign_in_attempts WHERE locked_until IS NULL")
            .await,
        1,
        "the abandoned sign-in is a counted failure, never a free one"
    );
    // The sign-in's failure record is one statement of its own, held at
    // the lock: if it was held at its Execute it ran once the lock went and
    // committed, its answer lost; if at its Parse (the statement's first
    // use on that connection) its Execute was never sent. Whole or not at
    // all, and which the handler cannot know: that is why the page does not
    // say nothing was saved.
    let recorded = service.number(SIGN_IN_FAILURES).await - failures_before;
    assert!(
        recorded == 0 || recorded == 1,
        "the failure recorded once or not at all: {recorded}"
    );
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM audit_events WHERE event = 'recovery.requested'")
            .await,
        recoveries_audited_before,
        "the recovery request's audit record went with its transaction"
    );
    let mut after = footprint(&service).await;
    // The claim's row (the table held no attempt before) and the failure
    // record are all that may be new.
    after[1] = before[1];
    after[5] -= recorded;
    assert_eq!(after, before, "nothing half-written");

    let log = service.log();
    for (route, reference) in ["/recover", "/login"].iter().zip(&references) {
        assert!(
            log.lines().any(|l| l.contains("GATEHOUSE_REQUEST_TIMEOUT")
                && l.contains(reference.as_str())
                && l.contains(&format!("route={route}"))),
            "a warning names {route} and {reference}: {log}"
        );
    }
    assert!(
        !log.contains("not the password at all"),
        "no password logged"
    );

    // The same process, without a restart, answers both again.
    assert_eq!(service.child.as_ref().map(|s| s.0.id()), pid);
    let r = patient()
        .log_in("999AKHAN01", "still not the password")
        .await;
    assert_eq!(r.status(), 200, "the sign-in is answered again");
    let errors = error_messages(&r.body().await);
    assert!(
        errors
            .first()
            .is_some_and(|m| m.starts_with("The username or password is incorrect")),
        "{errors:?}"
    );
    assert_eq!(
        service
            .number("SELECT MAX(consecutive) FROM sign_in_attempts")
            .await,
        2,
        "counted on top of the abandoned one"
    );
    service.request_recovery(&JANE).await;
    assert_eq!(
        service
            .number("SELECT COUNT(*) FROM recovery_requests")
            .await,
        requests_before + 1,
        "only the request made once the database was back"
    );
}

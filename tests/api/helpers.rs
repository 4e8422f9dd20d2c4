//! The test harness: the whole service in-process on a random port, with a
//! temporary SQLite database, a real SMTP server and a clock the test moves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse::app::{Application, Options};
use gatehouse::config::Config;
use gatehouse_core::Gatehouse;
use gatehouse_domain::second_factor::TotpSecret;
use gatehouse_domain::{ManualClock, Span, Timestamp};
use gatehouse_testkit::smtp::{ReceivedMail, SmtpSink};
use tokio::sync::watch;

/// 2026-11-25T09:00:00Z, a Wednesday morning.
pub const START: Timestamp = Timestamp::from_unix(1_795_597_200);

/// The public origin the service is told it has: links must use it, whatever the Host header says.
pub const PUBLIC_URL: &str = "http://gatehouse.test";

pub const STAFF: &str = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
999 Demo Hospital NHS Trust,,Jane,Smith,1985-03-14,Jane.Smith@nhs.net,D1\n\
432 Community Health NHS Trust,,Jane,Smith,14/03/1985,jane.smith@nhs.net,C1\n\
999 Demo Hospital NHS Trust,,Amir,Khan,1990-07-02,amir.khan@nhs.net,D2\n";

pub const GOOD_PASSWORD: &str = "kettle violin marmalade";

/// The operator, as the tests act: trusted with everything.
pub const OPERATOR: &gatehouse_core::Actor = &gatehouse_core::Actor::Operator("test");

pub struct TestApp {
    pub address: String,
    pub gatehouse: Gatehouse,
    pub clock: ManualClock,
    pub smtp: SmtpSink,
    pub client: reqwest::Client,
    /// The tests' own pool on the service's database.
    pub db: crate::db::Db,
    shutdown: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database, when the suite runs on PostgreSQL.
    postgres: Option<Arc<gatehouse_testkit::TestDatabase>>,
}

/// Whether this run of the suite uses PostgreSQL (`GATEHOUSE_TEST_BACKEND=postgres`)
/// rather than SQLite, the default.
pub fn on_postgres() -> bool {
    std::env::var("GATEHOUSE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The database URL for a test: SQLite in `dir`, or a fresh PostgreSQL database.
async fn database_url(
    dir: &std::path::Path,
    postgres: &mut Option<Arc<gatehouse_testkit::TestDatabase>>,
) -> String {
    if !on_postgres() {
        return format!("sqlite://{}/gatehouse.db", dir.display());
    }
    if postgres.is_none() {
        let db = gatehouse_testkit::TestDatabase::create()
            .await
            .expect("PostgreSQL must be running: see GATEHOUSE_TEST_POSTGRES_URL");
        let store =
            gatehouse_store::SqlStore::connect(&db.url, gatehouse_store::PoolSettings::default())
                .await
                .expect("connect");
        store.migrate().await.expect("migrate");
        store.close().await;
        *postgres = Some(Arc::new(db));
    }
    postgres
        .as_ref()
        .map(|db| db.url.clone())
        .unwrap_or_default()
}

/// Variables for a test's configuration.
pub fn test_env(database_url: &str, smtp_url: &str) -> BTreeMap<String, String> {
    [
        ("GATEHOUSE_LISTEN", "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("GATEHOUSE_DATABASE_URL", database_url.to_owned()),
        ("GATEHOUSE_MAIL_URL", smtp_url.to_owned()),
        ("GATEHOUSE_HASH_CONCURRENCY", "2".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Waits until the newest email to `email` is as `ready` wants it, and
/// returns it as the outbox then has it.
pub async fn wait_for_email(
    app: &TestApp,
    email: &str,
    ready: impl Fn(&gatehouse_store::OutboxSummary) -> bool,
) -> gatehouse_store::OutboxSummary {
    let newest = || async {
        app.db
            .emails_to(email, 1)
            .await
            .expect("list")
            .into_iter()
            .next()
    };
    for _ in 0..500 {
        if let Some(e) = newest().await
            && ready(&e)
        {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the email never got there: {:?}", newest().await);
}

/// Waits until the newest email to `email` has had at least `attempts` tries.
pub async fn wait_for_attempts(
    app: &TestApp,
    email: &str,
    attempts: i64,
) -> gatehouse_store::OutboxSummary {
    let started = wait_for_email(app, email, |e| e.attempts >= attempts).await;
    // The count goes up when a try starts, and the try's lease is cleared
    // when its end is recorded (a fixed pause here lost that race under load).
    let ended = format!(
        "SELECT COUNT(*) FROM outbox WHERE id = {} AND lease_until IS NULL",
        started.id
    );
    for _ in 0..500 {
        if count(&app.database_url(), &ended).await == 1 {
            return wait_for_email(app, email, |_| true).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the try never ended: {:?}",
        wait_for_email(app, email, |_| true).await
    );
}

/// Waits until the first try of the newest email to `email` has failed.
pub async fn wait_for_a_failed_try(app: &TestApp, email: &str) -> gatehouse_store::OutboxSummary {
    wait_for_email(app, email, |e| e.attempts >= 1 && e.last_error.is_some()).await
}

/// A browser whose only cookie, to begin with, is `cookie` (`name=value`,
/// anything after a `;` ignored): a returning browser, or a forged cookie.
pub fn client_with_cookie(app: &TestApp, cookie: &str) -> reqwest::Client {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let pair = cookie.split(';').next().unwrap_or_default();
    jar.add_cookie_str(
        &format!("{pair}; Path=/"),
        &app.address.parse().expect("url"),
    );
    reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A service with extra configuration variables.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        Self::spawn_full(vars, true).await
    }

    pub async fn spawn_full(vars: &[(&str, &str)], workers: bool) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            gatehouse::telemetry::init(false);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let smtp = SmtpSink::start().await.expect("smtp sink");
        Self::build(dir, None, smtp, ManualClock::new(START), vars, workers).await
    }

    async fn build(
        dir: tempfile::TempDir,
        mut postgres: Option<Arc<gatehouse_testkit::TestDatabase>>,
        smtp: SmtpSink,
        clock: ManualClock,
        vars: &[(&str, &str)],
        workers: bool,
    ) -> Self {
        let url = database_url(dir.path(), &mut postgres).await;
        let mut env = test_env(&url, &smtp.url());
        for (k, v) in vars {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_sources(None, &env).expect("test configuration");
        let app = Application::build(
            &config,
            Arc::new(clock.clone()),
            Options {
                run_workers: workers,
                poll: Duration::from_millis(50),
            },
        )
        .await
        .expect("application builds");
        let address = format!("http://{}", app.address());
        let gatehouse = app.gatehouse().clone();
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(app.run(rx));
        Self {
            db: crate::db::Db::open(&url).await,
            address,
            gatehouse,
            clock,
            smtp,
            client: client(),
            shutdown,
            server: Some(server),
            dir: Some(dir),
            postgres,
        }
    }

    /// Stops this service and starts another on the same database, mail
    /// server and clock, with other settings.
    pub async fn restart(mut self, vars: &[(&str, &str)], workers: bool) -> Self {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let dir = self.dir.take().expect("dir");
        let smtp = std::mem::replace(&mut self.smtp, SmtpSink::start().await.expect("sink"));
        Self::build(
            dir,
            self.postgres.take(),
            smtp,
            self.clock.clone(),
            vars,
            workers,
        )
        .await
    }

    /// The service's database URL.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(db) => db.url.clone(),
            None => format!(
                "sqlite://{}/gatehouse.db",
                self.dir.as_ref().expect("dir").path().display()
            ),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn import(&self, csv: &str) {
        self.gatehouse
            .import_staff(csv.as_bytes(), false, OPERATOR)
            .await
            .expect("import runs")
            .expect("file is valid");
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.client, path).await
    }

    pub async fn get_as(&self, client: &reqwest::Client, path: &str) -> reqwest::Response {
        client.get(self.url(path)).send().await.expect("GET")
    }

    /// The body of `path` as `client` sees it.
    pub async fn page_as(&self, client: &reqwest::Client, path: &str) -> String {
        page_text(client, &self.url(path)).await
    }

    /// GETs `form_page` to obtain a form token, then POSTs `fields` with it to `action`.
    pub async fn submit(
        &self,
        client: &reqwest::Client,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        submit_at(client, &self.url(form_page), &self.url(action), fields).await
    }

    pub async fn request_recovery_as(
        &self,
        client: &reqwest::Client,
        email: &str,
        dob: (&str, &str, &str),
        username: &str,
    ) -> reqwest::Response {
        request_recovery_at(client, &self.address, email, dob, username).await
    }

    pub async fn request_recovery(
        &self,
        email: &str,
        dob: (&str, &str, &str),
    ) -> reqwest::Response {
        self.request_recovery_as(&client(), email, dob, "").await
    }

    pub async fn log_in_as(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        log_in_at(client, &self.address, username, password).await
    }

    pub async fn log_in(&self, username: &str, password: &str) -> reqwest::Response {
        self.log_in_as(&client(), username, password).await
    }

    /// Waits until every recorded recovery request has been processed
    /// (running the work here too, in case workers are off).
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            self.gatehouse
                .process_recovery_requests()
                .await
                .expect("recovery processing");
            let depths = self.db.queue_depths().await.expect("depths");
            if depths.recovery_pending == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "recovery requests stayed pending"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The recovery emails received so far (not the notices).
    pub fn recovery_emails(&self) -> Vec<ReceivedMail> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| {
                m.header("Subject")
                    .is_some_and(|s| s.contains("username and password reset"))
            })
            .collect()
    }

    /// Waits for the `n`-th recovery email (counting from 1) and returns it.
    pub async fn recovery_email(&self, n: usize) -> ReceivedMail {
        self.settle().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mail = self.recovery_emails();
            if mail.len() >= n {
                return mail[n - 1].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "recovery email {n} never came"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `n` emails in all to arrive at the SMTP server.
    pub async fn emails(&self, n: usize) -> Vec<ReceivedMail> {
        self.settle().await;
        let mail = self.smtp.wait_for(n, Duration::from_secs(10)).await;
        assert!(mail.len() >= n, "expected {n} emails, got {}", mail.len());
        mail
    }

    /// Sets a password for `username` through the whole recovery flow.
    pub async fn set_password(
        &self,
        email: &str,
        dob: (&str, &str, &str),
        username: &str,
        password: &str,
    ) {
        let before = self.recovery_emails().len();
        self.request_recovery_as(&client(), email, dob, username)
            .await;
        let links = reset_links(&self.recovery_email(before + 1).await);
        let c = client();
        let response = self.open_link(&c, &links[0]).await;
        assert_eq!(response.headers()["location"], "/reset");
        let done = submit_reset_at(&c, &self.address, username, password).await;
        assert_eq!(done.status(), 303, "reset should succeed");
        assert_eq!(done.headers()["location"], "/login?password=set");
    }

    /// Opens a reset link (its path on this server).
    pub async fn open_link(&self, client: &reqwest::Client, link: &str) -> reqwest::Response {
        let path = link
            .strip_prefix(PUBLIC_URL)
            .expect("links use the public URL");
        self.get_as(client, path).await
    }

    pub fn advance(&self, span: Span) {
        self.clock.advance(span);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The form token of the page at `url`, as `client` (with its session) gets it.
pub async fn form_token(client: &reqwest::Client, url: &str) -> String {
    csrf_token(&page_text(client, url).await).expect("the page has a form token")
}

/// Asserts that the page's error summary has a message containing `text`.
#[track_caller]
pub fn assert_error(page: &str, text: &str) {
    let errors = error_messages(page);
    assert!(
        errors.iter().any(|m| m.contains(text)),
        "no error containing {text:?} in {errors:?}"
    );
}

/// The form token in a page.
pub fn csrf_token(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let end = page[at..].find('"')?;
    Some(page[at..at + end].to_owned())
}

/// Every reset link in an email's text part, in order.
pub fn reset_links(mail: &ReceivedMail) -> Vec<String> {
    reset_links_at(mail, PUBLIC_URL)
}

/// Every reset link to the service at `base` in an email's text part, in order.
pub fn reset_links_at(mail: &ReceivedMail, base: &str) -> Vec<String> {
    let body = mail.decoded_body();
    let text = body
        .split("Content-Type: text/html")
        .next()
        .unwrap_or(&body);
    let prefix = format!("{base}/reset/");
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&prefix) {
        let token: String = rest[at + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        links.push(format!("{prefix}{token}"));
        rest = &rest[at + prefix.len() + token.len()..];
    }
    links
}

/// The text of a page with everything that legitimately differs per visitor removed.
pub fn comparable(page: &str) -> String {
    let mut out = page.to_owned();
    while let Some(token) = csrf_token(&out) {
        out = out.replace(&token, "TOKEN");
        if token == "TOKEN" {
            break;
        }
    }
    out
}

/// The error summary's messages in a page.
pub fn error_messages(page: &str) -> Vec<String> {
    let Some(start) = page.find("nhsuk-error-summary__list") else {
        return Vec::new();
    };
    let list = &page[start
        ..page[start..]
            .find("</ul>")
            .map_or(page.len(), |e| start + e)];
    list.split("<a href=\"#")
        .skip(1)
        .filter_map(|item| {
            let text = item.split_once("\">")?.1;
            Some(text.split("</a>").next()?.trim().to_owned())
        })
        .collect()
}

/// The audit rows of `event`, newest first.
pub async fn audit_events(app: &TestApp, event: &str) -> Vec<gatehouse_store::AuditRow> {
    app.db
        .audit_events(&gatehouse_store::AuditFilter {
            event: Some(
                gatehouse_domain::audit::AuditEvent::from_stored(event)
                    .unwrap_or_else(|| panic!("no audit event is called {event}")),
            ),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("audit")
}

/// Every audit row, newest first.
pub async fn audit_log(app: &TestApp) -> Vec<gatehouse_store::AuditRow> {
    app.db
        .audit_events(&gatehouse_store::AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("audit")
}

/// The account whose username is `username`, as the database has it now.
pub async fn account(app: &TestApp, username: &str) -> gatehouse_store::AccountRecord {
    app.db
        .account_by_username(&gatehouse_domain::UsernameKey::from_typed(username))
        .await
        .expect("read")
        .unwrap_or_else(|| panic!("no account {username}"))
}

/// Posts a console action form on `username`'s page (`/console/accounts/{username}/{action}`).
pub async fn console_action(
    app: &TestApp,
    c: &reqwest::Client,
    username: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    app.submit(
        c,
        &format!("/console/accounts/{username}"),
        &format!("/console/accounts/{username}/{action}"),
        fields,
    )
    .await
}

/// Gives Jane's 999 account (999JSMITH01) `GOOD_PASSWORD` through the recovery flow.
pub async fn set_janes_password(app: &TestApp) {
    app.set_password(
        "jane.smith@nhs.net",
        ("14", "3", "1985"),
        "999JSMITH01",
        GOOD_PASSWORD,
    )
    .await;
}

/// Waits until no email is left queued.
pub async fn wait_until_sent(app: &TestApp) {
    for _ in 0..500 {
        let depths = app.db.queue_depths().await.expect("depths");
        if depths.emails_queued == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("emails stayed queued");
}

/// The body of the page at `url`, as `client` gets it.
pub async fn page_text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body")
}

/// GETs `page_url` to obtain a form token (none if the page has no form),
/// then POSTs `fields` with it to `action_url`.
pub async fn submit_at(
    client: &reqwest::Client,
    page_url: &str,
    action_url: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = csrf_token(&page_text(client, page_url).await).unwrap_or_default();
    post_form(client, action_url, &token, fields).await
}

/// POSTs `fields` and the form token `token` to `url`.
pub async fn post_form(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = fields.to_vec();
    form.push(("csrf_token", token));
    client.post(url).form(&form).send().await.expect("POST")
}

/// A browser that comes from `address` through a trusted proxy.
pub fn client_from(address: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().expect("header value"));
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("client")
}

/// Every header but `Date`, sorted, with cookie values (which differ per
/// visitor by design) blanked: what two answers must share to look the same.
pub fn comparable_headers(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str() != "date")
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("(not text)").to_owned();
            let value = match value.split_once('=') {
                Some((cookie, rest)) if name.as_str() == "set-cookie" => format!(
                    "{cookie}=VALUE{}",
                    rest.find(';').map_or("", |i| &rest[i..])
                ),
                _ => value,
            };
            (name.as_str().to_owned(), value)
        })
        .collect();
    out.sort();
    out
}

/// The error reference an error page shows (empty if none).
pub fn reference_of(page: &str) -> String {
    page.split("Reference: <strong>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_default()
        .to_owned()
}

/// Every table of the database at `url` (migration bookkeeping aside), by
/// name, with each row's values as text: to compare two moments, or to look
/// for a value anywhere.
pub async fn snapshot(url: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    use sqlx::Row as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("open");
    let query = if url.starts_with("sqlite:") {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    } else {
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()"
    };
    let tables: Vec<String> = sqlx::query_scalar(query)
        .fetch_all(&pool)
        .await
        .expect("tables");
    let mut out = BTreeMap::new();
    for table in tables
        .into_iter()
        .filter(|t| !t.starts_with("_sqlx") && !t.starts_with("sqlite_"))
    {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\"")))
            .fetch_all(&pool)
            .await
            .expect("rows");
        let rows = rows
            .iter()
            .map(|row| (0..row.len()).map(|i| cell(&table, row, i)).collect())
            .collect();
        out.insert(table, rows);
    }
    pool.close().await;
    out
}

/// One value of a row as text (`NULL` for null); panics on a type it cannot
/// read, so that no column is silently left out of a comparison.
fn cell(table: &str, row: &sqlx::any::AnyRow, i: usize) -> String {
    use sqlx::Row as _;
    let text = if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        v
    } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        v.map(|v| v.to_string())
    } else if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        v.map(|b| String::from_utf8_lossy(&b).into_owned())
    } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        v.map(|v| v.to_string())
    } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        v.map(|v| v.to_string())
    } else {
        panic!("{table}: column {i} has a type this test cannot read")
    };
    text.unwrap_or_else(|| "NULL".to_owned())
}

/// The number the query `sql` returns (a count, say), read on a connection
/// of the test's own; -1 for NULL.
pub async fn count(url: &str, sql: &str) -> i64 {
    use sqlx::{Connection as _, Row as _};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_get::<Option<i64>, _>(0)
        .expect("a number")
        .unwrap_or(-1);
    let _ = conn.close().await;
    n
}

/// The real `gatehouse` binary, for tests that run it as a process.
pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A TCP port free at the moment of asking, for a process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running `gatehouse serve` process, killed (`kill -9`) when dropped so
/// that none outlives its test.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether the service at `base` answers its health check within ten seconds.
pub async fn healthy(base: &str) -> bool {
    for _ in 0..400 {
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Waits until the service at `base` answers its health check.
pub async fn wait_healthy(base: &str) {
    assert!(healthy(base).await, "{base} did not become healthy");
}

/// Staff loaded, Amir (999AKHAN01) made `role` by the operator, with
/// `GOOD_PASSWORD` set through the set-up link that gave him, signed in (no
/// second factor yet: the set-up link lets him set one up).
pub async fn signed_in(app: &TestApp, role: gatehouse_domain::Role) -> reqwest::Client {
    let c = client();
    sign_in_with_role(app, role, &c).await;
    c
}

/// As [`signed_in`], in the browser `c`.
pub async fn sign_in_with_role(app: &TestApp, role: gatehouse_domain::Role, c: &reqwest::Client) {
    app.import(STAFF).await;
    if role == gatehouse_domain::Role::Staff {
        give_amir_a_password(app).await;
    } else {
        let link = grant(app, "999AKHAN01", role).await;
        set_password_through(app, &link, "999AKHAN01", GOOD_PASSWORD).await;
    }
    assert_eq!(
        app.log_in_as(c, "999AKHAN01", GOOD_PASSWORD).await.status(),
        303
    );
}

/// Makes `username` `role` as the operator does, and returns the set-up
/// link the operator is given to hand over.
pub async fn grant(app: &TestApp, username: &str, role: gatehouse_domain::Role) -> String {
    app.gatehouse
        .set_role(username, role, OPERATOR)
        .await
        .expect("role")
        .set_up
        .expect("a set-up link for an account with no authenticator")
        .link
}

/// Sets `password` through a reset or set-up `link`, in a browser of its own.
pub async fn set_password_through(app: &TestApp, link: &str, username: &str, password: &str) {
    let c = client();
    let opened = app.open_link(&c, link).await;
    assert_eq!(opened.headers()["location"], "/reset");
    let done = submit_reset_at(&c, &app.address, username, password).await;
    assert_eq!(done.status(), 303, "the password is set");
    assert!(
        done.headers()["location"]
            .to_str()
            .expect("location")
            .starts_with("/login?password=set"),
        "back to the login page"
    );
}

/// The authenticator key the enrolment page shows.
pub fn key_in(page: &str) -> TotpSecret {
    let marker = "<strong class=\"gatehouse-key\">";
    let start = page.find(marker).expect("the manual key is shown") + marker.len();
    let end = start + page[start..].find('<').expect("end of key");
    TotpSecret::from_base32(&page[start..end].replace(' ', "")).expect("a valid key")
}

/// Amir with `role`, signed in and past the second factor: the console is open.
pub async fn console_as(app: &TestApp, role: gatehouse_domain::Role) -> reqwest::Client {
    console_with_secret(app, role).await.0
}

/// As [`console_as`], with the authenticator's secret (for later codes).
pub async fn console_with_secret(
    app: &TestApp,
    role: gatehouse_domain::Role,
) -> (reqwest::Client, TotpSecret) {
    let c = signed_in(app, role).await;
    let secret = enrol_second_factor(app, &c).await;
    assert_eq!(app.get_as(&c, "/console").await.status(), 200);
    (c, secret)
}

/// Enrols an authenticator for the signed-in browser `c` (with a first
/// code), and returns its secret.
pub async fn enrol_second_factor(app: &TestApp, c: &reqwest::Client) -> TotpSecret {
    let page = app.page_as(c, "/console/second-factor").await;
    let secret = key_in(&page);
    let code = secret.code_at(app.gatehouse.clock().now().unix().cast_unsigned());
    let r = app
        .submit(
            c,
            "/console/second-factor",
            "/console/second-factor",
            &[("code", code.as_str())],
        )
        .await;
    assert_eq!(r.status(), 200, "enrolled");
    secret
}

/// SQLite's write lock, held on a connection of the test's own until
/// released: the service's writes wait for it as for a long transaction.
pub struct SqliteWriteLock(sqlx::AnyConnection);

impl SqliteWriteLock {
    pub async fn take(app: &TestApp) -> Self {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut holder = sqlx::AnyConnection::connect(&app.database_url())
            .await
            .expect("connect");
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .expect("lock");
        Self(holder)
    }

    pub async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("unlock");
    }
}

/// Amir's recovery form (no username), as he would fill it in.
pub const AMIR_RECOVERY: [(&str, &str); 4] = [
    ("email", "amir.khan@nhs.net"),
    ("dob-day", "2"),
    ("dob-month", "7"),
    ("dob-year", "1990"),
];

/// Gives Amir (999AKHAN01) `GOOD_PASSWORD` through the recovery flow.
pub async fn give_amir_a_password(app: &TestApp) {
    app.set_password(
        "amir.khan@nhs.net",
        ("2", "7", "1990"),
        "999AKHAN01",
        GOOD_PASSWORD,
    )
    .await;
}

/// A service with extra configuration `vars`, STAFF imported and Amir's
/// password set to `GOOD_PASSWORD`.
pub async fn app_with_password(vars: &[(&str, &str)]) -> TestApp {
    let app = TestApp::spawn_with(vars).await;
    app.import(STAFF).await;
    give_amir_a_password(&app).await;
    app
}

/// What the console knows of `username`'s account now: lock, failure counts, record.
pub async fn account_status(
    app: &TestApp,
    username: &str,
) -> gatehouse_core::accounts::AccountStatus {
    app.gatehouse
        .account_status(OPERATOR, username)
        .await
        .unwrap_or_else(|e| panic!("{username}: {e}"))
}

/// The sign-in failure counter kept for `username` (typed as a person would).
pub async fn sign_in_attempts(
    app: &TestApp,
    username: &str,
) -> gatehouse_domain::lockout::AttemptCounter {
    app.db
        .attempts(&gatehouse_domain::UsernameKey::from_typed(username))
        .await
        .expect("read")
}

/// The "password has been set" notices received so far.
pub fn password_set_notices(app: &TestApp) -> Vec<ReceivedMail> {
    app.smtp
        .messages()
        .into_iter()
        .filter(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("password has been set"))
        })
        .collect()
}

/// Fills in and sends the recovery form of the service at `base` as `client`.
pub async fn request_recovery_at(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    dob: (&str, &str, &str),
    username: &str,
) -> reqwest::Response {
    let url = format!("{base}/recover");
    let fields = [
        ("email", email),
        ("dob-day", dob.0),
        ("dob-month", dob.1),
        ("dob-year", dob.2),
        ("username", username),
    ];
    submit_at(client, &url, &url, &fields).await
}

/// Signs in to the service at `base` as `client`, through the sign-in form.
pub async fn log_in_at(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let url = format!("{base}/login");
    submit_at(
        client,
        &url,
        &url,
        &[("username", username), ("password", password)],
    )
    .await
}

/// Sends the reset form of the service at `base` as `client` (which has
/// opened a link), with `password` typed twice.
pub async fn submit_reset_at(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let url = format!("{base}/reset");
    let fields = [
        ("username", username),
        ("password", password),
        ("confirm-password", password),
    ];
    submit_at(client, &url, &url, &fields).await
}

/// The Content-Security-Policy directives every HTML page must carry.
pub const CSP_DIRECTIVES: [&str; 5] = [
    "default-src 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
];

/// Every `Set-Cookie` header of a response, as text.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect()
}

/// The value of a `Set-Cookie` header (`name=value; attributes`).
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// Whether a response gives the browser a session cookie (not one that
/// clears it).
pub fn sets_a_session(r: &reqwest::Response) -> bool {
    set_cookies(r)
        .iter()
        .any(|c| c.starts_with("gatehouse=") && !c.contains("Max-Age=0"))
}

/// A new reset link for Amir, from the next recovery email to him.
pub async fn link_for_amir(app: &TestApp) -> String {
    let before = app.recovery_emails().len();
    app.request_recovery("amir.khan@nhs.net", ("2", "7", "1990"))
        .await;
    reset_links(&app.recovery_email(before + 1).await).remove(0)
}

/// Opens `link` in `c` and returns the reset form's token.
pub async fn open_reset_form(app: &TestApp, c: &reqwest::Client, link: &str) -> String {
    assert_eq!(app.open_link(c, link).await.status(), 303);
    let page = app.page_as(c, "/reset").await;
    csrf_token(&page).unwrap_or_else(|| panic!("the form is shown: {page}"))
}

/// A browser whose cookie jar the test can read (to know its session id).
pub fn browser_with_jar() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let c = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (c, jar)
}

/// The status code of a raw HTTP/1.1 answer (0 if there is none).
pub fn raw_status(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Runs SQL straight on the app's database (a trigger that stands in for
/// another writer, say), on a connection of its own.
pub async fn execute_sql(url: &str, sql: &str) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// Uploads `file` as the staff file in the console (its preview step).
pub async fn upload(
    app: &TestApp,
    c: &reqwest::Client,
    token: &str,
    file: &str,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", token.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(file.as_bytes().to_vec()).file_name("hr-feed.csv"),
        );
    c.post(app.url("/console/import"))
        .multipart(form)
        .send()
        .await
        .expect("POST")
}

/// Runs the `gatehouse` binary on the test service's database: its exit
/// code, standard output and standard error.
pub fn gatehouse_cli(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATABASE_URL", app.database_url())
        .env(
            "GATEHOUSE_MAIL_URL",
            format!("file://{}/outbox", dir.path().display()),
        )
        .current_dir(dir.path())
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

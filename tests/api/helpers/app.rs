//! The service under test: in-process on a random port with a temporary
//! database, a real SMTP server and a clock the test moves ([`TestApp`]),
//! or the real binary run as a process ([`BIN`], [`Server`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse::app::{Application, Options};
use gatehouse::config::Config;
use gatehouse_core::Gatehouse;
use gatehouse_domain::second_factor::TotpSecret;
use gatehouse_domain::{ManualClock, Role, Span, Timestamp};
use gatehouse_testkit::smtp::SmtpSink;
use tokio::sync::watch;

use super::browser::{Browser, key_in};
use super::db::Db;
use super::mail::reset_links;
use super::people::{AMIR, GOOD_PASSWORD, Person, STAFF};

/// 2026-11-25T09:00:00Z, a Wednesday morning.
pub const START: Timestamp = Timestamp::from_unix(1_795_597_200);

/// The public origin the service is told it has: links must use it, whatever the Host header says.
pub const PUBLIC_URL: &str = "http://gatehouse.test";

/// The operator, as the tests act: trusted with everything.
pub const OPERATOR: &gatehouse_core::Actor = &gatehouse_core::Actor::Operator("test");

/// The whole service in-process, stopped when dropped.
pub struct TestApp {
    /// `http://127.0.0.1:port`.
    pub address: String,
    /// `http://127.0.0.1:port` of the metrics listener, when
    /// `GATEHOUSE_METRICS_LISTEN` is set.
    pub metrics_address: Option<String>,
    /// The service's core, for what an operator does outside the web pages.
    pub gatehouse: Gatehouse,
    /// The service's clock, moved only by the test.
    pub clock: ManualClock,
    /// The mail server the service sends to.
    pub smtp: SmtpSink,
    /// A browser of the test's own for visits whose cookies it does not follow.
    pub visitor: Browser,
    /// The tests' own pool on the service's database.
    pub db: Db,
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
    if postgres.is_none() && !on_postgres() {
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

/// An authenticator enrolled in the console.
pub struct Enrolment {
    /// The authenticator's secret, for later codes.
    pub secret: TotpSecret,
    /// The recovery codes shown once, at enrolment.
    pub recovery_codes: Vec<String>,
}

impl TestApp {
    /// A service with the default test configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A service with extra configuration variables.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        Self::spawn_full(vars, true).await
    }

    /// A service with extra configuration variables, its background
    /// workers on or off.
    pub async fn spawn_full(vars: &[(&str, &str)], workers: bool) -> Self {
        gatehouse_core::use_ring_for_tls();
        if std::env::var_os("TEST_LOG").is_some() {
            gatehouse::telemetry::init(false, false);
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
        let metrics_address = app.metrics_address().map(|a| format!("http://{a}"));
        let gatehouse = app.gatehouse().clone();
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(app.run(rx));
        Self {
            db: Db::open(&url).await,
            visitor: Browser::new(&address, PUBLIC_URL),
            address,
            metrics_address,
            gatehouse,
            clock,
            smtp,
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

    /// Two nodes on one fresh PostgreSQL database (whatever the backend
    /// under test), sharing a clock; only the first runs the workers.
    pub async fn two_nodes_on_postgres(vars: &[(&str, &str)]) -> (Self, Self) {
        gatehouse_core::use_ring_for_tls();
        let db = gatehouse_testkit::TestDatabase::create()
            .await
            .expect("PostgreSQL must be running: see GATEHOUSE_TEST_POSTGRES_URL");
        let store =
            gatehouse_store::SqlStore::connect(&db.url, gatehouse_store::PoolSettings::default())
                .await
                .expect("connect");
        store.migrate().await.expect("migrate");
        store.close().await;
        let db = Arc::new(db);
        let clock = ManualClock::new(START);
        let mut nodes = Vec::new();
        // The first node's worker sends the mail (the tests read its sink).
        for workers in [true, false] {
            let dir = tempfile::tempdir().expect("temp dir");
            let smtp = SmtpSink::start().await.expect("smtp sink");
            let db = Some(db.clone());
            nodes.push(Self::build(dir, db, smtp, clock.clone(), vars, workers).await);
        }
        let second = nodes.pop().expect("two");
        (nodes.pop().expect("two"), second)
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

    /// The full URL of `path` on the service.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A new browser on the service, with no cookies.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.address, PUBLIC_URL)
    }

    /// The status of a sign-in in a new browser: 303 in, 200 refused.
    pub async fn log_in_status(&self, username: &str, password: &str) -> reqwest::StatusCode {
        self.browser().log_in(username, password).await.status()
    }

    /// Imports a staff file as the operator does; panics if it is refused.
    pub async fn import(&self, csv: &str) {
        self.gatehouse
            .import_staff(csv.as_bytes(), false, OPERATOR)
            .await
            .expect("import runs")
            .expect("file is valid");
    }

    /// Moves the service's clock on.
    pub fn advance(&self, span: Span) {
        self.clock.advance(span);
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

    /// A new reset link for `person`'s account, from the next recovery
    /// email to them (the form sent without a username).
    pub async fn reset_link(&self, person: &Person) -> String {
        let before = self.recovery_emails().len();
        self.browser().request_recovery(person.recovery()).await;
        reset_links(&self.recovery_email(before + 1).await, PUBLIC_URL).remove(0)
    }

    /// Sets `person`'s password through the whole recovery flow: the form
    /// (username filled in), the email, the link, the reset form.
    pub async fn set_password(&self, person: &Person, password: &str) {
        let before = self.recovery_emails().len();
        self.browser()
            .request_recovery(person.recovery().with_username(person.username))
            .await;
        let links = reset_links(&self.recovery_email(before + 1).await, PUBLIC_URL);
        let next = self
            .browser()
            .set_password_through(&links[0], person.username, password)
            .await;
        assert_eq!(next, "/login?password=set");
    }

    /// Makes `username` `role` as the operator does, and returns the set-up
    /// link the operator is given to hand over.
    pub async fn grant(&self, username: &str, role: Role) -> String {
        self.gatehouse
            .set_role(username, role, OPERATOR)
            .await
            .expect("role")
            .set_up
            .expect("a set-up link for an account with no authenticator")
            .link
    }

    /// Staff loaded, Amir made `role` by the operator, with `GOOD_PASSWORD`
    /// set through the set-up link that gave him (or, as staff, through
    /// recovery), signed in in `browser` (no second factor yet: the set-up
    /// link lets him set one up).
    pub async fn sign_in_amir(&self, browser: &Browser, role: Role) {
        self.import(STAFF).await;
        if role == Role::Staff {
            self.set_password(&AMIR, GOOD_PASSWORD).await;
        } else {
            let link = self.grant(AMIR.username, role).await;
            self.browser()
                .set_password_through(&link, AMIR.username, GOOD_PASSWORD)
                .await;
        }
        assert_eq!(
            browser.log_in(AMIR.username, GOOD_PASSWORD).await.status(),
            303
        );
    }

    /// As [`TestApp::sign_in_amir`], in a new browser.
    pub async fn signed_in(&self, role: Role) -> Browser {
        let browser = self.browser();
        self.sign_in_amir(&browser, role).await;
        browser
    }

    /// The code an authenticator holding `secret` shows now.
    pub fn code_now(&self, secret: &TotpSecret) -> String {
        secret.code_at(self.gatehouse.clock().now().unix().cast_unsigned())
    }

    /// Enrols an authenticator for the signed-in `browser`, with a first code.
    pub async fn enrol(&self, browser: &Browser) -> Enrolment {
        let page = browser.page("/console/second-factor").await;
        let secret = key_in(&page);
        let response = browser.send_code(&self.code_now(&secret)).await;
        assert_eq!(response.status(), 200, "enrolled");
        let page = response.text().await.expect("body");
        assert!(page.contains("Save your recovery codes"), "{page}");
        let recovery_codes = page
            .split("<li><code>")
            .skip(1)
            .map(|s| s[..s.find('<').expect("end")].to_owned())
            .collect();
        Enrolment {
            secret,
            recovery_codes,
        }
    }

    /// Amir with `role`, signed in and past the second factor: the console
    /// is open.
    pub async fn console_as(&self, role: Role) -> (Browser, Enrolment) {
        let browser = self.signed_in(role).await;
        let enrolment = self.enrol(&browser).await;
        assert_eq!(browser.get("/console").await.status(), 200);
        (browser, enrolment)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A service with extra configuration `vars`, STAFF imported and Amir's
/// password set to `GOOD_PASSWORD`.
pub async fn app_with_password(vars: &[(&str, &str)]) -> TestApp {
    let app = TestApp::spawn_with(vars).await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    app
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
    gatehouse_core::use_ring_for_tls();
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

/// Runs the `gatehouse` binary on the test service's database: its exit
/// code, standard output and standard error.
pub async fn gatehouse_cli(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    // Waited for without blocking the test's runtime: the service under
    // test runs on it, and may hold SQLite's write lock in a transaction
    // that must finish before the command can write.
    let out = tokio::process::Command::new(BIN)
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
        .await
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `gatehouse` binary, to run in `dir` with SQLite and file mail there
/// and `extra` settings: nothing from this process's environment.
pub fn gatehouse_in(dir: &std::path::Path, extra: &[(&str, &str)]) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "GATEHOUSE_DATABASE_URL",
            format!("sqlite://{}/gatehouse.db", dir.display()),
        )
        .env(
            "GATEHOUSE_MAIL_URL",
            format!("file://{}/outbox", dir.display()),
        )
        .current_dir(dir);
    for (k, v) in extra {
        c.env(k, v);
    }
    c
}

/// Runs a command to its end: its exit code, standard output and error.
pub fn run_command(mut c: std::process::Command) -> (i32, String, String) {
    let out = c.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `gatehouse serve` in `dir` on `port`, its mail to `mail_url`, logging at
/// debug level (every line) to `dir/server.log`; ready when this returns.
pub async fn serve_in(dir: &std::path::Path, port: u16, mail_url: &str) -> Server {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("log file");
    let mut c = gatehouse_in(
        dir,
        &[
            ("GATEHOUSE_LISTEN", &format!("127.0.0.1:{port}")),
            ("GATEHOUSE_PUBLIC_URL", &format!("http://127.0.0.1:{port}")),
            ("GATEHOUSE_MAIL_URL", mail_url),
            ("GATEHOUSE_LOG", "debug,sqlx=debug,hyper=info,h2=info"),
        ],
    );
    c.arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    let server = Server(c.spawn().expect("starts"));
    wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    server
}

/// Debian's nginx, wherever it is.
pub fn nginx_binary() -> String {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.to_owned();
        }
    }
    "nginx".to_owned()
}

/// nginx with docs/nginx.conf as deployed, but on `port` on loopback
/// without TLS, sending to the `upstreams` (one `server` line each), with
/// `extra` added inside its `server` block, its files under `prefix`;
/// healthy when this returns. Killed when dropped.
pub async fn start_nginx(
    prefix: &std::path::Path,
    port: u16,
    upstreams: &[String],
    extra: &str,
    workers: u32,
) -> Server {
    let servers: String = upstreams
        .iter()
        .map(|u| format!("    server {u};\n"))
        .collect();
    std::fs::create_dir_all(prefix.join("tmp")).expect("nginx dir");
    let config = include_str!("../../../docs/nginx.conf")
        .replace(
            "    server 127.0.0.1:8081;\n    server 127.0.0.1:8082;\n    server 127.0.0.1:8083;\n",
            &servers,
        )
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "    ssl_certificate /etc/ssl/gatehouse/fullchain.pem;\n",
            "",
        )
        .replace(
            "    ssl_certificate_key /etc/ssl/gatehouse/privkey.pem;\n",
            "",
        )
        .replace(
            "/var/log/nginx/gatehouse-error.log",
            &prefix.join("error.log").display().to_string(),
        )
        .replace(
            "/var/lib/nginx/gatehouse",
            &prefix.join("tmp").display().to_string(),
        );
    assert!(
        upstreams.iter().all(|u| config.contains(u.as_str())),
        "the tested config names the upstreams"
    );
    // Inside the server block, after its last location.
    let end = config.rfind('}').expect("the server block ends");
    let config = format!("{}\n{extra}\n}}\n", &config[..end]);
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes {workers};\npid {pid};\nerror_log {err} warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n{config}\n}}\n",
            pid = prefix.join("nginx.pid").display(),
            err = prefix.join("error.log").display(),
        ),
    )
    .expect("nginx.conf");
    let nginx = std::process::Command::new(nginx_binary())
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("nginx must be installed (apt-get install nginx-light)");
    let server = Server(nginx);
    wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    server
}

//! Metrics and readiness (docs/deploy.md, "Monitoring"): `/metrics` only on
//! `GATEHOUSE_METRICS_LISTEN`, counters that move by exactly what happened,
//! route templates rather than paths as labels, gauges read from the
//! database when scraped, `/readyz` following the database and its schema,
//! and a real Prometheus scraping a running service.

use std::time::Duration;

use gatehouse_domain::Span;
use gatehouse_testkit::{SinkMode, TcpProxy, TestDatabase};

use crate::helpers::*;

/// Metrics on a port of their own, chosen by the system.
const METRICS: (&str, &str) = ("GATEHOUSE_METRICS_LISTEN", "127.0.0.1:0");

/// The metrics text the service's metrics listener serves now.
async fn scrape(app: &TestApp) -> String {
    let address = app
        .metrics_address
        .as_deref()
        .expect("the test app serves metrics");
    let r = reqwest::get(format!("{address}/metrics"))
        .await
        .expect("the metrics listener answers");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    r.text().await.expect("body")
}

/// The value of one series (`name{labels}` exactly as written), if it exists.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .split(' ')
                .next()
        })
        .and_then(|v| v.parse().ok())
}

/// The value of one series, which must exist.
fn value(text: &str, name: &str) -> f64 {
    series(text, name).unwrap_or_else(|| panic!("no series {name} in:\n{text}"))
}

/// The sum of every series whose line starts with `prefix`.
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The metrics once the workers have nothing left to do: every recovery
/// request matched and every email's try recorded.
async fn settled(app: &TestApp) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        app.settle().await;
        let text = scrape(app).await;
        if value(&text, "gatehouse_outbox_depth") == 0.0
            && value(&text, "gatehouse_recovery_pending") == 0.0
        {
            // A try is counted just after its record commits.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return scrape(app).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workers did not finish:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each series' change between two scrapes.
struct Change<'a> {
    before: &'a str,
    after: &'a str,
}

impl Change<'_> {
    /// A series that did not exist before (a route's first request, say)
    /// was at zero.
    fn of(&self, name: &str) -> f64 {
        value(self.after, name) - series(self.before, name).unwrap_or(0.0)
    }

    fn of_all(&self, prefix: &str) -> f64 {
        sum(self.after, prefix) - sum(self.before, prefix)
    }
}

/// Known events, then each counter has moved by exactly them: sign-ins by
/// outcome (a wrong password that locks is a wrong password, and starts one
/// lock; attempts refused while locked are `locked`), recovery requests by
/// the worker's outcome, emails by how their try ended, hashing admissions,
/// HTTP requests by route and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_move_by_exactly_what_happened() {
    let app = TestApp::spawn_with(&[METRICS, ("GATEHOUSE_RECOVERY_EMAILS_PER_HOUR", "2")]).await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let before = settled(&app).await;

    for _ in 0..3 {
        assert_eq!(
            app.log_in_status(AMIR.username, "wrong guess one").await,
            200
        );
    }
    for _ in 0..2 {
        // The right password, refused: the account is locked.
        assert_eq!(app.log_in_status(AMIR.username, GOOD_PASSWORD).await, 200);
    }
    assert_eq!(app.log_in_status("NOBODY99", "wrong guess two").await, 200);
    assert_eq!(app.log_in_status("", "").await, 200);
    assert_eq!(app.log_in_status(JANE.username, GOOD_PASSWORD).await, 303);
    // Jane's second recovery email this hour, then one over the limit of
    // two, then an address nobody has.
    for form in [
        JANE.recovery(),
        JANE.recovery(),
        Recovery::new("nobody@nhs.net", ("1", "1", "1970")),
    ] {
        assert_eq!(app.browser().request_recovery(form).await.status(), 303);
        app.settle().await;
    }
    let after = settled(&app).await;
    let change = Change {
        before: &before,
        after: &after,
    };

    let sign_ins = |outcome: &str| {
        change.of(&format!(
            "gatehouse_sign_ins_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(sign_ins("success"), 1.0);
    assert_eq!(
        sign_ins("wrong_password"),
        4.0,
        "three for Amir, one unknown"
    );
    assert_eq!(sign_ins("locked"), 2.0);
    assert_eq!(sign_ins("invalid"), 1.0);
    for outcome in ["busy", "error", "password_disabled", "account_disabled"] {
        assert_eq!(sign_ins(outcome), 0.0, "{outcome}");
    }
    assert_eq!(change.of("gatehouse_locks_total"), 1.0);

    let recovery = |outcome: &str| {
        change.of(&format!(
            "gatehouse_recovery_requests_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(recovery("matched"), 1.0);
    assert_eq!(recovery("throttled"), 1.0);
    assert_eq!(recovery("no_match"), 1.0);
    assert_eq!(recovery("client_limit"), 0.0);

    // Jane's recovery email and Amir's "your account was locked" notice.
    let emails =
        |status: &str| change.of(&format!("gatehouse_emails_total{{status=\"{status}\"}}"));
    assert_eq!(emails("sent"), 2.0);
    for status in ["retrying", "failed", "expired"] {
        assert_eq!(emails(status), 0.0, "{status}");
    }

    // Every sign-in with both fields filled in was admitted to hashing once
    // (a locked one too: admission comes before the lock is read).
    assert_eq!(
        change.of("gatehouse_hashing_admission_wait_seconds_count"),
        7.0
    );
    assert_eq!(change.of("gatehouse_hashing_refusals_total"), 0.0);

    let login = "gatehouse_http_request_duration_seconds_count{method=\"POST\",route=\"/login\",";
    assert_eq!(change.of(&format!("{login}status=\"303\"}}")), 1.0);
    assert_eq!(
        change.of_all(login),
        8.0,
        "every POST /login, whatever its status"
    );

    // The workers of this process stamp each finished pass.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    for worker in ["outbox", "recovery", "logout_notices", "housekeeping"] {
        let stamp = value(
            &after,
            &format!("gatehouse_worker_last_run_timestamp_seconds{{worker=\"{worker}\"}}"),
        );
        assert!(
            (now - stamp).abs() < 60.0,
            "{worker}: {stamp} against {now}"
        );
    }
    assert_eq!(value(&after, "gatehouse_database_up"), 1.0);
}

/// The outbox's gauges come from the database when scraped: an email the
/// mail server will not take stays queued, and its age follows the clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbox_depth_and_oldest_age_are_read_when_scraped() {
    let app = TestApp::spawn_with(&[METRICS]).await;
    app.import(STAFF).await;
    let before = settled(&app).await;
    assert_eq!(value(&before, "gatehouse_outbox_oldest_seconds"), 0.0);

    app.smtp.set_mode(SinkMode::TempFail);
    app.browser().request_recovery(AMIR.recovery()).await;
    app.settle().await;
    app.wait_for_a_failed_try(AMIR.email).await;
    app.advance(Span::minutes(10));
    let after = scrape(&app).await;
    assert_eq!(value(&after, "gatehouse_outbox_depth"), 1.0);
    assert_eq!(value(&after, "gatehouse_outbox_oldest_seconds"), 600.0);
    assert!(
        value(&after, "gatehouse_emails_total{status=\"retrying\"}") >= 1.0,
        "{after}"
    );
    assert_eq!(
        value(&after, "gatehouse_emails_total{status=\"sent\"}"),
        0.0
    );
    // The pools are described as they are now.
    let open = sum(&after, "gatehouse_database_connections{");
    assert!(open >= 1.0, "{after}");
}

/// `/metrics` is served on the metrics address alone, and nothing else is
/// served there; without `GATEHOUSE_METRICS_LISTEN` there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_only_on_their_own_address() {
    let app = TestApp::spawn_with(&[METRICS]).await;
    assert_eq!(app.visitor.get("/metrics").await.status(), 404);
    let metrics = app.metrics_address.clone().expect("metrics address");
    assert_ne!(metrics, app.address);
    for path in ["/", "/login", "/readyz", "/metrics/x"] {
        let r = reqwest::get(format!("{metrics}{path}"))
            .await
            .expect("answers");
        assert_eq!(r.status(), 404, "{path} on the metrics address");
    }
    let text = scrape(&app).await;
    assert!(text.ends_with("# EOF\n"), "{text}");

    let without = TestApp::spawn().await;
    assert!(without.metrics_address.is_none());
    assert_eq!(without.visitor.get("/metrics").await.status(), 404);
}

/// A reset link's token is in its path; the metrics have the route's
/// template, and any path no route matches is `unmatched`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_token_or_path_becomes_a_label() {
    let app = TestApp::spawn_with(&[METRICS]).await;
    app.import(STAFF).await;
    let link = app.reset_link(&AMIR).await;
    let token = link.rsplit('/').next().expect("a token").to_owned();
    assert!(token.len() > 20, "{link}");
    let r = app.browser().open_link(&link).await;
    assert!(
        r.status().is_redirection() || r.status() == 200,
        "{}",
        r.status()
    );
    assert_eq!(app.visitor.get("/no-such-page-9f8e7d").await.status(), 404);

    let text = scrape(&app).await;
    assert!(
        sum(
            &text,
            "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"/reset/{token}\","
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sum(
            &text,
            "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(!text.contains(&token), "the token is in the metrics");
    assert!(
        !text.contains("no-such-page"),
        "a raw path is in the metrics"
    );
}

/// `/readyz` is 503 while the schema is behind this build's or has a
/// migration that failed part-way, and 200 again once it is right; a
/// schema ahead of this build is the rolling deploy (docs/deploy.md) and
/// stays ready. Liveness is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_follows_the_schema() {
    let app = TestApp::spawn().await;
    let url = app.database_url();
    let newest = "(SELECT MAX(version) FROM _sqlx_migrations)";
    let ready = |status: u16, body: &'static str, what: &'static str| {
        let app = &app;
        async move {
            let r = app.visitor.get("/readyz").await;
            assert_eq!(r.status(), status, "{what}");
            assert_eq!(r.text().await.expect("body"), body, "{what}");
            assert_eq!(app.visitor.get("/healthz").await.status(), 200, "{what}");
        }
    };
    ready(200, "ready\n", "as started").await;

    execute_sql(
        &url,
        &format!("UPDATE _sqlx_migrations SET version = -version WHERE version = {newest}"),
    )
    .await;
    ready(503, "database schema mismatch\n", "behind").await;
    execute_sql(
        &url,
        "UPDATE _sqlx_migrations SET version = -version WHERE version < 0",
    )
    .await;
    ready(200, "ready\n", "back").await;

    execute_sql(
        &url,
        &format!("UPDATE _sqlx_migrations SET success = (1 = 0) WHERE version = {newest}"),
    )
    .await;
    ready(503, "database schema mismatch\n", "dirty").await;
    execute_sql(&url, "UPDATE _sqlx_migrations SET success = (1 = 1)").await;
    ready(200, "ready\n", "repaired").await;

    execute_sql(
        &url,
        &format!("UPDATE _sqlx_migrations SET version = version + 1000 WHERE version = {newest}"),
    )
    .await;
    ready(200, "ready\n", "ahead: a newer release migrated it").await;
}

/// PostgreSQL through a proxy the test cuts: `/readyz` says 503 within a
/// few seconds (well inside `GATEHOUSE_DATABASE_TIMEOUT`), whether the
/// connections are refused or silently dropped, and 200 once the database
/// is back. Runs on PostgreSQL whatever the suite's backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_answers_503_while_the_database_is_cut_off_and_200_once_back() {
    let db = TestDatabase::create()
        .await
        .expect("PostgreSQL must be running: see GATEHOUSE_TEST_POSTGRES_URL");
    let store =
        gatehouse_store::SqlStore::connect(&db.url, gatehouse_store::PoolSettings::default())
            .await
            .expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;
    let url = url::Url::parse(&db.url).expect("a URL");
    let server = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(5432)
    );
    let proxy = TcpProxy::start(&server).await.expect("proxy");
    let mut proxied = url.clone();
    proxied.set_host(Some("127.0.0.1")).expect("host");
    proxied.set_port(Some(proxy.port())).expect("port");
    let app = TestApp::spawn_full(
        &[
            ("GATEHOUSE_DATABASE_URL", proxied.as_str()),
            ("GATEHOUSE_DATABASE_TIMEOUT", "10s"),
        ],
        false,
    )
    .await;
    let probe = app.browser().with_timeout(Duration::from_secs(8));
    let readyz = || async {
        let started = std::time::Instant::now();
        let r = probe.get("/readyz").await;
        (r.status().as_u16(), started.elapsed())
    };
    let back = || async {
        for _ in 0..100 {
            if readyz().await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("/readyz did not come back once the database did");
    };
    assert_eq!(readyz().await.0, 200);

    for (cut, blackhole) in [("connections reset", false), ("packets dropped", true)] {
        if blackhole {
            proxy.blackhole();
        } else {
            proxy.reset();
        }
        let (status, took) = readyz().await;
        assert_eq!(status, 503, "{cut}");
        assert!(
            took < Duration::from_secs(4),
            "{cut}: answered after {took:?}"
        );
        proxy.restore();
        back().await;
    }
}

/// The Debian package's Prometheus scrapes a running service every second;
/// after one sign-in its query API shows the success counter at 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_scrapes_the_sign_in_counter() {
    const PROMETHEUS: &str = "/usr/bin/prometheus";
    assert!(
        std::path::Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: apt-get install prometheus (.ci/run installs it)"
    );
    let app = app_with_password(&[METRICS]).await;
    let target = app
        .metrics_address
        .as_deref()
        .and_then(|a| a.strip_prefix("http://"))
        .expect("metrics address")
        .to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: gatehouse\n    static_configs:\n      - targets: ['{target}']\n",
            rules = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.yml"),
        ),
    )
    .expect("prometheus.yml");
    // A free port can be taken by another test before Prometheus binds
    // it: then it exits at once saying so, and is started on another.
    let mut started = None;
    for _ in 0..5 {
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let mut prometheus = Server(
            std::process::Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .expect("prometheus starts"),
        );
        // Until it says it is ready, or has stopped.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (exited, log) = loop {
            let exited = prometheus.0.try_wait().expect("prometheus runs").is_some();
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            if exited
                || log.contains("ready to receive web requests")
                || tokio::time::Instant::now() > deadline
            {
                break (exited, log);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if exited && log.contains("address already in use") {
            continue;
        }
        assert!(!exited, "Prometheus stopped:\n{log}");
        started = Some((prometheus, port));
        break;
    }
    let (_prometheus, port) = started.expect("a port Prometheus could listen on");
    assert_eq!(app.log_in_status(AMIR.username, GOOD_PASSWORD).await, 303);

    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        "gatehouse_sign_ins_total%7Boutcome%3D%22success%22%7D"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&query).await {
            last = r.text().await.unwrap_or_default();
            if let Ok(answer) = serde_json::from_str::<serde_json::Value>(&last) {
                let shown = answer["data"]["result"][0]["value"][1]
                    .as_str()
                    .map(str::to_owned);
                if shown.as_deref() == Some("1") {
                    assert_eq!(answer["data"]["result"][0]["metric"]["job"], "gatehouse");
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    panic!("Prometheus never showed one sign-in; last answer: {last}\nits log:\n{log}");
}

/// `gatehouse worker` serves the metrics too (it is the process that sends
/// the emails), and a metrics address that cannot be had stops start-up
/// with one line naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_command_serves_metrics_and_a_taken_address_stops_start_up() {
    gatehouse_core::use_ring_for_tls();
    let dir = tempfile::tempdir().expect("dir");
    let (code, _, err) = run_command({
        let mut c = gatehouse_in(dir.path(), &[]);
        c.arg("migrate");
        c
    });
    assert_eq!(code, 0, "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    for command in ["serve", "worker"] {
        let mut c = gatehouse_in(
            dir.path(),
            &[
                ("GATEHOUSE_METRICS_LISTEN", address.as_str()),
                ("GATEHOUSE_LISTEN", &format!("127.0.0.1:{}", free_port())),
            ],
        );
        c.arg(command);
        let (code, _, err) = run_command(c);
        assert_eq!(code, 2, "{command}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{command}: {err}");
        assert!(
            lines[0].starts_with(&format!(
                "error: GATEHOUSE_METRICS_LISTEN: cannot listen on {address}"
            )),
            "{command}: {err}"
        );
    }
    drop(taken);

    let port = free_port();
    let mut c = gatehouse_in(
        dir.path(),
        &[("GATEHOUSE_METRICS_LISTEN", &format!("127.0.0.1:{port}"))],
    );
    c.arg("worker")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _worker = Server(c.spawn().expect("the worker starts"));
    let url = format!("http://127.0.0.1:{port}/metrics");
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(&url).await {
            let text = r.text().await.expect("body");
            if text.contains("gatehouse_worker_last_run_timestamp_seconds{worker=\"outbox\"}") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker's metrics never showed its outbox worker's pass");
}

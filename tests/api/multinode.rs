//! Several nodes: three real `gatehouse serve` processes on one PostgreSQL
//! database, behind a real nginx, with a real SMTP server. Every guarantee
//! of the core must hold across them (docs/design.md: "no in-memory state decides
//! correctness").
//!
//! Needs PostgreSQL (`GATEHOUSE_TEST_POSTGRES_URL`) and nginx on the PATH or
//! at /usr/sbin/nginx; `.ci/run` provides both.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::{PoolSettings, SqlStore};
use gatehouse_testkit::{SmtpSink, TestDatabase};

use crate::helpers::{
    BIN, Browser, Db, GOOD_PASSWORD, Recovery, ResponseExt as _, Server, count, csrf_token,
    error_messages, free_port, reset_form, start_nginx, tally_refusals, wait_healthy,
};

/// The password the cluster's people are given.
const PASSWORD: &str = GOOD_PASSWORD;

/// Debian's libfaketime (package faketime), thread-safe build.
const FAKETIME_LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

struct Node {
    port: u16,
    child: Option<Child>,
}

/// One cluster at a time: three nodes each already fill the two cores, and
/// several clusters at once would exhaust PostgreSQL's connections.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    nodes: Vec<Node>,
    _nginx: Server,
    nginx_port: u16,
    smtp: SmtpSink,
    store: SqlStore,
    db: TestDatabase,
    dir: tempfile::TempDir,
}

// On the node, not only the cluster, so that nodes started before a failed
// step (nginx missing, say) do not outlive the test.
impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn node_env(c: &mut Command, db: &str, smtp: &str, port: u16, public: u16) {
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATABASE_URL", db)
        .env("GATEHOUSE_MAIL_URL", smtp)
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_PUBLIC_URL", format!("http://127.0.0.1:{public}"))
        .env("GATEHOUSE_TRUST_X_FORWARDED_FOR", "true")
        // Short enough that a killed node's work is taken over within the
        // test, and long enough past the mail timeout that a node slowed by
        // a loaded machine still records a send before its lease runs out
        // (a lease that runs out first lets another node send it again).
        .env("GATEHOUSE_WORKER_LEASE", "15s")
        .env("GATEHOUSE_MAIL_TIMEOUT", "3s")
        // A flood of sign-ins waits for a hasher rather than being told "busy".
        .env("GATEHOUSE_HASH_WAIT", "60s")
        // Above the connection wait plus that hash wait, as it must be.
        .env("GATEHOUSE_REQUEST_TIMEOUT", "120s")
        .env("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "10");
}

impl Cluster {
    /// A database with `people` staff (usernames U00001…, emails p1@nhs.net…,
    /// all born 1 January 1980), three nodes and nginx in front.
    async fn start(people: usize) -> Self {
        Self::start_with_clocks(people, [None; 3]).await
    }

    /// As [`Cluster::start`], with node `i`'s own clock moved by
    /// `clocks[i]` (libfaketime's offsets, `"+5m"`): a machine whose time
    /// synchronisation has failed.
    async fn start_with_clocks(people: usize, clocks: [Option<&str>; 3]) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().expect("dir");
        let db = TestDatabase::create()
            .await
            .expect("PostgreSQL must be running");
        let smtp = SmtpSink::start().await.expect("smtp");
        let nginx_port = free_port();

        let run = |args: &[&str]| {
            let mut c = Command::new(BIN);
            node_env(&mut c, &db.url, &smtp.url(), 0, nginx_port);
            let out = c.args(args).current_dir(dir.path()).output().expect("runs");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["migrate"]);
        let mut csv = String::from("employer,username,first_name,last_name,date_of_birth,email\n");
        for i in 1..=people {
            csv.push_str(&format!(
                "999 Demo Trust,U{i:05},Person,Number{i},1980-01-01,p{i}@nhs.net\n"
            ));
        }
        let file = dir.path().join("staff.csv");
        std::fs::write(&file, csv).expect("write");
        run(&["import", file.to_str().expect("utf8")]);

        let mut nodes = Vec::new();
        for (i, clock) in clocks.iter().enumerate() {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join(format!("node{i}.log"))).expect("log");
            let mut c = Command::new(BIN);
            node_env(&mut c, &db.url, &smtp.url(), port, nginx_port);
            if let Some(offset) = clock {
                // The library itself rather than the faketime wrapper, which
                // would fork: the node must stay the child the test kills.
                c.env("LD_PRELOAD", FAKETIME_LIBRARY)
                    .env("FAKETIME", *offset)
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            }
            c.arg("serve")
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(log);
            nodes.push(Node {
                port,
                child: Some(c.spawn().expect("node starts")),
            });
        }
        for node in &nodes {
            wait_healthy(&format!("http://127.0.0.1:{}", node.port)).await;
        }

        let upstreams: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{} max_fails=1 fail_timeout=10s", n.port))
            .collect();
        let nginx = start_nginx(&dir.path().join("nginx"), nginx_port, &upstreams, "", 2).await;

        let store = SqlStore::connect(&db.url, PoolSettings::default())
            .await
            .expect("connect");
        Cluster {
            _turn: turn,
            nodes,
            _nginx: nginx,
            nginx_port,
            smtp,
            store,
            db,
            dir,
        }
    }

    /// A new browser on the load balancer.
    fn browser(&self) -> Browser {
        Browser::new(&self.base(), &self.base())
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx_port)
    }

    fn node(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].port)
    }

    async fn count(&self, sql: &str) -> i64 {
        count(&self.db.url, sql).await
    }

    /// Waits until every recovery request is processed and every email has left.
    async fn drain(&self) {
        for _ in 0..1200 {
            let d = Db(self.store.clone()).queue_depths().await.expect("depths");
            if d.recovery_pending == 0 && d.emails_queued == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "work was left undone: {:?}",
            Db(self.store.clone()).queue_depths().await
        );
    }

    /// Runs `gatehouse` with `args` on the cluster's database, as the
    /// operator would on any machine; its standard output.
    fn cli(&self, args: &[&str]) -> String {
        let mut c = Command::new(BIN);
        node_env(&mut c, &self.db.url, &self.smtp.url(), 0, self.nginx_port);
        let out = c
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn logs(&self) -> String {
        (0..3)
            .map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("node{i}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// GETs a form page through `page_base` and POSTs it through `post_base`
/// (possibly another node), in the same browser.
async fn submit(
    c: &Browser,
    page_base: &str,
    post_base: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = csrf_token(&c.on(page_base).page(path).await).unwrap_or_default();
    c.on(post_base).post_form(path, &token, fields).await
}

async fn recover(c: &Browser, base: &str, n: usize) -> reqwest::Response {
    let email = format!("p{n}@nhs.net");
    c.on(base)
        .request_recovery(Recovery::new(&email, ("1", "1", "1980")))
        .await
}

fn link_in(mail: &gatehouse_testkit::smtp::ReceivedMail) -> String {
    let body = mail.decoded_body();
    let at = body.find("/reset/").expect("a link");
    body[at..at + 7 + 43].to_owned()
}

fn recovery_emails_to(cluster: &Cluster, n: usize) -> Vec<gatehouse_testkit::smtp::ReceivedMail> {
    let to = format!("p{n}@nhs.net");
    cluster
        .smtp
        .messages()
        .into_iter()
        .filter(|m| {
            m.to == [to.clone()]
                && m.header("Subject")
                    .is_some_and(|s| s.contains("password reset"))
        })
        .collect()
}

/// Waits for the `k`-th recovery email (from 1) to person `n`.
async fn email_for(cluster: &Cluster, n: usize, k: usize) -> gatehouse_testkit::smtp::ReceivedMail {
    for _ in 0..400 {
        if let Some(m) = recovery_emails_to(cluster, n).get(k - 1) {
            return m.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no recovery email {k} for p{n}");
}

async fn set_password(cluster: &Cluster, n: usize) {
    let k = recovery_emails_to(cluster, n).len() + 1;
    recover(&cluster.browser(), &cluster.base(), n).await;
    let link = link_in(&email_for(cluster, n, k).await);
    let c = cluster.browser();
    c.http()
        .get(format!("{}{link}", cluster.base()))
        .send()
        .await
        .expect("GET");
    let r = c
        .on(&cluster.base())
        .submit_reset(&format!("U{n:05}"), PASSWORD)
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
}

/// Security case D49 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_simultaneous_wrong_passwords_across_nodes_check_exactly_three() {
    let cluster = Arc::new(Cluster::start(5).await);
    set_password(&cluster, 1).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(300));
    let mut tasks = Vec::new();
    for i in 0..300 {
        let cluster = cluster.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let c = cluster.browser();
            let base = cluster.base();
            let token = c.on(&base).form_token("/login").await;
            barrier.wait().await;
            let r = c
                .on(&base)
                .post_form(
                    "/login",
                    &token,
                    &[
                        ("username", "U00001"),
                        ("password", &format!("wrong guess {i}")),
                    ],
                )
                .await;
            (r.status().as_u16(), error_messages(&r.body().await))
        }));
    }
    let (incorrect, locked) = tally_refusals(tasks).await;
    let checked = cluster.count("SELECT COUNT(*) FROM audit_events WHERE event = 'sign_in.failed' AND username = 'U00001'").await;
    assert_eq!(
        checked, 3,
        "exactly the threshold of passwords were checked, across three nodes"
    );
    assert_eq!((incorrect, locked), (2, 298));
    // Locked everywhere: the right password is refused by every node.
    for i in 0..3 {
        let r = submit(
            &cluster.browser(),
            &cluster.node(i),
            &cluster.node(i),
            "/login",
            &[("username", "U00001"), ("password", PASSWORD)],
        )
        .await;
        let m = error_messages(&r.body().await);
        assert!(
            m[0].starts_with("Your account is locked until"),
            "node {i}: {m:?}"
        );
    }
}

/// Security case C36 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_simultaneous_redemptions_of_one_link_across_nodes_let_one_win() {
    let cluster = Arc::new(Cluster::start(5).await);
    recover(&cluster.browser(), &cluster.base(), 2).await;
    let link = link_in(&email_for(&cluster, 2, 1).await);
    let mut ready = Vec::new();
    for i in 0..30 {
        let c = cluster.browser();
        // Open the link on one node, load the form on another.
        c.http()
            .get(format!("{}{link}", cluster.node(i % 3)))
            .send()
            .await
            .expect("GET");
        let page = c.on(&cluster.node((i + 1) % 3)).page("/reset").await;
        ready.push((
            c,
            csrf_token(&page).expect("the form, on another node"),
            format!("{PASSWORD} {i}"),
        ));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let mut tasks = Vec::new();
    for (c, token, password) in ready {
        let base = cluster.base();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = c
                .on(&base)
                .post_form(
                    "/reset",
                    &token,
                    &[
                        ("username", "U00002"),
                        ("password", password.as_str()),
                        ("confirm-password", password.as_str()),
                    ],
                )
                .await;
            (r.status().as_u16(), password)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, password) = t.await.expect("task");
        if status == 303 {
            winners.push(password);
        } else {
            assert_eq!(status, 200);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption wins");
    let r = submit(
        &cluster.browser(),
        &cluster.base(),
        &cluster.base(),
        "/login",
        &[("username", "U00002"), ("password", &winners[0])],
    )
    .await;
    assert_eq!(r.status(), 303);
}

/// Security case H99 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_made_on_one_node_works_on_all_and_a_reset_ends_it_everywhere() {
    let cluster = Cluster::start(5).await;
    set_password(&cluster, 3).await;
    let c = cluster.browser();
    // The sign-in form from one node, posted to another: its token comes
    // from the browser's form cookie, which every node can check.
    let r = submit(
        &c,
        &cluster.node(0),
        &cluster.node(1),
        "/login",
        &[("username", "U00003"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 303);
    for i in 0..3 {
        assert_eq!(
            c.http()
                .get(format!("{}/account", cluster.node(i)))
                .send()
                .await
                .expect("GET")
                .status(),
            200,
            "node {i}"
        );
    }
    // A reset through other nodes ends it on every node.
    recover(&cluster.browser(), &cluster.node(1), 3).await;
    let link = link_in(&email_for(&cluster, 3, 2).await);
    let other = cluster.browser();
    other
        .http()
        .get(format!("{}{link}", cluster.node(2)))
        .send()
        .await
        .expect("GET");
    let r = submit(
        &other,
        &cluster.node(1),
        &cluster.node(2),
        "/reset",
        &reset_form("U00003", "teapot sunrise harbour", "teapot sunrise harbour"),
    )
    .await;
    assert_eq!(r.status(), 303);
    for i in 0..3 {
        let r = c
            .http()
            .get(format!("{}/account", cluster.node(i)))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 303, "node {i} still knows the session");
    }
}

/// Sends recovery requests for people `range` through nginx, `parallel` at a
/// time; returns the people whose request was confirmed.
async fn flood(
    cluster: &Arc<Cluster>,
    range: std::ops::Range<usize>,
    parallel: usize,
    on_half: Option<tokio::sync::oneshot::Sender<()>>,
) -> BTreeSet<usize> {
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let half = range.start + range.len() / 2;
    let mut on_half = on_half;
    let mut tasks = Vec::new();
    for n in range {
        let permit = permits.clone().acquire_owned().await.expect("permit");
        if n == half
            && let Some(tx) = on_half.take()
        {
            let _ = tx.send(());
        }
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let c = cluster.browser();
            let base = cluster.base();
            let Ok(page) = c.http().get(format!("{base}/recover")).send().await else {
                return None;
            };
            let Ok(page) = page.text().await else {
                return None;
            };
            let token = csrf_token(&page)?;
            let email = format!("p{n}@nhs.net");
            let r = c
                .http()
                .post(format!("{base}/recover"))
                .form(&[
                    ("email", email.as_str()),
                    ("dob-day", "1"),
                    ("dob-month", "1"),
                    ("dob-year", "1980"),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .ok()?;
            let ok = r.status() == 303
                && r.headers()
                    .get("location")
                    .is_some_and(|l| l == "/recover/confirmation");
            if !ok {
                eprintln!("p{n}: {}", r.status());
            }
            ok.then_some(n)
        }));
    }
    let mut confirmed = BTreeSet::new();
    for t in tasks {
        if let Some(n) = t.await.expect("task") {
            confirmed.insert(n);
        }
    }
    confirmed
}

/// Security cases F77, H92, H96 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_recovery_requests_across_nodes_each_get_exactly_one_email_even_when_a_node_dies()
 {
    let cluster = Cluster::start(2000).await;
    let cluster = Arc::new(cluster);

    // Normal operation: 1,000 requests over three nodes.
    let confirmed = flood(&cluster, 1..1001, 32, None).await;
    assert_eq!(confirmed.len(), 1000, "every request was confirmed");
    cluster.drain().await;
    let mail = cluster.smtp.messages();
    let mut per_person: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mail {
        *per_person.entry(m.to.join(",")).or_default() += 1;
    }
    assert_eq!(per_person.len(), 1000, "none lost");
    assert!(per_person.values().all(|n| *n == 1), "none doubled");
    let first_phase = mail.len();

    // One node is killed half-way through the next 1,000.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let killer = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let _ = rx.await;
            // SIGKILL: no graceful shutdown, work in flight is abandoned.
            let pid = cluster.nodes[1]
                .child
                .as_ref()
                .map(Child::id)
                .expect("running");
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        })
    };
    let confirmed = flood(&cluster, 1001..2001, 32, Some(tx)).await;
    killer.await.expect("killer");
    cluster.drain().await;
    let mail: Vec<_> = cluster
        .smtp
        .messages()
        .into_iter()
        .skip(first_phase)
        .collect();
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mail {
        let to = m.to.join(",");
        ids.entry(to.clone())
            .or_default()
            .insert(m.header("Message-ID").unwrap_or_default());
        *copies.entry(to).or_default() += 1;
    }
    for n in &confirmed {
        assert!(
            ids.contains_key(&format!("p{n}@nhs.net")),
            "confirmed request for p{n} was lost"
        );
    }
    assert!(
        ids.values().all(|m| m.len() == 1),
        "nobody got two different emails"
    );
    let resent = copies.values().filter(|n| **n > 1).count();
    let unconfirmed_delivered = ids.len() - confirmed.len();
    println!(
        "multi-node recovery: phase 2 confirmed {} of 1000 (the rest were in flight on the killed node), \
         {} emails delivered, {unconfirmed_delivered} to people whose confirmation was lost with the node, \
         {resent} sent twice with the same Message-ID by the node that took over",
        confirmed.len(),
        ids.len()
    );
    assert!(
        confirmed.len() >= 900,
        "nginx moved the traffic to the surviving nodes"
    );
    let stuck = cluster
        .count("SELECT COUNT(*) FROM recovery_requests WHERE status = 'pending'")
        .await;
    assert_eq!(stuck, 0);
    let logs = cluster.logs();
    assert!(
        logs.match_indices("/reset/")
            .all(|(at, _)| logs[at + 7..].starts_with('{')),
        "no reset token in the nodes' logs"
    );
}

/// Seconds between a stored Unix time and the database's own clock, now.
async fn seconds_from_database_now(cluster: &Cluster, stored: &str) -> i64 {
    cluster
        .count(&format!(
            "SELECT CAST({stored} - EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)"
        ))
        .await
}

/// Security case H98 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_clock_is_five_minutes_out_decides_on_the_databases_time() {
    assert!(
        std::path::Path::new(FAKETIME_LIBRARY).exists(),
        "libfaketime must be installed (apt-get install faketime)"
    );
    // Node 1 is five minutes fast, node 2 five minutes slow. Left to their
    // own clocks, node 1 would end a lock or a link five minutes early and
    // node 2 would let both run five minutes late.
    let cluster = Cluster::start_with_clocks(5, [None, Some("+5m"), Some("-5m")]).await;

    // A lock made on the fast node ends twelve hours after the database's now.
    set_password(&cluster, 1).await;
    for _ in 0..3 {
        submit(
            &cluster.browser(),
            &cluster.node(1),
            &cluster.node(1),
            "/login",
            &[("username", "U00001"), ("password", "wrong guess")],
        )
        .await;
    }
    let ends_in = seconds_from_database_now(
        &cluster,
        "(SELECT locked_until FROM sign_in_attempts WHERE username_key = 'U00001')",
    )
    .await;
    assert!(
        (12 * 3600 - 10..=12 * 3600).contains(&ends_in),
        "the lock ends {ends_in} s from the database's now, not five minutes off"
    );

    // A request made on the slow node is stamped with the database's time,
    // and so is the link its email carries.
    let r = recover(&cluster.browser(), &cluster.node(2), 2).await;
    assert_eq!(r.status(), 303);
    let link = link_in(&email_for(&cluster, 2, 1).await);
    let made =
        seconds_from_database_now(&cluster, "(SELECT MAX(created_at) FROM recovery_requests)")
            .await;
    assert!(
        (-10..=0).contains(&made),
        "the request was stamped {made} s from the database's now"
    );
    let link_ends =
        seconds_from_database_now(&cluster, "(SELECT MAX(expires_at) FROM reset_links)").await;
    assert!(
        (4 * 3600 - 10..=4 * 3600).contains(&link_ends),
        "the link ends {link_ends} s from the database's now"
    );
    // Every node, fast or slow, opens the fresh link.
    for i in 0..3 {
        let c = cluster.browser();
        let opened = c
            .http()
            .get(format!("{}{link}", cluster.node(i)))
            .send()
            .await
            .expect("GET");
        assert_eq!(opened.status(), 303, "node {i} takes the link");
        let page = c.on(&cluster.node(i)).page("/reset").await;
        assert!(
            page.contains("name=\"confirm-password\""),
            "node {i} shows the reset form: {page}"
        );
    }
    // And the operator is told which machine's time synchronisation failed.
    let node_logs = cluster.logs();
    assert!(
        node_logs.contains("clock is away from the database"),
        "a skewed node says so at start: {node_logs}"
    );
}

/// The kids a node's JWKS publishes.
async fn published_kids(base: &str) -> Vec<String> {
    let jwks: serde_json::Value = reqwest::get(format!("{base}/oauth2/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// Sends `n` requests at once, the `i`-th to node `i % 3`, each built by
/// `request`; their statuses.
async fn at_once<F, Fut>(cluster: &Cluster, n: usize, request: F) -> Vec<u16>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = u16> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let barrier = barrier.clone();
        let sent = request(cluster.node(i % 3));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            sent.await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses
}

/// Applications across nodes: a client registered from the command line
/// works at once on every node; thirty redemptions of one code at once,
/// spread over the nodes, give tokens once; thirty uses of one refresh
/// token give one rotation and revoke the family; a signing key rotated
/// from any machine is served by every node's JWKS within seconds, and
/// tokens any node signs verify against any node's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn applications_across_nodes_redeem_once_rotate_once_and_share_their_keys() {
    let cluster = Arc::new(Cluster::start(3).await);
    set_password(&cluster, 1).await;
    let added: serde_json::Value = serde_json::from_str(&cluster.cli(&[
        "admin",
        "--json",
        "client",
        "add",
        "Payslips",
        "--redirect-uri",
        crate::oidc::REDIRECT,
    ]))
    .expect("json");
    let base = cluster.base();
    let rp = crate::oidc::Rp::at(
        &base,
        &base,
        added["client_id"].as_str().expect("id"),
        added["client_secret"].as_str(),
    );
    let who = Some(("U00001", PASSWORD));

    // One code, thirty redemptions over three nodes.
    let callback = rp.sign_in(&cluster.browser(), &[], who).await;
    let code = callback.get("code").to_owned();
    let statuses = at_once(&cluster, 30, |node| {
        let rp = crate::oidc::Rp {
            base: node,
            ..rp.clone()
        };
        let code = code.clone();
        async move { rp.redeem(&code, &[]).await.status }
    })
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );

    // One refresh token, thirty uses over three nodes.
    let callback = rp.sign_in(&cluster.browser(), &[], who).await;
    let tokens = rp.redeem(callback.get("code"), &[]).await;
    let refresh = tokens.field("refresh_token");
    let statuses = at_once(&cluster, 30, |node| {
        let rp = crate::oidc::Rp {
            base: node,
            ..rp.clone()
        };
        let refresh = refresh.clone();
        async move { rp.refresh(&refresh).await.status }
    })
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    let revoked = cluster
        .count("SELECT COUNT(*) FROM oidc_grants WHERE revoked_at IS NOT NULL")
        .await;
    assert!(
        revoked >= 2,
        "the reused code's and the family's grants: {revoked}"
    );

    // A key rotated from the command line reaches every node's JWKS.
    let rotated: serde_json::Value = serde_json::from_str(&cluster.cli(&[
        "admin",
        "--json",
        "rotate-signing-key",
        "--immediately",
    ]))
    .expect("json");
    let new_kids: Vec<String> = rotated["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    for i in 0..3 {
        let mut served = false;
        for _ in 0..100 {
            let kids = published_kids(&cluster.node(i)).await;
            if new_kids.iter().all(|k| kids.contains(k)) {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(served, "node {i} serves the new keys");
    }
    // Signed on one node, checked against another's keys.
    for i in 0..3 {
        let on_node = crate::oidc::Rp {
            base: cluster.node(i),
            ..rp.clone()
        };
        let callback = on_node
            .sign_in(&cluster.browser().on(&cluster.node(i)), &[], who)
            .await;
        let token = on_node
            .redeem(callback.get("code"), &[])
            .await
            .field("id_token");
        let kid = crate::oidc::header_of(&token)["kid"]
            .as_str()
            .expect("kid")
            .to_owned();
        assert!(new_kids.contains(&kid), "node {i} signs with the new key");
        crate::oidc::verify_with_jwks(&cluster.node((i + 1) % 3), &token).await;
    }
}

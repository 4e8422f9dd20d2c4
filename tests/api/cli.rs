//! The `gatehouse` binary itself: configuration errors, import, admin, and
//! a process killed with mail queued.

use std::time::Duration;

use gatehouse_testkit::SmtpSink;

use crate::helpers::*;
use crate::helpers::{gatehouse_in as gatehouse, run_command as run, serve_in as start_server};

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    for (name, value) in [
        ("GATEHOUSE_LOCKOUT_THRESHOLD", "abc"),
        ("GATEHOUSE_RESET_LINK_TTL", "four hours"),
        ("GATEHOUSE_PUBLIC_URL", "not a url"),
        ("GATEHOUSE_MAIL_URL", "pigeon://loft"),
    ] {
        let mut c = gatehouse(dir.path(), &[(name, value)]);
        c.arg("serve");
        let (code, stdout, stderr) = run(c);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stdout.is_empty());
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].starts_with(&format!("error: {name}")), "{stderr}");
    }
    // The port in use is named too.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let mut c = gatehouse(dir.path(), &[("GATEHOUSE_LISTEN", &addr)]);
    c.arg("serve");
    let (code, _, stderr) = run(c);
    assert_eq!(code, 2);
    assert!(
        stderr
            .trim()
            .starts_with("error: GATEHOUSE_LISTEN: cannot listen on"),
        "{stderr}"
    );
}

#[test]
fn import_reports_every_bad_row_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "employer,username,first_name,last_name,date_of_birth,email\n\
         999,,Jane,Smith,1985-03-14,jane@nhs.net\n\
         999,,,Smith,1985-02-30,jane@gmail.com\n\
         999,,Bo,Li,2999-01-01,bo@nhs.net\n",
    )
    .expect("write");
    let mut c = gatehouse(dir.path(), &[]);
    c.args(["import", bad.to_str().expect("utf8")]);
    let (code, stdout, stderr) = run(c);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("4 problems found; nothing was imported."),
        "{stderr}"
    );
    for line in [
        "line 3: first_name is empty",
        "line 3: date_of_birth \"1985-02-30\"",
        "line 3: email \"jane@gmail.com\" is not in an allowed domain",
        "line 4: date_of_birth \"2999-01-01\" is not in the past",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in {stderr}");
    }

    // A file that cannot be read is a failure of the work (status 1, as a
    // bad row is), not of a setting (status 2), and says why in one line.
    let mut c = gatehouse(dir.path(), &[]);
    c.args(["import", "missing.csv"]);
    let (code, stdout, stderr) = run(c);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: missing.csv: cannot open it: No such file"),
        "{stderr}"
    );

    let good = dir.path().join("staff.csv");
    std::fs::write(&good, STAFF).expect("write");
    let mut c = gatehouse(dir.path(), &[]);
    c.args(["import", "--dry-run", good.to_str().expect("utf8")]);
    let (code, stdout, _) = run(c);
    assert_eq!(code, 0);
    assert!(stdout.contains("3 people would be added"), "{stdout}");
    assert!(stdout.contains("Dry run: nothing was changed."));
    // A dry run wrote nothing, and the bad file before it wrote nothing.
    let mut c = gatehouse(dir.path(), &[]);
    c.args(["admin", "status", "999JSMITH01"]);
    assert_eq!(run(c).0, 1);

    let mut c = gatehouse(dir.path(), &[]);
    c.args(["import", good.to_str().expect("utf8")]);
    let (code, stdout, stderr) = run(c);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "3 people were added, 0 updated, 0 already up to date; 2 employers were added"
        ),
        "{stdout}"
    );
    let mut c = gatehouse(dir.path(), &[]);
    c.args(["import", good.to_str().expect("utf8")]);
    let (_, stdout, _) = run(c);
    assert!(
        stdout.contains("0 people were added, 0 updated, 3 already up to date"),
        "{stdout}"
    );
}

/// Security cases F76, G84 (docs/security.md).
#[test]
fn admin_shows_status_changes_emails_and_lists_the_audit_log() {
    let dir = tempfile::tempdir().expect("dir");
    let staff = dir.path().join("staff.csv");
    std::fs::write(&staff, STAFF).expect("write");
    let mut c = gatehouse(dir.path(), &[]);
    c.args(["import", staff.to_str().expect("utf8")]);
    assert_eq!(run(c).0, 0);

    let mut c = gatehouse(dir.path(), &[]);
    c.args(["admin", "status", "999akhan01"]);
    let (code, stdout, _) = run(c);
    assert_eq!(code, 0);
    assert!(stdout.contains("999AKHAN01"));
    assert!(stdout.contains("amir.khan@nhs.net"));
    assert!(stdout.contains("never set (first-time access pending)"));
    assert!(stdout.contains("not locked"));

    let mut c = gatehouse(dir.path(), &[]);
    c.args([
        "admin",
        "set-email",
        "999AKHAN01",
        "amir@gmail.com",
        "--reason",
        "moved",
    ]);
    let (code, _, stderr) = run(c);
    assert_eq!(code, 1);
    assert!(stderr.contains("allowed domain"), "{stderr}");
    let mut c = gatehouse(dir.path(), &[]);
    c.args([
        "admin",
        "set-email",
        "999AKHAN01",
        "amir.k@nhs.net",
        "--reason",
        "nhs.net address changed",
    ]);
    let (code, stdout, stderr) = run(c);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("amir.k@nhs.net"));

    let mut c = gatehouse(dir.path(), &[]);
    c.args(["admin", "audit", "--username", "999AKHAN01"]);
    let (code, stdout, _) = run(c);
    assert_eq!(code, 0);
    assert!(stdout.contains("account.email_changed"), "{stdout}");
    assert!(stdout.contains("nhs.net address changed"));

    let mut c = gatehouse(dir.path(), &[]);
    c.args(["admin", "mail", "amir.k@nhs.net"]);
    let (code, stdout, _) = run(c);
    assert_eq!(code, 0);
    assert!(stdout.contains("email_changed_new email"), "{stdout}");
}

/// Security cases C39, E59, H92, H99 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_killed_with_mail_queued_delivers_it_after_restart_and_logs_no_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let staff = dir.path().join("staff.csv");
    std::fs::write(&staff, STAFF).expect("write");
    let mut c = gatehouse(dir.path(), &[]);
    c.args(["import", staff.to_str().expect("utf8")]);
    assert_eq!(run(c).0, 0);

    let smtp = SmtpSink::start().await.expect("sink");
    smtp.stop();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = start_server(dir.path(), port, &smtp.url()).await;

    let browser = Browser::new(&base, &base);
    let token = browser.form_token("/recover").await;
    let r = browser
        .post_form("/recover", &token, &AMIR.recovery_fields())
        .await;
    assert_eq!(r.status(), 303);

    // Wait until the email is queued and its first try has failed.
    let store = Db::open(&format!("sqlite://{}/gatehouse.db", dir.path().display())).await;
    let mut tried = false;
    for _ in 0..300 {
        if store
            .emails_to("amir.khan@nhs.net", 1)
            .await
            .expect("list")
            .first()
            .is_some_and(|e| e.attempts >= 1 && e.last_error.is_some())
        {
            tried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tried, "the email was queued and tried");
    drop(server); // SIGKILL: no chance to clean up

    smtp.resume().await.expect("resume");
    let _server = start_server(dir.path(), port, &smtp.url()).await;
    let mail = smtp.wait_for(1, Duration::from_secs(40)).await;
    assert_eq!(mail.len(), 1, "delivered after the restart");
    let link = {
        let body = mail[0].decoded_body();
        let at = body.find("/reset/").expect("link");
        body[at + 7..at + 7 + 43].to_owned()
    };

    // Finish the reset, so a password and a token have both been through the process.
    let c = Browser::new(&base, &base);
    let opened = c
        .http()
        .get(format!("{base}/reset/{link}"))
        .send()
        .await
        .expect("GET");
    let held = opened
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let token = c.form_token("/reset").await;
    let done = c
        .post_form(
            "/reset",
            &token,
            &reset_form("999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD),
        )
        .await;
    assert_eq!(done.status(), 303);
    drop(_server);

    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(
        log.contains("route=/reset/{token}"),
        "requests are logged by route"
    );
    for secret in [link.as_str(), GOOD_PASSWORD, token.as_str()] {
        if let Some(at) = log.find(secret) {
            let from = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = log[at..].find('\n').map_or(log.len(), |i| at + i);
            panic!(
                "the log holds a secret: {}",
                &log[from..to].replace(secret, "<SECRET>")
            );
        }
    }
    let cookie = held.expect("opening the link sets the cookie that carries it");
    assert!(cookie.starts_with("gatehouse-reset="), "{cookie}");
    let value = cookie_value(&cookie);
    assert!(
        !log.contains(&value),
        "the log holds the reset link's cookie"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_schema_it_does_not_know_until_migrate_runs() {
    let dir = tempfile::tempdir().expect("dir");
    let db = gatehouse_testkit::TestDatabase::create()
        .await
        .expect("PostgreSQL must be running");
    // A password in the URL is never repeated in a message.
    let url = db
        .url
        .replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1);
    let env = [
        ("GATEHOUSE_DATABASE_URL", url.as_str()),
        ("GATEHOUSE_LISTEN", "127.0.0.1:0"),
    ];

    let mut c = gatehouse(dir.path(), &env);
    c.arg("serve");
    let (code, _, stderr) = run(c);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: GATEHOUSE_DATABASE_URL: postgres://postgres:***@"),
        "{stderr}"
    );
    assert!(stderr.contains("run `gatehouse migrate` first"), "{stderr}");
    assert!(!stderr.contains("hunter2"));

    let mut c = gatehouse(dir.path(), &env);
    c.arg("migrate");
    let (code, stdout, stderr) = run(c);
    assert_eq!(code, 0, "{stderr}");
    let newest = gatehouse_store::SqlStore::known_versions(gatehouse_store::Backend::Postgres)
        .last()
        .copied()
        .expect("migrations");
    assert!(
        stdout.contains(&format!("is now up to date (version {newest})")),
        "{stdout}"
    );
    let mut c = gatehouse(dir.path(), &env);
    c.arg("migrate");
    assert!(run(c).1.contains("was already up to date"));

    // A newer gatehouse migrated this database: this build refuses it.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.expect("connect");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, '\\x00'::bytea, 0)",
    )
    .execute(&pool)
    .await
    .expect("insert");
    pool.close().await;
    for command in ["serve", "migrate"] {
        let mut c = gatehouse(dir.path(), &env);
        c.arg(command);
        let (code, _, stderr) = run(c);
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(
            stderr.contains("newer than this build knows"),
            "{command}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_admin_prints_a_one_time_link_and_grant_changes_roles() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let env = [("GATEHOUSE_PUBLIC_URL", public.as_str())];

    let create_admin = |email: &str| {
        let mut c = gatehouse(dir.path(), &env);
        c.args([
            "admin",
            "create-admin",
            "--employer",
            "999 Demo Trust",
            "--first-name",
            "Ada",
            "--last-name",
            "Lovelace",
            "--date-of-birth",
            "10/12/1980",
            "--email",
            email,
        ]);
        c
    };
    let (code, _, stderr) = run(create_admin("ada.lovelace@gmail.com"));
    assert_eq!(code, 1, "a bad address is refused");
    assert!(stderr.contains("allowed domain"), "{stderr}");

    let c = create_admin("ada.lovelace@nhs.net");
    let (code, stdout, stderr) = run(c);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("999ALOVELACE01 (Ada Lovelace) is an administrator."),
        "{stdout}"
    );
    let link = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{public}/reset/")))
        .expect("a first-access link")
        .to_owned();

    let smtp = SmtpSink::start().await.expect("smtp");
    let _server = start_server(dir.path(), port, &smtp.url()).await;
    let browser = Browser::new(&public, &public);
    let opened = browser.http().get(&link).send().await.expect("GET");
    assert_eq!(opened.headers()["location"], "/reset");
    let token = browser.form_token("/reset").await;
    let done = browser
        .post_form(
            "/reset",
            &token,
            &reset_form("999ALOVELACE01", GOOD_PASSWORD, GOOD_PASSWORD),
        )
        .await;
    assert_eq!(done.status(), 303, "the link sets the first password");
    browser.http().get(&link).send().await.expect("GET");
    let again = browser.page("/reset").await;
    assert!(again.contains("already been used"), "used once: {again}");

    let token = browser.form_token("/login").await;
    let signed_in = browser
        .post_form(
            "/login",
            &token,
            &[("username", "999alovelace01"), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(
        signed_in.headers()["location"],
        "/console",
        "an admin goes to the console"
    );

    for (args, want_code, want) in [
        (
            vec!["admin", "grant", "999ALOVELACE01", "helpdesk"],
            0,
            "999ALOVELACE01 is now helpdesk.",
        ),
        (
            vec!["admin", "grant", "999ALOVELACE01", "superuser"],
            2,
            "role must be staff, helpdesk or admin",
        ),
        (
            vec!["admin", "grant", "NOBODY99", "admin"],
            1,
            "No account has the username NOBODY99",
        ),
    ] {
        let mut c = gatehouse(dir.path(), &env);
        c.args(&args);
        let (code, stdout, stderr) = run(c);
        assert_eq!(code, want_code, "{args:?}: {stderr}");
        assert!(
            stdout.contains(want) || stderr.contains(want),
            "{args:?}: {stdout}{stderr}"
        );
    }
    let mut c = gatehouse(dir.path(), &env);
    c.args(["admin", "audit", "--username", "999ALOVELACE01"]);
    let (_, stdout, _) = run(c);
    assert!(stdout.contains("account.admin_created"), "{stdout}");
    assert!(stdout.contains("account.role_changed"), "{stdout}");
    assert!(
        !stdout.contains("/reset/"),
        "the link is not in the audit log"
    );
}

/// Security case D52 (docs/security.md).
#[test]
fn admin_speaks_json_for_scripts_and_disables_enables_and_refuses_early_unlock() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("staff.csv"), STAFF).expect("write");
    let mut c = gatehouse(dir.path(), &[]);
    c.args(["import", "staff.csv"]);
    assert_eq!(run(c).0, 0);
    let admin = |args: &[&str]| {
        let mut c = gatehouse(dir.path(), &[]);
        c.arg("admin").args(args);
        run(c)
    };

    let (code, stdout, _) = admin(&["find", "SMITH"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let (code, stdout, _) = admin(&["--json", "find", "amir.khan@nhs.net"]);
    assert_eq!(code, 0);
    let found: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(found[0]["username"], "999AKHAN01");
    let (code, _, stderr) = admin(&["find", "nobody"]);
    assert_eq!((code, stderr.trim()), (1, "Nobody found."));

    let (code, stdout, _) = admin(&["--json", "status", "999akhan01"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(status["username"], "999AKHAN01");
    assert_eq!(status["password_set"], false);
    assert_eq!(status["locked_until"], serde_json::Value::Null);
    assert_eq!(status["disabled_at"], serde_json::Value::Null);

    let (code, stdout, stderr) = admin(&["disable", "999AKHAN01", "--reason", "left"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("999AKHAN01 is now disabled"), "{stdout}");
    let (code, stdout, _) = admin(&["status", "999AKHAN01", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(status["disabled_at"].is_string(), "{status}");
    let (code, _, stderr) = admin(&["disable", "999AKHAN01", "--reason", "again"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already"), "{stderr}");
    let (code, stdout, _) = admin(&["--json", "enable", "999AKHAN01", "--reason", "back"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).expect("JSON")["disabled_at"],
        serde_json::Value::Null
    );

    let (code, stdout, _) = admin(&["--json", "unlock", "999AKHAN01", "--reason", "asked"]);
    assert_eq!(code, 1, "the seed's rule: nobody lifts a lock early");
    let refusal: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(
        refusal["error"]
            .as_str()
            .is_some_and(|e| e.contains("GATEHOUSE_ALLOW_EARLY_UNLOCK")),
        "{refusal}"
    );

    let (code, stdout, _) = admin(&["--json", "audit", "--username", "999AKHAN01"]);
    assert_eq!(code, 0);
    let events: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let names: Vec<&str> = events
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(names, ["account.enabled", "account.disabled"], "{stdout}");
    assert_eq!(events[0]["actor"], "admin (command line)");
    let (code, stdout, _) = admin(&["audit", "--event", "account.disabled", "--csv"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("at,event,actor,username,client_ip,detail,user_agent\n"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2);
    let (code, _, stderr) = admin(&["audit", "--from", "yesterday"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("Enter a real date"), "{stderr}");

    let (code, stdout, _) = admin(&[
        "--json",
        "end-sessions",
        "999AKHAN01",
        "--reason",
        "lost phone",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).expect("JSON")["sessions_ended"],
        0
    );
    let (code, _, stderr) = admin(&["end-sessions", "999AKHAN01", "--reason", ""]);
    assert_eq!(code, 1);
    assert!(stderr.contains("give a reason"), "{stderr}");

    let (code, stdout, _) = admin(&["--json", "mail", "amir.khan@nhs.net"]);
    assert_eq!(code, 0);
    let history: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(history["email"], "amir.khan@nhs.net");
    assert!(history["requests"].as_array().is_some_and(Vec::is_empty));
}

#[test]
fn a_database_that_cannot_be_reached_at_start_stops_it_with_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    // Nothing listens on port 1.
    let mut serve = gatehouse(
        dir.path(),
        &[
            (
                "GATEHOUSE_DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/gatehouse",
            ),
            ("GATEHOUSE_DATABASE_TIMEOUT", "1s"),
        ],
    );
    serve.arg("serve");
    let (code, _, err) = run(serve);
    assert_eq!(code, 2, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: GATEHOUSE_DATABASE_URL: "),
        "{}",
        lines[0]
    );
}

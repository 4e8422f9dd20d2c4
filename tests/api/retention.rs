//! Running for years: the worker forgets what is past its retention
//! period, the operator exports and erases a person, and the embedded
//! database is backed up while sign-ins go on and restored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gatehouse_core::Actor;
use gatehouse_domain::{Role, Span};

use crate::helpers::*;

const DAY: i64 = 24;

async fn rows(app: &TestApp, table: &str) -> i64 {
    count(
        &app.database_url(),
        &format!("SELECT COUNT(*) FROM {table}"),
    )
    .await
}

/// Waits until the outbox worker has sent everything queued (each email's
/// record then carries the service's time of sending).
async fn outbox_drained(app: &TestApp) {
    for _ in 0..400 {
        let queued = count(
            &app.database_url(),
            "SELECT COUNT(*) FROM outbox WHERE finished_at IS NULL",
        )
        .await;
        if queued == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the outbox did not drain");
}

#[tokio::test]
async fn the_worker_forgets_only_what_is_past_its_retention_period() {
    let app = app_with_password(&[
        ("GATEHOUSE_AUDIT_RETENTION", "60d"),
        ("GATEHOUSE_REQUEST_RETENTION", "10d"),
    ])
    .await;
    // Amir's password was set through a recovery email: a request, a
    // link and an email, and their audit events, all from today.
    let b = app.browser();
    assert_eq!(
        b.log_in(AMIR.username, "not his password").await.status(),
        200
    );
    let events_today = rows(&app, "audit_events").await;
    assert!(rows(&app, "recovery_requests").await >= 1);
    assert!(rows(&app, "reset_links").await >= 1);

    outbox_drained(&app).await;
    // Nine days on, nothing is old enough.
    app.advance(Span::hours(9 * DAY));
    app.gatehouse.tidy().await.expect("tidy");
    assert!(rows(&app, "recovery_requests").await >= 1);
    assert!(rows(&app, "audit_events").await >= events_today);
    assert!(
        audit_events(&app, "system.retention_applied")
            .await
            .is_empty(),
        "nothing forgotten"
    );

    // Eleven days on, the requests, links and sent emails go; the audit
    // log (60 days) keeps everything.
    app.advance(Span::hours(2 * DAY));
    let day_eleven = app.gatehouse.clock().now();
    assert_eq!(b.log_in(AMIR.username, GOOD_PASSWORD).await.status(), 303);
    outbox_drained(&app).await;
    app.gatehouse.tidy().await.expect("tidy");
    assert_eq!(rows(&app, "recovery_requests").await, 0);
    assert_eq!(rows(&app, "reset_links").await, 0);
    assert_eq!(
        count(
            &app.database_url(),
            &format!(
                "SELECT COUNT(*) FROM outbox WHERE created_at < {}",
                day_eleven.unix()
            )
        )
        .await,
        0,
        "the emails of day one"
    );
    let forgotten = audit_events(&app, "system.retention_applied").await;
    assert_eq!(forgotten.len(), 1, "the pass is audited");
    assert!(
        forgotten[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("0 audit event(s)")),
        "{:?}",
        forgotten[0].detail
    );
    let since_day_eleven = format!(
        "SELECT COUNT(*) FROM audit_events WHERE at >= {}",
        day_eleven.unix()
    );
    let kept = count(&app.database_url(), &since_day_eleven).await;
    assert!(kept > 0);

    // Sixty-one days after the first events, they go; today's stay.
    app.advance(Span::hours(50 * DAY));
    app.gatehouse.tidy().await.expect("tidy");
    assert_eq!(
        count(
            &app.database_url(),
            &format!(
                "SELECT COUNT(*) FROM audit_events WHERE at < {}",
                app.gatehouse
                    .clock()
                    .now()
                    .minus(Span::hours(60 * DAY))
                    .unix()
            )
        )
        .await,
        0
    );
    assert_eq!(
        count(&app.database_url(), &since_day_eleven).await,
        kept + 1,
        "the events of day eleven are fifty days old: kept (and the pass's own record)"
    );
}

#[tokio::test]
async fn retention_settings_below_their_floor_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    for (variable, value, says) in [
        ("GATEHOUSE_AUDIT_RETENTION", "7d", "must be at least 30d"),
        ("GATEHOUSE_REQUEST_RETENTION", "1h", "must be at least 1d"),
        ("GATEHOUSE_ERASE_DISABLED_AFTER", "soon", ""),
    ] {
        let mut c = gatehouse_in(dir.path(), &[(variable, value)]);
        c.arg("migrate");
        let (code, _, err) = run_command(c);
        assert_eq!(code, 2, "{variable}: {err}");
        assert!(err.starts_with(&format!("error: {variable}: ")), "{err}");
        assert!(err.contains(says), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[tokio::test]
async fn a_disabled_staff_account_is_erased_once_past_the_configured_period() {
    let app = app_with_password(&[("GATEHOUSE_ERASE_DISABLED_AFTER", "30d")]).await;
    app.import(&staff_file(&[&SAM, &PRIYA])).await;
    app.grant(PRIYA.username, Role::Admin).await;
    // On the service's clock, which the test moves (the command line's is
    // the real one).
    let disable = |username: &'static str| {
        let app = &app;
        async move {
            app.gatehouse
                .set_account_disabled(username, true, &Actor::COMMAND_LINE, "left the trust")
                .await
                .expect("disable")
                .expect("disabled");
        }
    };
    disable(AMIR.username).await;
    disable(PRIYA.username).await;
    app.advance(Span::hours(20 * DAY));
    disable(SAM.username).await;
    app.advance(Span::hours(11 * DAY));
    app.gatehouse.tidy().await.expect("tidy");

    let amir = account(&app, AMIR.username).await;
    assert!(amir.erased_at.is_some(), "disabled 31 days ago: erased");
    assert_eq!(amir.email.as_str(), "");
    assert_eq!(amir.first_name, "");
    assert!(
        account(&app, SAM.username).await.erased_at.is_none(),
        "disabled 11 days ago"
    );
    assert!(
        account(&app, PRIYA.username).await.erased_at.is_none(),
        "an admin account is never erased by age"
    );
    let erased = audit_events(&app, "account.person_erased").await;
    assert_eq!(erased.len(), 1);
    assert_eq!(erased[0].username.as_deref(), Some(AMIR.username));
    assert_eq!(erased[0].actor.as_deref(), Some("system"));
}

#[tokio::test]
async fn export_person_prints_everything_held_and_no_secret() {
    let app = app_with_password(&[]).await;
    let b = app.browser();
    assert_eq!(
        b.log_in(AMIR.username, "not his password").await.status(),
        200
    );
    assert_eq!(b.log_in(AMIR.username, GOOD_PASSWORD).await.status(), 303);
    let session = b.session_id();

    let (code, out, err) = gatehouse_cli(&app, &["admin", "export-person", AMIR.username]).await;
    assert_eq!(code, 0, "{err}");
    let export: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(export["account"]["username"], AMIR.username);
    assert_eq!(export["account"]["email"], AMIR.email);
    assert_eq!(export["account"]["date_of_birth"], "1990-07-02");
    assert_eq!(export["account"]["password_set"], true);
    assert_eq!(export["sessions"].as_array().expect("sessions").len(), 1);
    assert!(!export["reset_links"].as_array().expect("links").is_empty());
    assert!(!export["emails"].as_array().expect("emails").is_empty());
    let events: Vec<&str> = export["audit_events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(events.contains(&"sign_in.failed"), "{events:?}");
    assert!(events.contains(&"sign_in.succeeded"), "{events:?}");
    assert!(
        !out.contains("$argon2") && !out.contains(&session) && !out.contains("token"),
        "no hash, session or token: {out}"
    );
    assert!(!out.contains("jane.smith"), "nobody else's data");
    assert_eq!(audit_events(&app, "account.person_exported").await.len(), 1);

    let (code, _, err) = gatehouse_cli(&app, &["admin", "export-person", "999NOBODY01"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("No account has the username 999NOBODY01"),
        "{err}"
    );
}

#[tokio::test]
async fn erase_person_empties_the_account_keeps_the_username_and_is_refused_for_admins() {
    let app = app_with_password(&[]).await;
    app.import(&staff_file(&[&PRIYA])).await;
    app.grant(PRIYA.username, Role::Admin).await;
    let b = app.browser();
    assert_eq!(b.log_in(AMIR.username, GOOD_PASSWORD).await.status(), 303);

    let (code, _, err) = gatehouse_cli(
        &app,
        &["admin", "erase-person", AMIR.username, "--reason", " "],
    )
    .await;
    assert_eq!((code, err.trim()), (1, "Not erased: give a reason."));
    let (code, _, err) = gatehouse_cli(
        &app,
        &["admin", "erase-person", PRIYA.username, "--reason", "asked"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("this is an admin account"), "{err}");
    assert!(account(&app, PRIYA.username).await.erased_at.is_none());

    // An enabled account: erased at once, signed out everywhere.
    let (code, out, err) = gatehouse_cli(
        &app,
        &[
            "admin",
            "erase-person",
            AMIR.username,
            "--reason",
            "subject's request 42",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("personal details are erased"), "{out}");
    let amir = account(&app, AMIR.username).await;
    assert_eq!(
        amir.username.as_str(),
        AMIR.username,
        "the username stays reserved"
    );
    assert_eq!((amir.first_name.as_str(), amir.email.as_str()), ("", ""));
    assert!(amir.password_hash.is_none() && amir.disabled_at.is_some());
    let page = b.get("/account").await;
    assert_eq!(page.status(), 303, "the session ended");
    assert_eq!(app.log_in_status(AMIR.username, GOOD_PASSWORD).await, 200);
    let erased = audit_events(&app, "account.person_erased").await;
    assert_eq!(erased.len(), 1);
    assert!(
        erased[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("subject's request 42")),
        "{:?}",
        erased[0].detail
    );
    assert!(
        !audit_events(&app, "sign_in.succeeded").await.is_empty(),
        "the audit trail is kept"
    );

    // A recovery request with the old details finds nobody.
    app.browser().request_recovery(AMIR.recovery()).await;
    app.settle().await;
    let requests = app
        .db
        .recovery_requests_for(AMIR.email, 1)
        .await
        .expect("requests");
    assert_eq!(
        requests[0].outcome,
        Some(gatehouse_domain::RecoveryOutcome::NoMatch),
        "nothing matched the erased details"
    );

    // Once only, and never enabled again.
    let (code, _, err) = gatehouse_cli(
        &app,
        &["admin", "erase-person", AMIR.username, "--reason", "again"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("erased already"), "{err}");
    let (code, _, err) = gatehouse_cli(
        &app,
        &["admin", "enable", AMIR.username, "--reason", "back"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("erased"), "{err}");
}

/// Security case: a backup must not stop the service, and must be usable
/// on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_load_restores_and_signs_in() {
    let app = Arc::new(app_with_password(&[]).await);
    let dir = tempfile::tempdir().expect("dir");
    let backup = dir.path().join("backup.db");
    let backup_arg = backup.to_str().expect("utf-8");
    if on_postgres() {
        let (code, _, err) = gatehouse_cli(&app, &["backup", backup_arg]).await;
        assert_eq!(code, 1);
        assert!(err.contains("pg_dump"), "{err}");
        assert!(!backup.exists());
        return;
    }
    // Enough history that the copy takes a while.
    execute_sql(
        &app.database_url(),
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) \
         INSERT INTO audit_events (at, event, detail) \
         SELECT 1, 'sign_in.failed', hex(randomblob(200)) FROM n",
    )
    .await;

    // Recovery requests (writes) and sign-ins go on throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicUsize::new(0));
    let backing_up = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..4 {
        let (app, stop, during, backing_up) = (
            app.clone(),
            stop.clone(),
            during.clone(),
            backing_up.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut refused = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                // A new visitor each time, as on a shared ward computer.
                let b = app.browser();
                let status = if i == 0 {
                    b.log_in(AMIR.username, GOOD_PASSWORD)
                        .await
                        .status()
                        .as_u16()
                } else {
                    b.request_recovery(SAM.recovery()).await.status().as_u16()
                };
                if status != 303 {
                    refused.push(status);
                }
                if backing_up.load(Ordering::SeqCst) {
                    during.fetch_add(1, Ordering::SeqCst);
                }
            }
            refused
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    backing_up.store(true, Ordering::SeqCst);
    let args = ["backup".to_owned(), backup_arg.to_owned()];
    let url = app.database_url();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let mut c = std::process::Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GATEHOUSE_DATABASE_URL", url)
            .args(args);
        run_command(c)
    })
    .await
    .expect("backup");
    backing_up.store(false, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Backed up to"), "{out}");
    for task in load {
        assert_eq!(
            task.await.expect("load"),
            Vec::<u16>::new(),
            "nothing refused"
        );
    }
    assert!(
        during.load(Ordering::SeqCst) > 0,
        "requests were answered while the backup ran"
    );
    let (code, _, err) = gatehouse_cli(&app, &["backup", backup_arg]).await;
    assert_eq!(code, 1);
    assert!(err.contains("exists already"), "{err}");

    // Restored into a new place and served, Amir signs in.
    let restored = tempfile::tempdir().expect("dir");
    let mut c = gatehouse_in(restored.path(), &[]);
    c.args(["restore", backup_arg]);
    let (code, out, err) = run_command(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Restored"), "{out}");
    let port = free_port();
    let mail = format!("file://{}/outbox", restored.path().display());
    let _server = serve_in(restored.path(), port, &mail).await;
    let base = format!("http://127.0.0.1:{port}");
    let b = Browser::new(&base, &base);
    let r = b.log_in(AMIR.username, GOOD_PASSWORD).await;
    let status = r.status();
    assert_eq!(status, 303, "{}", r.text().await.unwrap_or_default());

    // A damaged file is refused and changes nothing.
    std::fs::write(dir.path().join("damaged.db"), b"not a database").expect("write");
    let mut c = gatehouse_in(restored.path(), &[]);
    c.args([
        "restore",
        dir.path().join("damaged.db").to_str().expect("utf-8"),
        "--replace",
    ]);
    let (code, _, err) = run_command(c);
    assert_eq!(code, 1);
    assert!(err.starts_with("Not restored: "), "{err}");
    let again = Browser::new(&base, &base);
    assert_eq!(
        again.log_in(AMIR.username, GOOD_PASSWORD).await.status(),
        303
    );
}

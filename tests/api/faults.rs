//! Faults: the database busy or gone in the middle of a request, the mail
//! folder unusable. Each must end in a clear answer, with nothing
//! half-written and nothing lost. (SMTP refusing, timing out or down longer
//! than a link lives, and `kill -9` with mail queued, are in mail.rs and
//! cli.rs; a node killed in the middle of 1,000 requests in multinode.rs.)

use crate::helpers::*;

async fn recovery_requests(app: &TestApp) -> i64 {
    count(
        &app.database_url(),
        "SELECT COUNT(*) FROM recovery_requests",
    )
    .await
}

/// SQLite's write lock held by another process (a backup, an import) for
/// longer than `GATEHOUSE_DATABASE_TIMEOUT`.
///
/// Security cases H86, H87, H95 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_held_busy_answers_503_saves_nothing_and_recovers() {
    if on_postgres() {
        return; // SQLite's lock; PostgreSQL waits on row locks instead.
    }
    let app = TestApp::spawn_full(&[("GATEHOUSE_DATABASE_TIMEOUT", "1s")], false).await;
    app.import(STAFF).await;
    let browser = app.browser();
    let token = browser.form_token("/recover").await;
    // Forms opened before the database became busy.
    let mut sign_ins = Vec::new();
    for username in ["999AKHAN01", "NOBODY99"] {
        let browser = app.browser();
        let token = browser.form_token("/login").await;
        sign_ins.push((username, browser, token));
    }

    let lock = SqliteWriteLock::take(&app).await;
    let r = browser
        .post_form("/recover", &token, &AMIR.recovery_fields())
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
    let page = r.body().await;
    assert!(page.contains("Sorry, the service is unavailable"), "{page}");
    assert!(page.contains("Nothing you sent has been saved"), "{page}");
    assert!(
        !page.to_lowercase().contains("sqlite"),
        "no internals shown"
    );
    // Sign-in, for a real username and an unknown one: the same answer,
    // and no session.
    let mut pages = Vec::new();
    for (username, browser, token) in &sign_ins {
        let r = browser
            .post_form(
                "/login",
                token,
                &[
                    ("username", username),
                    ("password", "kettle violin marmalade"),
                ],
            )
            .await;
        assert_eq!(r.status(), 503, "{username}");
        assert!(!sets_a_session(&r), "no new session");
        let page = r.body().await;
        // Each page carries its own request reference; the rest is the same.
        let reference = reference_of(&page);
        pages.push(comparable(&page).replace(&reference, "REF"));
    }
    assert_eq!(pages[0], pages[1], "the same page whoever it is");
    lock.release().await;
    assert_eq!(recovery_requests(&app).await, 0, "nothing half-written");

    // Once the lock is gone the same person gets through.
    let again = app.browser().request_recovery(AMIR.recovery()).await;
    assert_eq!(again.status(), 303);
    assert_eq!(recovery_requests(&app).await, 1);
}

/// The mail folder (GATEHOUSE_MAIL_URL=file://…) stops being writable after
/// start-up: the email waits in the outbox, retried, and goes out once the
/// folder is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mail_folder_that_cannot_be_written_keeps_the_email_queued_until_it_can() {
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("outbox");
    let mail_url = format!("file://{}", folder.display());
    let app = TestApp::spawn_with(&[("GATEHOUSE_MAIL_URL", mail_url.as_str())]).await;
    app.import(STAFF).await;
    // The folder made at start-up is replaced by a file: nothing can be
    // written into it (the tests may run as root, who ignores permissions).
    std::fs::remove_dir_all(&folder).expect("remove");
    std::fs::write(&folder, b"not a folder").expect("file");

    let r = app.browser().request_recovery(AMIR.recovery()).await;
    assert_eq!(r.status(), 303);
    app.settle().await;
    let listed = app.wait_for_a_failed_try("amir.khan@nhs.net").await;
    assert_eq!(listed.status.as_str(), "queued", "waiting for another try");
    assert!(listed.last_error.is_some(), "the failure is recorded");

    std::fs::remove_file(&folder).expect("remove the file");
    std::fs::create_dir_all(&folder).expect("folder back");
    app.advance(gatehouse_domain::Span::from_seconds(
        listed.next_attempt_at.seconds_since(app.clock_now()),
    ));
    app.gatehouse.wake_outbox();
    for _ in 0..250 {
        if std::fs::read_dir(&folder).expect("folder").count() == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the email did not go out once the folder was back");
}

/// The mail server accepts the message and then says nothing: the try ends
/// after `GATEHOUSE_MAIL_TIMEOUT`, is retried later, and the web pages are
/// answered as usual meanwhile.
///
/// Security case H90 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mail_server_that_hangs_is_given_up_on_after_the_timeout_and_retried() {
    let app = TestApp::spawn_with(&[
        ("GATEHOUSE_MAIL_TIMEOUT", "1s"),
        ("GATEHOUSE_WORKER_LEASE", "5s"),
    ])
    .await;
    app.import(STAFF).await;
    app.smtp.set_mode(gatehouse_testkit::SinkMode::Hang);
    let r = app.browser().request_recovery(AMIR.recovery()).await;
    assert_eq!(r.status(), 303, "the person is answered at once");
    app.settle().await;
    // The try ends by the timeout (its message says so), not never.
    let tried = app.wait_for_a_failed_try("amir.khan@nhs.net").await;
    assert_eq!(tried.status.as_str(), "queued", "to be tried again");
    assert!(
        tried
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("did not answer"),
        "{tried:?}"
    );
    // Pages are served while the worker waits on the mail server.
    assert_eq!(app.visitor.get("/login").await.status(), 200);

    app.smtp.set_mode(gatehouse_testkit::SinkMode::Accept);
    app.advance(gatehouse_domain::Span::from_seconds(
        tried.next_attempt_at.seconds_since(app.clock_now()),
    ));
    app.gatehouse.wake_outbox();
    let mail = app
        .smtp
        .wait_for(1, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(mail.len(), 1, "delivered once the server answers again");
}

/// A command that only reads works while SQLite's write lock is held (as
/// an import holds it for as long as it runs): starting a command writes
/// nothing once the service's keys exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_only_reads_runs_while_the_database_is_busy_writing() {
    if on_postgres() {
        return;
    }
    let app = TestApp::spawn_full(&[], false).await;
    let lock = SqliteWriteLock::take(&app).await;
    let (code, out, err) = gatehouse_cli(&app, &["admin", "--json", "client", "list"]).await;
    lock.release().await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[]");
}

//! Mail delivery through the outbox (docs/design.md invariant 4).

use std::time::Duration;

use gatehouse_domain::Span;
use gatehouse_testkit::SinkMode;

use crate::helpers::*;

async fn statuses(app: &TestApp, email: &str) -> Vec<(String, i64)> {
    app.db
        .emails_to(email, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|e| (e.status.as_str().to_owned(), e.attempts))
        .collect()
}

/// Security case H88 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_down_then_up_delivers_with_backoff() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.smtp.stop();
    let r = app.browser().request_recovery(AMIR.recovery()).await;
    assert_eq!(r.status(), 303, "the person still sees the confirmation");
    app.settle().await;
    app.wait_for_attempts("amir.khan@nhs.net", 1).await;
    let listed = app
        .db
        .emails_to("amir.khan@nhs.net", 1)
        .await
        .expect("list");
    assert_eq!(listed[0].status.as_str(), "queued");
    assert!(
        listed[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("mail server"),
        "{listed:?}"
    );
    let first_retry = listed[0].next_attempt_at.seconds_since(START);
    assert!(
        (1..=30).contains(&first_retry),
        "the first retry comes within 30 s, not {first_retry}"
    );

    // Still down at the first retry: the wait doubles.
    app.advance(Span::from_seconds(first_retry));
    app.gatehouse.wake_outbox();
    app.wait_for_attempts("amir.khan@nhs.net", 2).await;
    let listed = app
        .db
        .emails_to("amir.khan@nhs.net", 1)
        .await
        .expect("list");
    assert_eq!(
        listed[0].next_attempt_at.seconds_since(app.clock_now()),
        first_retry * 2
    );

    // The server comes back: the next try delivers.
    app.smtp.resume().await.expect("resume");
    app.advance(Span::from_seconds(first_retry * 2));
    app.gatehouse.wake_outbox();
    let mail = app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(reset_links(&mail[0], PUBLIC_URL).len(), 1);
    // Recorded after the mail server took it.
    app.wait_for_email("amir.khan@nhs.net", |e| e.status.as_str() == "sent")
        .await;
}

/// A service whose mail server said "try later" to Amir's recovery email
/// (and still says it): the email waits for its retry.
async fn with_amirs_email_refused_once() -> TestApp {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.smtp.set_mode(SinkMode::TempFail);
    app.browser().request_recovery(AMIR.recovery()).await;
    app.settle().await;
    app.wait_for_attempts("amir.khan@nhs.net", 1).await;
    app
}

/// Security case H89 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_temporary_refusal_is_retried_and_a_permanent_one_is_given_up() {
    let app = with_amirs_email_refused_once().await;
    let listed = app
        .db
        .emails_to("amir.khan@nhs.net", 1)
        .await
        .expect("list");
    assert_eq!(listed[0].status.as_str(), "queued");
    assert!(
        listed[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("451"),
        "{listed:?}"
    );
    app.smtp.set_mode(SinkMode::Accept);
    app.advance(Span::minutes(1));
    app.gatehouse.wake_outbox();
    assert_eq!(app.smtp.wait_for(1, Duration::from_secs(10)).await.len(), 1);

    app.smtp.set_mode(SinkMode::PermFail);
    app.browser().request_recovery(JANE.recovery()).await;
    app.settle().await;
    app.wait_for_attempts("jane.smith@nhs.net", 1).await;
    let listed = app
        .db
        .emails_to("jane.smith@nhs.net", 1)
        .await
        .expect("list");
    assert_eq!(listed[0].status.as_str(), "failed", "{listed:?}");
    assert!(
        listed[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("554")
    );
}

/// Security case H91 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_longer_than_the_link_lifetime_is_recorded_and_never_delivered_late() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.smtp.stop();
    app.browser().request_recovery(AMIR.recovery()).await;
    app.settle().await;
    app.wait_for_attempts("amir.khan@nhs.net", 1).await;
    // Five hours later the server is back; the links died after four.
    app.smtp.resume().await.expect("resume");
    app.advance(Span::hours(5));
    app.gatehouse.wake_outbox();
    for _ in 0..500 {
        if statuses(&app, "amir.khan@nhs.net").await[0].0 != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(statuses(&app, "amir.khan@nhs.net").await[0].0, "expired");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        app.smtp.messages().is_empty(),
        "an email with dead links is never sent"
    );
    let events = audit_events(&app, "email.expired").await;
    assert_eq!(events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_without_tls_none_refuses_a_server_that_offers_no_starttls() {
    let app = TestApp::spawn().await;
    let url = format!("smtp://127.0.0.1:{}", app.smtp.port());
    let app = app.restart(&[("GATEHOUSE_MAIL_URL", &url)], true).await;
    app.import(STAFF).await;
    app.browser().request_recovery(AMIR.recovery()).await;
    app.settle().await;
    app.wait_for_attempts("amir.khan@nhs.net", 1).await;
    let listed = app
        .db
        .emails_to("amir.khan@nhs.net", 1)
        .await
        .expect("list");
    assert_eq!(
        listed[0].status.as_str(),
        "queued",
        "not sent in plain text"
    );
    assert!(app.smtp.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_file_transport_writes_eml_files() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("file://{}", dir.path().display());
    let app = TestApp::spawn_with(&[("GATEHOUSE_MAIL_URL", &url)]).await;
    app.import(STAFF).await;
    app.browser().request_recovery(AMIR.recovery()).await;
    app.settle().await;
    let mut files = Vec::new();
    for _ in 0..500 {
        files = std::fs::read_dir(dir.path())
            .expect("read")
            .filter_map(Result::ok)
            .collect();
        if !files.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].path()).expect("read");
    assert!(files[0].path().extension().is_some_and(|e| e == "eml"));
    assert!(text.contains("Subject: Your Electronic Staff Record username and password reset"));
    assert!(text.contains("999AKHAN01"));
}

impl TestApp {
    pub(crate) fn clock_now(&self) -> gatehouse_domain::Timestamp {
        use gatehouse_domain::Clock;
        self.clock.now()
    }
}

/// A mail server that stalls its answer to one email holds up only that
/// email: the worker fills each connection again as soon as its send ends,
/// so the emails queued behind the stalled one (more than a whole batch of
/// connections) still go out well inside the mail timeout (20 s), which
/// is what used to end the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_stalled_send_does_not_hold_up_the_emails_behind_it() {
    use gatehouse_domain::Clock as _;

    let app = TestApp::spawn().await;
    app.smtp.hold_mail_to(Some("slow@nhs.net"));
    let now = app.clock.now();
    let mut emails = Vec::new();
    for i in 0..2 * gatehouse_mail::CONNECTIONS {
        let recipient = match i {
            0 => "slow@nhs.net".to_owned(),
            _ => format!("pat.{i}@nhs.net"),
        };
        emails.push(gatehouse_store::NewEmail {
            kind: "recovery",
            recipient: gatehouse_domain::EmailAddress::from_trusted(recipient),
            subject: "Your username".to_owned(),
            text_body: format!("Your username is U{i:05}.\r\n"),
            html_body: format!("<p>Your username is U{i:05}.</p>"),
            account_id: None,
            recovery_request_id: None,
            send_by: None,
        });
    }
    app.db.enqueue(&emails, now).await.expect("enqueue");
    app.gatehouse.wake_outbox();

    let behind = 2 * gatehouse_mail::CONNECTIONS - 1;
    let delivered = app.smtp.wait_for(behind, Duration::from_secs(10)).await;
    assert_eq!(
        delivered.len(),
        behind,
        "every email but the stalled one is delivered while it stalls"
    );
    assert_eq!(app.smtp.held(), 1);
    app.smtp.hold_mail_to(None);
    let delivered = app.smtp.wait_for(behind + 1, Duration::from_secs(10)).await;
    assert!(delivered.iter().any(|m| m.to == ["slow@nhs.net"]));
}

/// A username email to `recipient`, queued by hand by the tests below.
fn username_email(recipient: &str) -> gatehouse_store::NewEmail {
    gatehouse_store::NewEmail {
        kind: "recovery",
        recipient: gatehouse_domain::EmailAddress::from_trusted(recipient.to_owned()),
        subject: "Your username".to_owned(),
        text_body: "Your username is U00001.\r\n".to_owned(),
        html_body: "<p>Your username is U00001.</p>".to_owned(),
        account_id: None,
        recovery_request_id: None,
        send_by: None,
    }
}

/// The database failing while a delivery run records its sends: the run
/// reports the failure instead of carrying on as if the sends were
/// recorded, and an email the mail server took but the database never
/// heard about is not lost. It stays leased (so no second worker sends it
/// at once) and is sent again, and recorded, once its lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_failure_while_recording_sends_is_reported_and_the_email_sent_again() {
    use gatehouse_domain::Clock as _;

    let app = TestApp::spawn_full(&[], false).await;
    let url = app.database_url();
    let now = app.clock.now();
    let emails = ["pat.one@nhs.net", "pat.two@nhs.net"].map(username_email);
    app.db.enqueue(&emails, now).await.expect("enqueue");

    // Recording Pat One's email as sent fails, as a full disk would.
    if on_postgres() {
        execute_sql(
            &url,
            "CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'disk full'; END $$; \
             CREATE TRIGGER refuse_sent BEFORE UPDATE ON outbox FOR EACH ROW \
             WHEN (NEW.status = 'sent' AND NEW.recipient = 'pat.one@nhs.net') \
             EXECUTE FUNCTION refuse_sent()",
        )
        .await;
    } else {
        execute_sql(
            &url,
            "CREATE TRIGGER refuse_sent BEFORE UPDATE ON outbox \
             WHEN NEW.status = 'sent' AND NEW.recipient = 'pat.one@nhs.net' \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .await;
    }
    let mailer = gatehouse_mail::Mailer::new(
        &gatehouse_mail::MailUrl::parse(&app.smtp.url()).expect("mail URL"),
        "esr@nhs.net",
        Duration::from_secs(10),
    )
    .expect("mailer");
    let worker = gatehouse_core::outbox::OutboxWorker::new(&app.gatehouse, mailer);
    let failed = worker.run_once().await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| gatehouse_core::error::chain(e).contains("disk full")),
        "the run reports the failure: {failed:?}"
    );
    let sent_to = |app: &TestApp| {
        app.smtp
            .messages()
            .iter()
            .filter(|m| m.to == ["pat.one@nhs.net"])
            .count()
    };
    assert_eq!(sent_to(&app), 1, "the mail server took it once");
    assert_eq!(statuses(&app, "pat.one@nhs.net").await[0].0, "queued");

    // The database recovers. Within the lease nothing sends it again.
    let drop = if on_postgres() {
        "DROP TRIGGER refuse_sent ON outbox"
    } else {
        "DROP TRIGGER refuse_sent"
    };
    execute_sql(&url, drop).await;
    worker.run_once().await.expect("a run with nothing due");
    assert_eq!(sent_to(&app), 1, "not sent again while its lease holds");

    // After the lease it is sent again, and this time recorded.
    app.advance(Span::from_seconds(61));
    worker.run_once().await.expect("a run that records");
    assert_eq!(sent_to(&app), 2, "sent again after the lease");
    assert_eq!(statuses(&app, "pat.one@nhs.net").await[0].0, "sent");
    assert_eq!(statuses(&app, "pat.two@nhs.net").await[0].0, "sent");
    assert_eq!(
        audit_events(&app, "email.sent").await.len(),
        2,
        "each email's send is in the audit log once"
    );
}

/// Someone who asks twice because the first email is slow to come must find
/// the working link in the newest email in their inbox. Here the first is
/// waiting for a retry (the mail server asked to try later) when the second
/// (whose link replaces the first's) is queued: the first is sent at once,
/// and the second only after it, so the second always arrives last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_recovery_email_is_sent_only_after_the_first_so_it_arrives_last() {
    let app = with_amirs_email_refused_once().await;

    // Before its retry is due, the mail server is back and the person asks again.
    app.smtp.set_mode(SinkMode::Accept);
    app.browser().request_recovery(AMIR.recovery()).await;
    app.settle().await;
    let mail = app.smtp.wait_for(2, Duration::from_secs(5)).await;
    if mail.len() < 2 {
        // Only if the first was left to its retry time.
        app.advance(Span::minutes(1));
        app.gatehouse.wake_outbox();
    }
    let mail = app.smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 2);
    let (first, last) = (
        reset_links(&mail[0], PUBLIC_URL),
        reset_links(&mail[1], PUBLIC_URL),
    );
    let c = app.browser();
    assert_eq!(c.open_link(&last[0]).await.status(), 303);
    assert!(
        c.page("/reset").await.contains("name=\"confirm-password\""),
        "the link in the email that arrived last works"
    );
    let old = app.browser();
    old.open_link(&first[0]).await;
    assert!(
        old.page("/reset")
            .await
            .contains("A newer password reset email has been sent since this one"),
        "the one that arrived first was replaced"
    );
}

/// A send the mail server stalls (up to the mail timeout, 20 s) does not
/// hold up an email queued while it stalls: the worker claims it within the
/// poll interval, on another connection, even with nothing to wake it (as
/// when another node queued it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_queued_during_a_stalled_send_goes_out_without_waiting_for_it() {
    use gatehouse_domain::Clock as _;

    let app = TestApp::spawn().await;
    app.smtp.hold_mail_to(Some("slow@nhs.net"));
    let queue = |recipient: &'static str| {
        let app = &app;
        async move {
            app.db
                .enqueue(&[username_email(recipient)], app.clock.now())
                .await
                .expect("enqueue");
        }
    };
    queue("slow@nhs.net").await;
    app.gatehouse.wake_outbox();
    assert_eq!(app.smtp.wait_held(1, Duration::from_secs(10)).await, 1);
    queue("pat.one@nhs.net").await;
    let delivered = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        delivered.iter().map(|m| m.to.clone()).collect::<Vec<_>>(),
        [["pat.one@nhs.net"]],
        "delivered while the other send still stalls"
    );
    assert_eq!(app.smtp.held(), 1);
    app.smtp.hold_mail_to(None);
    assert_eq!(app.smtp.wait_for(2, Duration::from_secs(10)).await.len(), 2);
}

/// An email sent and waiting for its record keeps its lease: its worker
/// renews it, so once the first lease would have run out another node
/// finds nothing to send, and the person gets one email. (A record that
/// waited longer than the lease, as under heavy load, let a second worker
/// send the email again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_waiting_for_its_record_keeps_its_lease_and_is_sent_once() {
    use gatehouse_domain::Clock as _;
    use sqlx::Connection as _;

    let (a, b) = TestApp::two_nodes_on_postgres(&[]).await;
    let url = a.database_url();
    // Queued to be due in ten seconds, so that nothing is sent before the
    // audit log is held.
    let claimed_at = a.clock.now().plus(Span::from_seconds(10));
    let emails = ["pat.one@nhs.net", "pat.two@nhs.net"].map(username_email);
    a.db.enqueue(&emails, claimed_at).await.expect("enqueue");
    // A record writes an audit event, so none finishes while this
    // connection holds the audit log.
    sqlx::any::install_default_drivers();
    let mut audit_held = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("BEGIN; LOCK TABLE audit_events IN EXCLUSIVE MODE")
        .execute(&mut audit_held)
        .await
        .expect("lock");

    a.advance(Span::from_seconds(10));
    a.smtp.wait_for(2, Duration::from_secs(10)).await;
    let first_lease_ends = claimed_at.plus(Span::from_seconds(60)).unix();

    // A third of the lease gone: the worker holds what it has not recorded
    // for another lease (rows its record already holds are left alone).
    a.advance(Span::from_seconds(41));
    let renewed_until = claimed_at.plus(Span::from_seconds(41 + 60)).unix();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let renewed = count(
            &url,
            &format!("SELECT COUNT(*) FROM outbox WHERE lease_until = {renewed_until}"),
        )
        .await;
        if renewed >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker renewed the lease of the emails waiting for their record"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Past the first lease: another node's worker finds nothing to take.
    a.advance(Span::from_seconds(30));
    assert!(a.clock.now().unix() > first_lease_ends);
    let mailer = gatehouse_mail::Mailer::new(
        &gatehouse_mail::MailUrl::parse(&b.smtp.url()).expect("mail URL"),
        "esr@nhs.net",
        Duration::from_secs(10),
    )
    .expect("mailer");
    let other = gatehouse_core::outbox::OutboxWorker::new(&b.gatehouse, mailer);
    let tried = tokio::time::timeout(Duration::from_secs(10), other.run_once()).await;
    assert!(
        matches!(tried, Ok(Ok(0))),
        "the other node took nothing: {tried:?}"
    );

    sqlx::query("ROLLBACK")
        .execute(&mut audit_held)
        .await
        .expect("unlock");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count(&url, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'").await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "both were recorded as sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.smtp.messages().len(), 2, "each person got one email");
    assert!(b.smtp.messages().is_empty());
}

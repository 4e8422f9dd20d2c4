//! Forgetting by age, a batch at a time, and erasing a person, on every
//! backend.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::reset_link::LinkPurpose;
use gatehouse_domain::{EmailAddress, RecoveryOutcome, SecretToken, Span, Timestamp};
use gatehouse_store::{
    AuditFilter, AuditRecord, NewEmail, NewResetLink, SqlStore, accounts, audit, erasure, outbox,
    recovery, reset_links, retention, sessions,
};

use super::{T0, imported_jane, session};

async fn count(store: &SqlStore, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *store.read().await.expect("connection"))
        .await
        .expect("count")
}

/// A recovery request made and processed at `at`, with an email sent and
/// a link that expires 4 hours later.
async fn answered_request(store: &SqlStore, account_id: i64, at: Timestamp) -> i64 {
    let mut tx = store.begin().await.expect("begin");
    let request = recovery::insert(
        &mut tx,
        "jane.smith@nhs.net",
        "1985-03-14",
        None,
        "10.0.0.1",
        at,
    )
    .await
    .expect("request");
    recovery::finish(&mut tx, request, RecoveryOutcome::Matched(1), 0, at)
        .await
        .expect("finish");
    let hash = SecretToken::generate().expect("random").hash();
    reset_links::insert(
        &mut tx,
        &NewResetLink {
            account_id,
            hash: &hash,
            purpose: LinkPurpose::Reset,
            recovery_request_id: Some(request),
            now: at,
            expires_at: at.plus(Span::hours(4)),
        },
    )
    .await
    .expect("link");
    let email = outbox::enqueue(
        &mut tx,
        &NewEmail {
            kind: "recovery",
            recipient: EmailAddress::from_trusted("jane.smith@nhs.net".to_owned()),
            subject: "Your login details".to_owned(),
            text_body: "link".to_owned(),
            html_body: "<p>link</p>".to_owned(),
            account_id: Some(account_id),
            recovery_request_id: Some(request),
            send_by: Some(at.plus(Span::hours(4))),
        },
        at,
    )
    .await
    .expect("email");
    sqlx::query("UPDATE outbox SET status = 'sent', finished_at = $1 WHERE id = $2")
        .bind(at.plus(Span::from_seconds(5)))
        .bind(email)
        .execute(&mut *tx)
        .await
        .expect("sent");
    tx.commit().await.expect("commit");
    request
}

pub async fn retention_forgets_only_what_is_past_its_age_in_batches(store: SqlStore) {
    let jane = imported_jane(&store).await;
    let cutoff = T0.minus(Span::hours(24 * 90));
    // Audit events: three older than the cutoff, one a second after it.
    for at in [
        cutoff.minus(Span::hours(48)),
        cutoff.minus(Span::hours(24)),
        cutoff.minus(Span::from_seconds(1)),
        cutoff.plus(Span::from_seconds(1)),
    ] {
        let mut event = AuditRecord::new(at, AuditEvent::SignInFailed);
        event.account_id = Some(jane.id);
        audit::record(&mut store.write().await.expect("connection"), &event)
            .await
            .expect("record");
    }
    let store_ref = &store;
    let forget = |batch| async move {
        let store = store_ref;
        retention::forget_audit_events(&mut store.write().await.expect("connection"), cutoff, batch)
            .await
            .expect("forget")
    };
    assert_eq!(forget(2).await, 2, "a batch at most");
    assert_eq!(forget(2).await, 1);
    assert_eq!(forget(2).await, 0);
    let left = audit::list(
        &mut store.read().await.expect("connection"),
        &AuditFilter {
            account_id: Some(jane.id),
            ..AuditFilter::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].at, cutoff.plus(Span::from_seconds(1)));

    // Requests answered long ago and yesterday; an email still queued
    // from long ago (its mail server never took it) is never forgotten.
    let old = answered_request(&store, jane.id, cutoff.minus(Span::hours(24))).await;
    let recent = answered_request(&store, jane.id, T0.minus(Span::hours(24))).await;
    let mut tx = store.begin().await.expect("begin");
    let stuck = outbox::enqueue(
        &mut tx,
        &NewEmail {
            kind: "security_locked",
            recipient: EmailAddress::from_trusted("jane.smith@nhs.net".to_owned()),
            subject: "Locked".to_owned(),
            text_body: "locked".to_owned(),
            html_body: "<p>locked</p>".to_owned(),
            account_id: Some(jane.id),
            recovery_request_id: None,
            send_by: None,
        },
        cutoff.minus(Span::hours(100)),
    )
    .await
    .expect("queued");
    tx.commit().await.expect("commit");

    // The request cannot go while its email and link are still held.
    let mut conn = store.write().await.expect("connection");
    assert_eq!(
        retention::forget_finished_requests(&mut conn, cutoff, 10)
            .await
            .expect("requests"),
        0
    );
    assert_eq!(
        retention::forget_finished_emails(&mut conn, cutoff, 10)
            .await
            .expect("emails"),
        1
    );
    assert_eq!(
        retention::forget_expired_links(&mut conn, cutoff, 10)
            .await
            .expect("links"),
        1
    );
    assert_eq!(
        retention::forget_finished_requests(&mut conn, cutoff, 10)
            .await
            .expect("requests"),
        1
    );
    drop(conn);
    let ids = |table: &'static str| async move {
        let store = store_ref;
        // By the address, through its index (tests/indexes.rs checks
        // every statement the scenarios run).
        let column = if table == "outbox" {
            "recipient_key"
        } else {
            "email_key"
        };
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {table} WHERE {column} = 'jane.smith@nhs.net' ORDER BY id"
        )))
        .fetch_all(&mut *store.read().await.expect("connection"))
        .await
        .expect("ids");
        ids
    };
    assert_eq!(ids("recovery_requests").await, vec![recent]);
    assert!(!ids("recovery_requests").await.contains(&old));
    assert_eq!(
        count(
            &store,
            &format!(
                "SELECT COUNT(*) FROM reset_links WHERE account_id = {}",
                jane.id
            )
        )
        .await,
        1
    );
    let emails = ids("outbox").await;
    assert_eq!(emails.len(), 2, "yesterday's email and the one never sent");
    assert!(emails.contains(&stuck));
}

pub async fn erasing_a_person_keeps_their_username_and_audit_trail_only(store: SqlStore) {
    let jane = imported_jane(&store).await;
    let mut tx = store.begin().await.expect("begin");
    accounts::set_password(
        &mut tx,
        jane.id,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        T0,
        4,
        None,
    )
    .await
    .expect("password");
    tx.commit().await.expect("commit");
    sessions::create(
        &mut store.write().await.expect("connection"),
        &session(Some(jane.id)),
    )
    .await
    .expect("session");
    answered_request(&store, jane.id, T0).await;
    let mut event = AuditRecord::new(T0, AuditEvent::SignInSucceeded);
    event.account_id = Some(jane.id);
    event.username = Some(jane.username.to_string());
    audit::record(&mut store.write().await.expect("connection"), &event)
        .await
        .expect("audit");

    let trail = format!(
        "SELECT COUNT(*) FROM audit_events WHERE account_id = {}",
        jane.id
    );
    let events_before = count(&store, &trail).await;
    let later = T0.plus(Span::hours(1));
    let mut tx = store.begin().await.expect("begin");
    assert!(
        erasure::erase(&mut tx, jane.id, later)
            .await
            .expect("erase")
    );
    assert!(
        !erasure::erase(&mut tx, jane.id, later)
            .await
            .expect("again"),
        "once"
    );
    tx.commit().await.expect("commit");

    let erased = accounts::by_id(&mut store.read().await.expect("connection"), jane.id)
        .await
        .expect("read")
        .expect("the account stays");
    assert_eq!(
        erased.username, jane.username,
        "the username stays reserved"
    );
    assert_eq!(
        (
            erased.first_name.as_str(),
            erased.last_name.as_str(),
            erased.date_of_birth.as_str()
        ),
        ("", "", "")
    );
    assert_eq!(erased.email.as_str(), "");
    assert_eq!(erased.employee_number, None);
    assert_eq!(erased.password_hash, None);
    assert_eq!(erased.erased_at, Some(later));
    assert_eq!(erased.disabled_at, Some(later), "disabled for good");
    for table in ["sessions", "reset_links", "outbox", "password_history"] {
        assert_eq!(
            count(
                &store,
                &format!(
                    "SELECT COUNT(*) FROM {table} WHERE account_id = {}",
                    jane.id
                )
            )
            .await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        count(&store, &trail).await,
        events_before,
        "the audit trail stays"
    );
    // Nobody can find her by her old details any more.
    assert!(
        accounts::for_recovery(
            &mut store.read().await.expect("connection"),
            "jane.smith@nhs.net",
            "1985-03-14",
            None
        )
        .await
        .expect("match")
        .iter()
        .all(|a| a.id != jane.id)
    );
    // A disabled staff account is found for erasure by age; an erased one is not.
    let due = retention::disabled_to_erase(
        &mut store.read().await.expect("connection"),
        later.plus(Span::hours(1)),
        10,
    )
    .await
    .expect("due");
    assert!(!due.contains(&jane.id));
}

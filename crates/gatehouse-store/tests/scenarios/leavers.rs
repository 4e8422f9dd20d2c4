//! A full import's leavers and returners, changed a batch at a time on
//! every backend: only accounts still as the plan found them change, each
//! leaver's sessions end and links are voided, and the audit records of a
//! batch are written together.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::reset_link::VoidReason;
use gatehouse_domain::{SecretToken, Span};
use gatehouse_store::{AuditFilter, AuditRecord, SqlStore, accounts, audit, reset_links, sessions};

use super::{T0, imported_jane, key, new_link, session};

pub async fn leavers_and_returners_change_a_batch_at_a_time(store: SqlStore) {
    imported_jane(&store).await;
    let find = |username: &'static str| {
        let store = store.clone();
        async move {
            accounts::by_username(&mut store.read().await.expect("c"), &key(username))
                .await
                .expect("read")
                .expect("exists")
        }
    };
    let john = find("999JSMITH02").await;
    let other = find("432JSMITH01").await;
    // John signed in with a link waiting; the other account disabled by hand.
    sessions::create(
        &mut store.write().await.expect("c"),
        &session(Some(john.id)),
    )
    .await
    .expect("session");
    let hash = SecretToken::generate().expect("random").hash();
    let link = reset_links::insert(
        &mut store.write().await.expect("c"),
        &new_link(john.id, &hash),
    )
    .await
    .expect("link");
    let mut tx = store.begin().await.expect("begin");
    accounts::set_disabled(&mut tx, other.id, Some(T0))
        .await
        .expect("disable");
    tx.commit().await.expect("commit");

    let later = T0.plus(Span::minutes(1));
    let mut tx = store.begin().await.expect("begin");
    let disabled = accounts::disable_leavers(&mut tx, &[other.id, john.id], later)
        .await
        .expect("leavers");
    assert_eq!(disabled, vec![john.id], "only one still enabled");
    let voided =
        reset_links::void_for_accounts(&mut tx, &disabled, VoidReason::AccountDisabled, later)
            .await
            .expect("void");
    assert_eq!(voided, 1);
    assert!(
        accounts::disable_leavers(&mut tx, &[], later)
            .await
            .expect("none")
            .is_empty()
    );
    let records: Vec<AuditRecord> = disabled
        .iter()
        .map(|id| AuditRecord {
            at: later,
            event: AuditEvent::AccountDisabled,
            actor: Some("operator".to_owned()),
            account_id: Some(*id),
            username: None,
            client_ip: None,
            detail: Some("reason: not in the staff file".to_owned()),
            user_agent: None,
        })
        .collect();
    audit::record_many(&mut tx, &records).await.expect("audit");
    tx.commit().await.expect("commit");
    assert_eq!(
        sessions::count_of(&mut store.read().await.expect("c"), john.id)
            .await
            .expect("count"),
        0
    );
    let row = reset_links::by_id(&mut store.read().await.expect("c"), link)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        row.record.voided,
        Some((later, VoidReason::AccountDisabled))
    );
    let logged = audit::list(
        &mut store.read().await.expect("c"),
        &AuditFilter {
            event: Some(AuditEvent::AccountDisabled),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(logged.len(), 1);

    // Back in the file: John returns; the account disabled by hand stays.
    let mut tx = store.begin().await.expect("begin");
    let enabled = accounts::enable_returners(&mut tx, &[john.id, other.id], later)
        .await
        .expect("returners");
    tx.commit().await.expect("commit");
    assert_eq!(enabled, vec![john.id]);
}

//! Renewing a worker's lease on outbox emails, on every backend: only
//! rows still leased are renewed, so a row whose lease ran out (and that
//! another worker may have taken) is never taken back.

use gatehouse_domain::{EmailAddress, Span};
use gatehouse_store::{Delivery, DeliveryResult, NewEmail, SqlStore, outbox};

use super::{T0, in_tx};

fn email(to: &str) -> NewEmail {
    NewEmail {
        kind: "recovery",
        recipient: EmailAddress::from_trusted(to.to_owned()),
        subject: "Subject".to_owned(),
        text_body: "secret link".to_owned(),
        html_body: "<p>secret link</p>".to_owned(),
        account_id: None,
        recovery_request_id: None,
        send_by: None,
    }
}

pub async fn outbox_leases_are_renewed_only_while_they_run(store: SqlStore) {
    let mut tx = store.begin().await.expect("begin");
    for to in ["a@nhs.net", "b@nhs.net", "c@nhs.net"] {
        outbox::enqueue(&mut tx, &email(to), T0)
            .await
            .expect("enqueue");
    }
    tx.commit().await.expect("commit");
    let lease = T0.plus(Span::minutes(1));
    let claimed = outbox::claim(&mut store.write().await.expect("connection"), T0, lease, 10)
        .await
        .expect("claim");
    let ids: Vec<i64> = claimed.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3);
    // The third is recorded as sent: nothing of it is leased any more.
    in_tx::record_deliveries(
        &store,
        &[Delivery {
            email: claimed[2].clone(),
            result: DeliveryResult::Sent("250 OK".to_owned()),
        }],
        T0,
    )
    .await
    .expect("record");

    let renew = |now, until| {
        let store = store.clone();
        let ids = ids.clone();
        async move {
            outbox::renew_leases(
                &mut store.write().await.expect("connection"),
                &ids,
                now,
                until,
            )
            .await
            .expect("renew")
        }
    };
    let at = T0.plus(Span::from_seconds(20));
    let longer = at.plus(Span::minutes(1));
    assert_eq!(renew(at, longer).await, ids[..2].to_vec());
    // Past the first lease, the renewed ones are still held.
    let past_first = lease.plus(Span::from_seconds(1));
    assert!(
        outbox::claim(
            &mut store.write().await.expect("connection"),
            past_first,
            longer,
            10
        )
        .await
        .expect("claim")
        .is_empty(),
        "renewed leases hold"
    );
    // A lease that has run out is not renewed: it may be another's now.
    let after = longer.plus(Span::from_seconds(1));
    assert!(renew(after, after.plus(Span::minutes(1))).await.is_empty());
    let taken = outbox::claim(
        &mut store.write().await.expect("connection"),
        after,
        after.plus(Span::minutes(1)),
        10,
    )
    .await
    .expect("claim");
    assert_eq!(
        taken.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[..2].to_vec()
    );
    assert!(
        outbox::renew_leases(
            &mut store.write().await.expect("connection"),
            &[],
            after,
            after
        )
        .await
        .expect("nothing")
        .is_empty()
    );
}

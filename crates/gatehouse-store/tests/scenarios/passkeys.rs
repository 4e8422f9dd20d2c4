//! Passkeys' storage: registered credentials (unique per account by name,
//! and across accounts by credential id), their counter written only by
//! the assertion that read it, and ceremonies taken once, on every backend.

use gatehouse_domain::{SecretToken, Span};
use gatehouse_store::SqlStore;
use gatehouse_store::passkeys::{self, CeremonyRow, NewPasskey};

use super::{T0, imported_jane};

fn new<'a>(account_id: i64, name: &'a str, credential_id: &'a [u8]) -> NewPasskey<'a> {
    NewPasskey {
        account_id,
        name,
        credential_id,
        user_handle: b"0123456789abcdef",
        credential: "{}",
        counter: 0,
        now: T0,
    }
}

pub async fn passkeys_are_unique_and_their_counter_moves_once(store: SqlStore) {
    let jane = imported_jane(&store).await;
    let mut db = store.write().await.expect("connection");
    assert!(
        passkeys::insert(&mut db, &new(jane.id, "work phone", b"cred-1"))
            .await
            .expect("insert")
    );
    // The same name again, or the same credential under another name: refused.
    assert!(
        !passkeys::insert(&mut db, &new(jane.id, "work phone", b"cred-2"))
            .await
            .expect("insert")
    );
    assert!(
        !passkeys::insert(&mut db, &new(jane.id, "key", b"cred-1"))
            .await
            .expect("insert")
    );
    assert!(
        passkeys::insert(&mut db, &new(jane.id, "key", b"cred-2"))
            .await
            .expect("insert")
    );
    assert_eq!(passkeys::count(&mut db, jane.id).await.expect("count"), 2);

    let found = passkeys::by_credential_id(&mut db, b"cred-1")
        .await
        .expect("read")
        .expect("registered");
    assert_eq!((found.name.as_str(), found.counter), ("work phone", 0));
    assert_eq!(
        passkeys::of_account(&mut db, jane.id)
            .await
            .expect("list")
            .len(),
        2
    );

    // The counter moves only from the value that was read: a second
    // assertion that read the same counter loses.
    let later = T0.plus(Span::from_seconds(60));
    assert!(
        passkeys::record_use(&mut db, found.id, 0, 5, "{\"n\":5}", later)
            .await
            .expect("use")
    );
    assert!(
        !passkeys::record_use(&mut db, found.id, 0, 6, "{\"n\":6}", later)
            .await
            .expect("use")
    );
    let used = passkeys::by_credential_id(&mut db, b"cred-1")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        (used.counter, used.last_used_at, used.credential.as_str()),
        (5, Some(later), "{\"n\":5}")
    );

    // Removing names the account: another account's id removes nothing.
    assert_eq!(
        passkeys::remove(&mut db, jane.id + 1000, found.id)
            .await
            .expect("remove"),
        None
    );
    assert_eq!(
        passkeys::remove(&mut db, jane.id, found.id)
            .await
            .expect("remove")
            .as_deref(),
        Some("work phone")
    );
    assert_eq!(
        passkeys::remove_all(&mut db, jane.id)
            .await
            .expect("remove all"),
        1
    );
    assert_eq!(passkeys::count(&mut db, jane.id).await.expect("count"), 0);
}

pub async fn passkey_ceremonies_are_taken_once_and_expire(store: SqlStore) {
    let jane = imported_jane(&store).await;
    let id = SecretToken::generate().expect("random").hash();
    let ceremony = CeremonyRow {
        kind: "register".to_owned(),
        account_id: Some(jane.id),
        state: "{\"state\":1}".to_owned(),
        expires_at: T0.plus(Span::minutes(5)),
    };
    passkeys::start_ceremony(
        &mut store.write().await.expect("connection"),
        &id,
        &ceremony,
        T0,
    )
    .await
    .expect("start");
    // Another kind does not take it.
    let wrong_kind = passkeys::take_ceremony(&mut store.write().await.expect("c"), &id, "sign_in")
        .await
        .expect("take");
    assert_eq!(wrong_kind, None);
    // Ten at once: exactly one gets it.
    let takers = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut conn = store.write().await.expect("connection");
            passkeys::take_ceremony(&mut conn, &id, "register")
                .await
                .expect("take")
        })
    });
    let mut taken = Vec::new();
    for t in takers {
        taken.extend(t.await.expect("join"));
    }
    assert_eq!(taken, vec![ceremony.clone()]);

    // Housekeeping forgets those past their expiry, and only those.
    let old = SecretToken::generate().expect("random").hash();
    let fresh = SecretToken::generate().expect("random").hash();
    let mut db = store.write().await.expect("connection");
    passkeys::start_ceremony(&mut db, &old, &ceremony, T0)
        .await
        .expect("start");
    let later = CeremonyRow {
        expires_at: T0.plus(Span::minutes(20)),
        ..ceremony.clone()
    };
    passkeys::start_ceremony(&mut db, &fresh, &later, T0)
        .await
        .expect("start");
    let now = T0.plus(Span::minutes(10));
    assert_eq!(
        passkeys::forget_expired_ceremonies(&mut db, now)
            .await
            .expect("tidy"),
        1
    );
    assert_eq!(
        passkeys::take_ceremony(&mut db, &old, "register")
            .await
            .expect("take"),
        None
    );
    assert!(
        passkeys::take_ceremony(&mut db, &fresh, "register")
            .await
            .expect("take")
            .is_some()
    );
}

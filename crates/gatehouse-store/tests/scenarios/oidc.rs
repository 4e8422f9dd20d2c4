//! OpenID Connect's storage: clients, signing keys, codes, grants, tokens
//! and back-channel logout notices, on every backend.

use gatehouse_domain::oidc::client::{ClientId, ClientKind};
use gatehouse_domain::oidc::jose::SigningAlg;
use gatehouse_domain::oidc::scope::Scopes;
use gatehouse_domain::{SecretToken, Span, TokenHash};
use gatehouse_store::oidc::clients::{self, ClientRow};
use gatehouse_store::oidc::grants::{self, NewCode, NewGrant, Redeemed, Rotation};
use gatehouse_store::oidc::logout_notices::{self, NoticeResult};
use gatehouse_store::oidc::signing_keys::{self, SigningKeyRow};
use gatehouse_store::{SqlStore, accounts, sessions};

use super::{T0, imported_jane, session};

fn client(kind: ClientKind, backchannel: Option<&str>) -> ClientRow {
    ClientRow {
        id: ClientId::generate().expect("random"),
        name: "Payslips".to_owned(),
        kind,
        secret_hash: (kind == ClientKind::Confidential)
            .then(|| SecretToken::generate().expect("random").hash()),
        redirect_uris: "https://app.example/cb\nhttps://app.example/cb2".to_owned(),
        post_logout_redirect_uris: String::new(),
        backchannel_logout_uri: backchannel.map(str::to_owned),
        signing_alg: SigningAlg::Rs256,
        consent: 0,
        created_at: T0,
        updated_at: T0,
        disabled_at: None,
    }
}

async fn registered(store: &SqlStore, c: &ClientRow) {
    clients::insert(&mut store.write().await.expect("connection"), c)
        .await
        .expect("insert");
}

pub async fn clients_register_rotate_disable_and_count_wrong_secrets(store: SqlStore) {
    let jane = imported_jane(&store).await;
    let app = client(ClientKind::Confidential, Some("https://app.example/bcl"));
    let spa = client(ClientKind::Public, None);
    registered(&store, &app).await;
    registered(&store, &spa).await;
    let mut db = store.write().await.expect("connection");
    let found = clients::by_id(&mut db, &app.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        found.redirect_uris(),
        ["https://app.example/cb", "https://app.example/cb2"]
    );
    assert_eq!(found.kind, ClientKind::Confidential);
    assert_eq!(clients::list(&mut db).await.expect("list").len(), 2);
    assert_eq!(
        clients::public_redirect_uris(&mut db)
            .await
            .expect("uris")
            .len(),
        2,
        "the public client's only"
    );
    let new_secret = SecretToken::generate().expect("random").hash();
    assert!(
        clients::set_secret(&mut db, &app.id, &new_secret, T0)
            .await
            .expect("set")
    );
    assert_eq!(
        clients::by_id(&mut db, &app.id)
            .await
            .expect("read")
            .expect("there")
            .secret_hash,
        Some(new_secret)
    );
    assert!(
        clients::set_disabled(&mut db, &app.id, true, T0)
            .await
            .expect("disable")
    );
    assert!(
        !clients::set_disabled(&mut db, &app.id, true, T0)
            .await
            .expect("again")
    );
    assert!(
        clients::set_disabled(&mut db, &app.id, false, T0)
            .await
            .expect("enable")
    );

    // Wrong secrets: counted per client and address, in a window.
    let window = T0.minus(Span::minutes(15));
    for n in 1..=3 {
        assert_eq!(
            clients::count_failure(&mut db, &app.id, "10.0.0.1", T0, window)
                .await
                .expect("count"),
            n
        );
    }
    assert_eq!(
        clients::failures(&mut db, &app.id, "10.0.0.1", window)
            .await
            .expect("read"),
        3
    );
    assert_eq!(
        clients::failures(&mut db, &app.id, "10.0.0.2", window)
            .await
            .expect("read"),
        0
    );
    let later = T0.plus(Span::minutes(20));
    let new_window = later.minus(Span::minutes(15));
    assert_eq!(
        clients::failures(&mut db, &app.id, "10.0.0.1", new_window)
            .await
            .expect("read"),
        0,
        "the window has passed"
    );
    assert_eq!(
        clients::count_failure(&mut db, &app.id, "10.0.0.1", later, new_window)
            .await
            .expect("count"),
        1,
        "a new window starts at one"
    );

    // Consent, given and widened.
    assert_eq!(
        clients::consent(&mut db, jane.id, &app.id)
            .await
            .expect("read"),
        None
    );
    clients::give_consent(
        &mut db,
        jane.id,
        &app.id,
        Scopes::requested("openid email"),
        T0,
    )
    .await
    .expect("give");
    clients::give_consent(
        &mut db,
        jane.id,
        &app.id,
        Scopes::requested("openid profile"),
        T0,
    )
    .await
    .expect("replace");
    assert_eq!(
        clients::consent(&mut db, jane.id, &app.id)
            .await
            .expect("read"),
        Some(Scopes::requested("openid profile"))
    );
    assert!(clients::remove(&mut db, &app.id).await.expect("remove"));
    assert!(!clients::remove(&mut db, &app.id).await.expect("again"));
    assert_eq!(
        clients::consent(&mut db, jane.id, &app.id)
            .await
            .expect("read"),
        None
    );
}

fn key_row(alg: SigningAlg, kid: &str) -> SigningKeyRow {
    SigningKeyRow {
        kid: kid.to_owned(),
        alg,
        generation: 0,
        private_key: vec![0x30, 1, 2, 3],
        public_jwk: "{}".to_owned(),
        created_at: T0,
        signs_from: T0,
        signs_until: None,
        published_until: None,
    }
}

pub async fn signing_keys_are_made_once_and_rotate_ahead_of_use(store: SqlStore) {
    let (a, b) = tokio::join!(
        async {
            let mut db = store.write().await.expect("connection");
            signing_keys::insert_first(&mut db, &key_row(SigningAlg::Rs256, "a")).await
        },
        async {
            let mut db = store.write().await.expect("connection");
            signing_keys::insert_first(&mut db, &key_row(SigningAlg::Rs256, "b")).await
        }
    );
    assert_eq!(
        [a.expect("insert"), b.expect("insert")]
            .iter()
            .filter(|x| **x)
            .count(),
        1,
        "two nodes starting at once store one first key"
    );
    let mut db = store.write().await.expect("connection");
    signing_keys::insert_first(&mut db, &key_row(SigningAlg::Es256, "e"))
        .await
        .expect("insert");
    assert_eq!(
        signing_keys::published(&mut db, T0)
            .await
            .expect("read")
            .len(),
        2
    );
    drop(db);

    let mut tx = store.begin().await.expect("begin");
    let switch = T0.plus(Span::minutes(10));
    let withdraw = switch.plus(Span::minutes(30));
    let generation = signing_keys::rotate(
        &mut tx,
        &signing_keys::Rotation {
            key: &key_row(SigningAlg::Rs256, "c"),
            switch_at: switch,
            withdraw_at: withdraw,
        },
    )
    .await
    .expect("rotate");
    tx.commit().await.expect("commit");
    assert_eq!(generation, 2);
    let mut db = store.write().await.expect("connection");
    let all = signing_keys::all(&mut db).await.expect("read");
    let first_rs = all
        .iter()
        .find(|k| k.alg == SigningAlg::Rs256 && k.generation == 1)
        .expect("first");
    assert_eq!(first_rs.signs_until, Some(switch));
    assert_eq!(first_rs.published_until, Some(withdraw));
    let es = all.iter().find(|k| k.alg == SigningAlg::Es256).expect("es");
    assert_eq!(es.signs_until, None, "another algorithm's key is untouched");
    assert_eq!(
        signing_keys::published(&mut db, T0)
            .await
            .expect("read")
            .len(),
        3
    );
    assert_eq!(
        signing_keys::published(&mut db, withdraw)
            .await
            .expect("read")
            .len(),
        2,
        "withdrawn once its tokens have expired"
    );
    signing_keys::reseal(&mut db, "c", b"GHK1sealed")
        .await
        .expect("reseal");
    let c = signing_keys::all(&mut db)
        .await
        .expect("read")
        .into_iter()
        .find(|k| k.kid == "c")
        .expect("c");
    assert_eq!(c.private_key, b"GHK1sealed");
}

fn code_for<'a>(
    hash: &'a TokenHash,
    client: &'a ClientId,
    account_id: i64,
    session_hash: &'a TokenHash,
) -> NewCode<'a> {
    NewCode {
        code_hash: hash,
        client_id: client,
        account_id,
        session_hash,
        redirect_uri: "https://app.example/cb",
        scopes: Scopes::requested("openid email"),
        nonce: Some("n"),
        code_challenge: None,
        auth_time: T0,
        second_factor: false,
        passkey: 0,
        now: T0,
        expires_at: T0.plus(Span::from_seconds(60)),
    }
}

pub async fn codes_redeem_once_refresh_tokens_rotate_once_and_grants_end_with_sessions(
    store: SqlStore,
) {
    let jane = imported_jane(&store).await;
    accounts::assign_subject(
        &mut store.write().await.expect("connection"),
        jane.id,
        "s-jane",
    )
    .await
    .expect("subject");
    assert_eq!(
        accounts::assign_subject(
            &mut store.write().await.expect("connection"),
            jane.id,
            "other"
        )
        .await
        .expect("subject"),
        Some("s-jane".to_owned()),
        "a subject, once given, stays"
    );
    let app = client(ClientKind::Confidential, Some("https://app.example/bcl"));
    registered(&store, &app).await;
    let browser = session(Some(jane.id));
    sessions::create(&mut store.write().await.expect("connection"), &browser)
        .await
        .expect("session");

    // A code is taken by one of two redemptions at once.
    let code = SecretToken::generate().expect("random").hash();
    grants::insert_code(
        &mut store.write().await.expect("connection"),
        &code_for(&code, &app.id, jane.id, &browser.id_hash),
    )
    .await
    .expect("code");
    let redeem = || async {
        let mut tx = store.begin().await.expect("begin");
        let r = grants::redeem_code(&mut tx, &code, T0)
            .await
            .expect("redeem");
        tx.commit().await.expect("commit");
        r
    };
    let (a, b) = tokio::join!(redeem(), redeem());
    let taken = match (a, b) {
        (Redeemed::Taken(c), Redeemed::UsedBefore(None))
        | (Redeemed::UsedBefore(None), Redeemed::Taken(c)) => c,
        other => panic!("one redemption takes the code: {other:?}"),
    };
    assert_eq!(taken.scope, Scopes::requested("openid email"));
    let mut tx = store.begin().await.expect("begin");
    let grant_id = grants::create_grant(
        &mut tx,
        &NewGrant {
            code: &taken,
            scopes: taken.scope,
            now: T0,
            expires_at: T0.plus(Span::hours(12)),
        },
    )
    .await
    .expect("grant");
    let access = SecretToken::generate().expect("random").hash();
    let refresh = SecretToken::generate().expect("random").hash();
    grants::insert_access_token(
        &mut tx,
        &access,
        grant_id,
        taken.scope,
        T0,
        T0.plus(Span::minutes(10)),
    )
    .await
    .expect("access");
    grants::insert_refresh_token(&mut tx, &refresh, grant_id, T0)
        .await
        .expect("refresh");
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    assert!(matches!(
        grants::redeem_code(&mut tx, &code, T0).await.expect("again"),
        Redeemed::UsedBefore(Some(id)) if id == grant_id
    ));
    let unknown = SecretToken::generate().expect("random").hash();
    assert!(matches!(
        grants::redeem_code(&mut tx, &unknown, T0)
            .await
            .expect("unknown"),
        Redeemed::Unknown
    ));
    drop(tx);
    let found = grants::access_token(&mut store.read().await.expect("connection"), &access)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(found.grant.id, grant_id);
    assert_eq!(
        grants::grant_of_refresh_token(&mut store.read().await.expect("connection"), &refresh)
            .await
            .expect("read"),
        Some(grant_id)
    );

    // A refresh token is taken once; presented again it is reuse.
    let take = || async {
        let mut tx = store.begin().await.expect("begin");
        let r = grants::take_refresh_token(&mut tx, &refresh, T0)
            .await
            .expect("take");
        tx.commit().await.expect("commit");
        r
    };
    let (a, b) = tokio::join!(take(), take());
    assert!(
        matches!(
            (&a, &b),
            (Rotation::Taken(_), Rotation::Reused(_)) | (Rotation::Reused(_), Rotation::Taken(_))
        ),
        "{a:?} {b:?}"
    );
    let other_client = ClientId::generate().expect("random");
    assert!(
        !grants::revoke_access_token(
            &mut store.write().await.expect("connection"),
            &access,
            &other_client,
            T0
        )
        .await
        .expect("revoke"),
        "another client's token is not revoked"
    );
    assert!(
        grants::revoke_access_token(
            &mut store.write().await.expect("connection"),
            &access,
            &app.id,
            T0
        )
        .await
        .expect("revoke")
    );

    // Ending the session ends the grant and queues one notice.
    let mut tx = store.begin().await.expect("begin");
    sessions::end(&mut tx, &browser.id_hash, T0)
        .await
        .expect("end");
    tx.commit().await.expect("commit");
    let grant = grants::grant(&mut store.read().await.expect("connection"), grant_id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(grant.revoked_at, Some(T0));
    assert_eq!(
        logout_notices::queued(&mut store.read().await.expect("connection"))
            .await
            .expect("count"),
        1
    );
    let mut tx = store.begin().await.expect("begin");
    assert!(
        grants::end_grant(&mut tx, grant_id, T0)
            .await
            .expect("end")
            .is_empty(),
        "a revoked grant is not revoked twice"
    );
    drop(tx);

    // Ending every session of the account ends every grant of it.
    let second = SecretToken::generate().expect("random").hash();
    let other_session = session(Some(jane.id));
    sessions::create(
        &mut store.write().await.expect("connection"),
        &other_session,
    )
    .await
    .expect("session");
    grants::insert_code(
        &mut store.write().await.expect("connection"),
        &code_for(&second, &app.id, jane.id, &other_session.id_hash),
    )
    .await
    .expect("code");
    let mut tx = store.begin().await.expect("begin");
    let Redeemed::Taken(code2) = grants::redeem_code(&mut tx, &second, T0)
        .await
        .expect("redeem")
    else {
        panic!("taken");
    };
    grants::create_grant(
        &mut tx,
        &NewGrant {
            code: &code2,
            scopes: code2.scope,
            now: T0,
            expires_at: T0.plus(Span::hours(12)),
        },
    )
    .await
    .expect("grant");
    assert_eq!(
        sessions::end_all_of(&mut tx, jane.id, T0)
            .await
            .expect("end"),
        1
    );
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    assert!(
        grants::end_for_account(&mut tx, jane.id, T0)
            .await
            .expect("end")
            .is_empty()
    );
    assert!(
        grants::end_for_session(&mut tx, &other_session.id_hash, T0)
            .await
            .expect("end")
            .is_empty()
    );
    drop(tx);

    // The worker claims each notice once, and records how it went.
    let mut db = store.write().await.expect("connection");
    let lease = T0.plus(Span::minutes(1));
    let claimed = logout_notices::claim(&mut db, T0, lease, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].subject, "s-jane");
    assert!(
        logout_notices::claim(&mut db, T0, lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    logout_notices::record(&mut db, claimed[0].id, &NoticeResult::Sent, T0)
        .await
        .expect("record");
    logout_notices::record(
        &mut db,
        claimed[1].id,
        &NoticeResult::Retry {
            error: "503".to_owned(),
            at: T0.plus(Span::from_seconds(10)),
        },
        T0,
    )
    .await
    .expect("record");
    assert_eq!(logout_notices::queued(&mut db).await.expect("count"), 1);
    assert_eq!(
        logout_notices::claim(&mut db, T0.plus(Span::from_seconds(10)), lease, 10)
            .await
            .expect("claim")
            .len(),
        1
    );
    let history = logout_notices::of_client(&mut db, &app.id, 10)
        .await
        .expect("list");
    assert_eq!(history.len(), 2);
    let week = T0.plus(Span::hours(24 * 8));
    assert_eq!(logout_notices::tidy(&mut db, week).await.expect("tidy"), 1);
    assert!(grants::tidy(&mut db, week).await.expect("tidy") >= 3);
}

//! The scenarios of the storage conformance suite, shared by `conformance.rs`
//! (every backend must pass each) and `indexes.rs` (every statement they run
//! must be answered through an index).
//!
//! Each scenario takes a fresh, migrated, empty store.

use gatehouse_domain::account::AllowedDomains;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::import::{plan_import, read_staff_file};
use gatehouse_domain::lockout::{AttemptCounter, ClaimDecision, LockoutPolicy};
use gatehouse_domain::reset_link::{LinkPurpose, LinkStatus, VoidReason};
use gatehouse_domain::{
    EmailAddress, RecoveryOutcome, Role, SecretToken, Span, Timestamp, UsernameKey,
};
use gatehouse_store::{
    AuditFilter, AuditRecord, Delivery, DeliveryResult, NewEmail, NewResetLink, OutboxEmail,
    PoolSettings, SessionRecord, SignInSuccess, SqlStore, accounts, attempts, audit, import,
    outbox, recovery, reset_links, second_factor, sessions,
};

mod oidc;
pub use oidc::*;
mod retention;
pub use retention::*;
mod passkeys;
pub use passkeys::*;
mod leases;
pub use leases::*;
mod leavers;
pub use leavers::*;

const T0: Timestamp = Timestamp::from_unix(1_800_000_000);

/// A fresh SQLite store in its own temporary folder.
pub async fn sqlite() -> (SqlStore, Box<dyn std::any::Any>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/test.db", dir.path().display());
    let store = SqlStore::open(&url, PoolSettings::default())
        .await
        .expect("open sqlite");
    (store, Box::new(dir))
}

/// A fresh PostgreSQL store in its own database.
pub async fn postgres() -> (SqlStore, Box<dyn std::any::Any>) {
    let db = gatehouse_testkit::TestDatabase::create()
        .await
        .expect("PostgreSQL must be running: see GATEHOUSE_TEST_POSTGRES_URL");
    let store = SqlStore::connect(&db.url, PoolSettings::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, Box::new(db))
}

const STAFF: &str = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
999 Demo Trust,,Jane,Smith,1985-03-14,jane.smith@nhs.net,E1\n\
432 Other Trust,,Jane,Smith,1985-03-14,jane.smith@nhs.net,\n\
999 Demo Trust,,John,Smith,1990-01-01,john.smith@nhs.net,E2\n";

pub async fn import(store: &SqlStore, csv: &str) -> gatehouse_store::ImportSummary {
    let allowed = AllowedDomains::parse("nhs.net").expect("valid");
    let rows = read_staff_file(csv.as_bytes(), jiff::civil::date(2026, 11, 25), &allowed)
        .expect("valid file");
    let (employers, accounts) = import::index(&mut store.read().await.expect("connection"))
        .await
        .expect("index");
    let plan = plan_import(rows, &employers, &accounts).expect("plan");
    let mut tx = store.begin().await.expect("begin");
    let summary = import::apply(&mut tx, &plan, T0).await.expect("apply");
    tx.commit().await.expect("commit");
    summary
}

pub fn key(s: &str) -> UsernameKey {
    UsernameKey::from_typed(s)
}

pub async fn imports_create_then_update_in_place(store: SqlStore) {
    let first = import(&store, STAFF).await;
    assert_eq!((first.created, first.employers_created), (3, 2));
    let again = import(&store, STAFF).await;
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 3));
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999jsmith01"),
    )
    .await
    .expect("read")
    .expect("exists");
    assert_eq!(jane.employer_name, "Demo Trust");
    assert_eq!(jane.password_hash, None);
    let changed = import(
        &store,
        &STAFF.replace(
            "Jane,Smith,1985-03-14,jane.smith@nhs.net,E1",
            "Jane,Jones,1985-03-14,jane.jones@nhs.net,E1",
        ),
    )
    .await;
    assert_eq!(changed.updated, 1);
    assert_eq!(changed.email_changes.len(), 1);
    assert_eq!(
        changed.email_changes[0].old_email.as_str(),
        "jane.smith@nhs.net"
    );
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists");
    assert_eq!(
        (jane.last_name.as_str(), jane.email.as_str()),
        ("Jones", "jane.jones@nhs.net")
    );
}

/// More accounts than the store reads in one page when an import loads
/// every stored account (`IMPORT_INDEX_PAGE`, 20,000).
pub async fn reimporting_more_accounts_than_one_page_finds_every_one(store: SqlStore) {
    let mut csv = String::from(
        "employer,username,first_name,last_name,date_of_birth,email,employee_number\n",
    );
    for i in 0..20_050 {
        csv.push_str(&format!(
            "999 Demo Trust,P{i:05},Pat,Doe,1980-01-01,pat.doe.{i}@nhs.net,N{i}\n"
        ));
    }
    assert_eq!(import(&store, &csv).await.created, 20_050);
    let again = import(&store, &csv).await;
    assert_eq!(
        (again.created, again.updated, again.unchanged),
        (0, 0, 20_050)
    );
}

pub async fn second_factors_accept_each_step_once_and_codes_once(store: SqlStore) {
    import(&store, STAFF).await;
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists");
    assert!(
        accounts::set_role(
            &mut store.write().await.expect("connection"),
            jane.id,
            Role::Helpdesk,
            T0
        )
        .await
        .expect("role")
    );
    assert_eq!(
        accounts::by_id(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("read")
            .expect("exists")
            .role,
        Role::Helpdesk
    );
    assert!(
        second_factor::get(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        second_factor::start(
            &mut store.write().await.expect("connection"),
            jane.id,
            "AAAA",
            T0
        )
        .await
        .expect("start")
    );
    // Restarting an unconfirmed enrolment replaces its secret.
    assert!(
        second_factor::start(
            &mut store.write().await.expect("connection"),
            jane.id,
            "BBBB",
            T0
        )
        .await
        .expect("restart")
    );
    let row = second_factor::get(&mut store.read().await.expect("connection"), jane.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!((row.totp_secret.as_str(), row.confirmed_at), ("BBBB", None));

    // Ten nodes given the same code at once: exactly one accepts it.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            second_factor::accept_step(
                &mut store.write().await.expect("connection"),
                jane.id,
                1000,
                T0,
            )
            .await
            .expect("accept")
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += usize::from(t.await.expect("task"));
    }
    assert_eq!(accepted, 1);
    let row = second_factor::get(&mut store.read().await.expect("connection"), jane.id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!((row.confirmed_at, row.last_step), (Some(T0), Some(1000)));
    assert!(
        !second_factor::accept_step(
            &mut store.write().await.expect("connection"),
            jane.id,
            999,
            T0
        )
        .await
        .expect("older")
    );
    assert!(
        second_factor::accept_step(
            &mut store.write().await.expect("connection"),
            jane.id,
            1001,
            T0
        )
        .await
        .expect("newer")
    );
    // A confirmed factor is never replaced by a new enrolment.
    assert!(
        !second_factor::start(
            &mut store.write().await.expect("connection"),
            jane.id,
            "CCCC",
            T0
        )
        .await
        .expect("start")
    );

    let codes: Vec<_> = (0..3)
        .map(|_| SecretToken::generate().expect("random").hash())
        .collect();
    in_tx::replace_recovery_codes(&store, jane.id, &codes, T0)
        .await
        .expect("codes");
    assert_eq!(
        second_factor::recovery_codes_left(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("count"),
        3
    );
    assert!(
        second_factor::use_recovery_code(
            &mut store.write().await.expect("connection"),
            jane.id,
            &codes[1],
            T0
        )
        .await
        .expect("use")
    );
    assert!(
        !second_factor::use_recovery_code(
            &mut store.write().await.expect("connection"),
            jane.id,
            &codes[1],
            T0
        )
        .await
        .expect("reuse")
    );
    assert_eq!(
        second_factor::recovery_codes_left(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("count"),
        2
    );
    let john = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH02"),
    )
    .await
    .expect("read")
    .expect("exists");
    assert!(
        !second_factor::use_recovery_code(
            &mut store.write().await.expect("connection"),
            john.id,
            &codes[0],
            T0
        )
        .await
        .expect("other account")
    );

    let mut s = session(Some(jane.id));
    sessions::create(&mut store.write().await.expect("connection"), &s)
        .await
        .expect("create");
    sessions::pass_second_factor(
        &mut store.write().await.expect("connection"),
        &s.id_hash,
        T0,
    )
    .await
    .expect("mark");
    s = sessions::get(&mut store.read().await.expect("connection"), &s.id_hash)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(s.second_factor_at, Some(T0));

    // A lost phone and no codes left: the operator clears it.
    in_tx::clear_second_factor(&store, jane.id)
        .await
        .expect("clear");
    assert!(
        second_factor::get(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        second_factor::recovery_codes_left(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("count"),
        0
    );
    assert!(
        sessions::get(&mut store.read().await.expect("connection"), &s.id_hash)
            .await
            .expect("read")
            .is_none(),
        "signed out"
    );
    assert!(
        second_factor::start(
            &mut store.write().await.expect("connection"),
            jane.id,
            "DDDD",
            T0
        )
        .await
        .expect("enrol again")
    );
}

pub async fn the_helpdesk_finds_people_every_way_without_regard_to_case(store: SqlStore) {
    import(&store, STAFF).await;
    let names = |found: Vec<gatehouse_store::AccountRecord>| {
        found
            .into_iter()
            .map(|a| a.username.to_string())
            .collect::<Vec<_>>()
    };
    let search = |q: &'static str, limit: u32| {
        let store = store.clone();
        async move {
            accounts::search(&mut store.read().await.expect("connection"), q, limit)
                .await
                .expect("search")
        }
    };
    assert_eq!(
        names(search("smith", 50).await).len(),
        3,
        "surname, any case"
    );
    assert_eq!(names(search("SMITH", 50).await).len(), 3);
    assert_eq!(
        names(search(" Jane.Smith@NHS.net ", 50).await).len(),
        2,
        "email"
    );
    assert_eq!(
        names(search("999jsmith01", 50).await),
        vec!["999JSMITH01"],
        "username"
    );
    assert_eq!(
        names(search("E2", 50).await),
        vec!["999JSMITH02"],
        "employee number"
    );
    assert!(search("   ", 50).await.is_empty());
    assert!(search("nobody", 50).await.is_empty());
    assert_eq!(search("smith", 1).await.len(), 1, "the limit");
    assert_eq!(
        names(search("jane SMITH", 50).await).len(),
        2,
        "first name and surname"
    );
    assert!(search("amir smith", 50).await.is_empty());
}

pub async fn staged_imports_belong_to_their_uploader_and_expire(store: SqlStore) {
    import(&store, STAFF).await;
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists");
    let file = b"employer,username\n999,X\n".to_vec();
    let id = import::stage(
        &mut store.write().await.expect("connection"),
        jane.id,
        "staff.csv",
        &file,
        T0,
    )
    .await
    .expect("stage");
    let earlier = Timestamp::from_unix(T0.unix() - 1);
    assert_eq!(
        import::staged(
            &mut store.read().await.expect("connection"),
            id,
            jane.id,
            earlier
        )
        .await
        .expect("read"),
        Some(("staff.csv".to_owned(), file))
    );
    assert_eq!(
        import::staged(
            &mut store.read().await.expect("connection"),
            id,
            jane.id + 1,
            earlier
        )
        .await
        .expect("read"),
        None,
        "another account's"
    );
    let later = Timestamp::from_unix(T0.unix() + 1);
    assert_eq!(
        import::staged(
            &mut store.read().await.expect("connection"),
            id,
            jane.id,
            later
        )
        .await
        .expect("read"),
        None,
        "too old"
    );
    assert_eq!(
        import::drop_staged(&mut store.write().await.expect("connection"), None, later)
            .await
            .expect("purge"),
        1
    );
    assert_eq!(
        import::drop_staged(
            &mut store.write().await.expect("connection"),
            Some(id),
            later
        )
        .await
        .expect("drop"),
        0
    );
}

pub async fn attempt_counters_never_lose_a_concurrent_update(store: SqlStore) {
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            attempts::update(
                &mut store.write().await.expect("connection"),
                &key("ANYONE"),
                T0,
                &mut |mut c: AttemptCounter| {
                    c.claims += 1;
                    Some(c)
                },
            )
            .await
            .expect("update")
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(
        attempts::read(&mut store.read().await.expect("connection"), &key("anyone"))
            .await
            .expect("read")
            .claims,
        40
    );
}

pub async fn concurrent_claims_check_at_most_the_threshold(store: SqlStore) {
    let policy = LockoutPolicy::default();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut decision = None;
            attempts::update(
                &mut store.write().await.expect("connection"),
                &key("VICTIM"),
                T0,
                &mut |c: AttemptCounter| {
                    let d = c.claim(T0, &policy);
                    decision = Some(d);
                    match d {
                        ClaimDecision::Check(claim) => Some(claim.next),
                        _ => None,
                    }
                },
            )
            .await
            .expect("update");
            decision
        }));
    }
    let mut checks = 0;
    for t in tasks {
        if let Some(ClaimDecision::Check(_)) = t.await.expect("task") {
            checks += 1;
        }
    }
    assert_eq!(checks, 3);
    assert!(
        attempts::read(&mut store.read().await.expect("connection"), &key("victim"))
            .await
            .expect("read")
            .locked_at(T0)
            .is_some()
    );
}

pub async fn a_link_is_spent_exactly_once_under_concurrency(store: SqlStore) {
    import(&store, STAFF).await;
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists");
    let token = SecretToken::generate().expect("random");
    let mut tx = store.begin().await.expect("begin");
    let link = reset_links::insert(&mut tx, &new_link(jane.id, &token.hash()))
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    let found = reset_links::by_hash(&mut store.read().await.expect("connection"), &token.hash())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(found.id, link);
    assert_eq!(found.record.status(T0), LinkStatus::Usable);

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin().await.expect("begin");
            let won = reset_links::consume(&mut tx, link, T0.plus(Span::minutes(5)))
                .await
                .expect("consume");
            tx.commit().await.expect("commit");
            won
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.expect("task") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let used = reset_links::by_id(&mut store.read().await.expect("connection"), link)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(used.record.status(T0), LinkStatus::Used);
}

pub async fn expired_and_voided_links_cannot_be_spent(store: SqlStore) {
    import(&store, STAFF).await;
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists");
    let mut tx = store.begin().await.expect("begin");
    let old = reset_links::insert(
        &mut tx,
        &new_link(jane.id, &SecretToken::generate().expect("r").hash()),
    )
    .await
    .expect("insert");
    let new = reset_links::insert(
        &mut tx,
        &new_link(jane.id, &SecretToken::generate().expect("r").hash()),
    )
    .await
    .expect("insert");
    assert_eq!(
        reset_links::void(&mut tx, jane.id, VoidReason::Replaced, T0, Some(new))
            .await
            .expect("void"),
        1
    );
    assert!(
        !reset_links::consume(&mut tx, old, T0)
            .await
            .expect("consume")
    );
    assert!(
        !reset_links::consume(&mut tx, new, T0.plus(Span::hours(4)))
            .await
            .expect("consume")
    );
    assert!(
        reset_links::consume(
            &mut tx,
            new,
            T0.plus(Span::hours(4)).minus(Span::from_seconds(1))
        )
        .await
        .expect("consume")
    );
    tx.commit().await.expect("commit");
    let old = reset_links::by_id(&mut store.read().await.expect("connection"), old)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        old.record.status(T0),
        LinkStatus::Voided(VoidReason::Replaced)
    );
}

pub async fn passwords_keep_a_bounded_history(store: SqlStore) {
    import(&store, STAFF).await;
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists");
    for i in 0..6 {
        let mut tx = store.begin().await.expect("begin");
        accounts::set_password(&mut tx, jane.id, &format!("hash{i}"), T0, 4, None)
            .await
            .expect("set");
        tx.commit().await.expect("commit");
    }
    let history = accounts::password_history(&mut store.read().await.expect("connection"), jane.id)
        .await
        .expect("history");
    assert_eq!(history, ["hash5", "hash4", "hash3", "hash2"]);
    in_tx::upgrade_password_hash(&store, jane.id, "hash5", "better5")
        .await
        .expect("upgrade");
    let jane = accounts::by_id(&mut store.read().await.expect("connection"), jane.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(jane.password_hash.as_deref(), Some("better5"));
    assert_eq!(
        accounts::password_history(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("history")[0],
        "better5"
    );
}

/// A reset link for `account_id` issued at T0, for 4 hours.
pub fn new_link(account_id: i64, hash: &gatehouse_domain::TokenHash) -> NewResetLink<'_> {
    NewResetLink {
        account_id,
        hash,
        purpose: LinkPurpose::Reset,
        recovery_request_id: None,
        now: T0,
        expires_at: T0.plus(Span::hours(4)),
    }
}

/// A set-up link's purpose is kept; the window it opens to set up a second
/// factor is kept with its password, and closed by any other password, an
/// email change, a second-factor reset, or disabling the account.
pub async fn set_up_links_open_a_window_that_other_changes_close(store: SqlStore) {
    let jane = imported_jane(&store).await;
    let until = T0.plus(Span::hours(4));
    let window = || async {
        accounts::by_id(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("read")
            .expect("exists")
            .second_factor_setup_until
    };
    let token = SecretToken::generate().expect("random");
    let mut tx = store.begin().await.expect("begin");
    let id = reset_links::insert(
        &mut tx,
        &NewResetLink {
            purpose: LinkPurpose::SetUp,
            ..new_link(jane.id, &token.hash())
        },
    )
    .await
    .expect("insert");
    accounts::set_password(&mut tx, jane.id, "h1", T0, 4, Some(until))
        .await
        .expect("set");
    tx.commit().await.expect("commit");
    let link = reset_links::by_id(&mut store.read().await.expect("connection"), id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(link.purpose, LinkPurpose::SetUp);
    assert_eq!(window().await, Some(until));

    let closes: [&str; 4] = ["password", "email", "second factor", "disabled"];
    for what in closes {
        let mut tx = store.begin().await.expect("begin");
        accounts::set_password(&mut tx, jane.id, "h2", T0, 4, Some(until))
            .await
            .expect("set");
        tx.commit().await.expect("commit");
        assert_eq!(window().await, Some(until));
        match what {
            "password" => {
                let mut tx = store.begin().await.expect("begin");
                accounts::set_password(&mut tx, jane.id, "h3", T0, 4, None)
                    .await
                    .expect("set");
                tx.commit().await.expect("commit");
            }
            "email" => {
                let mut tx = store.begin().await.expect("begin");
                accounts::set_email(
                    &mut tx,
                    jane.id,
                    &EmailAddress::from_trusted("jane.new@nhs.net".to_owned()),
                    T0,
                )
                .await
                .expect("set");
                tx.commit().await.expect("commit");
            }
            "second factor" => in_tx::clear_second_factor(&store, jane.id)
                .await
                .expect("clear"),
            _ => {
                in_tx::set_disabled(&store, jane.id, Some(T0))
                    .await
                    .expect("disable");
                in_tx::set_disabled(&store, jane.id, None)
                    .await
                    .expect("enable");
            }
        }
        assert_eq!(window().await, None, "{what} closes the window");
    }
}

/// Every node reads the same key, however many start at once; a rotation
/// keeps the generation before it and forgets older ones.
pub async fn service_keys_are_made_once_and_rotate(store: SqlStore) {
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            in_tx::service_keys(&store, "forms", Some(&[i; 32]), T0)
                .await
                .expect("keys")
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("task"));
    }
    let first = seen[0].clone();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].generation, 1);
    assert!(
        seen.iter()
            .all(|keys| keys.len() == 1 && keys[0].secret == first[0].secret),
        "every node got the same key"
    );
    // Another purpose has a key of its own.
    let other = in_tx::service_keys(&store, "other", Some(&[9; 32]), T0)
        .await
        .expect("keys");
    assert_eq!(other[0].secret, vec![9; 32]);

    assert_eq!(
        in_tx::rotate_service_key(&store, "forms", &[20; 32], T0)
            .await
            .expect("rotate"),
        2
    );
    assert_eq!(
        in_tx::rotate_service_key(&store, "forms", &[30; 32], T0)
            .await
            .expect("rotate"),
        3
    );
    let keys = in_tx::service_keys(&store, "forms", None, T0)
        .await
        .expect("keys");
    let generations: Vec<(i64, u8)> = keys.iter().map(|k| (k.generation, k.secret[0])).collect();
    assert_eq!(generations, [(3, 30), (2, 20)]);
}

pub fn session(account_id: Option<i64>) -> SessionRecord {
    SessionRecord {
        id_hash: SecretToken::generate().expect("random").hash(),
        account_id,
        csrf_token: SecretToken::generate().expect("random").encode(),
        created_at: T0,
        last_seen_at: T0,
        flash: None,
        second_factor_at: None,
        user_agent: Some("Mozilla/5.0 (Windows NT 10.0) Chrome/131.0".to_owned()),
        client_ip: Some("192.0.2.9".to_owned()),
        passkey: 0,
    }
}

/// Imports the staff file and returns Jane Smith's account at Demo Trust.
async fn imported_jane(store: &SqlStore) -> gatehouse_store::AccountRecord {
    import(store, STAFF).await;
    accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists")
}

/// The last 20 audit events, newest first.
async fn recent_audit_events(store: &SqlStore) -> Vec<gatehouse_store::AuditRow> {
    audit::list(
        &mut store.read().await.expect("connection"),
        &AuditFilter {
            limit: 20,
            ..AuditFilter::default()
        },
    )
    .await
    .expect("audit")
}

/// Claims an attempt on `username` at `now`: the claim and the counter's version.
async fn claim(
    store: &SqlStore,
    username: &str,
    now: Timestamp,
) -> (gatehouse_domain::lockout::Claim, i64) {
    let policy = LockoutPolicy::default();
    let mut claimed = None;
    let mut change = |c: AttemptCounter| {
        let ClaimDecision::Check(claim) = c.claim(now, &policy) else {
            return None;
        };
        claimed = Some(claim);
        Some(claim.next)
    };
    let update = attempts::update(
        &mut store.write().await.expect("connection"),
        &key(username),
        now,
        &mut change,
    )
    .await
    .expect("claim");
    let claim = claimed.expect("not locked");
    assert_eq!(update.after, Some(claim.next));
    (claim, update.version.expect("written"))
}

pub async fn a_sign_in_success_is_written_whole_or_not_at_all(store: SqlStore) {
    let jane = imported_jane(&store).await;
    let policy = LockoutPolicy::default();
    claim(&store, "999JSMITH01", T0).await;
    let (second, version) = claim(&store, "999JSMITH01", T0).await;
    let jane_key = key("999JSMITH01");
    let claimed = attempts::read(&mut store.read().await.expect("connection"), &jane_key)
        .await
        .expect("read");
    assert_eq!(claimed, second.next);
    let previous = session(Some(jane.id));
    sessions::create(&mut store.write().await.expect("connection"), &previous)
        .await
        .expect("create");
    let new = session(Some(jane.id));
    let audit = AuditRecord {
        at: T0,
        event: AuditEvent::SignInSucceeded,
        actor: Some("999JSMITH01".to_owned()),
        account_id: Some(jane.id),
        username: Some("999JSMITH01".to_owned()),
        client_ip: Some("192.0.2.7".to_owned()),
        detail: Some("right password".to_owned()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0".to_owned()),
    };
    // Values no sign-in would leave here, so that every column the
    // trigger writes is seen to be written.
    let released = AttemptCounter {
        second_factor_failures: 1,
        ..second.next.after_success(second.ticket, &policy)
    };
    let later = T0.plus(Span::minutes(1));
    let success = |claimed_version| SignInSuccess {
        counter_key: &jane_key,
        claimed_version,
        counter: &released,
        account_id: jane.id,
        now: later,
        previous_session: Some(&previous.id_hash),
        session: &new,
        audit: &audit,
    };

    // What a success writes, as the store reads it back: the counter,
    // whether the previous session is still there, the new session, the
    // account's sign-in time, and the success's audit records.
    let state = || async {
        let events = recent_audit_events(&store).await;
        (
            attempts::read(&mut store.read().await.expect("connection"), &jane_key)
                .await
                .expect("read"),
            sessions::get(
                &mut store.read().await.expect("connection"),
                &previous.id_hash,
            )
            .await
            .expect("read")
            .is_some(),
            sessions::get(&mut store.read().await.expect("connection"), &new.id_hash)
                .await
                .expect("read"),
            accounts::by_id(&mut store.read().await.expect("connection"), jane.id)
                .await
                .expect("read")
                .expect("exists")
                .last_sign_in_at,
            events
                .into_iter()
                .filter(|e| e.event == AuditEvent::SignInSucceeded)
                .map(|row| row.record)
                .map(|e| {
                    (
                        e.at,
                        e.actor,
                        e.account_id,
                        e.username,
                        e.client_ip,
                        e.detail,
                        e.user_agent,
                    )
                })
                .collect::<Vec<_>>(),
        )
    };

    // The first claim's version is stale (the second claim moved it on):
    // nothing at all is written.
    assert!(
        !attempts::record_sign_in_success(
            &mut store.write().await.expect("connection"),
            &success(version - 1)
        )
        .await
        .expect("refused, not failed")
    );
    let (counter, previous_kept, created, last_sign_in, events) = state().await;
    assert_eq!(counter, claimed);
    assert!(previous_kept);
    assert!(created.is_none());
    assert_eq!(last_sign_in, None);
    assert!(events.is_empty());

    // At the claimed version, everything.
    assert!(
        attempts::record_sign_in_success(
            &mut store.write().await.expect("connection"),
            &success(version)
        )
        .await
        .expect("written")
    );
    let (counter, previous_kept, created, last_sign_in, events) = state().await;
    assert_eq!(counter, released);
    assert!(!previous_kept);
    let created = created.expect("created");
    assert_eq!(
        (
            created.account_id,
            created.csrf_token,
            created.created_at,
            created.last_seen_at,
            created.user_agent,
            created.client_ip
        ),
        (
            Some(jane.id),
            new.csrf_token.clone(),
            T0,
            T0,
            new.user_agent.clone(),
            new.client_ip.clone()
        )
    );
    assert_eq!(last_sign_in, Some(later));
    assert_eq!(
        events,
        [(
            T0,
            audit.actor.clone(),
            audit.account_id,
            audit.username.clone(),
            audit.client_ip.clone(),
            audit.detail.clone(),
            audit.user_agent.clone()
        )]
    );

    // The write moved the version on: the same success cannot be written twice.
    assert!(
        !attempts::record_sign_in_success(
            &mut store.write().await.expect("connection"),
            &success(version)
        )
        .await
        .expect("refused")
    );
}

/// Two sign-ins that both finish against the same claimed version (a
/// duplicated request, say): exactly one writes.
pub async fn concurrent_sign_in_successes_write_once(store: SqlStore) {
    let jane = imported_jane(&store).await;
    let policy = LockoutPolicy::default();
    let (claimed, version) = claim(&store, "999JSMITH01", T0).await;
    let released = claimed.next.after_success(claimed.ticket, &policy);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let new = session(Some(jane.id));
            let written = attempts::record_sign_in_success(
                &mut store.write().await.expect("connection"),
                &SignInSuccess {
                    counter_key: &key("999JSMITH01"),
                    claimed_version: version,
                    counter: &released,
                    account_id: jane.id,
                    now: T0,
                    previous_session: None,
                    session: &new,
                    audit: &AuditRecord {
                        ..AuditRecord::new(T0, AuditEvent::SignInSucceeded)
                    },
                },
            )
            .await
            .expect("written or refused");
            (
                written,
                sessions::get(&mut store.read().await.expect("connection"), &new.id_hash)
                    .await
                    .expect("read")
                    .is_some(),
            )
        }));
    }
    let mut written = 0;
    for t in tasks {
        let (ok, exists) = t.await.expect("task");
        assert_eq!(
            ok, exists,
            "a session exists exactly when its write succeeded"
        );
        written += usize::from(ok);
    }
    assert_eq!(written, 1);
    assert_eq!(
        sessions::count_of(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("count"),
        1
    );
}

pub async fn sessions_round_trip_and_end_together(store: SqlStore) {
    import(&store, STAFF).await;
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists");
    let a = session(Some(jane.id));
    let b = session(Some(jane.id));
    let anon = session(None);
    for s in [&a, &b, &anon] {
        sessions::create(&mut store.write().await.expect("connection"), s)
            .await
            .expect("create");
    }
    sessions::set_flash(
        &mut store.write().await.expect("connection"),
        &anon.id_hash,
        Some("hello"),
    )
    .await
    .expect("flash");
    sessions::touch(
        &mut store.write().await.expect("connection"),
        &a.id_hash,
        T0.plus(Span::minutes(1)),
    )
    .await
    .expect("touch");
    let read = sessions::get(&mut store.read().await.expect("connection"), &a.id_hash)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.last_seen_at, T0.plus(Span::minutes(1)));
    assert_eq!(read.csrf_token, a.csrf_token);
    assert_eq!(
        sessions::get(&mut store.read().await.expect("connection"), &anon.id_hash)
            .await
            .expect("read")
            .expect("exists")
            .flash
            .as_deref(),
        Some("hello")
    );
    assert_eq!(
        sessions::count_of(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("count"),
        2
    );
    // A lock makes the account's sessions pass the second factor again.
    sessions::pass_second_factor(
        &mut store.write().await.expect("connection"),
        &a.id_hash,
        T0,
    )
    .await
    .expect("pass");
    sessions::pass_second_factor(
        &mut store.write().await.expect("connection"),
        &anon.id_hash,
        T0,
    )
    .await
    .expect("pass");
    let passed = |s: &SessionRecord| {
        let store = store.clone();
        let hash = s.id_hash;
        async move {
            sessions::get(&mut store.read().await.expect("connection"), &hash)
                .await
                .expect("read")
                .expect("exists")
                .second_factor_at
        }
    };
    assert_eq!(passed(&a).await, Some(T0));
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        sessions::forget_second_factor_passes(&mut tx, jane.id)
            .await
            .expect("forget"),
        1
    );
    tx.commit().await.expect("commit");
    assert_eq!(passed(&a).await, None);
    assert_eq!(
        passed(&anon).await,
        Some(T0),
        "other accounts' sessions keep theirs"
    );
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        sessions::end_all_of(&mut tx, jane.id, T0)
            .await
            .expect("delete"),
        2
    );
    tx.commit().await.expect("commit");
    assert!(
        sessions::get(&mut store.read().await.expect("connection"), &b.id_hash)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        sessions::get(&mut store.read().await.expect("connection"), &anon.id_hash)
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        in_tx::purge(&store, T0.plus(Span::hours(1)), Span::minutes(30))
            .await
            .expect("purge"),
        1
    );
    assert!(
        sessions::get(&mut store.read().await.expect("connection"), &anon.id_hash)
            .await
            .expect("read")
            .is_none()
    );
}

pub async fn recovery_requests_are_claimed_by_one_worker_at_a_time(store: SqlStore) {
    let mut tx = store.begin().await.expect("begin");
    for i in 0..10 {
        recovery::insert(
            &mut tx,
            &format!("p{i}@nhs.net"),
            "1985-03-14",
            None,
            "10.0.0.1",
            T0,
        )
        .await
        .expect("insert");
    }
    assert_eq!(
        recovery::count_from(&mut tx, "10.0.0.1", T0.minus(Span::hours(1)))
            .await
            .expect("count"),
        10
    );
    tx.commit().await.expect("commit");
    let lease = T0.plus(Span::minutes(1));
    let claim = || async {
        let mut conn = store.write().await.expect("connection");
        recovery::claim(&mut conn, T0, lease, 6).await
    };
    let (a, b) = tokio::join!(claim(), claim());
    let (a, b) = (a.expect("claim"), b.expect("claim"));
    assert_eq!(a.len() + b.len(), 10);
    let mut ids: Vec<i64> = a.iter().chain(b.iter()).map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10, "no request was claimed twice");
    assert!(
        recovery::claim(&mut store.write().await.expect("connection"), T0, lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    // A crashed worker's lease runs out and another takes the work.
    let again = recovery::claim(
        &mut store.write().await.expect("connection"),
        lease,
        lease.plus(Span::minutes(1)),
        20,
    )
    .await
    .expect("claim");
    assert_eq!(again.len(), 10);
    let mut tx = store.begin().await.expect("begin");
    assert!(
        recovery::finish(&mut tx, again[0].id, RecoveryOutcome::NoMatch, 0, lease)
            .await
            .expect("finish")
    );
    assert!(
        !recovery::finish(&mut tx, again[0].id, RecoveryOutcome::NoMatch, 0, lease)
            .await
            .expect("finish")
    );
    tx.commit().await.expect("commit");
    let summaries = recovery::for_email(
        &mut store.read().await.expect("connection"),
        "p0@nhs.net",
        10,
    )
    .await
    .expect("list");
    assert_eq!(summaries[0].outcome, Some(RecoveryOutcome::NoMatch));
}

pub async fn outbox_delivers_scrubs_and_retries(store: SqlStore) {
    let email = NewEmail {
        kind: "recovery",
        recipient: EmailAddress::from_trusted("Jane.Smith@nhs.net".to_owned()),
        subject: "Subject".to_owned(),
        text_body: "secret link".to_owned(),
        html_body: "<p>secret link</p>".to_owned(),
        account_id: None,
        recovery_request_id: None,
        send_by: Some(T0.plus(Span::hours(4))),
    };
    // The second to another address: emails to one address go out one at
    // a time (see the next scenario).
    let to_pat = NewEmail {
        recipient: EmailAddress::from_trusted("Pat.Jones@nhs.net".to_owned()),
        ..email.clone()
    };
    let mut tx = store.begin().await.expect("begin");
    let first = outbox::enqueue(&mut tx, &email, T0).await.expect("enqueue");
    let second = outbox::enqueue(&mut tx, &to_pat, T0)
        .await
        .expect("enqueue");
    assert_eq!(
        outbox::count_since(
            &mut tx,
            "jane.smith@nhs.net",
            "recovery",
            T0.minus(Span::hours(1))
        )
        .await
        .expect("count"),
        1
    );
    tx.commit().await.expect("commit");
    let lease = T0.plus(Span::minutes(1));
    let claimed = outbox::claim(&mut store.write().await.expect("connection"), T0, lease, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].id, first);
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[0].text_body, "secret link");
    assert!(
        outbox::claim(&mut store.write().await.expect("connection"), T0, lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    // Two tries that ended together are recorded in one write, each as its own.
    let retry_at = T0.plus(Span::from_seconds(10));
    in_tx::record_deliveries(
        &store,
        &[
            Delivery {
                email: claimed[0].clone(),
                result: DeliveryResult::Sent("250 OK queued".to_owned()),
            },
            Delivery {
                email: claimed[1].clone(),
                result: DeliveryResult::Retry {
                    error: "421 busy".to_owned(),
                    at: retry_at,
                },
            },
        ],
        T0,
    )
    .await
    .expect("record");
    in_tx::record_deliveries(&store, &[], T0)
        .await
        .expect("nothing to record");
    assert!(
        outbox::claim(&mut store.write().await.expect("connection"), T0, lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "not due yet"
    );
    let again = outbox::claim(
        &mut store.write().await.expect("connection"),
        retry_at,
        retry_at.plus(Span::minutes(1)),
        10,
    )
    .await
    .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (second, 2));
    in_tx::record_deliveries(
        &store,
        &[Delivery {
            email: again[0].clone(),
            result: DeliveryResult::Expired("links expired".to_owned()),
        }],
        retry_at,
    )
    .await
    .expect("record");
    let mut listed = Vec::new();
    for address in ["pat.jones@nhs.net", "jane.smith@nhs.net"] {
        listed.extend(
            outbox::to_address(&mut store.read().await.expect("connection"), address, 10)
                .await
                .expect("list"),
        );
    }
    let statuses: Vec<&str> = listed.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["expired", "sent"]);
    assert_eq!(listed[1].smtp_reply.as_deref(), Some("250 OK queued"));
    assert!(
        outbox::claim(
            &mut store.write().await.expect("connection"),
            retry_at.plus(Span::hours(9)),
            retry_at.plus(Span::hours(10)),
            10
        )
        .await
        .expect("claim")
        .is_empty()
    );
    let events = recent_audit_events(&store).await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "email.expired",
            "email.retrying",
            "email.sent",
            "email.queued",
            "email.queued"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| !e.detail.clone().unwrap_or_default().contains("secret"))
    );
}

/// A recovery email replaces the links of the one before it, and people
/// open the newest email in their inbox: emails to one address must arrive
/// in the order they were queued, even when the older one is waiting for a
/// retry when the newer one is queued.
pub async fn emails_to_one_address_go_out_in_the_order_queued(store: SqlStore) {
    let to = |recipient: &str, body: &str| NewEmail {
        kind: "recovery",
        recipient: EmailAddress::from_trusted(recipient.to_owned()),
        subject: "Subject".to_owned(),
        text_body: body.to_owned(),
        html_body: format!("<p>{body}</p>"),
        account_id: None,
        recovery_request_id: None,
        send_by: Some(T0.plus(Span::hours(4))),
    };
    let mut tx = store.begin().await.expect("begin");
    let older = outbox::enqueue(&mut tx, &to("Jane.Smith@nhs.net", "older"), T0)
        .await
        .expect("enqueue");
    let other = outbox::enqueue(&mut tx, &to("pat.jones@nhs.net", "other"), T0)
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    let ids = |emails: &[OutboxEmail]| emails.iter().map(|e| e.id).collect::<Vec<_>>();
    let claimed = outbox::claim(
        &mut store.write().await.expect("connection"),
        T0,
        T0.plus(Span::minutes(1)),
        10,
    )
    .await
    .expect("claim");
    assert_eq!(ids(&claimed), [older, other]);
    // The older one is refused for now: its retry is ten minutes away.
    in_tx::record_deliveries(
        &store,
        &[
            Delivery {
                email: claimed[0].clone(),
                result: DeliveryResult::Retry {
                    error: "451 try later".to_owned(),
                    at: T0.plus(Span::minutes(10)),
                },
            },
            Delivery {
                email: claimed[1].clone(),
                result: DeliveryResult::Sent("250 OK".to_owned()),
            },
        ],
        T0,
    )
    .await
    .expect("record");

    // A minute later a newer email to the same address (written in other
    // capitals) is queued: the older one is made due at once and goes first.
    let at = T0.plus(Span::minutes(1));
    let mut tx = store.begin().await.expect("begin");
    let newer = outbox::enqueue(&mut tx, &to("JANE.SMITH@nhs.net", "newer"), at)
        .await
        .expect("enqueue");
    assert_eq!(
        outbox::count_since(
            &mut tx,
            "jane.smith@nhs.net",
            "recovery",
            T0.minus(Span::hours(1))
        )
        .await
        .expect("count"),
        2,
        "both count towards the address's hourly limit, whatever their state"
    );
    tx.commit().await.expect("commit");
    let lease = at.plus(Span::minutes(1));
    let claimed = outbox::claim(&mut store.write().await.expect("connection"), at, lease, 10)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), [older], "the older one first, and alone");
    assert!(
        outbox::claim(&mut store.write().await.expect("connection"), at, lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "the newer one waits while the older one is being sent"
    );
    in_tx::record_deliveries(
        &store,
        &[Delivery {
            email: claimed[0].clone(),
            result: DeliveryResult::Sent("250 OK".to_owned()),
        }],
        at,
    )
    .await
    .expect("record");
    let claimed = outbox::claim(&mut store.write().await.expect("connection"), at, lease, 10)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), [newer], "then the newer one");
    assert_eq!(claimed[0].text_body, "newer");
}

pub async fn audit_events_filter_by_account_and_event(store: SqlStore) {
    let (a, b) = (AuditEvent::SignInFailed, AuditEvent::SignInSucceeded);
    for (i, event) in [a, b, a].into_iter().enumerate() {
        audit::record(
            &mut store.write().await.expect("connection"),
            &AuditRecord {
                account_id: Some(i as i64 % 2),
                ..AuditRecord::new(T0, event)
            },
        )
        .await
        .expect("audit");
    }
    let only_a = audit::list(
        &mut store.read().await.expect("connection"),
        &AuditFilter {
            event: Some(a),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(only_a.len(), 2);
    let account_1 = audit::list(
        &mut store.read().await.expect("connection"),
        &AuditFilter {
            account_id: Some(1),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(account_1.len(), 1);
    assert_eq!(account_1[0].event, b);

    for (at, actor) in [(T0.unix() + 10, "admin X"), (T0.unix() + 20, "helpdesk Y")] {
        audit::record(
            &mut store.write().await.expect("connection"),
            &AuditRecord {
                actor: Some(actor.to_owned()),
                ..AuditRecord::new(Timestamp::from_unix(at), AuditEvent::EmailChanged)
            },
        )
        .await
        .expect("audit");
    }
    let by = |actor: Option<&str>, since: Option<i64>, until: Option<i64>| AuditFilter {
        actor: actor.map(str::to_owned),
        since: since.map(|s| Timestamp::from_unix(T0.unix() + s)),
        until: until.map(|s| Timestamp::from_unix(T0.unix() + s)),
        limit: 10,
        ..Default::default()
    };
    let count = |f: AuditFilter| {
        let store = store.clone();
        async move {
            audit::list(&mut store.read().await.expect("connection"), &f)
                .await
                .expect("list")
                .len()
        }
    };
    assert_eq!(count(by(Some("admin X"), None, None)).await, 1);
    assert_eq!(
        count(by(None, Some(10), None)).await,
        2,
        "since is inclusive"
    );
    assert_eq!(
        count(by(None, Some(10), Some(20))).await,
        1,
        "until is exclusive"
    );
    assert_eq!(count(by(Some("helpdesk Y"), Some(0), Some(30))).await, 1);
    assert_eq!(count(by(None, None, Some(1))).await, 3, "the first three");

    // Per-client throttles count one event from one address over a window.
    let (d, e) = (AuditEvent::ResetLinkUnknown, AuditEvent::RecoveryRequested);
    for (at, event, ip) in [
        (0, d, "10.0.0.1"),
        (50, d, "10.0.0.1"),
        (60, d, "10.0.0.1"),
        (60, e, "10.0.0.1"),
        (60, d, "10.0.0.2"),
    ] {
        audit::record(
            &mut store.write().await.expect("connection"),
            &AuditRecord {
                client_ip: Some(ip.to_owned()),
                ..AuditRecord::new(Timestamp::from_unix(T0.unix() + at), event)
            },
        )
        .await
        .expect("audit");
    }
    let mut tx = store.begin().await.expect("begin");
    let from = |s: i64| Timestamp::from_unix(T0.unix() + s);
    assert_eq!(
        audit::count_from(&mut tx, "10.0.0.1", d, from(-1))
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        audit::count_from(&mut tx, "10.0.0.1", d, from(0))
            .await
            .expect("count"),
        2,
        "since is exclusive"
    );
    assert_eq!(
        audit::count_from(&mut tx, "10.0.0.3", d, from(-1))
            .await
            .expect("count"),
        0
    );
    tx.commit().await.expect("commit");
}

pub async fn accounts_disable_and_enable_and_locks_can_be_lifted(store: SqlStore) {
    import(&store, STAFF).await;
    let jane = accounts::by_username(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read")
    .expect("exists");
    sessions::create(
        &mut store.write().await.expect("connection"),
        &session(Some(jane.id)),
    )
    .await
    .expect("session");
    assert!(
        in_tx::set_disabled(&store, jane.id, Some(T0))
            .await
            .expect("disable")
    );
    let read = accounts::by_id(&mut store.read().await.expect("connection"), jane.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.disabled_at, Some(T0));
    assert_eq!(
        sessions::count_of(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("count"),
        0,
        "sessions end"
    );
    let mut tx = store.begin().await.expect("begin");
    let matched = accounts::for_recovery(&mut tx, "jane.smith@nhs.net", "1985-03-14", None)
        .await
        .expect("match");
    tx.commit().await.expect("commit");
    assert_eq!(
        matched
            .iter()
            .map(|a| a.username.as_str())
            .collect::<Vec<_>>(),
        ["432JSMITH01"],
        "recovery skips a disabled account"
    );
    assert!(
        in_tx::set_disabled(&store, jane.id, None)
            .await
            .expect("enable")
    );
    assert_eq!(
        accounts::by_id(&mut store.read().await.expect("connection"), jane.id)
            .await
            .expect("read")
            .expect("exists")
            .disabled_at,
        None
    );
    assert!(
        !in_tx::set_disabled(&store, -1, Some(T0))
            .await
            .expect("nobody")
    );

    let policy = LockoutPolicy::default();
    for _ in 0..policy.threshold {
        attempts::update(
            &mut store.write().await.expect("connection"),
            &key("999JSMITH01"),
            T0,
            &mut |c: AttemptCounter| match c.claim(T0, &policy) {
                ClaimDecision::Check(claim) => Some(claim.next),
                _ => None,
            },
        )
        .await
        .expect("claim");
    }
    assert!(
        attempts::read(
            &mut store.read().await.expect("connection"),
            &key("999JSMITH01")
        )
        .await
        .expect("read")
        .locked_at(T0)
        .is_some()
    );
    attempts::lift_lock(
        &mut store.write().await.expect("connection"),
        &key("999JSMITH01"),
        T0,
    )
    .await
    .expect("lift");
    let after = attempts::read(
        &mut store.read().await.expect("connection"),
        &key("999JSMITH01"),
    )
    .await
    .expect("read");
    assert_eq!((after.locked_at(T0), after.consecutive), (None, 0));
}

pub async fn recovery_matching_ignores_case_and_narrows_by_username(store: SqlStore) {
    import(&store, STAFF).await;
    let mut tx = store.begin().await.expect("begin");
    let both = accounts::for_recovery(&mut tx, "jane.smith@nhs.net", "1985-03-14", None)
        .await
        .expect("match");
    let names: Vec<&str> = both.iter().map(|a| a.username.as_str()).collect();
    assert_eq!(names, ["432JSMITH01", "999JSMITH01"]);
    let one = accounts::for_recovery(
        &mut tx,
        "jane.smith@nhs.net",
        "1985-03-14",
        Some("999JSMITH01"),
    )
    .await
    .expect("match");
    assert_eq!(one.len(), 1);
    assert!(
        accounts::for_recovery(&mut tx, "jane.smith@nhs.net", "1985-03-15", None)
            .await
            .expect("match")
            .is_empty()
    );
}

/// The store's operations that must run in a transaction, each in one of
/// its own, as the services use them.
mod in_tx {
    use gatehouse_domain::{Span, Timestamp, TokenHash};
    use gatehouse_store::{
        Delivery, Result, ServiceKey, SqlStore, accounts, housekeeping, keys, outbox, second_factor,
    };

    pub async fn replace_recovery_codes(
        store: &SqlStore,
        account_id: i64,
        hashes: &[TokenHash],
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = store.begin().await?;
        second_factor::replace_recovery_codes(&mut tx, account_id, hashes, now).await?;
        Ok(tx.commit().await?)
    }

    pub async fn upgrade_password_hash(
        store: &SqlStore,
        account_id: i64,
        old: &str,
        new: &str,
    ) -> Result<()> {
        let mut tx = store.begin().await?;
        accounts::upgrade_password_hash(&mut tx, account_id, old, new).await?;
        Ok(tx.commit().await?)
    }

    pub async fn set_disabled(
        store: &SqlStore,
        account_id: i64,
        at: Option<Timestamp>,
    ) -> Result<bool> {
        let mut tx = store.begin().await?;
        let changed = accounts::set_disabled(&mut tx, account_id, at).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn clear_second_factor(store: &SqlStore, account_id: i64) -> Result<()> {
        let mut tx = store.begin().await?;
        second_factor::clear(&mut tx, account_id).await?;
        Ok(tx.commit().await?)
    }

    pub async fn service_keys(
        store: &SqlStore,
        purpose: &str,
        first: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Vec<ServiceKey>> {
        if let Some(first) = first {
            keys::create_first(&mut *store.write().await?, purpose, first, now).await?;
        }
        keys::newest(&mut *store.read().await?, purpose).await
    }

    pub async fn rotate_service_key(
        store: &SqlStore,
        purpose: &str,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<i64> {
        let mut tx = store.begin().await?;
        let generation = keys::rotate(&mut tx, purpose, secret, now).await?;
        tx.commit().await?;
        Ok(generation)
    }

    pub async fn purge(store: &SqlStore, now: Timestamp, idle: Span) -> Result<u64> {
        let mut tx = store.begin().await?;
        let removed = housekeeping::purge(&mut tx, now, idle).await?;
        tx.commit().await?;
        Ok(removed)
    }

    pub async fn record_deliveries(
        store: &SqlStore,
        deliveries: &[Delivery],
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = store.begin().await?;
        outbox::record_deliveries(&mut tx, deliveries, now).await?;
        Ok(tx.commit().await?)
    }
}

/// Calls `$callback!($($args)* scenario, …)` with every scenario's name.
macro_rules! with_scenarios {
    ($callback:ident ! ($($args:tt)*)) => {
        $callback! {$($args)*
            imports_create_then_update_in_place,
            reimporting_more_accounts_than_one_page_finds_every_one,
            second_factors_accept_each_step_once_and_codes_once,
            the_helpdesk_finds_people_every_way_without_regard_to_case,
            accounts_disable_and_enable_and_locks_can_be_lifted,
            staged_imports_belong_to_their_uploader_and_expire,
            attempt_counters_never_lose_a_concurrent_update,
            concurrent_claims_check_at_most_the_threshold,
            a_link_is_spent_exactly_once_under_concurrency,
            expired_and_voided_links_cannot_be_spent,
            passwords_keep_a_bounded_history,
            sessions_round_trip_and_end_together,
            a_sign_in_success_is_written_whole_or_not_at_all,
            concurrent_sign_in_successes_write_once,
            recovery_requests_are_claimed_by_one_worker_at_a_time,
            outbox_delivers_scrubs_and_retries,
            outbox_leases_are_renewed_only_while_they_run,
            leavers_and_returners_change_a_batch_at_a_time,
            emails_to_one_address_go_out_in_the_order_queued,
            audit_events_filter_by_account_and_event,
            recovery_matching_ignores_case_and_narrows_by_username,
            set_up_links_open_a_window_that_other_changes_close,
            service_keys_are_made_once_and_rotate,
            clients_register_rotate_disable_and_count_wrong_secrets,
            signing_keys_are_made_once_and_rotate_ahead_of_use,
            codes_redeem_once_refresh_tokens_rotate_once_and_grants_end_with_sessions,
            retention_forgets_only_what_is_past_its_age_in_batches,
            erasing_a_person_keeps_their_username_and_audit_trail_only,
            passkeys_are_unique_and_their_counter_moves_once,
            passkey_ceremonies_are_taken_once_and_expire,
        }
    };
}

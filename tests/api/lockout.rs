//! Sign-in and the lockout (docs/design.md invariants 1 and 3).

use std::sync::Arc;

use gatehouse_domain::Span;

use crate::helpers::*;

async fn attempt(app: &TestApp, username: &str, password: &str) -> (u16, Vec<String>) {
    let response = app.log_in(username, password).await;
    let status = response.status().as_u16();
    let page = response.text().await.expect("body");
    (status, error_messages(&page))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_wrong_passwords_lock_for_twelve_hours_and_say_until_when() {
    let app = app_with_password(&[]).await;
    let (_, m) = attempt(&app, "999AKHAN01", "wrong password 1").await;
    assert_eq!(
        m,
        [
            "The username or password is incorrect. You have 2 attempts left before your account is locked for 12 hours."
        ]
    );
    let (_, m) = attempt(&app, "999akhan01 ", "wrong password 2").await;
    assert_eq!(
        m,
        [
            "The username or password is incorrect. You have 1 attempt left before your account is locked for 12 hours."
        ]
    );
    // Case and surrounding spaces do not make a new username.
    let (_, m) = attempt(&app, " 999AKHAN01", "wrong password 3").await;
    let locked = "Your account is locked until 9:00pm on 25 November 2026, because the password was entered incorrectly 3 times. You cannot log in or reset your password until then, and nobody can lift the lock early.";
    assert_eq!(m, [locked]);
    // The right password is not even checked while locked.
    let checks = app.gatehouse.hasher().verifications();
    let (status, m) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(
        (status, m.as_slice()),
        (200, [locked.to_owned()].as_slice())
    );
    assert_eq!(app.gatehouse.hasher().verifications(), checks);
    // More wrong passwords while locked change nothing: the same end, no
    // checks, and the count is not raised.
    for i in 4..=6 {
        let (_, m) = attempt(&app, "999AKHAN01", &format!("wrong password {i}")).await;
        assert_eq!(m, [locked]);
    }
    assert_eq!(app.gatehouse.hasher().verifications(), checks);

    app.advance(Span::from_seconds(12 * 3600 - 1));
    let (_, m) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(m, [locked]);
    app.advance(Span::from_seconds(1));
    let signed_in = app.log_in("999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(
        signed_in.status(),
        303,
        "the lock ends by itself after 12 hours"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_success_clears_the_count() {
    let app = app_with_password(&[]).await;
    attempt(&app, "999AKHAN01", "wrong password 1").await;
    attempt(&app, "999AKHAN01", "wrong password 2").await;
    assert_eq!(app.log_in("999AKHAN01", GOOD_PASSWORD).await.status(), 303);
    let (_, m) = attempt(&app, "999AKHAN01", "wrong password 3").await;
    assert!(m[0].contains("You have 2 attempts left"), "{m:?}");
}

/// A right password is usually recorded in one statement that checks the
/// attempt counter is still as its claim left it. Here another attempt
/// claims in between (a trigger stands in for it, claiming again the moment
/// the right password's claim is written): that statement is refused, and
/// the sign-in is recorded the long way, in a transaction that reads the
/// counter afresh. The person is signed in, and the other attempt stays
/// counted until it is decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_password_is_recorded_even_if_another_attempt_claims_meanwhile() {
    let app = app_with_password(&[]).await;
    assert_eq!(sign_in_attempts(&app, "999AKHAN01").await.claims, 0);
    let another = "UPDATE sign_in_attempts SET consecutive = consecutive + 1, \
                   total = total + 1, claims = claims + 1, version = version + 1 \
                   WHERE username_key = NEW.username_key";
    if on_postgres() {
        execute_sql(
            &app.database_url(),
            &format!(
                "CREATE FUNCTION another_attempt() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN {another}; RETURN NULL; END $$; \
                 CREATE TRIGGER another_attempt AFTER INSERT OR UPDATE ON sign_in_attempts \
                 FOR EACH ROW WHEN (NEW.claims = 1) EXECUTE FUNCTION another_attempt()"
            ),
        )
        .await;
    } else {
        execute_sql(
            &app.database_url(),
            &format!(
                "CREATE TRIGGER another_attempt_new AFTER INSERT ON sign_in_attempts \
                 WHEN NEW.claims = 1 BEGIN {another}; END; \
                 CREATE TRIGGER another_attempt AFTER UPDATE ON sign_in_attempts \
                 WHEN NEW.claims = 1 BEGIN {another}; END"
            ),
        )
        .await;
    }
    let browser = client();
    let signed_in = app.log_in_as(&browser, "999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/account");
    let account = app.page_as(&browser, "/account").await;
    assert!(account.contains("Sign out"), "{account}");
    assert_eq!(audit_events(&app, "sign_in.succeeded").await.len(), 1);
    let counter = sign_in_attempts(&app, "999AKHAN01").await;
    assert_eq!(
        (counter.claims, counter.consecutive),
        (2, 1),
        "the right password's claim released, the other one's kept"
    );
    let (_, m) = attempt(&app, "999AKHAN01", "wrong password").await;
    assert!(m[0].contains("You have 1 attempt left"), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_usernames_get_the_same_messages_lock_included_and_the_same_work() {
    let app = app_with_password(&[]).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..4 {
        let before = app.gatehouse.hasher().verifications();
        known.push(attempt(&app, "999AKHAN01", &format!("wrong password {i}")).await);
        let after_known = app.gatehouse.hasher().verifications();
        unknown.push(attempt(&app, "999NOBODY01", &format!("wrong password {i}")).await);
        let after_unknown = app.gatehouse.hasher().verifications();
        // A real account and an unknown username cost the same: one argon2id
        // verification (against a dummy hash for the unknown one), or none once locked.
        assert_eq!(
            after_known - before,
            after_unknown - after_known,
            "attempt {i}"
        );
    }
    assert_eq!(known, unknown);
    assert!(unknown[2].1[0].starts_with("Your account is locked until"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_without_a_password_behaves_like_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (status, m) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(status, 200);
    assert!(m[0].starts_with("The username or password is incorrect"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_wrong_passwords_check_exactly_three_then_lock() {
    let app = Arc::new(app_with_password(&[]).await);
    let before = app.gatehouse.hasher().verifications();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            attempt(&app, "999AKHAN01", &format!("wrong guess number {i}")).await
        }));
    }
    let mut incorrect = 0;
    let mut locked = 0;
    for t in tasks {
        let (status, m) = t.await.expect("task");
        assert_eq!(status, 200, "{m:?}");
        if m[0].starts_with("The username or password is incorrect") {
            incorrect += 1;
        } else if m[0].starts_with("Your account is locked until") {
            locked += 1;
        } else {
            panic!("unexpected message {m:?}");
        }
    }
    assert_eq!(
        app.gatehouse.hasher().verifications() - before,
        3,
        "exactly the threshold of passwords were checked"
    );
    assert_eq!(
        incorrect, 2,
        "two attempts said 'incorrect', the third locked"
    );
    assert_eq!(locked, 48);
    let (_, m) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
    assert!(
        m[0].starts_with("Your account is locked until"),
        "locked everywhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_right_password_inside_a_burst_of_guesses_does_not_beat_the_lock() {
    let app = Arc::new(app_with_password(&[]).await);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let app = app.clone();
        let password = if i == 15 {
            GOOD_PASSWORD.to_owned()
        } else {
            format!("guess {i} wrong")
        };
        tasks.push(tokio::spawn(async move {
            app.log_in("999AKHAN01", &password).await.status().as_u16()
        }));
    }
    let mut successes = 0;
    for t in tasks {
        if t.await.expect("task") == 303 {
            successes += 1;
        }
    }
    // At most one success, and only if the right password was among the
    // first three checked; never more than three checks in all.
    assert!(successes <= 1);
    let counter = sign_in_attempts(&app, "999AKHAN01").await;
    assert!(counter.consecutive <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_failures_in_all_disable_the_password_until_a_reset() {
    let app = app_with_password(&[("GATEHOUSE_LOCKOUT_MAX_FAILURES", "6")]).await;
    for _ in 0..2 {
        for i in 0..3 {
            attempt(&app, "999AKHAN01", &format!("wrong {i} again")).await;
        }
        app.advance(Span::hours(12));
    }
    let (_, m) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
    assert!(m[0].starts_with("Your password no longer works"), "{m:?}");
    // A reset brings it back.
    app.set_password(
        "amir.khan@nhs.net",
        ("2", "7", "1990"),
        "999AKHAN01",
        "teapot sunrise harbour",
    )
    .await;
    assert_eq!(
        app.log_in("999AKHAN01", "teapot sunrise harbour")
            .await
            .status(),
        303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_fields_are_asked_for_and_not_counted() {
    let app = app_with_password(&[]).await;
    let (_, m) = attempt(&app, "", "").await;
    assert_eq!(m, ["Enter your username", "Enter your password"]);
    for _ in 0..5 {
        attempt(&app, "999AKHAN01", "").await;
    }
    assert_eq!(app.log_in("999AKHAN01", GOOD_PASSWORD).await.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_password_is_counted_without_hashing() {
    let app = app_with_password(&[]).await;
    let before = app.gatehouse.hasher().verifications();
    let huge = "x".repeat(5000);
    let (_, m) = attempt(&app, "999AKHAN01", &huge).await;
    assert!(m[0].contains("You have 2 attempts left"));
    assert_eq!(app.gatehouse.hasher().verifications(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hash_with_old_parameters_is_upgraded_at_sign_in() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let amir = account(&app, "999AKHAN01").await;
    // A hash made years ago with weaker parameters.
    let weak = gatehouse_core::PasswordHasher::new(
        gatehouse_core::HashParams {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        },
        1,
        std::time::Duration::from_secs(1),
    )
    .expect("hasher");
    let permit = weak.permit().await.expect("permit");
    let old = weak.hash(&permit, GOOD_PASSWORD).await.expect("hash");
    app.db
        .set_password(amir.id, &old, START)
        .await
        .expect("set");

    assert_eq!(app.log_in("999AKHAN01", GOOD_PASSWORD).await.status(), 303);
    let stored = app
        .db
        .account_by_id(amir.id)
        .await
        .expect("read")
        .expect("exists");
    let hash = stored.password_hash.expect("hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert_eq!(
        app.log_in("999AKHAN01", GOOD_PASSWORD).await.status(),
        303,
        "the new hash works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_hashing_is_at_capacity_sign_in_says_busy_and_counts_nothing() {
    let app = app_with_password(&[]).await;
    // Every permit is taken (as by a flood of sign-ins).
    let mut held = Vec::new();
    while let Ok(permit) = app.gatehouse.hasher().permit().await {
        held.push(permit);
    }
    assert_eq!(held.len(), 4, "twice the 2 hashing slots are admitted");
    let r = app.log_in("999AKHAN01", "wrong password here").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("The service is busy")
    );
    drop(held);
    let (_, m) = attempt(&app, "999AKHAN01", "wrong password again").await;
    assert!(
        m[0].contains("You have 2 attempts left"),
        "the busy attempt was not counted: {m:?}"
    );
}

/// The lockout as the seed sets it, and as device cookies soften it.
mod device_cookies {
    use super::*;

    const LOCKED: &str = "Your account is locked until 9:00pm on 25 November 2026, because the password was entered incorrectly 3 times. You cannot log in or reset your password until then, and nobody can lift the lock early.";

    fn device_cookie_of(response: &reqwest::Response) -> Option<String> {
        set_cookies(response)
            .into_iter()
            .find(|v| v.starts_with("gatehouse-device="))
    }

    /// Three guesses from clients the service has never seen.
    async fn attacker_guesses(app: &TestApp) {
        for i in 1..=3 {
            attempt(app, "999AKHAN01", &format!("a guess number {i}")).await;
        }
        let (_, m) = attempt(app, "999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(
            m,
            [LOCKED],
            "the guesser is locked out, right password or not"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn by_default_three_guesses_from_anywhere_lock_the_owner_out_for_twelve_hours() {
        let app = app_with_password(&[]).await;
        let own = client();
        let first = app.log_in_as(&own, "999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(first.status(), 303);
        assert_eq!(device_cookie_of(&first), None, "off by default");
        attacker_guesses(&app).await;
        let again = app.log_in("999AKHAN01", GOOD_PASSWORD).await;
        let m = error_messages(&again.text().await.expect("body"));
        assert_eq!(m, [LOCKED], "the seed's rule: the owner is locked out too");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn with_device_cookies_the_owners_browser_gets_in_while_guessers_stay_locked() {
        let app = app_with_password(&[("GATEHOUSE_DEVICE_COOKIES", "true")]).await;
        let own = client();
        let first = app.log_in_as(&own, "999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(first.status(), 303);
        let cookie = device_cookie_of(&first).expect("a device cookie");
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Lax")
                && cookie.contains("Max-Age=2592000"),
            "{cookie}"
        );

        attacker_guesses(&app).await;
        let checks = app.gatehouse.hasher().verifications();
        let own = client_with_cookie(&app, &cookie);
        let again = app.log_in_as(&own, "999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(again.status(), 303, "the remembered browser signs in");
        assert_eq!(app.gatehouse.hasher().verifications(), checks + 1);
        let (_, m) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(m, [LOCKED], "and the lock still holds for everyone else");

        // A cookie the service did not issue counts as an unknown client.
        let invented = gatehouse_domain::SecretToken::generate()
            .expect("token")
            .encode();
        let forger = client_with_cookie(&app, &format!("gatehouse-device={invented}"));
        let forged = app.log_in_as(&forger, "999AKHAN01", GOOD_PASSWORD).await;
        let m = error_messages(&forged.text().await.expect("body"));
        assert_eq!(m, [LOCKED]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_remembered_browser_has_three_attempts_of_its_own() {
        let app = app_with_password(&[("GATEHOUSE_DEVICE_COOKIES", "true")]).await;
        let first = app.log_in("999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(first.status(), 303);
        let own = client_with_cookie(&app, &device_cookie_of(&first).expect("a device cookie"));
        for i in 1..=3 {
            app.log_in_as(&own, "999AKHAN01", &format!("mistyped {i}"))
                .await;
        }
        let locked = app.log_in_as(&own, "999AKHAN01", GOOD_PASSWORD).await;
        let m = error_messages(&locked.text().await.expect("body"));
        assert_eq!(
            m,
            [LOCKED],
            "three failures lock the remembered browser too"
        );
        // Its failures were its own: anywhere else the account is not locked.
        let (status, _) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(status, 303);
    }
}

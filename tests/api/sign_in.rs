//! Sign-in, passwords and the lockout (docs/design.md invariants 1 and 3;
//! docs/security.md, cases C30–C34 and D40–D58): the count and the lock,
//! lengths, Unicode and spaces from the reset form to the sign-in, identical
//! failures, the same work on every path, the counter keyed to the account,
//! usernames tried before they existed, and log injection.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_domain::{SecretToken, Span};

use crate::helpers::*;

/// The status of a sign-in and its error messages.
async fn attempt(app: &TestApp, username: &str, password: &str) -> (u16, Vec<String>) {
    let response = app.browser().log_in(username, password).await;
    let status = response.status().as_u16();
    let page = response.body().await;
    (status, error_messages(&page))
}

/// Security cases D42, D43, D44, D46 (docs/security.md).
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
    let signed_in = app.browser().log_in("999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(
        signed_in.status(),
        303,
        "the lock ends by itself after 12 hours"
    );
}

/// Security case D42 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_success_clears_the_count() {
    let app = app_with_password(&[]).await;
    attempt(&app, "999AKHAN01", "wrong password 1").await;
    attempt(&app, "999AKHAN01", "wrong password 2").await;
    assert_eq!(app.log_in_status("999AKHAN01", GOOD_PASSWORD).await, 303);
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
    let browser = app.browser();
    let signed_in = browser.log_in("999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/account");
    let account = browser.page("/account").await;
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

/// Security cases D40, D41, D50 (docs/security.md).
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

/// Security case D40 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_without_a_password_behaves_like_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (status, m) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(status, 200);
    assert!(m[0].starts_with("The username or password is incorrect"));
}

/// Security cases D47, H94, H100 (docs/security.md).
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
    let (incorrect, locked) = tally_refusals(tasks).await;
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

/// Security cases D48, H100 (docs/security.md).
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
            app.log_in_status("999AKHAN01", &password).await.as_u16()
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

/// Security cases C35, D51 (docs/security.md).
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
    app.set_password(&AMIR, "teapot sunrise harbour").await;
    assert_eq!(
        app.log_in_status("999AKHAN01", "teapot sunrise harbour")
            .await,
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
    assert_eq!(app.log_in_status("999AKHAN01", GOOD_PASSWORD).await, 303);
}

/// Security case D55 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_password_is_counted_without_hashing() {
    let app = app_with_password(&[]).await;
    let before = app.gatehouse.hasher().verifications();
    let huge = "x".repeat(5000);
    let (_, m) = attempt(&app, "999AKHAN01", &huge).await;
    assert!(m[0].contains("You have 2 attempts left"));
    assert_eq!(app.gatehouse.hasher().verifications(), before);
}

/// Security case H97 (docs/security.md).
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

    assert_eq!(app.log_in_status("999AKHAN01", GOOD_PASSWORD).await, 303);
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
        app.log_in_status("999AKHAN01", GOOD_PASSWORD).await,
        303,
        "the new hash works"
    );
}

/// Security case H94 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_hashing_is_at_capacity_sign_in_says_busy_and_counts_nothing() {
    let app = app_with_password(&[]).await;
    // Every permit is taken (as by a flood of sign-ins).
    let mut held = Vec::new();
    while let Ok(permit) = app.gatehouse.hasher().permit().await {
        held.push(permit);
    }
    assert_eq!(held.len(), 4, "twice the 2 hashing slots are admitted");
    let r = app
        .browser()
        .log_in("999AKHAN01", "wrong password here")
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(r.body().await.contains("The service is busy"));
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
        let own = app.browser();
        let first = own.log_in("999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(first.status(), 303);
        assert_eq!(device_cookie_of(&first), None, "off by default");
        attacker_guesses(&app).await;
        let again = app.browser().log_in("999AKHAN01", GOOD_PASSWORD).await;
        let m = error_messages(&again.body().await);
        assert_eq!(m, [LOCKED], "the seed's rule: the owner is locked out too");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn with_device_cookies_the_owners_browser_gets_in_while_guessers_stay_locked() {
        let app = app_with_password(&[("GATEHOUSE_DEVICE_COOKIES", "true")]).await;
        let own = app.browser();
        let first = own.log_in("999AKHAN01", GOOD_PASSWORD).await;
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
        let own = app.browser().with_cookie(&cookie);
        let again = own.log_in("999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(again.status(), 303, "the remembered browser signs in");
        assert_eq!(app.gatehouse.hasher().verifications(), checks + 1);
        let (_, m) = attempt(&app, "999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(m, [LOCKED], "and the lock still holds for everyone else");

        // A cookie the service did not issue counts as an unknown client.
        let invented = gatehouse_domain::SecretToken::generate()
            .expect("token")
            .encode();
        let forger = app
            .browser()
            .with_cookie(&format!("gatehouse-device={invented}"));
        let forged = forger.log_in("999AKHAN01", GOOD_PASSWORD).await;
        let m = error_messages(&forged.body().await);
        assert_eq!(m, [LOCKED]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_remembered_browser_has_three_attempts_of_its_own() {
        let app = app_with_password(&[("GATEHOUSE_DEVICE_COOKIES", "true")]).await;
        let first = app.browser().log_in("999AKHAN01", GOOD_PASSWORD).await;
        assert_eq!(first.status(), 303);
        let own = app
            .browser()
            .with_cookie(&device_cookie_of(&first).expect("a device cookie"));
        for i in 1..=3 {
            own.log_in("999AKHAN01", &format!("mistyped {i}")).await;
        }
        let locked = own.log_in("999AKHAN01", GOOD_PASSWORD).await;
        let m = error_messages(&locked.body().await);
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

/// A browser holding a fresh link for Amir, and its form token (the clock is
/// moved on first, so the three emails an hour never get in the way).
async fn open_amirs_form(app: &TestApp) -> (Browser, String, String) {
    app.advance(Span::hours(1));
    let link = app.reset_link(&AMIR).await;
    let c = app.browser();
    let csrf = c.open_reset_form(&link).await;
    (c, csrf, link)
}

async fn post_reset(c: &Browser, csrf: &str, password: &str) -> reqwest::Response {
    c.post_form(
        "/reset",
        csrf,
        &reset_form("999AKHAN01", password, password),
    )
    .await
}

/// Sets Amir's password through a fresh link; panics if refused.
async fn set_amirs_password(app: &TestApp, password: &str) {
    let (c, csrf, _) = open_amirs_form(app).await;
    let r = post_reset(&c, &csrf, password).await;
    let status = r.status();
    let page = r.body().await;
    assert_eq!(
        status,
        303,
        "{password:?} refused: {:?}",
        error_messages(&page)
    );
}

/// POSTs `body` over a bare connection and returns what came back before
/// the server closed it. The server answers an oversized body without
/// reading it, so writing and reading run side by side (an HTTP client that
/// stops at the first failed write would lose the answer).
async fn raw_post(app: &TestApp, path: &str, cookie: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let writing = tokio::spawn(async move {
        // The server may close before taking it all; that is the point.
        let _ = writer.write_all(request.as_bytes()).await;
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buffer)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    writing.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A password of `n` varied printable characters that no rule refuses.
fn varied(n: usize) -> String {
    const ALPHABET: &[u8] = b"qZ7#mK2!vR9xLp4&Tw8@Nf3%Hb6*Jd5+Gs1=Yc0?";
    (0..n)
        .map(|i| char::from(ALPHABET[(i * 17 + i / ALPHABET.len()) % ALPHABET.len()]))
        .collect()
}

/// Security case C30 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passwords_of_12_to_256_characters_are_accepted_whole_and_others_refused_with_a_reason() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (c, csrf, link) = open_amirs_form(&app).await;

    // A 1 MB body, from a browser holding the same link, is refused at once
    // with 400, and the link survives it.
    let (cookie, other_csrf) = {
        let bare = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let path = link
            .strip_prefix(PUBLIC_URL)
            .expect("links use the public URL");
        let opened = bare.get(app.url(path)).send().await.expect("GET");
        let cookie = opened.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let page = bare
            .get(app.url("/reset"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("GET")
            .body()
            .await;
        (cookie, csrf_token(&page).expect("the form"))
    };
    let huge = "x".repeat(1_000_000);
    let body = format!(
        "username=999AKHAN01&password={huge}&confirm-password={huge}&csrf_token={other_csrf}"
    );
    let started = Instant::now();
    let head = raw_post(&app, "/reset", &cookie, &body).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("Reference:"), "the usual error page");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    for (password, reason) in [
        (
            varied(11),
            "Your password must be at least 12 characters long",
        ),
        (varied(257), "Your password must be 256 characters or fewer"),
    ] {
        let r = post_reset(&c, &csrf, &password).await;
        assert_eq!(r.status(), 200);
        let messages = error_messages(&r.body().await);
        assert!(
            messages.iter().any(|m| m == reason),
            "{}: {messages:?}",
            password.len()
        );
    }
    let stored = app
        .db
        .reset_link_by_hash(
            &SecretToken::parse(link.rsplit('/').next().expect("token"))
                .expect("token")
                .hash(),
        )
        .await
        .expect("read")
        .expect("link");
    assert_eq!(stored.record.used_at, None, "no refusal spent the link");
    assert_eq!(post_reset(&c, &csrf, &varied(12)).await.status(), 303);
    assert_eq!(app.log_in_status("999AKHAN01", &varied(12)).await, 303);

    for n in [64, 256] {
        let password: String = varied(n + 1)[1..].to_owned();
        set_amirs_password(&app, &password).await;
        assert_eq!(app.log_in_status("999AKHAN01", &password).await, 303, "{n}");
    }
    // 80 characters work only whole: nothing is cut at 72 (bcrypt's limit) or anywhere else.
    let eighty: String = varied(82)[2..].to_owned();
    set_amirs_password(&app, &eighty).await;
    for cut in [72, 79] {
        let (status, m) = attempt(&app, "999AKHAN01", &eighty[..cut]).await;
        assert_eq!(
            status, 200,
            "the first {cut} characters are not the password"
        );
        assert!(
            m[0].starts_with("The username or password is incorrect"),
            "{m:?}"
        );
    }
    assert_eq!(app.log_in_status("999AKHAN01", &eighty).await, 303);
}

/// Security case C33 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emoji_cjk_and_accents_are_counted_in_code_points_and_sign_in_in_either_normal_form() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    // 11 emoji are 44 bytes and 22 UTF-16 units, but 11 characters: too short.
    let emoji = "😀🐈🌧🚲🎻🍋🧩🦉🌋🪁🧲🛶";
    let (c, csrf, _) = open_amirs_form(&app).await;
    let eleven: String = emoji.chars().take(11).collect();
    let r = post_reset(&c, &csrf, &eleven).await;
    assert_error(
        &r.body().await,
        "Your password must be at least 12 characters long",
    );
    // 12 are enough, and sign in.
    assert_eq!(emoji.chars().count(), 12);
    assert_eq!(post_reset(&c, &csrf, emoji).await.status(), 303);
    assert_eq!(app.log_in_status("999AKHAN01", emoji).await, 303);

    let cjk = "漢字仮名交じり文の暗号鍵です";
    set_amirs_password(&app, cjk).await;
    assert_eq!(app.log_in_status("999AKHAN01", cjk).await, 303);

    // Set as NFC (precomposed), typed as NFD (letter + combining mark)...
    let nfc = "cr\u{e8}me br\u{fb}l\u{e9}e caf\u{e9}";
    let nfd = "cre\u{300}me bru\u{302}le\u{301}e cafe\u{301}";
    assert_ne!(nfc, nfd);
    set_amirs_password(&app, nfc).await;
    assert_eq!(app.log_in_status("999AKHAN01", nfd).await, 303);
    assert_eq!(app.log_in_status("999AKHAN01", nfc).await, 303);
    // ...and the other way round.
    let nfd = "sen\u{303}or pin\u{303}ata jalapen\u{303}o";
    let nfc = "se\u{f1}or pi\u{f1}ata jalape\u{f1}o";
    set_amirs_password(&app, nfd).await;
    assert_eq!(app.log_in_status("999AKHAN01", nfc).await, 303);
}

/// Security case C34 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spaces_around_and_inside_a_password_are_kept_at_reset_and_at_sign_in() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let spaced = "  kettle violin marmalade  ";
    set_amirs_password(&app, spaced).await;
    assert_eq!(app.log_in_status("999AKHAN01", spaced).await, 303);
    // Nothing is trimmed or squeezed: each variant is a wrong password.
    for other in [
        "kettle violin marmalade",
        "  kettle violin marmalade",
        "  kettle  violin marmalade  ",
    ] {
        let (status, m) = attempt(&app, "999AKHAN01", other).await;
        assert_eq!(status, 200, "{other:?}");
        assert!(
            m[0].starts_with("The username or password is incorrect"),
            "{other:?}"
        );
        // A success in between keeps the lock away.
        assert_eq!(app.log_in_status("999AKHAN01", spaced).await, 303);
    }
}

/// A comparable picture of a sign-in answer: status, every header but the
/// date (cookie values blanked), and the body with form tokens and the typed
/// username blanked.
async fn answer(
    app: &TestApp,
    username: &str,
    password: &str,
) -> (u16, Vec<(String, String)>, String) {
    let r = app.browser().log_in(username, password).await;
    let status = r.status().as_u16();
    let headers = comparable_headers(r.headers());
    let body = comparable(&r.body().await).replace(username, "USERNAME");
    (status, headers, body)
}

/// Security case D40 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_wrong_and_locked_sign_ins_get_byte_for_byte_the_same_answer() {
    let app = app_with_password(&[]).await;
    // Same length as the real username, so even Content-Length could not differ.
    let (known, unknown) = ("999AKHAN01", "999NOBODY1");
    assert_eq!(known.len(), unknown.len());
    for i in 0..3 {
        let wrong = format!("wrong password {i}");
        let a = answer(&app, known, &wrong).await;
        let b = answer(&app, unknown, &wrong).await;
        assert_eq!(a, b, "attempt {}", i + 1);
        assert_eq!(a.0, 200);
    }
    // Both locked now: the right password, a wrong one, and anything for the
    // unknown name all look the same.
    let right = answer(&app, known, GOOD_PASSWORD).await;
    let wrong = answer(&app, known, "wrong password 4").await;
    let nobody = answer(&app, unknown, GOOD_PASSWORD).await;
    assert!(right.2.contains("Your account is locked until"));
    assert_eq!(right, wrong);
    assert_eq!(right, nobody);
}

/// Security case D40 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_account_answers_wrong_passwords_like_an_unknown_username() {
    let app = app_with_password(&[]).await;
    app.gatehouse
        .set_account_disabled("999AKHAN01", true, OPERATOR, "left the trust")
        .await
        .expect("runs")
        .expect("disabled");
    for i in 0..3 {
        let wrong = format!("wrong password {i}");
        let disabled = answer(&app, "999AKHAN01", &wrong).await;
        let unknown = answer(&app, "999NOBODY1", &wrong).await;
        assert_eq!(disabled, unknown, "attempt {}", i + 1);
    }
    // By decision, only someone who knows the password is told why
    // (docs/security.md): and here, after three failures, not even then.
    let right = answer(&app, "999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(right, answer(&app, "999NOBODY1", GOOD_PASSWORD).await);
}

/// Security case D41 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_sign_in_path_does_the_same_argon2id_work_and_none_once_locked() {
    let app = app_with_password(&[]).await;
    let cost = |username: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let before = app.gatehouse.hasher().verifications();
            let (status, m) = attempt(app, username, password).await;
            assert_eq!(status, 200, "{m:?}");
            app.gatehouse.hasher().verifications() - before
        }
    };
    // Unknown username (a dummy hash), wrong password, an account that has
    // never had a password (a dummy hash too): one verification each.
    assert_eq!(cost("999NOBODY01", "wrong password 1").await, 1);
    assert_eq!(cost("999AKHAN01", "wrong password 1").await, 1);
    assert_eq!(cost("999JSMITH01", "wrong password 1").await, 1);
    for _ in 0..2 {
        assert_eq!(cost("999NOBODY01", "wrong password 2").await, 1);
        assert_eq!(cost("999AKHAN01", "wrong password 2").await, 1);
        assert_eq!(cost("999JSMITH01", "wrong password 2").await, 1);
    }
    // Locked: nothing is verified, whoever it is and whatever is typed
    // (the lock is decided before the hash, so the answer cannot depend on it).
    assert_eq!(cost("999NOBODY01", GOOD_PASSWORD).await, 0);
    assert_eq!(cost("999AKHAN01", GOOD_PASSWORD).await, 0);
    assert_eq!(cost("999AKHAN01", "wrong password 4").await, 0);
    assert_eq!(cost("999JSMITH01", "wrong password 4").await, 0);
}

/// Security case D45 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_from_different_addresses_and_browsers_lock_the_one_account() {
    let app = app_with_password(&[("GATEHOUSE_TRUST_X_FORWARDED_FOR", "true")]).await;
    let browser = |address: &str, agent: &str| {
        app.browser()
            .with_header("x-forwarded-for", address)
            .with_header("user-agent", agent)
    };
    let attempts = [
        (
            "198.51.100.1",
            "Mozilla/5.0 (Windows NT 10.0) Firefox/140.0",
        ),
        ("203.0.113.2", "Mozilla/5.0 (iPhone) Safari/604.1"),
        ("192.0.2.3", "curl/8.5.0"),
    ];
    let mut last = Vec::new();
    for (i, (address, agent)) in attempts.iter().enumerate() {
        let r = browser(address, agent)
            .log_in("999AKHAN01", &format!("wrong {i}"))
            .await;
        last = error_messages(&r.body().await);
    }
    assert!(
        last[0].starts_with("Your account is locked until"),
        "{last:?}"
    );
    // The addresses really were different (the proxy's header was used).
    let failed = audit_events(&app, "sign_in.failed").await;
    let mut addresses: Vec<_> = failed.iter().filter_map(|e| e.client_ip.clone()).collect();
    addresses.sort();
    assert_eq!(addresses, ["192.0.2.3", "198.51.100.1", "203.0.113.2"]);
    // A fourth address with the right password is locked out too.
    let r = browser("192.0.2.99", "Edge")
        .log_in("999AKHAN01", GOOD_PASSWORD)
        .await;
    assert_eq!(r.status(), 200);
    assert_error(&r.body().await, "Your account is locked until");
}

/// Security case D50 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_username_locked_before_its_account_existed_starts_clean_when_imported() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    for i in 0..5 {
        let (status, m) = attempt(&app, "999NEWBIE01", &format!("guess {i}")).await;
        assert_eq!(status, 200);
        if i >= 2 {
            assert!(m[0].starts_with("Your account is locked until"), "{m:?}");
        }
    }
    let counter = sign_in_attempts(&app, "999NEWBIE01").await;
    assert_eq!(counter.consecutive, 3);
    assert!(counter.locked_until.is_some());

    // The person joins, under exactly that username.
    app.import(
        "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
         999 Demo Hospital NHS Trust,999NEWBIE01,Nia,Okafor,1992-05-06,nia.okafor@nhs.net,D9\n",
    )
    .await;
    let counter = sign_in_attempts(&app, "999NEWBIE01").await;
    assert_eq!(counter.consecutive, 0, "strangers' guesses are not hers");
    assert_eq!(counter.total, 0);
    assert_eq!(counter.locked_until, None);
    let (_, m) = attempt(&app, "999NEWBIE01", "her own typo").await;
    assert!(m[0].contains("You have 2 attempts left"), "{m:?}");
    // And she can set a password (no reset completes while locked).
    app.set_password(&NIA, GOOD_PASSWORD).await;
    assert_eq!(app.log_in_status("999NEWBIE01", GOOD_PASSWORD).await, 303);
}

/// Runs the real binary with `format` logs to a file, sends sign-ins with
/// forged usernames, and returns the log.
async fn log_of_forged_sign_ins(format: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("server.log");
    let command = |args: &[&str], stderr: Stdio| {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "GATEHOUSE_DATABASE_URL",
                format!("sqlite://{}/gatehouse.db", dir.path().display()),
            )
            .env(
                "GATEHOUSE_MAIL_URL",
                format!("file://{}/outbox", dir.path().display()),
            )
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_PUBLIC_URL", &base)
            .env("GATEHOUSE_LOG_FORMAT", format)
            // Everything the service itself says; sqlx's statements are
            // multi-line SQL and carry no values, so they stay out.
            .env("GATEHOUSE_LOG", "debug,sqlx=info,hyper=info,h2=info")
            .current_dir(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr);
        c
    };
    let staff = dir.path().join("staff.csv");
    std::fs::write(&staff, STAFF).expect("write");
    let imported = command(&["import", staff.to_str().expect("utf8")], Stdio::null())
        .status()
        .expect("import");
    assert!(imported.success());
    let log = std::fs::File::create(&log_path).expect("log");
    let server = Server(
        command(&["serve"], Stdio::from(log))
            .spawn()
            .expect("serve"),
    );
    wait_healthy(&base).await;

    // Each within the 64 characters a username may have, so each goes
    // through the whole sign-in.
    let forged = [
        "x\r\n2026-11-29T09:00:00Z  INFO gatehouse: FORGED-CRLF",
        "x\n{\"level\":\"ERROR\",\"message\":\"FORGED-LF\"}",
        "\u{1b}[2J\u{1b}[1;31mFORGED-ANSI\u{1b}[0m",
        "999AKHAN01%0aFORGED-PCT%0d%0a",
        "\"}{\"level\":\"ERROR\",\"FORGED-JSON\":\"",
    ];
    for username in forged {
        assert!(username.chars().count() <= 64, "{username:?}");
    }
    let browser = Browser::new(&base, &base);
    for username in forged {
        let token = browser.form_token("/login").await;
        let r = browser
            .post_form(
                "/login",
                &token,
                &[("username", username), ("password", "wrong password")],
            )
            .await;
        assert_eq!(r.status(), 200);
        assert!(
            r.body()
                .await
                .contains("The username or password is incorrect"),
            "{username:?} went through the sign-in"
        );
    }
    // A raw line break in the body, not percent-encoded, and one in the path.
    let token = browser.form_token("/login").await;
    let r = browser
        .http()
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "username=999AKHAN01\r\nFORGED-RAW\r\n&password=wrong+password&csrf_token={token}"
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    let r = browser
        .http()
        .get(format!("{base}/login%0d%0aFORGED-PATH%1b[31m"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 404);
    drop(server);
    std::fs::read_to_string(&log_path).expect("log")
}

fn assert_no_injection(log: &str) {
    assert!(!log.contains('\u{1b}'), "a raw escape reached the log");
    assert!(!log.contains('\r'), "a raw carriage return reached the log");
    // Usernames are never logged at all (people type passwords into the
    // username box), so no part of a forged one can show up.
    if let Some(line) = log.lines().find(|l| l.contains("FORGED")) {
        panic!("a typed username reached the log: {line}");
    }
    let posts = log
        .lines()
        .filter(|l| l.contains("POST") && l.contains("/login"))
        .count();
    assert_eq!(posts, 6, "every sign-in was logged, by route: {log}");
}

/// Security case D58 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usernames_with_line_breaks_or_escapes_forge_nothing_in_the_text_log() {
    let log = log_of_forged_sign_ins("text").await;
    assert_no_injection(&log);
    // Every line is one record that starts with its timestamp (but the
    // banner for people starting the service by hand).
    for line in log
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("Gatehouse is serving"))
    {
        assert!(
            line.starts_with("20") && line.as_bytes().get(10) == Some(&b'T'),
            "a line that is not a record: {line:?}"
        );
    }
}

/// Security case D58 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usernames_with_line_breaks_or_escapes_forge_nothing_in_the_json_log() {
    let log = log_of_forged_sign_ins("json").await;
    assert_no_injection(&log);
    // Every line is one JSON record.
    let mut records = 0;
    for line in log.lines().filter(|l| !l.is_empty()) {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a line that is not a record ({e}): {line:?}"));
        assert!(record.get("level").is_some() && record.get("timestamp").is_some());
        records += 1;
    }
    assert!(records >= 7);
}

//! Reset links (docs/design.md invariant 2) and the reset form, case by
//! case (docs/security.md, cases B18–B26 and C29–C39): scanners, tampering,
//! guessing, expiry, other links, concurrent redemptions, the password
//! rules, forged fields, skipped steps, forged forms and echoes.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::{Clock, SecretToken, Span, TokenHash};
use sha2::Digest;

use crate::helpers::*;

async fn reset_with(
    app: &TestApp,
    link: &str,
    username: &str,
    password: &str,
    confirm: &str,
) -> reqwest::Response {
    let c = app.browser();
    c.open_link(link).await;
    c.submit("/reset", "/reset", &reset_form(username, password, confirm))
        .await
}

async fn page_heading(response: reqwest::Response) -> String {
    let page = response.body().await;
    let start = page.find("<h1>").map_or(0, |i| i + 4);
    let end = page[start..]
        .find("</h1>")
        .map_or(page.len(), |i| start + i);
    page[start..end].trim().to_owned()
}

/// Security cases A1, B22, H97 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_hash_of_the_token_is_stored() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = app.reset_link(&AMIR).await;
    let token = link.rsplit('/').next().expect("token").to_owned();
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &token)
        .expect("base64url");
    assert_eq!(raw.len(), 32, "256 random bits");
    let hash = sha2::Sha256::digest(&raw);
    let found = app
        .db
        .reset_link_by_hash(&gatehouse_domain::TokenHash::from_slice(&hash).expect("32 bytes"))
        .await
        .expect("lookup");
    assert!(
        found.is_some(),
        "the link is found by the SHA-256 of its token"
    );
    // Once the email has gone, no table holds the token or the link, in any column.
    app.wait_until_sent().await;
    let dump = dump_database(&app.database_url()).await;
    assert!(!dump.contains(&token), "a copy of the token is stored");
    assert!(dump.contains("email.sent"));
}

/// Every value in every table, as text.
async fn dump_database(url: &str) -> String {
    snapshot(url)
        .await
        .into_values()
        .flatten()
        .flatten()
        .map(|v| format!("{v}\n"))
        .collect()
}

/// Security cases B18, C35 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_link_never_spends_it() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = app.reset_link(&AMIR).await;
    // A mail scanner opens it, twice, and follows the redirect.
    for _ in 0..2 {
        let scanner = app.browser();
        assert_eq!(scanner.open_link(&link).await.status(), 303);
        assert_eq!(
            page_heading(scanner.get("/reset").await).await,
            "Set your password"
        );
    }
    let done = reset_with(&app, &link, "999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD).await;
    assert_eq!(done.status(), 303);
    // Now it is spent.
    let c = app.browser();
    c.open_link(&link).await;
    let again = c.get("/reset").await.body().await;
    assert!(again.contains("This link is no longer valid"));
    assert!(again.contains("already been used"));
    assert!(again.contains("href=\"/recover\""), "offers to start again");
}

/// Security cases A1, B21, C37 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_expires_after_its_lifetime_on_get_and_on_post() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = app.reset_link(&AMIR).await;
    // One second before the end it still opens the form...
    app.advance(Span::from_seconds(4 * 3600 - 1));
    let c = app.browser();
    c.open_link(&link).await;
    let page = c.get("/reset").await;
    let page = page.body().await;
    assert!(page.contains("Set your password"), "{page}");
    let token = csrf_token(&page).expect("token");
    // ...but a form already on screen cannot beat the clock.
    app.advance(Span::from_seconds(1));
    let late = c
        .post_form(
            "/reset",
            &token,
            &reset_form("999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD),
        )
        .await;
    let late = late.body().await;
    assert!(late.contains("This link is no longer valid"), "{late}");
    assert!(late.contains("must be used within 4 hours"));
    // And opened afresh, it says so too.
    let fresh = app.browser();
    fresh.open_link(&link).await;
    assert!(
        fresh
            .get("/reset")
            .await
            .body()
            .await
            .contains("This link is no longer valid")
    );
    assert_eq!(app.log_in_status("999AKHAN01", GOOD_PASSWORD).await, 200);
}

/// Security case B26 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newer_request_voids_older_links() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let old = app.reset_link(&AMIR).await;
    let new = app.reset_link(&AMIR).await;
    let c = app.browser();
    c.open_link(&old).await;
    let page = c.get("/reset").await.body().await;
    assert!(
        page.contains("A newer password reset email has been sent"),
        "{page}"
    );
    assert_eq!(
        reset_with(&app, &new, "999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD)
            .await
            .status(),
        303
    );
}

/// Security cases C36, H100 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_redemptions_of_one_link_let_exactly_one_win() {
    let app = Arc::new(TestApp::spawn().await);
    app.import(STAFF).await;
    let link = app.reset_link(&AMIR).await;
    // Twenty browsers each open the link and get the form ready...
    let mut ready = Vec::new();
    for i in 0..20 {
        let c = app.browser();
        c.open_link(&link).await;
        let token = csrf_token(&c.get("/reset").await.body().await).expect("token");
        ready.push((c, token, format!("kettle violin marmalade {i}")));
    }
    // ...then all submit at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for (c, token, password) in ready {
        let app = app.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = c
                .http()
                .post(app.url("/reset"))
                .form(&[
                    ("username", "999AKHAN01"),
                    ("password", password.as_str()),
                    ("confirm-password", password.as_str()),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .expect("POST");
            (r.status().as_u16(), r.body().await, password)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body, password) = t.await.expect("task");
        if status == 303 {
            winners.push(password);
        } else {
            assert!(
                body.contains("This link is no longer valid") || body.contains("busy"),
                "{body}"
            );
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption wins");
    assert_eq!(
        app.log_in_status("999AKHAN01", &winners[0]).await,
        303,
        "the winner's password is the one set"
    );
}

/// Security case C35 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_password_change_voids_other_links_and_ends_every_session() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    let signed_in = app.browser();
    assert_eq!(
        signed_in.log_in("999AKHAN01", GOOD_PASSWORD).await.status(),
        303
    );
    assert_eq!(signed_in.get("/account").await.status(), 200);

    // Two links exist: one from an old email (voided by the newer request) and the newest.
    let newest = app.reset_link(&AMIR).await;
    assert_eq!(
        reset_with(
            &app,
            &newest,
            "999AKHAN01",
            "teapot sunrise harbour",
            "teapot sunrise harbour"
        )
        .await
        .status(),
        303
    );
    let after = signed_in.get("/account").await;
    assert_eq!(after.status(), 303, "the other browser's session ended");
    assert_eq!(after.headers()["location"], "/login");
    assert_eq!(app.log_in_status("999AKHAN01", GOOD_PASSWORD).await, 200);
    assert_eq!(
        app.log_in_status("999AKHAN01", "teapot sunrise harbour")
            .await,
        303
    );
}

/// Security case B27 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_reset_completes_while_the_account_is_locked() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = app.reset_link(&AMIR).await;
    // The form is on screen when the account gets locked.
    let c = app.browser();
    c.open_link(&link).await;
    let token = csrf_token(&c.get("/reset").await.body().await).expect("token");
    for i in 0..3 {
        app.browser()
            .log_in("999AKHAN01", &format!("wrong password {i}"))
            .await;
    }
    let response = c
        .post_form(
            "/reset",
            &token,
            &reset_form("999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD),
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.body().await;
    assert!(
        page.contains("Your account is locked until 9:00pm on 25 November 2026"),
        "{page}"
    );
    // The page opened while locked says so instead of showing the form.
    let page = c.get("/reset").await.body().await;
    assert!(page.contains("Your account is locked until"));
    assert!(!page.contains("name=\"password\""));
    // Nothing changed and the link was not spent.
    let link = app
        .db
        .reset_link_by_hash(&token_hash(&link))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(link.record.used_at, None);
    app.advance(Span::hours(12));
    assert!(
        app.browser()
            .log_in("999AKHAN01", GOOD_PASSWORD)
            .await
            .body()
            .await
            .contains("incorrect")
    );
}

fn token_hash(link: &str) -> gatehouse_domain::TokenHash {
    gatehouse_domain::SecretToken::parse(link.rsplit('/').next().expect("token"))
        .expect("token")
        .hash()
}

/// Security cases C28, C32 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_password_rules_are_enforced_with_reasons() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = app.reset_link(&AMIR).await;
    let cases = [
        (
            "short",
            "short",
            "Your password must be at least 12 characters long",
        ),
        (
            "password1234",
            "password1234",
            "Your password is too easy to guess",
        ),
        (
            "999akhan01-abc",
            "999akhan01-abc",
            "Your password must not be based on your username",
        ),
        (
            "AmirKhan1990!!",
            "AmirKhan1990!!",
            "Your password must not be based on your name",
        ),
        (
            "NHS-ESR-2026-ok!",
            "NHS-ESR-2026-ok!",
            "Your password must not be based on the name of this service",
        ),
        (
            "kettle violin marmalade",
            "kettle violin marmalad",
            "The passwords do not match",
        ),
        ("", "", "Enter a new password"),
    ];
    let c = app.browser();
    c.open_link(&link).await;
    for (password, confirm, expected) in cases {
        let r = c
            .submit(
                "/reset",
                "/reset",
                &reset_form("999AKHAN01", password, confirm),
            )
            .await;
        assert_eq!(r.status(), 200);
        let page = r.body().await;
        let messages = error_messages(&page);
        assert!(
            messages.iter().any(|m| m.starts_with(expected)),
            "{password:?}: {messages:?}"
        );
        assert!(
            page.contains("<title>Error: "),
            "the title says there is an error"
        );
    }
    let r = c.submit_reset("", GOOD_PASSWORD).await;
    assert!(error_messages(&r.body().await)[0].starts_with("Enter your username"));
    // The link survived every refusal.
    let r = c.submit_reset("999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(r.status(), 303);
}

/// Security case C32 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn none_of_the_last_four_passwords_may_be_reused() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let passwords = [
        "kettle violin marmalade",
        "teapot sunrise harbour",
        "lantern orchard pebble",
        "saddle comet wardrobe",
    ];
    for p in passwords {
        app.advance(Span::hours(2));
        app.set_password(&AMIR, p).await;
    }
    for p in passwords {
        app.advance(Span::hours(2));
        let link = app.reset_link(&AMIR).await;
        let r = reset_with(&app, &link, "999AKHAN01", p, p).await;
        let messages = error_messages(&r.body().await);
        assert_eq!(
            messages,
            ["Your password must not be the same as any of your previous 4 passwords"],
            "{p}"
        );
    }
    app.advance(Span::hours(2));
    app.set_password(&AMIR, "velvet glacier trumpet").await;
    // The oldest of the four has now dropped out of the history.
    app.advance(Span::hours(2));
    app.set_password(&AMIR, passwords[0]).await;
}

/// Security cases B20, C37 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_or_mangled_links_say_so_and_never_fail() {
    let app = TestApp::spawn().await;
    for path in [
        "/reset/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/reset/short",
        "/reset/%00%0d%0a",
        &format!("/reset/{}", "A".repeat(10_000)),
    ] {
        let c = app.browser();
        let r = c.get(path).await;
        assert_eq!(r.status(), 303, "{path}");
        let page = c.get("/reset").await;
        assert_eq!(page.status(), 200);
        assert!(page.body().await.contains("This link is not valid"));
    }
    // Straight to the form with no link at all.
    let page = app.visitor.get("/reset").await.body().await;
    assert!(page.contains("This link is not valid"));
}

/// A fresh reset link for Amir (the clock is moved on first, so the three
/// emails an hour per address never get in the way).
async fn amirs_link(app: &TestApp) -> String {
    app.advance(Span::hours(1));
    app.reset_link(&AMIR).await
}

/// A service with STAFF imported and a fresh reset link for Amir.
async fn app_with_amirs_link() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = amirs_link(&app).await;
    (app, link)
}

fn token_of(link: &str) -> &str {
    link.rsplit('/').next().expect("token")
}

fn hash_of(link: &str) -> TokenHash {
    SecretToken::parse(token_of(link)).expect("token").hash()
}

/// Whether the link has been spent.
async fn spent(app: &TestApp, link: &str) -> bool {
    app.db
        .reset_link_by_hash(&hash_of(link))
        .await
        .expect("read")
        .expect("the link exists")
        .record
        .used_at
        .is_some()
}

async fn post_reset(
    c: &Browser,
    csrf: &str,
    username: &str,
    password: &str,
    confirm: &str,
) -> reqwest::Response {
    c.post_form("/reset", csrf, &reset_form(username, password, confirm))
        .await
}

/// The reset form as `username` with `GOOD_PASSWORD`, plus `user_id` and
/// `account_id` fields naming the account `id`.
async fn post_reset_with_ids(
    c: &Browser,
    csrf: &str,
    username: &str,
    id: &str,
) -> reqwest::Response {
    c.post_form(
        "/reset",
        csrf,
        &[
            ("username", username),
            ("password", GOOD_PASSWORD),
            ("confirm-password", GOOD_PASSWORD),
            ("user_id", id),
            ("account_id", id),
        ],
    )
    .await
}

/// Opens `link` in a new browser and sets `password` through it.
async fn reset_through(
    app: &TestApp,
    link: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let c = app.browser();
    let csrf = c.open_reset_form(link).await;
    post_reset(&c, &csrf, username, password, password).await
}

/// The status of a GET of `url` by `c`.
async fn status_of(c: &Browser, url: &str) -> reqwest::StatusCode {
    c.http().get(url).send().await.expect("GET").status()
}

/// Security case B18 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_and_repeated_get_requests_never_spend_a_link() {
    let (app, link) = app_with_amirs_link().await;
    let path = link.strip_prefix(PUBLIC_URL).expect("public URL");
    // A scanner that only asks for the headers, several times, with and
    // without keeping its cookies.
    let scanner = app.browser();
    for c in [&scanner, &scanner, &app.browser()] {
        let r = c.http().head(app.url(path)).send().await.expect("HEAD");
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/reset");
        let r = c.http().head(app.url("/reset")).send().await.expect("HEAD");
        assert_eq!(r.status(), 200);
    }
    for _ in 0..3 {
        assert_eq!(status_of(&scanner, &app.url(path)).await, 303);
    }
    assert!(!spent(&app, &link).await, "no HEAD or GET spends the link");
    let done = reset_through(&app, &link, "999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(done.status(), 303, "the person's POST still works");
    assert!(spent(&app, &link).await);
}

/// Every row of every table, to see that a request stored nothing.
async fn everything(app: &TestApp) -> std::collections::BTreeMap<String, Vec<Vec<String>>> {
    snapshot(&app.database_url()).await
}

/// Defect P6 (docs/security.md): each GET of a reset link (known, used or expired)
/// wrote a session row, took SQLite's one writer, and did not count
/// towards the client's cap on link guesses. Opening a known link now
/// stores nothing (it waits in a signed cookie), and an unknown one only
/// its audit row, which the cap counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_reset_link_again_and_again_stores_nothing() {
    let (app, link) = app_with_amirs_link().await;
    let path = link.strip_prefix(PUBLIC_URL).expect("public URL");
    let before = everything(&app).await;
    let scanner = app.browser();
    for i in 0..200 {
        let c = if i % 2 == 0 { &scanner } else { &app.visitor };
        assert_eq!(status_of(c, &app.url(path)).await, 303);
    }
    assert_eq!(everything(&app).await, before, "200 opens stored nothing");

    // A used link and an expired one: nothing either.
    let done = reset_through(&app, &link, "999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(done.status(), 303);
    let expired = amirs_link(&app).await;
    app.advance(Span::hours(5));
    let before = everything(&app).await;
    for used_or_expired in [&link, &expired] {
        let path = used_or_expired
            .strip_prefix(PUBLIC_URL)
            .expect("public URL");
        for _ in 0..20 {
            assert_eq!(status_of(&scanner, &app.url(path)).await, 303);
        }
    }
    assert_eq!(
        everything(&app).await,
        before,
        "used and expired links stored nothing"
    );

    // The cookie cannot be made up: another link's number with this
    // link's tag, or no tag, is "not valid".
    let fresh = amirs_link(&app).await;
    let c = app.browser();
    c.open_link(&fresh).await;
    let reset_page = app.url("/reset");
    for forged in ["1.9999999999.AAAA", "2.9999999999.", "garbage", ""] {
        let r = app
            .browser()
            .with_cookie(&format!("gatehouse-reset={forged}"))
            .http()
            .get(&reset_page)
            .send()
            .await
            .expect("GET");
        assert!(
            r.body().await.contains("This link is not valid"),
            "{forged}"
        );
    }
    assert!(c.page("/reset").await.contains("name=\"password\""));
}

/// Security case B20 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_token_changed_in_any_way_is_not_a_link_and_never_fails() {
    let (app, link) = app_with_amirs_link().await;
    let token = token_of(&link).to_owned();
    let first = token.chars().next().expect("a character");
    let other = if first == 'A' { 'B' } else { 'A' };
    let middle = 20;
    let swap_middle: String = token
        .char_indices()
        .map(|(i, c)| {
            if i == middle {
                if c == 'x' { 'y' } else { 'x' }
            } else {
                c
            }
        })
        .collect();
    let flipped: String = token
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let double_encoded: String = token.bytes().map(|b| format!("%25{b:02X}")).collect();
    let tampered = [
        format!("{other}{}", &token[1..]),
        swap_middle,
        token[..token.len() - 1].to_owned(),
        format!("{token}A"),
        flipped,
        double_encoded,
        format!("{token}%2F"),
        format!("{}!*", &token[..41]),
    ];
    for t in &tampered {
        assert_ne!(t, &token);
        let c = app.browser();
        let r = c
            .http()
            .get(app.url(&format!("/reset/{t}")))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 303, "{t}");
        let page = c.get("/reset").await;
        assert_eq!(page.status(), 200, "{t}");
        let page = page.body().await;
        assert!(page.contains("This link is not valid"), "{t}: {page}");
        assert!(!page.contains(&token), "the real token is never shown");
        assert!(!page.contains("name=\"password\""));
    }
    assert_eq!(
        audit_events(&app, "reset_link.unknown").await.len(),
        tampered.len(),
        "each tampered link is recorded"
    );
    // None of it harmed the real link.
    assert!(!spent(&app, &link).await);
    assert_eq!(
        reset_through(&app, &link, "999AKHAN01", GOOD_PASSWORD)
            .await
            .status(),
        303
    );
}

/// Security case B23 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_opens_a_hundred_unknown_links_in_an_hour_is_refused_every_link() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_TRUST_X_FORWARDED_FOR", "true")]).await;
    app.import(STAFF).await;
    let link = amirs_link(&app).await;
    let path = link
        .strip_prefix(PUBLIC_URL)
        .expect("public URL")
        .to_owned();
    let guesser = app.browser().with_header("x-forwarded-for", "198.51.100.7");
    // A hospital's worth of mistyped links: 100 an hour from one address is
    // allowed (the default of GATEHOUSE_LINK_GUESSES_PER_CLIENT_PER_HOUR).
    for i in 0..100 {
        let guess = SecretToken::generate().expect("random").encode();
        let r = guesser
            .http()
            .get(app.url(&format!("/reset/{guess}")))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 303, "guess {i}");
    }
    let guess = SecretToken::generate().expect("random").encode();
    let refused = guesser
        .http()
        .get(app.url(&format!("/reset/{guess}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status(), 429, "the 101st unknown link is refused");
    assert_eq!(refused.headers()["retry-after"], "3600");
    assert!(refused.headers().get("set-cookie").is_none());
    let page = refused.body().await;
    assert!(page.contains("Too many links that are not valid"), "{page}");
    assert!(page.contains("Try again in an hour"));
    assert!(page.contains("Reference:"));
    assert!(!page.contains(&guess), "the token is not echoed");

    // A real link from the same address is refused too: were it let through,
    // the answer would still tell a guesser when a guess had hit.
    let r = guesser
        .http()
        .get(app.url(&path))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 429);
    assert!(!guesser.page("/reset").await.contains("name=\"password\""));
    // Other addresses are not affected.
    let colleague = app.browser().with_header("x-forwarded-for", "203.0.113.9");
    assert_eq!(status_of(&colleague, &app.url(&path)).await, 303);
    assert!(colleague.page("/reset").await.contains("name=\"password\""));

    // Every refusal is audited with the address, like the recovery cap.
    let refusals = audit_events(&app, "reset_link.refused_client_limit").await;
    assert_eq!(refusals.len(), 2);
    assert!(
        refusals
            .iter()
            .all(|e| e.client_ip.as_deref() == Some("198.51.100.7"))
    );
    assert!(
        refusals[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("100 unknown links"))
    );
    assert!(refusals.iter().all(|e| {
        let d = e.detail.clone().unwrap_or_default();
        !d.contains(&guess) && !d.contains(token_of(&link))
    }));
    let unknown = audit_events(&app, "reset_link.unknown").await;
    assert_eq!(unknown.len(), 100, "refused guesses are not looked up");

    // An hour after the guesses, the address may open links again.
    app.advance(Span::from_seconds(3601));
    assert_eq!(status_of(&guesser, &app.url(&path)).await, 303);
    assert!(guesser.page("/reset").await.contains("name=\"password\""));
}

/// Security case B23 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cap_on_unknown_links_is_a_setting_and_counted_per_address() {
    let app = TestApp::spawn_with(&[
        ("GATEHOUSE_TRUST_X_FORWARDED_FOR", "true"),
        ("GATEHOUSE_LINK_GUESSES_PER_CLIENT_PER_HOUR", "3"),
    ])
    .await;
    app.import(STAFF).await;
    let link = amirs_link(&app).await;
    let path = link
        .strip_prefix(PUBLIC_URL)
        .expect("public URL")
        .to_owned();
    // Opening real links, however often, is not guessing.
    let person = app.browser().with_header("x-forwarded-for", "192.0.2.1");
    for _ in 0..5 {
        assert_eq!(status_of(&person, &app.url(&path)).await, 303);
    }
    for (address, expected) in [
        ("192.0.2.1", 303),
        ("192.0.2.2", 303),
        ("192.0.2.1", 303),
        ("192.0.2.1", 303),
        ("192.0.2.1", 429),
        ("192.0.2.2", 303),
    ] {
        let r = app
            .browser()
            .with_header("x-forwarded-for", address)
            .http()
            .get(app.url("/reset/not-a-link"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), expected, "{address}");
    }
    assert_eq!(status_of(&person, &app.url(&path)).await, 429);
    assert_eq!(
        status_of(
            &app.browser().with_header("x-forwarded-for", "192.0.2.2"),
            &app.url(&path)
        )
        .await,
        303
    );
}

/// Security case B24 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_an_https_public_url_every_emailed_link_is_https() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_PUBLIC_URL", "https://esr.example.org")]).await;
    app.import(STAFF).await;
    app.browser().request_recovery(AMIR.recovery()).await;
    let mail = app.recovery_email(1).await;
    let body = mail.decoded_body();
    let at = body
        .find("https://esr.example.org/reset/")
        .unwrap_or_else(|| panic!("an https link: {body}"));
    assert_eq!(
        body.matches("/reset/").count(),
        body.matches("https://esr.example.org/reset/").count(),
        "every link is https: {body}"
    );
    assert!(!body.contains("http://esr.example.org"));
    let token: String = body[at + "https://esr.example.org/reset/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43);
    // The link's path answers with a redirect that stays on the same
    // (https) origin, a Secure cookie and HSTS.
    let r = app.visitor.get(&format!("/reset/{token}")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/reset");
    let cookie = r.headers()["set-cookie"].to_str().expect("ascii");
    assert!(cookie.starts_with("__Host-gatehouse-reset=") && cookie.contains("; Secure"));
    assert_hsts(&r);
}

/// Security cases B26, C35 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_through_one_link_voids_every_other_usable_link_of_the_account() {
    let (app, emailed) = app_with_amirs_link().await;
    // A second usable link for the same account, issued after the email
    // (the store allows it; a newer request would have voided the first).
    let amir = account(&app, "999AKHAN01").await;
    let second = SecretToken::generate().expect("random");
    let now = app.clock.now();
    app.db
        .insert_reset_link(&gatehouse_store::NewResetLink {
            account_id: amir.id,
            hash: &second.hash(),
            purpose: gatehouse_domain::reset_link::LinkPurpose::Reset,
            recovery_request_id: None,
            now,
            expires_at: now.plus(Span::hours(4)),
        })
        .await
        .expect("insert");
    let second = format!("{PUBLIC_URL}/reset/{}", second.encode());
    // Both open the form: two usable links.
    let held = app.browser();
    let held_csrf = held.open_reset_form(&second).await;

    assert_eq!(
        reset_through(&app, &emailed, "999AKHAN01", GOOD_PASSWORD)
            .await
            .status(),
        303
    );
    // The other link is void, whether opened afresh or already on screen.
    let c = app.browser();
    c.open_link(&second).await;
    let page = c.page("/reset").await;
    assert!(page.contains("This link is no longer valid"), "{page}");
    assert!(
        page.contains("The password for this account has been changed since this email was sent")
    );
    let late = post_reset(
        &held,
        &held_csrf,
        "999AKHAN01",
        "teapot sunrise harbour",
        "teapot sunrise harbour",
    )
    .await;
    assert_eq!(late.status(), 200);
    assert!(
        late.body()
            .await
            .contains("has been changed since this email was sent")
    );
    assert!(!spent(&app, &second).await, "voided, not spent");
    assert_eq!(app.log_in_status("999AKHAN01", GOOD_PASSWORD).await, 303);
    let reset = audit_events(&app, "password.reset").await;
    assert!(
        reset[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("1 other link(s) voided")
    );
}

/// Security case C29 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extra_fields_naming_another_account_change_nothing_but_the_links_own() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.browser().request_recovery(JANE.recovery()).await;
    let mail = app.recovery_email(1).await;
    let body = mail.decoded_body();
    // One email, one link per account, in the order the accounts are listed.
    let links = reset_links(&mail, PUBLIC_URL);
    assert_eq!(links.len(), 2);
    let first_432 = body.find("432JSMITH01").expect("432") < body.find("999JSMITH01").expect("999");
    let (link_432, link_999) = if first_432 {
        (links[0].clone(), links[1].clone())
    } else {
        (links[1].clone(), links[0].clone())
    };
    let other = account(&app, "432JSMITH01").await;
    let other_id = other.id.to_string();

    let c = app.browser();
    let csrf = c.open_reset_form(&link_999).await;
    // The other account's username, with ids pointing at it: refused.
    let r = post_reset_with_ids(&c, &csrf, "432JSMITH01", &other_id).await;
    assert_eq!(r.status(), 200);
    assert_error(
        &r.body().await,
        "Enter the username written in the email that this link came from",
    );
    assert!(account(&app, "432JSMITH01").await.password_hash.is_none());
    assert!(account(&app, "999JSMITH01").await.password_hash.is_none());
    assert!(!spent(&app, &link_999).await);

    // The link's own username with ids of the other account: only the
    // link's account changes; the extra fields are not read at all.
    let r = post_reset_with_ids(&c, &csrf, "999JSMITH01", &other_id).await;
    assert_eq!(r.status(), 303);
    assert!(account(&app, "999JSMITH01").await.password_hash.is_some());
    assert!(
        account(&app, "432JSMITH01").await.password_hash.is_none(),
        "the other account is untouched"
    );
    assert_eq!(app.log_in_status("999JSMITH01", GOOD_PASSWORD).await, 303);
    // The other account's own link is still usable: nothing was voided there.
    assert!(!spent(&app, &link_432).await);
    let c = app.browser();
    c.open_reset_form(&link_432).await;
}

/// Security case C35 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_reset_the_browser_is_not_signed_in_the_failures_are_forgiven_and_a_notice_is_sent()
{
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    // Two consecutive failures, one short of the lock.
    for i in 0..2 {
        app.browser()
            .log_in("999AKHAN01", &format!("wrong password {i}"))
            .await;
    }
    let link = amirs_link(&app).await;
    let c = app.browser();
    let csrf = c.open_reset_form(&link).await;
    let before = c.http().get(app.url("/account")).send().await.expect("GET");
    assert_eq!(before.status(), 303, "not signed in before");
    let done = post_reset(
        &c,
        &csrf,
        "999AKHAN01",
        "teapot sunrise harbour",
        "teapot sunrise harbour",
    )
    .await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/login?password=set");
    assert!(!sets_a_session(&done), "no new session is issued");
    assert_eq!(
        set_cookies(&done),
        ["gatehouse-reset=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"],
        "only the spent link's cookie is removed"
    );
    // The resetting browser is sent to log in, and is not signed in.
    let account = c.http().get(app.url("/account")).send().await.expect("GET");
    assert_eq!(account.status(), 303);
    assert_eq!(account.headers()["location"], "/login");
    let login = c.page("/login?password=set").await;
    assert!(
        login.contains("Your password has been set. Log in with your username and new password.")
    );

    // The count went back to zero: a wrong password leaves 2 attempts, not the lock.
    let counter = sign_in_attempts(&app, "999AKHAN01").await;
    assert_eq!(counter.consecutive, 0);
    let r = app.browser().log_in("999AKHAN01", "wrong password 3").await;
    assert_error(&r.body().await, "You have 2 attempts left");
    assert_eq!(
        app.log_in_status("999AKHAN01", "teapot sunrise harbour")
            .await,
        303
    );

    // The notice: to the address on record, saying what to do, with no link
    // that changes the account and no password.
    app.settle().await;
    let notice = wait_for_notice(&app, 2).await;
    assert_eq!(notice.to, ["amir.khan@nhs.net"]);
    assert_eq!(
        notice.header("Subject").as_deref(),
        Some("Your Electronic Staff Record password has been set")
    );
    let body = notice.decoded_body();
    assert!(
        body.contains(
            "The password for your Electronic Staff Record account 999AKHAN01 was set at"
        )
    );
    assert!(body.contains("If you did this, you do not need to do anything."));
    assert!(body.contains("If you did not, contact the System Administrator straight away."));
    assert!(!body.contains("/reset"));
    assert!(!body.contains("teapot sunrise harbour"));
    assert!(!body.contains(GOOD_PASSWORD));
}

/// Waits for the `n`-th "password set" notice.
async fn wait_for_notice(app: &TestApp, n: usize) -> gatehouse_testkit::smtp::ReceivedMail {
    for _ in 0..500 {
        let notices = app.password_set_notices();
        if notices.len() >= n {
            return notices[n - 1].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("notice {n} never came");
}

/// Security case C37 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_form_posted_without_an_opened_link_or_after_the_hour_is_refused() {
    let (app, link) = app_with_amirs_link().await;
    // A browser that never opened a link, with a perfectly good form token.
    let c = app.browser();
    let csrf = c.form_token("/login").await;
    let r = post_reset(&c, &csrf, "999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD).await;
    assert_eq!(r.status(), 200);
    assert!(r.body().await.contains("This link is not valid"));
    assert!(!spent(&app, &link).await);

    // A browser that opened it, then left the form for more than an hour:
    // the link is still within its 4 hours, but this browser no longer holds it.
    let c = app.browser();
    let csrf = c.open_reset_form(&link).await;
    // Active all along (so the session itself does not end after 30 idle
    // minutes), and still held at 40 minutes...
    for _ in 0..2 {
        app.advance(Span::minutes(20));
        assert!(c.page("/reset").await.contains("name=\"password\""));
    }
    // ...but not at the hour.
    app.advance(Span::minutes(20));
    let r = post_reset(&c, &csrf, "999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD).await;
    assert_eq!(r.status(), 200);
    assert!(r.body().await.contains("This link is not valid"));
    assert!(!spent(&app, &link).await);
    let account = account(&app, "999AKHAN01").await;
    assert!(account.password_hash.is_none(), "no password was set");
    // Opening the link again starts afresh.
    let csrf = c.open_reset_form(&link).await;
    let r = post_reset(&c, &csrf, "999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD).await;
    assert_eq!(r.status(), 303);
}

/// Security case C38 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_form_without_its_token_or_from_another_site_is_refused_and_spends_nothing() {
    let (app, link) = app_with_amirs_link().await;
    let c = app.browser();
    let csrf = c.open_reset_form(&link).await;
    let fields = |token: Option<&str>| {
        let mut f = vec![
            ("username", "999AKHAN01".to_owned()),
            ("password", GOOD_PASSWORD.to_owned()),
            ("confirm-password", GOOD_PASSWORD.to_owned()),
        ];
        if let Some(t) = token {
            f.push(("csrf_token", t.to_owned()));
        }
        f
    };
    let other = SecretToken::generate().expect("random").encode();
    let attempts = [
        c.http().post(app.url("/reset")).form(&fields(None)),
        c.http().post(app.url("/reset")).form(&fields(Some(""))),
        c.http().post(app.url("/reset")).form(&fields(Some(&other))),
        c.http()
            .post(app.url("/reset"))
            .header("sec-fetch-site", "cross-site")
            .form(&fields(Some(&csrf))),
        c.http()
            .post(app.url("/reset"))
            .header("origin", "https://evil.example")
            .form(&fields(Some(&csrf))),
    ];
    for (i, request) in attempts.into_iter().enumerate() {
        let r = request.send().await.expect("POST");
        assert_eq!(r.status(), 403, "attempt {i}");
        assert!(r.body().await.contains("This form has expired"));
        assert!(!spent(&app, &link).await, "attempt {i} spent the link");
    }
    assert_eq!(audit_events(&app, "csrf.refused").await.len(), 5);
    assert_eq!(app.log_in_status("999AKHAN01", GOOD_PASSWORD).await, 200);
    // The same form, sent properly, works.
    let r = post_reset(&c, &csrf, "999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD).await;
    assert_eq!(r.status(), 303);
}

/// Security case C39 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typed_passwords_appear_in_no_page_redirect_or_email() {
    let (app, link) = app_with_amirs_link().await;
    let c = app.browser();
    let csrf = c.open_reset_form(&link).await;
    let typed = "Quokka-Zeppelin-Mango-7731";
    let cases = [
        (
            typed,
            "Quokka-Zeppelin-Mango-7732",
            "The passwords do not match",
        ),
        (
            "password1234",
            "password1234",
            "Your password is too easy to guess",
        ),
        (
            "Quokka-7731",
            "Quokka-7731",
            "Your password must be at least 12",
        ),
    ];
    for (password, confirm, message) in cases {
        let r = post_reset(&c, &csrf, "999AKHAN01", password, confirm).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("location").is_none());
        let page = r.body().await;
        assert_error(&page, message);
        assert!(!page.contains(password), "{password} is echoed");
        assert!(!page.contains(confirm), "{confirm} is echoed");
        assert!(
            page.contains("value=\"999AKHAN01\""),
            "the username is kept"
        );
    }
    let r = post_reset(&c, &csrf, "999AKHAN01", typed, typed).await;
    assert_eq!(r.status(), 303);
    assert!(
        !r.headers()["location"]
            .to_str()
            .expect("ascii")
            .contains(typed)
    );
    let login = c.page("/login").await;
    assert!(!login.contains(typed));
    // The recovery email went before and the notice after: neither holds it.
    let notice = wait_for_notice(&app, 1).await;
    for m in app.smtp.messages() {
        assert!(!m.data.contains(typed) && !m.decoded_body().contains(typed));
    }
    assert!(!notice.decoded_body().contains(typed));
    assert_eq!(app.recovery_emails().len(), 1);
}

/// Security case D54 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reset_form_asks_password_managers_for_a_new_password() {
    let (app, link) = app_with_amirs_link().await;
    let c = app.browser();
    c.open_reset_form(&link).await;
    let page = c.page("/reset").await;
    for id in ["password", "confirm-password"] {
        let input = input_tag(&page, id);
        assert!(input.contains("type=\"password\""), "{input}");
        assert!(input.contains("autocomplete=\"new-password\""), "{input}");
        assert!(!input.contains("onpaste"), "{input}");
        assert!(
            !input.contains("value="),
            "a password is never put back: {input}"
        );
    }
    let username = input_tag(&page, "username");
    assert!(username.contains("autocomplete=\"username\""), "{username}");
    assert!(!page.contains("onpaste") && !page.contains("oncopy"));
}

/// The `<input>` tag with this id.
fn input_tag(page: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = page
        .match_indices("<input")
        .map(|(i, _)| i)
        .find(|&i| {
            page[i..]
                .split('>')
                .next()
                .is_some_and(|t| t.contains(&marker))
        })
        .unwrap_or_else(|| panic!("no input {id}"));
    page[at..at + page[at..].find('>').expect("end")].to_owned()
}

/// A second node of `app`'s service: another process's worth of state (its
/// own pools, hasher and caches) on the same database and clock.
async fn second_node(
    app: &TestApp,
    vars: &[(&str, &str)],
) -> (String, tokio::sync::watch::Sender<bool>) {
    let mut env = test_env(&app.database_url(), &app.smtp.url());
    for (k, v) in vars {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = gatehouse::config::Config::from_sources(None, &env).expect("configuration");
    let node = gatehouse::app::Application::build(
        &config,
        std::sync::Arc::new(app.clock.clone()),
        gatehouse::app::Options {
            run_workers: false,
            poll: Duration::from_millis(50),
        },
    )
    .await
    .expect("second node builds");
    let address = format!("http://{}", node.address());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(node.run(rx));
    (address, stop)
}

/// Security case B23 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_links_are_counted_across_nodes() {
    let vars = [
        ("GATEHOUSE_TRUST_X_FORWARDED_FOR", "true"),
        ("GATEHOUSE_LINK_GUESSES_PER_CLIENT_PER_HOUR", "4"),
    ];
    let app = TestApp::spawn_with(&vars).await;
    let (other, _stop) = second_node(&app, &vars).await;
    let nodes = [app.address.clone(), other];
    let guesser = app
        .browser()
        .with_header("x-forwarded-for", "198.51.100.20");
    // Four guesses spread over both nodes use up the address's hour...
    for i in 0..4 {
        let r = guesser
            .http()
            .get(format!("{}/reset/not-a-link-{i}", nodes[i % 2]))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 303, "guess {i}");
    }
    // ...on every node: neither kept its own count.
    for node in &nodes {
        let r = guesser
            .http()
            .get(format!("{node}/reset/not-a-link-again"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 429, "{node}");
    }
}

/// Security case B24 (docs/security.md).
#[test]
fn the_documented_proxy_serves_the_links_over_tls_only() {
    // Gatehouse listens for its proxy, not for browsers: refusing plain HTTP
    // is the proxy's job, so the configuration we ship must not offer it.
    let config = include_str!("../../docs/nginx.conf");
    let listens: Vec<&str> = config
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("listen "))
        .collect();
    assert!(!listens.is_empty());
    for listen in listens {
        assert!(
            listen
                .split_whitespace()
                .any(|w| w.trim_end_matches(';') == "ssl"),
            "{listen}"
        );
    }
}

//! Reset links (docs/design.md invariant 2) and the reset page.

use std::sync::Arc;

use gatehouse_domain::Span;
use sha2::Digest;

use crate::helpers::*;

const AMIR: (&str, &str, &str) = ("2", "7", "1990");

async fn reset_with(
    app: &TestApp,
    link: &str,
    username: &str,
    password: &str,
    confirm: &str,
) -> reqwest::Response {
    let c = client();
    app.open_link(&c, link).await;
    app.submit(
        &c,
        "/reset",
        "/reset",
        &[
            ("username", username),
            ("password", password),
            ("confirm-password", confirm),
        ],
    )
    .await
}

async fn page_heading(response: reqwest::Response) -> String {
    let page = response.text().await.expect("body");
    let start = page.find("<h1>").map_or(0, |i| i + 4);
    let end = page[start..]
        .find("</h1>")
        .map_or(page.len(), |i| start + i);
    page[start..end].trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_hash_of_the_token_is_stored() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = link_for_amir(&app).await;
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
    wait_until_sent(&app).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_link_never_spends_it() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = link_for_amir(&app).await;
    // A mail scanner opens it, twice, and follows the redirect.
    for _ in 0..2 {
        let scanner = client();
        assert_eq!(app.open_link(&scanner, &link).await.status(), 303);
        assert_eq!(
            page_heading(app.get_as(&scanner, "/reset").await).await,
            "Set your password"
        );
    }
    let done = reset_with(&app, &link, "999AKHAN01", GOOD_PASSWORD, GOOD_PASSWORD).await;
    assert_eq!(done.status(), 303);
    // Now it is spent.
    let c = client();
    app.open_link(&c, &link).await;
    let again = app.get_as(&c, "/reset").await.text().await.expect("body");
    assert!(again.contains("This link is no longer valid"));
    assert!(again.contains("already been used"));
    assert!(again.contains("href=\"/recover\""), "offers to start again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_expires_after_its_lifetime_on_get_and_on_post() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = link_for_amir(&app).await;
    // One second before the end it still opens the form...
    app.advance(Span::from_seconds(4 * 3600 - 1));
    let c = client();
    app.open_link(&c, &link).await;
    let page = app.get_as(&c, "/reset").await;
    let page = page.text().await.expect("body");
    assert!(page.contains("Set your password"), "{page}");
    let token = csrf_token(&page).expect("token");
    // ...but a form already on screen cannot beat the clock.
    app.advance(Span::from_seconds(1));
    let late = c
        .post(app.url("/reset"))
        .form(&[
            ("username", "999AKHAN01"),
            ("password", GOOD_PASSWORD),
            ("confirm-password", GOOD_PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .expect("POST");
    let late = late.text().await.expect("body");
    assert!(late.contains("This link is no longer valid"), "{late}");
    assert!(late.contains("must be used within 4 hours"));
    // And opened afresh, it says so too.
    let fresh = client();
    app.open_link(&fresh, &link).await;
    assert!(
        app.get_as(&fresh, "/reset")
            .await
            .text()
            .await
            .expect("body")
            .contains("This link is no longer valid")
    );
    assert_eq!(app.log_in("999AKHAN01", GOOD_PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newer_request_voids_older_links() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let old = link_for_amir(&app).await;
    let new = link_for_amir(&app).await;
    let c = client();
    app.open_link(&c, &old).await;
    let page = app.get_as(&c, "/reset").await.text().await.expect("body");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_redemptions_of_one_link_let_exactly_one_win() {
    let app = Arc::new(TestApp::spawn().await);
    app.import(STAFF).await;
    let link = link_for_amir(&app).await;
    // Twenty browsers each open the link and get the form ready...
    let mut ready = Vec::new();
    for i in 0..20 {
        let c = client();
        app.open_link(&c, &link).await;
        let token =
            csrf_token(&app.get_as(&c, "/reset").await.text().await.expect("body")).expect("token");
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
            (r.status().as_u16(), r.text().await.expect("body"), password)
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
        app.log_in("999AKHAN01", &winners[0]).await.status(),
        303,
        "the winner's password is the one set"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_password_change_voids_other_links_and_ends_every_session() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    give_amir_a_password(&app).await;
    let signed_in = client();
    assert_eq!(
        app.log_in_as(&signed_in, "999AKHAN01", GOOD_PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(app.get_as(&signed_in, "/account").await.status(), 200);

    // Two links exist: one from an old email (voided by the newer request) and the newest.
    let newest = link_for_amir(&app).await;
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
    let after = app.get_as(&signed_in, "/account").await;
    assert_eq!(after.status(), 303, "the other browser's session ended");
    assert_eq!(after.headers()["location"], "/login");
    assert_eq!(app.log_in("999AKHAN01", GOOD_PASSWORD).await.status(), 200);
    assert_eq!(
        app.log_in("999AKHAN01", "teapot sunrise harbour")
            .await
            .status(),
        303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_reset_completes_while_the_account_is_locked() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = link_for_amir(&app).await;
    // The form is on screen when the account gets locked.
    let c = client();
    app.open_link(&c, &link).await;
    let token =
        csrf_token(&app.get_as(&c, "/reset").await.text().await.expect("body")).expect("token");
    for i in 0..3 {
        app.log_in("999AKHAN01", &format!("wrong password {i}"))
            .await;
    }
    let response = c
        .post(app.url("/reset"))
        .form(&[
            ("username", "999AKHAN01"),
            ("password", GOOD_PASSWORD),
            ("confirm-password", GOOD_PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("Your account is locked until 9:00pm on 25 November 2026"),
        "{page}"
    );
    // The page opened while locked says so instead of showing the form.
    let page = app.get_as(&c, "/reset").await.text().await.expect("body");
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
        app.log_in("999AKHAN01", GOOD_PASSWORD)
            .await
            .text()
            .await
            .expect("body")
            .contains("incorrect")
    );
}

fn token_hash(link: &str) -> gatehouse_domain::TokenHash {
    gatehouse_domain::SecretToken::parse(link.rsplit('/').next().expect("token"))
        .expect("token")
        .hash()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_password_rules_are_enforced_with_reasons() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link = link_for_amir(&app).await;
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
    let c = client();
    app.open_link(&c, &link).await;
    for (password, confirm, expected) in cases {
        let r = app
            .submit(
                &c,
                "/reset",
                "/reset",
                &[
                    ("username", "999AKHAN01"),
                    ("password", password),
                    ("confirm-password", confirm),
                ],
            )
            .await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.expect("body");
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
    let r = app
        .submit(
            &c,
            "/reset",
            "/reset",
            &[
                ("username", ""),
                ("password", GOOD_PASSWORD),
                ("confirm-password", GOOD_PASSWORD),
            ],
        )
        .await;
    assert!(error_messages(&r.text().await.expect("body"))[0].starts_with("Enter your username"));
    // The link survived every refusal.
    let r = app
        .submit(
            &c,
            "/reset",
            "/reset",
            &[
                ("username", "999AKHAN01"),
                ("password", GOOD_PASSWORD),
                ("confirm-password", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
}

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
        app.set_password("amir.khan@nhs.net", AMIR, "999AKHAN01", p)
            .await;
    }
    for p in passwords {
        app.advance(Span::hours(2));
        let link = link_for_amir(&app).await;
        let r = reset_with(&app, &link, "999AKHAN01", p, p).await;
        let messages = error_messages(&r.text().await.expect("body"));
        assert_eq!(
            messages,
            ["Your password must not be the same as any of your previous 4 passwords"],
            "{p}"
        );
    }
    app.advance(Span::hours(2));
    app.set_password(
        "amir.khan@nhs.net",
        AMIR,
        "999AKHAN01",
        "velvet glacier trumpet",
    )
    .await;
    // The oldest of the four has now dropped out of the history.
    app.advance(Span::hours(2));
    app.set_password("amir.khan@nhs.net", AMIR, "999AKHAN01", passwords[0])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_or_mangled_links_say_so_and_never_fail() {
    let app = TestApp::spawn().await;
    for path in [
        "/reset/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/reset/short",
        "/reset/%00%0d%0a",
        &format!("/reset/{}", "A".repeat(10_000)),
    ] {
        let c = client();
        let r = app.get_as(&c, path).await;
        assert_eq!(r.status(), 303, "{path}");
        let page = app.get_as(&c, "/reset").await;
        assert_eq!(page.status(), 200);
        assert!(
            page.text()
                .await
                .expect("body")
                .contains("This link is not valid")
        );
    }
    // Straight to the form with no link at all.
    let page = app.get("/reset").await.text().await.expect("body");
    assert!(page.contains("This link is not valid"));
}

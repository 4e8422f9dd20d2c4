//! A person's own account, signed in: changing the password, where they
//! are signed in, their recent activity, and the security emails that
//! tell them what happened.

use std::time::Duration;

use gatehouse_domain::{Role, Span};
use gatehouse_testkit::smtp::ReceivedMail;

use crate::helpers::*;

const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const NEW_PASSWORD: &str = "lantern orchard pebble";

/// A browser with this user agent, signed in as Amir.
async fn amir_in(app: &TestApp, user_agent: &str) -> Browser {
    let b = app.browser().with_header("user-agent", user_agent);
    assert_eq!(b.log_in(AMIR.username, GOOD_PASSWORD).await.status(), 303);
    b
}

/// The emails to `to` whose subject contains `subject`, once `n` have come.
async fn emails(app: &TestApp, to: &str, subject: &str, n: usize) -> Vec<ReceivedMail> {
    let matching = || {
        app.smtp
            .messages()
            .into_iter()
            .filter(|m| m.to == [to.to_owned()])
            .filter(|m| m.header("Subject").is_some_and(|s| s.contains(subject)))
            .collect::<Vec<_>>()
    };
    for _ in 0..200 {
        if matching().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    matching()
}

/// Sends the change-password form.
async fn change(b: &Browser, current: &str, new: &str, confirm: &str) -> reqwest::Response {
    b.submit(
        "/account/password",
        "/account/password",
        &[
            ("current-password", current),
            ("password", new),
            ("confirm-password", confirm),
        ],
    )
    .await
}

/// Changing the password: the other sessions end (the page says so), the
/// browser that changed it stays signed in, outstanding reset links stop
/// working, the person is told by email, and only the new password works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_other_devices_voids_links_and_tells_the_person() {
    let app = app_with_password(&[]).await;
    let here = amir_in(&app, FIREFOX).await;
    let phone = amir_in(&app, SAFARI).await;
    let link = app.reset_link(&AMIR).await;
    let page = here.page("/account/password").await;
    for label in ["Current password", "New password", "Confirm new password"] {
        assert!(page.contains(label), "{label}: {page}");
    }
    let changed = change(&here, GOOD_PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.headers()["location"], "/account");
    let account = here.page("/account").await;
    assert!(
        account.contains("Your password has been changed. Your other device has been signed out."),
        "{account}"
    );
    assert_eq!(phone.get("/account").await.headers()["location"], "/login");
    assert_eq!(app.log_in_status(AMIR.username, GOOD_PASSWORD).await, 200);
    assert_eq!(app.log_in_status(AMIR.username, NEW_PASSWORD).await, 303);
    let opened = app.browser().open_link(&link).await;
    assert_eq!(opened.status(), 303);
    let reset = app.browser().page("/reset").await;
    assert!(
        !reset.contains("name=\"confirm-password\""),
        "the link is void: {reset}"
    );
    let told = emails(&app, AMIR.email, "password has been changed", 1).await;
    assert_eq!(told.len(), 1);
    let body = told[0].decoded_body();
    assert!(body.contains("Firefox on Windows"), "{body}");
    assert!(!body.contains("/reset/"), "no link that signs anyone in");
    assert_eq!(audit_events(&app, "password.changed").await.len(), 1);
}

/// A wrong current password is a password guess: counted towards the same
/// lock as a sign-in, with the same messages; a form that fails its own
/// checks counts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_current_password_counts_towards_the_lock() {
    let app = app_with_password(&[]).await;
    let b = amir_in(&app, FIREFOX).await;
    let mismatch = change(&b, "anything at all", NEW_PASSWORD, "not the same").await;
    assert!(
        mismatch
            .text()
            .await
            .expect("body")
            .contains("do not match")
    );
    for left in [2, 1] {
        let page = change(&b, "not my password", NEW_PASSWORD, NEW_PASSWORD)
            .await
            .text()
            .await
            .expect("body");
        assert!(
            page.contains(&format!(
                "You have {left} attempt{} left before your account is locked for 12 hours",
                if left == 1 { "" } else { "s" }
            )),
            "{page}"
        );
    }
    let locked = change(&b, "not my password", NEW_PASSWORD, NEW_PASSWORD)
        .await
        .text()
        .await
        .expect("body");
    assert!(locked.contains("Your account is locked until"), "{locked}");
    assert_eq!(
        app.log_in_status(AMIR.username, GOOD_PASSWORD).await,
        200,
        "the sign-in is locked too"
    );
    let still = change(&b, GOOD_PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .text()
        .await
        .expect("body");
    assert!(still.contains("Your account is locked until"), "{still}");
}

/// "Where you're signed in": each session with its browser, address and
/// times, "This device" marked; one signed out by its own button; all
/// others at once; another person's session cannot be named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_and_ends_their_own_sessions_and_only_theirs() {
    let app = app_with_password(&[]).await;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let here = amir_in(&app, FIREFOX).await;
    let phone = amir_in(&app, SAFARI).await;
    let third = amir_in(&app, SAFARI).await;
    let jane = app.browser().with_header("user-agent", FIREFOX);
    assert_eq!(
        jane.log_in(JANE.username, GOOD_PASSWORD).await.status(),
        303
    );

    let page = here.page("/account/sessions").await;
    assert!(page.contains("Firefox on Windows"), "{page}");
    assert!(page.contains("Safari on iPhone"), "{page}");
    assert_eq!(page.matches("This device").count(), 1, "{page}");
    let sids: Vec<String> = page
        .split("name=\"sid\" value=\"")
        .skip(1)
        .map(|s| s[..s.find('"').expect("end")].to_owned())
        .collect();
    assert_eq!(sids.len(), 2, "a button for each other session: {page}");

    // Jane's own session, named in Amir's form, is refused.
    let jane_id = gatehouse_domain::SecretToken::parse(&jane.session_id()).expect("session id");
    let jane_sid = gatehouse_domain::oidc::session_sid(&jane_id.hash());
    let token = here.form_token("/account/sessions").await;
    let refused = here
        .post_form("/account/sessions/end", &token, &[("sid", &jane_sid)])
        .await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        jane.get("/account").await.status(),
        200,
        "Jane is untouched"
    );

    let ended = here
        .post_form("/account/sessions/end", &token, &[("sid", &sids[0])])
        .await;
    assert_eq!(ended.headers()["location"], "/account/sessions");
    let mut still = 0;
    for b in [&phone, &third] {
        if b.get("/account").await.status() == 200 {
            still += 1;
        }
    }
    assert_eq!(still, 1, "exactly one of the two was signed out");

    let all = here
        .post_form("/account/sessions/end-others", &token, &[])
        .await;
    assert_eq!(all.headers()["location"], "/account/sessions");
    assert_eq!(phone.get("/account").await.status(), 303);
    assert_eq!(third.get("/account").await.status(), 303);
    assert_eq!(
        here.get("/account").await.status(),
        200,
        "this device stays"
    );
    assert_eq!(
        jane.get("/account").await.status(),
        200,
        "Jane is untouched"
    );
    assert_eq!(
        audit_events(&app, "account.own_sessions_ended").await.len(),
        2
    );
}

/// "Recent activity": the person's own events of the last 30 days in plain
/// words, with the address and browser; never another person's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_shows_the_persons_own_events_in_plain_words() {
    let app = app_with_password(&[]).await;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let wrong = app.browser().with_header("user-agent", SAFARI);
    wrong.log_in(AMIR.username, "a wrong guess").await;
    let jane = app.browser().with_header("user-agent", FIREFOX);
    jane.log_in(JANE.username, "Jane's wrong guess").await;
    let here = amir_in(&app, FIREFOX).await;
    let page = here.page("/account/activity").await;
    for line in [
        "Signed in",
        "A wrong password was entered",
        "The password was set through an email link",
        "Firefox on Windows",
        "Safari on iPhone",
        "127.0.0.1",
    ] {
        assert!(page.contains(line), "{line}: {page}");
    }
    assert_eq!(
        page.matches("A wrong password was entered").count(),
        1,
        "Jane's guess is not Amir's: {page}"
    );
    assert!(!page.contains(JANE.username));
    app.advance(Span::hours(24 * 31));
    let later = app.browser().with_header("user-agent", FIREFOX);
    assert_eq!(
        later.log_in(AMIR.username, GOOD_PASSWORD).await.status(),
        303
    );
    let page = later.page("/account/activity").await;
    assert!(
        !page.contains("A wrong password was entered"),
        "older than 30 days"
    );
}

/// The lock is told once per lock, by email: attempts while it lasts send
/// nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_told_by_email_once_per_lock() {
    let app = app_with_password(&[]).await;
    for _ in 0..6 {
        app.browser()
            .with_header("user-agent", SAFARI)
            .log_in(AMIR.username, "a guess")
            .await;
    }
    let told = emails(&app, AMIR.email, "has been locked", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let told_again = emails(&app, AMIR.email, "has been locked", 1).await;
    assert_eq!((told.len(), told_again.len()), (1, 1));
    let body = told[0].decoded_body();
    assert!(
        body.contains("nobody has your password: the lock stopped them"),
        "{body}"
    );
    assert!(body.contains("Safari on iPhone"), "{body}");
    app.advance(Span::hours(13));
    for _ in 0..3 {
        app.browser().log_in(AMIR.username, "a guess").await;
    }
    assert_eq!(
        emails(&app, AMIR.email, "has been locked", 2).await.len(),
        2,
        "a new lock"
    );
}

/// The operator resetting a second factor is told by email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_reset_is_told_by_email() {
    let app = TestApp::spawn().await;
    app.console_as(Role::Helpdesk).await;
    app.gatehouse
        .reset_second_factor(AMIR.username, OPERATOR, "lost phone")
        .await
        .expect("runs")
        .expect("reset");
    let told = emails(&app, AMIR.email, "authenticator app has been reset", 1).await;
    assert_eq!(told.len(), 1);
}

/// With `GATEHOUSE_NEW_BROWSER_NOTICES`, a sign-in from a browser the
/// account has not used before is told (never the account's very first);
/// the same browser again is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_from_a_new_browser_is_told_when_the_operator_turns_it_on() {
    let app = app_with_password(&[("GATEHOUSE_NEW_BROWSER_NOTICES", "true")]).await;
    let first = amir_in(&app, FIREFOX).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        emails(&app, AMIR.email, "A new sign-in", 0).await.len(),
        0,
        "the account's first sign-in"
    );
    // The same browser, signed out and in again.
    let token = first.form_token("/account").await;
    first.post_form("/logout", &token, &[]).await;
    let again = first.log_in(AMIR.username, GOOD_PASSWORD).await;
    assert_eq!(again.status(), 303);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = emails(&app, AMIR.email, "A new sign-in", 0).await.len();
    amir_in(&app, SAFARI).await;
    let told = emails(&app, AMIR.email, "A new sign-in", before + 1).await;
    assert_eq!(told.len(), before + 1);
    assert!(told[before].decoded_body().contains("Safari on iPhone"));
    assert!(!audit_events(&app, "sign_in.new_browser").await.is_empty());
}

/// No more than five security emails go to one address in an hour; the
/// rest are audited, not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_emails_to_one_address_are_limited_per_hour() {
    let app = app_with_password(&[]).await;
    let b = amir_in(&app, FIREFOX).await;
    let passwords = [
        "first new password one",
        "second new password two",
        "third new password three",
        "fourth new password four",
        "fifth new password five",
        "sixth new password six",
        "seventh new password seven",
    ];
    let mut current = GOOD_PASSWORD.to_owned();
    for p in passwords {
        let r = change(&b, &current, p, p).await;
        assert_eq!(r.status(), 303, "{p}");
        current = p.to_owned();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        emails(&app, AMIR.email, "password has been changed", 5)
            .await
            .len(),
        5
    );
    assert_eq!(
        audit_events(&app, "email.security_notice_throttled")
            .await
            .len(),
        2
    );
}

/// The page frame follows who is looking: signed in, the footer offers
/// "My account", not "Log in".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_footer_follows_who_is_looking() {
    let app = app_with_password(&[]).await;
    let visitor = app.browser().page("/").await;
    assert!(visitor.contains(">Log in</a></li>"), "{visitor}");
    let b = amir_in(&app, FIREFOX).await;
    for path in ["/", "/account", "/account/activity"] {
        let page = b.page(path).await;
        let footer = &page[page.find("<footer").expect("footer")..];
        assert!(!footer.contains(">Log in<"), "{path}: {footer}");
        assert!(footer.contains(">My account<"), "{path}");
    }
}

/// The applications a person is signed in to are listed with their
/// devices; "Sign out of this application" revokes its tokens, and only
/// that application's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_out_of_one_application_from_their_account() {
    let app = app_with_password(&[]).await;
    let payslips = crate::oidc::Rp::register(&app, |c| c.name = "Payslips".to_owned()).await;
    let rota = crate::oidc::Rp::register(&app, |c| c.name = "Rota".to_owned()).await;
    let b = amir_in(&app, FIREFOX).await;
    let who = (AMIR.username, GOOD_PASSWORD);
    let pay = payslips.tokens_for(&b, &[], who).await;
    let rot = rota.tokens_for(&b, &[], who).await;
    let page = b.page("/account/sessions").await;
    assert!(page.contains("Payslips") && page.contains("Rota"), "{page}");
    let token = csrf_token(&page).expect("form");
    let r = b
        .post_form(
            "/account/applications/sign-out",
            &token,
            &[("client_id", &payslips.id)],
        )
        .await;
    assert_eq!(r.headers()["location"], "/account/sessions");
    assert_eq!(
        payslips.refresh(&pay.field("refresh_token")).await.status,
        400
    );
    assert_eq!(rota.refresh(&rot.field("refresh_token")).await.status, 200);
    let page = b.page("/account/sessions").await;
    assert!(!page.contains(">Payslips<"), "{page}");
    let again = b
        .post_form(
            "/account/applications/sign-out",
            &token,
            &[("client_id", &payslips.id)],
        )
        .await;
    assert_eq!(again.status(), 404, "not signed in to it any more");
    assert_eq!(
        b.get("/account").await.status(),
        200,
        "still signed in to Gatehouse"
    );
}

//! A password reset of a helpdesk or admin account whose second factor is
//! a passkey: the reset link alone sets nothing (it proves the mailbox, not
//! the person); the account's own passkey, used in the browser holding the
//! link, opens the form, and only in that browser. And what turning
//! passkeys off leaves such an account.

use gatehouse_domain::Role;

use crate::helpers::*;
use crate::passkeys::{ON, add, finish, start};

const NEW_PASSWORD: &str = "a fresh admin passphrase";

fn reset_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("username", AMIR.username),
        ("password", NEW_PASSWORD),
        ("confirm-password", NEW_PASSWORD),
    ]
}

/// Uses `key` on the reset page `b` holds: the JSON answer.
async fn use_passkey(b: &Browser, key: &mut SoftPasskey) -> serde_json::Value {
    let (ceremony, options, token) = start(b, "/reset", "/reset/passkey/options", &[]).await;
    finish(
        b,
        "/reset/passkey",
        &token,
        &ceremony,
        &key.assert(&options),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_reset_asks_for_their_passkey_when_it_is_their_second_factor() {
    let app = TestApp::spawn_with(&[ON]).await;
    // Amir, an admin with a passkey and no authenticator app.
    let admin = app.signed_in(Role::Admin).await;
    let mut amirs_key = add(&admin, "security key").await;
    app.browser().request_recovery(AMIR.recovery()).await;
    let link = reset_links(&app.recovery_email(1).await, PUBLIC_URL).remove(0);
    // Jane, staff, with a passkey of her own.
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let jane = app.browser();
    assert_eq!(
        jane.log_in(JANE.username, GOOD_PASSWORD).await.status(),
        303
    );
    let mut janes_key = add(&jane, "phone").await;

    let c = app.browser();
    let opened = c.open_link(&link).await;
    let cookie = opened
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gatehouse-reset="))
        .and_then(|v| v.split(';').next())
        .expect("the reset cookie")
        .to_owned();
    let page = c.page("/reset").await;
    assert!(page.contains("Use your passkey"), "{page}");
    assert!(!page.contains("Confirm password"), "no password form yet");

    // The form sent anyway sets nothing.
    let page = c
        .submit("/reset", "/reset", &reset_fields())
        .await
        .body()
        .await;
    assert_error(&page, "Use your passkey before setting a new password");
    assert_eq!(app.log_in_status(AMIR.username, GOOD_PASSWORD).await, 303);

    // Another account's passkey does not pass.
    let refused = use_passkey(&c, &mut janes_key).await;
    assert!(refused["error"].is_string(), "{refused}");
    assert!(c.page("/reset").await.contains("Use your passkey"));

    // A cookie edited to say the passkey was used is no cookie at all.
    let (held, tag) = cookie.rsplit_once('.').expect("signed");
    let forged = format!("{held}.passkey.{tag}");
    let page = c
        .http()
        .get(c.url("/reset"))
        .header("cookie", forged)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert!(page.contains("This link is not valid"), "{page}");

    // Amir's own passkey opens the form, in this browser only.
    let passed = use_passkey(&c, &mut amirs_key).await;
    assert_eq!(passed["redirect"], "/reset", "{passed}");
    let page = c.page("/reset").await;
    assert!(page.contains("Confirm password"), "{page}");
    let other = app.browser();
    other.open_link(&link).await;
    assert!(other.page("/reset").await.contains("Use your passkey"));
    let done = c.submit("/reset", "/reset", &reset_fields()).await;
    assert_eq!(done.status(), 303);
    assert_eq!(app.log_in_status(AMIR.username, NEW_PASSWORD).await, 303);
    let passes = audit_events(&app, "second_factor.passed").await;
    assert!(
        passes
            .iter()
            .any(|e| e.detail.as_deref() == Some("with a passkey, for a password reset")),
        "audited"
    );
}

/// With an authenticator app as well as a passkey, the app's code is
/// asked for as before, unless the operator accepts only passkeys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_app_too_the_code_is_asked_unless_only_passkeys_are_accepted() {
    let app = TestApp::spawn_with(&[ON]).await;
    let admin = app.signed_in(Role::Admin).await;
    app.enrol(&admin).await;
    add(&admin, "security key").await;
    // The n-th recovery email: a restart keeps the mail server.
    let asks = |app: TestApp, n: usize| async move {
        app.browser().request_recovery(AMIR.recovery()).await;
        let link = reset_links(&app.recovery_email(n).await, PUBLIC_URL).remove(0);
        let c = app.browser();
        c.open_link(&link).await;
        (c.page("/reset").await, app)
    };
    let (page, app) = asks(app, 1).await;
    assert!(page.contains("Code from your authenticator app"), "{page}");
    assert!(!page.contains("Use your passkey"), "{page}");
    let app = app
        .restart(
            &[ON, ("GATEHOUSE_PRIVILEGED_SECOND_FACTOR", "passkey")],
            true,
        )
        .await;
    let (page, _app) = asks(app, 2).await;
    assert!(page.contains("Use your passkey"), "{page}");
    assert!(!page.contains("Code from your authenticator app"), "{page}");
}

/// Turning passkeys off leaves an admin whose only second factor was a
/// passkey with none (their reset would ask nothing more than the link):
/// such accounts are counted, and the count said at start-up, so that the
/// operator can give each a set-up link. Staff with passkeys are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_passkeys_off_counts_the_members_it_leaves_without_a_second_factor() {
    let app = TestApp::spawn_with(&[ON]).await;
    let admin = app.signed_in(Role::Admin).await;
    add(&admin, "security key").await;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let jane = app.browser();
    assert_eq!(
        jane.log_in(JANE.username, GOOD_PASSWORD).await.status(),
        303
    );
    add(&jane, "phone").await;
    let stranded = |app: &TestApp| {
        let g = app.gatehouse.clone();
        async move { g.stranded_without_passkeys().await.expect("count") }
    };
    assert_eq!(stranded(&app).await, 0, "passkeys on");
    let app = app.restart(&[], true).await;
    assert_eq!(stranded(&app).await, 1, "Amir, not Jane");
}

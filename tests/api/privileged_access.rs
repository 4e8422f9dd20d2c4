//! The boundary around helpdesk and admin accounts: what the helpdesk may
//! do to whom, how a privileged person's authenticator is set up, how a
//! reset proves it, and how wrong codes and locks are counted.

use gatehouse_domain::second_factor::TotpSecret;
use gatehouse_domain::{Role, Span};

use crate::helpers::*;

/// Priya's password: she is the administrator the helpdesk is after.
const PRIYA_PASSWORD: &str = "orchard lantern pebble";

/// Priya made admin by the operator, her password set through her set-up
/// link, and her authenticator enrolled: her console browser and secret.
async fn priya_the_admin(app: &TestApp) -> (Browser, TotpSecret) {
    app.import(&staff_file(&[&PRIYA])).await;
    let link = app.grant(PRIYA.username, Role::Admin).await;
    app.browser()
        .set_password_through(&link, PRIYA.username, PRIYA_PASSWORD)
        .await;
    let c = app.browser();
    assert_eq!(c.log_in(PRIYA.username, PRIYA_PASSWORD).await.status(), 303);
    let secret = app.enrol(&c).await.secret;
    assert_eq!(c.get("/console").await.status(), 200);
    (c, secret)
}

/// Posts a console action on `username` with the session's form token
/// (from "My account": the account's own console page may be refused).
async fn post_action(
    c: &Browser,
    username: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = c.form_token("/account").await;
    c.post_form(
        &format!("/console/accounts/{username}/{action}"),
        &token,
        fields,
    )
    .await
}

/// Defect P1 (docs/security.md): a helpdesk member changed an admin's email address,
/// read the recovery email, set the password and enrolled their own
/// authenticator. Now core refuses the helpdesk every action on a
/// privileged account (403, audited), and a password set by a recovery
/// email lets nobody set up an authenticator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helpdesk_member_cannot_take_over_an_admin_account() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.import(&staff_file(&[&PRIYA])).await;
    // Priya is made admin, but has not used her set-up link yet.
    app.grant(PRIYA.username, Role::Admin).await;
    let helpdesk = app.console_as(Role::Helpdesk).await.0;
    let refused_before = audit_events(&app, "console.refused").await.len();

    // Her account page (with its date of birth) and every action on it.
    let page = helpdesk
        .get(&format!("/console/accounts/{}", PRIYA.username))
        .await;
    assert_eq!(page.status(), 403);
    let page = page.body().await;
    assert!(
        page.contains("You do not have permission to do that"),
        "{page}"
    );
    assert!(!page.contains("1982"), "no date of birth");
    let email = post_action(
        &helpdesk,
        PRIYA.username,
        "email",
        &[
            ("email", "helpdesk.friend@nhs.net"),
            ("reason", "she asked"),
        ],
    )
    .await;
    assert_eq!(email.status(), 403);
    let sessions = post_action(&helpdesk, PRIYA.username, "sessions", &[("reason", "x")]).await;
    assert_eq!(sessions.status(), 403);
    // Another helpdesk account is as much out of reach.
    app.import(
        "employer,username,first_name,last_name,date_of_birth,email,employee_number,role\n\
         999 Demo Hospital NHS Trust,,Jane,Smith,1985-03-14,Jane.Smith@nhs.net,D1,helpdesk\n",
    )
    .await;
    let jane = post_action(
        &helpdesk,
        JANE.username,
        "email",
        &[("email", "someone.else@nhs.net"), ("reason", "x")],
    )
    .await;
    assert_eq!(jane.status(), 403);
    assert_eq!(
        account(&app, JANE.username).await.email.as_str(),
        "Jane.Smith@nhs.net"
    );

    let priya = account(&app, PRIYA.username).await;
    assert_eq!(priya.email.as_str(), "priya.patel@nhs.net", "unchanged");
    let refusals = audit_events(&app, "console.refused").await;
    assert_eq!(refusals.len(), refused_before + 4);
    let email_refusal = refusals
        .iter()
        .find(|e| {
            e.detail
                .as_deref()
                .is_some_and(|d| d.contains("change the email address of admin account"))
        })
        .expect("the email change's refusal");
    assert_eq!(email_refusal.actor.as_deref(), Some("helpdesk 999AKHAN01"));
    assert_eq!(email_refusal.username.as_deref(), Some(PRIYA.username));

    // Even with her mailbox, a recovery email's link sets a password but
    // sets up no authenticator: the console stays shut.
    app.browser().request_recovery(PRIYA.recovery()).await;
    let link = reset_links(&app.recovery_email(1).await, PUBLIC_URL).remove(0);
    app.browser()
        .set_password_through(&link, PRIYA.username, "stolen inbox password 1")
        .await;
    let intruder = app.browser();
    intruder
        .log_in(PRIYA.username, "stolen inbox password 1")
        .await;
    let page = intruder.page("/console/second-factor").await;
    assert!(
        page.contains("Your authenticator app has not been set up"),
        "{page}"
    );
    assert!(!page.contains("gatehouse-key"), "no key is shown");
    let import = intruder.get("/console/import").await;
    assert_eq!(import.headers()["location"], "/console/second-factor");
    // Nor does a code for an authenticator that was never set up count.
    let page = intruder.send_code("123456").await.body().await;
    assert!(page.contains("not been set up"), "{page}");
}

/// The operator's set-up link is the only way in: it sets the password,
/// and then the person who used it sets up their authenticator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_set_up_link_lets_a_privileged_person_set_up_an_authenticator() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.import(&staff_file(&[&PRIYA])).await;
    let link = app.grant(PRIYA.username, Role::Admin).await;
    // The link's page says what it is for.
    let c = app.browser();
    c.open_link(&link).await;
    let page = c.page("/reset").await;
    assert!(
        page.contains("This link comes from the System Administrator"),
        "{page}"
    );
    let done = c.submit_reset(PRIYA.username, PRIYA_PASSWORD).await;
    assert_eq!(done.headers()["location"], "/login?password=set-up");
    let login = c.page("/login?password=set-up").await;
    assert!(login.contains("set up your authenticator app"), "{login}");
    c.log_in(PRIYA.username, PRIYA_PASSWORD).await;
    app.enrol(&c).await;
    assert_eq!(c.get("/console").await.status(), 200);
    let issued = audit_events(&app, "second_factor.set_up_link_issued").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].actor.as_deref(), Some("test"));

    // The window closes: a person who never enrolled cannot once it has
    // passed, and must ask again.
    let late = TestApp::spawn().await;
    late.import(STAFF).await;
    late.import(&staff_file(&[&PRIYA])).await;
    let link = late.grant(PRIYA.username, Role::Admin).await;
    late.browser()
        .set_password_through(&link, PRIYA.username, PRIYA_PASSWORD)
        .await;
    late.advance(Span::hours(5));
    let c = late.browser();
    c.log_in(PRIYA.username, PRIYA_PASSWORD).await;
    let page = c.page("/console/second-factor").await;
    assert!(page.contains("has not been set up"), "{page}");
}

/// A helpdesk or admin whose password is set through a recovery email
/// proves the second factor they already have.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_privileged_reset_asks_for_the_authenticator_it_already_has() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (_, secret) = priya_the_admin(&app).await;
    app.browser().request_recovery(PRIYA.recovery()).await;
    let link = reset_links(&app.recovery_email(1).await, PUBLIC_URL).remove(0);
    let c = app.browser();
    c.open_link(&link).await;
    let page = c.page("/reset").await;
    assert!(page.contains("Code from your authenticator app"), "{page}");
    let fields = |code: &'static str| {
        vec![
            ("username", PRIYA.username),
            ("password", "a fresh admin passphrase"),
            ("confirm-password", "a fresh admin passphrase"),
            ("code", code),
        ]
    };
    let page = c.submit("/reset", "/reset", &fields("")).await.body().await;
    assert_error(&page, "Enter the 6-digit code");
    let page = c
        .submit("/reset", "/reset", &fields("000000"))
        .await
        .body()
        .await;
    assert_error(&page, "The code is not right");
    assert_error(&page, "2 attempts left");
    assert_eq!(
        app.log_in_status(PRIYA.username, PRIYA_PASSWORD).await,
        303,
        "the password is unchanged"
    );
    app.advance(Span::from_seconds(30));
    let code = app.code_now(&secret);
    let mut right = fields("");
    right[3] = ("code", code.as_str());
    let done = c.submit("/reset", "/reset", &right).await;
    assert_eq!(
        done.status(),
        303,
        "{}",
        done.text().await.unwrap_or_default()
    );
    assert_eq!(
        app.log_in_status(PRIYA.username, "a fresh admin passphrase")
            .await,
        303
    );
    // A staff reset asks for no code.
    app.browser().request_recovery(AMIR.recovery()).await;
    let link = reset_links(&app.recovery_email(2).await, PUBLIC_URL).remove(0);
    let c = app.browser();
    c.open_link(&link).await;
    assert!(
        !c.page("/reset")
            .await
            .contains("Code from your authenticator app")
    );
}

/// Defect P2 (docs/security.md): after two wrong codes, the right password set the
/// count back to 0, so a stolen password bought two code guesses per
/// sign-in, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_password_does_not_clear_the_count_of_wrong_codes() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (_, secret) = priya_the_admin(&app).await;
    let c = app.browser();
    c.log_in(PRIYA.username, PRIYA_PASSWORD).await;
    for left in [2, 1] {
        let page = c.send_code("111111").await.body().await;
        assert!(page.contains(&format!("{left} attempt")), "{left}: {page}");
    }
    assert_eq!(
        account_status(&app, PRIYA.username)
            .await
            .consecutive_failures,
        2
    );
    // The right password again: the two wrong codes stay counted.
    let c = app.browser();
    assert_eq!(c.log_in(PRIYA.username, PRIYA_PASSWORD).await.status(), 303);
    assert_eq!(
        account_status(&app, PRIYA.username)
            .await
            .consecutive_failures,
        2
    );
    // So the third wrong code in a row, in a new sign-in, locks.
    let page = c.send_code("222222").await.body().await;
    assert!(page.contains("Your account is locked until"), "{page}");
    assert!(
        account_status(&app, PRIYA.username)
            .await
            .locked_until
            .is_some()
    );

    // A right code does clear the count, as does the lock's end.
    app.advance(Span::hours(12));
    let c = app.browser();
    c.log_in(PRIYA.username, PRIYA_PASSWORD).await;
    c.send_code("333333").await.body().await;
    assert_eq!(
        account_status(&app, PRIYA.username)
            .await
            .consecutive_failures,
        1
    );
    app.advance(Span::from_seconds(30));
    c.send_code(&app.code_now(&secret)).await.body().await;
    assert_eq!(
        account_status(&app, PRIYA.username)
            .await
            .consecutive_failures,
        0
    );
}

/// Defect P9 (docs/security.md): a console session that had passed its second factor
/// kept its access while the account was locked by someone's guesses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_makes_a_privileged_session_pass_its_second_factor_again() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (admin, secret) = priya_the_admin(&app).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    let staff = app.browser();
    staff.log_in(AMIR.username, GOOD_PASSWORD).await;
    // Someone guesses both passwords until they lock.
    for _ in 0..3 {
        app.browser()
            .log_in(PRIYA.username, "guess guess guess")
            .await;
        app.browser()
            .log_in(AMIR.username, "guess guess guess")
            .await;
    }
    assert!(
        account_status(&app, PRIYA.username)
            .await
            .locked_until
            .is_some()
    );
    // The console session must prove itself again, which it cannot do
    // until the lock ends.
    let r = admin.get("/console").await;
    assert_eq!(r.headers()["location"], "/console/second-factor");
    let r = post_action(&admin, JANE.username, "sessions", &[("reason", "x")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/second-factor");
    let page = admin.send_code(&app.code_now(&secret)).await.body().await;
    assert!(page.contains("Your account is locked until"), "{page}");
    // A staff session is left alone: someone else's guesses must not sign
    // its owner out.
    assert_eq!(staff.get("/account").await.status(), 200);

    // Once the lock has ended, a code opens the console again.
    app.advance(Span::hours(12));
    let again = app.browser();
    again.log_in(PRIYA.username, PRIYA_PASSWORD).await;
    again.send_code(&app.code_now(&secret)).await.body().await;
    assert_eq!(again.get("/console").await.status(), 200);
}

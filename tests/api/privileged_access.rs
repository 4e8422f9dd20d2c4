//! The boundary around helpdesk and admin accounts: what the helpdesk may
//! do to whom, how a privileged person's authenticator is set up, how a
//! reset proves it, and how wrong codes and locks are counted.

use gatehouse_domain::second_factor::TotpSecret;
use gatehouse_domain::{Role, Span};

use crate::helpers::*;

const AMIR: &str = "999AKHAN01";
const JANE: &str = "999JSMITH01";
const PRIYA: &str = "999PPATEL01";
const PRIYA_PASSWORD: &str = "orchard lantern pebble";

/// Priya Patel, a second person, who becomes the administrator.
const PRIYA_ROW: &str = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
999 Demo Hospital NHS Trust,,Priya,Patel,1982-05-21,priya.patel@nhs.net,D9\n";

fn code_now(app: &TestApp, secret: &TotpSecret) -> String {
    secret.code_at(app.gatehouse.clock().now().unix().cast_unsigned())
}

async fn send_code(app: &TestApp, c: &reqwest::Client, code: &str) -> String {
    app.submit(
        c,
        "/console/second-factor",
        "/console/second-factor",
        &[("code", code)],
    )
    .await
    .text()
    .await
    .expect("body")
}

/// Enrols the signed-in browser `c` (inside a set-up link's window).
async fn enrol(app: &TestApp, c: &reqwest::Client) -> TotpSecret {
    let page = app.page_as(c, "/console/second-factor").await;
    let secret = key_in(&page);
    let page = send_code(app, c, &code_now(app, &secret)).await;
    assert!(page.contains("Save your recovery codes"), "{page}");
    secret
}

/// Priya made admin by the operator, her password set through her set-up
/// link, and her authenticator enrolled: her console browser and secret.
async fn priya_the_admin(app: &TestApp) -> (reqwest::Client, TotpSecret) {
    app.import(PRIYA_ROW).await;
    let link = grant(app, PRIYA, Role::Admin).await;
    set_password_through(app, &link, PRIYA, PRIYA_PASSWORD).await;
    let c = client();
    assert_eq!(app.log_in_as(&c, PRIYA, PRIYA_PASSWORD).await.status(), 303);
    let secret = enrol(app, &c).await;
    assert_eq!(app.get_as(&c, "/console").await.status(), 200);
    (c, secret)
}

/// Posts a console action on `username` with the session's form token
/// (from "My account": the account's own console page may be refused).
async fn post_action(
    app: &TestApp,
    c: &reqwest::Client,
    username: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = form_token(c, &app.url("/account")).await;
    post_form(
        c,
        &app.url(&format!("/console/accounts/{username}/{action}")),
        &token,
        fields,
    )
    .await
}

/// Issue 16, defect 1: a helpdesk member changed an admin's email address,
/// read the recovery email, set the password and enrolled their own
/// authenticator. Now core refuses the helpdesk every action on a
/// privileged account (403, audited), and a password set by a recovery
/// email lets nobody set up an authenticator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_helpdesk_member_cannot_take_over_an_admin_account() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.import(PRIYA_ROW).await;
    // Priya is made admin, but has not used her set-up link yet.
    grant(&app, PRIYA, Role::Admin).await;
    let helpdesk = console_as(&app, Role::Helpdesk).await;
    let refused_before = audit_events(&app, "console.refused").await.len();

    // Her account page (with its date of birth) and every action on it.
    let page = app
        .get_as(&helpdesk, &format!("/console/accounts/{PRIYA}"))
        .await;
    assert_eq!(page.status(), 403);
    let page = page.text().await.expect("body");
    assert!(
        page.contains("You do not have permission to do that"),
        "{page}"
    );
    assert!(!page.contains("1982"), "no date of birth");
    let email = post_action(
        &app,
        &helpdesk,
        PRIYA,
        "email",
        &[
            ("email", "helpdesk.friend@nhs.net"),
            ("reason", "she asked"),
        ],
    )
    .await;
    assert_eq!(email.status(), 403);
    let sessions = post_action(&app, &helpdesk, PRIYA, "sessions", &[("reason", "x")]).await;
    assert_eq!(sessions.status(), 403);
    // Another helpdesk account is as much out of reach.
    app.import(
        "employer,username,first_name,last_name,date_of_birth,email,employee_number,role\n\
         999 Demo Hospital NHS Trust,,Jane,Smith,1985-03-14,Jane.Smith@nhs.net,D1,helpdesk\n",
    )
    .await;
    let jane = post_action(
        &app,
        &helpdesk,
        JANE,
        "email",
        &[("email", "someone.else@nhs.net"), ("reason", "x")],
    )
    .await;
    assert_eq!(jane.status(), 403);
    assert_eq!(
        account(&app, JANE).await.email.as_str(),
        "Jane.Smith@nhs.net"
    );

    let priya = account(&app, PRIYA).await;
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
    assert_eq!(email_refusal.username.as_deref(), Some(PRIYA));

    // Even with her mailbox, a recovery email's link sets a password but
    // sets up no authenticator: the console stays shut.
    app.request_recovery("priya.patel@nhs.net", ("21", "5", "1982"))
        .await;
    let link = reset_links(&app.recovery_email(1).await).remove(0);
    set_password_through(&app, &link, PRIYA, "stolen inbox password 1").await;
    let intruder = client();
    app.log_in_as(&intruder, PRIYA, "stolen inbox password 1")
        .await;
    let page = app.page_as(&intruder, "/console/second-factor").await;
    assert!(
        page.contains("Your authenticator app has not been set up"),
        "{page}"
    );
    assert!(!page.contains("gatehouse-key"), "no key is shown");
    let import = app.get_as(&intruder, "/console/import").await;
    assert_eq!(import.headers()["location"], "/console/second-factor");
    // Nor does a code for an authenticator that was never set up count.
    let page = send_code(&app, &intruder, "123456").await;
    assert!(page.contains("not been set up"), "{page}");
}

/// The operator's set-up link is the only way in: it sets the password,
/// and then the person who used it sets up their authenticator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_set_up_link_lets_a_privileged_person_set_up_an_authenticator() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.import(PRIYA_ROW).await;
    let link = grant(&app, PRIYA, Role::Admin).await;
    // The link's page says what it is for.
    let c = client();
    app.open_link(&c, &link).await;
    let page = app.page_as(&c, "/reset").await;
    assert!(
        page.contains("This link comes from the System Administrator"),
        "{page}"
    );
    let done = submit_reset_at(&c, &app.address, PRIYA, PRIYA_PASSWORD).await;
    assert_eq!(done.headers()["location"], "/login?password=set-up");
    let login = app.page_as(&c, "/login?password=set-up").await;
    assert!(login.contains("set up your authenticator app"), "{login}");
    app.log_in_as(&c, PRIYA, PRIYA_PASSWORD).await;
    enrol(&app, &c).await;
    assert_eq!(app.get_as(&c, "/console").await.status(), 200);
    let issued = audit_events(&app, "second_factor.set_up_link_issued").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].actor.as_deref(), Some("test"));

    // The window closes: a person who never enrolled cannot once it has
    // passed, and must ask again.
    let late = TestApp::spawn().await;
    late.import(STAFF).await;
    late.import(PRIYA_ROW).await;
    let link = grant(&late, PRIYA, Role::Admin).await;
    set_password_through(&late, &link, PRIYA, PRIYA_PASSWORD).await;
    late.advance(Span::hours(5));
    let c = client();
    late.log_in_as(&c, PRIYA, PRIYA_PASSWORD).await;
    let page = late.page_as(&c, "/console/second-factor").await;
    assert!(page.contains("has not been set up"), "{page}");
}

/// A helpdesk or admin whose password is set through a recovery email
/// proves the second factor they already have.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_privileged_reset_asks_for_the_authenticator_it_already_has() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (_, secret) = priya_the_admin(&app).await;
    app.request_recovery("priya.patel@nhs.net", ("21", "5", "1982"))
        .await;
    let link = reset_links(&app.recovery_email(1).await).remove(0);
    let c = client();
    app.open_link(&c, &link).await;
    let page = app.page_as(&c, "/reset").await;
    assert!(page.contains("Code from your authenticator app"), "{page}");
    let fields = |code: &'static str| {
        vec![
            ("username", PRIYA),
            ("password", "a fresh admin passphrase"),
            ("confirm-password", "a fresh admin passphrase"),
            ("code", code),
        ]
    };
    let page = app
        .submit(&c, "/reset", "/reset", &fields(""))
        .await
        .text()
        .await
        .expect("body");
    assert_error(&page, "Enter the 6-digit code");
    let page = app
        .submit(&c, "/reset", "/reset", &fields("000000"))
        .await
        .text()
        .await
        .expect("body");
    assert_error(&page, "The code is not right");
    assert_error(&page, "2 attempts left");
    assert_eq!(
        app.log_in(PRIYA, PRIYA_PASSWORD).await.status(),
        303,
        "the password is unchanged"
    );
    app.advance(Span::from_seconds(30));
    let code = code_now(&app, &secret);
    let mut right = fields("");
    right[3] = ("code", code.as_str());
    let done = app.submit(&c, "/reset", "/reset", &right).await;
    assert_eq!(
        done.status(),
        303,
        "{}",
        done.text().await.unwrap_or_default()
    );
    assert_eq!(
        app.log_in(PRIYA, "a fresh admin passphrase").await.status(),
        303
    );
    // A staff reset asks for no code.
    app.request_recovery("amir.khan@nhs.net", ("2", "7", "1990"))
        .await;
    let link = reset_links(&app.recovery_email(2).await).remove(0);
    let c = client();
    app.open_link(&c, &link).await;
    assert!(
        !app.page_as(&c, "/reset")
            .await
            .contains("Code from your authenticator app")
    );
}

/// Issue 16, defect 2: after two wrong codes, the right password set the
/// count back to 0, so a stolen password bought two code guesses per
/// sign-in, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_password_does_not_clear_the_count_of_wrong_codes() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (_, secret) = priya_the_admin(&app).await;
    let c = client();
    app.log_in_as(&c, PRIYA, PRIYA_PASSWORD).await;
    for left in [2, 1] {
        let page = send_code(&app, &c, "111111").await;
        assert!(page.contains(&format!("{left} attempt")), "{left}: {page}");
    }
    assert_eq!(account_status(&app, PRIYA).await.consecutive_failures, 2);
    // The right password again: the two wrong codes stay counted.
    let c = client();
    assert_eq!(app.log_in_as(&c, PRIYA, PRIYA_PASSWORD).await.status(), 303);
    assert_eq!(account_status(&app, PRIYA).await.consecutive_failures, 2);
    // So the third wrong code in a row, in a new sign-in, locks.
    let page = send_code(&app, &c, "222222").await;
    assert!(page.contains("Your account is locked until"), "{page}");
    assert!(account_status(&app, PRIYA).await.locked_until.is_some());

    // A right code does clear the count, as does the lock's end.
    app.advance(Span::hours(12));
    let c = client();
    app.log_in_as(&c, PRIYA, PRIYA_PASSWORD).await;
    send_code(&app, &c, "333333").await;
    assert_eq!(account_status(&app, PRIYA).await.consecutive_failures, 1);
    app.advance(Span::from_seconds(30));
    send_code(&app, &c, &code_now(&app, &secret)).await;
    assert_eq!(account_status(&app, PRIYA).await.consecutive_failures, 0);
}

/// Issue 16, defect 9: a console session that had passed its second factor
/// kept its access while the account was locked by someone's guesses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_makes_a_privileged_session_pass_its_second_factor_again() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (admin, secret) = priya_the_admin(&app).await;
    give_amir_a_password(&app).await;
    let staff = client();
    app.log_in_as(&staff, AMIR, GOOD_PASSWORD).await;
    // Someone guesses both passwords until they lock.
    for _ in 0..3 {
        app.log_in(PRIYA, "guess guess guess").await;
        app.log_in(AMIR, "guess guess guess").await;
    }
    assert!(account_status(&app, PRIYA).await.locked_until.is_some());
    // The console session must prove itself again, which it cannot do
    // until the lock ends.
    let r = app.get_as(&admin, "/console").await;
    assert_eq!(r.headers()["location"], "/console/second-factor");
    let r = post_action(&app, &admin, JANE, "sessions", &[("reason", "x")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/second-factor");
    let page = send_code(&app, &admin, &code_now(&app, &secret)).await;
    assert!(page.contains("Your account is locked until"), "{page}");
    // A staff session is left alone: someone else's guesses must not sign
    // its owner out.
    assert_eq!(app.get_as(&staff, "/account").await.status(), 200);

    // Once the lock has ended, a code opens the console again.
    app.advance(Span::hours(12));
    let again = client();
    app.log_in_as(&again, PRIYA, PRIYA_PASSWORD).await;
    send_code(&app, &again, &code_now(&app, &secret)).await;
    assert_eq!(app.get_as(&again, "/console").await.status(), 200);
}

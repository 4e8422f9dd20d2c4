//! The flows of the seed, end to end over HTTP with real SMTP.

use gatehouse_domain::Span;

use crate::helpers::*;

/// Security cases A1, B19, F72, F75 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_time_access_from_recovery_to_my_account() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let browser = app.browser();

    let page = browser.get("/recover").await.body().await;
    assert!(page.contains("Forgotten | Request Username/Password | Unlock Account"));
    assert!(page.contains("Enter the email address associated with your account and your date of birth, your login details will then be emailed to you."));
    for label in [
        ">Email<",
        ">Date of birth<",
        ">Day<",
        ">Month<",
        ">Year<",
        ">Username<",
        ">Submit<",
    ] {
        assert!(page.contains(label), "missing {label}");
    }

    let response = browser.request_recovery(AMIR.recovery()).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/recover/confirmation");
    let confirmation = browser.get("/recover/confirmation").await.body().await;
    assert!(confirmation.contains("Your request to retrieve your username has been submitted. An email will be sent shortly. Please contact the System Administrator if you do not receive an email within the next 10-15 minutes."));
    assert!(confirmation.contains(">Ok<"));

    let mail = app.emails(1).await;
    let email = &mail[0];
    assert_eq!(email.to, ["amir.khan@nhs.net"]);
    let body = email.decoded_body();
    assert!(body.contains("Username: 999AKHAN01"), "{body}");
    assert!(body.contains("within 4 hours"));
    let links = reset_links(email, PUBLIC_URL);
    assert_eq!(links.len(), 1);
    let token = links[0].rsplit('/').next().expect("token");
    assert_eq!(token.len(), 43, "256 random bits in base64url");

    // Opening the link moves the token out of the address bar.
    let opened = browser.open_link(&links[0]).await;
    assert_eq!(opened.status(), 303);
    assert_eq!(opened.headers()["location"], "/reset");
    assert_eq!(opened.headers()["referrer-policy"], "no-referrer");
    let form = browser.get("/reset").await;
    assert_eq!(form.headers()["referrer-policy"], "no-referrer");
    let form = form.body().await;
    assert!(
        form.contains("Set your password"),
        "first-time access says so"
    );
    assert!(
        form.contains("be at least 12 characters long"),
        "requirements are written on the page"
    );
    assert!(!form.contains(token), "the token is not in the page");
    for label in [">Username<", ">Password<", ">Confirm password<"] {
        assert!(form.contains(label), "missing {label}");
    }

    let done = browser.submit_reset("999akhan01", GOOD_PASSWORD).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/login?password=set");
    let login = browser.get("/login?password=set").await.body().await;
    assert!(
        login.contains("Your password has been set. Log in with your username and new password.")
    );
    assert!(
        !browser
            .get("/login")
            .await
            .body()
            .await
            .contains("Your password has been set"),
        "the message shows once"
    );

    let signed_in = browser.log_in("999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/account");
    let account = browser.get("/account").await.body().await;
    assert!(account.contains("Amir Khan"));
    assert!(account.contains("999AKHAN01"));
    assert!(account.contains("Demo Hospital NHS Trust"));
    assert!(account.contains("This is your first sign-in"));
    assert!(account.contains("Sign out"));

    // A password-set notice followed the reset.
    let mail = app
        .smtp
        .wait_for(2, std::time::Duration::from_secs(10))
        .await;
    assert!(
        mail[1]
            .header("Subject")
            .unwrap_or_default()
            .contains("password has been set")
    );

    // Signing in again shows the previous sign-in.
    app.advance(Span::hours(1));
    let again = app.browser();
    again.log_in("999AKHAN01", GOOD_PASSWORD).await;
    let account = again.get("/account").await.body().await;
    assert!(account.contains("9:00am on 25 November 2026"), "{account}");
}

/// Security cases A1, C29, C37 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_employers_get_one_email_with_a_link_for_each_account() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.browser()
        .request_recovery(JANE.recovery().typed_as("JANE.SMITH@NHS.NET"))
        .await;
    let mail = app.emails(1).await;
    assert_eq!(mail.len(), 1);
    // The address on record (as stored for the first account), never the typed one.
    assert_eq!(mail[0].to, ["jane.smith@nhs.net"]);
    assert!(
        mail[0]
            .header("To")
            .unwrap_or_default()
            .contains("jane.smith@nhs.net")
    );
    let body = mail[0].decoded_body();
    assert!(body.contains("Username: 432JSMITH01"));
    assert!(body.contains("Username: 999JSMITH01"));
    let links = reset_links(&mail[0], PUBLIC_URL);
    assert_eq!(links.len(), 2);
    assert_ne!(links[0], links[1]);

    // Each link resets its own account only.
    let c = app.browser();
    c.open_link(&links[1]).await;
    let wrong = c.submit_reset("432JSMITH01", GOOD_PASSWORD).await;
    assert_eq!(wrong.status(), 200);
    let page = wrong.body().await;
    assert!(
        error_messages(&page).contains(
            &"Enter the username written in the email that this link came from".to_owned()
        ),
        "{page}"
    );
    let right = c.submit_reset("999JSMITH01", GOOD_PASSWORD).await;
    assert_eq!(right.status(), 303);
    assert_eq!(app.log_in_status("999JSMITH01", GOOD_PASSWORD).await, 303);
    assert_eq!(
        app.log_in_status("432JSMITH01", GOOD_PASSWORD).await,
        200,
        "the other account is untouched"
    );

    // The optional username narrows the email to one account.
    app.browser()
        .request_recovery(JANE.recovery().with_username("432jsmith01"))
        .await;
    let narrowed = &app.recovery_email(2).await;
    assert_eq!(reset_links(narrowed, PUBLIC_URL).len(), 1);
    assert!(narrowed.decoded_body().contains("432JSMITH01"));
    assert!(!narrowed.decoded_body().contains("999JSMITH01"));
}

/// Security cases A5, D52 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_account_is_told_until_when_and_gets_no_link() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    for _ in 0..3 {
        app.browser()
            .log_in("999AKHAN01", "wrong password here")
            .await;
    }
    app.browser().request_recovery(AMIR.recovery()).await;
    let mail = app.recovery_email(1).await;
    let body = mail.decoded_body();
    assert!(
        body.contains("locked until 9:00pm on 25 November 2026"),
        "{body}"
    );
    assert!(body.contains("make a new request after that time"));
    assert!(reset_links(&mail, PUBLIC_URL).is_empty());
    // The lock itself was told once, by its own email.
    let all = app.emails(2).await;
    assert_eq!(all.len(), 2, "the lock email and the recovery email");

    // After the lock, a new request gets a link that works.
    app.advance(Span::hours(12));
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    assert_eq!(app.log_in_status("999AKHAN01", GOOD_PASSWORD).await, 303);
}

/// Security case D54 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_use_the_seed_wording_and_work_without_javascript() {
    let app = TestApp::spawn().await;
    let home = app.visitor.get("/").await.body().await;
    assert!(home.contains("Forgotten | Request Username/Password | Unlock Account"));
    assert!(home.contains("total of 3 attempts"));
    let login = app.visitor.get("/login").await.body().await;
    // Password managers can fill the form, and pasting is never blocked.
    assert!(login.contains(r#"autocomplete="username""#), "{login}");
    assert!(login.contains(r#"autocomplete="current-password""#));
    assert!(login.contains(r#"type="password""#));
    assert!(!login.contains("onpaste"));
    for label in [
        ">Username<",
        ">Password<",
        ">Log in<",
        "Forgotten | Request Username/Password | Unlock Account",
    ] {
        assert!(login.contains(label), "missing {label}");
    }
    // Every field has a real label; every form posts without script.
    for page in [&home, &login] {
        assert!(!page.contains("<script>"), "no inline script");
    }
    assert!(login.contains("<label class=\"nhsuk-label\" for=\"username\">"));
    assert!(login.contains("<form action=\"/login\" method=\"post\""));
}

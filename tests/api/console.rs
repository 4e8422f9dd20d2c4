//! The helpdesk console and the command line's administrative changes: who
//! may reach the console, the second factor in front of it, what it shows,
//! the email-change form's defences, what a change does to mail still queued
//! and to the lockout, bad and borrowed addresses, the audit trail, and the
//! absence of any override (security cases G80–G84).

use gatehouse_domain::{Role, Span};

use crate::helpers::*;

/// Security case G79 (docs/security.md).
#[tokio::test]
async fn staff_reach_no_console_page_and_each_refusal_is_audited() {
    let app = TestApp::spawn().await;
    let anonymous = app.browser();
    let response = anonymous.get("/console").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");

    let c = app.signed_in(Role::Staff).await;
    let account = c.page("/account").await;
    assert!(
        !account.contains("/console"),
        "staff are not offered the console"
    );
    let paths = [
        "/console",
        "/console/second-factor",
        "/console/accounts/999JSMITH01",
        "/console/mail?email=jane.smith%40nhs.net",
    ];
    for path in paths {
        let response = c.get(path).await;
        assert_eq!(response.status(), 403, "{path}");
        let page = response.body().await;
        assert!(
            page.contains("You do not have access to this page"),
            "{path}"
        );
        assert!(!page.contains("Jane"), "{path} leaks nothing");
    }
    let response = c.send_code("123456").await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        audit_events(&app, "console.refused").await.len(),
        paths.len() + 1
    );
}

#[tokio::test]
async fn a_helpdesk_member_enrols_an_authenticator_before_the_console_opens() {
    let app = TestApp::spawn().await;
    let c = app.signed_in(Role::Helpdesk).await;
    // Signing in leads a privileged person to the console, which first
    // asks for the second factor.
    let response = c.get("/console").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console/second-factor");
    for path in [
        "/console/accounts/999JSMITH01",
        "/console/mail?email=a%40nhs.net",
    ] {
        let response = c.get(path).await;
        assert_eq!(
            response.headers()["location"],
            "/console/second-factor",
            "{path}"
        );
    }

    let page = c.page("/console/second-factor").await;
    assert!(page.contains("Set up your authenticator app"));
    assert!(
        page.contains("<svg role=\"img\" aria-label=\"QR code"),
        "a QR code"
    );
    let secret = key_in(&page);
    // Reloading the page shows the same key, so a slow scan still works.
    let again = c.page("/console/second-factor").await;
    assert_eq!(key_in(&again), secret);

    let wrong = c.send_code("000000").await.body().await;
    assert_error(&wrong, "The code is not right");
    assert_error(&wrong, "2 attempts left");
    let response = c.get("/console").await;
    assert_eq!(response.status(), 303, "still shut");

    let response = c.send_code(&app.code_now(&secret)).await;
    assert_eq!(response.status(), 200);
    let page = response.body().await;
    assert!(page.contains("Save your recovery codes"));
    assert_eq!(page.matches("<li><code>").count(), 10, "ten recovery codes");

    let console = c.get("/console").await;
    assert_eq!(console.status(), 200);
    assert!(console.body().await.contains("Helpdesk console"));
    assert_eq!(audit_events(&app, "second_factor.enrolled").await.len(), 1);
    assert_eq!(audit_events(&app, "second_factor.failed").await.len(), 1);
    // The key is never shown again once confirmed.
    let c2 = app.browser();
    c2.log_in(AMIR.username, GOOD_PASSWORD).await;
    let page = c2.page("/console/second-factor").await;
    assert!(page.contains("Enter the code from your authenticator app"));
    assert!(!page.contains(&secret.base32_grouped()));
    assert!(!page.contains("<svg role=\"img\""));
}

/// Security case G80 (docs/security.md).
#[tokio::test]
async fn each_session_needs_a_code_and_a_code_works_only_once() {
    let app = TestApp::spawn().await;
    let (_, Enrolment { secret, .. }) = app.console_as(Role::Helpdesk).await;
    let used = app.code_now(&secret);

    let c = app.browser();
    c.log_in(AMIR.username, GOOD_PASSWORD).await;
    assert_eq!(
        c.get("/console").await.headers()["location"],
        "/console/second-factor"
    );
    // The code that enrolled the app is spent: a replay is refused.
    let page = c.send_code(&used).await.body().await;
    assert!(
        page.contains("The code is not right"),
        "a replay is refused"
    );
    app.advance(Span::from_seconds(30));
    let response = c.send_code(&app.code_now(&secret)).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console");
    assert_eq!(c.get("/console").await.status(), 200);
    assert_eq!(audit_events(&app, "second_factor.passed").await.len(), 1);
}

#[tokio::test]
async fn a_recovery_code_stands_in_for_the_app_once() {
    let app = TestApp::spawn().await;
    let (
        _,
        Enrolment {
            recovery_codes: codes,
            ..
        },
    ) = app.console_as(Role::Helpdesk).await;
    assert_eq!(codes.len(), 10);

    let c = app.browser();
    c.log_in(AMIR.username, GOOD_PASSWORD).await;
    let typed = codes[3].to_uppercase();
    let response = c.send_code(&typed).await;
    assert_eq!(response.status(), 303, "a recovery code, typed in capitals");
    assert_eq!(c.get("/console").await.status(), 200);

    let c2 = app.browser();
    c2.log_in(AMIR.username, GOOD_PASSWORD).await;
    let page = c2.send_code(&codes[3]).await.body().await;
    assert!(page.contains("The code is not right"), "spent");
    assert_eq!(
        audit_events(&app, "second_factor.recovery_code_used")
            .await
            .len(),
        1
    );
}

/// Security case D53 (docs/security.md).
#[tokio::test]
async fn wrong_codes_lock_the_account_like_wrong_passwords() {
    let app = TestApp::spawn().await;
    let (_, Enrolment { secret, .. }) = app.console_as(Role::Helpdesk).await;
    let c = app.browser();
    c.log_in(AMIR.username, GOOD_PASSWORD).await;
    for left in [2, 1] {
        let page = c.send_code("111111").await.body().await;
        assert!(page.contains(&format!("{left} attempt")), "{left}: {page}");
    }
    let page = c.send_code("111111").await.body().await;
    assert!(page.contains("Your account is locked until"), "{page}");
    // Locked: not even the right code, nor the right password, gets in.
    app.advance(Span::from_seconds(30));
    let page = c.send_code(&app.code_now(&secret)).await.body().await;
    assert!(page.contains("Your account is locked until"));
    let page = app
        .browser()
        .log_in(AMIR.username, GOOD_PASSWORD)
        .await
        .body()
        .await;
    assert!(page.contains("Your account is locked until"), "{page}");
}

#[tokio::test]
async fn the_console_finds_people_and_answers_did_the_email_go_out() {
    let app = TestApp::spawn().await;
    let (c, _) = app.console_as(Role::Helpdesk).await;

    // Jane asks for an email; then someone locks her account.
    app.browser().request_recovery(JANE.recovery()).await;
    app.settle().await;
    app.recovery_email(1).await;
    for _ in 0..3 {
        app.browser()
            .log_in(JANE.username, "not her password")
            .await;
    }
    // Asking again while locked: the email says until when, with no link.
    app.browser().request_recovery(JANE.recovery()).await;
    app.settle().await;
    app.recovery_email(2).await;

    let page = c.page("/console?q=SMITH").await;
    assert!(page.contains("2 found"), "{page}");
    assert!(page.contains("/console/accounts/999JSMITH01"));
    assert!(page.contains("/console/accounts/432JSMITH01"));
    for (query, found) in [
        ("jane.smith%40nhs.net", "2 found"),
        ("999jsmith01", "1 found"),
        ("D2", "1 found"),
        ("nobody", "Nobody found"),
    ] {
        let page = c.page(&format!("/console?q={query}")).await;
        assert!(page.contains(found), "{query}: {page}");
    }

    let page = c.page("/console/accounts/999jsmith01").await;
    assert!(page.contains("Locked until"), "{page}");
    assert!(page.contains("Nobody can lift it early"));
    assert!(page.contains("3 in a row now"));
    assert!(page.contains("Never set: first-time access is pending"));
    assert_eq!(c.get("/console/accounts/NOBODY01").await.status(), 404);

    let page = c.page("/console/mail?email=Jane.Smith%40nhs.net").await;
    assert!(page.contains("matched (2 accounts)<"), "{page}");
    assert!(
        page.contains(
            "matched (2 accounts, 1 of them locked: the email says until when, with no link for it)"
        ),
        "{page}"
    );
    assert!(page.contains("recovery ("), "{page}");
    assert!(page.contains("sent "), "{page}");
    assert!(!page.contains("/reset/"), "never a link");
    let page = c.page("/console/mail?email=nobody%40nhs.net").await;
    assert!(page.contains("No recovery request was made for this address."));
    assert!(csrf_token(&page).is_some(), "the header's sign-out form");
}

/// Security cases B25, F76, G81, G84 (docs/security.md).
#[tokio::test]
async fn the_helpdesk_changes_an_email_with_a_reason_and_both_addresses_are_told() {
    let app = TestApp::spawn().await;
    let (c, _) = app.console_as(Role::Helpdesk).await;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let jane = app.browser();
    assert_eq!(
        jane.log_in(JANE.username, GOOD_PASSWORD).await.status(),
        303
    );
    let before = app.recovery_emails().len();
    app.browser().request_recovery(JANE.recovery()).await;
    app.settle().await;
    // The email lists 432JSMITH01 then 999JSMITH01 (by employer number).
    let links = reset_links(&app.recovery_email(before + 1).await, PUBLIC_URL);
    assert_eq!(links.len(), 2);
    let old_link = links[1].clone();

    let page = c
        .console_action(
            JANE.username,
            "email",
            &[("email", "jane.new@nhs.net"), ("reason", " ")],
        )
        .await
        .body()
        .await;
    assert_error(&page, "Enter why the email address is changing");
    assert!(
        page.contains("value=\"jane.new@nhs.net\""),
        "what was typed is kept"
    );
    let page = c
        .console_action(
            JANE.username,
            "email",
            &[("email", "jane@gmail.com"), ("reason", "asked")],
        )
        .await
        .body()
        .await;
    assert_error(&page, "allowed domain");

    let mails_before = app.smtp.messages().len();
    let done = c
        .console_action(
            JANE.username,
            "email",
            &[
                ("email", "jane.new@nhs.net"),
                ("reason", "phoned; confirmed date of birth"),
            ],
        )
        .await;
    assert_eq!(done.status(), 303);
    let page = c.page("/console/accounts/999JSMITH01").await;
    assert!(
        page.contains("email address is now jane.new@nhs.net"),
        "{page}"
    );

    // Both addresses told; the old link dead; Jane signed out everywhere.
    let mails = app.emails(mails_before + 2).await;
    let told: Vec<String> = mails[mails_before..]
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    assert!(
        told.iter()
            .any(|t| t.eq_ignore_ascii_case("jane.smith@nhs.net")),
        "{told:?}"
    );
    assert!(told.iter().any(|t| t == "jane.new@nhs.net"));
    let link_page = {
        let browser = app.browser();
        browser.open_link(&old_link).await;
        browser.page("/reset").await
    };
    assert!(
        link_page.contains("email address for this account has been changed"),
        "{link_page}"
    );
    assert_eq!(
        jane.get("/account").await.headers()["location"],
        "/login",
        "Jane's session ended"
    );
    let audit = audit_events(&app, "account.email_changed").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor.as_deref(), Some("helpdesk 999AKHAN01"));
    assert!(audit[0].detail.as_deref().unwrap_or("").contains("phoned"));
}

/// Security cases A16, D40, G79, G85 (docs/security.md).
#[tokio::test]
async fn only_an_admin_disables_and_a_disabled_account_cannot_get_in() {
    let app = TestApp::spawn().await;
    let (helpdesk, _) = app.console_as(Role::Helpdesk).await;
    let page = helpdesk.page("/console/accounts/999JSMITH01").await;
    assert!(
        !page.contains("Disable the account"),
        "helpdesk is not offered it"
    );
    for action in ["disable", "enable", "unlock"] {
        let refused = helpdesk
            .console_action(JANE.username, action, &[("reason", "x")])
            .await;
        assert_eq!(refused.status(), 403, "{action}");
    }
    assert_eq!(audit_events(&app, "console.refused").await.len(), 3);

    app.gatehouse
        .set_role(AMIR.username, Role::Admin, OPERATOR)
        .await
        .expect("role");
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let jane = app.browser();
    jane.log_in(JANE.username, GOOD_PASSWORD).await;

    let page = helpdesk
        .console_action(JANE.username, "disable", &[("reason", "")])
        .await
        .body()
        .await;
    assert_error(&page, "Give a reason");
    let own = helpdesk
        .console_action(AMIR.username, "disable", &[("reason", "oops")])
        .await
        .body()
        .await;
    assert_error(&own, "your own account");
    let done = helpdesk
        .console_action(JANE.username, "disable", &[("reason", "left the trust")])
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        jane.get("/account").await.headers()["location"],
        "/login",
        "signed out at once"
    );
    let page = app
        .browser()
        .log_in(JANE.username, GOOD_PASSWORD)
        .await
        .body()
        .await;
    assert!(
        page.contains("Your account has been disabled"),
        "the right password is told"
    );
    let page = app
        .browser()
        .log_in(JANE.username, "wrong password here")
        .await
        .body()
        .await;
    assert!(
        page.contains("The username or password is incorrect"),
        "a wrong one learns nothing"
    );
    let sent = app.recovery_emails().len();
    app.browser().request_recovery(JANE.recovery()).await;
    app.settle().await;
    let latest = app.recovery_email(sent + 1).await;
    assert!(
        !latest.decoded_body().contains("999JSMITH01"),
        "a disabled account gets no link"
    );
    assert!(
        latest.decoded_body().contains("432JSMITH01"),
        "her other account still does"
    );

    let done = helpdesk
        .console_action(JANE.username, "enable", &[("reason", "came back")])
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        app.browser()
            .log_in(JANE.username, GOOD_PASSWORD)
            .await
            .headers()["location"],
        "/account"
    );
    assert_eq!(audit_events(&app, "account.disabled").await.len(), 1);
    assert_eq!(audit_events(&app, "account.enabled").await.len(), 1);
}

async fn lock_jane(app: &TestApp) {
    app.set_password(&JANE, GOOD_PASSWORD).await;
    for _ in 0..3 {
        app.browser()
            .log_in(JANE.username, "not her password")
            .await;
    }
}

/// Security case D52 (docs/security.md).
#[tokio::test]
async fn by_default_nobody_can_lift_a_lock_early() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.console_as(Role::Admin).await;
    lock_jane(&app).await;
    let page = admin.page("/console/accounts/999JSMITH01").await;
    assert!(page.contains("Nobody can lift it early"));
    assert!(!page.contains("Lift the lock"));
    let page = admin
        .console_action(JANE.username, "unlock", &[("reason", "please")])
        .await
        .body()
        .await;
    assert_error(&page, "Nobody can lift a lock early");
    assert!(
        app.browser()
            .log_in(JANE.username, GOOD_PASSWORD)
            .await
            .body()
            .await
            .contains("locked until")
    );
    assert_eq!(audit_events(&app, "account.lock_lifted").await.len(), 0);
}

#[tokio::test]
async fn with_the_operator_setting_on_an_admin_lifts_a_lock_and_it_is_audited() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_ALLOW_EARLY_UNLOCK", "true")]).await;
    let (admin, _) = app.console_as(Role::Admin).await;
    lock_jane(&app).await;
    let page = admin.page("/console/accounts/999JSMITH01").await;
    assert!(page.contains("Lift the lock"));
    let page = admin
        .console_action(JANE.username, "unlock", &[("unlock-reason", "")])
        .await
        .body()
        .await;
    assert_error(&page, "Give a reason");
    let done = admin
        .console_action(
            JANE.username,
            "unlock",
            &[("unlock-reason", "verified by phone")],
        )
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        app.browser()
            .log_in(JANE.username, GOOD_PASSWORD)
            .await
            .headers()["location"],
        "/account"
    );
    let audit = audit_events(&app, "account.lock_lifted").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor.as_deref(), Some("admin 999AKHAN01"));
    assert!(
        audit[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("verified by phone")
    );
}

#[tokio::test]
async fn the_audit_log_filters_and_downloads_as_csv() {
    let app = TestApp::spawn().await;
    let (c, _) = app.console_as(Role::Helpdesk).await;
    for _ in 0..2 {
        app.browser()
            .log_in(JANE.username, "not her password")
            .await;
    }
    app.browser().log_in("NOBODY99", "whatever it is").await;

    let page = c.page("/console/audit?username=999jsmith01").await;
    assert!(page.contains("2 events"), "{page}");
    assert!(page.contains("sign_in.failed"));
    let page = c.page("/console/audit?event=second_factor.enrolled").await;
    assert!(page.contains("1 event<"), "{page}");
    let page = c.page("/console/audit?actor=test").await;
    assert!(
        page.contains("account.role_changed"),
        "the role set by the test harness"
    );
    let page = c
        .page("/console/audit?from=31%2F02%2F2026&username=NOBODY42")
        .await;
    let errors = error_messages(&page);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("Enter a real date for “From”")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|m| m == "No account has the username NOBODY42"),
        "{errors:?}"
    );
    // Days are read in the service's time zone; the test clock is in 2026.
    let page = c.page("/console/audit?to=2000-01-01").await;
    assert!(page.contains("No events"), "{page}");

    let csv = c
        .get("/console/audit?username=999JSMITH01&format=csv")
        .await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment;")
    );
    let body = csv.body().await;
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some("at,event,actor,username,client_ip,detail,user_agent")
    );
    assert_eq!(
        lines.filter(|l| l.contains(",sign_in.failed,")).count(),
        2,
        "{body}"
    );

    let staff = app.browser();
    app.set_password(&JANE, GOOD_PASSWORD).await;
    staff.log_in(JANE.username, GOOD_PASSWORD).await;
    assert_eq!(staff.get("/console/audit?format=csv").await.status(), 403);
}

/// Security case G79 (docs/security.md).
#[tokio::test]
async fn an_admin_previews_the_staff_file_then_imports_it() {
    let app = TestApp::spawn().await;
    let (helpdesk, _) = app.console_as(Role::Helpdesk).await;
    assert_eq!(helpdesk.get("/console/import").await.status(), 403);
    let token = helpdesk.form_token("/console").await;
    assert_eq!(
        helpdesk.upload(&token, STAFF).await.status(),
        403,
        "helpdesk cannot import"
    );

    app.gatehouse
        .set_role(AMIR.username, Role::Admin, OPERATOR)
        .await
        .expect("role");
    let admin = helpdesk;
    let page = admin.page("/console/import").await;
    assert!(page.contains("Load the staff file"));
    let token = csrf_token(&page).expect("token");
    assert_eq!(admin.upload("not-the-token", STAFF).await.status(), 403);

    let bad =
        format!("{STAFF}999 Demo Hospital NHS Trust,,Bad,Date,1990-02-31,bad.date@nhs.net,D9\n");
    let page = admin.upload(&token, &bad).await.body().await;
    assert!(
        page.contains("1 problem in hr-feed.csv: nothing was imported"),
        "{page}"
    );
    assert!(page.contains("line 5"), "{page}");

    let changed = STAFF.replace("Jane.Smith@nhs.net,D1", "jane.s@nhs.net,D1")
        + "999 Demo Hospital NHS Trust,,Ada,Lovelace,1980-12-10,ada.lovelace@nhs.net,D3\n";
    let page = admin.upload(&token, &changed).await.body().await;
    assert!(page.contains("What would change: hr-feed.csv"), "{page}");
    assert!(
        page.contains("999JSMITH01: Jane.Smith@nhs.net to jane.s@nhs.net"),
        "{page}"
    );
    let before = app
        .db
        .search_accounts("lovelace", 10)
        .await
        .expect("search");
    assert!(before.is_empty(), "a preview changes nothing");
    let action = page
        .split("action=\"/console/import/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the import form")
        .to_owned();

    let done = admin
        .submit("/console/import", &format!("/console/import/{action}"), &[])
        .await;
    assert_eq!(done.status(), 303);
    let page = admin.page("/console/import").await;
    assert!(
        page.contains("hr-feed.csv was imported: 1 people added, 1 changed"),
        "{page}"
    );
    assert_eq!(
        app.db
            .search_accounts("lovelace", 10)
            .await
            .expect("search")
            .len(),
        1
    );
    let audit = audit_events(&app, "staff.imported").await;
    assert_eq!(audit[0].actor.as_deref(), Some("admin 999AKHAN01"));

    // A preview imports once.
    admin
        .submit("/console/import", &format!("/console/import/{action}"), &[])
        .await;
    let page = admin.page("/console/import").await;
    assert!(page.contains("expired or was already imported"), "{page}");
}

#[tokio::test]
async fn the_helpdesk_ends_a_persons_sessions_with_a_reason() {
    let app = TestApp::spawn().await;
    let (c, _) = app.console_as(Role::Helpdesk).await;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let (phone, desktop) = (app.browser(), app.browser());
    phone.log_in(JANE.username, GOOD_PASSWORD).await;
    desktop.log_in(JANE.username, GOOD_PASSWORD).await;
    let page = c.page("/console/accounts/999JSMITH01").await;
    assert!(page.contains("2 active sessions"), "{page}");
    let page = c
        .console_action(JANE.username, "sessions", &[("sessions-reason", "")])
        .await
        .body()
        .await;
    assert_error(&page, "Give a reason");
    assert_eq!(
        phone.get("/account").await.status(),
        200,
        "nothing ended yet"
    );
    let done = c
        .console_action(
            JANE.username,
            "sessions",
            &[("sessions-reason", "lost her phone")],
        )
        .await;
    assert_eq!(done.status(), 303);
    for browser in [&phone, &desktop] {
        assert_eq!(
            browser.get("/account").await.headers()["location"],
            "/login"
        );
    }
    assert_eq!(
        c.get("/console").await.status(),
        200,
        "the helpdesk's own session stays"
    );
    assert_eq!(audit_events(&app, "account.sessions_ended").await.len(), 1);
}

#[tokio::test]
async fn after_a_lost_phone_the_operator_resets_the_second_factor_and_a_new_one_is_enrolled() {
    let app = TestApp::spawn().await;
    let (c, Enrolment { secret: old, .. }) = app.console_as(Role::Helpdesk).await;
    let refused = app
        .gatehouse
        .reset_second_factor(AMIR.username, &gatehouse_core::Actor::COMMAND_LINE, " ")
        .await
        .expect("runs");
    assert!(refused.is_err(), "a reason is required");
    let (_, set_up) = app
        .gatehouse
        .reset_second_factor(
            AMIR.username,
            &gatehouse_core::Actor::COMMAND_LINE,
            "lost phone; identity checked",
        )
        .await
        .expect("runs")
        .expect("reset");
    assert_eq!(
        c.get("/console").await.headers()["location"],
        "/login",
        "signed out"
    );
    // The old password alone sets nothing up: whoever holds it is not
    // necessarily Amir.
    let c = app.browser();
    c.log_in(AMIR.username, GOOD_PASSWORD).await;
    let page = c.page("/console/second-factor").await;
    assert!(page.contains("Your authenticator app has not been set up"));
    assert!(!page.contains("gatehouse-key"));
    // The set-up link the operator hands over: a new password, then a new key.
    app.browser()
        .set_password_through(&set_up.link, AMIR.username, "a brand new passphrase 7")
        .await;
    let c = app.browser();
    c.log_in(AMIR.username, "a brand new passphrase 7").await;
    let page = c.page("/console/second-factor").await;
    assert!(page.contains("Set up your authenticator app"));
    assert_ne!(key_in(&page), old, "a new key");
    assert_eq!(audit_events(&app, "second_factor.reset").await.len(), 1);
}

#[tokio::test]
async fn a_staff_file_over_the_upload_limit_is_refused_with_a_clear_message() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_CONSOLE_UPLOAD_MIB", "1")]).await;
    let (admin, _) = app.console_as(Role::Admin).await;
    let page = admin.page("/console/import").await;
    let token = csrf_token(&page).expect("token");
    let row = "999 Demo Hospital NHS Trust,,Pat,Doe,1980-01-01,pat.doe@nhs.net,X1\n";
    let big = format!("{STAFF}{}", row.repeat(2 * 1024 * 1024 / row.len()));
    let response = admin.upload(&token, &big).await;
    assert_eq!(response.status(), 413);
    let page = response.body().await;
    assert_error(&page, "larger than 1 MiB");
    assert_error(&page, "gatehouse import");
    assert!(
        app.db
            .search_accounts("doe", 10)
            .await
            .expect("search")
            .is_empty()
    );
}

/// The account's address, lower case (the staff file's case is kept).
async fn email_of(app: &TestApp, username: &str) -> String {
    account(app, username).await.email.key()
}

/// Everything an email change would leave behind, to compare before and after.
async fn footprint(app: &TestApp, username: &str) -> (String, usize, i64, usize) {
    let account = account(app, username).await;
    let sessions = app.db.session_count(account.id).await.expect("sessions");
    let queued = app
        .db
        .emails_to(&account.email.key(), 100)
        .await
        .expect("emails")
        .len();
    (
        account.email.to_string(),
        audit_events(app, "account.email_changed").await.len(),
        sessions,
        queued,
    )
}

/// Security case G80 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_change_without_its_form_token_or_from_another_site_is_refused_and_changes_nothing()
 {
    let app = TestApp::spawn().await;
    let helpdesk = app.console_as(Role::Helpdesk).await.0;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let jane = app.browser();
    assert_eq!(
        jane.log_in(JANE.username, GOOD_PASSWORD).await.status(),
        303
    );
    let before = footprint(&app, JANE.username).await;
    let action = app.url(&format!("/console/accounts/{}/email", JANE.username));
    let token = helpdesk
        .form_token(&format!("/console/accounts/{}", JANE.username))
        .await;
    let jane_token = jane.form_token("/account").await;
    let random = gatehouse_domain::SecretToken::generate()
        .expect("random")
        .encode();
    let fields = |t: &str| {
        vec![
            ("email".to_owned(), "jane.new@nhs.net".to_owned()),
            ("reason".to_owned(), "asked by phone".to_owned()),
            ("csrf_token".to_owned(), t.to_owned()),
        ]
    };
    let attempts: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "no token",
            helpdesk
                .http()
                .post(&action)
                .form(&fields("")[..2].to_vec()),
        ),
        (
            "an empty token",
            helpdesk.http().post(&action).form(&fields("")),
        ),
        (
            "a made-up token",
            helpdesk.http().post(&action).form(&fields(&random)),
        ),
        (
            "another session's token",
            helpdesk.http().post(&action).form(&fields(&jane_token)),
        ),
        (
            "Sec-Fetch-Site: cross-site",
            helpdesk
                .http()
                .post(&action)
                .header("sec-fetch-site", "cross-site")
                .form(&fields(&token)),
        ),
        (
            "Sec-Fetch-Site: same-site (a sibling subdomain)",
            helpdesk
                .http()
                .post(&action)
                .header("sec-fetch-site", "same-site")
                .form(&fields(&token)),
        ),
        (
            "a foreign Origin",
            helpdesk
                .http()
                .post(&action)
                .header("origin", "https://evil.example")
                .form(&fields(&token)),
        ),
        (
            "the right token with no session cookie",
            app.browser().http().post(&action).form(&fields(&token)),
        ),
    ];
    for (what, request) in attempts {
        let r = request.send().await.expect("POST");
        assert_eq!(r.status(), 403, "{what}");
        let page = r.body().await;
        assert!(page.contains("This form has expired"), "{what}");
        assert_eq!(
            footprint(&app, JANE.username).await,
            before,
            "{what} changed something"
        );
    }
    assert_eq!(email_of(&app, JANE.username).await, "jane.smith@nhs.net");
    assert_eq!(jane.get("/account").await.status(), 200);

    // A signed-in helpdesk member who has not passed the second factor in
    // this session (the console's re-authentication) changes nothing either,
    // even with a valid form token.
    let fresh = app.browser();
    assert_eq!(
        fresh.log_in(AMIR.username, GOOD_PASSWORD).await.status(),
        303
    );
    let fresh_token = fresh.form_token("/account").await;
    let r = fresh
        .http()
        .post(&action)
        .form(&fields(&fresh_token))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/second-factor");
    assert_eq!(footprint(&app, JANE.username).await, before);

    // The same form with its token, from this site, works.
    let r = helpdesk
        .http()
        .post(&action)
        .header("sec-fetch-site", "same-origin")
        .form(&fields(&token))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    assert_eq!(email_of(&app, JANE.username).await, "jane.new@nhs.net");
}

/// Security case G81 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_email_stuck_in_the_outbox_carries_no_usable_link_after_an_email_change_and_the_lock_count_stays()
 {
    let app = TestApp::spawn().await;
    let helpdesk = app.console_as(Role::Helpdesk).await.0;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    for _ in 0..2 {
        app.browser()
            .log_in(JANE.username, "not her password")
            .await;
    }
    let counts = |s: &gatehouse_core::accounts::AccountStatus| {
        (s.consecutive_failures, s.total_failures, s.locked_until)
    };
    let status = account_status(&app, JANE.username).await;
    assert_eq!(counts(&status), (2, 2, None));

    // The mail server refuses for now: the recovery email, with its link,
    // waits in the outbox. Once the notice of her new password has gone:
    // refused too, it would hold up every later email to her address
    // (emails to one address go out in order), this one included.
    app.wait_until_sent().await;
    app.smtp.set_mode(gatehouse_testkit::SinkMode::TempFail);
    let received = app.smtp.messages().len();
    app.browser()
        .request_recovery(JANE.recovery().with_username(JANE.username))
        .await;
    app.settle().await;
    let stuck = app.wait_for_a_failed_try("jane.smith@nhs.net").await;
    assert_eq!(stuck.status.as_str(), "queued");
    assert_eq!(stuck.kind, "recovery");

    let r = helpdesk
        .console_action(
            JANE.username,
            "email",
            &[("email", "jane.new@nhs.net"), ("reason", "new address")],
        )
        .await;
    assert_eq!(r.status(), 303);

    // The lock state and the failure counts are what they were.
    let status = account_status(&app, JANE.username).await;
    assert_eq!(counts(&status), (2, 2, None), "the change reset nothing");
    // And they still count: one more failure locks the account.
    app.browser()
        .log_in(JANE.username, "not her password either")
        .await;
    let status = account_status(&app, JANE.username).await;
    assert!(status.locked_until.is_some(), "the third failure locks");
    let until = status.locked_until;
    let r = helpdesk
        .console_action(
            JANE.username,
            "email",
            &[("email", "jane.smith@nhs.net"), ("reason", "back again")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let status = account_status(&app, JANE.username).await;
    assert_eq!(status.locked_until, until, "a change does not lift a lock");
    assert_eq!(status.total_failures, 3);

    // The mail server comes back: whatever of the old email still goes out
    // carries no link that works. Its next try is read afresh each time:
    // the notices of the changes, queued to the same address, each made it
    // due at once (emails to one address go out in order), and a refusal
    // then pushed its next try further out.
    app.smtp.set_mode(gatehouse_testkit::SinkMode::Accept);
    let stuck_now = || async {
        app.db
            .emails_to("jane.smith@nhs.net", 100)
            .await
            .expect("emails")
            .into_iter()
            .find(|e| e.id == stuck.id)
            .expect("the stuck email")
    };
    let mut done = stuck_now().await;
    for _ in 0..500 {
        if done.status.as_str() != "queued" {
            break;
        }
        let wait = done
            .next_attempt_at
            .seconds_since(app.gatehouse.clock().now());
        if wait > 0 {
            app.advance(gatehouse_domain::Span::from_seconds(wait));
        }
        app.gatehouse.wake_outbox();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        done = stuck_now().await;
    }
    assert_ne!(
        done.status.as_str(),
        "queued",
        "the stuck email was settled"
    );
    let late: Vec<_> = app.smtp.messages()[received..]
        .iter()
        .filter(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("username and password reset"))
        })
        .cloned()
        .collect();
    let links: Vec<String> = late
        .iter()
        .flat_map(|m| reset_links(m, PUBLIC_URL))
        .collect();
    if done.status.as_str() == "sent" {
        assert!(!links.is_empty(), "the sent email is the one with the link");
    }
    for link in &links {
        let browser = app.browser();
        let r = browser.open_link(link).await;
        let page = browser.page("/reset").await;
        assert!(
            page.contains("email address for this account has been changed"),
            "{} → {page}",
            r.status()
        );
        assert!(csrf_token(&page).is_none() || !page.contains("confirm-password"));
    }
}

/// The binary, on the test service's own database.
/// Addresses no admin change may set: header injection, too long, not ASCII
/// (an IDN, and a homograph of jane.smith@nhs.net with a Cyrillic "е").
fn bad_addresses() -> Vec<(&'static str, String)> {
    vec![
        ("CRLF", "jane.new@nhs.net\r\nBcc: thief@nhs.net".to_owned()),
        ("a bare LF", "jane.new@nhs.net\nX: y".to_owned()),
        ("CR inside", "jane\r.new@nhs.net".to_owned()),
        ("300 characters", format!("{}@nhs.net", "j".repeat(292))),
        ("a non-ASCII local part", "jané.smith@nhs.net".to_owned()),
        ("an IDN", "jane.smith@nhs.nét".to_owned()),
        ("a homograph", "jane.smith@nhs.n\u{0435}t".to_owned()),
        (
            "punycode of another domain",
            "jane@xn--nhs-8na.net".to_owned(),
        ),
    ]
}

/// Security case G83 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_addresses_are_refused_by_the_console_and_the_command_line_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let helpdesk = app.console_as(Role::Helpdesk).await.0;
    let before = footprint(&app, JANE.username).await;
    let audit_before = audit_events(&app, "account.email_changed").await.len();
    for (what, address) in bad_addresses() {
        let r = helpdesk
            .console_action(
                JANE.username,
                "email",
                &[("email", address.as_str()), ("reason", "asked")],
            )
            .await;
        assert_eq!(r.status(), 200, "{what}: the form again, with the error");
        let page = r.body().await;
        assert_error(&page, "Enter an email address in an allowed domain");
        assert_eq!(footprint(&app, JANE.username).await, before, "{what}");

        let (code, stdout, stderr) = gatehouse_cli(
            &app,
            &[
                "admin",
                "set-email",
                JANE.username,
                address.as_str(),
                "--reason",
                "asked",
            ],
        )
        .await;
        assert_eq!(code, 1, "{what}: {stdout} {stderr}");
        assert!(stderr.starts_with("Not changed: "), "{what}: {stderr}");
        assert!(
            stderr.contains("not an email address") || stderr.contains("allowed domain"),
            "{what}: {stderr}"
        );
        assert_eq!(
            footprint(&app, JANE.username).await,
            before,
            "{what} (command line)"
        );
    }
    assert_eq!(
        audit_events(&app, "account.email_changed").await.len(),
        audit_before
    );
    app.settle().await;
    assert!(
        app.smtp
            .messages()
            .iter()
            .all(|m| !m.headers().contains("thief")),
        "no email went to an injected recipient"
    );
    // The same form and command do work with a good address.
    let (code, _, stderr) = gatehouse_cli(
        &app,
        &[
            "admin",
            "set-email",
            JANE.username,
            "jane.new@nhs.net",
            "--reason",
            "asked",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(email_of(&app, JANE.username).await, "jane.new@nhs.net");
}

/// Security case G83 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_persons_address_is_refused_but_one_persons_accounts_may_share_one() {
    let app = TestApp::spawn().await;
    let helpdesk = app.console_as(Role::Helpdesk).await.0;
    // Amir's address on Jane's account would send Jane's reset links to
    // Amir: refused, in any letter case, from the console and the CLI.
    for address in ["amir.khan@nhs.net", "Amir.Khan@NHS.net"] {
        let page = helpdesk
            .console_action(
                JANE.username,
                "email",
                &[("email", address), ("reason", "typo")],
            )
            .await
            .body()
            .await;
        assert_error(
            &page,
            "That address is on file for another person (account 999AKHAN01)",
        );
        assert_eq!(email_of(&app, JANE.username).await, "jane.smith@nhs.net");
        let (code, _, stderr) = gatehouse_cli(
            &app,
            &[
                "admin",
                "set-email",
                JANE.username,
                address,
                "--reason",
                "typo",
            ],
        )
        .await;
        assert_eq!(code, 1);
        assert!(stderr.contains("another person"), "{stderr}");
        assert_eq!(email_of(&app, JANE.username).await, "jane.smith@nhs.net");
    }
    assert!(audit_events(&app, "account.email_changed").await.is_empty());

    // Jane has two accounts (two employers), one address: moving one of them
    // away and back again is one person's business and allowed.
    let r = helpdesk
        .console_action(
            "432JSMITH01",
            "email",
            &[("email", "jane.work@nhs.net"), ("reason", "new address")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = helpdesk
        .console_action(
            "432JSMITH01",
            "email",
            &[
                ("email", "jane.smith@nhs.net"),
                ("reason", "back to the shared one"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "the same person's other account shares it");
    assert_eq!(email_of(&app, "432JSMITH01").await, "jane.smith@nhs.net");
}

/// Security case G84 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_change_is_audited_with_masked_addresses_the_actor_and_the_client_address() {
    let app = TestApp::spawn().await;
    let admin = app.console_as(Role::Admin).await.0;
    let r = admin
        .console_action(
            JANE.username,
            "email",
            &[("email", "jane.new@nhs.net"), ("reason", "phoned; checked")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = admin
        .console_action(JANE.username, "disable", &[("disable-reason", "left")])
        .await;
    assert_eq!(r.status(), 303);
    let r = admin
        .console_action(JANE.username, "enable", &[("disable-reason", "back")])
        .await;
    assert_eq!(r.status(), 303);
    let r = admin
        .console_action(
            JANE.username,
            "sessions",
            &[("sessions-reason", "lost phone")],
        )
        .await;
    assert_eq!(r.status(), 303);

    let changed = audit_events(&app, "account.email_changed").await;
    assert_eq!(changed.len(), 1);
    let e = &changed[0];
    assert_eq!(e.actor.as_deref(), Some("admin 999AKHAN01"));
    assert_eq!(e.username.as_deref(), Some(JANE.username));
    assert_eq!(
        e.at,
        app.gatehouse.clock().now(),
        "stored as the instant (UTC)"
    );
    let detail = e.detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("J***h@nhs.net -> j***w@nhs.net; reason: phoned; checked"),
        "{detail}"
    );
    assert!(
        !detail.to_ascii_lowercase().contains("jane.smith@") && !detail.contains("jane.new@"),
        "{detail}"
    );
    for event in [
        "account.email_changed",
        "account.disabled",
        "account.enabled",
        "account.sessions_ended",
    ] {
        let rows = audit_events(&app, event).await;
        assert!(!rows.is_empty(), "no {event}");
        for row in rows {
            assert_eq!(
                row.client_ip.as_deref(),
                Some("127.0.0.1"),
                "{event}: the helpdesk's address"
            );
        }
    }
    // The console's audit download shows where the change came from.
    let csv = admin
        .page("/console/audit?event=account.email_changed&format=csv")
        .await;
    let line = csv
        .lines()
        .find(|l| l.contains("account.email_changed"))
        .expect("the change is listed");
    assert!(
        line.contains(",admin 999AKHAN01,999JSMITH01,127.0.0.1,J***h@nhs.net -> j***w@nhs.net;"),
        "{line}"
    );

    // From the command line there is no client address, and the actor says so.
    let (code, _, stderr) = gatehouse_cli(
        &app,
        &[
            "admin",
            "set-email",
            JANE.username,
            "jane.smith@nhs.net",
            "--reason",
            "undo",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let changed = audit_events(&app, "account.email_changed").await;
    let cli = changed
        .iter()
        .find(|e| e.actor.as_deref() == Some("admin (command line)"))
        .expect("the command line's change");
    assert_eq!(cli.client_ip, None);

    // Nothing in the app edits or deletes an audit row. The outbox worker
    // goes on recording the sending of the changes' notices meanwhile
    // (`email.*`); those rows are its, not the probes'.
    let probed = |log: &[gatehouse_store::AuditRow]| {
        log.iter()
            .filter(|row| !row.event.as_str().starts_with("email."))
            .count()
    };
    let rows = probed(&audit_log(&app).await);
    let id = changed[0].id;
    let token = admin.form_token("/console/audit").await;
    for path in [
        "/console/audit".to_owned(),
        format!("/console/audit/{id}"),
        format!("/console/audit/{id}/delete"),
        format!("/console/audit/{id}/edit"),
        "/console/audit/clear".to_owned(),
        "/console/audit/purge".to_owned(),
        "/api/audit".to_owned(),
        format!("/api/audit/{id}"),
    ] {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let r = admin
                .http()
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                    app.url(&path),
                )
                .form(&[
                    ("csrf_token", token.as_str()),
                    ("detail", "nothing happened"),
                ])
                .send()
                .await
                .expect("an answer");
            assert!(
                matches!(r.status().as_u16(), 404 | 405),
                "{method} {path}: {}",
                r.status()
            );
        }
    }
    let after = audit_log(&app).await;
    assert_eq!(
        probed(&after),
        rows,
        "no audit row added or removed by the probes"
    );
    assert!(!format!("{after:?}").contains("nothing happened"));
}

/// Security case G82 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_route_or_verb_unlocks_sets_or_shows_a_password_hash_or_token() {
    let app = TestApp::spawn().await;
    let admin = app.console_as(Role::Admin).await.0;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    for _ in 0..3 {
        app.browser()
            .log_in(JANE.username, "not her password")
            .await;
    }
    let locked = account_status(&app, JANE.username).await;
    assert!(locked.locked_until.is_some());
    let hash = locked
        .account
        .password_hash
        .clone()
        .expect("a password is set");
    let token = admin
        .form_token(&format!("/console/accounts/{}", JANE.username))
        .await;
    let base = format!("/console/accounts/{}", JANE.username);
    let mut paths: Vec<String> = [
        "password",
        "set-password",
        "reset-password",
        "show-hash",
        "hash",
        "token",
        "reset-link",
        "link",
        "clear-failures",
        "reset-failures",
        "failures",
        "unlock-now",
        "lock",
    ]
    .iter()
    .map(|a| format!("{base}/{a}"))
    .collect();
    paths.extend(
        [
            "/console/unlock",
            "/console/set-password",
            "/console/show-hash",
            "/console/password",
            "/admin",
            "/admin/unlock",
            "/admin/users",
            "/api/accounts",
            "/api/accounts/999JSMITH01",
            "/api/accounts/999JSMITH01/password",
            "/api/accounts/999JSMITH01/unlock",
            "/api/unlock",
            "/api/v1/users",
            // `/account/password` exists: it changes only the signed-in
            // person's own password, given the current one (own_account.rs).
            "/account/hash",
        ]
        .iter()
        .map(|p| (*p).to_owned()),
    );
    let fields = [
        ("csrf_token", token.as_str()),
        ("reason", "probe"),
        ("password", "probe password 123"),
    ];
    for path in &paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let r = admin
                .http()
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                    app.url(path),
                )
                .form(&fields)
                .send()
                .await
                .expect("an answer");
            let status = r.status().as_u16();
            assert!(matches!(status, 404 | 405), "{method} {path}: {status}");
            let body = r.body().await;
            assert!(!body.contains(&hash), "{method} {path} shows the hash");
        }
    }
    // The account's own page takes no other verb either.
    for method in ["PUT", "PATCH", "DELETE"] {
        let r = admin
            .http()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                app.url(&base),
            )
            .form(&fields)
            .send()
            .await
            .expect("an answer");
        assert_eq!(r.status(), 405, "{method} {base}");
    }
    // Nor does the command line have such a command; what it shows of an
    // account has no hash, and its unlock is refused like the console's.
    for command in [
        "set-password",
        "password",
        "show-hash",
        "hash",
        "show-token",
        "reset-link",
        "clear-failures",
        "reset-failures",
        "unlock-now",
    ] {
        let (code, stdout, stderr) = gatehouse_cli(&app, &["admin", command, JANE.username]).await;
        assert_eq!(code, 2, "admin {command}: {stdout}");
        assert!(
            stderr.contains("unrecognized subcommand"),
            "admin {command}: {stderr}"
        );
    }
    for args in [
        vec!["admin", "status", JANE.username],
        vec!["admin", "--json", "status", JANE.username],
        vec!["admin", "audit", "--username", JANE.username],
        vec!["admin", "mail", "jane.smith@nhs.net"],
    ] {
        let (code, stdout, stderr) = gatehouse_cli(&app, &args).await;
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(
            !stdout.contains("$argon2") && !stdout.contains(&hash),
            "{args:?}"
        );
    }
    let (code, _, stderr) = gatehouse_cli(
        &app,
        &["admin", "unlock", JANE.username, "--reason", "please"],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("GATEHOUSE_ALLOW_EARLY_UNLOCK"), "{stderr}");
    // Unlock is refused while the operator setting is off.
    let r = admin
        .console_action(JANE.username, "unlock", &[("unlock-reason", "please")])
        .await;
    assert_eq!(r.status(), 200);
    let after = account_status(&app, JANE.username).await;
    assert_eq!(after.locked_until, locked.locked_until, "still locked");
    assert_eq!(after.total_failures, locked.total_failures);
    assert_eq!(after.account.password_hash.as_deref(), Some(hash.as_str()));

    // No page shows a hash, a PHC string, or a link's token: the console's
    // account page, Jane's own account page, the mail page.
    app.browser().request_recovery(AMIR.recovery()).await;
    let mail = app.recovery_email(app.recovery_emails().len().max(1)).await;
    let link_tokens: Vec<String> = reset_links(&mail, PUBLIC_URL)
        .iter()
        .filter_map(|l| l.rsplit('/').next().map(str::to_owned))
        .collect();
    let amir_hash = account_status(&app, AMIR.username)
        .await
        .account
        .password_hash
        .expect("set");
    let mut pages = vec![
        admin.page(&base).await,
        admin
            .page(&format!("/console/accounts/{}", AMIR.username))
            .await,
        admin.page("/console/mail?email=amir.khan%40nhs.net").await,
        admin.page("/console/audit").await,
        admin.page("/console/audit?format=csv").await,
        admin.page("/account").await,
    ];
    app.advance(gatehouse_domain::Span::minutes(31));
    let amir = app.browser();
    amir.log_in(AMIR.username, GOOD_PASSWORD).await;
    pages.push(amir.page("/account").await);
    for page in &pages {
        assert!(!page.contains("$argon2"), "a PHC string is shown");
        assert!(!page.contains(&hash) && !page.contains(&amir_hash));
        for t in &link_tokens {
            assert!(!page.contains(t.as_str()), "a link's token is shown");
        }
    }
}

//! The helpdesk console: who may reach it, the second factor in front of it,
//! and what it shows.

use gatehouse_domain::second_factor::TotpSecret;
use gatehouse_domain::{Role, Span};

use crate::helpers::*;

const AMIR: &str = "999AKHAN01";
const JANE: &str = "999JSMITH01";

fn code_now(app: &TestApp, secret: &TotpSecret) -> String {
    secret.code_at(app.gatehouse.clock().now().unix().cast_unsigned())
}

async fn send_code(app: &TestApp, c: &reqwest::Client, code: &str) -> reqwest::Response {
    app.submit(
        c,
        "/console/second-factor",
        "/console/second-factor",
        &[("code", code)],
    )
    .await
}

/// A helpdesk member who has enrolled: their client (past the second
/// factor), the secret, and the recovery codes they were shown.
async fn enrolled(app: &TestApp) -> (reqwest::Client, TotpSecret, Vec<String>) {
    enrolled_as(app, Role::Helpdesk).await
}

async fn enrolled_as(app: &TestApp, role: Role) -> (reqwest::Client, TotpSecret, Vec<String>) {
    let c = signed_in(app, role).await;
    let page = app.page_as(&c, "/console/second-factor").await;
    let secret = key_in(&page);
    let response = send_code(app, &c, &code_now(app, &secret)).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(page.contains("Save your recovery codes"), "{page}");
    let codes: Vec<String> = page
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').expect("end")].to_owned())
        .collect();
    (c, secret, codes)
}

#[tokio::test]
async fn staff_reach_no_console_page_and_each_refusal_is_audited() {
    let app = TestApp::spawn().await;
    let anonymous = client();
    let response = app.get_as(&anonymous, "/console").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");

    let c = signed_in(&app, Role::Staff).await;
    let account = app.page_as(&c, "/account").await;
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
        let response = app.get_as(&c, path).await;
        assert_eq!(response.status(), 403, "{path}");
        let page = response.text().await.expect("body");
        assert!(
            page.contains("You do not have access to this page"),
            "{path}"
        );
        assert!(!page.contains("Jane"), "{path} leaks nothing");
    }
    let response = send_code(&app, &c, "123456").await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        audit_events(&app, "console.refused").await.len(),
        paths.len() + 1
    );
}

#[tokio::test]
async fn a_helpdesk_member_enrols_an_authenticator_before_the_console_opens() {
    let app = TestApp::spawn().await;
    let c = signed_in(&app, Role::Helpdesk).await;
    // Signing in leads a privileged person to the console, which first
    // asks for the second factor.
    let response = app.get_as(&c, "/console").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console/second-factor");
    for path in [
        "/console/accounts/999JSMITH01",
        "/console/mail?email=a%40nhs.net",
    ] {
        let response = app.get_as(&c, path).await;
        assert_eq!(
            response.headers()["location"],
            "/console/second-factor",
            "{path}"
        );
    }

    let page = app.page_as(&c, "/console/second-factor").await;
    assert!(page.contains("Set up your authenticator app"));
    assert!(
        page.contains("<svg role=\"img\" aria-label=\"QR code"),
        "a QR code"
    );
    let secret = key_in(&page);
    // Reloading the page shows the same key, so a slow scan still works.
    let again = app.page_as(&c, "/console/second-factor").await;
    assert_eq!(key_in(&again), secret);

    let wrong = send_code(&app, &c, "000000")
        .await
        .text()
        .await
        .expect("body");
    assert_error(&wrong, "The code is not right");
    assert_error(&wrong, "2 attempts left");
    let response = app.get_as(&c, "/console").await;
    assert_eq!(response.status(), 303, "still shut");

    let response = send_code(&app, &c, &code_now(&app, &secret)).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    assert!(page.contains("Save your recovery codes"));
    assert_eq!(page.matches("<li><code>").count(), 10, "ten recovery codes");

    let console = app.get_as(&c, "/console").await;
    assert_eq!(console.status(), 200);
    assert!(
        console
            .text()
            .await
            .expect("body")
            .contains("Helpdesk console")
    );
    assert_eq!(audit_events(&app, "second_factor.enrolled").await.len(), 1);
    assert_eq!(audit_events(&app, "second_factor.failed").await.len(), 1);
    // The key is never shown again once confirmed.
    let c2 = client();
    app.log_in_as(&c2, AMIR, GOOD_PASSWORD).await;
    let page = app.page_as(&c2, "/console/second-factor").await;
    assert!(page.contains("Enter the code from your authenticator app"));
    assert!(!page.contains(&secret.base32_grouped()));
    assert!(!page.contains("<svg role=\"img\""));
}

#[tokio::test]
async fn each_session_needs_a_code_and_a_code_works_only_once() {
    let app = TestApp::spawn().await;
    let (_, secret, _) = enrolled(&app).await;
    let used = code_now(&app, &secret);

    let c = client();
    app.log_in_as(&c, AMIR, GOOD_PASSWORD).await;
    assert_eq!(
        app.get_as(&c, "/console").await.headers()["location"],
        "/console/second-factor"
    );
    // The code that enrolled the app is spent: a replay is refused.
    let page = send_code(&app, &c, &used).await.text().await.expect("body");
    assert!(
        page.contains("The code is not right"),
        "a replay is refused"
    );
    app.advance(Span::from_seconds(30));
    let response = send_code(&app, &c, &code_now(&app, &secret)).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console");
    assert_eq!(app.get_as(&c, "/console").await.status(), 200);
    assert_eq!(audit_events(&app, "second_factor.passed").await.len(), 1);
}

#[tokio::test]
async fn a_recovery_code_stands_in_for_the_app_once() {
    let app = TestApp::spawn().await;
    let (_, _, codes) = enrolled(&app).await;
    assert_eq!(codes.len(), 10);

    let c = client();
    app.log_in_as(&c, AMIR, GOOD_PASSWORD).await;
    let typed = codes[3].to_uppercase();
    let response = send_code(&app, &c, &typed).await;
    assert_eq!(response.status(), 303, "a recovery code, typed in capitals");
    assert_eq!(app.get_as(&c, "/console").await.status(), 200);

    let c2 = client();
    app.log_in_as(&c2, AMIR, GOOD_PASSWORD).await;
    let page = send_code(&app, &c2, &codes[3])
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("The code is not right"), "spent");
    assert_eq!(
        audit_events(&app, "second_factor.recovery_code_used")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn wrong_codes_lock_the_account_like_wrong_passwords() {
    let app = TestApp::spawn().await;
    let (_, secret, _) = enrolled(&app).await;
    let c = client();
    app.log_in_as(&c, AMIR, GOOD_PASSWORD).await;
    for left in [2, 1] {
        let page = send_code(&app, &c, "111111")
            .await
            .text()
            .await
            .expect("body");
        assert!(page.contains(&format!("{left} attempt")), "{left}: {page}");
    }
    let page = send_code(&app, &c, "111111")
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("Your account is locked until"), "{page}");
    // Locked: not even the right code, nor the right password, gets in.
    app.advance(Span::from_seconds(30));
    let page = send_code(&app, &c, &code_now(&app, &secret))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("Your account is locked until"));
    let page = app
        .log_in(AMIR, GOOD_PASSWORD)
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("Your account is locked until"), "{page}");
}

#[tokio::test]
async fn the_console_finds_people_and_answers_did_the_email_go_out() {
    let app = TestApp::spawn().await;
    let (c, _, _) = enrolled(&app).await;

    // Jane asks for an email; then someone locks her account.
    app.request_recovery("jane.smith@nhs.net", ("14", "3", "1985"))
        .await;
    app.settle().await;
    app.recovery_email(1).await;
    for _ in 0..3 {
        app.log_in(JANE, "not her password").await;
    }
    // Asking again while locked: the email says until when, with no link.
    app.request_recovery("jane.smith@nhs.net", ("14", "3", "1985"))
        .await;
    app.settle().await;
    app.recovery_email(2).await;

    let page = app.page_as(&c, "/console?q=SMITH").await;
    assert!(page.contains("2 found"), "{page}");
    assert!(page.contains("/console/accounts/999JSMITH01"));
    assert!(page.contains("/console/accounts/432JSMITH01"));
    for (query, found) in [
        ("jane.smith%40nhs.net", "2 found"),
        ("999jsmith01", "1 found"),
        ("D2", "1 found"),
        ("nobody", "Nobody found"),
    ] {
        let page = app.page_as(&c, &format!("/console?q={query}")).await;
        assert!(page.contains(found), "{query}: {page}");
    }

    let page = app.page_as(&c, "/console/accounts/999jsmith01").await;
    assert!(page.contains("Locked until"), "{page}");
    assert!(page.contains("Nobody can lift it early"));
    assert!(page.contains("3 in a row now"));
    assert!(page.contains("Never set: first-time access is pending"));
    assert_eq!(
        app.get_as(&c, "/console/accounts/NOBODY01").await.status(),
        404
    );

    let page = app
        .page_as(&c, "/console/mail?email=Jane.Smith%40nhs.net")
        .await;
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
    let page = app
        .page_as(&c, "/console/mail?email=nobody%40nhs.net")
        .await;
    assert!(page.contains("No recovery request was made for this address."));
    assert!(csrf_token(&page).is_some(), "the header's sign-out form");
}

#[tokio::test]
async fn the_helpdesk_changes_an_email_with_a_reason_and_both_addresses_are_told() {
    let app = TestApp::spawn().await;
    let (c, _, _) = enrolled(&app).await;
    set_janes_password(&app).await;
    let jane = client();
    assert_eq!(
        app.log_in_as(&jane, JANE, GOOD_PASSWORD).await.status(),
        303
    );
    let before = app.recovery_emails().len();
    app.request_recovery("jane.smith@nhs.net", ("14", "3", "1985"))
        .await;
    app.settle().await;
    // The email lists 432JSMITH01 then 999JSMITH01 (by employer number).
    let links = crate::helpers::reset_links(&app.recovery_email(before + 1).await);
    assert_eq!(links.len(), 2);
    let old_link = links[1].clone();

    let page = console_action(
        &app,
        &c,
        JANE,
        "email",
        &[("email", "jane.new@nhs.net"), ("reason", " ")],
    )
    .await
    .text()
    .await
    .expect("body");
    assert_error(&page, "Enter why the email address is changing");
    assert!(
        page.contains("value=\"jane.new@nhs.net\""),
        "what was typed is kept"
    );
    let page = console_action(
        &app,
        &c,
        JANE,
        "email",
        &[("email", "jane@gmail.com"), ("reason", "asked")],
    )
    .await
    .text()
    .await
    .expect("body");
    assert_error(&page, "allowed domain");

    let mails_before = app.smtp.messages().len();
    let done = console_action(
        &app,
        &c,
        JANE,
        "email",
        &[
            ("email", "jane.new@nhs.net"),
            ("reason", "phoned; confirmed date of birth"),
        ],
    )
    .await;
    assert_eq!(done.status(), 303);
    let page = app.page_as(&c, "/console/accounts/999JSMITH01").await;
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
        let browser = client();
        app.open_link(&browser, &old_link).await;
        app.page_as(&browser, "/reset").await
    };
    assert!(
        link_page.contains("email address for this account has been changed"),
        "{link_page}"
    );
    assert_eq!(
        app.get_as(&jane, "/account").await.headers()["location"],
        "/login",
        "Jane's session ended"
    );
    let audit = audit_events(&app, "account.email_changed").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor.as_deref(), Some("helpdesk 999AKHAN01"));
    assert!(audit[0].detail.as_deref().unwrap_or("").contains("phoned"));
}

#[tokio::test]
async fn only_an_admin_disables_and_a_disabled_account_cannot_get_in() {
    let app = TestApp::spawn().await;
    let (helpdesk, _, _) = enrolled(&app).await;
    let page = app
        .page_as(&helpdesk, "/console/accounts/999JSMITH01")
        .await;
    assert!(
        !page.contains("Disable the account"),
        "helpdesk is not offered it"
    );
    for action in ["disable", "enable", "unlock"] {
        let refused = console_action(&app, &helpdesk, JANE, action, &[("reason", "x")]).await;
        assert_eq!(refused.status(), 403, "{action}");
    }
    assert_eq!(audit_events(&app, "console.refused").await.len(), 3);

    app.gatehouse
        .set_role(AMIR, Role::Admin, OPERATOR)
        .await
        .expect("role");
    set_janes_password(&app).await;
    let jane = client();
    app.log_in_as(&jane, JANE, GOOD_PASSWORD).await;

    let page = console_action(&app, &helpdesk, JANE, "disable", &[("reason", "")])
        .await
        .text()
        .await
        .expect("body");
    assert_error(&page, "Give a reason");
    let own = console_action(&app, &helpdesk, AMIR, "disable", &[("reason", "oops")])
        .await
        .text()
        .await
        .expect("body");
    assert_error(&own, "your own account");
    let done = console_action(
        &app,
        &helpdesk,
        JANE,
        "disable",
        &[("reason", "left the trust")],
    )
    .await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        app.get_as(&jane, "/account").await.headers()["location"],
        "/login",
        "signed out at once"
    );
    let page = app
        .log_in(JANE, GOOD_PASSWORD)
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("Your account has been disabled"),
        "the right password is told"
    );
    let page = app
        .log_in(JANE, "wrong password here")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("The username or password is incorrect"),
        "a wrong one learns nothing"
    );
    let sent = app.recovery_emails().len();
    app.request_recovery("jane.smith@nhs.net", ("14", "3", "1985"))
        .await;
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

    let done = console_action(&app, &helpdesk, JANE, "enable", &[("reason", "came back")]).await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        app.log_in(JANE, GOOD_PASSWORD).await.headers()["location"],
        "/account"
    );
    assert_eq!(audit_events(&app, "account.disabled").await.len(), 1);
    assert_eq!(audit_events(&app, "account.enabled").await.len(), 1);
}

async fn lock_jane(app: &TestApp) {
    set_janes_password(app).await;
    for _ in 0..3 {
        app.log_in(JANE, "not her password").await;
    }
}

#[tokio::test]
async fn by_default_nobody_can_lift_a_lock_early() {
    let app = TestApp::spawn().await;
    let (admin, _, _) = enrolled_as(&app, Role::Admin).await;
    lock_jane(&app).await;
    let page = app.page_as(&admin, "/console/accounts/999JSMITH01").await;
    assert!(page.contains("Nobody can lift it early"));
    assert!(!page.contains("Lift the lock"));
    let page = console_action(&app, &admin, JANE, "unlock", &[("reason", "please")])
        .await
        .text()
        .await
        .expect("body");
    assert_error(&page, "Nobody can lift a lock early");
    assert!(
        app.log_in(JANE, GOOD_PASSWORD)
            .await
            .text()
            .await
            .expect("body")
            .contains("locked until")
    );
    assert_eq!(audit_events(&app, "account.lock_lifted").await.len(), 0);
}

#[tokio::test]
async fn with_the_operator_setting_on_an_admin_lifts_a_lock_and_it_is_audited() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_ALLOW_EARLY_UNLOCK", "true")]).await;
    let (admin, _, _) = enrolled_as(&app, Role::Admin).await;
    lock_jane(&app).await;
    let page = app.page_as(&admin, "/console/accounts/999JSMITH01").await;
    assert!(page.contains("Lift the lock"));
    let page = console_action(&app, &admin, JANE, "unlock", &[("unlock-reason", "")])
        .await
        .text()
        .await
        .expect("body");
    assert_error(&page, "Give a reason");
    let done = console_action(
        &app,
        &admin,
        JANE,
        "unlock",
        &[("unlock-reason", "verified by phone")],
    )
    .await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        app.log_in(JANE, GOOD_PASSWORD).await.headers()["location"],
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
    let (c, _, _) = enrolled(&app).await;
    for _ in 0..2 {
        app.log_in(JANE, "not her password").await;
    }
    app.log_in("NOBODY99", "whatever it is").await;

    let page = app.page_as(&c, "/console/audit?username=999jsmith01").await;
    assert!(page.contains("2 events"), "{page}");
    assert!(page.contains("sign_in.failed"));
    let page = app
        .page_as(&c, "/console/audit?event=second_factor.enrolled")
        .await;
    assert!(page.contains("1 event<"), "{page}");
    let page = app.page_as(&c, "/console/audit?actor=test").await;
    assert!(
        page.contains("account.role_changed"),
        "the role set by the test harness"
    );
    let page = app
        .page_as(&c, "/console/audit?from=31%2F02%2F2026&username=NOBODY42")
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
    let page = app.page_as(&c, "/console/audit?to=2000-01-01").await;
    assert!(page.contains("No events"), "{page}");

    let csv = app
        .get_as(&c, "/console/audit?username=999JSMITH01&format=csv")
        .await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment;")
    );
    let body = csv.text().await.expect("body");
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some("at,event,actor,username,client_ip,detail")
    );
    assert_eq!(
        lines.filter(|l| l.contains(",sign_in.failed,")).count(),
        2,
        "{body}"
    );

    let staff = client();
    set_janes_password(&app).await;
    app.log_in_as(&staff, JANE, GOOD_PASSWORD).await;
    assert_eq!(
        app.get_as(&staff, "/console/audit?format=csv")
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn an_admin_previews_the_staff_file_then_imports_it() {
    let app = TestApp::spawn().await;
    let (helpdesk, _, _) = enrolled(&app).await;
    assert_eq!(app.get_as(&helpdesk, "/console/import").await.status(), 403);
    let token = csrf_token(&app.page_as(&helpdesk, "/console").await).expect("token");
    assert_eq!(
        upload(&app, &helpdesk, &token, STAFF).await.status(),
        403,
        "helpdesk cannot import"
    );

    app.gatehouse
        .set_role(AMIR, Role::Admin, OPERATOR)
        .await
        .expect("role");
    let admin = helpdesk;
    let page = app.page_as(&admin, "/console/import").await;
    assert!(page.contains("Load the staff file"));
    let token = csrf_token(&page).expect("token");
    assert_eq!(
        upload(&app, &admin, "not-the-token", STAFF).await.status(),
        403
    );

    let bad =
        format!("{STAFF}999 Demo Hospital NHS Trust,,Bad,Date,1990-02-31,bad.date@nhs.net,D9\n");
    let page = upload(&app, &admin, &token, &bad)
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("1 problem in hr-feed.csv: nothing was imported"),
        "{page}"
    );
    assert!(page.contains("line 5"), "{page}");

    let changed = STAFF.replace("Jane.Smith@nhs.net,D1", "jane.s@nhs.net,D1")
        + "999 Demo Hospital NHS Trust,,Ada,Lovelace,1980-12-10,ada.lovelace@nhs.net,D3\n";
    let page = upload(&app, &admin, &token, &changed)
        .await
        .text()
        .await
        .expect("body");
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

    let done = app
        .submit(
            &admin,
            "/console/import",
            &format!("/console/import/{action}"),
            &[],
        )
        .await;
    assert_eq!(done.status(), 303);
    let page = app.page_as(&admin, "/console/import").await;
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
    app.submit(
        &admin,
        "/console/import",
        &format!("/console/import/{action}"),
        &[],
    )
    .await;
    let page = app.page_as(&admin, "/console/import").await;
    assert!(page.contains("expired or was already imported"), "{page}");
}

#[tokio::test]
async fn the_helpdesk_ends_a_persons_sessions_with_a_reason() {
    let app = TestApp::spawn().await;
    let (c, _, _) = enrolled(&app).await;
    set_janes_password(&app).await;
    let (phone, desktop) = (client(), client());
    app.log_in_as(&phone, JANE, GOOD_PASSWORD).await;
    app.log_in_as(&desktop, JANE, GOOD_PASSWORD).await;
    let page = app.page_as(&c, "/console/accounts/999JSMITH01").await;
    assert!(page.contains("2 active sessions"), "{page}");
    let page = console_action(&app, &c, JANE, "sessions", &[("sessions-reason", "")])
        .await
        .text()
        .await
        .expect("body");
    assert_error(&page, "Give a reason");
    assert_eq!(
        app.get_as(&phone, "/account").await.status(),
        200,
        "nothing ended yet"
    );
    let done = console_action(
        &app,
        &c,
        JANE,
        "sessions",
        &[("sessions-reason", "lost her phone")],
    )
    .await;
    assert_eq!(done.status(), 303);
    for browser in [&phone, &desktop] {
        assert_eq!(
            app.get_as(browser, "/account").await.headers()["location"],
            "/login"
        );
    }
    assert_eq!(
        app.get_as(&c, "/console").await.status(),
        200,
        "the helpdesk's own session stays"
    );
    assert_eq!(audit_events(&app, "account.sessions_ended").await.len(), 1);
}

#[tokio::test]
async fn after_a_lost_phone_the_operator_resets_the_second_factor_and_a_new_one_is_enrolled() {
    let app = TestApp::spawn().await;
    let (c, old, _) = enrolled(&app).await;
    let refused = app
        .gatehouse
        .reset_second_factor(AMIR, &gatehouse_core::Actor::COMMAND_LINE, " ")
        .await
        .expect("runs");
    assert!(refused.is_err(), "a reason is required");
    let (_, set_up) = app
        .gatehouse
        .reset_second_factor(
            AMIR,
            &gatehouse_core::Actor::COMMAND_LINE,
            "lost phone; identity checked",
        )
        .await
        .expect("runs")
        .expect("reset");
    assert_eq!(
        app.get_as(&c, "/console").await.headers()["location"],
        "/login",
        "signed out"
    );
    // The old password alone sets nothing up: whoever holds it is not
    // necessarily Amir.
    let c = client();
    app.log_in_as(&c, AMIR, GOOD_PASSWORD).await;
    let page = app.page_as(&c, "/console/second-factor").await;
    assert!(page.contains("Your authenticator app has not been set up"));
    assert!(!page.contains("gatehouse-key"));
    // The set-up link the operator hands over: a new password, then a new key.
    set_password_through(&app, &set_up.link, AMIR, "a brand new passphrase 7").await;
    let c = client();
    app.log_in_as(&c, AMIR, "a brand new passphrase 7").await;
    let page = app.page_as(&c, "/console/second-factor").await;
    assert!(page.contains("Set up your authenticator app"));
    assert_ne!(key_in(&page), old, "a new key");
    assert_eq!(audit_events(&app, "second_factor.reset").await.len(), 1);
}

#[tokio::test]
async fn a_staff_file_over_the_upload_limit_is_refused_with_a_clear_message() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_CONSOLE_UPLOAD_MIB", "1")]).await;
    let (admin, _, _) = enrolled_as(&app, Role::Admin).await;
    let page = app.page_as(&admin, "/console/import").await;
    let token = csrf_token(&page).expect("token");
    let row = "999 Demo Hospital NHS Trust,,Pat,Doe,1980-01-01,pat.doe@nhs.net,X1\n";
    let big = format!("{STAFF}{}", row.repeat(2 * 1024 * 1024 / row.len()));
    let response = upload(&app, &admin, &token, &big).await;
    assert_eq!(response.status(), 413);
    let page = response.text().await.expect("body");
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

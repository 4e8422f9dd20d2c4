//! Administrative changes through the console and the command line: the
//! email-change form's defences, what a change does to mail still queued
//! and to the lockout, bad and borrowed addresses, the audit trail, and the
//! absence of any override (security cases G80–G84).

use gatehouse_domain::Role;

use crate::helpers::*;

pub(crate) const AMIR: &str = "999AKHAN01";
pub(crate) const JANE: &str = "999JSMITH01";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_change_without_its_form_token_or_from_another_site_is_refused_and_changes_nothing()
 {
    let app = TestApp::spawn().await;
    let helpdesk = console_as(&app, Role::Helpdesk).await;
    set_janes_password(&app).await;
    let jane = client();
    assert_eq!(
        app.log_in_as(&jane, JANE, GOOD_PASSWORD).await.status(),
        303
    );
    let before = footprint(&app, JANE).await;
    let action = app.url(&format!("/console/accounts/{JANE}/email"));
    let token = form_token(&helpdesk, &app.url(&format!("/console/accounts/{JANE}"))).await;
    let jane_token = form_token(&jane, &app.url("/account")).await;
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
            helpdesk.post(&action).form(&fields("")[..2].to_vec()),
        ),
        ("an empty token", helpdesk.post(&action).form(&fields(""))),
        (
            "a made-up token",
            helpdesk.post(&action).form(&fields(&random)),
        ),
        (
            "another session's token",
            helpdesk.post(&action).form(&fields(&jane_token)),
        ),
        (
            "Sec-Fetch-Site: cross-site",
            helpdesk
                .post(&action)
                .header("sec-fetch-site", "cross-site")
                .form(&fields(&token)),
        ),
        (
            "Sec-Fetch-Site: same-site (a sibling subdomain)",
            helpdesk
                .post(&action)
                .header("sec-fetch-site", "same-site")
                .form(&fields(&token)),
        ),
        (
            "a foreign Origin",
            helpdesk
                .post(&action)
                .header("origin", "https://evil.example")
                .form(&fields(&token)),
        ),
        (
            "the right token with no session cookie",
            client().post(&action).form(&fields(&token)),
        ),
    ];
    for (what, request) in attempts {
        let r = request.send().await.expect("POST");
        assert_eq!(r.status(), 403, "{what}");
        let page = r.text().await.expect("body");
        assert!(page.contains("This form has expired"), "{what}");
        assert_eq!(
            footprint(&app, JANE).await,
            before,
            "{what} changed something"
        );
    }
    assert_eq!(email_of(&app, JANE).await, "jane.smith@nhs.net");
    assert_eq!(app.get_as(&jane, "/account").await.status(), 200);

    // A signed-in helpdesk member who has not passed the second factor in
    // this session (the console's re-authentication) changes nothing either,
    // even with a valid form token.
    let fresh = client();
    assert_eq!(
        app.log_in_as(&fresh, AMIR, GOOD_PASSWORD).await.status(),
        303
    );
    let fresh_token = form_token(&fresh, &app.url("/account")).await;
    let r = fresh
        .post(&action)
        .form(&fields(&fresh_token))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/second-factor");
    assert_eq!(footprint(&app, JANE).await, before);

    // The same form with its token, from this site, works.
    let r = helpdesk
        .post(&action)
        .header("sec-fetch-site", "same-origin")
        .form(&fields(&token))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    assert_eq!(email_of(&app, JANE).await, "jane.new@nhs.net");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_email_stuck_in_the_outbox_carries_no_usable_link_after_an_email_change_and_the_lock_count_stays()
 {
    let app = TestApp::spawn().await;
    let helpdesk = console_as(&app, Role::Helpdesk).await;
    set_janes_password(&app).await;
    for _ in 0..2 {
        app.log_in(JANE, "not her password").await;
    }
    let counts = |s: &gatehouse_core::accounts::AccountStatus| {
        (s.consecutive_failures, s.total_failures, s.locked_until)
    };
    let status = account_status(&app, JANE).await;
    assert_eq!(counts(&status), (2, 2, None));

    // The mail server refuses for now: the recovery email, with its link,
    // waits in the outbox. Once the notice of her new password has gone:
    // refused too, it would hold up every later email to her address
    // (emails to one address go out in order), this one included.
    wait_until_sent(&app).await;
    app.smtp.set_mode(gatehouse_testkit::SinkMode::TempFail);
    let received = app.smtp.messages().len();
    app.request_recovery_as(&client(), "jane.smith@nhs.net", ("14", "3", "1985"), JANE)
        .await;
    app.settle().await;
    let stuck = wait_for_a_failed_try(&app, "jane.smith@nhs.net").await;
    assert_eq!(stuck.status.as_str(), "queued");
    assert_eq!(stuck.kind, "recovery");

    let r = console_action(
        &app,
        &helpdesk,
        JANE,
        "email",
        &[("email", "jane.new@nhs.net"), ("reason", "new address")],
    )
    .await;
    assert_eq!(r.status(), 303);

    // The lock state and the failure counts are what they were.
    let status = account_status(&app, JANE).await;
    assert_eq!(counts(&status), (2, 2, None), "the change reset nothing");
    // And they still count: one more failure locks the account.
    app.log_in(JANE, "not her password either").await;
    let status = account_status(&app, JANE).await;
    assert!(status.locked_until.is_some(), "the third failure locks");
    let until = status.locked_until;
    let r = console_action(
        &app,
        &helpdesk,
        JANE,
        "email",
        &[("email", "jane.smith@nhs.net"), ("reason", "back again")],
    )
    .await;
    assert_eq!(r.status(), 303);
    let status = account_status(&app, JANE).await;
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
    let links: Vec<String> = late.iter().flat_map(reset_links).collect();
    if done.status.as_str() == "sent" {
        assert!(!links.is_empty(), "the sent email is the one with the link");
    }
    for link in &links {
        let browser = client();
        let r = app.open_link(&browser, link).await;
        let page = app.page_as(&browser, "/reset").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_addresses_are_refused_by_the_console_and_the_command_line_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let helpdesk = console_as(&app, Role::Helpdesk).await;
    let before = footprint(&app, JANE).await;
    let audit_before = audit_events(&app, "account.email_changed").await.len();
    for (what, address) in bad_addresses() {
        let r = console_action(
            &app,
            &helpdesk,
            JANE,
            "email",
            &[("email", address.as_str()), ("reason", "asked")],
        )
        .await;
        assert_eq!(r.status(), 200, "{what}: the form again, with the error");
        let page = r.text().await.expect("body");
        assert_error(&page, "Enter an email address in an allowed domain");
        assert_eq!(footprint(&app, JANE).await, before, "{what}");

        let (code, stdout, stderr) = gatehouse_cli(
            &app,
            &[
                "admin",
                "set-email",
                JANE,
                address.as_str(),
                "--reason",
                "asked",
            ],
        );
        assert_eq!(code, 1, "{what}: {stdout} {stderr}");
        assert!(stderr.starts_with("Not changed: "), "{what}: {stderr}");
        assert!(
            stderr.contains("not an email address") || stderr.contains("allowed domain"),
            "{what}: {stderr}"
        );
        assert_eq!(footprint(&app, JANE).await, before, "{what} (command line)");
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
            JANE,
            "jane.new@nhs.net",
            "--reason",
            "asked",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(email_of(&app, JANE).await, "jane.new@nhs.net");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_persons_address_is_refused_but_one_persons_accounts_may_share_one() {
    let app = TestApp::spawn().await;
    let helpdesk = console_as(&app, Role::Helpdesk).await;
    // Amir's address on Jane's account would send Jane's reset links to
    // Amir: refused, in any letter case, from the console and the CLI.
    for address in ["amir.khan@nhs.net", "Amir.Khan@NHS.net"] {
        let page = console_action(
            &app,
            &helpdesk,
            JANE,
            "email",
            &[("email", address), ("reason", "typo")],
        )
        .await
        .text()
        .await
        .expect("body");
        assert_error(
            &page,
            "That address is on file for another person (account 999AKHAN01)",
        );
        assert_eq!(email_of(&app, JANE).await, "jane.smith@nhs.net");
        let (code, _, stderr) = gatehouse_cli(
            &app,
            &["admin", "set-email", JANE, address, "--reason", "typo"],
        );
        assert_eq!(code, 1);
        assert!(stderr.contains("another person"), "{stderr}");
        assert_eq!(email_of(&app, JANE).await, "jane.smith@nhs.net");
    }
    assert!(audit_events(&app, "account.email_changed").await.is_empty());

    // Jane has two accounts (two employers), one address: moving one of them
    // away and back again is one person's business and allowed.
    let r = console_action(
        &app,
        &helpdesk,
        "432JSMITH01",
        "email",
        &[("email", "jane.work@nhs.net"), ("reason", "new address")],
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = console_action(
        &app,
        &helpdesk,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_change_is_audited_with_masked_addresses_the_actor_and_the_client_address() {
    let app = TestApp::spawn().await;
    let admin = console_as(&app, Role::Admin).await;
    let r = console_action(
        &app,
        &admin,
        JANE,
        "email",
        &[("email", "jane.new@nhs.net"), ("reason", "phoned; checked")],
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = console_action(&app, &admin, JANE, "disable", &[("disable-reason", "left")]).await;
    assert_eq!(r.status(), 303);
    let r = console_action(&app, &admin, JANE, "enable", &[("disable-reason", "back")]).await;
    assert_eq!(r.status(), 303);
    let r = console_action(
        &app,
        &admin,
        JANE,
        "sessions",
        &[("sessions-reason", "lost phone")],
    )
    .await;
    assert_eq!(r.status(), 303);

    let changed = audit_events(&app, "account.email_changed").await;
    assert_eq!(changed.len(), 1);
    let e = &changed[0];
    assert_eq!(e.actor.as_deref(), Some("admin 999AKHAN01"));
    assert_eq!(e.username.as_deref(), Some(JANE));
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
    let csv = app
        .page_as(
            &admin,
            "/console/audit?event=account.email_changed&format=csv",
        )
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
            JANE,
            "jane.smith@nhs.net",
            "--reason",
            "undo",
        ],
    );
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
    let token = form_token(&admin, &app.url("/console/audit")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_route_or_verb_unlocks_sets_or_shows_a_password_hash_or_token() {
    let app = TestApp::spawn().await;
    let admin = console_as(&app, Role::Admin).await;
    set_janes_password(&app).await;
    for _ in 0..3 {
        app.log_in(JANE, "not her password").await;
    }
    let locked = account_status(&app, JANE).await;
    assert!(locked.locked_until.is_some());
    let hash = locked
        .account
        .password_hash
        .clone()
        .expect("a password is set");
    let token = form_token(&admin, &app.url(&format!("/console/accounts/{JANE}"))).await;
    let base = format!("/console/accounts/{JANE}");
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
            "/account/password",
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
            let body = r.text().await.expect("body");
            assert!(!body.contains(&hash), "{method} {path} shows the hash");
        }
    }
    // The account's own page takes no other verb either.
    for method in ["PUT", "PATCH", "DELETE"] {
        let r = admin
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
        let (code, stdout, stderr) = gatehouse_cli(&app, &["admin", command, JANE]);
        assert_eq!(code, 2, "admin {command}: {stdout}");
        assert!(
            stderr.contains("unrecognized subcommand"),
            "admin {command}: {stderr}"
        );
    }
    for args in [
        vec!["admin", "status", JANE],
        vec!["admin", "--json", "status", JANE],
        vec!["admin", "audit", "--username", JANE],
        vec!["admin", "mail", "jane.smith@nhs.net"],
    ] {
        let (code, stdout, stderr) = gatehouse_cli(&app, &args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(
            !stdout.contains("$argon2") && !stdout.contains(&hash),
            "{args:?}"
        );
    }
    let (code, _, stderr) = gatehouse_cli(&app, &["admin", "unlock", JANE, "--reason", "please"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("GATEHOUSE_ALLOW_EARLY_UNLOCK"), "{stderr}");
    // Unlock is refused while the operator setting is off.
    let r = console_action(&app, &admin, JANE, "unlock", &[("unlock-reason", "please")]).await;
    assert_eq!(r.status(), 200);
    let after = account_status(&app, JANE).await;
    assert_eq!(after.locked_until, locked.locked_until, "still locked");
    assert_eq!(after.total_failures, locked.total_failures);
    assert_eq!(after.account.password_hash.as_deref(), Some(hash.as_str()));

    // No page shows a hash, a PHC string, or a link's token: the console's
    // account page, Jane's own account page, the mail page.
    app.request_recovery("amir.khan@nhs.net", ("2", "7", "1990"))
        .await;
    let mail = app.recovery_email(app.recovery_emails().len().max(1)).await;
    let link_tokens: Vec<String> = reset_links(&mail)
        .iter()
        .filter_map(|l| l.rsplit('/').next().map(str::to_owned))
        .collect();
    let amir_hash = account_status(&app, AMIR)
        .await
        .account
        .password_hash
        .expect("set");
    let mut pages = vec![
        app.page_as(&admin, &base).await,
        app.page_as(&admin, &format!("/console/accounts/{AMIR}"))
            .await,
        app.page_as(&admin, "/console/mail?email=amir.khan%40nhs.net")
            .await,
        app.page_as(&admin, "/console/audit").await,
        app.page_as(&admin, "/console/audit?format=csv").await,
        app.page_as(&admin, "/account").await,
    ];
    app.advance(gatehouse_domain::Span::minutes(31));
    let amir = client();
    app.log_in_as(&amir, AMIR, GOOD_PASSWORD).await;
    pages.push(app.page_as(&amir, "/account").await);
    for page in &pages {
        assert!(!page.contains("$argon2"), "a PHC string is shown");
        assert!(!page.contains(&hash) && !page.contains(&amir_hash));
        for t in &link_tokens {
            assert!(!page.contains(t.as_str()), "a link's token is shown");
        }
    }
}

//! The recovery form and its emails (docs/design.md invariants 1, 4 and 5;
//! docs/security.md rows A4–A17, F72, F74, F75): no enumeration, what each
//! response gives away, validation, throttling, what reaches the database
//! when the answer is given, and what reaches the mail server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gatehouse_domain::{Clock as _, Span};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;

/// Everything about a response a watcher could compare.
async fn observe(response: reqwest::Response) -> (u16, Option<String>, Vec<String>, String) {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap_or_default();
            // The cookie's value differs per visitor by design; its name and attributes must not.
            let (name, rest) = v.split_once('=').unwrap_or((v, ""));
            format!(
                "{name}={}",
                rest.split_once(';').map_or("", |(_, attrs)| attrs)
            )
        })
        .collect();
    let body = comparable(&response.body().await);
    (status, location, cookies, body)
}

/// Security cases A2, A3, A4, A17 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_response_is_the_same_whether_or_not_anything_matched() {
    // Workers off: the response is decided before any matching happens, so
    // it cannot depend on what matches (status, body, cookies, or timing).
    let app = TestApp::spawn_full(&[], false).await;
    app.import(STAFF).await;
    let cases = [
        ("amir.khan@nhs.net", ("2", "7", "1990"), ""), // matches
        ("nobody.here@nhs.net", ("2", "7", "1990"), ""), // unknown email
        ("amir.khan@nhs.net", ("3", "7", "1990"), ""), // wrong date of birth
        ("amir.khan@nhs.net", ("2", "7", "1990"), "999XX01"), // wrong username
    ];
    let mut seen = Vec::new();
    for (email, dob, username) in cases {
        let browser = app.browser();
        let post = observe(
            browser
                .request_recovery(Recovery::new(email, dob).with_username(username))
                .await,
        )
        .await;
        let page = observe(browser.get("/recover/confirmation").await).await;
        seen.push((post, page));
    }
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
    assert!(
        app.smtp.messages().is_empty(),
        "nothing was matched or sent while answering"
    );

    app.settle().await;
    app.gatehouse.wake_outbox();
    let requests = app
        .db
        .recovery_requests_for("amir.khan@nhs.net", 10)
        .await
        .expect("list");
    let outcomes: Vec<Option<&str>> = requests
        .iter()
        .map(|r| r.outcome.map(|o| o.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [Some("no_match"), Some("no_match"), Some("matched")]
    );
    let unknown = app
        .db
        .recovery_requests_for("nobody.here@nhs.net", 10)
        .await
        .expect("list");
    assert_eq!(unknown[0].outcome.map(|o| o.as_str()), Some("no_match"));
}

/// Security case A13 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_form_checks_each_field_with_the_seed_wording() {
    let app = TestApp::spawn().await;
    type Case<'a> = (&'a str, (&'a str, &'a str, &'a str), &'a str, &'a [&'a str]);
    let cases: [Case; 6] = [
        (
            "",
            ("", "", ""),
            "",
            &["Enter your email address", "Enter your date of birth"],
        ),
        (
            "jane@gmail.com",
            ("1", "1", "1985"),
            "",
            &["This must be your nhs.net email address"],
        ),
        (
            "not an email",
            ("1", "1", "1985"),
            "",
            &["Enter an email address in the correct format, like first.last@nhs.net"],
        ),
        (
            "jane@nhs.net",
            ("31", "2", "1985"),
            "",
            &["Date of birth must be a real date"],
        ),
        (
            "jane@nhs.net",
            ("1", "1", "2090"),
            "",
            &["Date of birth must be in the past"],
        ),
        (
            "jane@nhs.net",
            ("1", "1", "1985"),
            "no spaces allowed",
            &["Enter your username as it is written in your email, or leave it blank"],
        ),
    ];
    for (email, dob, username, expected) in cases {
        let r = app
            .browser()
            .request_recovery(Recovery::new(email, dob).with_username(username))
            .await;
        assert_eq!(r.status(), 200);
        let page = r.body().await;
        assert_eq!(error_messages(&page), expected, "{email:?} {dob:?}");
        assert!(page.contains("There is a problem"));
        assert!(
            page.contains(&format!("value=\"{}\"", email)),
            "typed values are kept"
        );
    }
    app.settle().await;
    assert!(
        app.db
            .recovery_requests_for("jane@nhs.net", 10)
            .await
            .expect("list")
            .is_empty()
    );
}

/// Security cases A7, A8 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn header_injection_and_repeated_fields_never_reach_a_mail_header() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let r = app
        .browser()
        .request_recovery(
            AMIR.recovery()
                .typed_as("amir.khan@nhs.net\r\nBcc: attacker@nhs.net"),
        )
        .await;
    assert_eq!(r.status(), 200, "refused as an invalid address");
    // Two email fields: refused, never mailed to both (GitLab CVE-2023-7028).
    let c = app.browser();
    let token = c.form_token("/recover").await;
    let r = c
        .post_form(
            "/recover",
            &token,
            &[
                ("email", "amir.khan@nhs.net"),
                ("email", "attacker@nhs.net"),
                ("dob-day", "2"),
                ("dob-month", "7"),
                ("dob-year", "1990"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.body().await.contains("Reference:"));
    app.settle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.smtp.messages().is_empty());
}

/// Security case A9 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_use_the_public_url_whatever_the_host_header_says() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let c = app.browser();
    let page = c.get("/recover").await.body().await;
    let token = csrf_token(&page).expect("token");
    let r = c
        .http()
        .post(app.url("/recover"))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .form(&[
            ("email", "amir.khan@nhs.net"),
            ("dob-day", "2"),
            ("dob-month", "7"),
            ("dob-year", "1990"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    let mail = app.emails(1).await;
    let body = mail[0].decoded_body();
    assert!(!body.contains("evil.example"));
    assert_eq!(
        reset_links(&mail[0], PUBLIC_URL).len(),
        1,
        "the link is on {PUBLIC_URL}"
    );
}

/// Security cases A10, A11 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_three_emails_an_hour_go_to_one_address_silently() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let mut pages = Vec::new();
    for _ in 0..5 {
        let r = app.browser().request_recovery(AMIR.recovery()).await;
        pages.push((r.status(), r.headers().get("location").cloned()));
        app.settle().await;
    }
    assert!(
        pages.iter().all(|p| p == &pages[0]),
        "every request got the same confirmation"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.emails(3).await.len(), 3);
    let outcomes: Vec<&str> = app
        .db
        .recovery_requests_for("amir.khan@nhs.net", 10)
        .await
        .expect("list")
        .into_iter()
        .filter_map(|r| r.outcome.map(|o| o.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        ["throttled", "throttled", "matched", "matched", "matched"]
    );
    // An hour later the allowance is back.
    app.advance(Span::hours(1));
    app.browser().request_recovery(AMIR.recovery()).await;
    assert_eq!(app.emails(4).await.len(), 4);
}

/// Security case A12 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_address_has_only_a_high_cap() {
    let app =
        TestApp::spawn_with(&[("GATEHOUSE_RECOVERY_REQUESTS_PER_CLIENT_PER_HOUR", "2")]).await;
    for _ in 0..2 {
        assert_eq!(
            app.browser()
                .request_recovery(Recovery::new("someone@nhs.net", ("1", "1", "1980")))
                .await
                .status(),
            303
        );
    }
    let refused = app
        .browser()
        .request_recovery(Recovery::new("someone@nhs.net", ("1", "1", "1980")))
        .await;
    assert_eq!(refused.status(), 429);
    assert!(refused.body().await.contains("Too many requests"));
    let events = audit_events(&app, "recovery.refused_client_limit").await;
    assert_eq!(events.len(), 1);
}

/// Security cases A8, F72, F73 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emails_are_multipart_with_fixed_headers_and_crlf_lines() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_MAIL_FROM", "ESR <no-reply@esr.example>")]).await;
    app.import(STAFF).await;
    app.browser()
        .request_recovery(AMIR.recovery().typed_as("AMIR.KHAN@nhs.net"))
        .await;
    let mail = app.emails(1).await;
    let m = &mail[0];
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("Your Electronic Staff Record username and password reset")
    );
    assert_eq!(
        m.header("From").as_deref(),
        Some("ESR <no-reply@esr.example>")
    );
    assert_eq!(m.header("To").as_deref(), Some("amir.khan@nhs.net"));
    assert_eq!(m.from, "no-reply@esr.example");
    let content_type = m.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    assert!(m.data.contains("Content-Type: text/plain"));
    assert!(m.data.contains("Content-Type: text/html"));
    assert!(
        !m.data.replace("\r\n", "").contains(['\r', '\n']),
        "every line ends CRLF"
    );
    let headers = m.headers().to_ascii_lowercase();
    assert!(!headers.contains("bcc"));
}

/// Security case H99 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_domain_no_longer_allowed_is_recorded_and_never_mailed() {
    // A request recorded while nhs.uk was allowed...
    let app = TestApp::spawn_full(
        &[("GATEHOUSE_ALLOWED_EMAIL_DOMAINS", "nhs.net,nhs.uk")],
        false,
    )
    .await;
    app.import("employer,username,first_name,last_name,date_of_birth,email\n999,,Bo,Li,1980-01-01,bo.li@nhs.uk\n").await;
    assert_eq!(
        app.browser()
            .request_recovery(Recovery::new("bo.li@nhs.uk", ("1", "1", "1980")))
            .await
            .status(),
        303
    );
    // ...is processed after the operator narrowed the list to nhs.net.
    let app = app
        .restart(&[("GATEHOUSE_ALLOWED_EMAIL_DOMAINS", "nhs.net")], true)
        .await;
    app.settle().await;
    let requests = app
        .db
        .recovery_requests_for("bo.li@nhs.uk", 10)
        .await
        .expect("list");
    assert_eq!(
        requests[0].outcome.map(|o| o.as_str()),
        Some("domain_not_allowed")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.smtp.messages().is_empty());
}

/// Security case A15 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_get_with_query_parameters_sends_nothing() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let query = "email=amir.khan%40nhs.net&dob-day=2&dob-month=7&dob-year=1990";
    for path in ["/recover", "/recover/confirmation"] {
        let r = app.visitor.get(&format!("{path}?{query}")).await;
        assert_eq!(r.status(), 200, "{path}");
    }
    app.settle().await;
    let recorded = app
        .db
        .recovery_requests_for("amir.khan@nhs.net", 10)
        .await
        .expect("list");
    assert!(recorded.is_empty(), "a GET records no request");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.smtp.messages().is_empty(), "and sends nothing");
}

/// Amir and Sam (plain matches), Lena (to be locked), Dora (to be disabled:
/// her only account).
fn people() -> String {
    staff_file(&[&AMIR, &LENA, &DORA, &SAM])
}

/// Everything a watcher sees of a response: status, every header but `Date`
/// (cookie values, which differ per visitor by design, blanked), and the
/// body with the form token blanked.
async fn whole(response: reqwest::Response) -> (u16, Vec<(String, String)>, String) {
    let status = response.status().as_u16();
    let headers = comparable_headers(response.headers());
    let body = comparable(&response.body().await);
    (status, headers, body)
}

/// The number of rows in every table of the service's database.
async fn row_counts(url: &str) -> BTreeMap<String, i64> {
    snapshot(url)
        .await
        .into_iter()
        .map(|(table, rows)| (table, i64::try_from(rows.len()).expect("a count")))
        .collect()
}

/// Every row of every table, each row as text: to see any insert, update
/// or delete between two moments.
async fn table_rows(url: &str) -> BTreeMap<String, BTreeSet<String>> {
    snapshot(url)
        .await
        .into_iter()
        .map(|(table, rows)| (table, rows.into_iter().map(|r| r.join("|")).collect()))
        .collect()
}

/// Per table that changed: how many rows appeared and how many went away
/// (an update is one of each).
fn changes(
    before: &BTreeMap<String, BTreeSet<String>>,
    after: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, (usize, usize)> {
    let empty = BTreeSet::new();
    after
        .iter()
        .map(|(t, rows)| {
            let old = before.get(t).unwrap_or(&empty);
            (
                t.clone(),
                (rows.difference(old).count(), old.difference(rows).count()),
            )
        })
        .filter(|(_, c)| *c != (0, 0))
        .collect()
}

/// The recovery form's fields, with `token`.
fn recovery_form<'a>(
    email: &'a str,
    dob: (&'a str, &'a str, &'a str),
    username: &'a str,
    token: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("email", email),
        ("dob-day", dob.0),
        ("dob-month", dob.1),
        ("dob-year", dob.2),
        ("username", username),
        ("csrf_token", token),
    ]
}

/// POSTs the recovery form (no username) as `c`, with `token`.
async fn send_recovery(
    app: &TestApp,
    c: &Browser,
    email: &str,
    dob: (&str, &str, &str),
    token: &str,
) -> reqwest::Response {
    c.http()
        .post(app.url("/recover"))
        .form(&recovery_form(email, dob, "", token))
        .send()
        .await
        .expect("POST")
}

/// A browser that has opened the recovery form, and the form's token.
async fn browser_at_form(app: &TestApp) -> (Browser, String) {
    let c = app.browser();
    let token = c.form_token("/recover").await;
    (c, token)
}

async fn requests_for(app: &TestApp, email: &str) -> Vec<gatehouse_store::RecoveryRequestSummary> {
    app.db
        .recovery_requests_for(email, 100)
        .await
        .expect("list")
}

/// Lets the workers run, then asserts the mail server got nothing at all.
async fn assert_no_mail(app: &TestApp) {
    app.settle().await;
    app.gatehouse.wake_outbox();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.smtp.messages().is_empty(),
        "mail was sent: {:?}",
        app.smtp.messages()
    );
}

/// Locks Lena (3 wrong passwords) and disables Dora's only account.
async fn lock_lena_and_disable_dora(app: &TestApp) {
    for _ in 0..3 {
        app.browser()
            .log_in("999LLOCKE01", "wrong password here")
            .await;
    }
    let lena = sign_in_attempts(app, "999LLOCKE01").await;
    assert!(lena.locked_at(app.clock.now()).is_some(), "Lena is locked");
    app.gatehouse
        .set_account_disabled("999DDENT01", true, OPERATOR, "left the trust")
        .await
        .expect("disable")
        .expect("disabled");
}

// ---------------------------------------------------------------- A4, A17

/// Security case A4 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_arm_gets_the_same_answer_before_any_matching_after_the_same_database_work() {
    // Workers off: whatever the answer is, it was made before any matching.
    let app = TestApp::spawn_full(&[], false).await;
    app.import(&people()).await;
    lock_lena_and_disable_dora(&app).await;
    let url = app.database_url();
    let arms = [
        ("A1 match", AMIR.email, AMIR.date_of_birth),
        (
            "A2 wrong date of birth",
            "amir.khan@nhs.net",
            ("3", "7", "1990"),
        ),
        (
            "A3 unknown email",
            "nobody.here@nhs.net",
            AMIR.date_of_birth,
        ),
        ("A5 locked account", LENA.email, LENA.date_of_birth),
        ("A16 disabled account", DORA.email, DORA.date_of_birth),
    ];
    let mut seen = Vec::new();
    for (arm, email, dob) in arms {
        let (browser, token) = browser_at_form(&app).await;
        let before = table_rows(&url).await;
        let post = send_recovery(&app, &browser, email, dob, &token).await;
        let post = whole(post).await;
        let work = changes(&before, &table_rows(&url).await);
        let page = whole(browser.get("/recover/confirmation").await).await;
        seen.push((arm, post, work, page));
    }
    let (_, post, work, page) = &seen[0];
    assert_eq!(post.0, 303);
    // Cache and validator headers (A17): nothing stored, nothing to compare later.
    for (status, headers, _) in [post, page] {
        assert!(
            headers.contains(&("cache-control".to_owned(), "no-store".to_owned())),
            "{status}: {headers:?}"
        );
        for name in ["etag", "last-modified", "age", "expires"] {
            assert!(
                !headers.iter().any(|(h, _)| h == name),
                "{name} in {headers:?}"
            );
        }
    }
    assert!(
        post.1
            .contains(&("location".to_owned(), "/recover/confirmation".to_owned()))
    );
    assert_eq!(
        work,
        &BTreeMap::from([
            ("audit_events".to_owned(), (1, 0)),
            ("recovery_requests".to_owned(), (1, 0))
        ]),
        "one request recorded (and its audit line), nothing else written"
    );
    for (arm, other_post, other_work, other_page) in &seen[1..] {
        assert_eq!(other_post, post, "{arm}: the POST response differs");
        assert_eq!(other_work, work, "{arm}: the database work differs");
        assert_eq!(other_page, page, "{arm}: the confirmation page differs");
    }
    let depths = app.db.queue_depths().await.expect("depths");
    assert_eq!(depths.recovery_pending, 5, "nothing was matched yet");
    assert!(app.smtp.messages().is_empty());

    // Only now, in the worker, do the arms part ways.
    app.settle().await;
    let outcome = |email: &'static str| {
        let app = &app;
        async move {
            requests_for(app, email)
                .await
                .into_iter()
                .map(|r| {
                    (
                        r.outcome.map(|o| o.as_str().to_owned()),
                        r.locked_accounts.unwrap_or(0),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        outcome("amir.khan@nhs.net").await,
        [
            (Some("no_match".to_owned()), 0),
            (Some("matched".to_owned()), 0)
        ]
    );
    assert_eq!(
        outcome("nobody.here@nhs.net").await,
        [(Some("no_match".to_owned()), 0)]
    );
    assert_eq!(
        outcome("lena.locke@nhs.net").await,
        [(Some("matched".to_owned()), 1)]
    );
    assert_eq!(
        outcome("dora.dent@nhs.net").await,
        [(Some("no_match".to_owned()), 0)]
    );
}

/// A browser's request for `email`, whole, next to a matching one (A1).
async fn compare_with_a_match(
    app: &TestApp,
    email: &str,
    dob: (&str, &str, &str),
) -> (
    (u16, Vec<(String, String)>, String),
    (u16, Vec<(String, String)>, String),
) {
    let (a, token_a) = browser_at_form(app).await;
    let (b, token_b) = browser_at_form(app).await;
    let matched = send_recovery(app, &a, AMIR.email, AMIR.date_of_birth, &token_a).await;
    let other = send_recovery(app, &b, email, dob, &token_b).await;
    (whole(matched).await, whole(other).await)
}

// ---------------------------------------------------------------- A5

/// Security cases A5, A17 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_account_gets_the_whole_response_of_a_match_and_no_link() {
    let app = TestApp::spawn().await;
    app.import(&people()).await;
    lock_lena_and_disable_dora(&app).await;
    let (matched, locked) = compare_with_a_match(&app, LENA.email, LENA.date_of_birth).await;
    assert_eq!(matched.0, 303);
    assert_eq!(locked, matched, "the lock is not revealed");

    // Lena's lock email, then the two recovery emails.
    app.emails(3).await;
    let mail = app.recovery_emails();
    let lena: Vec<_> = mail
        .iter()
        .filter(|m| m.to == ["lena.locke@nhs.net"])
        .collect();
    assert_eq!(lena.len(), 1);
    assert!(
        reset_links(lena[0], PUBLIC_URL).is_empty(),
        "no reset link is sent"
    );
    assert!(
        lena[0]
            .decoded_body()
            .contains("This account is locked until")
    );
    let counts = row_counts(&app.database_url()).await;
    assert_eq!(counts["reset_links"], 1, "only Amir's link was issued");
    assert_eq!(audit_events(&app, "reset_link.issued").await.len(), 1);
}

// ---------------------------------------------------------------- A16

/// Security cases A16, A17 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_whose_only_account_is_disabled_gets_the_response_of_a_match_and_no_email() {
    let app = TestApp::spawn().await;
    app.import(&people()).await;
    lock_lena_and_disable_dora(&app).await;
    let (matched, disabled) = compare_with_a_match(&app, DORA.email, DORA.date_of_birth).await;
    assert_eq!(matched.0, 303);
    assert_eq!(disabled, matched, "the disabled state is not revealed");

    let mail = app.emails(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mail_to_dora = app
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.contains("dora")))
        .count();
    assert_eq!(mail_to_dora, 0, "no email at all: {mail:?}");
    assert_eq!(
        requests_for(&app, "dora.dent@nhs.net").await[0]
            .outcome
            .map(|o| o.as_str()),
        Some("no_match")
    );
    assert!(
        app.db
            .emails_to("dora.dent@nhs.net", 10)
            .await
            .expect("list")
            .is_empty(),
        "nothing is queued for her either"
    );
}

// ---------------------------------------------------------------- A6

/// Security case A6 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unicode_look_alikes_of_a_stored_address_get_the_format_error_and_no_mail() {
    let app =
        TestApp::spawn_with(&[("GATEHOUSE_ALLOWED_EMAIL_DOMAINS", "nhs.net,digital.nhs.uk")]).await;
    app.import(&people()).await;
    app.import(
        "employer,username,first_name,last_name,date_of_birth,email\n\
         999 Demo Hospital NHS Trust,,Ian,Ivory,1982-04-03,ian.ivory@digital.nhs.uk\n",
    )
    .await;
    let format = "Enter an email address in the correct format, like first.last@nhs.net";
    // Each folds, under some Unicode case rule, to a stored address.
    let cases = [
        ("sam.\u{17F}tone@nhs.net", ("20", "1", "1970")), // ſ (long s) upper-cases to S
        ("amir.\u{212A}han@nhs.net", AMIR.date_of_birth), // K (Kelvin sign) lower-cases to k
        ("am\u{131}r.khan@nhs.net", AMIR.date_of_birth),  // ı (dotless i) in the local part
        ("amir.khan@nh\u{17F}.net", AMIR.date_of_birth),  // ſ in the domain
        ("ian.ivory@d\u{131}gital.nhs.uk", ("3", "4", "1982")), // ı in the domain
        ("\u{131}an.\u{131}vory@DIGITAL.NHS.UK", ("3", "4", "1982")),
    ];
    for (email, dob) in cases {
        let r = app
            .browser()
            .request_recovery(Recovery::new(email, dob))
            .await;
        assert_eq!(r.status(), 200, "{email}: refused, not recorded");
        let page = r.body().await;
        assert_eq!(error_messages(&page), [format], "{email}");
    }
    let recorded: i64 = row_counts(&app.database_url()).await["recovery_requests"];
    assert_eq!(recorded, 0, "no request was recorded");
    assert_no_mail(&app).await;

    // The control: the plain address, typed in upper case, is mailed, to the stored address.
    app.browser()
        .request_recovery(SAM.recovery().typed_as("SAM.STONE@NHS.NET"))
        .await;
    let mail = app.emails(1).await;
    assert_eq!(mail[0].to, ["sam.stone@nhs.net"]);
}

// ---------------------------------------------------------------- A7

/// Security case A7 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bracketed_and_json_email_fields_never_reach_two_recipients() {
    let app = TestApp::spawn().await;
    app.import(&people()).await;

    // `email[]` twice (PHP/Rails style): not the `email` field, so it is missing.
    let (c, token) = browser_at_form(&app).await;
    let r = c
        .post_form(
            "/recover",
            &token,
            &[
                ("email[]", "amir.khan@nhs.net"),
                ("email[]", "sam.stone@nhs.net"),
                ("dob-day", "2"),
                ("dob-month", "7"),
                ("dob-year", "1990"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        error_messages(&r.body().await),
        ["Enter your email address"]
    );

    // A JSON body, with the JSON or with the form content type.
    let json = format!(
        r#"{{"email":["amir.khan@nhs.net","sam.stone@nhs.net"],"dob-day":"2","dob-month":"7","dob-year":"1990","csrf_token":"{token}"}}"#
    );
    for content_type in ["application/json", "application/x-www-form-urlencoded"] {
        let r = c
            .http()
            .post(app.url("/recover"))
            .header("content-type", content_type)
            .body(json.clone())
            .send()
            .await
            .expect("POST");
        // Its form token cannot be read as a form field: refused before the fields are.
        assert_eq!(r.status(), 403, "{content_type}");
    }
    assert_eq!(
        row_counts(&app.database_url()).await["recovery_requests"],
        0,
        "nothing was recorded"
    );

    // A form with a JSON blob appended: one value (the form's) is used.
    let body = format!(
        "email=amir.khan%40nhs.net&dob-day=2&dob-month=7&dob-year=1990&csrf_token={token}&{}",
        "%7B%22email%22%3A%22sam.stone%40nhs.net%22%7D"
    );
    let r = c
        .http()
        .post(app.url("/recover"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    let mail = app.emails(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mail_now = app.smtp.messages();
    assert_eq!(mail_now.len(), 1, "one email: {mail:?}");
    assert_eq!(mail_now[0].to, ["amir.khan@nhs.net"], "one recipient");
    assert!(!mail_now[0].data.contains("sam.stone"));
}

// ---------------------------------------------------------------- A8

/// Security case A8 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn line_breaks_in_the_username_are_refused_with_the_same_page_whether_or_not_the_rest_matches()
 {
    let app = TestApp::spawn().await;
    app.import(&people()).await;
    let injections = [
        "999AKHAN01\r\nBcc: attacker@nhs.net",
        "999AKHAN01\r\nCc: attacker@nhs.net",
        "999AKHAN01\nBcc: attacker@nhs.net",
        "999AKHAN01\n.",
        "999AKHAN01%0a.",
        "999AKHAN01%0d%0aBcc:attacker@nhs.net",
    ];
    for username in injections {
        let mut pages = Vec::new();
        // Amir's address and date (would match) and an unknown one.
        for email in ["amir.khan@nhs.net", "nobody.here@nhs.net"] {
            let r = app
                .browser()
                .request_recovery(AMIR.recovery().typed_as(email).with_username(username))
                .await;
            assert_eq!(r.status(), 200, "{username:?}: refused");
            let page = r.body().await;
            assert_eq!(
                error_messages(&page),
                ["Enter your username as it is written in your email, or leave it blank"],
                "{username:?}"
            );
            pages.push(comparable(&page).replace(email, "EMAIL"));
        }
        assert_eq!(pages[0], pages[1], "{username:?}: the pages differ");
    }
    // The same for a line break in the email field.
    let mut pages = Vec::new();
    for email in ["amir.khan@nhs.net", "nobody.here@nhs.net"] {
        let typed = format!("{email}\r\nBcc: attacker@nhs.net");
        let r = app
            .browser()
            .request_recovery(AMIR.recovery().typed_as(&typed))
            .await;
        assert_eq!(r.status(), 200);
        let page = r.body().await;
        pages.push(comparable(&page).replace(email, "EMAIL"));
    }
    assert_eq!(pages[0], pages[1]);
    assert_eq!(
        row_counts(&app.database_url()).await["recovery_requests"],
        0
    );
    assert_no_mail(&app).await;
}

// ---------------------------------------------------------------- A9

/// Opens the recovery form without a cookie store: the session cookie
/// (`name=value`) and the form token, for requests written by hand.
async fn cookie_and_token(app: &TestApp) -> (String, String) {
    let r = reqwest::Client::new()
        .get(app.url("/recover"))
        .send()
        .await
        .expect("GET");
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let token = csrf_token(&r.body().await).expect("token");
    (cookie, token)
}

/// Sends `head` (request line and headers, without the blank line) and a
/// form body over a plain TCP connection; returns the status code.
async fn raw_post(app: &TestApp, head: &str, body: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connect");
    let request = format!(
        "{head}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("an answer in time")
        .expect("read");
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// Security case A9 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_use_the_public_url_whatever_forwarded_or_a_hand_written_request_says() {
    let app = TestApp::spawn().await;
    app.import(&people()).await;
    let authority = app.address.trim_start_matches("http://").to_owned();
    let form = |token: &str| {
        format!("email=amir.khan%40nhs.net&dob-day=2&dob-month=7&dob-year=1990&csrf_token={token}")
    };
    // Each as a whole request head, given the session cookie.
    type Head = fn(&str, &str) -> String;
    let heads: [(&str, Head); 4] = [
        ("Forwarded: host=", |authority, cookie| {
            format!(
                "POST /recover HTTP/1.1\r\nHost: {authority}\r\nForwarded: for=192.0.2.1;host=evil.example;proto=https\r\nX-Forwarded-Proto: https\r\nCookie: {cookie}"
            )
        }),
        ("Host with userinfo", |_, cookie| {
            format!(
                "POST /recover HTTP/1.1\r\nHost: gatehouse.test:x@evil.example\r\nCookie: {cookie}"
            )
        }),
        ("two Host headers", |authority, cookie| {
            format!(
                "POST /recover HTTP/1.1\r\nHost: evil.example\r\nHost: {authority}\r\nCookie: {cookie}"
            )
        }),
        ("absolute-form request line", |_, cookie| {
            format!(
                "POST http://evil.example/recover HTTP/1.1\r\nHost: evil.example\r\nCookie: {cookie}"
            )
        }),
    ];
    let mut answered = Vec::new();
    for (what, head) in heads {
        // A fresh hour: the three-an-hour allowance never hides an email.
        app.advance(Span::hours(1));
        let before = app.recovery_emails().len();
        let requests = requests_for(&app, "amir.khan@nhs.net").await.len();
        let (cookie, token) = cookie_and_token(&app).await;
        let status = raw_post(&app, &head(&authority, &cookie), &form(&token)).await;
        answered.push((what, status));
        match status {
            303 => {
                let mail = app.recovery_email(before + 1).await;
                assert!(!mail.data.contains("evil"), "{what}: {}", mail.data);
                let links = reset_links(&mail, PUBLIC_URL);
                assert_eq!(links.len(), 1, "{what}: the link is on {PUBLIC_URL}");
            }
            400 => {
                app.settle().await;
                assert_eq!(
                    requests_for(&app, "amir.khan@nhs.net").await.len(),
                    requests,
                    "{what}: refused, and nothing recorded"
                );
            }
            other => panic!("{what}: answered {other}"),
        }
    }
    assert!(
        answered.iter().any(|(_, s)| *s == 303),
        "at least one variant reached the form: {answered:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for mail in app.smtp.messages() {
        assert!(!mail.data.contains("evil"), "{}", mail.data);
        assert_eq!(mail.to, ["amir.khan@nhs.net"]);
    }
}

// ---------------------------------------------------------------- A11, A12

/// POSTs the recovery form as a client at `ip` (behind a trusted proxy).
async fn request_from(
    app: &TestApp,
    ip: &str,
    email: &str,
    dob: (&str, &str, &str),
) -> reqwest::Response {
    let (c, token) = browser_at_form(app).await;
    c.http()
        .post(app.url("/recover"))
        .header("x-forwarded-for", ip)
        .form(&recovery_form(email, dob, "", &token))
        .send()
        .await
        .expect("POST")
}

/// Security case A11 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_for_one_address_from_many_client_addresses_still_get_three_emails_an_hour() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_TRUST_X_FORWARDED_FOR", "true")]).await;
    app.import(&people()).await;
    for i in 1..=8 {
        let r = request_from(
            &app,
            &format!("198.51.100.{i}"),
            AMIR.email,
            AMIR.date_of_birth,
        )
        .await;
        assert_eq!(r.status(), 303, "request {i}");
        app.settle().await;
    }
    let clients: std::collections::BTreeSet<String> = audit_events(&app, "recovery.requested")
        .await
        .into_iter()
        .filter_map(|e| e.record.client_ip)
        .collect();
    assert_eq!(clients.len(), 8, "eight client addresses: {clients:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.emails(3).await.len(), 3);
    let outcomes: Vec<&str> = requests_for(&app, "amir.khan@nhs.net")
        .await
        .into_iter()
        .filter_map(|r| r.outcome.map(|o| o.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            "throttled",
            "throttled",
            "throttled",
            "throttled",
            "throttled",
            "matched",
            "matched",
            "matched"
        ]
    );
}

/// Security case A12 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_client_limit_answers_429_at_the_same_count_for_known_and_unknown_addresses() {
    let app = TestApp::spawn_with(&[
        ("GATEHOUSE_TRUST_X_FORWARDED_FOR", "true"),
        ("GATEHOUSE_RECOVERY_REQUESTS_PER_CLIENT_PER_HOUR", "3"),
    ])
    .await;
    app.import(&people()).await;
    let known = [
        (AMIR.email, AMIR.date_of_birth),
        (LENA.email, LENA.date_of_birth),
        ("sam.stone@nhs.net", ("20", "1", "1970")),
        (DORA.email, DORA.date_of_birth),
        (AMIR.email, AMIR.date_of_birth),
    ];
    let unknown = [
        ("nobody.one@nhs.net", AMIR.date_of_birth),
        ("nobody.two@nhs.net", LENA.date_of_birth),
        ("nobody.three@nhs.net", DORA.date_of_birth),
        ("nobody.four@nhs.net", AMIR.date_of_birth),
        ("nobody.five@nhs.net", AMIR.date_of_birth),
    ];
    let mut answers = Vec::new();
    for (ip, list) in [("203.0.113.1", known), ("203.0.113.2", unknown)] {
        let mut statuses = Vec::new();
        let mut refusal = None;
        for (email, dob) in list {
            let r = request_from(&app, ip, email, dob).await;
            statuses.push(r.status().as_u16());
            if r.status() == 429 {
                let (status, headers, body) = whole(r).await;
                let reference = reference_of(&body);
                refusal = Some((status, headers, body.replace(&reference, "REF")));
            }
        }
        answers.push((statuses, refusal));
    }
    assert_eq!(answers[0].0, [303, 303, 303, 429, 429]);
    assert_eq!(
        answers[1], answers[0],
        "the same count and the same refusal"
    );
    assert_eq!(
        audit_events(&app, "recovery.refused_client_limit")
            .await
            .len(),
        4
    );
}

// ---------------------------------------------------------------- A13

/// Security case A13 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_input_gets_the_same_validation_message_for_known_and_unknown_addresses() {
    let app = TestApp::spawn().await;
    app.import(&people()).await;
    const FORMAT: &str = "Enter an email address in the correct format, like first.last@nhs.net";
    let long = "a".repeat(10_000);
    // (email built from the address, date of birth, username, expected messages)
    type Case = (
        fn(&str, &str) -> String,
        (&'static str, &'static str, &'static str),
        &'static str,
        &'static [&'static str],
    );
    let cases: [Case; 9] = [
        (
            |a, long| format!("{long}{a}"),
            AMIR.date_of_birth,
            "",
            &[FORMAT],
        ),
        (
            |a, _| a.replacen('@', "\0@", 1),
            AMIR.date_of_birth,
            "",
            &[FORMAT],
        ),
        (|a, _| format!("{a}\0"), AMIR.date_of_birth, "", &[FORMAT]),
        (
            |a, _| format!("{a}' OR 1=1--"),
            AMIR.date_of_birth,
            "",
            &[FORMAT],
        ),
        (
            |a, _| format!("<script>alert(1)</script>{a}"),
            AMIR.date_of_birth,
            "",
            &[FORMAT],
        ),
        (
            |a, _| a.to_owned(),
            ("1", "1", "1800"),
            "",
            &["Date of birth must be after 1900"],
        ),
        (
            |a, _| a.to_owned(),
            ("aa", "bb", "cccc"),
            "",
            &["Date of birth must be a real date"],
        ),
        (
            |a, _| a.to_owned(),
            ("2", "July", "1990"),
            "",
            &["Date of birth must be a real date"],
        ),
        (
            |a, _| a.to_owned(),
            AMIR.date_of_birth,
            "' OR 1=1--",
            &["Enter your username as it is written in your email, or leave it blank"],
        ),
    ];
    for (n, (email, dob, username, expected)) in cases.iter().enumerate() {
        let mut pages = Vec::new();
        for address in ["amir.khan@nhs.net", "nobody.here@nhs.net"] {
            let typed = email(address, &long);
            let r = app
                .browser()
                .request_recovery(Recovery::new(&typed, *dob).with_username(username))
                .await;
            assert_eq!(r.status(), 200, "case {n}: a validation page, never a 500");
            let page = r.body().await;
            assert_eq!(error_messages(&page), *expected, "case {n} for {address}");
            for leak in ["SQL", "sqlx", "syntax", "panicked", "src/", "Internal"] {
                assert!(!page.contains(leak), "case {n}: {leak} in the page");
            }
            assert!(
                !page.contains("<script>alert"),
                "case {n}: the input is echoed escaped"
            );
            let local = address.split('@').next().unwrap_or_default();
            pages.push(comparable(&page).replace(local, "LOCAL"));
        }
        assert_eq!(
            pages[0], pages[1],
            "case {n}: the page depends on the address"
        );
    }
    // The script is kept in the box, escaped.
    let page = app
        .browser()
        .request_recovery(AMIR.recovery().typed_as("<script>alert(1)</script>"))
        .await
        .body()
        .await;
    assert!(
        page.contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;\""),
        "{page}"
    );
    assert_eq!(
        row_counts(&app.database_url()).await["recovery_requests"],
        0
    );
    assert_no_mail(&app).await;
}

// ---------------------------------------------------------------- A14

/// Security case A14 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_post_without_its_token_or_from_another_site_is_refused_and_records_nothing() {
    let app = TestApp::spawn().await;
    app.import(&people()).await;
    let (c, token) = browser_at_form(&app).await;
    let post = |client: &Browser, token: &str| {
        client.http().post(app.url("/recover")).form(&recovery_form(
            AMIR.email,
            AMIR.date_of_birth,
            "",
            token,
        ))
    };
    let no_token = c
        .http()
        .post(app.url("/recover"))
        .form(&recovery_form(AMIR.email, AMIR.date_of_birth, "", "")[..5])
        .send()
        .await
        .expect("POST");
    let wrong = gatehouse_domain::SecretToken::generate()
        .expect("random")
        .encode();
    let (_, theirs) = browser_at_form(&app).await;
    let refusals = [
        no_token,
        post(&c, &wrong).send().await.expect("POST"),
        post(&c, &theirs).send().await.expect("POST"),
        post(&c, &token)
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .expect("POST"),
        post(&c, &token)
            .header("sec-fetch-site", "same-site")
            .send()
            .await
            .expect("POST"),
        post(&c, &token)
            .header("origin", "https://evil.example")
            .send()
            .await
            .expect("POST"),
        post(&app.browser(), &token).send().await.expect("POST"),
    ];
    let n = refusals.len();
    for (i, r) in refusals.into_iter().enumerate() {
        assert_eq!(r.status(), 403, "refusal {i}");
        assert!(r.body().await.contains("Reference:"));
    }
    assert!(requests_for(&app, "amir.khan@nhs.net").await.is_empty());
    assert_eq!(audit_events(&app, "recovery.requested").await.len(), 0);
    assert_eq!(audit_events(&app, "csrf.refused").await.len(), n);
    assert_no_mail(&app).await;

    // The same form with its token, from this site, goes through.
    let ok = post(&c, &token)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("POST");
    assert_eq!(ok.status(), 303);
    assert_eq!(app.emails(1).await.len(), 1);
}

// ---------------------------------------------------------------- F72

/// Security case F72 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reset_email_says_once_only_and_holds_no_date_of_birth_name_or_password() {
    let app = TestApp::spawn().await;
    app.import(&people()).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    app.browser().request_recovery(AMIR.recovery()).await;
    // The first-time email and the one sent once a password exists.
    for n in [1, 2] {
        let mail = app.recovery_email(n).await;
        assert_eq!(mail.to, ["amir.khan@nhs.net"]);
        let body = mail.decoded_body();
        let text = body
            .split("Content-Type: text/html")
            .next()
            .unwrap_or_default();
        assert!(
            text.contains("Each link must be used within 4 hours and works only once."),
            "{text}"
        );
        assert!(body.contains("works only once"), "in the HTML part too");
        assert!(body.contains("Username: 999AKHAN01"));
        assert_eq!(reset_links(&mail, PUBLIC_URL).len(), 1);
        // 1990 covers every way of writing the date of birth.
        for secret in [
            "1990",
            "July",
            "Amir",
            "Khan",
            GOOD_PASSWORD,
            "argon2",
            "kettle",
        ] {
            assert!(!mail.data.contains(secret), "email {n} holds {secret:?}");
            assert!(!body.contains(secret), "email {n} holds {secret:?}");
        }
    }
}

// ---------------------------------------------------------------- F74

/// Security case F74 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_holding_a_lone_dot_line_reaches_the_mail_server_whole_as_one_message() {
    let app = TestApp::spawn().await;
    // Staff values cannot hold a line break (the import refuses control
    // characters), so the body is put in the outbox directly: this is the
    // mailer's path from the outbox to the wire.
    let smuggled = "first line\n.\nMAIL FROM:<evil@evil.example>\nRCPT TO:<victim@nhs.net>\nDATA\n\
                    second part\r\n.\r\nQUIT\r\n\
                    third part\r.\rRSET\n\
                    ..double dot\n\
                    .\n\
                    the last line";
    let now = app.clock.now();
    app.db
        .enqueue(
            &[gatehouse_store::NewEmail {
                kind: "password_changed",
                recipient: gatehouse_domain::EmailAddress::from_trusted(
                    "amir.khan@nhs.net".to_owned(),
                ),
                subject: "A notice".to_owned(),
                text_body: smuggled.to_owned(),
                html_body: format!("<p>{smuggled}</p>"),
                account_id: None,
                recovery_request_id: None,
                send_by: None,
            }],
            now,
        )
        .await
        .expect("queue");
    app.gatehouse.wake_outbox();

    let mail = app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1, "delivered");
    // Anything smuggled out of DATA would arrive as a message of its own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mail = app.smtp.messages();
    assert_eq!(mail.len(), 1, "exactly one message: {mail:?}");
    let m = &mail[0];
    assert_eq!(m.to, ["amir.khan@nhs.net"], "no recipient was added");
    assert!(
        !m.data.replace("\r\n", "").contains(['\r', '\n']),
        "no bare CR or LF went on the wire"
    );
    let body = m.decoded_body().replace("\r\n", "\n");
    let text = body
        .split("Content-Type: text/html")
        .next()
        .unwrap_or_default();
    let html = body
        .split("Content-Type: text/html")
        .nth(1)
        .unwrap_or_default();
    for part in [text, html] {
        for piece in [
            "first line\n.\nMAIL FROM:<evil@evil.example>\nRCPT TO:<victim@nhs.net>\nDATA\nsecond part",
            "second part\n.\nQUIT\nthird part\n.\nRSET\n..double dot\n.\nthe last line",
        ] {
            assert!(part.contains(piece), "{piece:?} missing from {part:?}");
        }
    }
    let sent = app
        .wait_for_email("amir.khan@nhs.net", |e| e.status.as_str() == "sent")
        .await;
    assert_eq!(sent.attempts, 1, "sent at the first try");
}

// ---------------------------------------------------------------- F75

/// Security case F75 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reset_sends_a_notice_to_the_stored_address_with_what_to_do_and_no_link() {
    let app = TestApp::spawn().await;
    app.import(&people()).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    // The first notice is recorded as sent before the clock jumps: a jump
    // past its lease while it was still being sent would let the worker
    // take it again (in real time a send never outlasts its lease).
    app.wait_until_sent().await;
    // A second reset, not first-time, asked for in another case.
    app.advance(Span::minutes(5));
    let second = "thistle gazebo lantern";
    app.set_password(
        &Person {
            email: "AMIR.KHAN@NHS.NET",
            ..AMIR
        },
        second,
    )
    .await;
    assert_eq!(app.log_in_status("999AKHAN01", second).await, 303);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let notices = loop {
        let notices = app.password_set_notices();
        if notices.len() >= 2 || tokio::time::Instant::now() > deadline {
            break notices;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(notices.len(), 2, "one notice per reset");
    for (n, notice) in notices.iter().enumerate() {
        assert_eq!(notice.to, ["amir.khan@nhs.net"], "notice {n}");
        assert_eq!(notice.header("To").as_deref(), Some("amir.khan@nhs.net"));
        let body = notice.decoded_body();
        assert!(
            body.contains(
                "The password for your Electronic Staff Record account 999AKHAN01 was set at"
            ),
            "{body}"
        );
        assert!(body.contains("If you did this, you do not need to do anything."));
        assert!(
            body.contains("If you did not, contact the System Administrator straight away."),
            "{body}"
        );
        // No link at all, so none that changes the account.
        for link in ["/reset", "http://", "https://", "href=\"/", "<a "] {
            let html = body
                .split("Content-Type: text/html")
                .nth(1)
                .unwrap_or_default();
            let text = body
                .split("Content-Type: text/html")
                .next()
                .unwrap_or_default();
            assert!(!text.contains(link), "notice {n}: {link} in {text}");
            assert!(!html.contains(link), "notice {n}: {link} in {html}");
        }
        for secret in [GOOD_PASSWORD, second, "1990"] {
            assert!(!body.contains(secret));
        }
    }
    assert!(
        notices[1]
            .decoded_body()
            .contains("at 9:05am on 25 November 2026"),
        "the second reset's notice comes second and says when it was"
    );
}

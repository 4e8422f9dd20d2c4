//! The recovery form: no enumeration, validation, throttling, and what
//! reaches the mail server (docs/design.md invariants 1, 4 and 5).

use std::time::Duration;

use gatehouse_domain::Span;

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
    let body = comparable(&response.text().await.expect("body"));
    (status, location, cookies, body)
}

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
        let browser = client();
        let post = observe(
            app.request_recovery_as(&browser, email, dob, username)
                .await,
        )
        .await;
        let page = observe(app.get_as(&browser, "/recover/confirmation").await).await;
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
            .request_recovery_as(&client(), email, dob, username)
            .await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.expect("body");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn header_injection_and_repeated_fields_never_reach_a_mail_header() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let r = app
        .request_recovery(
            "amir.khan@nhs.net\r\nBcc: attacker@nhs.net",
            ("2", "7", "1990"),
        )
        .await;
    assert_eq!(r.status(), 200, "refused as an invalid address");
    // Two email fields: refused, never mailed to both (GitLab CVE-2023-7028).
    let c = client();
    let token = form_token(&c, &app.url("/recover")).await;
    let r = post_form(
        &c,
        &app.url("/recover"),
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
    assert!(r.text().await.expect("body").contains("Reference:"));
    app.settle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.smtp.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_use_the_public_url_whatever_the_host_header_says() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let c = client();
    let page = app.get_as(&c, "/recover").await.text().await.expect("body");
    let token = csrf_token(&page).expect("token");
    let r = c
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
        reset_links(&mail[0]).len(),
        1,
        "the link is on {PUBLIC_URL}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_three_emails_an_hour_go_to_one_address_silently() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let mut pages = Vec::new();
    for _ in 0..5 {
        let r = app
            .request_recovery("amir.khan@nhs.net", ("2", "7", "1990"))
            .await;
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
    app.request_recovery("amir.khan@nhs.net", ("2", "7", "1990"))
        .await;
    assert_eq!(app.emails(4).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_address_has_only_a_high_cap() {
    let app =
        TestApp::spawn_with(&[("GATEHOUSE_RECOVERY_REQUESTS_PER_CLIENT_PER_HOUR", "2")]).await;
    for _ in 0..2 {
        assert_eq!(
            app.request_recovery("someone@nhs.net", ("1", "1", "1980"))
                .await
                .status(),
            303
        );
    }
    let refused = app
        .request_recovery("someone@nhs.net", ("1", "1", "1980"))
        .await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("Too many requests")
    );
    let events = audit_events(&app, "recovery.refused_client_limit").await;
    assert_eq!(events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emails_are_multipart_with_fixed_headers_and_crlf_lines() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_MAIL_FROM", "ESR <no-reply@esr.example>")]).await;
    app.import(STAFF).await;
    app.request_recovery("AMIR.KHAN@nhs.net", ("2", "7", "1990"))
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
        app.request_recovery("bo.li@nhs.uk", ("1", "1", "1980"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_get_with_query_parameters_sends_nothing() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let query = "email=amir.khan%40nhs.net&dob-day=2&dob-month=7&dob-year=1990";
    for path in ["/recover", "/recover/confirmation"] {
        let r = app.get(&format!("{path}?{query}")).await;
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

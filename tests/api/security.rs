//! Sessions, forms, headers, error pages and the audit log
//! (docs/design.md invariants 5, 7 and 8).

use gatehouse_domain::{SecretToken, Span};

use crate::helpers::*;

/// Security cases B19, E64, E67, E68 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_sends_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in [
        "/",
        "/login",
        "/recover",
        "/recover/confirmation",
        "/reset",
        "/logged-out",
        "/nope",
    ] {
        let r = app.visitor.get(path).await;
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().expect("ascii");
        for directive in CSP_DIRECTIVES {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        assert!(h.get("server").is_none());
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
        // Pages load nothing from anywhere else.
        let body = r.body().await;
        for attribute in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(!body.contains(attribute), "{path} loads {attribute}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn assets_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let css = app
        .visitor
        .get("/assets/nhsuk/nhsuk-frontend.min.css")
        .await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let css = css.body().await;
    assert!(css.contains(".nhsuk-header"));
    assert!(!css.contains("https://"), "no third-party fonts or images");
    let js = app.visitor.get("/assets/nhsuk/nhsuk-frontend.min.js").await;
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .contains("javascript")
    );
    assert_eq!(app.visitor.get("/assets/app/init.mjs").await.status(), 200);
    assert_eq!(app.visitor.get("/assets/nhsuk/LICENSE").await.status(), 200);
    assert_eq!(
        app.visitor.get("/assets/nhsuk/missing.css").await.status(),
        404
    );
    assert_eq!(app.visitor.get("/assets/../Cargo.toml").await.status(), 404);
}

/// The attributes every cookie of this service has over plain HTTP.
#[track_caller]
fn assert_cookie_attributes(cookie: &str) {
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("; Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: no Secure: {cookie}"
    );
}

/// Amir signs in with the form token of `page` (a sign-in page `c` was sent).
async fn amir_signs_in_through(c: &Browser, page: reqwest::Response) -> reqwest::Response {
    let token = csrf_token(&page.body().await).expect("token");
    let r = c
        .post_form(
            "/login",
            &token,
            &[("username", "999AKHAN01"), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), 303);
    r
}

/// Someone who is not signed in is shown the sign-in form without
/// anything being stored (their form token comes from a form cookie);
/// signing in issues the session cookie; and a session the browser had
/// before signing in is replaced by a new id and dies (session fixation).
///
/// Security cases E59, E60 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cookies_are_httponly_lax_and_a_new_session_id_is_issued_at_sign_in() {
    let app = app_with_password(&[]).await;
    let url = app.database_url();
    let sessions = || count(&url, "SELECT COUNT(*) FROM sessions");
    let stored = sessions().await;
    let c = app.browser();
    let page = c.get("/login").await;
    let cookies = set_cookies(&page);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("gatehouse-form="), "{cookies:?}");
    assert_cookie_attributes(&cookies[0]);
    assert_eq!(c.get("/recover").await.status(), 200);
    assert_eq!(sessions().await, stored, "showing the forms stored nothing");
    let r = amir_signs_in_through(&c, page).await;
    let cookies = set_cookies(&r);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("gatehouse="), "{cookies:?}");
    assert_cookie_attributes(&cookies[0]);

    // Opening a reset link stores nothing either: the link waits in a
    // signed cookie of its own.
    let opened = c.get("/reset/not-a-link-we-sent").await;
    let cookies = set_cookies(&opened);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("gatehouse-reset="), "{cookies:?}");
    assert_cookie_attributes(&cookies[0]);
    assert_eq!(sessions().await, stored + 1, "only the sign-in's session");

    // A browser that signs in again (with its session's own form token)
    // gets a new session id, and the one before dies.
    let d = app.browser();
    let r = amir_signs_in_through(&d, d.get("/login").await).await;
    let before = cookie_value(&set_cookies(&r)[0]);
    let token = d.form_token("/account").await;
    let r = d
        .post_form(
            "/login",
            &token,
            &[("username", "999AKHAN01"), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let after = cookie_value(&set_cookies(&r)[0]);
    assert_ne!(before, after, "a new session id at sign-in");
    // The earlier id is dead: replaying it is not signed in (session fixation).
    let replay = app.browser();
    let r = replay
        .http()
        .get(app.url("/account"))
        .header("cookie", format!("gatehouse={before}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 303);
    // A made-up session id planted in a browser is never adopted.
    let planted = SecretToken::generate().expect("random").encode();
    let e = app.browser().with_cookie(&format!("gatehouse={planted}"));
    let r = amir_signs_in_through(&e, e.get("/login").await).await;
    assert_ne!(cookie_value(&set_cookies(&r)[0]), planted);
}

/// Security cases B24, E59, E69 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_https_cookies_are_secure_host_prefixed_and_hsts_is_sent() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_PUBLIC_URL", "https://esr.example.org")]).await;
    let r = app.visitor.get("/login").await;
    let cookie = &set_cookies(&r)[0];
    assert!(cookie.starts_with("__Host-gatehouse-form="), "{cookie}");
    assert!(cookie.contains("; Secure"));
    assert!(!cookie.contains("Domain"));
    let r = app.visitor.get("/reset/not-a-link-we-sent").await;
    let cookie = &set_cookies(&r)[0];
    assert!(cookie.starts_with("__Host-gatehouse-reset="), "{cookie}");
    assert!(cookie.contains("; Secure"));
    assert!(!cookie.contains("Domain"));
    assert_hsts(&r);
}

/// Defect P8 (docs/security.md): the public forms' token was SHA-256 of a fixed
/// label and the form cookie, which anyone who can set that cookie (from a
/// sibling subdomain over plain HTTP, say) could compute. It is now a MAC
/// under a key the service holds, shared by every node through the
/// database and rotated by the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_planted_form_cookie_does_not_give_away_the_form_token() {
    let app = app_with_password(&[]).await;
    let planted = SecretToken::generate().expect("random");
    let victim = app
        .browser()
        .with_cookie(&format!("gatehouse-form={}", planted.encode()));
    let sign_in = [("username", "999AKHAN01"), ("password", GOOD_PASSWORD)];
    // What the attacker could compute before: refused.
    let computed = planted.derive("gatehouse public form token").encode();
    let r = victim.post_form("/login", &computed, &sign_in).await;
    assert_eq!(r.status(), 403);
    assert_eq!(audit_events(&app, "csrf.refused").await.len(), 1);
    // The token the service puts in the page for that cookie works.
    let token = victim.form_token("/login").await;
    assert_ne!(token, computed);
    let r = victim.post_form("/login", &token, &sign_in).await;
    assert_eq!(r.status(), 303);

    // Rotation, from the command line (another process): a form shown
    // before it still works, and one shown before two rotations does not.
    let c = app.browser();
    let before = c.form_token("/login").await;
    let (code, _, stderr) = gatehouse_cli(&app, &["admin", "rotate-keys"]).await;
    assert_eq!(code, 0, "{stderr}");
    let r = c.post_form("/login", &before, &sign_in).await;
    assert_eq!(r.status(), 303, "a form open at the rotation still works");
    let d = app.browser();
    let old = d.form_token("/login").await;
    for _ in 0..2 {
        let (code, _, stderr) = gatehouse_cli(&app, &["admin", "rotate-keys"]).await;
        assert_eq!(code, 0, "{stderr}");
    }
    // Every node reads the keys again within a minute.
    app.advance(Span::from_seconds(61));
    let r = d.post_form("/login", &old, &sign_in).await;
    assert_eq!(r.status(), 403, "two rotations retire a key");
    // The service has read the newest key: its new pages work.
    let fresh = d.form_token("/login").await;
    let r = d.post_form("/login", &fresh, &sign_in).await;
    assert_eq!(r.status(), 303);
    assert_eq!(audit_events(&app, "service.keys_rotated").await.len(), 3);
}

/// Security cases D57, E66 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_form_needs_its_session_token_and_a_same_site_origin() {
    let app = app_with_password(&[]).await;
    let c = app.browser();
    let page = c.get("/login").await.body().await;
    let token = csrf_token(&page).expect("token");
    let form = |t: &str| {
        vec![
            ("username".to_owned(), "999AKHAN01".to_owned()),
            ("password".to_owned(), GOOD_PASSWORD.to_owned()),
            ("csrf_token".to_owned(), t.to_owned()),
        ]
    };

    let none = c
        .http()
        .post(app.url("/login"))
        .form(&form("")[..2])
        .send()
        .await
        .expect("POST");
    assert_eq!(none.status(), 403);
    assert!(none.body().await.contains("Reference:"));
    let other = gatehouse_domain::SecretToken::generate()
        .expect("random")
        .encode();
    assert_eq!(
        c.http()
            .post(app.url("/login"))
            .form(&form(&other))
            .send()
            .await
            .expect("POST")
            .status(),
        403
    );
    // Another visitor's valid token does not work here.
    let stranger = app.browser();
    let theirs = csrf_token(&stranger.get("/login").await.body().await).expect("token");
    assert_eq!(
        c.http()
            .post(app.url("/login"))
            .form(&form(&theirs))
            .send()
            .await
            .expect("POST")
            .status(),
        403
    );
    // The right token from another site.
    let cross = c
        .http()
        .post(app.url("/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&form(&token))
        .send()
        .await
        .expect("POST");
    assert_eq!(cross.status(), 403);
    let evil = c
        .http()
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&form(&token))
        .send()
        .await
        .expect("POST");
    assert_eq!(evil.status(), 403);
    // No session at all.
    assert_eq!(
        app.browser()
            .http()
            .post(app.url("/login"))
            .form(&form(&token))
            .send()
            .await
            .expect("POST")
            .status(),
        403
    );
    // Nothing above counted as an attempt: the password still works first time.
    // Origin: null (a no-referrer page) is decided by the token.
    let ok = c
        .http()
        .post(app.url("/login"))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&form(&token))
        .send()
        .await
        .expect("POST");
    assert_eq!(ok.status(), 303);
    let refused = audit_events(&app, "csrf.refused").await;
    assert_eq!(refused.len(), 6);
    // The helpdesk can tell a browser that sent no cookie at all (one that
    // refuses cookies) from a wrong or stale token.
    let details: Vec<&str> = refused.iter().filter_map(|e| e.detail.as_deref()).collect();
    assert_eq!(
        details
            .iter()
            .filter(|d| **d == "no session or form cookie")
            .count(),
        1,
        "{details:?}"
    );
    assert!(
        details.contains(&"form token missing or wrong"),
        "{details:?}"
    );
    assert!(details.contains(&"cross-site request"), "{details:?}");
}

/// Security cases E62, E63 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_end_when_idle_for_30_minutes_or_after_12_hours() {
    let app = app_with_password(&[]).await;
    let c = app.browser();
    c.log_in("999AKHAN01", GOOD_PASSWORD).await;
    app.advance(Span::minutes(29));
    assert_eq!(c.get("/account").await.status(), 200);
    app.advance(Span::minutes(29));
    assert_eq!(
        c.get("/account").await.status(),
        200,
        "activity keeps it alive"
    );
    app.advance(Span::minutes(31));
    assert_eq!(
        c.get("/account").await.status(),
        303,
        "idle for 31 minutes: ended"
    );

    let busy = app.browser();
    busy.log_in("999AKHAN01", GOOD_PASSWORD).await;
    for _ in 0..48 {
        app.advance(Span::minutes(15));
        let status = busy.get("/account").await.status();
        if status == 303 {
            return;
        }
    }
    panic!("a session active all day must still end after 12 hours");
}

/// Security cases E64, E66, E70 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logging_out_ends_the_session_on_the_server() {
    let app = app_with_password(&[]).await;
    let c = app.browser();
    let sign_in_form = c.form_token("/login").await;
    let r = c.log_in("999AKHAN01", GOOD_PASSWORD).await;
    let id = cookie_value(&set_cookies(&r)[0]);
    let account = c.get("/account").await.body().await;
    assert!(account.contains("Log out"));
    let token = csrf_token(&account).expect("token");
    // A logout forged from elsewhere (no token) is refused and ends nothing;
    // so is one with the token of the browser's sign-in form, which is
    // only good for the forms of people who are not signed in.
    for forged_token in ["", sign_in_form.as_str()] {
        let forged = c
            .http()
            .post(app.url("/logout"))
            .form(&[("csrf_token", forged_token)])
            .send()
            .await
            .expect("POST");
        assert_eq!(forged.status(), 403, "{forged_token:?}");
    }
    assert_eq!(c.get("/account").await.status(), 200, "still signed in");
    let out = c
        .http()
        .post(app.url("/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/logged-out");
    assert!(set_cookies(&out)[0].contains("Max-Age=0"));
    assert_eq!(
        out.headers()["clear-site-data"],
        "\"cache\", \"cookies\"",
        "the browser is told to forget this site's cookies and cache"
    );
    let replay = app
        .browser()
        .http()
        .get(app.url("/account"))
        .header("cookie", format!("gatehouse={id}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(replay.status(), 303, "the old cookie is dead");
    assert!(
        c.get("/logged-out")
            .await
            .body()
            .await
            .contains("You have logged out")
    );
    // Logging out is a POST only.
    assert_eq!(app.visitor.get("/logout").await.status(), 405);
}

/// Security cases D55, E71 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn error_pages_carry_a_reference_and_nothing_internal() {
    let app = TestApp::spawn().await;
    let r = app.visitor.get("/no/such/page").await;
    assert_eq!(r.status(), 404);
    let page = r.body().await;
    assert!(page.contains("Page not found"));
    let reference = page
        .split("Reference: <strong>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("reference");
    assert_eq!(reference.len(), 9);
    assert_eq!(&reference[4..5], "-");
    let other = app.visitor.get("/no/such/page").await.body().await;
    assert!(
        !other.contains(reference),
        "each request has its own reference"
    );

    assert_eq!(
        app.visitor
            .http()
            .put(app.url("/login"))
            .send()
            .await
            .expect("PUT")
            .status(),
        405
    );
    // An oversized form is refused with a page, not a crash.
    let c = app.browser();
    let token = csrf_token(&c.get("/login").await.body().await).expect("token");
    let big = "x".repeat(100_000);
    let r = c
        .http()
        .post(app.url("/login"))
        .form(&[("username", big.as_str()), ("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    assert!(r.body().await.contains("Reference:"));
    // Nonsense in a form is answered with a page too. (A fresh client: the
    // server may close the connection that carried the oversized body.)
    let c = app.browser();
    let token = csrf_token(&c.get("/recover").await.body().await).expect("token");
    let r = c
        .http()
        .post(app.url("/recover"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&dob-day=%FF%FE"))
        .send()
        .await
        .expect("POST");
    assert!(matches!(r.status().as_u16(), 200 | 400), "{}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    assert_eq!(app.visitor.get("/healthz").await.body().await, "ok\n");
    assert_eq!(app.visitor.get("/readyz").await.status(), 200);
}

/// Security case C39 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_security_event_is_audited_without_secrets() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let link_page = {
        app.browser().request_recovery(AMIR.recovery()).await;
        app.recovery_email(1).await
    };
    let link = reset_links(&link_page, PUBLIC_URL).remove(0);
    let token = link.rsplit('/').next().expect("token").to_owned();
    let c = app.browser();
    c.open_link(&link).await;
    c.submit_reset("999AKHAN01", GOOD_PASSWORD).await;
    app.browser().log_in("999AKHAN01", GOOD_PASSWORD).await;
    for i in 0..3 {
        app.browser()
            .log_in("999AKHAN01", &format!("secret-wrong-{i}"))
            .await;
    }
    app.browser()
        .log_in("999NOBODY99", "another-secret-guess")
        .await;
    app.gatehouse
        .change_email("999AKHAN01", "amir.k@nhs.net", OPERATOR, "new address")
        .await
        .expect("runs")
        .expect("changed");
    app.smtp
        .wait_for(4, std::time::Duration::from_secs(10))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let events = audit_log(&app).await;
    let names: std::collections::BTreeSet<&str> = events.iter().map(|e| e.event.as_str()).collect();
    for expected in [
        "staff.imported",
        "recovery.requested",
        "recovery.processed",
        "reset_link.issued",
        "email.queued",
        "email.sent",
        "password.reset",
        "sign_in.succeeded",
        "sign_in.failed",
        "account.locked",
        "account.email_changed",
    ] {
        assert!(names.contains(expected), "no {expected} event in {names:?}");
    }
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.event.as_str() == "sign_in.failed")
        .collect();
    assert!(
        failed
            .iter()
            .all(|e| e.client_ip.as_deref() == Some("127.0.0.1")),
        "who and from where"
    );
    assert!(failed.iter().any(|e| {
        e.detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("unknown username (ref ")
    }));
    let everything = format!("{events:?}");
    for secret in [
        token.as_str(),
        GOOD_PASSWORD,
        "secret-wrong-0",
        "another-secret-guess",
        "999NOBODY99",
    ] {
        assert!(
            !everything.contains(secret),
            "the audit log holds {secret:?}"
        );
    }
}

/// Security cases E60, E65 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_ids_in_urls_are_ignored_and_made_up_ones_replaced() {
    let app = app_with_password(&[]).await;
    let c = app.browser();
    let r = c.log_in("999AKHAN01", GOOD_PASSWORD).await;
    let id = cookie_value(&set_cookies(&r)[0]);
    assert_eq!(c.get("/account").await.status(), 200);
    // The live id in a URL, from a browser without the cookie: not signed in.
    for path in [
        format!("/account?session={id}"),
        format!("/account?gatehouse={id}"),
        format!("/account;gatehouse={id}"),
    ] {
        let r = app
            .browser()
            .http()
            .get(app.url(&path))
            .send()
            .await
            .expect("GET");
        assert_ne!(r.status(), 200, "{path}");
        let body = r.body().await;
        assert!(!body.contains(&id), "{path} echoes the id");
    }
    // A made-up cookie is not adopted: the service issues its own id, and
    // signing in gives yet another.
    let invented = gatehouse_domain::SecretToken::generate()
        .expect("token")
        .encode();
    let fixed = app.browser().with_cookie(&format!("gatehouse={invented}"));
    let r = fixed
        .http()
        .get(app.url("/account"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 303, "a made-up id is not a session");
    let login = fixed
        .http()
        .get(app.url("/login"))
        .send()
        .await
        .expect("GET");
    let issued: Vec<String> = set_cookies(&login)
        .iter()
        .map(|c| cookie_value(c))
        .collect();
    assert!(!issued.contains(&invented), "the made-up id is replaced");
    let signed_in = fixed.log_in("999AKHAN01", GOOD_PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    let new_id = cookie_value(&set_cookies(&signed_in)[0]);
    assert_ne!(new_id, invented);
}

/// Security case E70 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_methods_get_405_and_nothing_is_reflected() {
    let app = TestApp::spawn().await;
    for path in ["/login", "/recover", "/reset", "/logout"] {
        for method in ["TRACE", "DELETE", "OPTIONS", "PUT"] {
            let r = app
                .browser()
                .http()
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                    app.url(path),
                )
                .header("x-probe", "marker-123")
                .send()
                .await
                .expect("an answer");
            assert_eq!(r.status(), 405, "{method} {path}");
            let body = r.body().await;
            assert!(
                !body.contains("marker-123"),
                "{method} {path} reflects a header"
            );
            assert!(
                body.contains("This page cannot be used like that"),
                "{method} {path}"
            );
        }
    }
}

/// Input limits: each answered with a clear 4xx, none reaching the handlers.
mod limits {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use crate::helpers::*;

    fn host_port(app: &TestApp) -> String {
        app.address.trim_start_matches("http://").to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
        let app = TestApp::spawn_with(&[("GATEHOUSE_HEADER_TIMEOUT", "1s")]).await;
        let mut slow = tokio::net::TcpStream::connect(host_port(&app))
            .await
            .expect("connect");
        slow.write_all(b"GET /login HTTP/1.1\r\nHost: gatehouse\r\n")
            .await
            .expect("write");
        let started = Instant::now();
        let mut closed = false;
        while started.elapsed() < Duration::from_secs(10) {
            // One more header line every 200 ms: never the blank line.
            if slow.write_all(b"X-Dribble: a\r\n").await.is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 512];
            // hyper may answer 408 before it closes; only the close counts.
            let read = tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await;
            if let Ok(Ok(0) | Err(_)) = read {
                closed = true;
                break;
            }
        }
        assert!(closed, "the connection was still open after 10 s");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed only after {:?}",
            started.elapsed()
        );
        // Everyone else is served meanwhile and after.
        assert_eq!(app.visitor.get("/login").await.status(), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn oversized_headers_and_bodies_get_a_clear_refusal() {
        let app = TestApp::spawn().await;
        let huge = "a".repeat(1024 * 1024);
        let r = app
            .browser()
            .http()
            .get(format!("{}/login", app.address))
            .header("X-Huge", huge.as_str())
            .send()
            .await
            .expect("an answer");
        assert_eq!(r.status(), 431, "request header fields too large");

        // A form body over the 16 KiB limit, with a valid form token: refused
        // before anything is counted or hashed.
        let browser = app.browser();
        let token = browser.form_token("/login").await;
        let checks = app.gatehouse.hasher().verifications();
        let r = browser
            .http()
            .post(format!("{}/login", app.address))
            .form(&[
                ("username", "999AKHAN01"),
                ("password", huge.as_str()),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await
            .expect("an answer");
        assert_eq!(r.status(), 400);
        let body = r.body().await;
        assert!(body.contains("Sorry, we could not read that"), "{body}");
        assert!(!body.contains(&huge[..64]), "the input is not echoed");
        assert_eq!(app.gatehouse.hasher().verifications(), checks);
        let attempts = sign_in_attempts(&app, "999AKHAN01").await;
        assert_eq!(attempts.claims, 0, "nothing was counted");
    }
}

/// D56: there is no redirect parameter to abuse. A sign-in that names
/// somewhere else to go, in the query or the form, still lands on the fixed
/// page, and nothing echoes the foreign address.
///
/// Security case D56 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_goes_only_to_its_own_page_whatever_next_or_return_to_say() {
    let app = app_with_password(&[]).await;
    let evil = "https://evil.example/steal";
    let query = format!("?next={evil}&return_to=//evil.example&redirect={evil}&continue={evil}");
    let c = app.browser();
    let page = c.page(&format!("/login{query}")).await;
    assert!(
        !page.contains("evil.example"),
        "the login page echoes nothing"
    );
    let token = csrf_token(&page).expect("token");
    let r = c
        .http()
        .post(app.url(&format!("/login{query}")))
        .form(&[
            ("username", "999AKHAN01"),
            ("password", GOOD_PASSWORD),
            ("csrf_token", &token),
            ("next", evil),
            ("return_to", "//evil.example"),
            ("redirect", evil),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account");
    // Signed in, the login page sends the person on to the same fixed page.
    let again = c.get(&format!("/login{query}")).await;
    assert_eq!(again.status(), 303);
    assert_eq!(again.headers()["location"], "/account");
    // And signing out goes back to the login page, not to a named place.
    let account = c.page("/account").await;
    let token = csrf_token(&account).expect("token");
    let out = c
        .http()
        .post(app.url(&format!("/logout{query}")))
        .form(&[("csrf_token", token.as_str()), ("next", evil)])
        .send()
        .await
        .expect("POST");
    assert_eq!(out.status(), 303);
    let location = out.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        location.starts_with('/') && !location.starts_with("//"),
        "{location}"
    );
    assert!(!location.contains("evil"), "{location}");
}

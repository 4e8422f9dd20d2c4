//! The web layer's defences, route by route: form tokens on every POST,
//! security headers on every kind of page, transport, error pages that say
//! nothing internal, a bound on reading a body, and what a copy of the
//! database holds after every flow (security cases E66–E71, H97).

use std::time::{Duration, Instant};

use gatehouse_domain::{Role, Span};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;

/// Two more people, each with one account, for actions that must not
/// disturb the others: Bea is locked (unlock), Carl resets his password.
fn more_staff() -> String {
    staff_file(&[&BEA, &CARL, &LENA])
}

/// The password Carl sets.
const CARL_PASSWORD: &str = "walnut harbour teaspoon";

/// Every value of every row of every table (audit rows aside), sorted per
/// table, plus the audit events other than form refusals: what a refused
/// request must leave exactly as it was.
async fn fingerprint(app: &TestApp) -> String {
    let url = app.database_url();
    let mut out = String::new();
    for (table, rows) in snapshot(&url).await {
        if table == "audit_events" {
            continue;
        }
        let mut lines: Vec<String> = rows.iter().map(|row| row.join("|")).collect();
        lines.sort();
        out.push_str(&format!("[{table}]\n{}\n", lines.join("\n")));
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("open");
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event FROM audit_events WHERE event <> 'csrf.refused' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("events");
    out.push_str(&format!("[audit]\n{}\n", events.join("\n")));
    pool.close().await;
    out
}

/// The POST routes the router declares, read from its source: a new POST
/// route fails this file's tests until it is in the table below.
fn post_routes_in_the_router() -> Vec<String> {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/gatehouse-web/src/lib.rs"
    ))
    .expect("the router's source");
    let routes = source
        .split(".route(")
        .skip(1)
        .filter(|chunk| {
            let chunk = chunk.split(".route(").next().unwrap_or_default();
            let end = chunk.find(".fallback(").unwrap_or(chunk.len());
            chunk[..end].contains("post(")
        })
        .map(|chunk| {
            let start = chunk.find('"').expect("a path") + 1;
            let end = start + chunk[start..].find('"').expect("end of path");
            chunk[start..end].to_owned()
        })
        .collect::<Vec<_>>();
    assert!(
        routes.len() >= 6,
        "the router's POST routes were not found: {routes:?}"
    );
    routes
}

/// POST routes that are not a signed-in browser's forms, and why no form
/// token guards them.
const NOT_SESSION_FORMS: &[(&str, &str)] = &[
    (
        "/oauth2/authorize",
        "an application's authorization request, which may come from its own site; it changes nothing until the person acts on Gatehouse's pages",
    ),
    (
        "/oauth2/token",
        "called by an application's server with its client credentials, no cookies",
    ),
    (
        "/oauth2/revoke",
        "called by an application's server with its client credentials, no cookies",
    ),
    (
        "/oauth2/userinfo",
        "called with a bearer token, no cookies; reads only",
    ),
    (
        "/oauth2/logout",
        "an application's sign-out request: it only asks the person, unless it carries an ID token for this very session",
    ),
];

/// How one state-changing POST is sent.
enum Body {
    Form(Vec<(String, String)>),
    /// The staff file upload (multipart), with this file.
    Upload(String),
}

/// One forged request: what it is, the token it carries, extra headers.
type Attack<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);

struct Route {
    /// The router's pattern, matched against the router's source.
    pattern: &'static str,
    path: String,
    client: Browser,
    token: String,
    body: Body,
}

impl Route {
    async fn send(
        &self,
        app: &TestApp,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.http().post(app.url(&self.path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = match &self.body {
            Body::Form(fields) => {
                let mut fields = fields.clone();
                if let Some(t) = token {
                    fields.push(("csrf_token".to_owned(), t.to_owned()));
                }
                request.form(&fields)
            }
            Body::Upload(file) => {
                let mut form = reqwest::multipart::Form::new();
                if let Some(t) = token {
                    form = form.text("csrf_token", t.to_owned());
                }
                request.multipart(
                    form.part(
                        "file",
                        reqwest::multipart::Part::bytes(file.as_bytes().to_vec())
                            .file_name("staff.csv"),
                    ),
                )
            }
        };
        request.send().await.expect("an answer")
    }
}

fn fields(pairs: &[(&str, &str)]) -> Body {
    Body::Form(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

/// Security cases C38, E66 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_state_changing_post_needs_its_own_sessions_token_and_a_same_site_request() {
    let app = TestApp::spawn_with(&[
        ("GATEHOUSE_ALLOW_EARLY_UNLOCK", "true"),
        ("GATEHOUSE_PASSKEYS", "true"),
    ])
    .await;
    let (admin, Enrolment { secret, .. }) = app.console_as(Role::Admin).await;
    // A passkey for the admin, whose code page's passkey forms are tried.
    crate::passkeys::add(&admin, "security key").await;
    app.import(&more_staff()).await;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    app.set_password(&BEA, GOOD_PASSWORD).await;
    for _ in 0..3 {
        app.browser().log_in(BEA.username, "not her password").await;
    }
    app.gatehouse
        .set_account_disabled("432JSMITH01", true, OPERATOR, "setup")
        .await
        .expect("runs")
        .expect("disabled");
    // A fresh code for the second browser's second factor (a code is
    // accepted once per time step).
    app.advance(Span::from_seconds(60));

    let signed_in_jane = app.browser();
    assert_eq!(
        signed_in_jane
            .log_in(JANE.username, GOOD_PASSWORD)
            .await
            .status(),
        303
    );
    let resetter = app.browser();
    let before = app.recovery_emails().len();
    app.browser()
        .request_recovery(CARL.recovery().with_username(CARL.username))
        .await;
    let link = reset_links(&app.recovery_email(before + 1).await, PUBLIC_URL).remove(0);
    assert_eq!(resetter.open_link(&link).await.status(), 303);
    let second = app.browser();
    assert_eq!(
        second.log_in(AMIR.username, GOOD_PASSWORD).await.status(),
        303
    );

    // A previewed staff file waiting to be imported.
    let new_person = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
999 Demo Hospital NHS Trust,,Dan,Green,1970-02-02,dan.green@nhs.net,D5\n";
    let admin_token = admin.form_token("/console/import").await;
    let preview = admin
        .http()
        .post(app.url("/console/import"))
        .multipart(
            reqwest::multipart::Form::new()
                .text("csrf_token", admin_token.clone())
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(new_person.as_bytes().to_vec())
                        .file_name("dan.csv"),
                ),
        )
        .send()
        .await
        .expect("POST")
        .body()
        .await;
    let staged = preview
        .split("action=\"/console/import/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the preview offers the import")
        .to_owned();

    // An application asking Jane's consent, and another browser of hers
    // that an application asks to log out: both wait on a form.
    let consenting = crate::oidc::Rp::register(&app, |c| c.consent = true).await;
    let asked = signed_in_jane.get(&consenting.authorize_path(&[])).await;
    assert_eq!(asked.status(), 200, "the consent page");
    let leaving = app.browser();
    assert_eq!(
        leaving.log_in(JANE.username, GOOD_PASSWORD).await.status(),
        303
    );
    let asked = leaving.get("/oauth2/logout").await;
    assert_eq!(asked.status(), 200, "the log-out question");

    // Lena, signed in on two browsers and to an application, manages her
    // own account from the first.
    app.set_password(&LENA, GOOD_PASSWORD).await;
    let lena = app.browser();
    let lena_elsewhere = app.browser();
    for b in [&lena, &lena_elsewhere] {
        assert_eq!(b.log_in(LENA.username, GOOD_PASSWORD).await.status(), 303);
    }
    let payslips = crate::oidc::Rp::register(&app, |_| {}).await;
    payslips
        .tokens_for(&lena, &[], (LENA.username, GOOD_PASSWORD))
        .await;
    let elsewhere = lena
        .page("/account/sessions")
        .await
        .split("name=\"sid\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the other browser's session is offered to end")
        .to_owned();

    // Lena has a passkey, whose remove form is tried.
    crate::passkeys::add(&lena, "phone").await;
    let lena_passkey = lena
        .page("/account/passkeys")
        .await
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the passkey is offered to remove")
        .to_owned();

    let token_of = |c: &Browser, page: &'static str| {
        let c = c.clone();
        async move { c.form_token(page).await }
    };
    let visitor = app.browser();
    let recoverer = app.browser();
    let jane_page = format!("/console/accounts/{}", JANE.username);
    let passkey_visitor = app.browser();
    let bogus = [("ceremony", "not-a-ceremony"), ("credential", "{}")];
    let routes = vec![
        Route {
            pattern: "/login/passkey/options",
            path: "/login/passkey/options".to_owned(),
            token: token_of(&passkey_visitor, "/login").await,
            client: passkey_visitor.clone(),
            body: fields(&[("username", "")]),
        },
        Route {
            pattern: "/login/passkey",
            path: "/login/passkey".to_owned(),
            token: token_of(&passkey_visitor, "/login").await,
            client: passkey_visitor.clone(),
            body: fields(&bogus),
        },
        Route {
            pattern: "/account/passkeys/options",
            path: "/account/passkeys/options".to_owned(),
            token: token_of(&lena, "/account").await,
            client: lena.clone(),
            body: fields(&[("name", "laptop")]),
        },
        Route {
            pattern: "/account/passkeys/add",
            path: "/account/passkeys/add".to_owned(),
            token: token_of(&lena, "/account").await,
            client: lena.clone(),
            body: fields(&bogus),
        },
        Route {
            pattern: "/account/passkeys/remove",
            path: "/account/passkeys/remove".to_owned(),
            token: token_of(&lena, "/account").await,
            client: lena.clone(),
            body: fields(&[("id", lena_passkey.as_str()), ("password", GOOD_PASSWORD)]),
        },
        Route {
            pattern: "/console/second-factor/passkey/options",
            path: "/console/second-factor/passkey/options".to_owned(),
            token: admin.form_token("/account").await,
            client: admin.clone(),
            body: fields(&[]),
        },
        Route {
            pattern: "/console/second-factor/passkey",
            path: "/console/second-factor/passkey".to_owned(),
            token: admin.form_token("/account").await,
            client: admin.clone(),
            body: fields(&bogus),
        },
        Route {
            pattern: "/login",
            path: "/login".to_owned(),
            token: token_of(&visitor, "/login").await,
            client: visitor.clone(),
            body: fields(&[("username", JANE.username), ("password", GOOD_PASSWORD)]),
        },
        Route {
            pattern: "/recover",
            path: "/recover".to_owned(),
            token: token_of(&recoverer, "/recover").await,
            client: recoverer.clone(),
            body: fields(&[
                ("email", "jane.smith@nhs.net"),
                ("dob-day", "14"),
                ("dob-month", "3"),
                ("dob-year", "1985"),
            ]),
        },
        Route {
            pattern: "/reset/passkey/options",
            path: "/reset/passkey/options".to_owned(),
            token: token_of(&resetter, "/reset").await,
            client: resetter.clone(),
            body: fields(&[]),
        },
        Route {
            pattern: "/reset/passkey",
            path: "/reset/passkey".to_owned(),
            token: token_of(&resetter, "/reset").await,
            client: resetter.clone(),
            body: fields(&bogus),
        },
        Route {
            pattern: "/reset",
            path: "/reset".to_owned(),
            token: token_of(&resetter, "/reset").await,
            client: resetter.clone(),
            body: fields(&reset_form(CARL.username, CARL_PASSWORD, CARL_PASSWORD)),
        },
        Route {
            pattern: "/account/applications/sign-out",
            path: "/account/applications/sign-out".to_owned(),
            token: token_of(&lena, "/account").await,
            client: lena.clone(),
            body: fields(&[("client_id", payslips.id.as_str())]),
        },
        Route {
            pattern: "/account/sessions/end",
            path: "/account/sessions/end".to_owned(),
            token: token_of(&lena, "/account").await,
            client: lena.clone(),
            body: fields(&[("sid", elsewhere.as_str())]),
        },
        Route {
            pattern: "/account/sessions/end-others",
            path: "/account/sessions/end-others".to_owned(),
            token: token_of(&lena, "/account").await,
            client: lena.clone(),
            body: fields(&[]),
        },
        Route {
            pattern: "/account/password",
            path: "/account/password".to_owned(),
            token: token_of(&lena, "/account").await,
            client: lena.clone(),
            body: fields(&[
                ("current-password", GOOD_PASSWORD),
                ("password", CARL_PASSWORD),
                ("confirm-password", CARL_PASSWORD),
            ]),
        },
        Route {
            pattern: "/oauth2/consent",
            path: "/oauth2/consent".to_owned(),
            token: token_of(&signed_in_jane, "/account").await,
            client: signed_in_jane.clone(),
            body: fields(&[("decision", "allow")]),
        },
        Route {
            pattern: "/oauth2/logout/confirm",
            path: "/oauth2/logout/confirm".to_owned(),
            token: token_of(&leaving, "/account").await,
            client: leaving.clone(),
            body: fields(&[]),
        },
        Route {
            pattern: "/logout",
            path: "/logout".to_owned(),
            token: token_of(&signed_in_jane, "/account").await,
            client: signed_in_jane.clone(),
            body: fields(&[]),
        },
        Route {
            pattern: "/console/second-factor",
            path: "/console/second-factor".to_owned(),
            token: token_of(&second, "/console/second-factor").await,
            client: second.clone(),
            body: Body::Form(vec![(
                "code".to_owned(),
                secret.code_at(app.gatehouse.clock().now().unix().cast_unsigned()),
            )]),
        },
        Route {
            pattern: "/console/accounts/{username}/{action}",
            path: format!("{jane_page}/email"),
            token: admin.form_token(&jane_page).await,
            client: admin.clone(),
            body: fields(&[("email", "jane.new@nhs.net"), ("reason", "asked")]),
        },
        Route {
            pattern: "/console/accounts/{username}/{action}",
            path: format!("{jane_page}/disable"),
            token: admin_token.clone(),
            client: admin.clone(),
            body: fields(&[("disable-reason", "left")]),
        },
        Route {
            pattern: "/console/accounts/{username}/{action}",
            path: format!("{jane_page}/sessions"),
            token: admin_token.clone(),
            client: admin.clone(),
            body: fields(&[("sessions-reason", "lost phone")]),
        },
        Route {
            pattern: "/console/accounts/{username}/{action}",
            path: "/console/accounts/432JSMITH01/enable".to_owned(),
            token: admin_token.clone(),
            client: admin.clone(),
            body: fields(&[("disable-reason", "back")]),
        },
        Route {
            pattern: "/console/accounts/{username}/{action}",
            path: format!("/console/accounts/{}/unlock", BEA.username),
            token: admin_token.clone(),
            client: admin.clone(),
            body: fields(&[("unlock-reason", "identity checked")]),
        },
        Route {
            pattern: "/console/import",
            path: "/console/import".to_owned(),
            token: admin_token.clone(),
            client: admin.clone(),
            body: Body::Upload(new_person.to_owned()),
        },
        Route {
            pattern: "/console/import/{id}",
            path: format!("/console/import/{staged}"),
            token: admin_token.clone(),
            client: admin.clone(),
            body: fields(&[]),
        },
    ];
    for pattern in post_routes_in_the_router() {
        if NOT_SESSION_FORMS.iter().any(|(p, _)| *p == pattern) {
            continue;
        }
        assert!(
            routes.iter().any(|r| r.pattern == pattern),
            "POST {pattern} has no CSRF case here"
        );
    }
    let stranger = token_of(&app.browser(), "/login").await;
    let made_up = gatehouse_domain::SecretToken::generate()
        .expect("random")
        .encode();

    let baseline = fingerprint(&app).await;
    let refused_before = audit_events(&app, "csrf.refused").await.len();
    let mut attempts = 0;
    for route in &routes {
        let tries: [Attack<'_>; 7] = [
            ("no token", None, &[]),
            ("an empty token", Some(""), &[]),
            ("a made-up token", Some(&made_up), &[]),
            ("another session's token", Some(&stranger), &[]),
            (
                "Sec-Fetch-Site: cross-site",
                Some(&route.token),
                &[("sec-fetch-site", "cross-site")],
            ),
            (
                "Sec-Fetch-Site: same-site",
                Some(&route.token),
                &[("sec-fetch-site", "same-site")],
            ),
            (
                "a foreign Origin",
                Some(&route.token),
                &[("origin", "https://evil.example")],
            ),
        ];
        for (what, token, headers) in tries {
            let r = route.send(&app, token, headers).await;
            assert_eq!(r.status(), 403, "POST {} with {what}", route.path);
            let page = r.body().await;
            assert!(
                page.contains("This form has expired"),
                "POST {} with {what}",
                route.path
            );
            assert!(page.contains("Reference:"));
            assert_eq!(
                fingerprint(&app).await,
                baseline,
                "POST {} with {what} changed something",
                route.path
            );
            attempts += 1;
        }
    }
    // Each refusal is in the audit log.
    let refused = audit_events(&app, "csrf.refused").await.len();
    assert_eq!(refused - refused_before, attempts);

    // The same requests with their own token from this site do change
    // things: the refusals above were the form checks, nothing else.
    let mut last = baseline;
    for route in &routes {
        let r = route
            .send(
                &app,
                Some(&route.token),
                &[("sec-fetch-site", "same-origin")],
            )
            .await;
        assert_ne!(r.status(), 403, "POST {}", route.path);
        let now = fingerprint(&app).await;
        assert_ne!(
            now, last,
            "POST {} with its token changed nothing",
            route.path
        );
        last = now;
    }
    assert!(
        app.log_in_status(CARL.username, CARL_PASSWORD).await == 303,
        "Carl's new password works"
    );
}

/// The headers every HTML page must have.
#[track_caller]
fn assert_security_headers(what: &str, r: &reqwest::Response) {
    let h = r.headers();
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .expect("ascii");
    for directive in CSP_DIRECTIVES {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{what}");
    assert!(h.get("server").is_none(), "{what}: Server");
    assert!(h.get("x-powered-by").is_none(), "{what}: X-Powered-By");
}

#[track_caller]
fn assert_html(what: &str, r: &reqwest::Response) {
    assert_eq!(
        r.headers()["content-type"],
        "text/html; charset=utf-8",
        "{what}"
    );
}

/// Security cases E67, E68 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_in_console_and_error_pages_send_every_security_header_and_refuse_framing() {
    let app = TestApp::spawn_with(&[
        // Two: the set-up sets two passwords through recovery.
        ("GATEHOUSE_RECOVERY_REQUESTS_PER_CLIENT_PER_HOUR", "2"),
        ("GATEHOUSE_HEADER_TIMEOUT", "1s"),
    ])
    .await;
    let admin = app.console_as(Role::Admin).await.0;
    for path in [
        "/account",
        "/console",
        "/console?q=Smith",
        "/console/accounts/999JSMITH01",
        "/console/mail?email=jane.smith%40nhs.net",
        "/console/audit",
        "/console/import",
        "/recover/confirmation",
    ] {
        let r = admin.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_security_headers(path, &r);
        assert_html(path, &r);
    }
    // Redirects and downloads too: the audit CSV must not be cached.
    for path in ["/console/second-factor", "/", "/console/audit?format=csv"] {
        let r = admin.get(path).await;
        assert_security_headers(path, &r);
    }
    // The second-factor page itself (before it is passed) and the recovery codes page.
    let pending = app.browser();
    pending.log_in(AMIR.username, GOOD_PASSWORD).await;
    let r = pending.get("/console/second-factor").await;
    assert_eq!(r.status(), 200);
    assert_security_headers("second factor", &r);
    let r = pending.get("/console").await;
    assert_eq!(r.status(), 303);
    assert_security_headers("a console redirect", &r);

    // Error pages: 400, 403 (form and role), 404, 405, 408, 429.
    let mut errors: Vec<(&str, reqwest::Response)> = Vec::new();
    let c = app.browser();
    let token = c.form_token("/recover").await;
    errors.push((
        "400",
        c.http()
            .post(app.url("/recover"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf_token={token}&dob-day=1&dob-day=2"))
            .send()
            .await
            .expect("POST"),
    ));
    errors.push((
        "403 form",
        c.http()
            .post(app.url("/recover"))
            .form(&[("csrf_token", "nope")])
            .send()
            .await
            .expect("POST"),
    ));
    let staff = app.browser();
    app.set_password(&JANE, GOOD_PASSWORD).await;
    staff.log_in(JANE.username, GOOD_PASSWORD).await;
    errors.push(("403 role", staff.get("/console").await));
    errors.push(("404", app.visitor.get("/no/such/page").await));
    errors.push((
        "405",
        app.visitor
            .http()
            .delete(app.url("/account"))
            .send()
            .await
            .expect("DELETE"),
    ));
    let limited = app.browser();
    for _ in 0..2 {
        let r = limited.request_recovery(AMIR.recovery()).await;
        if r.status() == 429 {
            errors.push(("429", r));
            break;
        }
    }
    let statuses: Vec<&str> = errors.iter().map(|(s, _)| *s).collect();
    assert!(statuses.contains(&"429"), "{statuses:?}");
    for (what, r) in &errors {
        let expected: u16 = what[..3].parse().expect("status");
        assert_eq!(r.status().as_u16(), expected, "{what}");
        assert_security_headers(what, r);
        assert_html(what, r);
    }
    for (what, r) in errors {
        assert!(r.body().await.contains("Reference:"), "{what}");
    }
    let (status, head, _) = slow_body(&app, Duration::from_secs(5)).await;
    assert_eq!(status, 408);
    for header in [
        "content-security-policy: ",
        "x-frame-options: DENY",
        "x-content-type-options: nosniff",
        "cache-control: no-store",
        "cross-origin-opener-policy: same-origin",
    ] {
        assert!(
            head.to_ascii_lowercase()
                .contains(&header.to_ascii_lowercase()),
            "408: no {header} in {head}"
        );
    }
}

/// 503, while SQLite's write lock is held elsewhere. (PostgreSQL waits on
/// row locks instead; the page and its headers come from the same code.)
///
/// Security case E67 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_unavailable_page_sends_every_security_header() {
    if on_postgres() {
        return;
    }
    let app = TestApp::spawn_full(&[("GATEHOUSE_DATABASE_TIMEOUT", "1s")], false).await;
    app.import(STAFF).await;
    let c = app.browser();
    let token = c.form_token("/recover").await;
    let lock = SqliteWriteLock::take(&app).await;
    let r = c
        .post_form("/recover", &token, &AMIR.recovery_fields())
        .await;
    assert_eq!(r.status(), 503);
    assert_security_headers("503", &r);
    assert_html("503", &r);
    lock.release().await;
}

/// Security case E69 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_https_every_response_has_hsts_every_cookie_is_secure_and_links_stay_on_https() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_PUBLIC_URL", "https://esr.example.org")]).await;
    app.import(STAFF).await;
    let c = app.browser();
    let mut responses = vec![("GET /login".to_owned(), c.get("/login").await)];
    for path in [
        "/",
        "/recover",
        "/reset",
        "/nope",
        "/assets/app/init.mjs",
        "/logged-out",
    ] {
        responses.push((format!("GET {path}"), c.get(path).await));
    }
    responses.push((
        "PUT /login".to_owned(),
        c.http().put(app.url("/login")).send().await.expect("PUT"),
    ));
    responses.push((
        "POST /login without a token".to_owned(),
        c.http()
            .post(app.url("/login"))
            .form(&[("username", "x")])
            .send()
            .await
            .expect("POST"),
    ));
    // Through recovery to a password and a signed-in page, then out.
    let before = app.recovery_emails().len();
    responses.push((
        "POST /recover".to_owned(),
        c.request_recovery(AMIR.recovery()).await,
    ));
    let mail = app.recovery_email(before + 1).await.decoded_body();
    assert!(
        mail.contains("https://esr.example.org/reset/"),
        "links use the https address"
    );
    assert!(!mail.contains("http://"), "no plain-HTTP link in the email");
    let token: String = mail
        .split("https://esr.example.org/reset/")
        .nth(1)
        .expect("a link")
        .chars()
        .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '-' || *ch == '_')
        .collect();
    let open = c.get(&format!("/reset/{token}")).await;
    assert_eq!(open.status(), 303);
    responses.push(("GET /reset/{token}".to_owned(), open));
    let reset = c.submit_reset(AMIR.username, GOOD_PASSWORD).await;
    assert_eq!(reset.status(), 303);
    assert_eq!(
        reset.headers()["location"],
        "/login?password=set",
        "a relative redirect: never to http://"
    );
    responses.push(("POST /reset".to_owned(), reset));
    let login = c.log_in(AMIR.username, GOOD_PASSWORD).await;
    assert_eq!(login.status(), 303);
    responses.push(("POST /login".to_owned(), login));
    responses.push(("GET /account".to_owned(), c.get("/account").await));
    let token = c.form_token("/account").await;
    responses.push((
        "POST /logout".to_owned(),
        c.http()
            .post(app.url("/logout"))
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .expect("POST"),
    ));
    let mut cookies = 0;
    for (what, r) in &responses {
        let hsts = r
            .headers()
            .get("strict-transport-security")
            .unwrap_or_else(|| panic!("{what}: no HSTS"))
            .to_str()
            .expect("ascii");
        let max_age: u64 = hsts
            .split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .expect("max-age");
        assert!(max_age >= 31_536_000, "{what}: at least a year");
        assert!(hsts.contains("includeSubDomains"), "{what}");
        if let Some(location) = r.headers().get("location") {
            let location = location.to_str().expect("ascii");
            assert!(
                !location.starts_with("http:"),
                "{what} downgrades to {location}"
            );
        }
        for cookie in set_cookies(r) {
            cookies += 1;
            assert!(
                cookie.starts_with("__Host-gatehouse=")
                    || cookie.starts_with("__Host-gatehouse-form=")
                    || cookie.starts_with("__Host-gatehouse-reset="),
                "{what}: {cookie}"
            );
            assert!(cookie.contains("; Secure"), "{what}: {cookie}");
            assert!(cookie.contains("; HttpOnly"), "{what}: {cookie}");
            assert!(!cookie.contains("Domain="), "{what}: {cookie}");
        }
    }
    assert!(
        cookies >= 3,
        "a form cookie, a signed-in session, a cleared one"
    );
}

/// Security cases B24, E69 (docs/security.md).
#[test]
fn the_documented_proxy_serves_the_app_only_over_tls() {
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/nginx.conf"))
        .expect("docs/nginx.conf");
    let conf: String = conf
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let servers = server_blocks(&conf);
    assert!(!servers.is_empty(), "no server block");
    let mut proxied = 0;
    for server in &servers {
        let listens: Vec<&str> = server
            .lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix("listen "))
            .collect();
        assert!(
            !listens.is_empty(),
            "a server with no listen line: {server}"
        );
        let tls = listens
            .iter()
            .all(|l| l.contains(" ssl") || l.contains("quic"));
        if server.contains("proxy_pass") {
            proxied += 1;
            assert!(tls, "the app is proxied on a plain-HTTP port: {listens:?}");
            assert!(
                server.contains("ssl_certificate "),
                "a TLS server has a certificate"
            );
        } else {
            // A plain-HTTP server may only send people to https.
            assert!(
                server.contains("return 301 https://") || server.contains("return 308 https://"),
                "a server that neither proxies over TLS nor redirects to https: {server}"
            );
        }
    }
    assert!(proxied >= 1, "nothing proxies to the app");
}

/// The text of each top-level `server { … }` block.
fn server_blocks(conf: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = conf;
    while let Some(at) = rest.find("server {") {
        let body = &rest[at + "server {".len()..];
        let mut depth = 1;
        let mut end = body.len();
        for (i, ch) in body.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        blocks.push(body[..end].to_owned());
        rest = &body[end..];
    }
    blocks
}

/// Words that would show internals: a panic, a path, a crate, SQL, a
/// framework's own rejection text.
const INTERNALS: &[&str] = &[
    "panicked",
    "backtrace",
    "RUST_",
    ".rs:",
    "src/",
    "/root",
    "/work",
    "/home",
    "/tmp",
    "gatehouse_",
    "gatehouse-web",
    "gatehouse-core",
    "gatehouse-store",
    "axum",
    "hyper",
    "serde",
    "sqlx",
    "tokio",
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "sqlite",
    "postgres",
    "i64",
    "Cannot parse",
    "Failed to",
    "failed to",
    "duplicate field",
    "missing field",
    "boundary",
    "multipart",
    "Error(",
    "Err(",
];

#[track_caller]
fn assert_nothing_internal(what: &str, body: &str) {
    for word in INTERNALS {
        assert!(!body.contains(word), "{what} shows {word:?}: {body}");
    }
}

/// Security case E71 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_requests_get_a_generic_page_with_a_reference_and_no_internals() {
    let app = TestApp::spawn().await;
    let admin = app.console_as(Role::Admin).await.0;
    let token = admin.form_token("/console/import").await;
    let import = app.url("/console/import");
    let mut answers: Vec<(String, reqwest::Response)> = Vec::new();
    for (what, content_type, body) in [
        (
            "garbage after a boundary",
            "multipart/form-data; boundary=XyZ",
            "this is not multipart at all".to_owned(),
        ),
        ("no boundary", "multipart/form-data", "--XyZ\r\n".to_owned()),
        (
            "a truncated part",
            "multipart/form-data; boundary=XyZ",
            format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nemployer,us"
            ),
        ),
        (
            "a part with no name",
            "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--\r\n".to_owned(),
        ),
        (
            "JSON",
            "application/json",
            format!("{{\"csrf_token\": \"{token}\", \"file\": [1,2"),
        ),
        (
            "XML",
            "application/xml",
            "<import><file>../../etc/passwd</file>".to_owned(),
        ),
        ("no content type", "", "a=b".to_owned()),
    ] {
        let mut request = admin.http().post(&import).body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        answers.push((
            format!("import with {what}"),
            request.send().await.expect("an answer"),
        ));
    }
    // Forms sent as something else, and broken form encodings.
    let c = app.browser();
    let login_token = c.form_token("/login").await;
    for (what, content_type, body) in [
        (
            "JSON",
            "application/json",
            format!("{{\"csrf_token\":\"{login_token}\",\"username\":"),
        ),
        (
            "bad percent-encoding",
            "application/x-www-form-urlencoded",
            format!("csrf_token={login_token}&username=%FF%FE%ZZ"),
        ),
        (
            "invalid UTF-8",
            "application/x-www-form-urlencoded",
            format!("csrf_token={login_token}&username=\u{FFFD}"),
        ),
        (
            "a field twice",
            "application/x-www-form-urlencoded",
            format!("csrf_token={login_token}&username=a&username=b"),
        ),
        (
            "multipart",
            "multipart/form-data; boundary=Q",
            format!(
                "--Q\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{login_token}\r\n--Q--\r\n"
            ),
        ),
    ] {
        answers.push((
            format!("login with {what}"),
            c.http()
                .post(app.url("/login"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("an answer"),
        ));
    }
    // Path and query values of the wrong type.
    for path in [
        "/console/audit?from=yesterday&to=%FF",
        "/console?q=a&q=b",
        "/console/audit?username=a&username=b",
        "/console/mail?email=a&email=b",
        "/reset/%FF%FE",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
    ] {
        answers.push((format!("GET {path}"), admin.get(path).await));
    }
    let apply_token = admin.form_token("/console/import").await;
    for id in ["abc", "99999999999999999999999", "-1", "1.5"] {
        answers.push((
            format!("POST /console/import/{id}"),
            admin
                .http()
                .post(app.url(&format!("/console/import/{id}")))
                .form(&[("csrf_token", apply_token.as_str())])
                .send()
                .await
                .expect("an answer"),
        ));
    }
    for (what, r) in answers {
        let status = r.status().as_u16();
        assert!(
            (200..500).contains(&status) && status != 500,
            "{what}: {status}"
        );
        let html = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("text/html"));
        let body = r.body().await;
        if status >= 400 {
            assert!(html, "{what}: {status} is a page");
            assert!(
                body.contains("Reference:"),
                "{what}: {status} has a reference: {body}"
            );
            assert_nothing_internal(&what, &body);
        }
    }
    // A huge header is refused by the HTTP layer before any handler runs
    // (so no reference can be given), with nothing in the body at all.
    let r = app
        .browser()
        .http()
        .get(app.url("/login"))
        .header("x-huge", "a".repeat(1024 * 1024))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 431);
    let body = r.body().await;
    assert_nothing_internal("a huge header", &body);
    assert!(body.len() < 2048);
}

/// Sends a form's headers, then its body one byte at a time, and returns
/// the status, the response's head, and how long the server took to answer
/// and close.
async fn slow_body(app: &TestApp, give_up: Duration) -> (u16, String, Duration) {
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    slow.write_all(
        b"POST /login HTTP/1.1\r\nHost: gatehouse\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n",
    )
    .await
    .expect("write");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut closed = false;
    while started.elapsed() < give_up {
        // One byte every 100 ms: far from ever finishing the 4,000.
        if slow.write_all(b"a").await.is_err() {
            closed = true;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
            }
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if closed {
            break;
        }
    }
    assert!(closed, "the connection was still open after {give_up:?}");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = raw_status(&text);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    (
        status,
        head + "\r\n\r\n" + text.split("\r\n\r\n").nth(1).unwrap_or_default(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_sends_a_form_body_slowly_gets_408_and_is_cut_off() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_HEADER_TIMEOUT", "1s")]).await;
    let (status, answer, took) = slow_body(&app, Duration::from_secs(10)).await;
    assert_eq!(status, 408, "{answer}");
    assert!(answer.contains("Sorry, that took too long"), "{answer}");
    assert!(answer.contains("Reference:"), "{answer}");
    assert!(took < Duration::from_secs(4), "cut off only after {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "cut off too early: {took:?}"
    );
    // Others are served meanwhile and after, and a form sent at a normal
    // pace is not affected.
    assert_eq!(app.visitor.get("/login").await.status(), 200);
    let c = app.browser();
    let token = c.form_token("/login").await;
    let r = c
        .post_form("/login", &token, &[("username", "x"), ("password", "y")])
        .await;
    assert_eq!(r.status(), 200);
}

/// Security case H97 (docs/security.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_dump_after_every_flow_holds_no_password_token_session_id_or_form_token() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.import(&more_staff()).await;
    let mut secrets: Vec<(String, String)> = Vec::new();
    // Recovery and reset, through the web pages.
    let resetter = app.browser();
    app.browser()
        .request_recovery(CARL.recovery().with_username(CARL.username))
        .await;
    let link = reset_links(&app.recovery_email(1).await, PUBLIC_URL).remove(0);
    let token = link.rsplit('/').next().expect("token").to_owned();
    secrets.push(("the reset token".to_owned(), token));
    resetter.open_link(&link).await;
    let page = resetter.page("/reset").await;
    secrets.push((
        "a reset form's token".to_owned(),
        csrf_token(&page).expect("token"),
    ));
    secrets.push((
        "a reset link's cookie".to_owned(),
        resetter.cookie("gatehouse-reset"),
    ));
    let r = resetter.submit_reset(CARL.username, CARL_PASSWORD).await;
    assert_eq!(r.status(), 303);
    secrets.push(("Carl's password".to_owned(), CARL_PASSWORD.to_owned()));
    // Sign-in, with wrong passwords first, and a signed-in page.
    for wrong in ["wrong horse battery", "Walnut harbour teaspoon"] {
        app.browser().log_in(CARL.username, wrong).await;
        secrets.push(("a wrong password".to_owned(), wrong.to_owned()));
    }
    let carl = app.browser();
    assert_eq!(
        carl.log_in(CARL.username, CARL_PASSWORD).await.status(),
        303
    );
    let page = carl.page("/account").await;
    secrets.push((
        "a signed-in form token".to_owned(),
        csrf_token(&page).expect("token"),
    ));
    secrets.push(("a signed-in session id".to_owned(), carl.session_id()));
    // A console session past its second factor.
    let admin = app.console_as(Role::Helpdesk).await.0;
    secrets.push(("Amir's password".to_owned(), GOOD_PASSWORD.to_owned()));
    let page = admin.page("/console").await;
    secrets.push((
        "a console form token".to_owned(),
        csrf_token(&page).expect("token"),
    ));
    // A visitor who is not signed in: their form cookie.
    let visitor = app.browser();
    let page = visitor.page("/login").await;
    secrets.push((
        "an anonymous form token".to_owned(),
        csrf_token(&page).expect("token"),
    ));
    secrets.push((
        "an anonymous form id".to_owned(),
        visitor.cookie("gatehouse-form"),
    ));
    // Once every email has gone.
    app.wait_until_sent().await;
    // An email that never went out: while queued its row holds the link
    // (it must, to be sent); once it expires, nothing of the link is left.
    app.smtp.set_mode(gatehouse_testkit::SinkMode::TempFail);
    app.browser().request_recovery(JANE.recovery()).await;
    app.settle().await;
    let stuck = app.wait_for_a_failed_try("jane.smith@nhs.net").await;
    let url = app.database_url();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("open");
    let queued: Option<String> = sqlx::query_scalar("SELECT text_body FROM outbox WHERE id = $1")
        .bind(stuck.id)
        .fetch_one(&pool)
        .await
        .expect("the queued row");
    let queued = queued.expect("a queued email has its body");
    let prefix = format!("{PUBLIC_URL}/reset/");
    let never_sent: String = queued
        .split(prefix.as_str())
        .nth(1)
        .expect("the queued body has a link")
        .chars()
        .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '-' || *ch == '_')
        .collect();
    secrets.push(("an expired email's reset token".to_owned(), never_sent));
    app.smtp.set_mode(gatehouse_testkit::SinkMode::Accept);
    app.advance(Span::hours(5));
    app.gatehouse.wake_outbox();
    app.wait_for_email("jane.smith@nhs.net", |e| e.status.as_str() == "expired")
        .await;

    let snapshot = snapshot(&url).await;
    let tables: Vec<String> = snapshot.keys().cloned().collect();
    let dump: String = snapshot
        .values()
        .flatten()
        .flatten()
        .map(|v| format!("{v}\n"))
        .collect();
    for expected in [
        "accounts",
        "sessions",
        "reset_links",
        "outbox",
        "audit_events",
    ] {
        assert!(tables.iter().any(|t| t == expected), "{tables:?}");
    }
    // The dump does read the values (so an absence below means something).
    for known in [
        "carl.brown@nhs.net",
        "$argon2id$",
        "email.sent",
        "sign_in.failed",
    ] {
        assert!(dump.contains(known), "the dump has no {known:?}");
    }
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what}");
        assert!(!dump.contains(secret.as_str()), "{what} is stored");
        // Nor any case variant of a password (a careless lower-casing).
        assert!(
            !dump.to_lowercase().contains(&secret.to_lowercase()),
            "{what} is stored (in another case)"
        );
    }
    // Every password hash, current or past, is a PHC argon2id string.
    let hashes: Vec<Option<String>> = sqlx::query_scalar("SELECT password_hash FROM accounts")
        .fetch_all(&pool)
        .await
        .expect("hashes");
    let set: Vec<String> = hashes.into_iter().flatten().collect();
    assert_eq!(set.len(), 2, "Carl and Amir");
    let history: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM password_history")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    for hash in set.iter().chain(&history) {
        assert!(hash.starts_with("$argon2id$v=19$m="), "{hash}");
        assert_eq!(
            hash.split('$').count(),
            6,
            "PHC: $id$v$params$salt$hash: {hash}"
        );
    }
    pool.close().await;
}

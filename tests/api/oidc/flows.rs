//! What a person meets when an application signs them in through
//! Gatehouse: the login page with its lockout and recovery, first-time
//! access, the second factor, consent; and what the operator does:
//! registering clients, rotating secrets and keys, forward auth for nginx.

use gatehouse_domain::{Role, Span};
use serde_json::Value;

use super::*;

/// Follows a browser's redirects on Gatehouse until one leaves for the
/// client; panics on a page.
async fn follow(rp: &Rp, browser: &Browser, mut response: reqwest::Response) -> Callback {
    for _ in 0..5 {
        assert_eq!(response.status(), 303, "{:?}", response.headers());
        let location = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        if location.starts_with(&rp.redirect_uri) {
            return Callback::read(&location);
        }
        response = browser.get(&location).await;
    }
    panic!("no way back to the client");
}

/// A person with no password yet opens an application: from its login
/// page, "Forgotten | Request Username/Password | Unlock Account", the
/// email and the reset form lead back to the login page, and signing in
/// there sends them on to the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_time_access_inside_an_applications_sign_in_ends_at_the_application() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let rp = Rp::register(&app, |_| {}).await;
    let browser = app.browser();
    let asked = browser.get(&rp.authorize_path(&[])).await;
    assert_eq!(asked.headers()["location"], "/login");
    let login = browser.page("/login").await;
    assert!(login.contains("Log in to continue to Payslips"), "{login}");
    assert!(login.contains("href=\"/recover\""));
    browser
        .request_recovery(AMIR.recovery().with_username(AMIR.username))
        .await;
    let link = reset_links(&app.recovery_email(1).await, PUBLIC_URL).remove(0);
    let next = browser
        .set_password_through(&link, AMIR.username, GOOD_PASSWORD)
        .await;
    let login = browser.page(&next).await;
    assert!(login.contains("Log in to continue to Payslips"), "{login}");
    let signed_in = browser.log_in(AMIR.username, GOOD_PASSWORD).await;
    assert_eq!(
        signed_in.headers()["location"],
        "/oauth2/authorize/continue"
    );
    let callback = follow(&rp, &browser, signed_in).await;
    assert_eq!(callback.get("state"), "state-123");
    rp.redeem(callback.get("code"), &[]).await.field("id_token");
}

/// The login page inside an application's sign-in lets its forms lead to
/// the application's address (Chromium applies `form-action` to the
/// redirects after a form), and to nowhere else; outside a flow it allows
/// only this site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_inside_a_flow_allows_exactly_the_applications_origin() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let csp = |r: &reqwest::Response| {
        r.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    let plain = app.browser().get("/login").await;
    assert!(
        csp(&plain).ends_with("form-action 'self'"),
        "{}",
        csp(&plain)
    );
    let browser = app.browser();
    browser.get(&rp.authorize_path(&[])).await;
    let inside = browser.get("/login").await;
    assert!(
        csp(&inside).ends_with("form-action 'self' http://127.0.0.1:9"),
        "{}",
        csp(&inside)
    );
    let wrong = browser.log_in(AMIR.username, "not the password").await;
    assert!(csp(&wrong).ends_with("form-action 'self' http://127.0.0.1:9"));
}

/// The lockout is the same inside a flow: three wrong passwords lock the
/// account, and no code is issued until the lock ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_passwords_inside_a_flow_lock_the_account_as_anywhere() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let browser = app.browser();
    browser.get(&rp.authorize_path(&[])).await;
    for _ in 0..3 {
        assert_eq!(
            browser
                .log_in(AMIR.username, "wrong password")
                .await
                .status(),
            200
        );
    }
    let locked = browser.log_in(AMIR.username, GOOD_PASSWORD).await;
    assert_eq!(locked.status(), 200);
    let page = locked.text().await.expect("body");
    assert!(page.contains("Your account is locked until"), "{page}");
    app.advance(Span::hours(12));
    let callback = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
    assert!(callback.params.contains_key("code"));
}

/// A helpdesk or admin person passes their second factor before the
/// application gets a code; the ID token says so (`amr` otp, `acr` aal2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_person_passes_the_second_factor_first_and_the_token_says_so() {
    let app = TestApp::spawn().await;
    let (_, enrolment) = app.console_as(Role::Helpdesk).await;
    let rp = Rp::register(&app, |_| {}).await;
    app.advance(Span::from_seconds(60));
    let browser = app.browser();
    browser.get(&rp.authorize_path(&[])).await;
    let signed_in = browser.log_in(AMIR.username, GOOD_PASSWORD).await;
    assert_eq!(
        signed_in.headers()["location"],
        "/oauth2/authorize/continue"
    );
    let asked = browser.get("/oauth2/authorize/continue").await;
    assert_eq!(asked.headers()["location"], "/console/second-factor");
    let page = browser.get("/console/second-factor").await;
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .ends_with("http://127.0.0.1:9")
    );
    let passed = browser.send_code(&app.code_now(&enrolment.secret)).await;
    assert_eq!(passed.headers()["location"], "/oauth2/authorize/continue");
    let callback = follow(
        &rp,
        &browser,
        browser.get("/oauth2/authorize/continue").await,
    )
    .await;
    let tokens = rp.redeem(callback.get("code"), &[]).await;
    let claims = rp.id_token_claims(&tokens.field("id_token")).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "aal2");
    let info = rp
        .tokens_for(&browser, &[("scope", "openid staff")], AMIR_SIGNS_IN)
        .await;
    let info = rp.userinfo(&info.field("access_token")).await;
    assert_eq!(info.body["roles"], serde_json::json!(["helpdesk"]));
}

/// An application registered to ask consent shows the consent page once;
/// "Do not allow" sends `access_denied` back; what was allowed is
/// remembered, and `prompt=consent` asks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_is_asked_once_remembered_and_a_refusal_goes_back_as_access_denied() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    let rp = Rp::register(&app, |c| {
        c.name = "Rota planner".to_owned();
        c.consent = true;
    })
    .await;
    let browser = app.browser();
    assert_eq!(
        browser.log_in(AMIR.username, GOOD_PASSWORD).await.status(),
        303
    );
    let path = rp.authorize_path(&[("scope", "openid email")]);
    let asked = browser.get(&path).await;
    assert_eq!(asked.status(), 200);
    let page = asked.text().await.expect("body");
    assert!(
        page.contains("Allow Rota planner to sign you in?"),
        "{page}"
    );
    assert!(page.contains("your email address"), "{page}");
    let token = csrf_token(&page).expect("form");
    let denied = browser
        .post_form("/oauth2/consent", &token, &[("decision", "deny")])
        .await;
    let denied = Callback::read(denied.headers()["location"].to_str().expect("location"));
    assert_eq!(denied.get("error"), "access_denied");
    assert_eq!(denied.get("state"), "state-123");

    browser.get(&path).await;
    let allowed = browser
        .post_form("/oauth2/consent", &token, &[("decision", "allow")])
        .await;
    let allowed = Callback::read(allowed.headers()["location"].to_str().expect("location"));
    rp.redeem(allowed.get("code"), &[])
        .await
        .field("access_token");
    assert_eq!(
        audit_events(&app, "application.consent_given").await.len(),
        1
    );
    let again = browser.get(&path).await;
    assert_eq!(again.status(), 303, "remembered: no page");
    let wider = browser
        .get(&rp.authorize_path(&[("scope", "openid email staff")]))
        .await;
    assert_eq!(wider.status(), 200, "more than was allowed: asked again");
    let forced = browser
        .get(&rp.authorize_path(&[("scope", "openid email"), ("prompt", "consent")]))
        .await;
    assert_eq!(forced.status(), 200, "prompt=consent asks again");
    let none = rp
        .sign_in(
            &browser,
            &[("scope", "openid email staff"), ("prompt", "none")],
            None,
        )
        .await;
    assert_eq!(none.get("error"), "consent_required");
}

/// A client that is disabled signs nobody in (Gatehouse's own page), cannot
/// redeem or refresh, and the tokens it holds stop answering; enabled
/// again, it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_client_signs_nobody_in_and_its_tokens_stop_answering() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let tokens = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    assert!(
        app.gatehouse
            .set_client_disabled(OPERATOR, &rp.id, true)
            .await
            .expect("disable")
    );
    let page = app.browser().get(&rp.authorize_path(&[])).await;
    assert_eq!(page.status(), 400);
    assert!(page.headers().get("location").is_none());
    assert_eq!(rp.userinfo(&tokens.field("access_token")).await.status, 401);
    let refused = rp.refresh(&tokens.field("refresh_token")).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"], "invalid_client");
    app.gatehouse
        .set_client_disabled(OPERATOR, &rp.id, false)
        .await
        .expect("enable");
    assert_eq!(rp.userinfo(&tokens.field("access_token")).await.status, 200);
}

/// nginx's `auth_request`: a signed-in person's username, name, email,
/// employer and role in headers; anyone else 401 with the login page and
/// the way back in `Location`; back on this origin only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_answers_with_the_person_or_sends_them_to_log_in_and_back() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    let browser = app.browser();
    let asked = browser
        .http()
        .get(browser.url("/auth/verify"))
        .header("x-original-uri", "/payslips/2026?month=11")
        .send()
        .await
        .expect("verify");
    assert_eq!(asked.status(), 401);
    assert_eq!(
        asked.headers()["location"],
        "http://gatehouse.test/login?next=%2Fpayslips%2F2026%3Fmonth%3D11"
    );
    let signed_in = browser
        .log_in_from(
            "/login?next=%2Fpayslips%2F2026%3Fmonth%3D11",
            AMIR.username,
            GOOD_PASSWORD,
        )
        .await;
    assert_eq!(signed_in.headers()["location"], "/payslips/2026?month=11");
    let verified = browser.get("/auth/verify").await;
    assert_eq!(verified.status(), 200);
    let h = verified.headers();
    assert_eq!(h["x-gatehouse-username"], AMIR.username);
    assert_eq!(h["x-gatehouse-email"], AMIR.email);
    assert_eq!(h["x-gatehouse-name"], "Amir Khan");
    assert_eq!(h["x-gatehouse-employer"], "Demo Hospital NHS Trust");
    assert_eq!(h["x-gatehouse-roles"], "staff");

    // Somewhere else is never where a sign-in leads.
    for elsewhere in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let other = app.browser();
        let page = other
            .page(&format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(elsewhere.as_bytes()).collect::<String>()
            ))
            .await;
        assert!(!page.contains("name=\"next\""), "{elsewhere}");
        let token = csrf_token(&page).expect("form");
        let r = other
            .post_form(
                "/login",
                &token,
                &[
                    ("username", AMIR.username),
                    ("password", GOOD_PASSWORD),
                    ("next", elsewhere),
                ],
            )
            .await;
        assert_eq!(r.headers()["location"], "/account", "{elsewhere}");
    }
}

/// Wrong client secrets are audited and, past ten from one address in 15
/// minutes, that address is refused for the client (even with the right
/// secret) until the window ends; other clients are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_client_secrets_are_audited_and_throttled_per_client() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let other = Rp::register(&app, |_| {}).await;
    let wrong = Rp {
        secret: Some(
            gatehouse_domain::SecretToken::generate()
                .expect("random")
                .encode(),
        ),
        ..rp.clone()
    };
    let tokens = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    for _ in 0..10 {
        let r = wrong.refresh("x").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.headers["www-authenticate"], "Basic realm=\"gatehouse\"");
    }
    assert_eq!(audit_events(&app, "client.auth_failed").await.len(), 10);
    let throttled = rp.refresh(&tokens.field("refresh_token")).await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    let fine = other.refresh("not-a-token").await;
    assert_eq!(
        fine.body["error"], "invalid_grant",
        "another client is untouched"
    );
    app.advance(Span::minutes(16));
    assert_eq!(rp.refresh(&tokens.field("refresh_token")).await.status, 200);
}

/// Public clients (no secret) must use PKCE, and browsers at their
/// registered origins may call the token, userinfo, JWKS and revocation
/// endpoints (CORS); no other origin may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_clients_use_pkce_and_get_cors_for_their_own_origin_only() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    let spa = Rp::register(&app, |c| {
        c.public = true;
        c.redirect_uris = vec!["http://localhost:5173/callback".to_owned()];
    })
    .await;
    assert!(spa.secret.is_none());
    let no_pkce = spa.sign_in(&app.browser(), &[], None).await;
    assert_eq!(no_pkce.get("error"), "invalid_request");
    let (verifier, challenge) = pkce();
    let callback = spa
        .sign_in(
            &app.browser(),
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            Some(AMIR_SIGNS_IN),
        )
        .await;
    let tokens = spa
        .redeem(callback.get("code"), &[("code_verifier", &verifier)])
        .await;
    tokens.field("access_token");
    let http = reqwest::Client::new();
    for path in [
        "/oauth2/token",
        "/oauth2/userinfo",
        "/oauth2/jwks",
        "/oauth2/revoke",
    ] {
        let allowed = http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "http://localhost:5173")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("preflight");
        assert_eq!(allowed.status(), 204, "{path}");
        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            "http://localhost:5173",
            "{path}"
        );
        let refused = http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("preflight");
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path}"
        );
    }
}

/// Access tokens live `GATEHOUSE_ACCESS_TOKEN_LIFETIME`; refresh tokens
/// never outlive the Gatehouse session's absolute lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_expire_and_refresh_tokens_end_with_the_session() {
    let app = TestApp::spawn_with(&[("GATEHOUSE_ACCESS_TOKEN_LIFETIME", "2m")]).await;
    let rp = amir_and_client(&app).await;
    let tokens = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    assert_eq!(tokens.body["expires_in"], 120);
    let access = tokens.field("access_token");
    app.advance(Span::minutes(3));
    assert_eq!(rp.userinfo(&access).await.status, 401, "expired");
    let mut refresh = tokens.field("refresh_token");
    for _ in 0..5 {
        app.advance(Span::hours(2));
        let next = rp.refresh(&refresh).await;
        refresh = next.field("refresh_token");
    }
    app.advance(Span::hours(2));
    let ended = rp.refresh(&refresh).await;
    assert_eq!(ended.status, 400, "12 hours after sign-in: {}", ended.body);
    assert_eq!(ended.body["error"], "invalid_grant");
}

/// Token revocation (RFC 7009): a refresh token revokes its grant (its
/// access tokens too); an access token only itself; another client's
/// token, or garbage, is answered 200 and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_takes_back_what_the_client_names_and_nothing_else() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let other = Rp::register(&app, |_| {}).await;
    let revoke = |client: &Rp, token: String| {
        let client = client.clone();
        async move {
            let http = reqwest::Client::new();
            let r = http
                .post(format!("{}/oauth2/revoke", client.base))
                .basic_auth(&client.id, client.secret.as_deref())
                .form(&[("token", token.as_str())])
                .send()
                .await
                .expect("revoke");
            r.status().as_u16()
        }
    };
    let first = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    assert_eq!(revoke(&other, first.field("refresh_token")).await, 200);
    assert_eq!(revoke(&rp, "garbage".to_owned()).await, 200);
    assert_eq!(
        rp.userinfo(&first.field("access_token")).await.status,
        200,
        "untouched"
    );
    assert_eq!(revoke(&rp, first.field("access_token")).await, 200);
    assert_eq!(rp.userinfo(&first.field("access_token")).await.status, 401);
    let refreshed = rp.refresh(&first.field("refresh_token")).await;
    let access = refreshed.field("access_token");
    assert_eq!(rp.userinfo(&access).await.status, 200, "the grant lives on");
    assert_eq!(revoke(&rp, refreshed.field("refresh_token")).await, 200);
    assert_eq!(
        rp.userinfo(&access).await.status,
        401,
        "the grant is revoked"
    );
    assert_eq!(
        audit_events(&app, "application.token_revoked").await.len(),
        2
    );
}

/// A new signing key is published at once and signs only later; the old
/// one keeps signing until then and stays published until its last token
/// has expired. `--immediately` switches at once and withdraws the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_is_published_before_it_signs_and_the_old_one_after() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let kid = |token: &str| header_of(token)["kid"].as_str().expect("kid").to_owned();
    let published = || async {
        let jwks: Value = app
            .browser()
            .get("/oauth2/jwks")
            .await
            .json()
            .await
            .expect("json");
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect::<Vec<_>>()
    };
    let before = kid(&rp
        .tokens_for(&app.browser(), &[], AMIR_SIGNS_IN)
        .await
        .field("id_token"));
    let made = app
        .gatehouse
        .rotate_signing_keys(OPERATOR, false)
        .await
        .expect("rotate");
    let new_rs = made
        .iter()
        .find(|(alg, _)| alg.as_str() == "RS256")
        .expect("RS256")
        .1
        .clone();
    assert!(published().await.contains(&new_rs), "published at once");
    let still = kid(&rp
        .tokens_for(&app.browser(), &[], AMIR_SIGNS_IN)
        .await
        .field("id_token"));
    assert_eq!(
        still, before,
        "the old key signs until the new one is fetched"
    );
    app.advance(Span::minutes(11));
    let after = kid(&rp
        .tokens_for(&app.browser(), &[], AMIR_SIGNS_IN)
        .await
        .field("id_token"));
    assert_eq!(after, new_rs);
    assert!(
        published().await.contains(&before),
        "the old key's tokens still verify"
    );
    app.advance(Span::minutes(20));
    assert!(
        !published().await.contains(&before),
        "withdrawn once they expired"
    );

    app.gatehouse
        .rotate_signing_keys(OPERATOR, true)
        .await
        .expect("rotate at once");
    let keys = published().await;
    assert!(!keys.contains(&new_rs), "withdrawn at once: {keys:?}");
    let now = kid(&rp
        .tokens_for(&app.browser(), &[], AMIR_SIGNS_IN)
        .await
        .field("id_token"));
    assert!(keys.contains(&now));
    assert_eq!(
        audit_events(&app, "service.signing_keys_rotated")
            .await
            .len(),
        2
    );
}

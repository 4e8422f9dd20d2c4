//! Signing out: an application sending the person to Gatehouse's
//! end-session endpoint (the conformance suite's
//! `oidcc-rp-initiated-logout-certification-test-plan`, one test per
//! module), and Gatehouse telling applications that a session ended
//! (`oidcc-backchannel-rp-initiated-logout-certification-test-plan`, and
//! every other way a session ends).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use gatehouse_domain::Span;
use serde_json::Value;

use super::*;

/// A client's back-channel logout address: an HTTP server on loopback that
/// keeps every logout token posted to it, and answers `status`.
#[derive(Clone)]
struct Receiver {
    tokens: Arc<Mutex<Vec<String>>>,
    status: Arc<Mutex<u16>>,
    url: String,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/backchannel-logout",
            listener.local_addr().expect("address")
        );
        let receiver = Self {
            tokens: Arc::default(),
            status: Arc::new(Mutex::new(200)),
            url,
        };
        let app = axum::Router::new()
            .route(
                "/backchannel-logout",
                axum::routing::post(
                    |State(r): State<Receiver>,
                     axum::Form(form): axum::Form<Vec<(String, String)>>| async move {
                        let token = form
                            .into_iter()
                            .find(|(k, _)| k == "logout_token")
                            .map(|(_, v)| v)
                            .unwrap_or_default();
                        r.tokens.lock().expect("lock").push(token);
                        let status = *r.status.lock().expect("lock");
                        axum::http::StatusCode::from_u16(status).expect("status")
                    },
                ),
            )
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    fn answer(&self, status: u16) {
        *self.status.lock().expect("lock") = status;
    }

    fn count(&self) -> usize {
        self.tokens.lock().expect("lock").len()
    }

    /// Waits for the `n`-th token (1-based) and returns it.
    async fn token(&self, n: usize) -> String {
        for _ in 0..200 {
            if let Some(t) = self.tokens.lock().expect("lock").get(n - 1) {
                return t.clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("logout token {n} never came");
    }
}

/// A client with a back-channel logout address and a post-logout address,
/// Amir signed in to it in a browser: the client, its receiver, the browser
/// and the ID token.
async fn signed_in_with_logout(app: &TestApp) -> (Rp, Receiver, Browser, String) {
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    let receiver = Receiver::start().await;
    let url = receiver.url.clone();
    let rp = Rp::register(app, |c| {
        c.backchannel_logout_uri = Some(url);
        c.post_logout_redirect_uris = vec!["http://127.0.0.1:9/bye".to_owned()];
    })
    .await;
    let browser = app.browser();
    let tokens = rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let id_token = tokens.field("id_token");
    (rp, receiver, browser, id_token)
}

/// The end-session endpoint with `params`.
fn end_session(params: &[(&str, &str)]) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/oauth2/logout?{query}")
}

/// Whether the browser is still signed in to Gatehouse.
async fn signed_in(browser: &Browser) -> bool {
    browser.get("/account").await.status() == 200
}

/// OIDCCRpInitiatedLogout: with an ID token for this session, the person is
/// signed out at once and sent to the registered address with the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout() {
    let app = TestApp::spawn().await;
    let (rp, _, browser, id_token) = signed_in_with_logout(&app).await;
    let r = browser
        .get(&end_session(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
            ("state", "s-1"),
        ]))
        .await;
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/bye?state=s-1");
    assert!(!signed_in(&browser).await);
    let _ = rp;
}

/// OIDCCRpInitiatedLogoutNoState.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_no_state() {
    let app = TestApp::spawn().await;
    let (_, _, browser, id_token) = signed_in_with_logout(&app).await;
    let r = browser
        .get(&end_session(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
        ]))
        .await;
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/bye");
    assert!(!signed_in(&browser).await);
}

/// OIDCCRpInitiatedLogoutNoPostLogoutRedirectUri: signed out, and shown
/// Gatehouse's own signed-out page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_no_post_logout_redirect_uri() {
    let app = TestApp::spawn().await;
    let (_, _, browser, id_token) = signed_in_with_logout(&app).await;
    let r = browser
        .get(&end_session(&[("id_token_hint", &id_token)]))
        .await;
    assert_eq!(r.headers()["location"], "/logged-out");
    assert!(!signed_in(&browser).await);
}

/// OIDCCRpInitiatedLogoutBadLogoutRedirectUri and
/// OIDCCRpInitiatedLogoutQueryAddedToLogoutRedirectUri: an address the
/// client did not register (exactly) is never redirected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_bad_and_query_added_logout_redirect_uri() {
    let app = TestApp::spawn().await;
    let (_, _, browser, id_token) = signed_in_with_logout(&app).await;
    for uri in [
        "https://attacker.example/bye",
        "http://127.0.0.1:9/bye?foo=bar",
    ] {
        let r = browser
            .get(&end_session(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", uri),
            ]))
            .await;
        assert_eq!(r.status(), 400, "{uri}");
        assert!(r.headers().get("location").is_none());
        assert!(signed_in(&browser).await, "{uri}: nothing happened");
    }
}

/// OIDCCRpInitiatedLogoutModifiedIdTokenHint and
/// OIDCCRpInitiatedLogoutBadIdTokenHint: a hint this service did not sign,
/// or signed and then altered, is refused on Gatehouse's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_modified_and_bad_id_token_hint() {
    let app = TestApp::spawn().await;
    let (_, _, browser, id_token) = signed_in_with_logout(&app).await;
    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"iss":"http://gatehouse.test","sub":"someone","aud":"x"}"#);
    let modified = parts.join(".");
    let (other, _) = gatehouse_domain::oidc::jose::SigningKey::generate(
        gatehouse_domain::oidc::jose::SigningAlg::Rs256,
    )
    .expect("key");
    let foreign = other
        .sign(None, &serde_json::json!({"iss": ISSUER, "sub": "x"}))
        .expect("sign");
    for hint in [modified.as_str(), foreign.as_str(), "not.a.token"] {
        let r = browser
            .get(&end_session(&[
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
            ]))
            .await;
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
        assert!(signed_in(&browser).await);
    }
}

/// OIDCCRpInitiatedLogoutNoIdTokenHint: with an address but no hint (and
/// no client id to check it against), nothing is redirected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_no_id_token_hint() {
    let app = TestApp::spawn().await;
    let (_, _, browser, _) = signed_in_with_logout(&app).await;
    let r = browser
        .get(&end_session(&[(
            "post_logout_redirect_uri",
            "http://127.0.0.1:9/bye",
        )]))
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(signed_in(&browser).await);
}

/// OIDCCRpInitiatedLogoutNoParams and OIDCCRpInitiatedLogoutOnlyState:
/// without a hint the person is asked (a link elsewhere must not sign them
/// out), and once they say yes they are signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_rp_initiated_logout_no_params_and_only_state() {
    let app = TestApp::spawn().await;
    let (_, _, browser, _) = signed_in_with_logout(&app).await;
    for params in [vec![], vec![("state", "s-2")]] {
        let asked = browser.get(&end_session(&params)).await;
        assert_eq!(asked.status(), 200);
        let page = asked.text().await.expect("body");
        assert!(
            page.contains("Log out of Electronic Staff Record?"),
            "{page}"
        );
        assert!(signed_in(&browser).await, "only asked");
    }
    let token = browser.form_token("/account").await;
    let done = browser
        .post_form("/oauth2/logout/confirm", &token, &[("state", "s-2")])
        .await;
    assert_eq!(done.headers()["location"], "/logged-out");
    assert!(!signed_in(&browser).await);
}

/// Checks a logout token as a client must (Back-Channel Logout 1.0 §2.6):
/// signed by a published key, `typ` logout+jwt, for this client, from this
/// issuer, with the event, a `jti`, `sid` and `sub`, and no `nonce`.
async fn checked_logout_token(rp: &Rp, token: &str) -> Value {
    assert_eq!(header_of(token)["typ"], "logout+jwt");
    let claims = verify_with_jwks(&rp.base, token).await;
    assert_eq!(claims["iss"], rp.issuer.as_str());
    assert_eq!(claims["aud"], rp.id.as_str());
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    for required in ["iat", "exp", "jti", "sid", "sub"] {
        assert!(claims.get(required).is_some(), "{required}: {claims}");
    }
    assert!(claims.get("nonce").is_none());
    claims
}

/// OIDCCBackChannelRpInitiatedLogout: signing out through the end-session
/// endpoint posts a logout token naming the session (`sid`) and person
/// (`sub`) of the ID token to the client; its grant is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_backchannel_rp_initiated_logout() {
    let app = TestApp::spawn().await;
    let (rp, receiver, browser, id_token) = signed_in_with_logout(&app).await;
    let id_claims = rp.id_token_claims(&id_token).await;
    browser
        .get(&end_session(&[("id_token_hint", &id_token)]))
        .await;
    let claims = checked_logout_token(&rp, &receiver.token(1).await).await;
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert_eq!(claims["sub"], id_claims["sub"]);
}

/// Everything that ends a person's sessions ends what applications hold
/// and tells them: signing out, a password reset, an email change,
/// disabling the account, the helpdesk's "end all sessions", and a full
/// staff-file import the person is missing from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_a_session_ends_revokes_the_refresh_token_and_tells_the_application() {
    let app = TestApp::spawn().await;
    let (rp, receiver, browser, _) = signed_in_with_logout(&app).await;
    let g = &app.gatehouse;
    let mut told = 0;
    let mut check = |label: &'static str| {
        told += 1;
        let n = told;
        let rp = rp.clone();
        let receiver = receiver.clone();
        async move {
            checked_logout_token(&rp, &receiver.token(n).await).await;
            label
        }
    };
    // 1. Signing out at Gatehouse.
    let tokens = rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let token = browser.form_token("/account").await;
    browser.post_form("/logout", &token, &[]).await;
    check("sign out").await;
    assert_eq!(rp.refresh(&tokens.field("refresh_token")).await.status, 400);

    // 2. A password reset.
    let browser = app.browser();
    let tokens = rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    app.set_password(&AMIR, "another good password here").await;
    check("password reset").await;
    assert_eq!(rp.refresh(&tokens.field("refresh_token")).await.status, 400);

    // 3. The helpdesk ends all sessions.
    let who = (AMIR.username, "another good password here");
    let tokens = rp.tokens_for(&app.browser(), &[], who).await;
    g.end_sessions(AMIR.username, OPERATOR, "lost phone")
        .await
        .expect("runs")
        .expect("ended");
    check("end all sessions").await;
    assert_eq!(rp.refresh(&tokens.field("refresh_token")).await.status, 400);

    // 4. An email change.
    let tokens = rp.tokens_for(&app.browser(), &[], who).await;
    g.change_email(AMIR.username, "amir.k@nhs.net", OPERATOR, "married")
        .await
        .expect("runs")
        .expect("changed");
    check("email change").await;
    assert_eq!(rp.refresh(&tokens.field("refresh_token")).await.status, 400);

    // 5. Disabling the account.
    let tokens = rp.tokens_for(&app.browser(), &[], who).await;
    g.set_account_disabled(AMIR.username, true, OPERATOR, "left")
        .await
        .expect("runs")
        .expect("disabled");
    check("disabled").await;
    assert_eq!(rp.refresh(&tokens.field("refresh_token")).await.status, 400);

    // 6. A full staff-file import he is missing from: a leaver.
    g.set_account_disabled(AMIR.username, false, OPERATOR, "back")
        .await
        .expect("runs")
        .expect("enabled");
    let tokens = rp.tokens_for(&app.browser(), &[], who).await;
    let without_amir: String = STAFF
        .lines()
        .filter(|line| !line.contains("Amir"))
        .map(|line| format!("{line}\n"))
        .collect();
    let full = gatehouse_core::import::ImportOptions {
        dry_run: false,
        full: Some(gatehouse_domain::import::FullImport::default()),
        ..Default::default()
    };
    let report = g
        .import_staff_with(without_amir.as_bytes(), &full, OPERATOR)
        .await
        .expect("runs")
        .expect("imported");
    assert_eq!(report.summary.leavers.len(), 1);
    check("a leaver").await;
    assert_eq!(rp.refresh(&tokens.field("refresh_token")).await.status, 400);
    assert_eq!(receiver.count(), 6, "one notice each, none twice");
}

/// An application that is down hears of the sign-out when it is back: the
/// notice is retried on the outbox's schedule; after a day it is given up,
/// and that is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_to_an_application_that_is_down_is_retried_then_given_up() {
    let app = TestApp::spawn().await;
    let (rp, receiver, browser, _) = signed_in_with_logout(&app).await;
    receiver.answer(503);
    let token = browser.form_token("/account").await;
    browser.post_form("/logout", &token, &[]).await;
    receiver.token(1).await;
    receiver.answer(200);
    app.advance(Span::from_seconds(30));
    app.gatehouse.wake_logout_notices();
    checked_logout_token(&rp, &receiver.token(2).await).await;
    assert_eq!(receiver.count(), 2, "delivered once it answered");

    // Down for more than a day.
    receiver.answer(500);
    let browser = app.browser();
    rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let token = browser.form_token("/account").await;
    browser.post_form("/logout", &token, &[]).await;
    receiver.token(3).await;
    app.advance(Span::hours(25));
    app.gatehouse.wake_logout_notices();
    for _ in 0..200 {
        if !audit_events(&app, "application.logout_notice_failed")
            .await
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let failed = audit_events(&app, "application.logout_notice_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("answered 500"),
        "{:?}",
        failed[0].detail
    );
}

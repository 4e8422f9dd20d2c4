//! The OpenID Foundation's conformance suite, mirrored: one test per module
//! of its `oidcc-basic-certification-test-plan` and
//! `oidcc-config-certification-test-plan`, each named after the module and
//! checking what the module checks. (The suite itself needs containers this
//! build cannot fetch; docs/applications.md lists every module with its
//! status.)

use serde_json::Value;

use super::*;

/// OIDCCServerTest: the code flow end to end with `client_secret_basic`;
/// `state` and `iss` come back, the ID token is signed by a published key
/// and carries `iss`, `aud`, `exp`, `iat`, `nonce`, `auth_time`; userinfo
/// names the same subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_server_test() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let callback = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
    assert_eq!(callback.to, REDIRECT);
    assert_eq!(callback.get("state"), "state-123");
    assert_eq!(callback.get("iss"), ISSUER, "RFC 9207");
    let tokens = rp.redeem(callback.get("code"), &[]).await;
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["expires_in"], 600);
    assert_eq!(tokens.headers["cache-control"], "no-store");
    let claims = rp.id_token_claims(&tokens.field("id_token")).await;
    assert_eq!(claims["nonce"], "nonce-456");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["acr"], "aal1");
    let info = rp.userinfo(&tokens.field("access_token")).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["sub"], claims["sub"]);
}

/// OIDCCServerTestClientSecretPost: the same with the secret in the form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_server_test_client_secret_post() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let callback = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
    let secret = rp.secret.clone().expect("confidential");
    let posted = Rp {
        secret: None,
        ..rp.clone()
    };
    let tokens = posted
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", callback.get("code")),
            ("redirect_uri", REDIRECT),
            ("client_id", &rp.id),
            ("client_secret", &secret),
        ])
        .await;
    rp.id_token_claims(&tokens.field("id_token")).await;
}

/// OIDCCResponseTypeMissing: no `response_type` is an error sent back to
/// the client, with its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_response_type_missing() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let callback = rp
        .sign_in(&app.browser(), &[("response_type", "")], None)
        .await;
    assert_eq!(callback.get("error"), "invalid_request");
    assert_eq!(callback.get("state"), "state-123");
    assert_eq!(callback.get("iss"), ISSUER, "iss on errors too");
}

/// OIDCCIdTokenSignature: the ID token's header names a published key
/// (`kid`) and an algorithm it verifies under, RS256 by default and ES256
/// for a client registered for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_id_token_signature() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let es = Rp::register(&app, |c| c.signing_alg = Some("ES256".to_owned())).await;
    for (client, alg) in [(&rp, "RS256"), (&es, "ES256")] {
        let tokens = client.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
        let token = tokens.field("id_token");
        let header = header_of(&token);
        assert_eq!(header["alg"], alg);
        assert!(header["kid"].is_string(), "{header}");
        client.id_token_claims(&token).await;
    }
}

/// OIDCCIdTokenUnsigned: unsigned ID tokens (`alg: none`) are not offered,
/// and a client cannot be registered for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_id_token_unsigned() {
    let app = TestApp::spawn().await;
    let discovery = discovery(&app).await;
    let algs = discovery["id_token_signing_alg_values_supported"].to_string();
    assert!(!algs.contains("none"), "{algs}");
    let refused = app
        .gatehouse
        .register_client(
            OPERATOR,
            &NewClient {
                name: "Unsigned".to_owned(),
                redirect_uris: vec![REDIRECT.to_owned()],
                signing_alg: Some("none".to_owned()),
                ..NewClient::default()
            },
        )
        .await
        .expect("runs");
    assert!(refused.is_err(), "alg none is refused");
}

/// OIDCCUserInfoGet, OIDCCUserInfoPostHeader, OIDCCUserInfoPostBody: the
/// access token as a bearer token in a GET, in a POST's header, and in a
/// POST's body; each names the ID token's subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_user_info_get_post_header_and_post_body() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let tokens = rp
        .tokens_for(
            &app.browser(),
            &[("scope", "openid profile")],
            AMIR_SIGNS_IN,
        )
        .await;
    let sub = rp.id_token_claims(&tokens.field("id_token")).await["sub"].clone();
    let access = tokens.field("access_token");
    let http = reqwest::Client::new();
    let url = app.url("/oauth2/userinfo");
    let get = answer(
        http.get(&url)
            .bearer_auth(&access)
            .send()
            .await
            .expect("GET"),
    )
    .await;
    let header = answer(
        http.post(&url)
            .bearer_auth(&access)
            .send()
            .await
            .expect("POST"),
    )
    .await;
    let body = answer(
        http.post(&url)
            .form(&[("access_token", access.as_str())])
            .send()
            .await
            .expect("POST body"),
    )
    .await;
    for (how, info) in [("GET", get), ("POST header", header), ("POST body", body)] {
        assert_eq!(info.status, 200, "{how}: {}", info.body);
        assert_eq!(info.body["sub"], sub, "{how}");
        assert_eq!(info.body["preferred_username"], AMIR.username, "{how}");
    }
    // Never from a GET's query: addresses are logged.
    let query = http
        .get(format!("{url}?access_token={access}"))
        .send()
        .await
        .expect("GET query");
    assert_eq!(query.status(), 401);
}

/// OIDCCEnsureRequestWithoutNonceSucceedsForCodeFlow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let tokens = rp
        .tokens_for(&app.browser(), &[("nonce", "")], AMIR_SIGNS_IN)
        .await;
    let claims = rp.id_token_claims(&tokens.field("id_token")).await;
    assert!(claims.get("nonce").is_none(), "{claims}");
}

/// The userinfo claims for `scope`.
async fn userinfo_for(app: &TestApp, rp: &Rp, scope: &str) -> Value {
    let tokens = rp
        .tokens_for(&app.browser(), &[("scope", scope)], AMIR_SIGNS_IN)
        .await;
    let info = rp.userinfo(&tokens.field("access_token")).await;
    assert_eq!(info.status, 200, "{}", info.body);
    info.body
}

/// OIDCCScopeProfile, OIDCCScopeEmail, OIDCCScopeAddress, OIDCCScopePhone,
/// OIDCCScopeAll: each scope this service offers releases its claims; the
/// address and phone scopes, which it does not offer (no address or phone
/// is on record), are left out rather than refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_scope_profile_email_address_phone_and_all() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let profile = userinfo_for(&app, &rp, "openid profile").await;
    assert_eq!(profile["name"], "Amir Khan");
    assert_eq!(profile["given_name"], "Amir");
    assert_eq!(profile["family_name"], "Khan");
    assert!(profile.get("email").is_none(), "{profile}");
    let email = userinfo_for(&app, &rp, "openid email").await;
    assert_eq!(email["email"], AMIR.email);
    assert!(email.get("name").is_none(), "{email}");
    for unoffered in ["openid address", "openid phone"] {
        let info = userinfo_for(&app, &rp, unoffered).await;
        assert_eq!(
            info.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["sub".to_owned()]),
            "{unoffered}"
        );
    }
    let all = userinfo_for(&app, &rp, "openid profile email address phone staff").await;
    assert_eq!(all["email"], AMIR.email);
    assert_eq!(all["employer"], "Demo Hospital NHS Trust");
    assert_eq!(all["employee_number"], "D2");
    assert_eq!(all["roles"], serde_json::json!(["staff"]));
    let discovery = discovery(&app).await;
    let offered = discovery["scopes_supported"].to_string();
    assert!(
        !offered.contains("address") && !offered.contains("phone"),
        "{offered}"
    );
}

/// OIDCEnsureOtherScopeOrderSucceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_ensure_other_scope_order_succeeds() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let info = userinfo_for(&app, &rp, "email openid").await;
    assert_eq!(info["email"], AMIR.email);
}

/// OIDCCDisplayPage and OIDCCDisplayPopup: `display` is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_display_page_and_popup() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    for display in ["page", "popup"] {
        let callback = rp
            .sign_in(&app.browser(), &[("display", display)], Some(AMIR_SIGNS_IN))
            .await;
        assert!(callback.params.contains_key("code"), "{display}");
    }
}

/// OIDCCPromptLogin: signed in already, `prompt=login` asks for the
/// password again, and the new ID token's `auth_time` is the new sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_prompt_login() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let browser = app.browser();
    let first = rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let first = rp.id_token_claims(&first.field("id_token")).await;
    app.advance(gatehouse_domain::Span::from_seconds(5));
    let again = browser
        .get(&rp.authorize_path(&[("prompt", "login")]))
        .await;
    assert_eq!(
        again.headers()["location"],
        "/login",
        "asked to log in again"
    );
    let login = browser.page("/login").await;
    assert!(login.contains("Log in to continue to Payslips"), "{login}");
    let second = rp
        .tokens_for(&browser, &[("prompt", "login")], AMIR_SIGNS_IN)
        .await;
    let second = rp.id_token_claims(&second.field("id_token")).await;
    assert!(
        second["auth_time"].as_i64() > first["auth_time"].as_i64(),
        "{first} {second}"
    );
    assert_eq!(first["sub"], second["sub"]);
}

/// OIDCCPromptNoneNotLoggedIn: `login_required`, sent back, never a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_prompt_none_not_logged_in() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let callback = rp
        .sign_in(&app.browser(), &[("prompt", "none")], None)
        .await;
    assert_eq!(callback.get("error"), "login_required");
    assert_eq!(callback.get("state"), "state-123");
}

/// OIDCCPromptNoneLoggedIn: single sign-on with no page at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_prompt_none_logged_in() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let browser = app.browser();
    rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let response = browser.get(&rp.authorize_path(&[("prompt", "none")])).await;
    let callback = Callback::read(response.headers()["location"].to_str().expect("location"));
    let tokens = rp.redeem(callback.get("code"), &[]).await;
    rp.id_token_claims(&tokens.field("id_token")).await;
}

/// OIDCCMaxAge1: a sign-in older than `max_age` asks for the password
/// again, and `auth_time` is the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_max_age_1() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let browser = app.browser();
    let first = rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let first = rp.id_token_claims(&first.field("id_token")).await;
    app.advance(gatehouse_domain::Span::from_seconds(2));
    let asked = browser.get(&rp.authorize_path(&[("max_age", "1")])).await;
    assert_eq!(asked.headers()["location"], "/login");
    let second = rp
        .tokens_for(&browser, &[("max_age", "1")], AMIR_SIGNS_IN)
        .await;
    let second = rp.id_token_claims(&second.field("id_token")).await;
    assert!(second["auth_time"].as_i64() > first["auth_time"].as_i64());
}

/// OIDCCMaxAge10000: a recent sign-in is enough; `auth_time` is in the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_max_age_10000() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let browser = app.browser();
    let first = rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let first = rp.id_token_claims(&first.field("id_token")).await;
    let sso = rp.sign_in(&browser, &[("max_age", "10000")], None).await;
    let second = rp.redeem(sso.get("code"), &[]).await;
    let second = rp.id_token_claims(&second.field("id_token")).await;
    assert_eq!(second["auth_time"], first["auth_time"]);
}

/// OIDCCEnsureRequestWithUnknownParameterSucceeds, OIDCCUiLocales,
/// OIDCCClaimsLocales, OIDCCEnsureRequestWithAcrValuesSucceeds,
/// OIDCCClaimsEssential: parameters this service does not act on are
/// ignored (the `claims` parameter is not supported, as Discovery says).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_unknown_parameter_ui_locales_claims_locales_acr_values_and_claims_essential() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let essential = r#"{"userinfo":{"name":{"essential":true}}}"#;
    for extra in [
        ("extra", "foobar"),
        ("ui_locales", "cy en-GB"),
        ("claims_locales", "cy"),
        ("acr_values", "1 2"),
        ("claims", essential),
    ] {
        let callback = rp
            .sign_in(&app.browser(), &[extra], Some(AMIR_SIGNS_IN))
            .await;
        let tokens = rp.redeem(callback.get("code"), &[]).await;
        rp.id_token_claims(&tokens.field("id_token")).await;
    }
    assert_eq!(discovery(&app).await["claims_parameter_supported"], false);
}

/// OIDCCIdTokenHint: `prompt=none` with the ID token just issued as
/// `id_token_hint` signs the same person in again without a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_id_token_hint() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let browser = app.browser();
    let first = rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let hint = first.field("id_token");
    let callback = rp
        .sign_in(
            &browser,
            &[("prompt", "none"), ("id_token_hint", &hint)],
            None,
        )
        .await;
    let tokens = rp.redeem(callback.get("code"), &[]).await;
    let claims = rp.id_token_claims(&tokens.field("id_token")).await;
    assert_eq!(claims["sub"], rp.id_token_claims(&hint).await["sub"]);
}

/// OIDCCLoginHint: the login page has the hinted username filled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_login_hint() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let browser = app.browser();
    let asked = browser
        .get(&rp.authorize_path(&[("login_hint", AMIR.username)]))
        .await;
    assert_eq!(asked.headers()["location"], "/login");
    let page = browser.page("/login").await;
    assert!(
        page.contains(&format!("value=\"{}\"", AMIR.username)),
        "{page}"
    );
}

/// OIDCCAuthCodeReuse and OIDCCAuthCodeReuseAfter30Seconds: a code works
/// once; presented again (at once or 30 seconds later) it fails, and the
/// access token the first redemption gave stops working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_auth_code_reuse_and_reuse_after_30_seconds() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    for wait in [0, 30] {
        let callback = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
        let code = callback.get("code");
        let first = rp.redeem(code, &[]).await;
        let access = first.field("access_token");
        assert_eq!(rp.userinfo(&access).await.status, 200);
        app.advance(gatehouse_domain::Span::from_seconds(wait));
        let again = rp.redeem(code, &[]).await;
        assert_eq!(again.status, 400, "{wait}s: {}", again.body);
        assert_eq!(again.body["error"], "invalid_grant");
        assert_eq!(rp.userinfo(&access).await.status, 401, "{wait}s: revoked");
        let refreshed = rp.refresh(&first.field("refresh_token")).await;
        assert_eq!(refreshed.status, 400, "{wait}s: the refresh token too");
    }
    assert_eq!(audit_events(&app, "application.code_reused").await.len(), 2);
}

/// OIDCCEnsureRegisteredRedirectUri: an address the client did not register
/// is answered on Gatehouse's page; nothing is redirected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_registered_redirect_uri() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let response = app
        .browser()
        .get(&rp.authorize_path(&[("redirect_uri", "https://attacker.example/cb")]))
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.expect("body");
    assert!(page.contains("an address it has not registered"), "{page}");
}

/// OIDCCEnsurePostRequestSucceeds: the authorization request as a POST form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_post_request_succeeds() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let browser = app.browser();
    rp.tokens_for(&browser, &[], AMIR_SIGNS_IN).await;
    let query = rp.authorize_path(&[]);
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(query.split_once('?').expect("query").1.as_bytes())
            .into_owned()
            .collect();
    let response = browser
        .http()
        .post(browser.url("/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    let callback = Callback::read(response.headers()["location"].to_str().expect("location"));
    assert_eq!(callback.get("state"), "state-123");
    rp.redeem(callback.get("code"), &[]).await.field("id_token");
}

/// OIDCCRequestUriUnsignedSupportedCorrectlyOrRejectedAsUnsupported and
/// OIDCCUnsignedRequestObjectSupportedCorrectlyOrRejectedAsUnsupported:
/// request objects are not supported, and are refused as such (which also
/// leaves OIDCCEnsureRequestObjectWithRedirectUri nothing to check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_request_uri_and_request_object_rejected_as_unsupported() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    for (param, error) in [
        ("request_uri", "request_uri_not_supported"),
        ("request", "request_not_supported"),
    ] {
        let callback = rp
            .sign_in(&app.browser(), &[(param, "eyJhbGciOiJub25lIn0.e30.")], None)
            .await;
        assert_eq!(callback.get("error"), error);
    }
    let d = discovery(&app).await;
    assert_eq!(d["request_parameter_supported"], false);
    assert_eq!(d["request_uri_parameter_supported"], false);
}

/// OIDCCRefreshToken: a refresh gives new tokens for the same subject; the
/// refresh token presented is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_refresh_token() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let first = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    let first_claims = rp.id_token_claims(&first.field("id_token")).await;
    let refreshed = rp.refresh(&first.field("refresh_token")).await;
    let claims = rp.id_token_claims(&refreshed.field("id_token")).await;
    assert_eq!(claims["sub"], first_claims["sub"]);
    assert_eq!(claims["auth_time"], first_claims["auth_time"]);
    assert!(claims.get("nonce").is_none(), "no nonce on refresh");
    assert_ne!(
        refreshed.field("refresh_token"),
        first.field("refresh_token")
    );
    assert_eq!(
        rp.userinfo(&refreshed.field("access_token")).await.status,
        200
    );
}

/// OIDCCEnsureRequestWithValidPkceSucceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_ensure_request_with_valid_pkce_succeeds() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let (verifier, challenge) = pkce();
    let callback = rp
        .sign_in(
            &app.browser(),
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            Some(AMIR_SIGNS_IN),
        )
        .await;
    let tokens = rp
        .redeem(callback.get("code"), &[("code_verifier", &verifier)])
        .await;
    rp.id_token_claims(&tokens.field("id_token")).await;
}

/// The discovery document.
pub async fn discovery(app: &TestApp) -> Value {
    let response = app.browser().get("/.well-known/openid-configuration").await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// OIDCCDiscoveryEndpointVerification (the config plan, and the discovery
/// modules of the logout plans): the issuer is the public URL exactly;
/// every endpoint is on it; the required and advertised members are there;
/// the JWKS holds usable RS256 and ES256 public keys and nothing private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidcc_discovery_endpoint_verification() {
    let app = TestApp::spawn().await;
    let d = discovery(&app).await;
    assert_eq!(d["issuer"], ISSUER);
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "end_session_endpoint",
    ] {
        let url = d[endpoint].as_str().unwrap_or_default();
        assert!(url.starts_with(&format!("{ISSUER}/")), "{endpoint}: {url}");
    }
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["subject_types_supported"], serde_json::json!(["public"]));
    assert!(
        d["id_token_signing_alg_values_supported"]
            .to_string()
            .contains("RS256")
    );
    assert!(d["scopes_supported"].to_string().contains("openid"));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);
    let jwks = app.browser().get("/oauth2/jwks").await;
    assert!(
        jwks.headers()["cache-control"]
            .to_str()
            .expect("header")
            .contains("max-age"),
        "the JWKS may be cached"
    );
    let jwks: Value = jwks.json().await.expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    let algs: Vec<&str> = keys.iter().filter_map(|k| k["alg"].as_str()).collect();
    assert!(algs.contains(&"RS256") && algs.contains(&"ES256"), "{jwks}");
    for key in keys {
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].is_string());
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "{private} published: {key}");
        }
    }
}

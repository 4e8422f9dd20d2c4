//! Attacks on the provider: PKCE downgrade and mismatch, redirect address
//! variants, a code or refresh token presented by another client or twice
//! at once, `state` and `nonce` carried untouched, and no secret, key or
//! token in the logs.

use std::time::Duration;

use gatehouse_domain::Span;

use super::*;

/// PKCE (RFC 7636, RFC 9700 §2.1.1): a code issued with a challenge needs
/// its verifier; a wrong verifier fails; a verifier for a code issued
/// without a challenge is a downgrade and fails; `plain` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_downgrade_and_mismatch_are_refused() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let (verifier, challenge) = pkce();
    let (other_verifier, _) = pkce();
    let with_pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (what, extra) in [
        ("no verifier", vec![]),
        (
            "another verifier",
            vec![("code_verifier", other_verifier.as_str())],
        ),
        (
            "the challenge itself",
            vec![("code_verifier", challenge.as_str())],
        ),
    ] {
        let callback = rp
            .sign_in(&app.browser(), &with_pkce, Some(AMIR_SIGNS_IN))
            .await;
        let r = rp.redeem(callback.get("code"), &extra).await;
        assert_eq!(r.status, 400, "{what}");
        assert_eq!(r.body["error"], "invalid_grant", "{what}");
    }
    let plain = rp
        .sign_in(
            &app.browser(),
            &[
                ("code_challenge", &verifier),
                ("code_challenge_method", "plain"),
            ],
            None,
        )
        .await;
    assert_eq!(plain.get("error"), "invalid_request");
    let without = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
    let downgrade = rp
        .redeem(without.get("code"), &[("code_verifier", &verifier)])
        .await;
    assert_eq!(downgrade.body["error"], "invalid_grant", "downgrade");
}

/// Every variant of a registered address is a different address: trailing
/// slash, case, extra path, query, fragment, user info, another port or
/// scheme. Each is answered on Gatehouse's page and never redirected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_address_variants_are_never_redirected_to() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    for variant in [
        "http://127.0.0.1:9/callback/",
        "http://127.0.0.1:9/CALLBACK",
        "http://127.0.0.1:9/callback/extra",
        "http://127.0.0.1:9/callback?x=1",
        "http://127.0.0.1:9/callback#x",
        "http://user@127.0.0.1:9/callback",
        "http://127.0.0.1:10/callback",
        "https://127.0.0.1:9/callback",
        "http://localhost:9/callback",
    ] {
        let r = app
            .browser()
            .get(&rp.authorize_path(&[("redirect_uri", variant)]))
            .await;
        assert_eq!(r.status(), 400, "{variant}");
        assert!(r.headers().get("location").is_none(), "{variant}");
    }
    let r = app
        .browser()
        .get(&rp.authorize_path(&[("client_id", "no-such-client")]))
        .await;
    assert_eq!(r.status(), 400, "an unknown client");
    assert!(r.headers().get("location").is_none());
    // Redeeming needs the same address the code was sent to.
    let callback = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
    let r = rp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", callback.get("code")),
            ("redirect_uri", "http://127.0.0.1:9/callback/"),
        ])
        .await;
    assert_eq!(r.body["error"], "invalid_grant");
}

/// `state` and `nonce` come back exactly as sent, odd characters and all:
/// a client that compares them catches tampering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_nonce_come_back_exactly_as_sent() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let state = "a b&c=d/é%20\"'<x>";
    let nonce = "n&=?#é";
    let callback = rp
        .sign_in(
            &app.browser(),
            &[("state", state), ("nonce", nonce)],
            Some(AMIR_SIGNS_IN),
        )
        .await;
    assert_eq!(callback.get("state"), state);
    let tokens = rp.redeem(callback.get("code"), &[]).await;
    let claims = rp.id_token_claims(&tokens.field("id_token")).await;
    assert_eq!(claims["nonce"], nonce);
    let long = "x".repeat(513);
    let refused = rp.sign_in(&app.browser(), &[("state", &long)], None).await;
    assert_eq!(refused.get("error"), "invalid_request");
}

/// A code is bound to the client it was issued to: another client
/// presenting it fails, and the code is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_issued_to_one_client_is_refused_to_another() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let thief = Rp::register(&app, |_| {}).await;
    let callback = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
    let stolen = thief.redeem(callback.get("code"), &[]).await;
    assert_eq!(stolen.body["error"], "invalid_grant");
    let late = rp.redeem(callback.get("code"), &[]).await;
    assert_eq!(late.body["error"], "invalid_grant", "the code is spent");
    // A refresh token too: presented by another client it is treated as
    // stolen, and the grant it belongs to is revoked.
    let tokens = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    let r = thief.refresh(&tokens.field("refresh_token")).await;
    assert_eq!(r.body["error"], "invalid_grant");
    assert_eq!(rp.userinfo(&tokens.field("access_token")).await.status, 401);
}

/// An expired code is refused; a code is single-use whoever presents it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_older_than_a_minute_is_refused() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let callback = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
    app.advance(Span::from_seconds(61));
    let r = rp.redeem(callback.get("code"), &[]).await;
    assert_eq!(r.body["error"], "invalid_grant");
}

/// Thirty redemptions of one code at once: exactly one gets tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_simultaneous_redemptions_of_one_code_give_tokens_once() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let callback = rp.sign_in(&app.browser(), &[], Some(AMIR_SIGNS_IN)).await;
    let code = callback.get("code").to_owned();
    let attempts = (0..30).map(|_| {
        let rp = rp.clone();
        let code = code.clone();
        tokio::spawn(async move { rp.redeem(&code, &[]).await.status })
    });
    let statuses: Vec<u16> = futures_join(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

/// Thirty uses of one refresh token at once: one rotation, and since the
/// other 29 are reuse, the whole family is revoked (the winner's new
/// tokens too).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_simultaneous_refreshes_rotate_once_and_revoke_the_family() {
    let app = TestApp::spawn().await;
    let rp = amir_and_client(&app).await;
    let tokens = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    let refresh = tokens.field("refresh_token");
    let attempts = (0..30).map(|_| {
        let rp = rp.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            let r = rp.refresh(&refresh).await;
            (r.status, r.body)
        })
    });
    let answers: Vec<(u16, serde_json::Value)> = futures_join(attempts).await;
    let won: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    let new_refresh = won[0]["refresh_token"].as_str().expect("token");
    let new_access = won[0]["access_token"].as_str().expect("token");
    assert_eq!(
        rp.refresh(new_refresh).await.status,
        400,
        "the family is revoked"
    );
    assert_eq!(rp.userinfo(new_access).await.status, 401);
    assert!(
        !audit_events(&app, "application.refresh_token_reused")
            .await
            .is_empty()
    );
}

/// Awaits every task.
async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        out.push(t.await.expect("task"));
    }
    out
}

/// The real binary, at debug level, through a whole application sign-in
/// with a password set by the recovery flow, a refresh, userinfo,
/// revocation and sign-out: no client secret, code, token, password,
/// cookie or signing key appears in its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_key_or_token_reaches_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    let staff = dir.path().join("staff.csv");
    std::fs::write(&staff, STAFF).expect("write");
    let mut c = gatehouse_in(dir.path(), &[]);
    c.args(["import", staff.to_str().expect("utf8")]);
    assert_eq!(run_command(c).0, 0);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mail = format!("file://{}/outbox", dir.path().display());
    let server = serve_in(dir.path(), port, &mail).await;
    let mut c = gatehouse_in(dir.path(), &[]);
    c.args([
        "admin",
        "--json",
        "client",
        "add",
        "Payslips",
        "--redirect-uri",
        REDIRECT,
    ]);
    let (code, out, err) = run_command(c);
    assert_eq!(code, 0, "{err}");
    let client: serde_json::Value = serde_json::from_str(&out).expect("json");
    let secret = client["client_secret"].as_str().expect("secret").to_owned();
    let rp = Rp::at(
        &base,
        &base,
        client["client_id"].as_str().expect("id"),
        Some(&secret),
    );

    let browser = Browser::new(&base, &base);
    let asked = browser.get(&rp.authorize_path(&[])).await;
    assert_eq!(asked.headers()["location"], "/login");
    let token = browser.form_token("/recover").await;
    let recovery = AMIR.recovery().with_username(AMIR.username);
    browser
        .post_form("/recover", &token, &recovery.fields())
        .await;
    let mut link = None;
    for _ in 0..200 {
        if let Some(found) = std::fs::read_dir(dir.path().join("outbox"))
            .ok()
            .and_then(|d| d.flatten().next())
        {
            let text = std::fs::read_to_string(found.path()).expect("eml");
            let at = text.find("/reset/").expect("a link");
            link = Some(text[at..at + 7 + 43].to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let link = link.expect("the email was written");
    let opened = browser.get(&link).await;
    assert_eq!(opened.status(), 303);
    let token = browser.form_token("/reset").await;
    browser
        .post_form(
            "/reset",
            &token,
            &reset_form(AMIR.username, GOOD_PASSWORD, GOOD_PASSWORD),
        )
        .await;
    let signed_in = browser.log_in(AMIR.username, GOOD_PASSWORD).await;
    let session = browser.session_id();
    assert_eq!(
        signed_in.headers()["location"],
        "/oauth2/authorize/continue"
    );
    let back = browser.get("/oauth2/authorize/continue").await;
    let callback = Callback::read(back.headers()["location"].to_str().expect("location"));
    let code = callback.get("code").to_owned();
    let tokens = rp.redeem(&code, &[]).await;
    let refreshed = rp.refresh(&tokens.field("refresh_token")).await;
    assert_eq!(
        rp.userinfo(&refreshed.field("access_token")).await.status,
        200
    );
    let http = reqwest::Client::new();
    http.post(format!("{base}/oauth2/revoke"))
        .basic_auth(&rp.id, Some(&secret))
        .form(&[("token", refreshed.field("refresh_token"))])
        .send()
        .await
        .expect("revoke");
    let token = browser.form_token("/account").await;
    browser.post_form("/logout", &token, &[]).await;
    drop(server);

    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(log.contains("/oauth2/token"), "requests are logged");
    let db = Db::open(&format!("sqlite://{}/gatehouse.db", dir.path().display())).await;
    let keys = db.signing_keys().await;
    assert!(!keys.is_empty());
    let mut secrets = vec![
        ("client secret", secret.clone()),
        ("code", code),
        ("password", GOOD_PASSWORD.to_owned()),
        ("session", session),
        ("reset link", link[7..].to_owned()),
    ];
    for answer in [&tokens, &refreshed] {
        for field in ["access_token", "refresh_token", "id_token"] {
            secrets.push((field, answer.field(field)));
        }
    }
    for key in keys {
        use base64::Engine as _;
        secrets.push((
            "private key",
            base64::engine::general_purpose::STANDARD.encode(&key[key.len() / 2..]),
        ));
        secrets.push((
            "private key",
            key.iter().map(|b| format!("{b:02x}")).collect::<String>()[..64].to_owned(),
        ));
    }
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "the {what} is in the log");
    }
}

/// With `GATEHOUSE_KEY_ENCRYPTION_KEY` set, the private signing keys are
/// sealed in the database (keys made before it was set are sealed at the
/// next start), tokens still verify, and a process without the key, or with
/// another, refuses to start in one line naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_sealed_at_rest_once_a_key_encryption_key_is_set() {
    use base64::Engine as _;
    let app = TestApp::spawn().await;
    let plain = app.db.signing_keys().await;
    assert!(
        plain.iter().all(|k| k.first() == Some(&0x30)),
        "PKCS#8 before"
    );
    let kek = base64::engine::general_purpose::STANDARD.encode(
        gatehouse_domain::SecretToken::generate()
            .expect("random")
            .hash()
            .as_bytes(),
    );
    let app = app
        .restart(&[("GATEHOUSE_KEY_ENCRYPTION_KEY", &kek)], true)
        .await;
    let sealed = app.db.signing_keys().await;
    assert_eq!(sealed.len(), plain.len());
    for (before, after) in plain.iter().zip(&sealed) {
        assert!(after.starts_with(b"GHK1"), "sealed");
        assert!(
            !after
                .windows(32)
                .any(|w| before.windows(32).any(|p| p == w)),
            "nothing of the plain key is left"
        );
    }
    let rp = amir_and_client(&app).await;
    let tokens = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    rp.id_token_claims(&tokens.field("id_token")).await;

    let (code, _, err) = gatehouse_cli(&app, &["admin", "client", "list"]).await;
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: GATEHOUSE_KEY_ENCRYPTION_KEY: "),
        "{err}"
    );
    let other = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let out = tokio::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATABASE_URL", app.database_url())
        .env("GATEHOUSE_KEY_ENCRYPTION_KEY", &other)
        .args(["admin", "client", "list"])
        .output()
        .await
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not open the signing keys"), "{err}");
    assert!(!err.contains(&other), "{err}");
}

//! Passkeys: adding, listing and removing them; signing in with one (also
//! while the password is locked, counting nothing); what is refused (a
//! replayed assertion, another account's passkey, a wrong origin or
//! relying party, a counter that went backwards, a ceremony used twice or
//! too late); a passkey as a helpdesk or admin member's second factor; the
//! operator removing them; and a ceremony finished on another node.

use gatehouse_domain::{Role, Span};

use crate::helpers::*;

pub(crate) const ON: (&str, &str) = ("GATEHOUSE_PASSKEYS", "true");

/// The JSON a passkey endpoint answered.
async fn json_of(r: reqwest::Response) -> serde_json::Value {
    let text = r.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Starts a ceremony at `options_path` from the form on `page`: its id and options.
pub(crate) async fn start(
    b: &Browser,
    page: &str,
    options_path: &str,
    fields: &[(&str, &str)],
) -> (String, serde_json::Value, String) {
    let token = b.form_token(page).await;
    let started = json_of(b.post_form(options_path, &token, fields).await).await;
    let ceremony = started["ceremony"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    (ceremony, started["options"].clone(), token)
}

/// Sends a ceremony's answer; the JSON answer.
pub(crate) async fn finish(
    b: &Browser,
    path: &str,
    token: &str,
    ceremony: &str,
    credential: &str,
) -> serde_json::Value {
    json_of(
        b.post_form(
            path,
            token,
            &[("ceremony", ceremony), ("credential", credential)],
        )
        .await,
    )
    .await
}

/// Adds a passkey named `name` for the signed-in `b`.
pub(crate) async fn add(b: &Browser, name: &str) -> SoftPasskey {
    let mut key = SoftPasskey::new();
    let (ceremony, options, token) = start(
        b,
        "/account/passkeys",
        "/account/passkeys/options",
        &[("name", name)],
    )
    .await;
    let done = finish(
        b,
        "/account/passkeys/add",
        &token,
        &ceremony,
        &key.register(&options),
    )
    .await;
    assert_eq!(done["redirect"], "/account/passkeys", "{done}");
    key
}

/// Starts a passkey sign-in on the login page (with a username, or none).
async fn sign_in_options(b: &Browser, username: &str) -> (String, serde_json::Value, String) {
    start(
        b,
        "/login",
        "/login/passkey/options",
        &[("username", username)],
    )
    .await
}

/// Signs in with `key` in `b`: the JSON answer.
async fn sign_in(b: &Browser, key: &mut SoftPasskey) -> serde_json::Value {
    let (ceremony, options, token) = sign_in_options(b, "").await;
    finish(
        b,
        "/login/passkey",
        &token,
        &ceremony,
        &key.assert(&options),
    )
    .await
}

/// Amir signed in with his password on a service with passkeys on.
async fn amir(vars: &[(&str, &str)]) -> (TestApp, Browser) {
    let mut all = vec![ON];
    all.extend_from_slice(vars);
    let app = app_with_password(&all).await;
    let b = app.browser();
    assert_eq!(b.log_in(AMIR.username, GOOD_PASSWORD).await.status(), 303);
    (app, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_adds_lists_and_removes_a_passkey_with_their_password() {
    let (app, b) = amir(&[]).await;
    assert!(
        b.page("/account")
            .await
            .contains("href=\"/account/passkeys\"")
    );
    let page = b.page("/account/passkeys").await;
    assert!(
        page.contains("Add a passkey") && page.contains("Passkeys need JavaScript"),
        "{page}"
    );
    add(&b, "work phone").await;
    let page = b.page("/account/passkeys").await;
    assert!(
        page.contains("work phone") && page.contains("Never"),
        "{page}"
    );
    assert_eq!(audit_events(&app, "passkey.added").await.len(), 1);

    // A name is required, unique per account.
    let token = b.form_token("/account/passkeys").await;
    for name in ["", "work phone", &"x".repeat(51)] {
        let refused = b
            .post_form("/account/passkeys/options", &token, &[("name", name)])
            .await;
        assert_eq!(refused.status(), 400, "{name:?}");
    }

    // Removing asks for the password, and a wrong one counts as a guess.
    let id = page
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("id")
        .to_owned();
    let wrong = b
        .post_form(
            "/account/passkeys/remove",
            &token,
            &[("id", &id), ("password", "not my password")],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    assert!(
        wrong
            .text()
            .await
            .expect("body")
            .contains("You have 2 attempts left")
    );
    assert_eq!(sign_in_attempts(&app, AMIR.username).await.consecutive, 1);
    let removed = b
        .post_form(
            "/account/passkeys/remove",
            &token,
            &[("id", &id), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(removed.headers()["location"], "/account/passkeys");
    assert!(
        b.page("/account/passkeys")
            .await
            .contains("You have not added a passkey yet")
    );
    assert_eq!(audit_events(&app, "passkey.removed").await.len(), 1);
    // Each change is told by email.
    let mut subjects = Vec::new();
    for _ in 0..200 {
        subjects = app
            .smtp
            .messages()
            .iter()
            .filter_map(|m| m.header("Subject"))
            .collect::<Vec<_>>();
        if subjects.iter().any(|s| s.contains("A passkey was removed")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        subjects.iter().any(|s| s.contains("A passkey was added")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("A passkey was removed")),
        "{subjects:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_signs_in_without_the_password_and_the_lock_neither_stops_nor_counts_it() {
    let (app, b) = amir(&[]).await;
    let mut key = add(&b, "laptop").await;
    // Three wrong passwords from elsewhere lock the password.
    for _ in 0..3 {
        app.browser()
            .log_in(AMIR.username, "wrong wrong wrong")
            .await;
    }
    let before = sign_in_attempts(&app, AMIR.username).await;
    assert!(before.locked_until.is_some());
    let fresh = app.browser();
    let done = sign_in(&fresh, &mut key).await;
    assert_eq!(done["redirect"], "/account", "{done}");
    assert_eq!(fresh.get("/account").await.status(), 200);
    assert_eq!(
        sign_in_attempts(&app, AMIR.username).await,
        before,
        "the lockout counter is untouched"
    );
    assert_eq!(
        app.log_in_status(AMIR.username, GOOD_PASSWORD).await,
        200,
        "the password stays locked"
    );
    assert_eq!(audit_events(&app, "passkey.signed_in").await.len(), 1);
    let metrics = app.gatehouse.metrics_text().await;
    assert!(
        metrics.contains("gatehouse_sign_ins_total{outcome=\"passkey\"} 1\n"),
        "a passkey sign-in is counted apart: {metrics}"
    );
    assert!(b.page("/account/passkeys").await.contains("laptop"));
    assert!(
        !fresh.page("/account/passkeys").await.contains("Never"),
        "last used is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_assertions_and_ceremonies_used_twice_or_late_are_refused() {
    let (app, b) = amir(&[]).await;
    let mut key = add(&b, "laptop").await;
    let fresh = app.browser();
    let (ceremony, options, token) = sign_in_options(&fresh, "").await;
    let assertion = key.assert(&options);
    assert!(
        finish(&fresh, "/login/passkey", &token, &ceremony, &assertion).await["redirect"]
            .is_string()
    );
    // The same answer to the same ceremony, and to a new one, from a
    // browser that is not signed in.
    let other_browser = app.browser();
    let (_, _, token) = sign_in_options(&other_browser, "").await;
    let again = finish(
        &other_browser,
        "/login/passkey",
        &token,
        &ceremony,
        &assertion,
    )
    .await;
    assert!(again["error"].is_string(), "{again}");
    let (other, _, token) = sign_in_options(&other_browser, "").await;
    let again = finish(&other_browser, "/login/passkey", &token, &other, &assertion).await;
    assert!(again["error"].is_string(), "{again}");
    // Five minutes later the ceremony is over.
    let (late, options, token) = sign_in_options(&other_browser, "").await;
    app.advance(Span::minutes(5));
    let answer = key.assert(&options);
    let late = finish(&other_browser, "/login/passkey", &token, &late, &answer).await;
    assert!(late["error"].is_string(), "{late}");
    assert_eq!(
        other_browser.get("/account").await.headers()["location"],
        "/login"
    );
    let refused = audit_events(&app, "passkey.refused").await;
    let details: Vec<String> = refused
        .iter()
        .filter_map(|r| r.record.detail.clone())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("unknown or used ceremony")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("the answer did not verify")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("ceremony expired")),
        "{details:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_passkey_a_wrong_origin_or_relying_party_and_a_cloned_key_are_refused() {
    let (app, b) = amir(&[]).await;
    let mut amirs = add(&b, "laptop").await;
    app.set_password(&JANE, GOOD_PASSWORD).await;
    let jane = app.browser();
    assert_eq!(
        jane.log_in(JANE.username, GOOD_PASSWORD).await.status(),
        303
    );
    let mut janes = add(&jane, "phone").await;

    // Jane's passkey for a ceremony started for Amir's username.
    let fresh = app.browser();
    let (ceremony, options, token) = sign_in_options(&fresh, AMIR.username).await;
    let listed = options["publicKey"]["allowCredentials"]
        .as_array()
        .expect("listed")
        .len();
    assert_eq!(listed, 1, "Amir's passkey is named for security keys");
    let answer = janes.assert(&options);
    assert!(
        finish(&fresh, "/login/passkey", &token, &ceremony, &answer).await["error"].is_string()
    );
    // Amir's key claiming Jane's user handle.
    let mut pretending = amirs.clone_key();
    pretending.user_handle = janes.user_handle.clone();
    let (ceremony, options, token) = sign_in_options(&fresh, "").await;
    let answer = pretending.assert(&options);
    assert!(
        finish(&fresh, "/login/passkey", &token, &ceremony, &answer).await["error"].is_string()
    );

    // A wrong origin, a wrong relying party.
    for (origin, rp_id) in [
        ("https://evil.example", "gatehouse.test"),
        ("http://gatehouse.test", "evil.example"),
    ] {
        let mut liar = amirs.clone_key();
        liar.origin = origin.to_owned();
        liar.rp_id = rp_id.to_owned();
        let (ceremony, options, token) = sign_in_options(&fresh, "").await;
        let answer = liar.assert(&options);
        assert!(
            finish(&fresh, "/login/passkey", &token, &ceremony, &answer).await["error"].is_string(),
            "{origin} {rp_id}"
        );
    }
    assert_eq!(fresh.get("/account").await.headers()["location"], "/login");

    // A cloned authenticator: the copy moves the counter on, the original
    // then comes back with a lower one.
    let mut copy = amirs.clone_key();
    copy.counter += 5;
    assert!(sign_in(&app.browser(), &mut copy).await["redirect"].is_string());
    let back = sign_in(&app.browser(), &mut amirs).await;
    assert!(
        back["error"].as_str().is_some_and(|e| e.contains("copied")),
        "{back}"
    );
    let details: Vec<String> = audit_events(&app, "passkey.refused")
        .await
        .iter()
        .filter_map(|r| r.record.detail.clone())
        .collect();
    assert!(
        details.iter().any(|d| d.contains("counter went backwards")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("another account")),
        "{details:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helpdesk_member_passes_the_second_factor_with_a_passkey_and_the_code_page_offers_it() {
    let app = TestApp::spawn_with(&[ON]).await;
    let (b, _) = app.console_as(Role::Helpdesk).await;
    let mut key = add(&b, "security key").await;
    let other = app.browser();
    assert_eq!(
        other.log_in(AMIR.username, GOOD_PASSWORD).await.status(),
        303
    );
    let page = other.page("/console/second-factor").await;
    assert!(page.contains("Use a passkey"), "{page}");
    let (ceremony, options, token) = start(
        &other,
        "/console/second-factor",
        "/console/second-factor/passkey/options",
        &[],
    )
    .await;
    let done = finish(
        &other,
        "/console/second-factor/passkey",
        &token,
        &ceremony,
        &key.assert(&options),
    )
    .await;
    assert_eq!(done["redirect"], "/console", "{done}");
    assert_eq!(other.get("/console").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_passkey_only_the_app_code_is_refused_and_the_last_passkey_stays() {
    let app = TestApp::spawn_with(&[ON, ("GATEHOUSE_PRIVILEGED_SECOND_FACTOR", "passkey")]).await;
    let b = app.signed_in(Role::Admin).await;
    // The set-up link's window leads to a passkey, not the app.
    let page = b.page("/console/second-factor").await;
    assert!(
        page.contains("accepts only a passkey") && !page.contains("QR code"),
        "{page}"
    );
    let mut key = add(&b, "security key").await;
    let code = b.send_code("123456").await;
    assert!(
        code.text()
            .await
            .expect("body")
            .contains("accepts only a passkey")
    );
    assert_eq!(
        b.get("/console").await.headers()["location"],
        "/console/second-factor"
    );
    let (ceremony, options, token) = start(
        &b,
        "/console/second-factor",
        "/console/second-factor/passkey/options",
        &[],
    )
    .await;
    assert!(
        finish(
            &b,
            "/console/second-factor/passkey",
            &token,
            &ceremony,
            &key.assert(&options)
        )
        .await["redirect"]
            .is_string()
    );
    assert_eq!(b.get("/console").await.status(), 200);
    // Their only factor: removing it is refused, whatever the password.
    let page = b.page("/account/passkeys").await;
    let id = page
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("id")
        .to_owned();
    let token = b.form_token("/account/passkeys").await;
    let refused = b
        .post_form(
            "/account/passkeys/remove",
            &token,
            &[("id", &id), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("cannot be removed")
    );
    assert_eq!(
        app.gatehouse
            .passkey_count(account(&app, AMIR.username).await.id)
            .await
            .expect("count"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_how_many_passkeys_and_the_operator_removes_them() {
    let (app, b) = amir(&[]).await;
    add(&b, "one").await;
    add(&b, "two").await;
    let (helpdesk, _) = {
        app.import(&staff_file(&[&JANE])).await;
        let link = app.grant(JANE.username, Role::Helpdesk).await;
        app.browser()
            .set_password_through(&link, JANE.username, GOOD_PASSWORD)
            .await;
        let h = app.browser();
        assert_eq!(h.log_in(JANE.username, GOOD_PASSWORD).await.status(), 303);
        let e = app.enrol(&h).await;
        (h, e)
    };
    let page = helpdesk
        .page(&format!("/console/accounts/{}", AMIR.username))
        .await;
    assert!(page.contains("Passkeys") && page.contains(">2<"), "{page}");
    assert_eq!(b.get("/account").await.status(), 200, "Amir is signed in");
    let (code, out, err) = gatehouse_cli(
        &app,
        &[
            "admin",
            "--json",
            "remove-passkeys",
            AMIR.username,
            "--reason",
            "lost phone",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"passkeys_removed\":2"), "{out}");
    // A lost key may have signed someone in: Amir is signed out everywhere.
    assert_ne!(b.get("/account").await.status(), 200, "signed out");
    let done = audit_events(&app, "passkey.removed_by_operator").await;
    assert!(
        done[0]
            .record
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("lost phone"))
    );
    let (code, ..) = gatehouse_cli(
        &app,
        &["admin", "remove-passkeys", AMIR.username, "--reason", ""],
    )
    .await;
    assert_eq!(code, 1, "a reason is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_sign_in_tells_applications_hwk() {
    let (app, b) = amir(&[]).await;
    let mut key = add(&b, "laptop").await;
    let fresh = app.browser();
    assert!(sign_in(&fresh, &mut key).await["redirect"].is_string());
    let session = app
        .gatehouse
        .session(&fresh.session_id())
        .await
        .expect("read")
        .expect("live");
    assert_eq!(session.passkey, gatehouse_store::sessions::PASSKEY_SIGN_IN);
    let auth = gatehouse_domain::oidc::scope::Authentication {
        second_factor: session.second_factor_at.is_some(),
        passkey: gatehouse_domain::oidc::scope::PasskeyUse::from_stored(session.passkey),
    };
    assert_eq!(auth.amr(), ["hwk"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_passkeys_off_nothing_is_offered_or_accepted() {
    let app = app_with_password(&[]).await;
    let b = app.browser();
    assert!(!b.page("/login").await.contains("Sign in with a passkey"));
    assert_eq!(b.log_in(AMIR.username, GOOD_PASSWORD).await.status(), 303);
    assert_eq!(b.get("/account/passkeys").await.status(), 404);
    let token = b.form_token("/account").await;
    let r = b
        .post_form("/account/passkeys/options", &token, &[("name", "x")])
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceremony_started_on_one_node_is_finished_on_another_once() {
    let (one, two) = TestApp::two_nodes_on_postgres(&[ON]).await;
    one.import(STAFF).await;
    one.set_password(&AMIR, GOOD_PASSWORD).await;
    let b = one.browser();
    assert_eq!(b.log_in(AMIR.username, GOOD_PASSWORD).await.status(), 303);
    // Added: options from node one, the answer to node two.
    let mut key = SoftPasskey::new();
    let (ceremony, options, token) = start(
        &b,
        "/account/passkeys",
        "/account/passkeys/options",
        &[("name", "laptop")],
    )
    .await;
    let on_two = b.on(&two.address);
    let done = finish(
        &on_two,
        "/account/passkeys/add",
        &token,
        &ceremony,
        &key.register(&options),
    )
    .await;
    assert_eq!(done["redirect"], "/account/passkeys", "{done}");
    // Signed in: options from node two, the answer to node one, then the
    // same answer again to node two.
    let fresh = two.browser();
    let (ceremony, options, token) = sign_in_options(&fresh, "").await;
    // Counter 0, as many platform passkeys send: only the ceremony being
    // taken once stops the same answer twice.
    let answer = key.assert_at(&options, 0);
    let on_one = fresh.on(&one.address);
    assert_eq!(
        finish(&on_one, "/login/passkey", &token, &ceremony, &answer).await["redirect"],
        "/account"
    );
    assert!(
        finish(&fresh, "/login/passkey", &token, &ceremony, &answer).await["error"].is_string()
    );
    assert_eq!(fresh.get("/account").await.status(), 200);
}

/// Invariant 1 (no enumeration) for a username typed before "Sign in with
/// a passkey": Amir (with a passkey), Jane (with none) and a username
/// nobody has each get one credential id named, stable for the username;
/// only Amir's is a passkey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_username_never_tells_whether_it_has_passkeys() {
    let (app, b) = amir(&[]).await;
    let mut key = add(&b, "laptop").await;
    let named = |options: &serde_json::Value| -> Vec<String> {
        options["publicKey"]["allowCredentials"]
            .as_array()
            .expect("listed")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let fresh = app.browser();
    let amirs = named(&sign_in_options(&fresh, AMIR.username).await.1);
    let janes = named(&sign_in_options(&fresh, JANE.username).await.1);
    let nobodys = named(&sign_in_options(&fresh, "999NOBODY01").await.1);
    for ids in [&amirs, &janes, &nobodys] {
        assert_eq!(ids.len(), 1, "{ids:?}");
    }
    assert_ne!(janes, nobodys);
    assert_ne!(janes, amirs);
    // The same each time (in any letter case), so asking again tells nothing.
    let again = named(
        &sign_in_options(&app.browser(), &JANE.username.to_lowercase())
            .await
            .1,
    );
    assert_eq!(again, janes);
    let again = named(&sign_in_options(&app.browser(), "999NOBODY01").await.1);
    assert_eq!(again, nobodys);
    // And after the operator rotates the service's key, as a real
    // passkey's id is: a stand-in that changed would give itself away.
    app.gatehouse.rotate_keys(OPERATOR).await.expect("rotate");
    let after = app.browser();
    assert_eq!(
        named(&sign_in_options(&after, JANE.username).await.1),
        janes
    );
    assert_eq!(
        named(&sign_in_options(&after, "999NOBODY01").await.1),
        nobodys
    );
    assert_eq!(
        named(&sign_in_options(&after, AMIR.username).await.1),
        amirs
    );
    // A blank username names nothing: the browser offers what it holds.
    assert!(named(&sign_in_options(&fresh, "").await.1).is_empty());
    // And Amir's passkey still signs in after his username.
    let (ceremony, options, token) = sign_in_options(&fresh, AMIR.username).await;
    let done = finish(
        &fresh,
        "/login/passkey",
        &token,
        &ceremony,
        &key.assert(&options),
    )
    .await;
    assert!(done["redirect"].is_string(), "{done}");
}

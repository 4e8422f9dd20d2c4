//! The applications (clients) the operator registers: the `gatehouse admin
//! client` commands against a running service, and the console's list.

use gatehouse_domain::Role;
use serde_json::Value;

use super::*;

/// Runs `gatehouse admin --json client …` and reads its JSON.
async fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let mut all = vec!["admin", "--json", "client"];
    all.extend_from_slice(args);
    let (code, out, err) = gatehouse_cli(app, &all).await;
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The operator's client commands, each with `--json` and each audited: a
/// client registered from the command line works at once in the running
/// service; a rotated secret replaces the old at once; a bad address is
/// refused in one line naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_registers_lists_rotates_disables_and_removes_clients() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    let added = cli_json(
        &app,
        &[
            "add",
            "Payslips",
            "--redirect-uri",
            REDIRECT,
            "--post-logout-redirect-uri",
            "http://127.0.0.1:9/bye",
        ],
    )
    .await;
    let id = added["client_id"].as_str().expect("id").to_owned();
    let secret = added["client_secret"].as_str().expect("secret").to_owned();
    assert_eq!(added["kind"], "confidential");
    let rp = Rp::known(&app, &id, Some(&secret));
    let tokens = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    tokens.field("id_token");

    let list = cli_json(&app, &["list"]).await;
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .any(|c| c["client_id"] == id.as_str())
    );
    let shown = cli_json(&app, &["show", &id]).await;
    assert_eq!(
        shown["post_logout_redirect_uris"],
        serde_json::json!(["http://127.0.0.1:9/bye"])
    );
    assert!(
        shown.get("client_secret").is_none(),
        "the secret is never shown again"
    );

    let rotated = cli_json(&app, &["rotate-secret", &id]).await;
    let new_secret = rotated["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_ne!(new_secret, secret);
    let old = rp.refresh(&tokens.field("refresh_token")).await;
    assert_eq!(old.status, 401, "the old secret stopped at once");
    let renewed = Rp {
        secret: Some(new_secret),
        ..rp.clone()
    };
    renewed
        .tokens_for(&app.browser(), &[], AMIR_SIGNS_IN)
        .await
        .field("id_token");

    assert_eq!(cli_json(&app, &["disable", &id]).await["state"], "disabled");
    assert_eq!(
        app.browser().get(&rp.authorize_path(&[])).await.status(),
        400
    );
    assert_eq!(cli_json(&app, &["enable", &id]).await["state"], "enabled");
    assert_eq!(cli_json(&app, &["remove", &id]).await["removed"], true);
    assert_eq!(
        app.browser().get(&rp.authorize_path(&[])).await.status(),
        400
    );
    let (code, _, err) = gatehouse_cli(&app, &["admin", "client", "show", &id]).await;
    assert_eq!(code, 1, "{err}");

    let public = cli_json(
        &app,
        &["add", "Rota", "--public", "--redirect-uri", REDIRECT],
    )
    .await;
    assert!(public.get("client_secret").is_none());
    let public_id = public["client_id"].as_str().expect("id").to_owned();
    let (code, _, err) =
        gatehouse_cli(&app, &["admin", "client", "rotate-secret", &public_id]).await;
    assert_eq!(code, 1);
    assert!(err.contains("a public client has no secret"), "{err}");

    let (code, out, err) = gatehouse_cli(
        &app,
        &[
            "admin",
            "client",
            "add",
            "Bad",
            "--redirect-uri",
            "http://app.example/cb",
        ],
    )
    .await;
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("must use https"), "{err}");

    for event in [
        "client.added",
        "client.secret_rotated",
        "client.disabled",
        "client.enabled",
        "client.removed",
    ] {
        assert!(
            !audit_events(&app, event).await.is_empty(),
            "{event} is audited"
        );
    }
}

/// An id that begins with `-` (as one in 32 did before ids were drawn to
/// begin with a letter or digit) is still an id, never an option, in every
/// command that takes one.
#[tokio::test]
async fn a_client_id_that_begins_with_a_hyphen_is_taken_as_an_id() {
    let app = TestApp::spawn().await;
    let added = cli_json(&app, &["add", "Payslips", "--redirect-uri", REDIRECT]).await;
    let id = added["client_id"].as_str().expect("id");
    let hyphened = format!("-{}", &id[1..]);
    execute_sql(
        &app.database_url(),
        &format!("UPDATE oidc_clients SET id = '{hyphened}' WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(
        cli_json(&app, &["show", &hyphened]).await["client_id"],
        hyphened
    );
    assert!(cli_json(&app, &["rotate-secret", &hyphened]).await["client_secret"].is_string());
    assert_eq!(
        cli_json(&app, &["disable", &hyphened]).await["state"],
        "disabled"
    );
    assert_eq!(
        cli_json(&app, &["enable", &hyphened]).await["state"],
        "enabled"
    );
    assert_eq!(
        cli_json(&app, &["remove", &hyphened]).await["removed"],
        true
    );
}

/// Administrators see the registered applications in the console; the
/// helpdesk does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_see_the_applications_in_the_console() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.console_as(Role::Admin).await;
    let rp = Rp::register(&app, |c| c.name = "Payslips & Pensions".to_owned()).await;
    let page = admin.page("/console/clients").await;
    assert!(page.contains("Payslips &#38; Pensions"), "escaped: {page}");
    assert!(page.contains(&rp.id));
    assert!(page.contains("/.well-known/openid-configuration"));
    assert!(!page.contains(rp.secret.as_deref().expect("secret")));

    let other = TestApp::spawn().await;
    let (helpdesk, _) = other.console_as(Role::Helpdesk).await;
    assert_eq!(helpdesk.get("/console/clients").await.status(), 403);
}

//! A full staff-file import (`gatehouse import FILE --full`, and the
//! console's upload with its box ticked): people of the file's employers
//! missing from it are disabled, signed out and their links voided, each
//! audited; the safety limit refuses a file that would disable too many
//! and changes nothing; someone who comes back is enabled with the same
//! username, but an account disabled by hand stays disabled.

use gatehouse_core::import::{ImportOptions, ImportRefusal};
use gatehouse_domain::Role;
use gatehouse_domain::import::FullImport;

use crate::helpers::*;

/// Jane's two accounts (999 and 432) without Amir.
const WITHOUT_AMIR: &str = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
999 Demo Hospital NHS Trust,,Jane,Smith,1985-03-14,Jane.Smith@nhs.net,D1\n\
432 Community Health NHS Trust,,Jane,Smith,14/03/1985,jane.smith@nhs.net,C1\n";

/// Today in the service's time zone, as the command line's audit says it.
fn today_in_london() -> String {
    jiff::Timestamp::now()
        .in_tz("Europe/London")
        .expect("time zone")
        .date()
        .to_string()
}

/// `csv` written to a file in a new folder (kept alive by the returned guard).
fn write_file(csv: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("staff.csv");
    std::fs::write(&path, csv).expect("write");
    (dir, path.to_str().expect("path").to_owned())
}

/// Imports `csv` in the service as the operator does, as a full import.
async fn import_full(
    app: &TestApp,
    csv: &str,
    max_leavers: Option<usize>,
) -> Result<gatehouse_core::import::ImportReport, ImportRefusal> {
    let options = ImportOptions {
        dry_run: false,
        full: Some(FullImport {
            max_leavers,
            ..FullImport::default()
        }),
        ..Default::default()
    };
    app.gatehouse
        .import_staff_with(csv.as_bytes(), &options, OPERATOR)
        .await
        .expect("import runs")
}

/// What an import may change: people, employers, the audit log, links
/// and sessions (not the workers' own bookkeeping, which runs meanwhile).
async fn people(app: &TestApp) -> Vec<Vec<Vec<String>>> {
    let all = snapshot(&app.database_url()).await;
    [
        "accounts",
        "employers",
        "audit_events",
        "reset_links",
        "sessions",
    ]
    .iter()
    .map(|t| all.get(*t).cloned().unwrap_or_default())
    .collect()
}

/// Whether `username`'s account is disabled.
async fn disabled(app: &TestApp, username: &str) -> bool {
    account(app, username).await.disabled_at.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaver_is_disabled_signed_out_and_their_links_voided_and_audited() {
    let app = app_with_password(&[]).await;
    let browser = app.browser();
    assert_eq!(
        browser.log_in(AMIR.username, GOOD_PASSWORD).await.status(),
        303
    );
    let link = app.reset_link(&AMIR).await;
    let amir = account(&app, AMIR.username).await;
    assert_eq!(app.db.session_count(amir.id).await.expect("count"), 1);

    let (_dir, file) = write_file(WITHOUT_AMIR);
    let (code, stdout, stderr) = gatehouse_cli(&app, &["import", &file, "--full"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("  leaver: 999AKHAN01 (employer 999)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "Employer 999 (Demo Hospital NHS Trust): 1 of its 2 enabled people were disabled as not in the file (limit 1)."
        ),
        "{stdout}"
    );

    assert!(disabled(&app, AMIR.username).await);
    assert!(!disabled(&app, JANE.username).await);
    assert!(!disabled(&app, "432JSMITH01").await);
    assert_eq!(app.db.session_count(amir.id).await.expect("count"), 0);
    assert_eq!(browser.get("/account").await.status(), 303, "signed out");
    assert_eq!(
        app.log_in_status(AMIR.username, GOOD_PASSWORD).await,
        200,
        "refused"
    );

    let events = audit_events(&app, "account.disabled").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].username.as_deref(), Some(AMIR.username));
    assert_eq!(events[0].actor.as_deref(), Some("import (command line)"));
    assert_eq!(
        events[0].detail.clone().unwrap_or_default(),
        format!("reason: not in the staff file of {}", today_in_london())
    );

    // Back in the file: enabled, with the same username; the link sent
    // before he left still does not work.
    app.import(STAFF).await;
    let back = account(&app, AMIR.username).await;
    assert_eq!(back.id, amir.id);
    assert!(back.disabled_at.is_none());
    let fresh = app.browser();
    fresh.open_link(&link).await;
    let page = fresh.page("/reset").await;
    assert!(page.contains("This account has been disabled"), "{page}");
    assert_eq!(
        app.log_in_status(AMIR.username, GOOD_PASSWORD).await,
        303,
        "the returner signs in with their password"
    );
    let enabled = audit_events(&app, "account.enabled").await;
    assert_eq!(enabled.len(), 1, "{enabled:?}");
    assert!(
        enabled[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("reason: back in the staff file of ")),
        "{enabled:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_safety_limit_refuses_a_full_import_whole_until_the_operator_allows_more() {
    let app = TestApp::spawn().await;
    app.import(&format!("{STAFF}{}{}", PRIYA.staff_row(), BEA.staff_row()))
        .await;
    // Four people at 999: the default limit is 1 (5%, at least 1). A file
    // that also adds someone must add nobody.
    let file_text = format!("{WITHOUT_AMIR}{}", CARL.staff_row());
    let (_dir, file) = write_file(&file_text);
    let before = people(&app).await;
    let (code, stdout, stderr) = gatehouse_cli(&app, &["import", &file, "--full"]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains(
            "a full import would disable 3 of the 4 enabled people of employer 999 (Demo Hospital NHS Trust), more than its limit of 1; nothing was changed. If they have all left, run it again with --max-leavers 3."
        ),
        "{stderr}"
    );
    assert_eq!(people(&app).await, before, "nothing changed");

    // Allowed up to 2: still refused; up to 3: through.
    let (code, _, stderr) =
        gatehouse_cli(&app, &["import", &file, "--full", "--max-leavers", "2"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("more than its limit of 2"), "{stderr}");
    let (code, stdout, stderr) =
        gatehouse_cli(&app, &["import", &file, "--full", "--max-leavers", "3"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    for username in [AMIR.username, PRIYA.username, BEA.username] {
        assert!(disabled(&app, username).await, "{username}");
    }
    assert!(!disabled(&app, JANE.username).await);
    assert!(!disabled(&app, CARL.username).await, "added");

    // Amir's row again: a dry run names him as a returner.
    let (_dir, back) = write_file(STAFF);
    let (code, stdout, stderr) = gatehouse_cli(&app, &["import", &back, "--dry-run"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "Would be enabled again, back in the file: 1 person.\n  returner: 999AKHAN01 (line 4)"
        ),
        "{stdout}"
    );
    assert!(disabled(&app, AMIR.username).await, "a dry run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_lists_the_leavers_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let (_dir, file) = write_file(WITHOUT_AMIR);
    let before = people(&app).await;
    let (code, stdout, stderr) =
        gatehouse_cli(&app, &["import", &file, "--full", "--dry-run"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("  leaver: 999AKHAN01 (employer 999)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would be disabled as not in the file"),
        "{stdout}"
    );
    assert!(stdout.contains("Dry run: nothing was changed."), "{stdout}");
    assert_eq!(people(&app).await, before, "nothing changed");

    // A dry run that the limit would refuse says so, and exits 1.
    let (_dir, nobody) = write_file(
        "employer,username,first_name,last_name,date_of_birth,email\n\
         999 Demo Hospital NHS Trust,,Pat,Doe,1980-01-01,pat.doe@nhs.net\n",
    );
    let (code, stdout, stderr) =
        gatehouse_cli(&app, &["import", &nobody, "--full", "--dry-run"]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("  leaver: 999AKHAN01"), "{stdout}");
    assert!(stdout.contains("  leaver: 999JSMITH01"), "{stdout}");
    assert!(stderr.contains("--max-leavers 2"), "{stderr}");
    assert_eq!(people(&app).await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn employer_names_the_employers_the_file_is_complete_for() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    // Only Jane at 999 in the file, but the file is said to be complete for
    // 432 alone: Amir (999) stays, Jane's 432 account leaves.
    let (_dir, file) = write_file(
        "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
         999 Demo Hospital NHS Trust,,Jane,Smith,1985-03-14,Jane.Smith@nhs.net,D1\n",
    );
    let (code, stdout, stderr) = gatehouse_cli(
        &app,
        &[
            "import",
            &file,
            "--full",
            "--employer",
            "432 Community Health NHS Trust",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("  leaver: 432JSMITH01 (employer 432)"),
        "{stdout}"
    );
    assert!(!stdout.contains("999AKHAN01"), "{stdout}");
    assert!(disabled(&app, "432JSMITH01").await);
    assert!(!disabled(&app, AMIR.username).await);

    // An employer that is neither in the file nor on record is a problem.
    let (code, _, stderr) =
        gatehouse_cli(&app, &["import", &file, "--full", "--employer", "123"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--employer \"123\": no employer numbered 123 is in the file or on record"),
        "{stderr}"
    );
    // --employer means nothing without --full.
    let (code, _, stderr) = gatehouse_cli(&app, &["import", &file, "--employer", "999"]).await;
    assert_eq!(code, 2, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_disabled_by_hand_is_not_enabled_by_the_file() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.gatehouse
        .set_account_disabled(JANE.username, true, OPERATOR, "left under a cloud")
        .await
        .expect("runs")
        .expect("disabled");
    let report = import_full(&app, WITHOUT_AMIR, None)
        .await
        .expect("imported");
    assert!(report.summary.returners.is_empty());
    assert!(
        disabled(&app, JANE.username).await,
        "the file does not undo a person's decision"
    );
    assert!(disabled(&app, AMIR.username).await);

    // Amir, a leaver, comes back; an administrator then disabling him by
    // hand is again not undone by the next file.
    let report = import_full(&app, STAFF, None).await.expect("imported");
    let returners: Vec<&str> = report
        .summary
        .returners
        .iter()
        .map(|r| r.username.as_str())
        .collect();
    assert_eq!(returners, [AMIR.username]);
    assert!(!disabled(&app, AMIR.username).await);
    assert!(disabled(&app, JANE.username).await);
    let events = audit_events(&app, "account.disabled").await;
    let amir_left: Vec<_> = events
        .iter()
        .filter(|e| e.username.as_deref() == Some(AMIR.username))
        .collect();
    assert_eq!(amir_left.len(), 1);
    assert_eq!(
        amir_left[0].detail.as_deref(),
        Some("reason: not in the staff file of 2026-11-25"),
        "the service's own date"
    );
    assert_eq!(amir_left[0].actor.as_deref(), Some("test"));

    app.gatehouse
        .set_account_disabled(AMIR.username, true, OPERATOR, "suspended")
        .await
        .expect("runs")
        .expect("disabled");
    app.import(STAFF).await;
    assert!(disabled(&app, AMIR.username).await);
}

/// An upload from the console, with the "every member of staff" box ticked.
async fn upload_full(browser: &Browser, token: &str, file: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", token.to_owned())
        .text("full", "yes")
        .part(
            "file",
            reqwest::multipart::Part::bytes(file.as_bytes().to_vec()).file_name("hr-feed.csv"),
        );
    browser
        .http()
        .post(browser.url("/console/import"))
        .multipart(form)
        .send()
        .await
        .expect("POST")
        .text()
        .await
        .expect("body")
}

/// The staged file's number in a preview page.
fn staged_id(page: &str) -> String {
    page.split("action=\"/console/import/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an import button")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_upload_offers_a_full_import_with_its_leavers_and_limit() {
    let app = TestApp::spawn().await;
    let admin = app.console_as(Role::Admin).await.0;
    app.import(&format!("{STAFF}{}{}", PRIYA.staff_row(), BEA.staff_row()))
        .await;
    let form = admin.page("/console/import").await;
    assert!(
        form.contains(
            "This file lists every member of staff of its employers: disable anyone missing from it"
        ),
        "{form}"
    );

    // Amir (the administrator uploading) is missing too, but nobody
    // disables their own account: Jane, Priya and Bea would leave, over
    // the limit of 1 for four people.
    let token = csrf_token(&form).expect("token");
    let only_jane_432 = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
        432 Community Health NHS Trust,,Jane,Smith,14/03/1985,jane.smith@nhs.net,C1\n\
        999 Demo Hospital NHS Trust,,Carl,New,1979-09-09,carl.new@nhs.net,D30\n";
    let page = upload_full(&admin, &token, only_jane_432).await;
    assert!(page.contains("People who would be disabled: 3"), "{page}");
    for username in [JANE.username, PRIYA.username, BEA.username] {
        assert!(
            page.contains(&format!("<li>{username} (employer 999)</li>")),
            "{page}"
        );
    }
    assert!(!page.contains("<li>999AKHAN01"), "{page}");
    assert!(page.contains("Too many people would be disabled"), "{page}");
    assert!(page.contains("more than its limit of 1"), "{page}");
    let staged = staged_id(&page);
    let token = csrf_token(&page).expect("token");

    // Imported as it is: refused, nothing changed, the file kept.
    let before = people(&app).await;
    let refused = admin
        .post_form(
            &format!("/console/import/{staged}"),
            &token,
            &[("full", "yes"), ("max_leavers", "")],
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(
        refused.contains("Nothing was imported: a full import would disable 3"),
        "{refused}"
    );
    assert_eq!(people(&app).await, before, "nothing changed");

    // With the limit raised to 3 it goes through.
    let done = admin
        .post_form(
            &format!("/console/import/{staged}"),
            &token,
            &[("full", "yes"), ("max_leavers", "3")],
        )
        .await;
    assert_eq!(done.status(), 303);
    let flash = admin.page("/console/import").await;
    assert!(flash.contains("3 disabled as not in the file"), "{flash}");
    for username in [JANE.username, PRIYA.username, BEA.username] {
        assert!(disabled(&app, username).await, "{username}");
    }
    assert!(!disabled(&app, AMIR.username).await);
    let events = audit_events(&app, "account.disabled").await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.actor.as_deref() == Some("admin 999AKHAN01")
                && e.detail.as_deref() == Some("reason: not in the staff file of 2026-11-25")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_upload_without_the_box_leaves_missing_people_alone() {
    let app = TestApp::spawn().await;
    let admin = app.console_as(Role::Admin).await.0;
    let token = admin.form_token("/console/import").await;
    let page = admin.upload(&token, WITHOUT_AMIR).await.body().await;
    assert!(
        page.contains("People missing from the file are left alone."),
        "{page}"
    );
    assert!(!page.contains("would be disabled"), "{page}");
    let staged = staged_id(&page);
    let token = csrf_token(&page).expect("token");
    let done = admin
        .post_form(&format!("/console/import/{staged}"), &token, &[])
        .await;
    assert_eq!(done.status(), 303);
    assert!(!disabled(&app, JANE.username).await);
    assert!(audit_events(&app, "account.disabled").await.is_empty());
}

/// The applications a leaver signed in to lose what they hold: the
/// refresh token stops working and the application is told by
/// back-channel logout. (Leavers are disabled a batch at a time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leavers_applications_lose_their_tokens_and_are_told() {
    use crate::oidc::{AMIR_SIGNS_IN, Rp};

    let app = app_with_password(&[]).await;
    let rp = Rp::register(&app, |c| {
        c.backchannel_logout_uri = Some("http://127.0.0.1:9/logout".to_owned());
    })
    .await;
    let tokens = rp.tokens_for(&app.browser(), &[], AMIR_SIGNS_IN).await;
    let refresh = tokens.field("refresh_token");
    let notices = "SELECT COUNT(*) FROM oidc_logout_notices";
    assert_eq!(count(&app.database_url(), notices).await, 0);

    let report = import_full(&app, WITHOUT_AMIR, None)
        .await
        .expect("imported");
    assert_eq!(report.summary.leavers.len(), 1);
    let refused = rp.refresh(&refresh).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid_grant");
    assert_eq!(count(&app.database_url(), notices).await, 1, "told once");
}

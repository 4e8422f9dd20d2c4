//! The staff file, through the command line and the console: problems are
//! reported by line and nothing is imported; what it changes is audited.

use gatehouse_domain::Role;

use crate::helpers::*;

/// A file whose second row gives Amir's address to someone else.
const SHARED_ADDRESS: &str = "employer,username,first_name,last_name,date_of_birth,email,employee_number\n\
999 Demo Hospital NHS Trust,,Pat,Doe,1980-01-01,pat.doe@nhs.net,D7\n\
999 Demo Hospital NHS Trust,,Ann,Other,1981-02-03,AMIR.KHAN@nhs.net,D8\n";

/// Defect P3 (docs/security.md): `gatehouse import` and the console's upload
/// accepted a row that gave a second person an address on file for
/// another, whose recovery emails (username and reset link) would then
/// reach them both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_staff_file_refuses_a_second_person_at_an_address_on_file() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("staff.csv");
    std::fs::write(&file, SHARED_ADDRESS).expect("write");
    let (code, stdout, stderr) =
        gatehouse_cli(&app, &["import", file.to_str().expect("path")]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("1 problem found; nothing was imported."),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "line 3: email \"amir.khan@nhs.net\" is on file for another person (account 999AKHAN01)"
        ),
        "{stderr}"
    );
    let nobody = app
        .db
        .search_accounts("pat.doe@nhs.net", 5)
        .await
        .expect("search");
    assert!(nobody.is_empty(), "nothing was imported");

    // The console's upload says the same, and imports nothing.
    let admin = app.console_as(Role::Admin).await.0;
    let token = admin.form_token("/console/import").await;
    let page = admin.upload(&token, SHARED_ADDRESS).await.body().await;
    assert!(
        page.contains("1 problem in hr-feed.csv: nothing was imported"),
        "{page}"
    );
    assert!(page.contains("(account 999AKHAN01)"), "{page}");
}

/// Defect P4 (docs/security.md): a staff file that made someone an admin left only
/// `staff.imported`; each account's role change is now audited on it, with
/// the old and new role and who loaded the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_role_changed_by_the_staff_file_is_audited_on_the_account() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    let with_roles = STAFF
        .replace("employee_number\n", "employee_number,role\n")
        .replace(",D1\n", ",D1,helpdesk\n")
        .replace(",C1\n", ",C1,\n")
        .replace(",D2\n", ",D2,\n");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("staff.csv");
    std::fs::write(&file, &with_roles).expect("write");
    let (code, stdout, stderr) =
        gatehouse_cli(&app, &["import", file.to_str().expect("path")]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let changes = audit_events(&app, "account.role_changed").await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].username.as_deref(), Some("999JSMITH01"));
    assert_eq!(changes[0].actor.as_deref(), Some("import (command line)"));
    assert_eq!(
        changes[0].detail.as_deref(),
        Some("staff -> helpdesk; by a staff file import")
    );

    // An administrator's upload that makes Jane an admin, and adds a new
    // helpdesk member: each is audited, by the administrator.
    let admin = app.console_as(Role::Admin).await.0;
    let promoted = format!(
        "{}999 Demo Hospital NHS Trust,,Pat,Doe,1980-01-01,pat.doe@nhs.net,D7,helpdesk\n",
        with_roles.replace(",D1,helpdesk\n", ",D1,admin\n")
    );
    let token = admin.form_token("/console/import").await;
    let page = admin.upload(&token, &promoted).await.body().await;
    let staged = page
        .split("action=\"/console/import/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an import button")
        .to_owned();
    let token = csrf_token(&page).expect("token");
    let done = admin
        .post_form(&format!("/console/import/{staged}"), &token, &[])
        .await;
    assert_eq!(done.status(), 303);
    let changes = audit_events(&app, "account.role_changed").await;
    let by_admin: Vec<(Option<String>, Option<String>)> = changes
        .iter()
        .filter(|e| e.actor.as_deref() == Some("admin 999AKHAN01"))
        .map(|e| (e.username.clone(), e.detail.clone()))
        .collect();
    assert_eq!(by_admin.len(), 2, "{changes:?}");
    assert!(by_admin.contains(&(
        Some("999JSMITH01".to_owned()),
        Some("helpdesk -> admin; by a staff file import".to_owned())
    )));
    assert!(by_admin.contains(&(
        Some("999PDOE01".to_owned()),
        Some("new account -> helpdesk; by a staff file import".to_owned())
    )));
}

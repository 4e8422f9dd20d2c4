//! A full import's plan: leavers, returners, covered employers, limits.

use super::*;
use crate::account::{AllowedDomains, Role};
use crate::time::Timestamp;

const HEADER: &str = "employer,username,first_name,last_name,date_of_birth,email,employee_number";

fn rows(lines: &[&str]) -> Vec<StaffRow> {
    let text = format!("{HEADER}\n{}\n", lines.join("\n"));
    read_staff_file(
        text.as_bytes(),
        jiff::civil::date(2026, 12, 7),
        &AllowedDomains::parse("nhs.net").expect("valid"),
    )
    .expect("valid")
}

fn employers() -> Vec<KnownEmployer> {
    vec![
        KnownEmployer {
            id: 1,
            code: "999".to_owned(),
            name: "Demo Trust".to_owned(),
        },
        KnownEmployer {
            id: 2,
            code: "432".to_owned(),
            name: "Other Trust".to_owned(),
        },
    ]
}

/// A stored, enabled staff account at employer `employer_id`.
fn account(id: i64, employer_id: i64, username: &str, number: &str) -> KnownAccount {
    KnownAccount {
        id,
        employer_id,
        username: username.to_owned(),
        first_name: "Pat".to_owned(),
        last_name: username.to_owned(),
        date_of_birth: "1980-01-01".to_owned(),
        email: format!("{}@nhs.net", username.to_lowercase()),
        employee_number: Some(number.to_owned()),
        role: Role::Staff,
        disabled_at: None,
        left_at: None,
    }
}

/// Ten people at 999 (E0 to E9) and two at 432 (C0, C1).
fn accounts() -> Vec<KnownAccount> {
    let mut all: Vec<KnownAccount> = (0..10)
        .map(|i| account(i, 1, &format!("999P{i}"), &format!("E{i}")))
        .collect();
    all.push(account(20, 2, "432P0", "C0"));
    all.push(account(21, 2, "432P1", "C1"));
    all
}

/// The row of stored account `a`, matched by username.
fn row_of(a: &KnownAccount, employer: &str) -> String {
    format!(
        "{employer},{},{},{},{},{},{}",
        a.username,
        a.first_name,
        a.last_name,
        a.date_of_birth,
        a.email,
        a.employee_number.clone().unwrap_or_default()
    )
}

fn full() -> FullImport {
    FullImport::default()
}

fn usernames(plan: &ImportPlan) -> Vec<&str> {
    plan.leavers.iter().map(|l| l.username.as_str()).collect()
}

#[test]
fn people_of_the_files_employers_missing_from_it_are_leavers_and_others_are_left_alone() {
    let stored = accounts();
    // Everyone at 999 but 999P3; nobody at 432, which the file does not name.
    let lines: Vec<String> = stored[..10]
        .iter()
        .filter(|a| a.username != "999P3")
        .map(|a| row_of(a, "999"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let plan = plan_staff_file(rows(&lines), &employers(), &stored, Some(&full())).expect("plans");
    assert_eq!(usernames(&plan), ["999P3"]);
    assert_eq!(plan.unchanged, 9);
    assert_eq!(
        plan.coverage.len(),
        1,
        "only the file's employer is covered"
    );
    let demo = &plan.coverage[0];
    assert_eq!(
        (demo.code.as_str(), demo.enabled, demo.leavers, demo.limit),
        ("999", 10, 1, 1)
    );
    assert!(plan.over_limit().is_empty());

    // The same file, not full: nobody leaves.
    let plan = plan_import(rows(&lines), &employers(), &stored).expect("plans");
    assert!(plan.leavers.is_empty() && plan.coverage.is_empty());
}

#[test]
fn a_named_employer_is_covered_even_when_absent_from_the_file_and_an_unknown_one_is_refused() {
    let stored = accounts();
    let line = row_of(&stored[0], "999");
    let only_432 = FullImport {
        employers: vec!["432 Other Trust".to_owned()],
        ..full()
    };
    let plan =
        plan_staff_file(rows(&[&line]), &employers(), &stored, Some(&only_432)).expect("plans");
    assert_eq!(usernames(&plan), ["432P0", "432P1"], "999 is not covered");
    assert_eq!(plan.over_limit().len(), 1, "both of two people is over 5%");

    let by_name = FullImport {
        employers: vec!["other trust".to_owned()],
        ..full()
    };
    let plan =
        plan_staff_file(rows(&[&line]), &employers(), &stored, Some(&by_name)).expect("plans");
    assert_eq!(
        usernames(&plan),
        ["432P0", "432P1"],
        "named as the file names it"
    );

    let unknown = FullImport {
        employers: vec!["123".to_owned(), "Nowhere Trust".to_owned()],
        ..full()
    };
    let errors = plan_staff_file(rows(&[&line]), &employers(), &stored, Some(&unknown))
        .expect_err("refused");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].line, 0);
    assert!(
        errors[0]
            .reason
            .contains("--employer \"123\": no employer numbered 123"),
        "{errors:?}"
    );
}

#[test]
fn the_limit_is_five_percent_of_enabled_staff_at_least_one_or_the_operators_number() {
    assert_eq!(default_leaver_limit(0), 1);
    assert_eq!(default_leaver_limit(19), 1);
    assert_eq!(default_leaver_limit(40), 2);
    assert_eq!(default_leaver_limit(2_000_000), 100_000);

    let stored = accounts();
    // Three of ten people at 999 are missing: over the default limit of 1.
    let lines: Vec<String> = stored[3..10].iter().map(|a| row_of(a, "999")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let plan = plan_staff_file(rows(&lines), &employers(), &stored, Some(&full())).expect("plans");
    let over = plan.over_limit();
    assert_eq!(over.len(), 1);
    assert_eq!((over[0].leavers, over[0].limit), (3, 1));

    let allowed = FullImport {
        max_leavers: Some(3),
        ..full()
    };
    let plan = plan_staff_file(rows(&lines), &employers(), &stored, Some(&allowed)).expect("plans");
    assert!(plan.over_limit().is_empty(), "3 allowed, 3 leave");
    assert_eq!(plan.leavers.len(), 3);
}

#[test]
fn disabled_accounts_and_the_importer_are_never_leavers() {
    let mut stored = accounts();
    stored[1].disabled_at = Some(Timestamp::from_unix(100));
    let importer = FullImport {
        importer: Some(2),
        ..full()
    };
    let lines: Vec<String> = stored[3..10].iter().map(|a| row_of(a, "999")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let plan =
        plan_staff_file(rows(&lines), &employers(), &stored, Some(&importer)).expect("plans");
    assert_eq!(usernames(&plan), ["999P0"]);
    assert_eq!(
        plan.coverage[0].enabled, 9,
        "the disabled account is not counted"
    );
}

#[test]
fn a_leaver_who_appears_again_returns_and_a_hand_disabled_account_does_not() {
    let mut stored = accounts();
    let when = Some(Timestamp::from_unix(100));
    // 999P0 left in a full import; 999P1 was disabled by hand; 999P2 left,
    // then was disabled again by hand later.
    stored[0].disabled_at = when;
    stored[0].left_at = when;
    stored[1].disabled_at = when;
    stored[2].disabled_at = Some(Timestamp::from_unix(200));
    stored[2].left_at = when;
    assert!(stored[0].is_leaver());
    assert!(!stored[1].is_leaver());
    assert!(!stored[2].is_leaver());

    // 999P0 comes back matched by employee number alone (no username).
    let back = format!(
        "999,,Pat,999P0,1980-01-01,999p0@nhs.net,E0\n{}\n{}",
        row_of(&stored[1], "999"),
        row_of(&stored[2], "999")
    );
    let plan = plan_import(rows(&[&back]), &employers(), &stored).expect("plans");
    let returners: Vec<(&str, u64)> = plan
        .returners
        .iter()
        .map(|r| (r.username.as_str(), r.line))
        .collect();
    assert_eq!(returners, [("999P0", 2)], "keeps the username");
    assert!(plan.creates.is_empty(), "matched, not added");
    assert_eq!(plan.unchanged, 2, "a returner is not counted as up to date");
}

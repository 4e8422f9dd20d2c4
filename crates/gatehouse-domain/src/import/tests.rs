//! The staff file, read and planned.

use super::*;
use crate::account::{AllowedDomains, Role};

fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 11, 25)
}

fn allowed() -> AllowedDomains {
    AllowedDomains::parse("nhs.net").expect("valid")
}

fn read(text: &str) -> Result<Vec<StaffRow>, Vec<RowError>> {
    read_staff_file(text.as_bytes(), today(), &allowed())
}

const HEADER: &str = "employer,username,first_name,last_name,date_of_birth,email";

#[test]
fn a_good_file_reads_every_row() {
    let rows = read(&format!(
        "{HEADER}\n999 Demo Trust,,Jane,Smith,1985-03-14,jane.smith@nhs.net\n\
         432,432JDOE01,John,Doe,01/02/1970,John.Doe@NHS.net\n"
    ))
    .expect("valid");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[0].username, None);
    assert_eq!(
        rows[1].username.as_ref().map(|u| u.as_str()),
        Some("432JDOE01")
    );
    assert_eq!(rows[1].date_of_birth.iso(), "1970-02-01");
    assert_eq!(rows[1].role, None, "no role column: roles are left alone");
}

#[test]
fn columns_may_come_in_any_order_with_optional_ones_and_a_bom() {
    let rows = read(
        "\u{feff}Email,role,employee_number,date_of_birth,last_name,first_name,username,employer\n\
         jane@nhs.net,helpdesk,E123,1985-03-14,Smith,Jane,,999\n",
    )
    .expect("valid");
    assert_eq!(rows[0].role, Some(Role::Helpdesk));
    assert_eq!(
        rows[0].employee_number.as_ref().map(|n| n.as_str()),
        Some("E123")
    );
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_reason() {
    let errors = read(&format!(
        "{HEADER},role\n\
         999,,Jane,Smith,1985-03-14,jane@nhs.net,staff\n\
         999,,,Smith,31/02/1985,jane@gmail.com,staff\n\
         999,,Ann,Lee,1985-03-14,not-an-email,boss\n\
         \"999\",\"bad name!\",Bo,Li,2090-01-01,bo@nhs.net,staff\n"
    ))
    .expect_err("invalid");
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 3, 3, 4, 4, 5, 5]);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(text[0].contains("first_name is empty"), "{text:?}");
    assert!(
        text[1].contains("date_of_birth") && text[1].contains("real date"),
        "{text:?}"
    );
    assert!(
        text[2].contains("not in an allowed domain (nhs.net)"),
        "{text:?}"
    );
    assert!(text[3].contains("not an email address"), "{text:?}");
    assert!(text[4].contains("role must be"), "{text:?}");
    assert!(text[5].contains("username may only contain"), "{text:?}");
    assert!(text[6].contains("in the past"), "{text:?}");
}

#[test]
fn header_problems_are_reported_before_rows() {
    let errors = read("employer,username,first_name,emial,date_of_birth\n").expect_err("bad");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|t| t.contains("unknown column \"emial\"")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("missing column \"last_name\"")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("missing column \"email\"")),
        "{text:?}"
    );
    assert!(read("").is_err());
    assert!(
        read(&format!("{HEADER}\n")).is_err(),
        "a header alone imports nobody"
    );
}

/// Defect P5 (docs/security.md): with CRLF line endings (what Excel and most HR
/// systems export, and what RFC 4180 specifies) every line number was
/// one short. The number must be the one a text editor shows, for LF,
/// CRLF and quoted fields holding line breaks.
#[test]
fn line_numbers_are_the_editors_for_lf_crlf_and_quoted_line_breaks() {
    let good = "999,,Jane,Smith,1985-03-14,jane@nhs.net";
    let bad = "999,,Ann,Lee,1985-03-14,not-an-email";
    let quoted = "\"999 Smith,\nJones\",,Bo,Li,1985-03-14,bo@nhs.net";
    for (what, eol) in [("LF", "\n"), ("CRLF", "\r\n")] {
        // Header on line 1, the bad row on line 4.
        let file = [HEADER, good, good, bad, ""].join(eol);
        let errors = read(&file).expect_err("invalid");
        assert_eq!(errors[0].line, 4, "{what}: {errors:?}");
        // A quoted field with a line break takes two lines: the bad
        // row after it is on line 5 in an editor.
        let file = [HEADER, good, &quoted.replace('\n', eol), bad, ""].join(eol);
        let errors = read(&file).expect_err("invalid");
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert!(lines.contains(&5), "{what}, quoted: {errors:?}");
        assert!(!lines.contains(&4), "{what}, quoted: {errors:?}");
        // Good rows are numbered the same way.
        let file = [HEADER, good, "", &good.replace("Jane", "Ann"), ""].join(eol);
        let rows = read(&file).expect("valid");
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4], "{what}");
    }
}

#[test]
fn wrong_field_counts_and_bad_quotes_are_reported() {
    let errors = read(&format!("{HEADER}\n999,,Jane,Smith,1985-03-14\n")).expect_err("bad");
    assert_eq!(errors[0].line, 2);
    assert!(errors[0].reason.contains("5 fields"));
    let errors = read(&format!(
        "{HEADER}\n999,,\"Jane,Smith,1985-03-14,jane@nhs.net\n"
    ))
    .expect_err("bad");
    assert_eq!(errors[0].line, 2);
}

#[test]
fn quoted_fields_may_hold_commas_and_line_breaks_are_refused_in_names() {
    let rows = read(&format!(
        "{HEADER}\n\"999 Smith, Jones and Partners\",,Jane,Smith,1985-03-14,jane@nhs.net\n"
    ))
    .expect("valid");
    assert_eq!(
        rows[0].employer.name.as_deref(),
        Some("Smith, Jones and Partners")
    );
    let errors = read(&format!(
        "{HEADER}\n999,,\"Ja\nne\",Smith,1985-03-14,jane@nhs.net\n"
    ))
    .expect_err("bad");
    assert!(errors[0].reason.contains("control character"), "{errors:?}");
}

/// Defect P7 (docs/security.md): bidirectional controls and line separators were
/// accepted in names, letting an HR file make one person look like
/// another in the console and in emails.
#[test]
fn names_with_bidirectional_controls_or_line_separators_are_refused() {
    for (c, what) in [
        ('\u{202E}', "bidirectional control"),
        ('\u{2066}', "bidirectional control"),
        ('\u{2069}', "bidirectional control"),
        ('\u{200F}', "bidirectional control"),
        ('\u{2028}', "line or paragraph separator"),
        ('\u{2029}', "line or paragraph separator"),
        ('\u{200B}', "invisible character"),
    ] {
        let errors = read(&format!(
            "{HEADER}\n999,,Jane,Smith,1985-03-14,jane@nhs.net\n\
             999,,Ann,Le{c}e,1985-03-14,ann@nhs.net\n\
             999 Tr{c}ust,,Bo,Li,1985-03-14,bo@nhs.net\n"
        ))
        .expect_err("refused");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let code = format!("U+{:04X}", u32::from(c));
        assert_eq!(errors.len(), 2, "{text:?}");
        assert!(
            text[0].starts_with("line 3: last_name contains a") && text[0].contains(what),
            "{text:?}"
        );
        assert!(text[0].contains(&code), "{text:?}");
        assert!(
            text[1].starts_with("line 4: employer contains a") && text[1].contains(what),
            "{text:?}"
        );
    }
    // Scripts that need the zero-width joiners keep them.
    assert!(
        read(&format!(
            "{HEADER}\n999,,Jane,Smi\u{200D}th,1985-03-14,jane@nhs.net\n"
        ))
        .is_ok()
    );
}

#[test]
fn duplicates_within_the_file_are_reported() {
    let errors = read(&format!(
        "{HEADER},employee_number\n\
         999,A1,Jane,Smith,1985-03-14,jane@nhs.net,1\n\
         999,a1,John,Smith,1985-03-14,john@nhs.net,2\n\
         999,,Ann,Lee,1985-03-14,ann@nhs.net,1\n"
    ))
    .expect_err("duplicates");
    assert_eq!(errors.len(), 2);
    assert!(errors[0].reason.contains("also on line 2"));
    assert!(errors[1].reason.contains("employee_number 1"));
}

#[test]
fn not_utf8_is_reported() {
    let mut bytes = format!("{HEADER}\n999,,J").into_bytes();
    bytes.push(0xff);
    bytes.extend_from_slice(b"ne,Smith,1985-03-14,jane@nhs.net\n");
    let errors = read_staff_file(bytes.as_slice(), today(), &allowed()).expect_err("bad");
    assert!(errors[0].reason.contains("not UTF-8"), "{errors:?}");
}

fn demo_rows() -> Vec<StaffRow> {
    read(&format!(
        "{HEADER},employee_number\n\
         999 Demo Trust,,Jane,Smith,1985-03-14,jane.smith@nhs.net,E1\n\
         999 Demo Trust,,John,Smith,1990-01-01,john.smith@nhs.net,E2\n\
         432 Other Trust,,Jane,Smith,1985-03-14,jane.smith@nhs.net,\n\
         Leeds Teaching Hospitals,,Ann,Lee,1970-05-05,ann.lee@nhs.net,\n"
    ))
    .expect("valid")
}

#[test]
fn a_first_import_creates_employers_and_generates_usernames() {
    let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
    let names: Vec<&str> = plan.creates.iter().map(|c| c.username.as_str()).collect();
    assert_eq!(
        names,
        ["999JSMITH01", "999JSMITH02", "432JSMITH01", "900ALEE01"]
    );
    assert!(plan.creates.iter().all(|c| c.generated));
    let codes: Vec<&str> = plan.employers.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["999", "432", "900"]);
    assert_eq!(plan.employers[2].name, "Leeds Teaching Hospitals");
}

fn stored(plan: &ImportPlan) -> (Vec<KnownEmployer>, Vec<KnownAccount>) {
    let employers: Vec<KnownEmployer> = plan
        .employers
        .iter()
        .enumerate()
        .map(|(i, e)| KnownEmployer {
            id: i as i64 + 1,
            code: e.code.clone(),
            name: e.name.clone(),
        })
        .collect();
    let accounts = plan
        .creates
        .iter()
        .enumerate()
        .map(|(i, c)| KnownAccount {
            id: i as i64 + 100,
            employer_id: employers
                .iter()
                .find(|e| e.code == c.employer_code)
                .map(|e| e.id)
                .unwrap_or_default(),
            username: c.username.to_string(),
            first_name: c.row.first_name.as_str().to_owned(),
            last_name: c.row.last_name.as_str().to_owned(),
            date_of_birth: c.row.date_of_birth.iso(),
            email: c.row.email.to_string(),
            employee_number: c
                .row
                .employee_number
                .as_ref()
                .map(|n| n.as_str().to_owned()),
            role: c.row.role.unwrap_or_default(),
            disabled_at: None,
            left_at: None,
        })
        .collect();
    (employers, accounts)
}

#[test]
fn a_file_without_roles_never_demotes_but_an_explicit_role_changes_it() {
    let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
    let (employers, mut accounts) = stored(&plan);
    accounts[0].role = Role::Admin;
    let again = plan_import(demo_rows(), &employers, &accounts).expect("plans");
    assert_eq!(
        again.updates.len(),
        0,
        "no role given: the admin stays admin"
    );
    let mut rows = demo_rows();
    rows[0].role = Some(Role::Staff);
    let demoted = plan_import(rows, &employers, &accounts).expect("plans");
    assert_eq!(demoted.updates.len(), 1);
    assert_eq!(demoted.updates[0].changed, ["role"]);
}

#[test]
fn reimporting_the_same_file_changes_nothing() {
    let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
    let (employers, accounts) = stored(&plan);
    let again = plan_import(demo_rows(), &employers, &accounts).expect("plans");
    assert_eq!(again.creates.len(), 0);
    assert_eq!(again.updates.len(), 0);
    assert_eq!(again.employers.len(), 0);
    assert_eq!(again.unchanged, 4);
}

#[test]
fn reimport_updates_in_place_and_flags_email_changes() {
    let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
    let (employers, accounts) = stored(&plan);
    let changed = read(&format!(
        "{HEADER},employee_number\n\
         999 Demo Trust,,Jane,Smith-Jones,1985-03-14,jane.smith-jones@nhs.net,E1\n\
         999 Demo Trust,,John,Smith,1990-01-01,JOHN.SMITH@nhs.net,E2\n\
         999 Demo Trust,,Zed,New,1999-09-09,zed@nhs.net,E9\n"
    ))
    .expect("valid");
    let plan = plan_import(changed, &employers, &accounts).expect("plans");
    assert_eq!(plan.updates.len(), 2);
    let jane = &plan.updates[0];
    assert_eq!(
        jane.username.as_str(),
        "999JSMITH01",
        "a username is never regenerated"
    );
    assert_eq!(jane.changed, ["last_name", "email"]);
    assert_eq!(jane.old_email.as_deref(), Some("jane.smith@nhs.net"));
    let john = &plan.updates[1];
    assert_eq!(john.changed, ["email"]);
    assert_eq!(
        john.old_email, None,
        "a change of case is not a new address"
    );
    assert_eq!(plan.creates.len(), 1);
    assert_eq!(plan.creates[0].username.as_str(), "999ZNEW01");
}

/// Defect P3 (docs/security.md): the console refused an email change to another
/// person's address, but the staff file accepted it, after which one
/// mailbox received another person's username and reset link.
#[test]
fn the_staff_file_refuses_one_address_for_two_different_people() {
    let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
    let (employers, accounts) = stored(&plan);
    // A newcomer with a stored person's address.
    let rows = read(&format!(
        "{HEADER}\n999 Demo Trust,,Ann,Jones,1980-01-01,John.Smith@nhs.net\n"
    ))
    .expect("valid");
    let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 2);
    assert!(
        errors[0]
            .reason
            .contains("is on file for another person (account 999JSMITH02)"),
        "{errors:?}"
    );
    // A stored person changed to another's address.
    let rows = read(&format!(
        "{HEADER}\n999 Demo Trust,999JSMITH01,Jane,Smith,1985-03-14,ann.lee@nhs.net\n"
    ))
    .expect("valid");
    let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
    assert!(errors[0].reason.contains("account 900ALEE01"), "{errors:?}");
    // Two newcomers in one file: both lines are reported.
    let rows = read(&format!(
        "{HEADER}\n999,,Bo,Li,1980-01-01,shared@nhs.net\n\
         999,,Cy,Ng,1981-01-01,shared@nhs.net\n"
    ))
    .expect("valid");
    let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "line 2: email \"shared@nhs.net\" is also on line 3 for another person: one address must not reach two people's accounts",
            "line 3: email \"shared@nhs.net\" is also on line 2 for another person: one address must not reach two people's accounts",
        ]
    );
    // One person at a third employer may share their address; two
    // people may swap addresses in one file.
    let rows = read(&format!(
        "{HEADER}\n555 Third Trust,,JANE,smith,14/03/1985,jane.smith@nhs.net\n\
         999 Demo Trust,999JSMITH02,John,Smith,1990-01-01,ann.lee@nhs.net\n\
         900,900ALEE01,Ann,Lee,1970-05-05,john.smith@nhs.net\n"
    ))
    .expect("valid");
    let plan = plan_import(rows, &employers, &accounts).expect("allowed");
    assert_eq!((plan.creates.len(), plan.updates.len()), (1, 2));
}

#[test]
fn a_username_cannot_move_a_person_between_employers_or_be_stolen() {
    let plan = plan_import(demo_rows(), &[], &[]).expect("plans");
    let (employers, accounts) = stored(&plan);
    let rows = read(&format!(
        "{HEADER}\n432,999JSMITH01,Jane,Smith,1985-03-14,jane.smith@nhs.net\n"
    ))
    .expect("valid");
    let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
    assert!(
        errors[0]
            .reason
            .contains("belongs to a person at employer 999"),
        "{errors:?}"
    );
    let rows = read(&format!(
        "{HEADER},employee_number\n999,999JSMITH02,Jane,Smith,1985-03-14,jane.smith@nhs.net,E1\n"
    ))
    .expect("valid");
    let errors = plan_import(rows, &employers, &accounts).expect_err("refused");
    assert!(
        errors[0].reason.contains("belong to different people"),
        "{errors:?}"
    );
    let rows = read(&format!(
        "{HEADER},employee_number\n999,999JSMITH02,Jane,Smith,1985-03-14,jane.smith@nhs.net,E1\n"
    ))
    .expect("valid");
    assert!(plan_import(rows, &employers, &accounts).is_err());
}

#[test]
fn explicit_usernames_are_reserved_before_generation() {
    let rows = read(&format!(
        "{HEADER}\n999,,Jane,Smith,1985-03-14,jane@nhs.net\n999,999JSMITH01,John,Smith,1985-03-14,john@nhs.net\n"
    ))
    .expect("valid");
    let plan = plan_import(rows, &[], &[]).expect("plans");
    let names: Vec<&str> = plan.creates.iter().map(|c| c.username.as_str()).collect();
    assert_eq!(names, ["999JSMITH02", "999JSMITH01"]);
}

#[test]
fn a_file_read_row_by_row_keeps_the_problems_of_the_rows_it_skips() {
    let text = format!(
        "{HEADER}\n999,,Jane,Smith,1985-03-14,jane@nhs.net\n\
         999,,,Smith,1985-03-14,ann@nhs.net\n\
         432,,John,Doe,1970-02-01,john@nhs.net\n"
    );
    let allowed = allowed();
    let mut file = StaffFile::open(text.as_bytes(), today(), &allowed).expect("header");
    let lines: Vec<u64> = std::iter::from_fn(|| file.next_row())
        .map(|r| r.line)
        .collect();
    assert_eq!(lines, [2, 4]);
    let problems = file.finish();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, 3);
}

#[test]
fn an_employee_number_twice_at_one_employer_is_a_duplicate_not_at_two() {
    let rows = read(&format!(
        "{HEADER},employee_number\n\
         999,,Jane,Smith,1985-03-14,jane@nhs.net,E1\n\
         432,,John,Doe,1970-02-01,john@nhs.net,E1\n\
         999 Demo Trust,,Ann,Lee,1980-02-01,ann@nhs.net,E1\n"
    ))
    .expect_err("a duplicate");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].to_string(),
        "line 4: employee_number E1 at this employer is also on line 2"
    );
    // The same rule when the rows are checked a part at a time, each with
    // its employer's number.
    let rows = read(&format!(
        "{HEADER},employee_number\n\
         999,,Jane,Smith,1985-03-14,jane@nhs.net,E1\n\
         432,,Ann,Lee,1980-02-01,ann@nhs.net,E1\n"
    ))
    .expect("valid");
    let at = |codes: [&str; 2]| -> Vec<(StaffRow, String)> {
        rows.iter().cloned().zip(codes.map(str::to_owned)).collect()
    };
    assert!(duplicate_numbers(&at(["999", "432"])).is_empty());
    let found = duplicate_numbers(&at(["999", "999"]));
    assert_eq!(
        found.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["line 3: employee_number E1 at this employer is also on line 2"]
    );
}

#[test]
fn rows_of_different_parts_giving_one_address_to_two_people_are_refused() {
    let holder = |line: u64, first: &str, part: usize| AddressHolder {
        line,
        email_key: "shared@nhs.net".to_owned(),
        first_name: first.to_owned(),
        last_name: "Smith".to_owned(),
        date_of_birth: "1985-03-14".to_owned(),
        part,
    };
    // Jane at two employers (one person) is fine; Ann is another person.
    let holders = [
        holder(2, "Jane", 0),
        holder(3, "jane", 1),
        holder(4, "Ann", 2),
    ];
    let problems = shared_between_rows(&holders, |_| true);
    let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [2, 3, 4]);
    // Only rows that add or change a person are refused.
    let problems = shared_between_rows(&holders, |line| line == 4);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].reason.contains("is also on line 2"),
        "{problems:?}"
    );
    // Rows of one part were compared when it was planned.
    let same_part = [holder(2, "Jane", 0), holder(4, "Ann", 0)];
    assert!(shared_between_rows(&same_part, |_| true).is_empty());
}

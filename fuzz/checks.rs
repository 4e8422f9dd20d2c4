//! What each fuzz target asserts, shared by the fuzz targets
//! (`fuzz/fuzz_targets`, coverage-guided, `bash fuzz/run.sh`) and by the
//! test suite, which replays the committed corpus through the same checks on
//! every run (`tests/api/fuzz_corpus.rs`). Each function panics only when the
//! property fails.

use std::collections::BTreeMap;
use std::io::Write as _;

use gatehouse::config::Config;
use gatehouse_core::reset::ResetInput;
use gatehouse_core::sign_in::SignInInput;
use gatehouse_domain::import::{plan_import, read_staff_file};
use gatehouse_domain::recovery::{RecoveryInput, check_recovery_form};
use gatehouse_domain::{AllowedDomains, EmailAddress, UsernameKey};

/// The staff file (`gatehouse import`, the console's upload): any bytes
/// either become rows and a plan, or a list of row errors; never a panic.
pub fn staff_file(data: &[u8]) {
    let today = jiff::civil::date(2026, 11, 29);
    if let Ok(rows) = read_staff_file(data, today, &AllowedDomains::default()) {
        let _ = plan_import(rows, &[], &[]);
    }
}

/// Form bodies as axum decodes them (`application/x-www-form-urlencoded`
/// through serde_urlencoded) into each form Gatehouse takes, then the
/// domain's checks on what was typed; never a panic.
pub fn forms(data: &[u8]) {
    let today = jiff::civil::date(2026, 11, 29);
    if let Ok(input) = serde_urlencoded::from_bytes::<RecoveryInput>(data) {
        let _ = check_recovery_form(&input, today, &AllowedDomains::default());
        let _ = EmailAddress::parse(&input.email);
    }
    if let Ok(input) = serde_urlencoded::from_bytes::<SignInInput>(data) {
        let _ = UsernameKey::from_typed(&input.username);
        let _ = gatehouse_domain::password::normalise(&input.password);
    }
    let _ = serde_urlencoded::from_bytes::<ResetInput>(data);
}

/// Configuration: a TOML file and environment variables, as `gatehouse`
/// reads them at start-up. Any input ends in a configuration or in one
/// error line naming the setting; never a panic. The input is the TOML
/// text, then a NUL byte, then `NAME=value` lines (NAME without the
/// `GATEHOUSE_` prefix).
pub fn config(data: &[u8]) {
    let (toml, env) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let env: BTreeMap<String, String> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            (
                format!("GATEHOUSE_{}", k.to_ascii_uppercase()),
                v.to_owned(),
            )
        })
        .collect();
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(toml).is_err() {
        return;
    }
    if let Err(e) = Config::from_sources(Some(file.path()), &env) {
        let message = e.to_string();
        assert!(!message.contains('\n'), "one line: {message:?}");
    }
}

//! Configuration: a TOML file and environment variables, as `gatehouse`
//! reads them at start-up. Any input ends in a configuration or in one
//! error line naming the setting; never a panic. The input is the TOML
//! text, then a NUL byte, then `NAME=value` lines (NAME without the
//! `GATEHOUSE_` prefix).
#![no_main]

use std::collections::BTreeMap;
use std::io::Write as _;

use gatehouse::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});

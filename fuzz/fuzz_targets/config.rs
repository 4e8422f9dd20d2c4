//! Configuration from a TOML file and GATEHOUSE_ variables.
//! The property is `checks::config` (`fuzz/checks.rs`), which the test
//! suite also runs over the committed corpus.
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config(data));

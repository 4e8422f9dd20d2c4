//! Form bodies decoded as axum does, then the domain's checks.
//! The property is `checks::forms` (`fuzz/checks.rs`), which the test
//! suite also runs over the committed corpus.
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::forms(data));

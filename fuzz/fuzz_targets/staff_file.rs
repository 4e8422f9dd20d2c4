//! The staff file: any bytes become rows and a plan, or row errors.
//! The property is `checks::staff_file` (`fuzz/checks.rs`), which the test
//! suite also runs over the committed corpus.
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::staff_file(data));

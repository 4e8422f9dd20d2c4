//! The fuzz targets' committed corpus (`fuzz/corpus`), replayed through the
//! same checks the fuzzer runs (`fuzz/checks.rs`) on every test run: the
//! inputs that once found a crash, and the ones that reach each branch of
//! the parsers, stay fixed without building the fuzzer. Coverage-guided
//! fuzzing itself is `bash fuzz/run.sh [seconds]`.

use std::path::Path;

#[allow(dead_code)] // the replay names each check once
#[path = "../../fuzz/checks.rs"]
mod checks;

/// Every file of `fuzz/corpus/<target>`, through `check`; the number replayed.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check",
            path.display()
        );
        count += 1;
    }
    count
}

#[test]
fn the_staff_file_corpus_parses_without_a_panic() {
    assert!(replay("staff_file", checks::staff_file) > 100);
}

#[test]
fn the_form_corpus_decodes_without_a_panic() {
    assert!(replay("forms", checks::forms) > 100);
}

#[test]
fn the_configuration_corpus_ends_in_a_configuration_or_one_line() {
    assert!(replay("config", checks::config) > 100);
}

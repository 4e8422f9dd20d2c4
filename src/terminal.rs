//! What the command line prints from records, and how it refuses.

use std::process::ExitCode;

use serde_json::json;

/// Text from records, with control characters shown escaped so nothing typed
/// by anyone can move the cursor or forge a line in an operator's terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Prints a refusal (as `{"error": …}` with `--json`) and gives `code`.
pub fn refuse(json: bool, code: u8, message: &str) -> ExitCode {
    if json {
        println!("{}", json!({ "error": message }));
    } else {
        eprintln!("{}", printable(message));
    }
    ExitCode::from(code)
}

//! What the command line prints from records.

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

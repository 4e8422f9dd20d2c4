//! Logging: to standard error, as text or JSON lines. `GATEHOUSE_LOG` sets
//! the filter (default `info`). Nothing logged carries a password, a token or
//! a session id: requests are logged by route pattern, not path.

use tracing_subscriber::EnvFilter;

/// Starts logging (once; later calls do nothing).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lettre=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

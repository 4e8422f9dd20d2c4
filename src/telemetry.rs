//! Logging: to standard error, as text or JSON lines. `GATEHOUSE_LOG` sets
//! the filter (default `info`). Nothing logged carries a password, a token or
//! a session id: requests are logged by route pattern, not path.

use tracing_subscriber::EnvFilter;

/// Starts logging (once; later calls do nothing). With `bulk`, for a
/// command whose statements run long by design (`gatehouse import`),
/// sqlx's warnings about slow statements are left out by default.
pub fn init(json: bool, bulk: bool) {
    let default = if bulk {
        "info,sqlx=warn,sqlx::query=error,lettre=warn"
    } else {
        "info,sqlx=warn,lettre=warn"
    };
    let filter =
        EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
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

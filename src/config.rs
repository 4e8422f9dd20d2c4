//! Configuration: embedded defaults, then a TOML file (`--config`), then
//! `GATEHOUSE_*` environment variables; the environment wins.
//!
//! Every setting is checked at start-up. A bad value stops the process with
//! one line that names the variable and says what is wrong, never with a
//! panic or a half-started service.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use gatehouse_domain::{AllowedDomains, Policy, Span};
use gatehouse_mail::MailUrl;

/// One setting: its TOML key (the variable is `GATEHOUSE_` + upper case), default and meaning.
struct Setting {
    key: &'static str,
    default: &'static str,
    meaning: &'static str,
}

/// Every setting, in the order the README documents them.
const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        default: "127.0.0.1:8080",
        meaning: "address to listen on",
    },
    Setting {
        key: "public_url",
        default: "http://127.0.0.1:8080",
        meaning: "the only origin used in links; never the Host header",
    },
    Setting {
        key: "database_url",
        default: "sqlite://gatehouse-data/gatehouse.db",
        meaning: "sqlite://PATH (one node; created and migrated on start) or postgres://USER:PASSWORD@HOST/DB (several nodes; run `gatehouse migrate` once per deploy)",
    },
    Setting {
        key: "mail_url",
        default: "file://gatehouse-data/outbox",
        meaning: "file://DIR writes .eml files; smtp://HOST:PORT requires STARTTLS unless ?tls=none; smtps://HOST:PORT implicit TLS; user and password in the URL",
    },
    Setting {
        key: "mail_from",
        default: "Gatehouse <no-reply@localhost>",
        meaning: "sender",
    },
    Setting {
        key: "allowed_email_domains",
        default: "nhs.net",
        meaning: "comma-separated; email goes to these domains only",
    },
    Setting {
        key: "reset_link_ttl",
        default: "4h",
        meaning: "lifetime of a reset link (90s, 15m, 4h forms)",
    },
    Setting {
        key: "lockout_threshold",
        default: "3",
        meaning: "consecutive failures that lock an account",
    },
    Setting {
        key: "lockout_duration",
        default: "12h",
        meaning: "how long the lock lasts",
    },
    Setting {
        key: "service_name",
        default: "Electronic Staff Record",
        meaning: "the name shown on pages and in emails",
    },
    Setting {
        key: "lockout_max_failures",
        default: "100",
        meaning: "failures in all (not reset by time) that disable the password until a reset",
    },
    Setting {
        key: "recovery_emails_per_hour",
        default: "3",
        meaning: "recovery emails per address on record per hour",
    },
    Setting {
        key: "recovery_requests_per_client_per_hour",
        default: "10000",
        meaning: "recovery requests per client address per hour",
    },
    Setting {
        key: "link_guesses_per_client_per_hour",
        default: "100",
        meaning: "unknown reset links opened per client address per hour before its links are refused",
    },
    Setting {
        key: "password_min_length",
        default: "12",
        meaning: "fewest characters in a password",
    },
    Setting {
        key: "session_idle_timeout",
        default: "30m",
        meaning: "a session ends this long after its last request",
    },
    Setting {
        key: "session_absolute_timeout",
        default: "12h",
        meaning: "a session ends this long after sign-in",
    },
    Setting {
        key: "time_zone",
        default: "Europe/London",
        meaning: "the time zone of times shown to people",
    },
    Setting {
        key: "hash_concurrency",
        default: "0",
        meaning: "password-hashing threads, so hashes at once (0: one per CPU core)",
    },
    Setting {
        key: "trust_x_forwarded_for",
        default: "false",
        meaning: "take the client address from X-Forwarded-For (only behind a proxy that sets it)",
    },
    Setting {
        key: "database_max_connections",
        default: "10",
        meaning: "database connections per process",
    },
    Setting {
        key: "database_timeout",
        default: "10s",
        meaning: "how long to wait for a database connection (and, on SQLite, for the write lock)",
    },
    Setting {
        key: "mail_timeout",
        default: "20s",
        meaning: "how long to wait for the mail server before a try counts as failed",
    },
    Setting {
        key: "hash_wait",
        default: "2s",
        meaning: "how long a sign-in waits for a free password hasher before \"busy, try again\"",
    },
    Setting {
        key: "header_timeout",
        default: "10s",
        meaning: "how long a client may take to send a request's headers before the connection is closed (slow clients)",
    },
    Setting {
        key: "request_timeout",
        default: "30s",
        meaning: "how long a request may take in all before it is abandoned with a 503 \"taking too long\" page (longer than database_timeout + hash_wait); console staff-file uploads and imports are exempt",
    },
    Setting {
        key: "worker_lease",
        default: "60s",
        meaning: "how long a worker holds an email or request before another node may take it (longer than mail_timeout)",
    },
    Setting {
        key: "console_upload_mib",
        default: "256",
        meaning: "largest staff file an administrator can upload in the console, in MiB (bigger files: gatehouse import)",
    },
    Setting {
        key: "device_cookies",
        default: "false",
        meaning: "remember browsers that have signed in: their failures are counted apart, so guesses from elsewhere that lock an account do not lock out its owner's own browser (docs/security.md)",
    },
    Setting {
        key: "allow_early_unlock",
        default: "false",
        meaning: "let an administrator lift a lock before it ends (the seed's policy is that nobody can); audited",
    },
    Setting {
        key: "log_format",
        default: "text",
        meaning: "text or json",
    },
];

/// A configuration problem: one line naming the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration, every value checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GATEHOUSE_LISTEN`.
    pub listen: SocketAddr,
    /// `GATEHOUSE_PUBLIC_URL`.
    pub public_url: url::Url,
    /// `GATEHOUSE_DATABASE_URL`.
    pub database_url: String,
    /// `GATEHOUSE_MAIL_URL`.
    pub mail_url: MailUrl,
    /// `GATEHOUSE_MAIL_FROM`.
    pub mail_from: String,
    /// `GATEHOUSE_ALLOWED_EMAIL_DOMAINS`.
    pub allowed_domains: AllowedDomains,
    /// `GATEHOUSE_SERVICE_NAME`.
    pub service_name: String,
    /// Link lifetime, lockout, password, recovery and session policies.
    pub policy: Policy,
    /// `GATEHOUSE_TIME_ZONE`.
    pub time_zone: jiff::tz::TimeZone,
    /// `GATEHOUSE_HASH_CONCURRENCY` (resolved: never 0).
    pub hash_concurrency: usize,
    /// `GATEHOUSE_TRUST_X_FORWARDED_FOR`.
    pub trust_forwarded_for: bool,
    /// `GATEHOUSE_ALLOW_EARLY_UNLOCK`.
    pub allow_early_unlock: bool,
    /// `GATEHOUSE_DEVICE_COOKIES`.
    pub device_cookies: bool,
    /// `GATEHOUSE_CONSOLE_UPLOAD_MIB`, in bytes.
    pub console_upload_limit: usize,
    /// `GATEHOUSE_DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: u32,
    /// `GATEHOUSE_DATABASE_TIMEOUT`.
    pub database_timeout: Span,
    /// `GATEHOUSE_MAIL_TIMEOUT`.
    pub mail_timeout: Span,
    /// `GATEHOUSE_HASH_WAIT`.
    pub hash_wait: Span,
    /// `GATEHOUSE_HEADER_TIMEOUT`.
    pub header_timeout: Span,
    /// `GATEHOUSE_REQUEST_TIMEOUT`.
    pub request_timeout: Span,
    /// `GATEHOUSE_WORKER_LEASE`.
    pub worker_lease: Span,
    /// `GATEHOUSE_LOG_FORMAT` is json.
    pub log_json: bool,
}

/// The environment variable for a setting.
pub fn variable(key: &str) -> String {
    format!("GATEHOUSE_{}", key.to_ascii_uppercase())
}

/// Where a value came from, for error messages.
#[derive(Clone)]
enum Source {
    Default,
    File(String),
    Environment,
}

struct Raw {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Raw {
    fn get(&self, key: &'static str) -> (&str, &Source) {
        self.values
            .get(key)
            .map_or(("", &Source::Default), |(v, s)| (v.as_str(), s))
    }

    /// Parses one setting; the error names the variable (and the file, if it came from there).
    fn parse<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let (value, source) = self.get(key);
        parse(value.trim()).map_err(|why| {
            let origin = match source {
                Source::Default => " (default)".to_owned(),
                Source::File(path) => format!(" (key {key} in {path})"),
                Source::Environment => String::new(),
            };
            ConfigError(format!("{}{origin}: {why}", variable(key)))
        })
    }
}

fn number<T>(min: T, max: T) -> impl FnOnce(&str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    move |s| match s.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!(
            "expected a whole number from {min} to {max}, got {s:?}"
        )),
    }
}

fn span(s: &str) -> Result<Span, String> {
    s.parse::<Span>().map_err(|e| e.to_string())
}

fn boolean(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

impl Config {
    /// Loads the configuration from an optional TOML file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("GATEHOUSE_"))
            .collect();
        for name in env.keys() {
            let known = SETTINGS.iter().any(|s| {
                let v = variable(s.key);
                *name == v || *name == format!("{v}_FILE")
            }) || matches!(name.as_str(), "GATEHOUSE_CONFIG" | "GATEHOUSE_LOG");
            if !known {
                eprintln!("warning: unknown environment variable {name} is ignored");
            }
        }
        Self::from_sources(file, &env)
    }

    /// Builds the configuration from a TOML file and a set of variables (for tests).
    pub fn from_sources(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut values: BTreeMap<&'static str, (String, Source)> = SETTINGS
            .iter()
            .map(|s| (s.key, (s.default.to_owned(), Source::Default)))
            .collect();
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("--config {shown}: cannot read it: {e}")))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError(format!("--config {shown}: not valid TOML: {}", e.message()))
            })?;
            for (key, value) in table {
                if let Some(base) = key.strip_suffix("_file")
                    && let Some(setting) = SETTINGS.iter().find(|s| s.key == base)
                {
                    let toml::Value::String(path) = value else {
                        return Err(ConfigError(format!(
                            "--config {shown}: key {key}: expected the path of a file"
                        )));
                    };
                    let text = read_secret(&format!("{key} in {shown}"), &path)?;
                    values.insert(setting.key, (text, Source::File(shown.clone())));
                    continue;
                }
                let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
                    return Err(ConfigError(format!(
                        "--config {shown}: unknown key {key:?}; the keys are the variable names without GATEHOUSE_, in lower case (listen, public_url, …)"
                    )));
                };
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(ConfigError(format!(
                            "--config {shown}: key {key}: expected a string, number or true/false, got {}",
                            other.type_str()
                        )));
                    }
                };
                values.insert(setting.key, (text, Source::File(shown.clone())));
            }
        }
        for setting in SETTINGS {
            let name = variable(setting.key);
            let file_name = format!("{name}_FILE");
            match (env.get(&name), env.get(&file_name)) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError(format!(
                        "{name}: set {name} or {file_name}, not both"
                    )));
                }
                (Some(value), None) => {
                    values.insert(setting.key, (value.clone(), Source::Environment));
                }
                (None, Some(path)) => {
                    values.insert(
                        setting.key,
                        (read_secret(&file_name, path)?, Source::Environment),
                    );
                }
                (None, None) => {}
            }
        }
        Self::check(&Raw { values })
    }

    fn check(raw: &Raw) -> Result<Self, ConfigError> {
        let listen = raw.parse("listen", |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                format!("expected an address and port such as 127.0.0.1:8080, got {s:?}")
            })
        })?;
        let public_url = raw.parse("public_url", |s| {
            let url = url::Url::parse(s).map_err(|e| format!("not a URL ({e}): {s:?}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("must start with http:// or https://, got {s:?}"));
            }
            if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "must be an origin such as https://esr.example.org, got {s:?}"
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err("must not contain a user name or password".to_owned());
            }
            Ok(url)
        })?;
        let database_url = raw.parse("database_url", |s| {
            if s.starts_with("sqlite:") {
                Ok(s.to_owned())
            } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
                url::Url::parse(s).map_err(|e| format!("not a URL ({e}): {:?}", redact_url(s)))?;
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "expected sqlite://PATH or postgres://USER:PASSWORD@HOST/DATABASE, got {:?}",
                    redact_url(s)
                ))
            }
        })?;
        let mail_url = raw.parse("mail_url", MailUrl::parse)?;
        let mail_from = raw.parse("mail_from", |s| {
            s.parse::<gatehouse_mail::Mailbox>()
                .map(|_| s.to_owned())
                .map_err(|e| {
                    format!("expected a sender such as 'Gatehouse <no-reply@example.org>': {e}")
                })
        })?;
        let allowed_domains = raw.parse("allowed_email_domains", AllowedDomains::parse)?;
        let reset_link_ttl = raw.parse("reset_link_ttl", span)?;
        let threshold = raw.parse("lockout_threshold", number(1u32, 100))?;
        let duration = raw.parse("lockout_duration", span)?;
        let service_name = raw.parse("service_name", |s| {
            if s.is_empty() || s.chars().count() > 80 || s.chars().any(char::is_control) {
                Err("expected a name of 1 to 80 printable characters".to_owned())
            } else {
                Ok(s.to_owned())
            }
        })?;
        let max_failures = raw.parse("lockout_max_failures", number(1u32, 100))?;
        if max_failures < threshold {
            return Err(ConfigError(format!(
                "{}: must be at least GATEHOUSE_LOCKOUT_THRESHOLD ({threshold}), got {max_failures}",
                variable("lockout_max_failures")
            )));
        }
        let emails_per_hour = raw.parse("recovery_emails_per_hour", number(1u32, 1000))?;
        let client_limit = raw.parse(
            "recovery_requests_per_client_per_hour",
            number(1u32, 10_000_000),
        )?;
        let link_guesses =
            raw.parse("link_guesses_per_client_per_hour", number(1u32, 10_000_000))?;
        let min_length = raw.parse("password_min_length", number(8usize, 128))?;
        let idle = raw.parse("session_idle_timeout", span)?;
        let absolute = raw.parse("session_absolute_timeout", span)?;
        let time_zone = raw.parse("time_zone", |s| {
            jiff::tz::TimeZone::get(s)
                .map_err(|_| format!("unknown time zone {s:?} (try Europe/London or UTC)"))
        })?;
        let hash_concurrency = raw.parse("hash_concurrency", number(0usize, 1024))?;
        let hash_concurrency = if hash_concurrency == 0 {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        } else {
            hash_concurrency
        };
        let trust_forwarded_for = raw.parse("trust_x_forwarded_for", boolean)?;
        let allow_early_unlock = raw.parse("allow_early_unlock", boolean)?;
        let device_cookies = raw.parse("device_cookies", boolean)?;
        let console_upload_limit =
            raw.parse("console_upload_mib", number(1usize, 4096))? * 1024 * 1024;
        let database_max_connections = raw.parse("database_max_connections", number(1u32, 1000))?;
        let database_timeout = raw.parse("database_timeout", span)?;
        let mail_timeout = raw.parse("mail_timeout", span)?;
        let hash_wait = raw.parse("hash_wait", span)?;
        let header_timeout = raw.parse("header_timeout", span)?;
        let request_timeout = raw.parse("request_timeout", span)?;
        // The bound is for a request stuck on a database that stopped
        // answering mid-statement; a request that only waited its full turn
        // for a connection and then for a hasher must get its own "busy"
        // answer first, which says more than "taking too long".
        let slowest_busy = database_timeout.to_std() + hash_wait.to_std();
        if request_timeout.to_std() <= slowest_busy {
            return Err(ConfigError(format!(
                "{}: must be longer than GATEHOUSE_DATABASE_TIMEOUT ({database_timeout}) + GATEHOUSE_HASH_WAIT ({hash_wait}), got {request_timeout}",
                variable("request_timeout")
            )));
        }
        let worker_lease = raw.parse("worker_lease", span)?;
        if worker_lease <= mail_timeout {
            return Err(ConfigError(format!(
                "{}: must be longer than GATEHOUSE_MAIL_TIMEOUT ({mail_timeout}), got {worker_lease}",
                variable("worker_lease")
            )));
        }
        let log_json = raw.parse("log_format", |s| match s {
            "text" => Ok(false),
            "json" => Ok(true),
            _ => Err(format!("expected text or json, got {s:?}")),
        })?;
        let defaults = Policy::default();
        let policy = Policy {
            reset_link_ttl,
            lockout: gatehouse_domain::LockoutPolicy {
                threshold,
                duration,
                max_total_failures: max_failures,
            },
            password: gatehouse_domain::PasswordPolicy {
                min_length,
                ..defaults.password
            },
            recovery: gatehouse_domain::RecoveryPolicy {
                emails_per_address_per_hour: emails_per_hour,
                requests_per_client_per_hour: client_limit,
                link_guesses_per_client_per_hour: link_guesses,
            },
            session: gatehouse_domain::SessionPolicy {
                idle_timeout: idle,
                absolute_timeout: absolute,
            },
        };
        Ok(Config {
            listen,
            public_url,
            database_url,
            mail_url,
            mail_from,
            allowed_domains,
            service_name,
            policy,
            time_zone,
            hash_concurrency,
            trust_forwarded_for,
            allow_early_unlock,
            device_cookies,
            console_upload_limit,
            database_max_connections,
            database_timeout,
            mail_timeout,
            hash_wait,
            header_timeout,
            request_timeout,
            worker_lease,
            log_json,
        })
    }

    /// The settings table for `--help` and the README: variable, default, meaning.
    pub fn table() -> Vec<(String, &'static str, &'static str)> {
        SETTINGS
            .iter()
            .map(|s| (variable(s.key), s.default, s.meaning))
            .collect()
    }
}

/// The contents of a secret file (a `*_FILE` setting), without the final line break.
fn read_secret(name: &str, path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{name}: cannot read {path}: {e}")))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// A URL with any password replaced, for messages.
pub fn redact_url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_readme_documents_every_setting_with_its_default() {
        let readme = include_str!("../README.md");
        for (name, default, _) in Config::table() {
            let row = format!("| `{name}` | `{default}` |");
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }

    #[test]
    fn the_embedded_defaults_are_valid() {
        let c = Config::from_sources(None, &env(&[])).expect("defaults load");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.policy.reset_link_ttl, Span::hours(4));
        assert_eq!(c.policy.lockout.threshold, 3);
        assert_eq!(c.policy.lockout.duration, Span::hours(12));
        assert_eq!(c.service_name, "Electronic Staff Record");
        assert!(c.hash_concurrency >= 1);
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_variable() {
        let cases = [
            ("GATEHOUSE_LOCKOUT_THRESHOLD", "abc"),
            ("GATEHOUSE_LOCKOUT_THRESHOLD", "0"),
            ("GATEHOUSE_RESET_LINK_TTL", "4 hours"),
            ("GATEHOUSE_LISTEN", "localhost"),
            ("GATEHOUSE_PUBLIC_URL", "esr.example.org"),
            ("GATEHOUSE_PUBLIC_URL", "https://esr.example.org/?x=1"),
            ("GATEHOUSE_MAIL_URL", "http://mail"),
            ("GATEHOUSE_ALLOWED_EMAIL_DOMAINS", " , "),
            ("GATEHOUSE_DATABASE_URL", "mysql://x"),
            ("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "0"),
            ("GATEHOUSE_WORKER_LEASE", "10s"),
            ("GATEHOUSE_REQUEST_TIMEOUT", "forever"),
            ("GATEHOUSE_MAIL_FROM", "not an address"),
            ("GATEHOUSE_TIME_ZONE", "Mars/Olympus"),
            ("GATEHOUSE_LOG_FORMAT", "xml"),
        ];
        for (name, value) in cases {
            let e = Config::from_sources(None, &env(&[(name, value)]))
                .expect_err(&format!("{name}={value} should be refused"));
            assert!(e.0.starts_with(name), "{e}");
            assert!(!e.0.contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_request_timeout_not_above_the_database_timeout_plus_the_hash_wait_is_refused() {
        // 10s + 2s by default: 12s is not enough, 13s is.
        for value in ["12s", "5s"] {
            let e = Config::from_sources(None, &env(&[("GATEHOUSE_REQUEST_TIMEOUT", value)]))
                .expect_err(&format!("{value} should be refused"));
            assert!(
                e.0.starts_with(
                    "GATEHOUSE_REQUEST_TIMEOUT: must be longer than GATEHOUSE_DATABASE_TIMEOUT"
                ),
                "{e}"
            );
            assert!(!e.0.contains('\n'), "{e}");
        }
        let c = Config::from_sources(None, &env(&[("GATEHOUSE_REQUEST_TIMEOUT", "13s")]))
            .expect("longer than both");
        assert_eq!(c.request_timeout, Span::from_seconds(13));
        let e = Config::from_sources(
            None,
            &env(&[
                ("GATEHOUSE_REQUEST_TIMEOUT", "3s"),
                ("GATEHOUSE_DATABASE_TIMEOUT", "1s"),
                ("GATEHOUSE_HASH_WAIT", "2s"),
            ]),
        )
        .expect_err("equal is not longer");
        assert!(e.0.starts_with("GATEHOUSE_REQUEST_TIMEOUT"), "{e}");
        // Raising the database timeout alone makes the default too short.
        let e = Config::from_sources(None, &env(&[("GATEHOUSE_DATABASE_TIMEOUT", "30s")]))
            .expect_err("the default 30s is then too short");
        assert!(e.0.starts_with("GATEHOUSE_REQUEST_TIMEOUT"), "{e}");
        let c = Config::from_sources(None, &env(&[])).expect("defaults");
        assert_eq!(c.request_timeout, Span::from_seconds(30));
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(
            &path,
            "service_name = \"Staff Portal\"\nlockout_threshold = 5\nreset_link_ttl = \"15m\"\n",
        )
        .expect("write");
        let c = Config::from_sources(Some(&path), &env(&[("GATEHOUSE_LOCKOUT_THRESHOLD", "4")]))
            .expect("loads");
        assert_eq!(c.service_name, "Staff Portal");
        assert_eq!(c.policy.lockout.threshold, 4);
        assert_eq!(c.policy.reset_link_ttl, Span::minutes(15));
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = dir.path().join("db-url");
        std::fs::write(
            &secret,
            "postgres://gatehouse:s3cret@db.internal/gatehouse\n",
        )
        .expect("write");
        let path = secret.display().to_string();
        let c = Config::from_sources(None, &env(&[("GATEHOUSE_DATABASE_URL_FILE", &path)]))
            .expect("loads");
        assert_eq!(
            c.database_url,
            "postgres://gatehouse:s3cret@db.internal/gatehouse"
        );
        let e = Config::from_sources(
            None,
            &env(&[
                ("GATEHOUSE_DATABASE_URL_FILE", &path),
                ("GATEHOUSE_DATABASE_URL", "sqlite://x"),
            ]),
        )
        .expect_err("both");
        assert!(e.0.starts_with("GATEHOUSE_DATABASE_URL: set"), "{e}");
        let e = Config::from_sources(None, &env(&[("GATEHOUSE_MAIL_URL_FILE", "/no/such/file")]))
            .expect_err("missing");
        assert!(
            e.0.starts_with("GATEHOUSE_MAIL_URL_FILE: cannot read /no/such/file"),
            "{e}"
        );
        let toml = dir.path().join("gatehouse.toml");
        std::fs::write(&toml, format!("database_url_file = {path:?}\n")).expect("write");
        let c = Config::from_sources(Some(&toml), &env(&[])).expect("loads");
        assert!(c.database_url.starts_with("postgres://"));
        // A bad secret's value is never repeated in the error.
        std::fs::write(&secret, "mysql://user:hunter2@db/x").expect("write");
        let e = Config::from_sources(None, &env(&[("GATEHOUSE_DATABASE_URL_FILE", &path)]))
            .expect_err("refused");
        assert!(!e.0.contains("hunter2"), "{e}");
    }

    #[test]
    fn file_errors_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, "lockout_duration = \"forever\"\n").expect("write");
        let e = Config::from_sources(Some(&path), &env(&[])).expect_err("refused");
        assert!(
            e.0.starts_with("GATEHOUSE_LOCKOUT_DURATION (key lockout_duration in"),
            "{e}"
        );
        std::fs::write(&path, "lockout_threshhold = 3\n").expect("write");
        let e = Config::from_sources(Some(&path), &env(&[])).expect_err("refused");
        assert!(e.0.contains("unknown key \"lockout_threshhold\""), "{e}");
        std::fs::write(&path, "listen = [\n").expect("write");
        let e = Config::from_sources(Some(&path), &env(&[])).expect_err("refused");
        assert!(e.0.contains("not valid TOML"), "{e}");
        assert!(!e.0.contains('\n'), "{e}");
    }
}

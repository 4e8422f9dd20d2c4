//! Configuration: embedded defaults, then a TOML file (`--config`), then
//! `GATEHOUSE_*` environment variables; the environment wins.
//!
//! Every setting is checked at start-up. A bad value stops the process with
//! one line that names the variable and says what is wrong, never with a
//! panic or a half-started service.

mod parse;
mod settings;

use std::collections::BTreeMap;
use std::path::Path;

pub use settings::Config;
use settings::{SETTINGS, Settings};

/// One setting's row in the table: its TOML key (the variable is
/// `GATEHOUSE_` + upper case), default and meaning.
struct Setting {
    key: &'static str,
    default: &'static str,
    meaning: &'static str,
}

/// A configuration problem: one line naming the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

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
        Settings::parse(&Raw { values })?.into_config()
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
    use gatehouse_domain::Span;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_readme_documents_every_setting_with_its_default() {
        let readme = include_str!("../../README.md");
        for (name, default, _) in Config::table() {
            // An empty default is written "(none)".
            let row = if default.is_empty() {
                format!("| `{name}` | (none) |")
            } else {
                format!("| `{name}` | `{default}` |")
            };
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }

    #[test]
    fn the_readme_configuration_table_lists_exactly_the_settings_in_order() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README.md has a Configuration section");
        let documented: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
            .filter(|name| name.starts_with("GATEHOUSE_"))
            .collect();
        let declared: Vec<String> = Config::table().into_iter().map(|(name, ..)| name).collect();
        assert_eq!(documented, declared);
    }

    #[test]
    fn every_setting_refuses_a_bad_value_in_one_line_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gatehouse.toml");
        for setting in SETTINGS {
            let name = variable(setting.key);
            let e = Config::from_sources(None, &env(&[(&name, "\u{7}")]))
                .expect_err(&format!("{name} should refuse a control character"));
            assert!(e.0.starts_with(&format!("{name}: ")), "{e}");
            assert!(!e.0.contains('\n'), "{e}");
            std::fs::write(&path, format!("{} = \"\\u0007\"\n", setting.key)).expect("write");
            let e = Config::from_sources(Some(&path), &env(&[])).expect_err("refused");
            let origin = format!("{name} (key {} in {}): ", setting.key, path.display());
            assert!(e.0.starts_with(&origin), "{e}");
        }
    }

    #[test]
    fn passkeys_need_a_domain_and_passkey_only_needs_passkeys() {
        // The default public URL is an address, which browsers refuse as a
        // relying party id.
        let e = Config::from_sources(None, &env(&[("GATEHOUSE_PASSKEYS", "true")]))
            .expect_err("refused");
        assert!(e.0.starts_with("GATEHOUSE_PASSKEYS: "), "{e}");
        let on = [
            ("GATEHOUSE_PASSKEYS", "true"),
            ("GATEHOUSE_PUBLIC_URL", "http://localhost:8080"),
        ];
        assert!(
            Config::from_sources(None, &env(&on))
                .expect("loads")
                .passkeys
        );
        let e = Config::from_sources(
            None,
            &env(&[("GATEHOUSE_PRIVILEGED_SECOND_FACTOR", "passkey")]),
        )
        .expect_err("refused");
        assert!(
            e.0.starts_with("GATEHOUSE_PRIVILEGED_SECOND_FACTOR: "),
            "{e}"
        );
    }

    #[test]
    fn the_embedded_defaults_are_valid() {
        let c = Config::from_sources(None, &env(&[])).expect("defaults load");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.metrics_listen, None, "metrics are off unless asked for");
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
            ("GATEHOUSE_METRICS_LISTEN", "9090"),
            ("GATEHOUSE_METRICS_LISTEN", "localhost:9090"),
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
            ("GATEHOUSE_ACCESS_TOKEN_LIFETIME", "30s"),
            ("GATEHOUSE_ACCESS_TOKEN_LIFETIME", "2d"),
            ("GATEHOUSE_KEY_ENCRYPTION_KEY", "c2hvcnQ="),
            ("GATEHOUSE_KEY_ENCRYPTION_KEY", "not base64 at all!"),
            ("GATEHOUSE_PASSKEYS", "maybe"),
            ("GATEHOUSE_PRIVILEGED_SECOND_FACTOR", "sms"),
        ];
        for (name, value) in cases {
            let e = Config::from_sources(None, &env(&[(name, value)]))
                .expect_err(&format!("{name}={value} should be refused"));
            assert!(e.0.starts_with(name), "{e}");
            assert!(!e.0.contains('\n'), "{e}");
            if name.ends_with("ENCRYPTION_KEY") {
                assert!(!e.0.contains(value), "a key is never repeated: {e}");
            }
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

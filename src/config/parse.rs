//! The parsers of setting values. Each returns only why a value is refused:
//! `Raw::parse` puts the variable's name and the value's origin in front, so
//! every message has the same shape.

use std::net::SocketAddr;

use gatehouse_domain::Span;

use super::redact_url;

/// A whole number from `min` to `max`, both included.
pub(super) fn number<T>(min: T, max: T) -> impl FnOnce(&str) -> Result<T, String>
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

/// A length of time: `90s`, `15m`, `4h` or `2d`.
pub(super) fn span(s: &str) -> Result<Span, String> {
    s.parse::<Span>().map_err(|e| e.to_string())
}

/// A duration, or nothing (empty, `off` or `never`) for "not at all".
pub(super) fn optional_span(s: &str) -> Result<Option<Span>, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "off" | "never" => Ok(None),
        _ => span(s).map(Some),
    }
}

/// A yes or no, in the spellings people put in environment files.
pub(super) fn boolean(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

/// An address and port to listen on.
pub(super) fn address(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("expected an address and port such as 127.0.0.1:8080, got {s:?}"))
}

/// An address and port to listen on, or nothing (empty) for none.
pub(super) fn optional_address(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!("expected an address and port such as 127.0.0.1:9090, or nothing, got {s:?}")
    })
}

/// An http or https origin, without credentials: links are built on it.
pub(super) fn origin(s: &str) -> Result<url::Url, String> {
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
}

/// A SQLite or PostgreSQL URL; a refused one is shown without its password.
pub(super) fn database(s: &str) -> Result<String, String> {
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
}

/// A sender mailbox, kept as written once it is known to be one.
pub(super) fn sender(s: &str) -> Result<String, String> {
    s.parse::<gatehouse_mail::Mailbox>()
        .map(|_| s.to_owned())
        .map_err(|e| format!("expected a sender such as 'Gatehouse <no-reply@example.org>': {e}"))
}

/// A name to show on pages and in emails.
pub(super) fn display_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().count() > 80 || s.chars().any(char::is_control) {
        Err("expected a name of 1 to 80 printable characters".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

/// A time zone from the bundled database.
pub(super) fn zone(s: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(s)
        .map_err(|_| format!("unknown time zone {s:?} (try Europe/London or UTC)"))
}

/// A log format: true for json, false for text.
pub(super) fn json_or_text(s: &str) -> Result<bool, String> {
    match s {
        "text" => Ok(false),
        "json" => Ok(true),
        _ => Err(format!("expected text or json, got {s:?}")),
    }
}

/// The key-encryption key: empty for none, else 32 bytes in base64. The
/// message never repeats the value.
pub(super) fn key_encryption_key(
    s: &str,
) -> Result<Option<std::sync::Arc<gatehouse_domain::oidc::jose::KeyEncryptionKey>>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    gatehouse_domain::oidc::jose::KeyEncryptionKey::parse(s).map(|k| Some(std::sync::Arc::new(k)))
}

/// What helpdesk and admin accounts may use as their second factor.
pub(super) fn privileged_second_factor(
    s: &str,
) -> Result<gatehouse_core::settings::PrivilegedSecondFactor, String> {
    use gatehouse_core::settings::PrivilegedSecondFactor;
    match s.to_ascii_lowercase().as_str() {
        "any" => Ok(PrivilegedSecondFactor::Any),
        "passkey" => Ok(PrivilegedSecondFactor::Passkey),
        _ => Err(format!("expected any or passkey, got {s:?}")),
    }
}

//! Every setting, declared once: its key, type, default, parser and meaning.
//!
//! The key is the TOML key; the environment variable is `GATEHOUSE_` + the
//! key in upper case, and either with `_FILE` after it names a file holding
//! the value. The `Config` struct, the parsing and its one-line errors, the
//! `--help` and README table all come from this list, so a setting cannot be
//! parsed but undocumented, or documented with a default it does not have.

use std::net::SocketAddr;

use gatehouse_core::settings::PrivilegedSecondFactor;
use gatehouse_domain::oidc::jose::KeyEncryptionKey;
use gatehouse_domain::{AllowedDomains, Policy, Span};
use gatehouse_mail::MailUrl;

use super::parse::{
    address, boolean, database, display_name, json_or_text, key_encryption_key, number,
    optional_address, optional_span, origin, privileged_second_factor, sender, span, zone,
};
use super::{ConfigError, Raw, Setting, variable};

/// Turns the list below into `SETTINGS`, the `Config` struct and the
/// per-setting parse. Each entry is
///
/// `key: Type = "default", parse = parser, [field = name,] help = "meaning";`
///
/// where `parser` is a `FnOnce(&str) -> Result<Type, String>` whose error is
/// the part of the message after the variable's name. With `field`, the
/// value is a `Config` field of that name as parsed; without, it only feeds
/// the `derived` fields, each computed by the `Settings` method of its name.
macro_rules! settings {
    (
        $(#[$config_attr:meta])*
        pub struct Config {
            $(
                $key:ident: $ty:ty = $default:literal,
                    parse = $parse:expr,
                    $(field = $field:ident,)?
                    help = $help:literal;
            )*
        }
        derived {
            $(
                $(#[$derived_attr:meta])*
                $derived:ident: $derived_ty:ty,
            )*
        }
    ) => {
        /// Every setting, in the order the README documents them.
        pub(super) const SETTINGS: &[Setting] = &[$(
            Setting { key: stringify!($key), default: $default, meaning: $help },
        )*];

        /// Every setting's value, each valid on its own.
        pub(super) struct Settings {
            $($key: $ty,)*
        }

        impl Settings {
            /// Parses every setting in the list's order; the first bad one is the error.
            pub(super) fn parse(raw: &Raw) -> Result<Self, ConfigError> {
                Ok(Self {
                    $($key: raw.parse(stringify!($key), $parse)?,)*
                })
            }

            fn assemble(self) -> Config {
                Config {
                    // Before the moves below: the derived fields borrow `self`.
                    $($derived: self.$derived(),)*
                    $($($field: self.$key,)?)*
                }
            }
        }

        $(#[$config_attr])*
        pub struct Config {
            $($(
                #[doc = concat!("The `", stringify!($key), "` setting: ", $help, ".")]
                pub $field: $ty,
            )?)*
            $(
                $(#[$derived_attr])*
                pub $derived: $derived_ty,
            )*
        }
    };
}

settings! {
    /// The whole configuration, every value checked.
    #[derive(Debug, Clone)]
    pub struct Config {
        listen: SocketAddr = "127.0.0.1:8080",
            parse = address, field = listen,
            help = "address to listen on";
        metrics_listen: Option<SocketAddr> = "",
            parse = optional_address, field = metrics_listen,
            help = "address to serve /metrics on for Prometheus (never the public one); empty: no metrics";
        public_url: url::Url = "http://127.0.0.1:8080",
            parse = origin, field = public_url,
            help = "the only origin used in links; never the Host header";
        database_url: String = "sqlite://gatehouse-data/gatehouse.db",
            parse = database, field = database_url,
            help = "sqlite://PATH (one node; created and migrated on start) or postgres://USER:PASSWORD@HOST/DB (several nodes; run `gatehouse migrate` once per deploy)";
        mail_url: MailUrl = "file://gatehouse-data/outbox",
            parse = MailUrl::parse, field = mail_url,
            help = "file://DIR writes .eml files; smtp://HOST:PORT requires STARTTLS unless ?tls=none; smtps://HOST:PORT implicit TLS; user and password in the URL";
        mail_from: String = "Gatehouse <no-reply@localhost>",
            parse = sender, field = mail_from,
            help = "sender";
        allowed_email_domains: AllowedDomains = "nhs.net",
            parse = AllowedDomains::parse, field = allowed_domains,
            help = "comma-separated; email goes to these domains only";
        reset_link_ttl: Span = "4h",
            parse = span,
            help = "lifetime of a reset link (90s, 15m, 4h forms)";
        lockout_threshold: u32 = "3",
            parse = number(1, 100),
            help = "consecutive failures that lock an account";
        lockout_duration: Span = "12h",
            parse = span,
            help = "how long the lock lasts";
        service_name: String = "Electronic Staff Record",
            parse = display_name, field = service_name,
            help = "the name shown on pages and in emails";
        lockout_max_failures: u32 = "100",
            parse = number(1, 100),
            help = "failures in all (not reset by time) that disable the password until a reset";
        recovery_emails_per_hour: u32 = "3",
            parse = number(1, 1000),
            help = "recovery emails per address on record per hour";
        recovery_requests_per_client_per_hour: u32 = "10000",
            parse = number(1, 10_000_000),
            help = "recovery requests per client address per hour";
        link_guesses_per_client_per_hour: u32 = "100",
            parse = number(1, 10_000_000),
            help = "unknown reset links opened per client address per hour before its links are refused";
        password_min_length: usize = "12",
            parse = number(8, 128),
            help = "fewest characters in a password";
        session_idle_timeout: Span = "30m",
            parse = span,
            help = "a session ends this long after its last request";
        session_absolute_timeout: Span = "12h",
            parse = span,
            help = "a session ends this long after sign-in";
        time_zone: jiff::tz::TimeZone = "Europe/London",
            parse = zone, field = time_zone,
            help = "the time zone of times shown to people";
        hash_concurrency: usize = "0",
            parse = number(0, 1024),
            help = "password-hashing threads, so hashes at once (0: one per CPU core)";
        trust_x_forwarded_for: bool = "false",
            parse = boolean, field = trust_forwarded_for,
            help = "take the client address from X-Forwarded-For (only behind a proxy that sets it)";
        database_max_connections: u32 = "10",
            parse = number(1, 1000), field = database_max_connections,
            help = "database connections per process";
        database_timeout: Span = "10s",
            parse = span, field = database_timeout,
            help = "how long to wait for a database connection (and, on SQLite, for the write lock)";
        mail_timeout: Span = "20s",
            parse = span, field = mail_timeout,
            help = "how long to wait for the mail server before a try counts as failed";
        hash_wait: Span = "2s",
            parse = span, field = hash_wait,
            help = "how long a sign-in waits for a free password hasher before \"busy, try again\"";
        header_timeout: Span = "10s",
            parse = span, field = header_timeout,
            help = "how long a client may take to send a request's headers before the connection is closed (slow clients)";
        request_timeout: Span = "30s",
            parse = span, field = request_timeout,
            help = "how long a request may take in all before it is abandoned with a 503 \"taking too long\" page (longer than database_timeout + hash_wait); console staff-file uploads and imports are exempt";
        worker_lease: Span = "60s",
            parse = span, field = worker_lease,
            help = "how long a worker holds an email or request before another node may take it (longer than mail_timeout)";
        console_upload_mib: usize = "256",
            parse = number(1, 4096),
            help = "largest staff file an administrator can upload in the console, in MiB (bigger files: gatehouse import)";
        device_cookies: bool = "false",
            parse = boolean, field = device_cookies,
            help = "remember browsers that have signed in: their failures are counted apart, so guesses from elsewhere that lock an account do not lock out its owner's own browser (docs/security.md)";
        allow_early_unlock: bool = "false",
            parse = boolean, field = allow_early_unlock,
            help = "let an administrator lift a lock before it ends (the seed's policy is that nobody can); audited";
        log_format: bool = "text",
            parse = json_or_text,
            help = "text or json";
        new_browser_notices: bool = "false",
            parse = boolean, field = new_browser_notices,
            help = "email a person when their account signs in from a browser it has not used before (a long-lived cookie names each browser)";
        access_token_lifetime: Span = "10m",
            parse = span, field = access_token_lifetime,
            help = "how long an access token (and ID token) given to an application lives, from 1 minute to 1 day; refresh tokens end with the Gatehouse session";
        key_encryption_key: Option<std::sync::Arc<KeyEncryptionKey>> = "",
            parse = key_encryption_key, field = key_encryption_key,
            help = "32 random bytes in base64 (`openssl rand -base64 32`) that seal the ID-token signing keys in the database; empty: stored unsealed (docs/security.md)";
        audit_retention: Span = "730d",
            parse = span,
            help = "how long audit events are kept before the worker deletes them; at least 30d (the activity page shows 30 days)";
        request_retention: Span = "90d",
            parse = span,
            help = "how long finished recovery requests, expired reset links and the records of sent, expired and given-up emails are kept; at least 1d";
        erase_disabled_after: Option<Span> = "",
            parse = optional_span,
            help = "erase a disabled staff account's personal details this long after it was disabled, keeping its username reserved and its audit trail; empty: never";
        passkeys: bool = "false",
            parse = boolean, field = passkeys,
            help = "let people add passkeys (WebAuthn) and sign in with them; the relying party id is the host of GATEHOUSE_PUBLIC_URL, which must then name a domain, and browsers need https (or http://localhost). The operator's choice when turning it on: a passkey sign-in neither counts towards nor is stopped by the password lockout (docs/security.md)";
        privileged_second_factor: PrivilegedSecondFactor = "any",
            parse = privileged_second_factor, field = privileged_second_factor,
            help = "what helpdesk and admin accounts may use as their second factor: any (an authenticator app's code, a recovery code or a passkey) or passkey (a passkey only)";
    }
    derived {
        /// Link lifetime, lockout, password, recovery and session policies.
        policy: Policy,
        /// `GATEHOUSE_HASH_CONCURRENCY` (resolved: never 0).
        hash_concurrency: usize,
        /// `GATEHOUSE_CONSOLE_UPLOAD_MIB`, in bytes.
        console_upload_limit: usize,
        /// `GATEHOUSE_LOG_FORMAT` is json.
        log_json: bool,
        /// How long finished records are kept.
        retention: gatehouse_core::settings::Retention,
    }
}

impl Settings {
    /// The rules between settings, then the `Config`.
    pub(super) fn into_config(self) -> Result<Config, ConfigError> {
        if self.lockout_max_failures < self.lockout_threshold {
            return Err(ConfigError(format!(
                "{}: must be at least GATEHOUSE_LOCKOUT_THRESHOLD ({}), got {}",
                variable("lockout_max_failures"),
                self.lockout_threshold,
                self.lockout_max_failures
            )));
        }
        let (database_timeout, hash_wait, request_timeout) =
            (self.database_timeout, self.hash_wait, self.request_timeout);
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
        let lifetime = self.access_token_lifetime;
        if lifetime < Span::minutes(1) || lifetime > Span::hours(24) {
            return Err(ConfigError(format!(
                "{}: must be from 1m to 24h, got {lifetime}",
                variable("access_token_lifetime")
            )));
        }
        for (key, value, least) in [
            (
                "audit_retention",
                self.audit_retention,
                Span::hours(24 * 30),
            ),
            ("request_retention", self.request_retention, Span::hours(24)),
        ] {
            if value < least {
                return Err(ConfigError(format!(
                    "{}: must be at least {least}, got {value}",
                    variable(key)
                )));
            }
        }
        if self.passkeys && !matches!(self.public_url.host(), Some(url::Host::Domain(_))) {
            // The relying party id is the public URL's host, and browsers
            // refuse an address as one (they also need https, or localhost).
            return Err(ConfigError(format!(
                "{}: passkeys need GATEHOUSE_PUBLIC_URL to name its host by a domain (https://, or http://localhost for a trial), not an address, got {}",
                variable("passkeys"),
                self.public_url
            )));
        }
        if self.privileged_second_factor == PrivilegedSecondFactor::Passkey && !self.passkeys {
            // Nobody privileged could pass the second factor at all.
            return Err(ConfigError(format!(
                "{}: passkey needs GATEHOUSE_PASSKEYS=true, or no helpdesk or admin member could open the console",
                variable("privileged_second_factor")
            )));
        }
        let (mail_timeout, worker_lease) = (self.mail_timeout, self.worker_lease);
        if worker_lease <= mail_timeout {
            return Err(ConfigError(format!(
                "{}: must be longer than GATEHOUSE_MAIL_TIMEOUT ({mail_timeout}), got {worker_lease}",
                variable("worker_lease")
            )));
        }
        Ok(self.assemble())
    }

    fn retention(&self) -> gatehouse_core::settings::Retention {
        gatehouse_core::settings::Retention {
            audit_events: self.audit_retention,
            finished_requests: self.request_retention,
            erase_disabled_after: self.erase_disabled_after,
        }
    }

    fn policy(&self) -> Policy {
        let defaults = Policy::default();
        Policy {
            reset_link_ttl: self.reset_link_ttl,
            lockout: gatehouse_domain::LockoutPolicy {
                threshold: self.lockout_threshold,
                duration: self.lockout_duration,
                max_total_failures: self.lockout_max_failures,
            },
            password: gatehouse_domain::PasswordPolicy {
                min_length: self.password_min_length,
                ..defaults.password
            },
            recovery: gatehouse_domain::RecoveryPolicy {
                emails_per_address_per_hour: self.recovery_emails_per_hour,
                requests_per_client_per_hour: self.recovery_requests_per_client_per_hour,
                link_guesses_per_client_per_hour: self.link_guesses_per_client_per_hour,
            },
            session: gatehouse_domain::SessionPolicy {
                idle_timeout: self.session_idle_timeout,
                absolute_timeout: self.session_absolute_timeout,
            },
        }
    }

    fn hash_concurrency(&self) -> usize {
        if self.hash_concurrency == 0 {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        } else {
            self.hash_concurrency
        }
    }

    fn console_upload_limit(&self) -> usize {
        self.console_upload_mib * 1024 * 1024
    }

    fn log_json(&self) -> bool {
        self.log_format
    }
}

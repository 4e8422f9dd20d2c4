//! What the services need to know about this deployment.

use gatehouse_domain::{AllowedDomains, Policy, Timestamp};

/// Deployment settings the services use (built from configuration by the binary).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service's name, on every page and email (default `Electronic Staff Record`).
    pub service_name: String,
    /// The only origin used in links (`GATEHOUSE_PUBLIC_URL`), never the Host header.
    pub public_url: url::Url,
    /// Email domains that reset emails may go to.
    pub allowed_domains: AllowedDomains,
    /// Every policy.
    pub policy: Policy,
    /// The time zone in which times are shown to people.
    pub time_zone: jiff::tz::TimeZone,
    /// How long a worker holds a claimed request or email before another may take it.
    pub worker_lease: gatehouse_domain::Span,
    /// Whether an administrator may lift a lock early (off: the seed's rule).
    pub allow_early_unlock: bool,
    /// Whether a browser that has signed in before gets a device cookie, and
    /// its failures are counted apart from unknown clients' (off: the seed's
    /// rule, one counter per username).
    pub device_cookies: bool,
    /// Whether a sign-in from a browser an account has not used before is
    /// told to its owner by email (off by default).
    pub new_browser_notices: bool,
    /// How long an access token (and an ID token) issued to an application
    /// lives (default 10 minutes).
    pub access_token_lifetime: gatehouse_domain::Span,
    /// The key that seals the signing keys in the database, if the operator
    /// set one (`GATEHOUSE_KEY_ENCRYPTION_KEY`).
    pub key_encryption_key: Option<std::sync::Arc<gatehouse_domain::oidc::jose::KeyEncryptionKey>>,
    /// How long finished records are kept before the worker forgets them.
    pub retention: Retention,
    /// Whether people may add passkeys and sign in with them (off by default).
    pub passkeys: bool,
    /// What helpdesk and admin accounts may use as their second factor.
    pub privileged_second_factor: PrivilegedSecondFactor,
}

/// How long finished records are kept (docs/deploy.md, "Running it for
/// years", says what each keeps and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Audit events (default 2 years).
    pub audit_events: gatehouse_domain::Span,
    /// Finished recovery requests, expired reset links, and the records of
    /// sent, expired and given-up emails (default 90 days).
    pub finished_requests: gatehouse_domain::Span,
    /// How long after it was disabled a staff account's personal details
    /// are erased; `None` (the default): never by age.
    pub erase_disabled_after: Option<gatehouse_domain::Span>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            audit_events: gatehouse_domain::Span::hours(24 * 730),
            finished_requests: gatehouse_domain::Span::hours(24 * 90),
            erase_disabled_after: None,
        }
    }
}

/// What helpdesk and admin accounts may use as their second factor
/// (`GATEHOUSE_PRIVILEGED_SECOND_FACTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrivilegedSecondFactor {
    /// An authenticator app's code, a recovery code, or a passkey.
    #[default]
    Any,
    /// A passkey only: phishing-resistant, as NIST SP 800-63B-4 asks.
    Passkey,
}

impl Settings {
    /// Settings with the embedded defaults and the given public URL.
    pub fn with_defaults(public_url: url::Url) -> Self {
        Self {
            service_name: "Electronic Staff Record".to_owned(),
            public_url,
            allowed_domains: AllowedDomains::default(),
            policy: Policy::default(),
            time_zone: jiff::tz::TimeZone::get("Europe/London").unwrap_or(jiff::tz::TimeZone::UTC),
            worker_lease: gatehouse_domain::Span::from_seconds(60),
            allow_early_unlock: false,
            device_cookies: false,
            new_browser_notices: false,
            access_token_lifetime: gatehouse_domain::Span::minutes(10),
            key_encryption_key: None,
            retention: Retention::default(),
            passkeys: false,
            privileged_second_factor: PrivilegedSecondFactor::Any,
        }
    }

    /// The calendar date at `now` where people are.
    pub fn today(&self, now: Timestamp) -> jiff::civil::Date {
        jiff::Timestamp::from_second(now.unix())
            .map(|t| t.to_zoned_datetime(self.time_zone.clone()).date())
            .unwrap_or_else(|_| jiff::civil::date(1970, 1, 1))
    }

    /// `now` as people read it: `10:32pm on 25 November 2026`.
    pub fn when(&self, at: Timestamp) -> String {
        at.for_people(&self.time_zone)
    }

    /// The absolute URL of `path` (which starts with `/`) on the public origin.
    pub fn link(&self, path: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }

    /// The issuer applications know this service by: the public URL
    /// without a trailing slash (OpenID Connect Discovery §4.3: exactly).
    pub fn issuer(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// Whether the public URL is HTTPS (cookies are then `Secure` and `__Host-`).
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

//! Scopes and the claims each releases about a person.

use serde::{Deserialize, Serialize};

/// The scopes a grant holds. Scopes this service does not know are left
/// out, as OpenID Connect Core §5.4 allows, rather than refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes {
    /// `openid`: required; `sub` and the ID token.
    pub openid: bool,
    /// `profile`: names and username.
    pub profile: bool,
    /// `email`: the email address on record.
    pub email: bool,
    /// `staff`: employer, employee number and role.
    pub staff: bool,
}

impl Scopes {
    /// Every scope this service knows, as Discovery lists them.
    pub const SUPPORTED: [&'static str; 5] =
        ["openid", "profile", "email", "staff", "offline_access"];

    /// The known scopes in a space-separated `scope` value, in any order.
    /// (`offline_access` is accepted and adds nothing: every confidential
    /// client gets a refresh token, which dies with the session anyway.)
    pub fn requested(value: &str) -> Self {
        let mut s = Self::default();
        for scope in value.split(' ') {
            match scope {
                "openid" => s.openid = true,
                "profile" => s.profile = true,
                "email" => s.email = true,
                "staff" => s.staff = true,
                _ => {}
            }
        }
        s
    }

    /// The scopes held, as a `scope` value in a fixed order.
    pub fn as_string(&self) -> String {
        [
            (self.openid, "openid"),
            (self.profile, "profile"),
            (self.email, "email"),
            (self.staff, "staff"),
        ]
        .iter()
        .filter(|(held, _)| *held)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Whether every scope of `other` is held here (a refresh may narrow
    /// the scopes, never widen them).
    pub fn covers(&self, other: &Scopes) -> bool {
        (self.openid || !other.openid)
            && (self.profile || !other.profile)
            && (self.email || !other.email)
            && (self.staff || !other.staff)
    }
}

/// What is known about the person a grant is for, to release by scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The stable, opaque subject identifier.
    pub subject: String,
    /// The ESR-style username.
    pub username: String,
    /// First name as imported.
    pub first_name: String,
    /// Last name as imported.
    pub last_name: String,
    /// Email address on record.
    pub email: String,
    /// Employer name.
    pub employer: String,
    /// Employer code.
    pub employer_code: String,
    /// Employee number, if the staff file has one.
    pub employee_number: Option<String>,
    /// Role: staff, helpdesk or admin.
    pub role: String,
}

/// The claims `scopes` release about `person` (with `sub` always), as a
/// JSON object for the ID token or the userinfo answer.
pub fn person_claims(
    person: &Person,
    scopes: &Scopes,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut claims = serde_json::Map::new();
    claims.insert("sub".to_owned(), Value::from(person.subject.clone()));
    if scopes.profile {
        claims.insert(
            "name".to_owned(),
            Value::from(format!("{} {}", person.first_name, person.last_name)),
        );
        claims.insert(
            "given_name".to_owned(),
            Value::from(person.first_name.clone()),
        );
        claims.insert(
            "family_name".to_owned(),
            Value::from(person.last_name.clone()),
        );
        claims.insert(
            "preferred_username".to_owned(),
            Value::from(person.username.clone()),
        );
    }
    if scopes.email {
        claims.insert("email".to_owned(), Value::from(person.email.clone()));
    }
    if scopes.staff {
        claims.insert("employer".to_owned(), Value::from(person.employer.clone()));
        claims.insert(
            "employer_code".to_owned(),
            Value::from(person.employer_code.clone()),
        );
        if let Some(number) = &person.employee_number {
            claims.insert("employee_number".to_owned(), Value::from(number.clone()));
        }
        claims.insert("roles".to_owned(), Value::from(vec![person.role.clone()]));
    }
    claims
}

/// Every claim this service can release, as Discovery lists them.
pub const CLAIMS_SUPPORTED: [&str; 21] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "azp",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "email",
    "employer",
    "employer_code",
    "employee_number",
    "roles",
    "at_hash",
];

/// How a person signed in: the `amr` values (RFC 8176) and the `acr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authentication {
    /// A second factor (an authenticator app's code, or a passkey) was passed too.
    pub second_factor: bool,
    /// How a passkey took part.
    pub passkey: PasskeyUse,
}

/// How a passkey took part in a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasskeyUse {
    /// Not at all: a password (and perhaps an app's code).
    #[default]
    None,
    /// A passkey alone, no password.
    SignIn,
    /// A password, then a passkey as the second factor.
    SecondFactor,
}

impl PasskeyUse {
    /// As stored with a session, code and grant (0, 1, 2).
    pub fn stored(self) -> i64 {
        match self {
            PasskeyUse::None => 0,
            PasskeyUse::SignIn => 1,
            PasskeyUse::SecondFactor => 2,
        }
    }

    /// From its stored value; anything unknown reads as no passkey (the
    /// claim then says less than happened, never more).
    pub fn from_stored(value: i64) -> Self {
        match value {
            1 => PasskeyUse::SignIn,
            2 => PasskeyUse::SecondFactor,
            _ => PasskeyUse::None,
        }
    }
}

impl Authentication {
    /// `amr`: `pwd`, and `otp` and `mfa` after an app's code; `hwk` alone
    /// for a passkey sign-in (proof of possession of a key, RFC 8176 §2:
    /// whether the authenticator checked a PIN or a fingerprint is not
    /// told to the service, so neither `pin` nor `fpt` is claimed); `pwd`,
    /// `hwk` and `mfa` for a password and a passkey as the second factor.
    pub fn amr(&self) -> Vec<&'static str> {
        match (self.passkey, self.second_factor) {
            (PasskeyUse::SignIn, _) => vec!["hwk"],
            (PasskeyUse::SecondFactor, _) => vec!["pwd", "hwk", "mfa"],
            (PasskeyUse::None, true) => vec!["pwd", "otp", "mfa"],
            (PasskeyUse::None, false) => vec!["pwd"],
        }
    }

    /// `acr`: NIST SP 800-63B's assurance level: `aal1` for a password,
    /// `aal2` with a second factor or a passkey (user verification is
    /// required of every passkey, so it is a multi-factor authenticator).
    pub fn acr(&self) -> &'static str {
        if self.second_factor || self.passkey != PasskeyUse::None {
            "aal2"
        } else {
            "aal1"
        }
    }
}

/// The `acr` values Discovery lists.
pub const ACR_VALUES: [&str; 2] = ["aal1", "aal2"];

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> Person {
        Person {
            subject: "s-123".to_owned(),
            username: "999JSMITH01".to_owned(),
            first_name: "Jane".to_owned(),
            last_name: "Smith".to_owned(),
            email: "jane.smith@nhs.net".to_owned(),
            employer: "Demo Trust".to_owned(),
            employer_code: "999".to_owned(),
            employee_number: Some("E1".to_owned()),
            role: "staff".to_owned(),
        }
    }

    #[test]
    fn each_scope_releases_its_claims_and_no_more() {
        let only_openid = person_claims(&jane(), &Scopes::requested("openid"));
        assert_eq!(only_openid.keys().collect::<Vec<_>>(), ["sub"]);
        let all = person_claims(&jane(), &Scopes::requested("email staff profile openid"));
        assert_eq!(all["name"], "Jane Smith");
        assert_eq!(all["preferred_username"], "999JSMITH01");
        assert_eq!(all["email"], "jane.smith@nhs.net");
        assert_eq!(all["roles"], serde_json::json!(["staff"]));
        assert_ne!(
            all["sub"], all["preferred_username"],
            "sub is never the username"
        );
        let email = person_claims(&jane(), &Scopes::requested("openid email"));
        assert!(email.get("name").is_none() && email.get("employer").is_none());
    }

    #[test]
    fn a_passkey_sign_in_claims_hwk_and_aal2() {
        let passkey = Authentication {
            second_factor: false,
            passkey: PasskeyUse::SignIn,
        };
        assert_eq!(passkey.amr(), ["hwk"]);
        assert_eq!(passkey.acr(), "aal2");
        let second = Authentication {
            second_factor: true,
            passkey: PasskeyUse::SecondFactor,
        };
        assert_eq!(second.amr(), ["pwd", "hwk", "mfa"]);
        let password = Authentication {
            second_factor: false,
            passkey: PasskeyUse::None,
        };
        assert_eq!((password.amr(), password.acr()), (vec!["pwd"], "aal1"));
        for p in [
            PasskeyUse::None,
            PasskeyUse::SignIn,
            PasskeyUse::SecondFactor,
        ] {
            assert_eq!(PasskeyUse::from_stored(p.stored()), p);
        }
    }

    #[test]
    fn scope_order_does_not_matter_and_unknown_scopes_are_left_out() {
        assert_eq!(
            Scopes::requested("email openid phone profile").as_string(),
            "openid profile email"
        );
        assert!(Scopes::requested("openid profile").covers(&Scopes::requested("openid")));
        assert!(!Scopes::requested("openid").covers(&Scopes::requested("openid email")));
    }
}

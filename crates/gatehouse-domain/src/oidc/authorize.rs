//! The authorization request (OpenID Connect Core §3.1.2.1): what an
//! application asks for when it sends a person to Gatehouse, checked in the
//! order the standard's error handling needs.
//!
//! A request whose client or redirect address cannot be trusted is answered
//! on Gatehouse's own page and never redirected (RFC 6749 §4.1.2.1): an
//! attacker must not be able to bounce people to an address of their
//! choosing. Every other problem goes back to the client's registered
//! address as an OAuth error.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::client::{ClientId, ClientKind};
use super::scope::Scopes;

/// Longest `state`, `nonce` or `login_hint` kept: they travel in a cookie
/// while the person signs in, and no client needs more.
pub const PARAMETER_MAX: usize = 512;

/// Longest `id_token_hint` read.
pub const HINT_MAX: usize = 4096;

/// What an authorization request's parameters say, as received: each name
/// once. A parameter given twice makes the request invalid (RFC 6749 §3.1).
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    params: BTreeMap<String, String>,
    repeated: Vec<String>,
}

impl RawRequest {
    /// Collects name/value pairs (from the query, or a POSTed form).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut raw = Self::default();
        for (name, value) in pairs {
            if raw.params.contains_key(name) {
                raw.repeated.push(name.to_owned());
            } else {
                raw.params.insert(name.to_owned(), value.to_owned());
            }
        }
        raw
    }

    /// A parameter; an empty one counts as absent (OpenID Connect Core §3.1.2.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|n| n == name)
    }
}

/// A problem answered on Gatehouse's own page, never redirected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UntrustedRequest {
    /// No `client_id`, or one given twice.
    NoClient,
    /// No registered client has that id, or it is disabled.
    UnknownClient,
    /// No `redirect_uri`, or one given twice.
    NoRedirectUri,
    /// The `redirect_uri` is not exactly one the client registered.
    UnregisteredRedirectUri,
}

impl std::fmt::Display for UntrustedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UntrustedRequest::NoClient => "The application did not say which application it is.",
            UntrustedRequest::UnknownClient => {
                "The application that sent you here is not registered with this service, or has been turned off."
            }
            UntrustedRequest::NoRedirectUri => {
                "The application did not say where to send you back to."
            }
            UntrustedRequest::UnregisteredRedirectUri => {
                "The application asked to send you back to an address it has not registered."
            }
        })
    }
}

/// An OAuth error sent back to the client's redirect address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeError {
    /// The error code (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6).
    pub error: &'static str,
    /// A sentence for the application's developers.
    pub description: String,
}

impl AuthorizeError {
    /// An error with its description.
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }
}

/// What `prompt` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// `none`: answer without showing anything, or fail.
    pub none: bool,
    /// `login`: ask for the password again even if signed in.
    pub login: bool,
    /// `consent`: ask for consent again.
    pub consent: bool,
}

/// A checked authorization request, from a client that is registered to
/// an address it registered. Serialised into the signed cookie that holds
/// it while the person signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// Where to send the answer (exactly as registered).
    pub redirect_uri: String,
    /// The scopes granted (those asked for that this service knows).
    pub scopes: Scopes,
    /// The client's `state`, returned as given.
    pub state: Option<String>,
    /// The client's `nonce`, put in the ID token.
    pub nonce: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age` in seconds: sign in again if the last sign-in is older.
    pub max_age: Option<i64>,
    /// `login_hint`: the username to fill in.
    pub login_hint: Option<String>,
    /// `id_token_hint`, checked by the caller (it needs the keys) and not
    /// kept once the person is sent to sign in.
    #[serde(skip)]
    pub id_token_hint: Option<String>,
}

/// Where the request's client and address come from, for the checks that
/// must pass before anything is redirected.
pub struct ClientCheck<'a> {
    /// The client's kind.
    pub kind: ClientKind,
    /// Its registered redirect addresses.
    pub redirect_uris: &'a [String],
}

/// The client id a request names, for the caller to look up; `Err` if it
/// names none (answered on Gatehouse's page).
pub fn requested_client(raw: &RawRequest) -> Result<ClientId, UntrustedRequest> {
    if raw.repeated("client_id") {
        return Err(UntrustedRequest::NoClient);
    }
    let id = raw.get("client_id").ok_or(UntrustedRequest::NoClient)?;
    ClientId::parse(id).ok_or(UntrustedRequest::UnknownClient)
}

/// The redirect address of a request, once the client is known: exactly
/// one it registered, or the request is answered on Gatehouse's page.
pub fn trusted_redirect(
    raw: &RawRequest,
    client: &ClientCheck<'_>,
) -> Result<String, UntrustedRequest> {
    if raw.repeated("redirect_uri") {
        return Err(UntrustedRequest::NoRedirectUri);
    }
    let uri = raw
        .get("redirect_uri")
        .ok_or(UntrustedRequest::NoRedirectUri)?;
    // Byte for byte: no case folding, no trailing-slash or port leniency.
    if client.redirect_uris.iter().any(|r| r == uri) {
        Ok(uri.to_owned())
    } else {
        Err(UntrustedRequest::UnregisteredRedirectUri)
    }
}

/// Checks the rest of a request whose client and redirect address are
/// trusted. Unknown parameters are ignored (OpenID Connect Core §3.1.2.1).
pub fn check_request(
    raw: &RawRequest,
    client_id: &ClientId,
    redirect_uri: String,
    client: &ClientCheck<'_>,
) -> Result<AuthorizationRequest, AuthorizeError> {
    if let Some(name) = raw.repeated.first() {
        return Err(AuthorizeError::new(
            "invalid_request",
            format!("the parameter {name} was given more than once"),
        ));
    }
    // Request objects are not supported: said so, as Core §6 allows.
    if raw.get("request").is_some() {
        return Err(AuthorizeError::new(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if raw.get("request_uri").is_some() {
        return Err(AuthorizeError::new(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    if raw.get("registration").is_some() {
        return Err(AuthorizeError::new(
            "registration_not_supported",
            "registration is not supported",
        ));
    }
    match raw.get("response_type") {
        None => {
            return Err(AuthorizeError::new(
                "invalid_request",
                "response_type is missing",
            ));
        }
        Some("code") => {}
        Some(_) => {
            return Err(AuthorizeError::new(
                "unsupported_response_type",
                "only the authorization code flow (response_type=code) is supported",
            ));
        }
    }
    if let Some(mode) = raw.get("response_mode")
        && mode != "query"
    {
        return Err(AuthorizeError::new(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let scopes = Scopes::requested(raw.get("scope").unwrap_or_default());
    if !scopes.openid {
        return Err(AuthorizeError::new(
            "invalid_scope",
            "the openid scope is required",
        ));
    }
    let bounded = |name: &str, max: usize| -> Result<Option<String>, AuthorizeError> {
        match raw.get(name) {
            Some(v) if v.len() > max => Err(AuthorizeError::new(
                "invalid_request",
                format!("{name} is longer than {max} bytes"),
            )),
            v => Ok(v.map(str::to_owned)),
        }
    };
    let state = bounded("state", PARAMETER_MAX)?;
    let nonce = bounded("nonce", PARAMETER_MAX)?;
    let login_hint = bounded("login_hint", PARAMETER_MAX)?;
    let id_token_hint = bounded("id_token_hint", HINT_MAX)?;
    let code_challenge = match (raw.get("code_challenge"), raw.get("code_challenge_method")) {
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => Some(challenge.to_owned()),
        (Some(_), Some("S256")) => {
            return Err(AuthorizeError::new(
                "invalid_request",
                "code_challenge must be 43 to 128 characters of base64url",
            ));
        }
        (Some(_), None | Some("plain")) => {
            return Err(AuthorizeError::new(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            ));
        }
        (Some(_), Some(_)) | (None, Some(_)) => {
            return Err(AuthorizeError::new(
                "invalid_request",
                "code_challenge_method must be S256, with a code_challenge",
            ));
        }
        (None, None) => None,
    };
    if client.kind == ClientKind::Public && code_challenge.is_none() {
        return Err(AuthorizeError::new(
            "invalid_request",
            "a public client must use PKCE (code_challenge with code_challenge_method=S256)",
        ));
    }
    let mut prompt = Prompt::default();
    let values = raw.get("prompt").unwrap_or_default();
    for value in values.split(' ').filter(|v| !v.is_empty()) {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            // One account per person here: there is nothing to select.
            "select_account" => {}
            other => {
                return Err(AuthorizeError::new(
                    "invalid_request",
                    format!("prompt={other} is not supported"),
                ));
            }
        }
    }
    if prompt.none && values.split(' ').filter(|v| !v.is_empty()).count() > 1 {
        return Err(AuthorizeError::new(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match raw.get("max_age") {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(AuthorizeError::new(
                    "invalid_request",
                    "max_age must be a whole number of seconds",
                ));
            }
        },
    };
    Ok(AuthorizationRequest {
        client_id: client_id.as_str().to_owned(),
        redirect_uri,
        scopes,
        state,
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint,
        id_token_hint,
    })
}

fn is_pkce_value(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether a PKCE `code_verifier` answers an S256 `code_challenge` (RFC 7636 §4.6).
pub fn verifier_matches(challenge: &str, verifier: &str) -> bool {
    if !is_pkce_value(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawRequest {
        RawRequest::new(pairs.iter().copied())
    }

    const REDIRECTS: [&str; 1] = ["https://app.example/cb"];

    fn check(
        pairs: &[(&str, &str)],
        kind: ClientKind,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let r = raw(pairs);
        let redirects: Vec<String> = REDIRECTS.iter().map(|s| (*s).to_owned()).collect();
        let client = ClientCheck {
            kind,
            redirect_uris: &redirects,
        };
        let id = requested_client(&r).expect("client");
        let uri = trusted_redirect(&r, &client).expect("redirect");
        check_request(&r, &id, uri, &client)
    }

    const BASE: [(&str, &str); 4] = [
        ("client_id", "app1"),
        ("redirect_uri", "https://app.example/cb"),
        ("response_type", "code"),
        ("scope", "openid profile"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn a_plain_code_request_is_accepted_and_unknown_parameters_ignored() {
        let r = check(
            &with(&[
                ("state", "xyz"),
                ("nonce", "n-1"),
                ("ui_locales", "cy"),
                ("foo", "bar"),
            ]),
            ClientKind::Confidential,
        )
        .expect("ok");
        assert_eq!(r.state.as_deref(), Some("xyz"));
        assert_eq!(r.nonce.as_deref(), Some("n-1"));
        assert!(r.scopes.profile && !r.scopes.email);
    }

    #[test]
    fn the_redirect_address_must_match_exactly() {
        let redirects = vec!["https://app.example/cb".to_owned()];
        let client = ClientCheck {
            kind: ClientKind::Confidential,
            redirect_uris: &redirects,
        };
        for bad in [
            "https://app.example/cb/",
            "https://APP.example/cb",
            "https://app.example/cb/extra",
            "https://app.example/cb?x=1",
            "https://app.example/cb#f",
            "https://user@app.example/cb",
            "https://app.example:8443/cb",
            "http://app.example/cb",
        ] {
            assert_eq!(
                trusted_redirect(&raw(&[("redirect_uri", bad)]), &client),
                Err(UntrustedRequest::UnregisteredRedirectUri),
                "{bad}"
            );
        }
        assert_eq!(
            trusted_redirect(
                &raw(&[
                    ("redirect_uri", "https://app.example/cb"),
                    ("redirect_uri", "https://evil.example/")
                ]),
                &client
            ),
            Err(UntrustedRequest::NoRedirectUri),
            "given twice"
        );
    }

    #[test]
    fn errors_that_go_back_to_the_client() {
        let cases: [(&[(&str, &str)], &str); 10] = [
            (&[("response_type", "")], "invalid_request"),
            (&[("response_type", "token")], "unsupported_response_type"),
            (
                &[("response_type", "code id_token")],
                "unsupported_response_type",
            ),
            (&[("scope", "profile")], "invalid_scope"),
            (&[("request", "eyJ...")], "request_not_supported"),
            (
                &[("request_uri", "https://x/")],
                "request_uri_not_supported",
            ),
            (&[("prompt", "none login")], "invalid_request"),
            (&[("max_age", "-1")], "invalid_request"),
            (
                &[("code_challenge", "abc"), ("code_challenge_method", "S256")],
                "invalid_request",
            ),
            (&[("response_mode", "fragment")], "invalid_request"),
        ];
        for (extra, want) in cases {
            let err = check(&with(extra), ClientKind::Confidential).expect_err("refused");
            assert_eq!(err.error, want, "{extra:?}");
        }
    }

    #[test]
    fn pkce_is_s256_only_and_required_of_public_clients() {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(b"a".repeat(43)));
        let challenge: &'static str = Box::leak(challenge.into_boxed_str());
        let plain = check(
            &with(&[
                ("code_challenge", challenge),
                ("code_challenge_method", "plain"),
            ]),
            ClientKind::Public,
        );
        assert_eq!(plain.expect_err("plain").error, "invalid_request");
        let missing_method = check(&with(&[("code_challenge", challenge)]), ClientKind::Public);
        assert_eq!(
            missing_method.expect_err("no method").error,
            "invalid_request"
        );
        let none = check(&with(&[]), ClientKind::Public);
        assert_eq!(
            none.expect_err("public without PKCE").error,
            "invalid_request"
        );
        let ok = check(
            &with(&[
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ]),
            ClientKind::Public,
        )
        .expect("S256");
        let verifier = "a".repeat(43);
        assert!(verifier_matches(
            ok.code_challenge.as_deref().expect("kept"),
            &verifier
        ));
        assert!(!verifier_matches(challenge, &"b".repeat(43)));
        assert!(!verifier_matches(challenge, "short"));
        assert!(
            check(&with(&[]), ClientKind::Confidential).is_ok(),
            "optional for confidential"
        );
    }

    #[test]
    fn a_repeated_parameter_is_an_invalid_request() {
        let mut pairs = with(&[]);
        pairs.push(("scope", "openid email"));
        assert_eq!(
            check(&pairs, ClientKind::Confidential)
                .expect_err("twice")
                .error,
            "invalid_request"
        );
    }
}

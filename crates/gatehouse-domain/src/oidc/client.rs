//! Relying parties ("clients"): the applications the operator registers,
//! and the addresses Gatehouse will send people back to.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::token::RandomnessError;

/// A client's id: 16 random bytes as 22 base64url characters, the first a
/// letter or digit. Not a secret (it is in every authorization request),
/// but not guessable either, so that a list of clients cannot be read by
/// trying names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// A new id. One that would begin with `-` or `_` is drawn again: the
    /// operator types ids as command-line arguments, where a leading `-`
    /// reads as an option, and some tools trim a leading `_`.
    pub fn generate() -> Result<Self, RandomnessError> {
        loop {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| RandomnessError::new(e.to_string()))?;
            let id = URL_SAFE_NO_PAD.encode(bytes);
            if id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                return Ok(Self(id));
            }
        }
    }

    /// An id as a request carries it. Anything that is not the shape of an
    /// id is no client's, so it is never looked up.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(text.to_owned()))
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a client can keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// A server-side application with a client secret.
    Confidential,
    /// A browser or native application: no secret, PKCE required.
    Public,
}

impl ClientKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "confidential" => Some(ClientKind::Confidential),
            "public" => Some(ClientKind::Public),
            _ => None,
        }
    }
}

/// An absolute address a client registered: to send people back to after
/// sign-in or sign-out, or to post logout tokens to. Kept exactly as
/// registered, because requests must match it exactly (no wildcards, no
/// normalising: RFC 9700 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientUri(String);

impl ClientUri {
    /// Checks an address a client registers: absolute, `https` (or `http`
    /// to a loopback host, RFC 8252 §7.3, for development), no fragment
    /// (RFC 6749 §3.1.2), no user name or password in it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text)
            .map_err(|e| format!("{text:?} is not an absolute address: {e}"))?;
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{text:?} has spaces or control characters in it"));
        }
        if url.fragment().is_some() {
            return Err(format!("{text:?} has a fragment (#…): that is not allowed"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{text:?} has a user name or password in it"));
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        match url.scheme() {
            "https" if url.host().is_some() => Ok(Self(text.to_owned())),
            "http" if loopback => Ok(Self(text.to_owned())),
            "http" => Err(format!(
                "{text:?} must use https (http is allowed only to 127.0.0.1, [::1] or localhost)"
            )),
            _ => Err(format!("{text:?} must be an https address")),
        }
    }

    /// The address as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its origin (`scheme://host[:port]`): what CORS and the login page's
    /// `form-action` allow for it.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.0)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

impl std::fmt::Display for ClientUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a client's name: what people see on the consent page and the
/// operator in lists.
pub fn client_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("give the client a name".to_owned());
    }
    if name.chars().count() > 100 {
        return Err("the name must be 100 characters or fewer".to_owned());
    }
    if name.chars().any(char::is_control) {
        return Err("the name has control characters in it".to_owned());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_client_id_begins_with_a_letter_or_digit() {
        // Two of base64url's 64 first characters are refused: 4,000 draws
        // without a redraw would give about 125 of them.
        for _ in 0..4_000 {
            let id = ClientId::generate().expect("id");
            assert!(
                id.as_str().starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{id}"
            );
            assert_eq!(id.as_str().len(), 22, "{id}");
            assert_eq!(ClientId::parse(id.as_str()), Some(id.clone()));
        }
    }

    #[test]
    fn only_https_or_loopback_http_without_fragment_or_credentials_is_registered() {
        for good in [
            "https://app.example.nhs.uk/callback",
            "https://app.example.nhs.uk:8443/oidc/callback?tenant=1",
            "http://127.0.0.1:8081/callback",
            "http://[::1]:9000/cb",
            "http://localhost:3000/cb",
        ] {
            let uri = ClientUri::parse(good).expect(good);
            assert_eq!(uri.as_str(), good, "kept exactly as registered");
        }
        for bad in [
            "http://app.example.nhs.uk/callback",
            "https://app.example.nhs.uk/callback#frag",
            "https://user:pw@app.example.nhs.uk/callback",
            "/callback",
            "javascript:alert(1)",
            "ftp://app.example.nhs.uk/",
            "https://app.example.nhs.uk/call back",
            "http://127.0.0.1.example.com/cb",
        ] {
            assert!(ClientUri::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ClientUri::parse("https://App.Example:443/cb")
                .expect("ok")
                .origin(),
            "https://app.example"
        );
    }

    #[test]
    fn client_ids_are_random_and_only_their_shape_is_looked_up() {
        let a = ClientId::generate().expect("id");
        let b = ClientId::generate().expect("id");
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(ClientId::parse(a.as_str()), Some(a));
        for bad in ["", "a b", "x'; DROP TABLE", &"a".repeat(65), "é"] {
            assert_eq!(ClientId::parse(bad), None, "{bad}");
        }
    }
}

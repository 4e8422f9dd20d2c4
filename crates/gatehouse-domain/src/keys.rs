//! Keys the service holds: form tokens and the cookie that carries an
//! opened reset link are MACs under them (OWASP's "signed double-submit
//! cookie"), so that nobody who can set a cookie in a visitor's browser (a
//! sibling subdomain over plain HTTP, say) can compute the token that goes
//! with it.
//!
//! The key is generated on the service's first start and kept in the
//! database, so every node shares it. Rotating it adds a newer generation;
//! the one before is still accepted until the next rotation, so forms that
//! were open at the time still work.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::token::{RandomnessError, SecretToken};

/// Bytes in a key.
pub const KEY_BYTES: usize = 32;

/// One key. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey([u8; KEY_BYTES]);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

impl MacKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| RandomnessError::new(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// A key read back from storage; `None` if it is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The key's bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// HMAC-SHA-256 of `message` for `purpose`: the purpose is part of
    /// what is authenticated, so a tag made for one use is never valid for
    /// another.
    fn tag(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        // HMAC takes a key of any length: `new_from_slice` cannot fail.
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

/// The keys a service accepts: the current one, which makes every new tag,
/// and the one before it (until the next rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    current: MacKey,
    previous: Option<MacKey>,
}

impl KeyRing {
    /// A ring of the current key and, if there is one, the one before.
    pub fn new(current: MacKey, previous: Option<MacKey>) -> Self {
        Self { current, previous }
    }

    /// The tag of `message` for `purpose`, as text (43 base64url characters).
    pub fn sign(&self, purpose: &str, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.current.tag(purpose, message))
    }

    /// Whether `tag` is the tag of `message` for `purpose` under either key,
    /// compared in constant time.
    pub fn verify(&self, purpose: &str, message: &[u8], tag: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| bool::from(key.tag(purpose, message).ct_eq(given.as_slice())))
    }

    /// The form token that goes with a secret the visitor holds in a
    /// cookie (a session id or a form id), for `purpose`.
    pub fn form_token(&self, purpose: &str, cookie: &SecretToken) -> String {
        self.sign(purpose, cookie.encode().as_bytes())
    }

    /// Whether `token` is the form token of `cookie` for `purpose`.
    pub fn verify_form_token(&self, purpose: &str, cookie: &SecretToken, token: &str) -> bool {
        self.verify(purpose, cookie.encode().as_bytes(), token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MacKey {
        MacKey([byte; KEY_BYTES])
    }

    #[test]
    fn a_tag_is_bound_to_its_key_purpose_and_message() {
        let ring = KeyRing::new(key(1), None);
        let tag = ring.sign("form", b"abc");
        assert_eq!(tag.len(), 43);
        assert!(ring.verify("form", b"abc", &tag));
        assert!(!ring.verify("form", b"abd", &tag));
        assert!(!ring.verify("reset", b"abc", &tag));
        assert!(!KeyRing::new(key(2), None).verify("form", b"abc", &tag));
        assert!(!ring.verify("form", b"abc", "not base64!"));
        assert!(!ring.verify("form", b"abc", ""));
    }

    #[test]
    fn the_key_before_a_rotation_is_still_accepted() {
        let old = KeyRing::new(key(1), None);
        let tag = old.sign("form", b"abc");
        let rotated = KeyRing::new(key(2), Some(key(1)));
        assert!(rotated.verify("form", b"abc", &tag));
        assert_ne!(
            rotated.sign("form", b"abc"),
            tag,
            "new tags use the new key"
        );
        let twice = KeyRing::new(key(3), Some(key(2)));
        assert!(
            !twice.verify("form", b"abc", &tag),
            "two rotations retire it"
        );
    }

    #[test]
    fn without_the_key_the_form_token_cannot_be_computed() {
        // The defect: the token was SHA-256 of a fixed label and the
        // cookie, which anyone who can set the cookie can compute.
        let cookie = SecretToken::generate().expect("random");
        let ring = KeyRing::new(MacKey::generate().expect("random"), None);
        let token = ring.form_token("public form", &cookie);
        assert_ne!(token, cookie.derive("gatehouse public form token").encode());
        assert!(ring.verify_form_token("public form", &cookie, &token));
        let other = KeyRing::new(MacKey::generate().expect("random"), None);
        assert!(!other.verify_form_token("public form", &cookie, &token));
    }
}

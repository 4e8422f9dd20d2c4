//! Secret tokens: reset links, session ids and form tokens.
//!
//! A token is 256 bits from the operating system's CSPRNG, written as 43
//! characters of unpadded base64url. Only its SHA-256 hash is ever stored, so
//! a copy of the database (or a backup) holds nothing that opens an account.
//! Lookups go by hash, which is also why no comparison of secret bytes here
//! can leak timing: the hash of a guess shares nothing useful with the hash
//! of the real token.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length in characters of an encoded token.
pub const ENCODED_LEN: usize = 43;

/// A secret token. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken([u8; 32]);

/// The SHA-256 hash of a [`SecretToken`], the only form that is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

/// The operating system could not provide random bytes.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessError(String);

impl RandomnessError {
    /// The failure, as the operating system described it.
    pub fn new(why: String) -> Self {
        Self(why)
    }
}

impl SecretToken {
    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| RandomnessError(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Reads a token from text (a URL, a cookie, a form). Anything that is
    /// not exactly 43 base64url characters is not a token.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != ENCODED_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(array))
    }

    /// The text form, for a link, cookie or form field.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The hash under which this token is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }

    /// Another token derived from this one for `purpose`: whoever holds
    /// this token can compute it, and nobody can from the stored hash
    /// (SHA-256 over the purpose, a separator and the secret, where the hash
    /// covers the secret alone).
    pub fn derive(&self, purpose: &str) -> SecretToken {
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(self.0);
        Self(h.finalize().into())
    }

    /// Whether `other` is the same token, in constant time (for form tokens,
    /// which are compared rather than looked up).
    pub fn matches(&self, other: &SecretToken) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

impl TokenHash {
    /// Wraps a hash read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a stored hash of the wrong length as `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The hash bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short, non-secret reference to this token for logs and audit
    /// records: the first 8 hex digits of the hash.
    pub fn reference(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", self.reference())
    }
}

/// The first 8 hex digits of the SHA-256 of `bytes`: a reference that lets
/// operators see that two records concern the same value without storing it.
pub fn reference_of(bytes: &[u8]) -> String {
    TokenHash(Sha256::digest(bytes).into()).reference()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_derived_token_is_fixed_per_purpose_and_not_the_stored_hash() {
        let t = SecretToken::generate().expect("random");
        let form = t.derive("form");
        assert_eq!(form, t.derive("form"));
        assert_ne!(form, t.derive("other"));
        assert_ne!(form, t);
        assert_ne!(
            form.0,
            t.hash().0,
            "the stored hash is not the derived token"
        );
    }

    #[test]
    fn tokens_carry_256_random_bits_and_round_trip() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let t = SecretToken::generate().expect("randomness");
            let text = t.encode();
            assert_eq!(text.len(), ENCODED_LEN);
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
            assert_eq!(SecretToken::parse(&text), Some(t.clone()));
            assert!(seen.insert(text), "a token repeated");
        }
    }

    #[test]
    fn malformed_tokens_are_not_tokens() {
        let good = SecretToken::generate().expect("randomness").encode();
        assert!(SecretToken::parse(&good[..42]).is_none());
        assert!(SecretToken::parse(&format!("{good}A")).is_none());
        assert!(SecretToken::parse(&"+".repeat(43)).is_none());
        assert!(SecretToken::parse("").is_none());
        assert!(SecretToken::parse(&"A".repeat(10_000)).is_none());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let t = SecretToken::generate().expect("randomness");
        let shown = format!("{t:?} {:?}", t.hash());
        assert!(!shown.contains(&t.encode()));
        assert!(!shown.contains(&t.encode()[..8]));
    }

    #[test]
    fn hashes_differ_per_token_and_match_only_their_own() {
        let a = SecretToken::generate().expect("randomness");
        let b = SecretToken::generate().expect("randomness");
        assert_ne!(a.hash(), b.hash());
        assert_eq!(
            a.hash(),
            SecretToken::parse(&a.encode()).expect("parses").hash()
        );
        assert!(a.matches(&a.clone()));
        assert!(!a.matches(&b));
    }
}

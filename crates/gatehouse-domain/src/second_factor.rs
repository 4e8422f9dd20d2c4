//! The second factor of helpdesk and admin accounts: time-based one-time
//! passwords (TOTP, RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step
//! of clock drift either way) and one-time recovery codes.
//!
//! A code is accepted only for a time step newer than the last one accepted
//! (RFC 6238 §5.2), so a code seen over someone's shoulder cannot be replayed.

use std::fmt;

use sha2::{Digest, Sha256};
use totp_rs::{Builder, Secret, Totp};

use crate::token::{RandomnessError, TokenHash};

/// Bytes in a TOTP secret: 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;

/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// A TOTP shared secret. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| RandomnessError::new(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Reads a secret back from its base32 form (as stored).
    pub fn from_base32(text: &str) -> Option<Self> {
        let secret = Secret::try_from_base32(text).ok()?;
        let bytes = secret.as_ref().to_vec();
        (bytes.len() >= 16).then_some(Self(bytes))
    }

    /// Base32, unpadded: what is stored, and the key a person can type into
    /// an authenticator app instead of scanning the QR code.
    pub fn base32(&self) -> String {
        Secret::from(self.0.clone()).to_base32()
    }

    /// The key in groups of four, easier to read and type.
    pub fn base32_grouped(&self) -> String {
        self.base32()
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `otpauth://` URI the QR code carries (Google Authenticator's
    /// key URI format, which every common app reads).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let issuer_q = percent(issuer);
        format!(
            "otpauth://totp/{issuer_q}:{}?secret={}&issuer={issuer_q}&algorithm=SHA1&digits=6&period=30",
            percent(account),
            self.base32()
        )
    }

    fn totp(&self) -> Option<Totp> {
        Builder::new()
            .with_secret(Secret::from(self.0.clone()))
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(30)
            .build()
            .ok()
    }

    /// The code for a moment (for tests and for showing what is expected).
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.totp()
            .map(|t| t.generate(unix_seconds).to_string())
            .unwrap_or_default()
    }

    /// The time step `code` belongs to, if it is right for `unix_seconds`
    /// within one step of drift and newer than `last_step`.
    pub fn verify(&self, code: &str, unix_seconds: u64, last_step: Option<u64>) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let step = self.totp()?.check(&code, unix_seconds)?;
        match last_step {
            Some(last) if step <= last => None,
            _ => Some(step),
        }
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A one-time recovery code, shown once at enrolment; only its hash is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// Letters and digits that cannot be mistaken for each other when read
/// from paper (no 0/O, 1/l/I).
const CODE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

impl RecoveryCode {
    /// A fresh code: 12 characters from a 31-letter alphabet (59 bits),
    /// written `xxxx-xxxx-xxxx`.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).map_err(|e| RandomnessError::new(e.to_string()))?;
        // Rejection-free mapping with a negligible bias: 256 mod 31 = 8, so
        // eight letters are 1/32 more likely than the rest.
        let letters: Vec<char> = bytes
            .iter()
            .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
            .collect();
        let text: String = letters
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-");
        Ok(Self(text))
    }

    /// The code as shown to the person.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash of a code as typed: case, spaces and dashes do not matter.
    pub fn hash_typed(typed: &str) -> TokenHash {
        let normal: String = typed
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        TokenHash::from_bytes(Sha256::digest(normal.as_bytes()).into())
    }

    /// The hash under which this code is stored.
    pub fn hash(&self) -> TokenHash {
        Self::hash_typed(&self.0)
    }

    /// Whether typed text looks like a recovery code rather than a TOTP code.
    pub fn looks_like(typed: &str) -> bool {
        typed.chars().filter(|c| c.is_ascii_alphanumeric()).count() == 12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 secret, "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn codes_match_rfc_6238_test_vectors() {
        // Appendix B gives 8 digits; the 6-digit code is the last six.
        let s = rfc_secret();
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(s.code_at(t), eight[2..], "t = {t}");
        }
    }

    #[test]
    fn a_code_is_accepted_within_one_step_and_never_twice() {
        let s = rfc_secret();
        let t = 1_234_567_890;
        let code = s.code_at(t);
        let step = s.verify(&code, t, None).expect("valid now");
        assert_eq!(step, t / 30);
        assert_eq!(
            s.verify(&code, t + 30, None),
            Some(step),
            "one step of drift"
        );
        assert_eq!(s.verify(&code, t + 60, None), None, "two steps is too late");
        assert_eq!(s.verify(&code, t, Some(step)), None, "a replay is refused");
        assert_eq!(s.verify("000000", t, None), None);
        assert_eq!(s.verify("12345", t, None), None);
        assert_eq!(s.verify("abcdef", t, None), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(s.verify(&spaced, t, None), Some(step));
    }

    #[test]
    fn secrets_round_trip_through_base32_and_the_uri_names_the_account() {
        let s = TotpSecret::generate().expect("random");
        assert_eq!(s.base32().len(), 32);
        assert_eq!(TotpSecret::from_base32(&s.base32()), Some(s.clone()));
        assert_eq!(TotpSecret::from_base32("not base32!"), None);
        let uri = s.otpauth_uri("Electronic Staff Record", "999JSMITH01");
        assert!(uri.starts_with("otpauth://totp/Electronic%20Staff%20Record:999JSMITH01?secret="));
        assert!(uri.contains(&s.base32()));
        assert!(!format!("{s:?}").contains(&s.base32()));
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving_to_type() {
        let codes: Vec<RecoveryCode> = (0..RECOVERY_CODES)
            .map(|_| RecoveryCode::generate().expect("random"))
            .collect();
        let distinct: std::collections::HashSet<&str> = codes.iter().map(|c| c.as_str()).collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(c.as_str().len(), 14);
        assert!(RecoveryCode::looks_like(c.as_str()));
        assert_eq!(
            RecoveryCode::hash_typed(&c.as_str().to_uppercase().replace('-', " ")),
            c.hash()
        );
        assert_ne!(RecoveryCode::hash_typed("aaaa-aaaa-aaaa"), c.hash());
        assert!(!format!("{c:?}").contains(c.as_str()));
    }
}

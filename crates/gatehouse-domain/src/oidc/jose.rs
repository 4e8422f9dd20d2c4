//! Signed JSON Web Tokens (RFC 7515, 7519): the keys that sign ID tokens
//! and logout tokens (RS256 and ES256), their public JWKs (RFC 7517) for
//! the JWKS endpoint, and the key-encryption key that protects them at rest.
//!
//! Signing is ring's (constant-time). ring cannot make RSA keys, so the
//! RustCrypto `rsa` crate makes them and hands them over as PKCS#8; it
//! never signs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The size of the RSA keys made here, in bits (RFC 7518 asks for 2048 or more).
pub const RSA_BITS: usize = 2048;

/// A signing algorithm a client may ask its ID tokens to be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256: what OpenID Connect Discovery
    /// requires every provider to offer, and the default.
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
}

impl SigningAlg {
    /// Every algorithm, in the order Discovery lists them.
    pub const ALL: [SigningAlg; 2] = [SigningAlg::Rs256, SigningAlg::Es256];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
        }
    }

    /// Reads a JOSE name.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "RS256" => Ok(SigningAlg::Rs256),
            "ES256" => Ok(SigningAlg::Es256),
            other => Err(format!(
                "the signing algorithm must be RS256 or ES256, not {other:?}"
            )),
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong with a key or a token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoseError {
    /// A key could not be made, read or used.
    #[error("signing key: {0}")]
    Key(String),
    /// A stored key is encrypted and no key-encryption key was given, or
    /// the one given does not open it.
    #[error("{0}")]
    Sealed(String),
    /// A token is not a well-formed JWS or its signature does not verify.
    #[error("the token is not one this service signed")]
    BadToken,
}

/// A private key that signs tokens. Its `Debug` output names only its id.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    jwk: Jwk,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {})", self.alg, self.kid)
    }
}

/// A new key's private half as PKCS#8 DER, to store (sealed, where a
/// key-encryption key is set). Its `Debug` output is redacted.
pub struct Pkcs8(Vec<u8>);

impl std::fmt::Debug for Pkcs8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pkcs8(…)")
    }
}

impl Pkcs8 {
    /// The DER bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pkcs8 {
    fn drop(&mut self) {
        // Not a guarantee (copies may exist), but the plain private key
        // does not linger in this buffer once it is stored.
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl SigningKey {
    /// Makes a new key; returns it and its private half to store.
    pub fn generate(alg: SigningAlg) -> Result<(Self, Pkcs8), JoseError> {
        let der = match alg {
            SigningAlg::Rs256 => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let key = rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS)
                    .map_err(|e| JoseError::Key(e.to_string()))?;
                key.to_pkcs8_der()
                    .map_err(|e| JoseError::Key(e.to_string()))?
                    .as_bytes()
                    .to_vec()
            }
            SigningAlg::Es256 => EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|_| JoseError::Key("no P-256 key could be made".to_owned()))?
            .as_ref()
            .to_vec(),
        };
        let der = Pkcs8(der);
        Ok((Self::from_pkcs8(alg, der.as_bytes())?, der))
    }

    /// Reads a stored key. Its id is the RFC 7638 thumbprint of its public
    /// key, so it cannot disagree with the key.
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, JoseError> {
        let (pair, jwk) = match alg {
            SigningAlg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| JoseError::Key(format!("not an RSA key: {e}")))?;
                let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                let jwk = Jwk::rsa(&public.n, &public.e);
                (Pair::Rsa(pair), jwk)
            }
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(|e| JoseError::Key(format!("not a P-256 key: {e}")))?;
                // An uncompressed point: 0x04, then x and y of 32 bytes each.
                let jwk = match pair.public_key().as_ref() {
                    [0x04, rest @ ..] if rest.len() == 64 => {
                        let (x, y) = rest.split_at(32);
                        Jwk::ec(x, y)
                    }
                    _ => return Err(JoseError::Key("not an uncompressed P-256 point".to_owned())),
                };
                (Pair::Ec(pair), jwk)
            }
        };
        let kid = jwk.thumbprint();
        let jwk = Jwk {
            kid: Some(kid.clone()),
            alg: Some(alg.as_str().to_owned()),
            use_: Some("sig".to_owned()),
            ..jwk
        };
        Ok(Self {
            kid,
            alg,
            pair,
            jwk,
        })
    }

    /// The key's id (`kid`), in every token it signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Its algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public key, for the JWKS endpoint.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A compact JWS of `claims`, with `typ` in the header when given
    /// (`logout+jwt` for a logout token, RFC 8417 style).
    pub fn sign(&self, typ: Option<&str>, claims: &impl Serialize) -> Result<String, JoseError> {
        let header = Header {
            alg: self.alg.as_str(),
            kid: &self.kid,
            typ,
        };
        let json = |bytes: serde_json::Result<Vec<u8>>| {
            bytes
                .map(|b| URL_SAFE_NO_PAD.encode(b))
                .map_err(|e| JoseError::Key(e.to_string()))
        };
        let signing_input = format!(
            "{}.{}",
            json(serde_json::to_vec(&header))?,
            json(serde_json::to_vec(claims))?
        );
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    signing_input.as_bytes(),
                    &mut out,
                )
                .map_err(|_| JoseError::Key("RSA signing failed".to_owned()))?;
                out
            }
            Pair::Ec(pair) => pair
                .sign(&rng, signing_input.as_bytes())
                .map_err(|_| JoseError::Key("ECDSA signing failed".to_owned()))?
                .as_ref()
                .to_vec(),
        };
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    typ: Option<&'a str>,
}

/// A public key as a JWK (RFC 7517): what the JWKS endpoint publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA` or `EC`.
    pub kty: String,
    /// The key's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Its algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// `sig`: for signatures only.
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// RSA modulus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC curve: `P-256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl Jwk {
    fn rsa(n: &[u8], e: &[u8]) -> Self {
        Self {
            kty: "RSA".to_owned(),
            kid: None,
            alg: None,
            use_: None,
            n: Some(URL_SAFE_NO_PAD.encode(strip_zeros(n))),
            e: Some(URL_SAFE_NO_PAD.encode(strip_zeros(e))),
            crv: None,
            x: None,
            y: None,
        }
    }

    fn ec(x: &[u8], y: &[u8]) -> Self {
        Self {
            kty: "EC".to_owned(),
            kid: None,
            alg: None,
            use_: None,
            n: None,
            e: None,
            crv: Some("P-256".to_owned()),
            x: Some(URL_SAFE_NO_PAD.encode(x)),
            y: Some(URL_SAFE_NO_PAD.encode(y)),
        }
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required members in
    /// lexicographic order, base64url.
    fn thumbprint(&self) -> String {
        let text = match self.kty.as_str() {
            "RSA" => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                self.e.as_deref().unwrap_or_default(),
                self.n.as_deref().unwrap_or_default()
            ),
            _ => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                self.crv.as_deref().unwrap_or_default(),
                self.x.as_deref().unwrap_or_default(),
                self.y.as_deref().unwrap_or_default()
            ),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
    }

    /// Checks a compact JWS's signature against this public key, and
    /// returns its claims. Used for `id_token_hint` (a token this service
    /// signed) and by the tests, which check tokens as a client would:
    /// from the published JWK alone.
    pub fn verify(&self, token: &str) -> Result<serde_json::Value, JoseError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::BadToken);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JoseError::BadToken)
        };
        let head: serde_json::Value =
            serde_json::from_slice(&decode(header)?).map_err(|_| JoseError::BadToken)?;
        if head.get("kid").and_then(|k| k.as_str()) != self.kid.as_deref()
            || head.get("alg").and_then(|a| a.as_str()) != self.alg.as_deref()
        {
            return Err(JoseError::BadToken);
        }
        let signed = &token[..header.len() + 1 + payload.len()];
        let sig = decode(sig)?;
        let ok = match self.kty.as_str() {
            "RSA" => {
                let (Some(n), Some(e)) = (&self.n, &self.e) else {
                    return Err(JoseError::BadToken);
                };
                signature::RsaPublicKeyComponents {
                    n: decode(n)?,
                    e: decode(e)?,
                }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    signed.as_bytes(),
                    &sig,
                )
                .is_ok()
            }
            "EC" => {
                let (Some(x), Some(y)) = (&self.x, &self.y) else {
                    return Err(JoseError::BadToken);
                };
                let mut point = vec![0x04];
                point.extend(decode(x)?);
                point.extend(decode(y)?);
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed.as_bytes(), &sig)
                    .is_ok()
            }
            _ => false,
        };
        if !ok {
            return Err(JoseError::BadToken);
        }
        serde_json::from_slice(&decode(payload)?).map_err(|_| JoseError::BadToken)
    }
}

/// The `kid` in a compact JWS's header, to find the key that signed it.
pub fn kid_of(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let head: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(head.get("kid")?.as_str()?.to_owned())
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The key-encryption key (`GATEHOUSE_KEY_ENCRYPTION_KEY`): 32 bytes that
/// seal the private signing keys in the database with AES-256-GCM, so that
/// a copy of the database (or a backup) holds no key that can sign.
pub struct KeyEncryptionKey(LessSafeKey);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(…)")
    }
}

/// What a sealed key starts with, so that a plain one (PKCS#8 DER starts
/// with 0x30) is never mistaken for it.
const SEALED: &[u8] = b"GHK1";

impl KeyEncryptionKey {
    /// Reads 32 bytes written as base64 (standard or URL-safe, padded or not).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| "must be 32 random bytes written in base64 (`openssl rand -base64 32`)")?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
            format!(
                "must be 32 random bytes written in base64 (`openssl rand -base64 32`), not {}",
                bytes.len()
            )
        })?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Seals a private key; `label` (the key's id) is bound to it, so a
    /// sealed key cannot be swapped for another's row.
    pub fn seal(&self, label: &str, plain: &[u8]) -> Result<Vec<u8>, JoseError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| JoseError::Key("no random bytes for a nonce".to_owned()))?;
        let mut body = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label.as_bytes()),
                &mut body,
            )
            .map_err(|_| JoseError::Key("the key could not be sealed".to_owned()))?;
        let mut out = SEALED.to_vec();
        out.extend_from_slice(&nonce);
        out.extend(body);
        Ok(out)
    }
}

/// Whether stored key bytes are sealed.
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(SEALED)
}

/// The PKCS#8 DER of a stored key: opened with `kek` if it is sealed.
pub fn unseal(
    kek: Option<&KeyEncryptionKey>,
    label: &str,
    stored: &[u8],
) -> Result<Vec<u8>, JoseError> {
    let Some(rest) = stored.strip_prefix(SEALED) else {
        return Ok(stored.to_vec());
    };
    let Some(kek) = kek else {
        return Err(JoseError::Sealed(
            "GATEHOUSE_KEY_ENCRYPTION_KEY: the signing keys in the database are sealed; set the key that sealed them"
                .to_owned(),
        ));
    };
    if rest.len() < NONCE_LEN {
        return Err(JoseError::Sealed(format!("signing key {label}: truncated")));
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| JoseError::Sealed(format!("signing key {label}: truncated")))?;
    let mut body = body.to_vec();
    let plain = kek
        .0
        .open_in_place(nonce, Aad::from(label.as_bytes()), &mut body)
        .map_err(|_| {
            JoseError::Sealed(
                "GATEHOUSE_KEY_ENCRYPTION_KEY: it does not open the signing keys in the database"
                    .to_owned(),
            )
        })?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_the_published_key_and_nothing_else() {
        for alg in SigningAlg::ALL {
            let (key, _) = SigningKey::generate(alg).expect("key");
            let (other, _) = SigningKey::generate(alg).expect("key");
            let token = key
                .sign(None, &serde_json::json!({"sub": "abc", "aud": "client"}))
                .expect("sign");
            let claims = key.public_jwk().verify(&token).expect("verifies");
            assert_eq!(claims["sub"], "abc");
            assert_eq!(kid_of(&token).as_deref(), Some(key.kid()));
            assert_eq!(
                other.public_jwk().verify(&token),
                Err(JoseError::BadToken),
                "{alg}: another key's JWK"
            );
            // A changed payload with the old signature.
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"someone-else","aud":"client"}"#);
            parts[1] = &forged;
            assert_eq!(
                key.public_jwk().verify(&parts.join(".")),
                Err(JoseError::BadToken),
                "{alg}: tampered claims"
            );
            // alg "none": an unsigned token is never accepted.
            let none = format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, key.kid())),
                URL_SAFE_NO_PAD.encode(br#"{"sub":"abc"}"#)
            );
            assert_eq!(key.public_jwk().verify(&none), Err(JoseError::BadToken));
        }
    }

    #[test]
    fn a_stored_key_reads_back_with_the_same_id_and_public_key() {
        for alg in SigningAlg::ALL {
            let (key, der) = SigningKey::generate(alg).expect("key");
            let again = SigningKey::from_pkcs8(alg, der.as_bytes()).expect("read");
            assert_eq!(again.kid(), key.kid());
            assert_eq!(again.public_jwk(), key.public_jwk());
            let jwk = serde_json::to_value(key.public_jwk()).expect("json");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], alg.as_str());
            assert!(jwk.get("d").is_none(), "no private member is published");
            assert!(!format!("{key:?}").contains(&format!("{:?}", der.as_bytes())));
        }
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_key_and_label() {
        let kek =
            KeyEncryptionKey::parse(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .expect("kek");
        let sealed = kek.seal("kid-1", b"0private").expect("seal");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(8).any(|w| w == b"0private"));
        assert_eq!(
            unseal(Some(&kek), "kid-1", &sealed).expect("open"),
            b"0private"
        );
        assert!(
            unseal(Some(&kek), "kid-2", &sealed).is_err(),
            "another row's label"
        );
        assert!(unseal(None, "kid-1", &sealed).is_err(), "no key given");
        let other =
            KeyEncryptionKey::parse(&base64::engine::general_purpose::STANDARD.encode([8u8; 32]))
                .expect("kek");
        assert!(
            unseal(Some(&other), "kid-1", &sealed).is_err(),
            "the wrong key"
        );
        assert_eq!(unseal(None, "kid-1", b"0plain").expect("plain"), b"0plain");
        assert!(KeyEncryptionKey::parse("c2hvcnQ=").is_err(), "too short");
        assert!(KeyEncryptionKey::parse("not base64!").is_err());
    }
}

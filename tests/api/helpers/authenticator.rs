//! A software passkey for the tests: a P-256 key that answers WebAuthn
//! registration (attestation "none") and assertion requests as a platform
//! authenticator would, with user verification, a signature counter, and
//! the origin and relying party id it is told (so a test can lie about
//! them). The CBOR it writes is the little WebAuthn needs.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest as _, Sha256};

use super::PUBLIC_URL;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("base64url")
}

/// A CBOR head: major type and length or value.
fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend_from_slice(&(n as u16).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 26];
            v.extend_from_slice(&(n as u32).to_be_bytes());
            v
        }
    }
}

fn cbor_int(i: i64) -> Vec<u8> {
    if i >= 0 {
        head(0, i as u64)
    } else {
        head(1, (-1 - i) as u64)
    }
}

fn cbor_bytes(b: &[u8]) -> Vec<u8> {
    let mut v = head(2, b.len() as u64);
    v.extend_from_slice(b);
    v
}

fn cbor_text(t: &str) -> Vec<u8> {
    let mut v = head(3, t.len() as u64);
    v.extend_from_slice(t.as_bytes());
    v
}

/// A software authenticator holding one passkey.
pub struct SoftPasskey {
    pkcs8: Vec<u8>,
    key: EcdsaKeyPair,
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The user handle it was registered for.
    pub user_handle: Vec<u8>,
    /// The signature counter it will send next (after adding one).
    pub counter: u32,
    /// The origin it puts in client data.
    pub origin: String,
    /// The relying party id whose hash it puts in authenticator data.
    pub rp_id: String,
}

impl SoftPasskey {
    /// A new key for the test service's origin.
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("key")
            .as_ref()
            .to_vec();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng).expect("key");
        let mut credential_id = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut credential_id).expect("random");
        let origin = PUBLIC_URL.to_owned();
        let rp_id = url::Url::parse(PUBLIC_URL)
            .expect("url")
            .host_str()
            .expect("host")
            .to_owned();
        Self {
            pkcs8,
            key,
            credential_id,
            user_handle: Vec::new(),
            counter: 0,
            origin,
            rp_id,
        }
    }

    /// The same key, credential and counter: a cloned authenticator.
    pub fn clone_key(&self) -> Self {
        let rng = SystemRandom::new();
        Self {
            pkcs8: self.pkcs8.clone(),
            key: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8, &rng)
                .expect("key"),
            credential_id: self.credential_id.clone(),
            user_handle: self.user_handle.clone(),
            counter: self.counter,
            origin: self.origin.clone(),
            rp_id: self.rp_id.clone(),
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    fn auth_data(&self, flags: u8, counter: u32) -> Vec<u8> {
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend_from_slice(&counter.to_be_bytes());
        data
    }

    /// Answers `navigator.credentials.create` for the server's `options`
    /// (the `publicKey` wrapper included): the credential's JSON.
    pub fn register(&mut self, options: &serde_json::Value) -> String {
        let public_key = &options["publicKey"];
        let challenge = public_key["challenge"].as_str().expect("challenge");
        self.user_handle = unb64(public_key["user"]["id"].as_str().expect("user id"));
        let point = self.key.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        let mut cose = head(5, 5);
        for (k, v) in [
            (cbor_int(1), cbor_int(2)),
            (cbor_int(3), cbor_int(-7)),
            (cbor_int(-1), cbor_int(1)),
            (cbor_int(-2), cbor_bytes(x)),
            (cbor_int(-3), cbor_bytes(y)),
        ] {
            cose.extend(k);
            cose.extend(v);
        }
        // User present, user verified, attested credential data.
        let mut auth_data = self.auth_data(0x45, 0);
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend(cose);
        let mut attestation = head(5, 3);
        attestation.extend(cbor_text("fmt"));
        attestation.extend(cbor_text("none"));
        attestation.extend(cbor_text("attStmt"));
        attestation.extend(head(5, 0));
        attestation.extend(cbor_text("authData"));
        attestation.extend(cbor_bytes(&auth_data));
        let client_data = self.client_data("webauthn.create", challenge);
        serde_json::json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
            "extensions": {},
        })
        .to_string()
    }

    /// Answers `navigator.credentials.get` with the next counter value.
    pub fn assert(&mut self, options: &serde_json::Value) -> String {
        self.counter += 1;
        self.assert_at(options, self.counter)
    }

    /// Answers `navigator.credentials.get` with this counter value.
    pub fn assert_at(&self, options: &serde_json::Value, counter: u32) -> String {
        let challenge = options["publicKey"]["challenge"]
            .as_str()
            .expect("challenge");
        let client_data = self.client_data("webauthn.get", challenge);
        let auth_data = self.auth_data(0x05, counter);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .expect("signature");
        serde_json::json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.as_ref()),
                "userHandle": b64(&self.user_handle),
            },
            "extensions": {},
        })
        .to_string()
    }
}

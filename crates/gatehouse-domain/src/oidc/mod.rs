//! OpenID Connect: what Gatehouse, as a provider, promises the applications
//! that sign people in through it. The rules only; the endpoints are in
//! `gatehouse-core` and `gatehouse-web`.

pub mod authorize;
pub mod client;
pub mod jose;
pub mod scope;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::time::Span;

/// How long an authorization code lives (OpenID Connect's conformance suite
/// waits 30 s and expects a code to be refused once used, whatever its age).
pub const CODE_LIFETIME: Span = Span::from_seconds(60);

/// How long a back-channel logout token is good for once signed.
pub const LOGOUT_TOKEN_LIFETIME: Span = Span::minutes(2);

/// The event a back-channel logout token carries (Back-Channel Logout 1.0 §2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The `at_hash` of an access token: the left half of its SHA-256, base64url
/// (OpenID Connect Core §3.1.3.6; both RS256 and ES256 use SHA-256).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The `sid` of a Gatehouse session as applications see it: derived from
/// the stored hash of the session id, so it names the session without
/// being anything that could open it.
pub fn session_sid(session_hash: &crate::TokenHash) -> String {
    let mut h = Sha256::new();
    h.update(b"gatehouse sid\0");
    h.update(session_hash.as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
}

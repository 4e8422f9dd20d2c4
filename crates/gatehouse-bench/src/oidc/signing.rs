//! What signing an ID token costs on one core, against the raw rate of
//! the crate that signs it.

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use gatehouse_domain::oidc::jose::{SigningAlg, SigningKey};
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};

use crate::servers;

/// Signing rates on one core, per second of its CPU: the median of the
/// rounds.
pub(super) struct Signing {
    /// ring alone: RSASSA-PKCS1-v1_5 SHA-256 over the signing input.
    pub(super) ring_rs256: f64,
    /// The service's step: claims to JSON, base64url, ring, base64url.
    pub(super) service_rs256: f64,
    /// ring alone, ECDSA P-256.
    pub(super) ring_es256: f64,
    /// The service's step with an ES256 key.
    pub(super) service_es256: f64,
}

/// Rounds of the four signing rates, alternated so that a noisy moment
/// does not fall on one of them only.
pub(super) const SIGNING_ROUNDS: usize = 3;

/// How many times `op` runs per second of this thread's CPU, over
/// `seconds` of the clock: the rate on one core, whatever else the machine
/// runs meanwhile.
pub(super) fn rate(seconds: f64, mut op: impl FnMut() -> Result<()>) -> Result<f64> {
    let (began, cpu) = (Instant::now(), servers::thread_cpu_seconds());
    let mut n = 0u64;
    while began.elapsed().as_secs_f64() < seconds {
        op()?;
        n += 1;
    }
    let used = servers::thread_cpu_seconds() - cpu;
    if used < 0.1 {
        bail!(
            "the signing thread had {used:.2} s of CPU in {seconds} s: too busy a machine to measure"
        );
    }
    Ok(n as f64 / used)
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Signs `claims` (an ID token Gatehouse issued) over and over on one
/// thread with fresh keys of the sizes the service makes: ring alone, then
/// the service's signing step, for each algorithm.
pub(super) fn signing_rates(claims: &serde_json::Value, seconds: f64) -> Result<Signing> {
    let each = seconds / 2.0;
    let rng = ring::rand::SystemRandom::new();
    let (rsa, rsa_der) = SigningKey::generate(SigningAlg::Rs256)?;
    let (ec, ec_der) = SigningKey::generate(SigningAlg::Es256)?;
    let token = rsa.sign(None, claims)?;
    let input = token
        .rsplit_once('.')
        .map(|(input, _)| input.as_bytes().to_vec())
        .ok_or_else(|| anyhow!("not a JWS"))?;
    let rsa_pair =
        RsaKeyPair::from_pkcs8(rsa_der.as_bytes()).map_err(|e| anyhow!("the RSA key: {e}"))?;
    let ec_pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        ec_der.as_bytes(),
        &rng,
    )
    .map_err(|e| anyhow!("the P-256 key: {e}"))?;
    let mut out = vec![0; rsa_pair.public().modulus_len()];
    let mut rounds: [Vec<f64>; 4] = Default::default();
    for _ in 0..SIGNING_ROUNDS {
        rounds[0].push(rate(each, || {
            rsa_pair
                .sign(&signature::RSA_PKCS1_SHA256, &rng, &input, &mut out)
                .map_err(|_| anyhow!("RSA signing failed"))
        })?);
        rounds[1].push(rate(each, || {
            rsa.sign(None, claims).map(drop).map_err(Into::into)
        })?);
        rounds[2].push(rate(each, || {
            ec_pair
                .sign(&rng, &input)
                .map(drop)
                .map_err(|_| anyhow!("ECDSA signing failed"))
        })?);
        rounds[3].push(rate(each, || {
            ec.sign(None, claims).map(drop).map_err(Into::into)
        })?);
    }
    let [a, b, c, d] = rounds.map(median);
    Ok(Signing {
        ring_rs256: a,
        service_rs256: b,
        ring_es256: c,
        service_es256: d,
    })
}

//! The baseline for sign-in: the raw argon2id rate of this machine with the
//! service's parameters. Everything a sign-in does beside the hash should be
//! close to free, so sign-ins per second should come close to this.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher as _, Version};
use gatehouse_core::HashParams;

use crate::load::PASSWORD;

fn argon2() -> Result<Argon2<'static>> {
    let p = HashParams::default();
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string for [`PASSWORD`] with the service's parameters.
pub fn stored_hash() -> Result<String> {
    Ok(argon2()?
        .hash_password(PASSWORD.as_bytes())
        .map_err(|e| anyhow::anyhow!("hash: {e}"))?
        .to_string())
}

/// Verifications per second on `threads` threads for `seconds`.
///
/// Each thread reuses one block buffer, as the service's hashing threads
/// do: the crate's `verify_password` allocates and fills 19 MiB per call,
/// 3–12% slower on this machine, and a baseline slowed by that would flatter
/// the service. This is the fastest way this crate verifies.
pub fn raw_rate(threads: usize, seconds: f64) -> Result<f64> {
    let hash = stored_hash()?;
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let done = done.clone();
            let hash = hash.clone();
            scope.spawn(move || {
                let parsed = PasswordHash::new(&hash).expect("a valid hash");
                let a = argon2().expect("parameters");
                let salt = parsed.salt.expect("a salt");
                let expected = parsed.hash.expect("an output");
                let mut blocks = vec![Block::default(); a.params().block_count()];
                let mut out = vec![0u8; expected.len()];
                while Instant::now() < until {
                    a.hash_password_into_with_memory(
                        PASSWORD.as_bytes(),
                        &salt,
                        &mut out,
                        &mut blocks,
                    )
                    .expect("hashed");
                    let ok = Output::new(&out).is_ok_and(|computed| computed == expected);
                    assert!(ok, "the password verifies");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

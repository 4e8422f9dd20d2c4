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

/// The service's hash, computed as the service computes it (argon2-rust).
fn argon2_rust(output_len: usize) -> Result<argon2_rust::Argon2> {
    HashParams::default()
        .argon2id(output_len)
        .map_err(|e| anyhow::anyhow!("argon2-rust parameters: {e}"))
}

/// Which crate computes the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Implementation {
    /// `argon2-rust`, as the service uses it: one kept arena per thread.
    Argon2Rust,
    /// The RustCrypto `argon2` crate, which the service used before: one
    /// kept block buffer per thread.
    Rustcrypto,
}

/// A PHC string for [`PASSWORD`] with the service's parameters.
pub fn stored_hash() -> Result<String> {
    Ok(argon2()?
        .hash_password(PASSWORD.as_bytes())
        .map_err(|e| anyhow::anyhow!("hash: {e}"))?
        .to_string())
}

/// The raw output, in hex, of argon2id with the service's parameters for
/// the password and salt that `bench/argon2/rate.c` uses: every
/// implementation compared there must print the same.
pub fn check_output(implementation: Implementation) -> Result<String> {
    let (password, salt) = (b"correct horse battery staple", b"0123456789abcdef");
    let mut out = [0u8; 32];
    match implementation {
        Implementation::Argon2Rust => argon2_rust(out.len())?
            .hash_into(password, salt, &mut out)
            .map_err(|e| anyhow::anyhow!("hash: {e}"))?,
        Implementation::Rustcrypto => {
            let a = argon2()?;
            let mut blocks = vec![Block::default(); a.params().block_count()];
            a.hash_password_into_with_memory(password, salt, &mut out, &mut blocks)
                .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
        }
    }
    Ok(out.iter().map(|b| format!("{b:02x}")).collect())
}

/// One verification's hash, into the output buffer it is given.
type Compute = Box<dyn FnMut(&mut [u8])>;

/// Verifications per second on `threads` threads for `seconds`.
///
/// Each thread keeps its memory between hashes, as the service's hashing
/// threads do: allocating and filling 19 MiB per call was 3–12% slower on
/// this machine, and a baseline slowed by that would flatter the service.
/// With [`Implementation::Argon2Rust`] this is the fastest way the service's
/// hash runs here: the baseline the sign-in rate is held to.
pub fn raw_rate(implementation: Implementation, threads: usize, seconds: f64) -> Result<f64> {
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
                let salt = parsed.salt.expect("a salt");
                let expected = parsed.hash.expect("an output");
                let mut out = vec![0u8; expected.len()];
                let mut compute: Compute = match implementation {
                    Implementation::Argon2Rust => {
                        let mut hasher = argon2_rust(expected.len()).expect("parameters").hasher();
                        Box::new(move |out| {
                            hasher
                                .hash_into(PASSWORD.as_bytes(), salt.as_ref(), out)
                                .expect("hashed");
                        })
                    }
                    Implementation::Rustcrypto => {
                        let a = argon2().expect("parameters");
                        let mut blocks = vec![Block::default(); a.params().block_count()];
                        Box::new(move |out| {
                            a.hash_password_into_with_memory(
                                PASSWORD.as_bytes(),
                                &salt,
                                out,
                                &mut blocks,
                            )
                            .expect("hashed");
                        })
                    }
                };
                while Instant::now() < until {
                    compute(&mut out);
                    let ok = Output::new(&out).is_ok_and(|computed| computed == expected);
                    assert!(ok, "the password verifies");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

//! Sign-in against the hash rate: the raw argon2id rate of this machine with
//! the service's parameters, then `gatehouse serve` (the release binary) at
//! saturation, as a ratio. Everything but the hash should be close to free.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use gatehouse_core::HashParams;

const PASSWORD: &str = "kettle violin marmalade";

fn argon2() -> Result<Argon2<'static>> {
    let p = HashParams::default();
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn stored_hash() -> Result<String> {
    Ok(argon2()?
        .hash_password(PASSWORD.as_bytes())
        .map_err(|e| anyhow::anyhow!("hash: {e}"))?
        .to_string())
}

/// Verifications per second on `threads` threads for `seconds`.
pub fn raw_rate(threads: usize, seconds: u64) -> Result<f64> {
    let hash = stored_hash()?;
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let done = done.clone();
            let hash = hash.clone();
            scope.spawn(move || {
                let parsed = PasswordHash::new(&hash).expect("a valid hash");
                let a = argon2().expect("parameters");
                while Instant::now() < until {
                    let ok = a.verify_password(PASSWORD.as_bytes(), &parsed).is_ok();
                    assert!(ok, "the password verifies");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What a saturating sign-in run measured.
pub struct SignInRun {
    /// Successful sign-ins per second.
    pub rate: f64,
    /// "Busy, try again" answers (503).
    pub busy: u64,
    /// Anything else unexpected.
    pub other: u64,
    /// Latencies of the sign-in POSTs that succeeded.
    pub latencies: Vec<Duration>,
}

/// Prepares a database of `people` with a password set, starts the binary
/// on it, and signs in from `clients` concurrent clients for `seconds`.
pub async fn saturate(
    binary: &Path,
    people: usize,
    clients: usize,
    seconds: u64,
) -> Result<SignInRun> {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("staff.csv");
    let mut text = String::from("employer,username,first_name,last_name,date_of_birth,email\n");
    for i in 0..people {
        text.push_str(&format!(
            "999 Bench Trust,U{i:05},Pat,Doe,1980-01-01,pat.{i}@nhs.net\n"
        ));
    }
    std::fs::write(&csv, text)?;
    let db = format!("sqlite://{}/gatehouse.db", dir.path().display());
    let status = Command::new(binary)
        .args(["import", &csv.display().to_string()])
        .env("GATEHOUSE_DATABASE_URL", &db)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !status.success() {
        bail!("gatehouse import failed");
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await?;
    sqlx::query("UPDATE accounts SET password_hash = $1, password_changed_at = 0")
        .bind(stored_hash()?)
        .execute(&pool)
        .await?;
    pool.close().await;

    let port = free_port()?;
    let origin = format!("http://127.0.0.1:{port}");
    let _server = Server(
        Command::new(binary)
            .arg("serve")
            .env("GATEHOUSE_DATABASE_URL", &db)
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_PUBLIC_URL", &origin)
            .env(
                "GATEHOUSE_MAIL_URL",
                format!("file://{}/outbox", dir.path().display()),
            )
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let ready = Instant::now();
    loop {
        if reqwest::get(format!("{origin}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        if ready.elapsed() > Duration::from_secs(20) {
            bail!("gatehouse serve did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let until = Instant::now() + Duration::from_secs(seconds);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let origin = origin.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            let (mut busy, mut other) = (0u64, 0u64);
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize % people;
                let client = reqwest::Client::builder()
                    .cookie_store(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?;
                let page = client
                    .get(format!("{origin}/login"))
                    .send()
                    .await?
                    .text()
                    .await?;
                let marker = "name=\"csrf_token\" value=\"";
                let token = page
                    .split(marker)
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default()
                    .to_owned();
                let username = format!("U{n:05}");
                let t = Instant::now();
                let response = client
                    .post(format!("{origin}/login"))
                    .form(&[
                        ("username", username.as_str()),
                        ("password", PASSWORD),
                        ("csrf_token", token.as_str()),
                    ])
                    .send()
                    .await?;
                match response.status().as_u16() {
                    303 => ok.push(t.elapsed()),
                    503 => busy += 1,
                    _ => other += 1,
                }
            }
            anyhow::Ok((ok, busy, other))
        }));
    }
    let start = Instant::now();
    let mut run = SignInRun {
        rate: 0.0,
        busy: 0,
        other: 0,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (ok, busy, other) = t.await??;
        run.latencies.extend(ok);
        run.busy += busy;
        run.other += other;
    }
    run.rate = run.latencies.len() as f64 / start.elapsed().as_secs_f64().max(seconds as f64);
    Ok(run)
}

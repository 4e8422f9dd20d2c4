//! The services under test, each a real process on loopback: `gatehouse
//! serve` (the release binary) on SQLite or PostgreSQL, and the Django +
//! django-axes baseline under gunicorn (bench/django/run.sh).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::signin::stored_hash;

/// A process that is stopped (with its children) when dropped.
pub struct Server {
    child: Child,
    /// Its `http://127.0.0.1:PORT`.
    pub origin: String,
    /// How long it took from `exec` to answering its health check.
    pub startup: Duration,
}

impl Server {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, MiB, of the process and its children.
    pub fn rss_mib(&self) -> f64 {
        family(self.pid())
            .iter()
            .map(|p| status_kib(*p, "VmRSS:"))
            .sum::<f64>()
            / 1024.0
    }

    /// The most resident memory the process itself ever had, MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        status_kib(self.pid(), "VmHWM:") / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: gunicorn's master stops its workers on it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used, from /proc (the kernel
/// counts in 1/100 s on Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_cpu_seconds(&s))
        .unwrap_or(0.0)
}

/// CPU seconds the calling thread has used (10 ms steps): a rate per
/// second of this, unlike one per second of the clock, does not fall when
/// other processes take the core.
pub fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| stat_cpu_seconds(&s))
        .unwrap_or(0.0)
}

/// CPU seconds a process and its children (gunicorn's workers) have used.
pub fn family_cpu_seconds(pid: u32) -> f64 {
    family(pid).into_iter().map(cpu_seconds).sum()
}

/// User + system seconds from a `stat` line of /proc (a process's or a thread's).
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// What a process's threads have done so far, from /proc/PID/task: the
/// noise-free side of the sign-in ratio. Threads that have ended are not
/// counted (the server's are long-lived: tokio's workers, the hashing
/// threads, one per SQLite connection).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadWork {
    /// CPU seconds of every thread but the hashing threads
    /// (`gatehouse-hash-N`): what the server does beside the hash.
    pub beside_hashing: f64,
    /// Context switches of every thread, voluntary (a thread waiting for
    /// a message) and not (a thread preempted, a hash among them).
    pub switches: f64,
}

impl ThreadWork {
    /// The threads of `pid` now.
    pub fn of(pid: u32) -> Self {
        let mut work = Self::default();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return work;
        };
        for task in tasks.flatten() {
            let dir = task.path();
            if let Ok(stat) = std::fs::read_to_string(dir.join("stat")) {
                let name = stat
                    .split_once('(')
                    .and_then(|(_, rest)| rest.rsplit_once(')'))
                    .map_or("", |(name, _)| name);
                if !name.starts_with("gatehouse-hash") {
                    work.beside_hashing += stat_cpu_seconds(&stat).unwrap_or(0.0);
                }
            }
            if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
                for line in status.lines() {
                    if let Some(count) = line
                        .strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                    {
                        work.switches += count.trim().parse::<f64>().unwrap_or(0.0);
                    }
                }
            }
        }
        work
    }

    /// The work done between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            beside_hashing: self.beside_hashing - earlier.beside_hashing,
            switches: self.switches - earlier.switches,
        }
    }
}

/// Seconds every core of the machine has spent idle (or waiting for I/O)
/// since boot, from /proc/stat: what is left of a run's CPU once the
/// measured processes are counted is either idle cores or other processes.
pub fn machine_idle_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?;
            let fields: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            Some((fields.get(3)? + fields.get(4)?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// A process and its children (gunicorn's workers).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        out.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out
}

fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Samples a server's resident memory (with its children) until dropped,
/// keeping the highest.
pub struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<f64>>,
}

impl PeakSampler {
    /// Starts sampling every 20 ms.
    pub fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let now: f64 = family(pid).iter().map(|p| status_kib(*p, "VmRSS:")).sum();
                peak = peak.max(now);
                std::thread::sleep(Duration::from_millis(20));
            }
            peak / 1024.0
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// The highest resident memory seen, MiB.
    pub fn finish(mut self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(origin: &str, path: &str, child: &mut Child, started: Instant) -> Result<()> {
    loop {
        if reqwest::get(format!("{origin}{path}"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the server exited before answering: {status}");
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the server did not answer {origin}{path} within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The staff file every Gatehouse benchmark database holds: `people`
/// accounts U00000… with addresses pat.N@nhs.net, born 1980-01-01.
fn staff_csv(dir: &Path, people: usize) -> Result<PathBuf> {
    let csv = dir.join("staff.csv");
    let mut text = String::from("employer,username,first_name,last_name,date_of_birth,email\n");
    for i in 0..people {
        text.push_str(&format!(
            "999 Bench Trust,U{i:05},Pat,Doe{i},1980-01-01,pat.{i}@nhs.net\n"
        ));
    }
    std::fs::write(&csv, text)?;
    Ok(csv)
}

fn gatehouse(binary: &Path, url: &str, args: &[&str]) -> Result<()> {
    gatehouse_output(binary, url, args).map(drop)
}

/// Runs a `gatehouse` command on the database at `url`; its standard output.
pub fn gatehouse_output(binary: &Path, url: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(binary)
        .args(args)
        .env("GATEHOUSE_DATABASE_URL", url)
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "gatehouse {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates a Gatehouse database of `people` accounts with the benchmark
/// password set: a SQLite file in `dir`, or a fresh PostgreSQL database
/// `gatehouse_bench_http` on `postgres` (a server URL without a database).
pub async fn gatehouse_database(
    binary: &Path,
    dir: &Path,
    people: usize,
    postgres: Option<&str>,
) -> Result<String> {
    sqlx::any::install_default_drivers();
    let url = match postgres {
        None => format!("sqlite://{}/gatehouse.db", dir.display()),
        Some(server) => {
            let admin = sqlx::AnyPool::connect(&format!("{server}/postgres")).await?;
            sqlx::query("DROP DATABASE IF EXISTS gatehouse_bench_http WITH (FORCE)")
                .execute(&admin)
                .await?;
            sqlx::query("CREATE DATABASE gatehouse_bench_http")
                .execute(&admin)
                .await?;
            admin.close().await;
            let url = format!("{server}/gatehouse_bench_http");
            gatehouse(binary, &url, &["migrate"])?;
            url
        }
    };
    let csv = staff_csv(dir, people)?;
    gatehouse(binary, &url, &["import", &csv.display().to_string()])?;
    let pool = sqlx::AnyPool::connect(&url).await?;
    sqlx::query("UPDATE accounts SET password_hash = $1, password_changed_at = 0")
        .bind(stored_hash()?)
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(url)
}

/// Starts `gatehouse serve` on `url`. `extra` adds settings; `--no-worker`
/// when `worker` is false (so only the web path is measured).
pub async fn start_gatehouse(
    binary: &Path,
    url: &str,
    dir: &Path,
    worker: bool,
    extra: &[(&str, &str)],
) -> Result<Server> {
    let port = free_port()?;
    let origin = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(binary);
    command.arg("serve");
    if !worker {
        command.arg("--no-worker");
    }
    command
        .env("GATEHOUSE_DATABASE_URL", url)
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_PUBLIC_URL", &origin)
        .env(
            "GATEHOUSE_MAIL_URL",
            format!("file://{}/outbox", dir.display()),
        )
        // Benchmarks send far more than a hospital's worth of recovery
        // requests from one address.
        .env(
            "GATEHOUSE_RECOVERY_REQUESTS_PER_CLIENT_PER_HOUR",
            "10000000",
        )
        .env("GATEHOUSE_LOG", "warn")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log"))?);
    let started = Instant::now();
    let mut child = command.spawn()?;
    wait_ready(&origin, "/healthz", &mut child, started)
        .await
        .with_context(|| format!("see {}", dir.join("serve.log").display()))?;
    Ok(Server {
        startup: started.elapsed(),
        child,
        origin,
    })
}

/// Starts the Django baseline (bench/django/run.sh: a virtualenv on first
/// use, a fresh SQLite database of `people` users, gunicorn with 2 workers).
/// `keep` restarts on the database already in `dir`.
pub async fn start_django(repo: &Path, dir: &Path, people: usize, keep: bool) -> Result<Server> {
    let port = free_port()?;
    let origin = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("django-run.log"))?;
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo.join("bench/django/run.sh"))
        .arg(port.to_string())
        .arg(dir)
        .arg(people.to_string())
        .env("DJANGO_BENCH_KEEP_DB", if keep { "1" } else { "0" })
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    wait_ready(&origin, "/login", &mut child, started)
        .await
        .with_context(|| format!("see {}", dir.join("django-run.log").display()))?;
    Ok(Server {
        startup: started.elapsed(),
        child,
        origin,
    })
}

//! `gatehouse-bench all`: every figure of BENCHMARKS.md in one run, each
//! beside its baseline measured in the same run, printed as Markdown tables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::load::{self, Run, Target};
use crate::servers::{self, PeakSampler, Server};
use crate::{oidc, outbox, signin};

/// What `all` was asked to do.
pub struct Options {
    /// The release binary.
    pub binary: PathBuf,
    /// Seconds per measurement.
    pub seconds: f64,
    /// Rounds of (raw hash rate, sign-in rate) for the ratio.
    pub rounds: usize,
    /// Staff rows for the import figure (0: skip).
    pub rows: usize,
    /// PostgreSQL server URL without a database (None: skip PostgreSQL).
    pub postgres: Option<String>,
    /// Whether to run the Django baseline.
    pub django: bool,
    /// Stop after the sign-in ratio.
    pub sign_in_only: bool,
}

/// Accounts in the HTTP benchmarks' databases: enough that each recovery
/// request in a run names a different address (3 emails per address per
/// hour would otherwise silence most of them).
const PEOPLE: usize = 20_000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn success(status: u16) -> bool {
    (300..400).contains(&status)
}

fn any(_: u16) -> bool {
    true
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        // An even count: the mean of the two middle values, not the upper one.
        _ if n.is_multiple_of(2) => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        _ => v[n / 2],
    }
}

/// The mean and its standard error (the spread of the rounds over the
/// square root of their number): how far the mean may be from the
/// machine's true figure, given how much rounds differ.
fn mean_and_error(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let variance = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// A table's header row and the line under it.
fn header(names: &[&str]) {
    println!("| {} |", names.join(" | "));
    println!("|{}", " --- |".repeat(names.len()));
}

/// Sign-ins per second at saturation, closed loop.
async fn sign_in_rate(target: &Target, clients: usize, seconds: f64) -> Result<Run> {
    let client = load::client()?;
    let t = target.clone();
    Ok(load::closed_loop(clients, seconds, move |n| {
        let (client, t) = (client.clone(), t.clone());
        async move { load::sign_in(&client, &t, n % PEOPLE).await }
    })
    .await)
}

async fn open_loop_sign_in(target: &Target, rate: f64, seconds: f64) -> Result<Run> {
    let client = load::client()?;
    let t = target.clone();
    Ok(load::open_loop(rate, seconds, move |n| {
        let (client, t) = (client.clone(), t.clone());
        async move { load::sign_in(&client, &t, n % PEOPLE).await }
    })
    .await)
}

async fn flood(target: &Target, server: &Server, count: usize) -> Result<(Run, f64)> {
    let sampler = PeakSampler::start(server.pid());
    let client = load::client()?;
    let t = target.clone();
    let run = load::burst(count, move |n| {
        let (client, t) = (client.clone(), t.clone());
        async move { load::sign_in(&client, &t, n % PEOPLE).await }
    })
    .await;
    Ok((run, sampler.finish()))
}

async fn login_page_rate(target: &Target, seconds: f64) -> Result<Run> {
    let client = load::client()?;
    let t = target.clone();
    Ok(load::closed_loop(32, seconds, move |n| {
        let (client, t) = (client.clone(), t.clone());
        async move { load::login_page(&client, &t, n).await }
    })
    .await)
}

/// Recovery POSTs with matching addresses, then with addresses nobody has,
/// then again in the other order (so drift over the run cancels out).
/// Each request names an address not used before in the run.
async fn recovery(target: &Target, seconds: f64) -> Result<[Run; 2]> {
    let client = load::client()?;
    let mut runs: [Run; 2] = Default::default();
    let offset = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for matching in [true, false, false, true] {
        let (client, t, offset) = (client.clone(), target.clone(), offset.clone());
        let run = load::closed_loop(16, seconds / 2.0, move |_| {
            let (client, t) = (client.clone(), t.clone());
            let n = offset.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let email = if matching {
                    format!("pat.{}@nhs.net", n % PEOPLE)
                } else {
                    format!("nobody.{n}@nhs.net")
                };
                load::recover(&client, &t, &email).await
            }
        })
        .await;
        let slot = &mut runs[usize::from(!matching)];
        slot.answers.extend(run.answers);
        slot.errors += run.errors;
        slot.elapsed += run.elapsed;
    }
    Ok(runs)
}

fn recovery_rows(name: &str, runs: &[Run; 2]) {
    for (run, kind) in runs.iter().zip(["matching", "no match"]) {
        row(&[
            format!("{name}: recovery POST, {kind}"),
            format!("{:.0} /s", run.rate(success)),
            format!(
                "{:.1} / {:.1} ms",
                ms(run.quantile(0.5, any)),
                ms(run.quantile(0.99, any))
            ),
            format!(
                "{} of {}",
                run.answers.iter().filter(|a| !success(a.status)).count(),
                run.answers.len()
            ),
        ]);
    }
    let (a, b) = (runs[0].rate(success), runs[1].rate(success));
    row(&[
        format!("{name}: recovery, matching / no match"),
        format!("{:.2}", a / b.max(1e-9)),
        format!(
            "p50 ratio {:.2}",
            ms(runs[0].quantile(0.5, any)) / ms(runs[1].quantile(0.5, any)).max(1e-9)
        ),
        "target: within noise".to_owned(),
    ]);
}

/// Runs everything and prints the tables.
pub async fn run(options: Options) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let dir = tempfile::tempdir()?;
    let repo = std::env::current_dir()?;
    let binary = options.binary.canonicalize().with_context(|| {
        format!(
            "{} not found: run `cargo build --release` first",
            options.binary.display()
        )
    })?;
    let seconds = options.seconds;
    println!(
        "machine: {cores} cores; {seconds} s per measurement; {} accounts; binary {}",
        PEOPLE,
        binary.display()
    );

    // Gatehouse on SQLite.
    let gdir = dir.path().join("gatehouse");
    std::fs::create_dir_all(&gdir)?;
    let url = servers::gatehouse_database(&binary, &gdir, PEOPLE, None).await?;
    let server = servers::start_gatehouse(&binary, &url, &gdir, true, &[]).await?;
    let gatehouse = Target::gatehouse(server.origin.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = server.rss_mib();
    let startup = server.startup;

    eprintln!(
        "sign-in against the raw hash rate, {} rounds…",
        options.rounds
    );
    let mut ratios = Vec::new();
    let mut raws = Vec::new();
    let mut rates = Vec::new();
    let mut sign_ins = Run::default();
    // CPU seconds of the server and of the load generator during the
    // sign-in runs, and their wall-clock length.
    let mut cpu = (0.0, 0.0, 0.0);
    let mut idle = 0.0;
    let mut threads = servers::ThreadWork::default();
    for _ in 0..options.rounds {
        let raw = tokio::task::spawn_blocking(move || {
            signin::raw_rate(signin::Implementation::Argon2Rust, cores, seconds)
        })
        .await??;
        let (server_cpu, own_cpu, idle_before) = (
            servers::cpu_seconds(server.pid()),
            servers::cpu_seconds(std::process::id()),
            servers::machine_idle_seconds(),
        );
        let threads_before = servers::ThreadWork::of(server.pid());
        let run = sign_in_rate(&gatehouse, cores * 4, seconds).await?;
        let work = servers::ThreadWork::of(server.pid()).since(threads_before);
        threads.beside_hashing += work.beside_hashing;
        threads.switches += work.switches;
        cpu.0 += servers::cpu_seconds(server.pid()) - server_cpu;
        cpu.1 += servers::cpu_seconds(std::process::id()) - own_cpu;
        idle += servers::machine_idle_seconds() - idle_before;
        cpu.2 += run.elapsed.as_secs_f64();
        let rate = run.rate(success);
        ratios.push(rate / raw.max(1e-9));
        raws.push(raw);
        rates.push(rate);
        sign_ins.answers.extend(run.answers);
        sign_ins.errors += run.errors;
    }
    let (raw, sustainable, ratio) = (median(raws), median(rates), median(ratios.clone()));
    let signed_in = sign_ins.count(303).max(1) as f64;
    let per_sign_in = |seconds: f64| 1000.0 * seconds / signed_in;
    let cpu_row = || {
        row(&[
            "CPU per sign-in: server / load generator / other processes / idle (ms), against one verification".into(),
            String::new(),
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1}",
                per_sign_in(cpu.0),
                per_sign_in(cpu.1),
                per_sign_in((cpu.2 * cores as f64 - cpu.0 - cpu.1 - idle).max(0.0)),
                per_sign_in(idle)
            ),
            format!("{:.1}", 1000.0 * cores as f64 / raw.max(1e-9)),
            String::new(),
        ]);
        row(&[
            "the server beside its hashing threads, per sign-in: CPU (ms) / context switches of all its threads".into(),
            String::new(),
            format!(
                "{:.2} / {:.1}",
                per_sign_in(threads.beside_hashing),
                threads.switches / signed_in
            ),
            String::new(),
            String::new(),
        ]);
    };
    let (mean, error) = mean_and_error(&ratios);
    let ratio_row = || {
        row(&[
            format!(
                "sign-ins/s at saturation ({} clients) vs raw argon2id verifications/s on {cores} threads",
                cores * 4
            ),
            ">= 0.95".into(),
            format!("{sustainable:.1}"),
            format!("{raw:.1}"),
            format!(
                "{ratio:.3} (mean {mean:.3} ± {error:.3}; rounds: {})",
                ratios
                    .iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ]);
    };
    if options.sign_in_only {
        header(&["measure", "target", "Gatehouse", "baseline", "ratio"]);
        ratio_row();
        cpu_row();
        return Ok(());
    }

    // The crate the service computed its hash with before argon2-rust,
    // alternated with it: what the change of crate bought.
    eprintln!("the raw rate of argon2-rust against the RustCrypto crate…");
    let (mut ours, mut before) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for (implementation, rates) in [
            (signin::Implementation::Argon2Rust, &mut ours),
            (signin::Implementation::Rustcrypto, &mut before),
        ] {
            rates.push(
                tokio::task::spawn_blocking(move || {
                    signin::raw_rate(implementation, cores, seconds)
                })
                .await??,
            );
        }
    }
    let crate_ratios: Vec<f64> = ours
        .iter()
        .zip(&before)
        .map(|(a, b)| a / b.max(1e-9))
        .collect();
    let (ours, before) = (median(ours), median(before));

    eprintln!("sign-in at 1x, 2x and 4x the sustainable rate…");
    let mut levels = Vec::new();
    for factor in [1.0, 2.0, 4.0] {
        levels.push((
            factor,
            open_loop_sign_in(&gatehouse, sustainable * factor, seconds).await?,
        ));
    }
    eprintln!("login page and recovery…");
    let page = login_page_rate(&gatehouse, seconds).await?;
    let recovered = recovery(&gatehouse, seconds).await?;
    drop(server);

    eprintln!("a 1,000-connection sign-in flood on a fresh server…");
    let server = servers::start_gatehouse(&binary, &url, &gdir, true, &[]).await?;
    let (flooded, flood_peak) = flood(&gatehouse_at(&server), &server, 1000).await?;
    let flood_hwm = server.peak_rss_mib();
    drop(server);

    let postgres = match &options.postgres {
        Some(pg) => {
            eprintln!("recovery on PostgreSQL…");
            let pdir = dir.path().join("postgres");
            std::fs::create_dir_all(&pdir)?;
            let url = servers::gatehouse_database(&binary, &pdir, PEOPLE, Some(pg)).await?;
            let server = servers::start_gatehouse(&binary, &url, &pdir, true, &[]).await?;
            let runs = recovery(&gatehouse_at(&server), seconds).await?;
            Some(runs)
        }
        None => None,
    };

    let django = if options.django {
        eprintln!("the Django + django-axes baseline…");
        let ddir = dir.path().join("django");
        std::fs::create_dir_all(&ddir)?;
        let server = servers::start_django(&repo, &ddir, PEOPLE, false).await?;
        let target = Target::django(server.origin.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = server.rss_mib();
        let signed = sign_in_rate(&target, cores * 2, seconds).await?;
        let mut dlevels = Vec::new();
        for factor in [1.0, 2.0, 4.0] {
            dlevels.push(open_loop_sign_in(&target, sustainable * factor, seconds).await?);
        }
        let page = login_page_rate(&target, seconds).await?;
        let recovered = recovery(&target, seconds).await?;
        let (flooded, peak) = flood(&target, &server, 1000).await?;
        drop(server);
        // A restart on the same database, for start-up time.
        let restart = servers::start_django(&repo, &ddir, PEOPLE, true).await?;
        Some((
            idle,
            signed,
            dlevels,
            page,
            recovered,
            flooded,
            peak,
            restart.startup,
        ))
    } else {
        None
    };

    eprintln!("outbox drain…");
    let odir = dir.path().join("outbox");
    std::fs::create_dir_all(&odir)?;
    let drained = outbox::drain(&binary, &odir, 10_000).await?;

    // The tables.
    println!();
    println!(
        "Sign-in against the hash rate ({} rounds, medians):",
        options.rounds
    );
    println!();
    header(&["measure", "target", "Gatehouse", "baseline", "ratio"]);
    ratio_row();
    cpu_row();
    row(&[
        format!(
            "raw argon2id verifications/s on {cores} threads: argon2-rust (the service) vs the RustCrypto crate (before), 3 alternated pairs"
        ),
        String::new(),
        format!("{ours:.1}"),
        format!("{before:.1}"),
        format!(
            "{:.2} (pairs: {})",
            median(crate_ratios.clone()),
            crate_ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ]);
    row(&[
        "sign-ins/s at saturation vs the RustCrypto crate's raw rate (the ceiling before)".into(),
        String::new(),
        format!("{sustainable:.1}"),
        format!("{before:.1}"),
        format!("{:.2}", sustainable / before.max(1e-9)),
    ]);
    if let Some((_, signed, ..)) = &django {
        row(&[
            "Django + axes sign-ins/s at saturation vs the same raw rate".into(),
            String::new(),
            format!("{:.1}", signed.rate(success)),
            format!("{raw:.1}"),
            format!("{:.3}", signed.rate(success) / raw.max(1e-9)),
        ]);
    }
    println!();
    println!("Sign-in under load (open loop: arrivals at a fixed rate; POST latency):");
    println!();
    header(&[
        "offered",
        "service",
        "signed in",
        "503 busy",
        "other / errors",
        "p50 / p99 signed in",
        "p50 / p99 of 503",
    ]);
    let level_row = |name: &str, factor: f64, run: &Run| {
        let ok = run.count(303) + run.count(302);
        row(&[
            format!("{factor}x ({:.0}/s)", sustainable * factor),
            name.to_owned(),
            ok.to_string(),
            run.count(503).to_string(),
            format!(
                "{} / {}",
                run.answers.len() - ok - run.count(503),
                run.errors
            ),
            format!(
                "{:.0} / {:.0} ms",
                ms(run.quantile(0.5, success)),
                ms(run.quantile(0.99, success))
            ),
            format!(
                "{:.0} / {:.0} ms",
                ms(run.quantile(0.5, |s| s == 503)),
                ms(run.quantile(0.99, |s| s == 503))
            ),
        ]);
    };
    for (factor, run) in &levels {
        level_row("Gatehouse", *factor, run);
    }
    if let Some((_, _, dlevels, ..)) = &django {
        for (factor, run) in [1.0, 2.0, 4.0].iter().zip(dlevels) {
            level_row("Django + axes", *factor, run);
        }
    }
    println!();
    println!("Throughput, memory and start-up:");
    println!();
    header(&["measure", "Gatehouse", "p50 / p99", "refused or failed"]);
    row(&[
        "GET /login, 32 clients".into(),
        format!("{:.0} /s", page.rate(|s| s == 200)),
        format!(
            "{:.2} / {:.2} ms",
            ms(page.quantile(0.5, any)),
            ms(page.quantile(0.99, any))
        ),
        format!("{}", page.errors),
    ]);
    recovery_rows("SQLite", &recovered);
    if let Some(runs) = &postgres {
        recovery_rows("PostgreSQL", runs);
    }
    let permits = cores;
    let bound = permits as f64 * 19.0 + 64.0;
    row(&[
        "1,000-connection sign-in flood: peak RSS (sampled / kernel high-water mark)".into(),
        format!("{flood_peak:.0} / {flood_hwm:.0} MiB"),
        format!("target <= {permits} x 19 + 64 = {bound:.0} MiB"),
        format!(
            "{} signed in, {} busy (503), {} other, {} errors, all answered in {:.1} s",
            flooded.count(303),
            flooded.count(503),
            flooded.answers.len() - flooded.count(303) - flooded.count(503),
            flooded.errors,
            flooded.elapsed.as_secs_f64()
        ),
    ]);
    row(&[
        "idle RSS after start".into(),
        format!("{idle_rss:.1} MiB"),
        String::new(),
        String::new(),
    ]);
    row(&[
        "start-up to /healthz (existing database)".into(),
        format!("{:.0} ms", ms(startup)),
        String::new(),
        String::new(),
    ]);
    row(&[
        "outbox drain: 10,000 emails to a local SMTP sink (`gatehouse worker`)".into(),
        format!("{:.0} /s", drained.worker_rate),
        format!(
            "same mailer without the database: {:.0} /s, ratio {:.2}",
            drained.baseline_rate,
            drained.worker_rate / drained.baseline_rate.max(1e-9)
        ),
        "target >= 500 /s".into(),
    ]);

    if let Some((idle, signed, _, dpage, drecovered, dflooded, dpeak, dstart)) = &django {
        println!();
        println!("Gatehouse against Django + django-axes, same load generator, same run:");
        println!();
        header(&[
            "measure",
            "Gatehouse",
            "Django + axes",
            "ratio Gatehouse / Django",
        ]);
        let cmp = |name: &str, g: f64, d: f64, unit: &str| {
            row(&[
                name.to_owned(),
                format!("{g:.1} {unit}"),
                format!("{d:.1} {unit}"),
                format!("{:.2}", g / d.max(1e-9)),
            ]);
        };
        cmp(
            "sign-ins at saturation",
            sustainable,
            signed.rate(success),
            "/s",
        );
        cmp(
            "GET /login",
            page.rate(|s| s == 200),
            dpage.rate(|s| s == 200),
            "/s",
        );
        cmp(
            "recovery POST, matching",
            recovered[0].rate(success),
            drecovered[0].rate(success),
            "/s",
        );
        cmp(
            "recovery POST, no match",
            recovered[1].rate(success),
            drecovered[1].rate(success),
            "/s",
        );
        cmp(
            "recovery POST p99, matching",
            ms(recovered[0].quantile(0.99, any)),
            ms(drecovered[0].quantile(0.99, any)),
            "ms",
        );
        cmp(
            "1,000-connection flood: time to answer all",
            flooded.elapsed.as_secs_f64(),
            dflooded.elapsed.as_secs_f64(),
            "s",
        );
        cmp(
            "1,000-connection flood: peak RSS (all processes)",
            flood_peak,
            *dpeak,
            "MiB",
        );
        cmp("idle RSS (all processes)", idle_rss, *idle, "MiB");
        cmp(
            "start-up on an existing database",
            ms(startup),
            ms(*dstart),
            "ms",
        );
    }

    eprintln!("the OpenID Connect provider…");
    oidc::run_in_all(&binary, seconds, options.django).await?;

    if options.rows > 0 {
        println!();
        println!(
            "Import of {} staff rows (bench/import.sh) and lookups on that database:",
            options.rows
        );
        println!();
        import_and_lookups(&repo, &binary, dir.path(), options.rows).await?;
    }
    Ok(())
}

fn gatehouse_at(server: &Server) -> Target {
    Target::gatehouse(server.origin.clone())
}

async fn import_and_lookups(repo: &Path, binary: &Path, dir: &Path, rows: usize) -> Result<()> {
    for n in [10_000, rows] {
        let out = std::process::Command::new("bash")
            .arg(repo.join("bench/import.sh"))
            .arg(n.to_string())
            .arg("sqlite")
            .arg(binary)
            .env("BENCH_DIR", dir)
            .output()?;
        if !out.status.success() {
            anyhow::bail!(
                "bench/import.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if n == rows {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
    println!();
    crate::lookups(
        &format!("sqlite://{}/sqlite-{rows}/gatehouse.db", dir.display()),
        &format!("sqlite://{}/sqlite-10000/gatehouse.db", dir.display()),
        2000,
    )
    .await
}

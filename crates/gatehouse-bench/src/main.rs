//! `gatehouse-bench`: the figures in BENCHMARKS.md.
//!
//! Every figure is printed beside a baseline measured in the same run, so
//! that the ratio, not the absolute time, is what carries between machines.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gatehouse_domain::UsernameKey;
use gatehouse_store::{PoolSettings, SqlStore, accounts, attempts};

#[derive(Parser)]
#[command(about = "Gatehouse benchmarks (loopback only; prints a table)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

mod all;
mod link_opens;
mod load;
mod oidc;
mod outbox;
mod servers;
mod signin;

/// What both `all` and `signin` take.
#[derive(clap::Args)]
struct RunArgs {
    /// The release binary to run.
    #[arg(long, default_value = "target/release/gatehouse")]
    binary: std::path::PathBuf,
    /// Seconds for each measurement.
    #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
    seconds: f64,
    /// Rounds of (raw hash rate, sign-in rate), alternating, so that the
    /// ratio compares neighbours on a noisy machine. A single round's ratio
    /// has read anywhere from 0.75 to 1.14 on the shared 2-core machines:
    /// ten rounds bring the standard error of the mean to about 0.02.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    rounds: usize,
}

/// A length of time in seconds, greater than nothing and at most a day.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds above 0 (at most 86400)"
        )),
    }
}

/// A count of 1 or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of 1 or more")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Every figure for BENCHMARKS.md in one run (about six minutes with
    /// the 2,000,000-row import): sign-in against the hash rate, sign-in
    /// under 1x/2x/4x load, a 1,000-connection flood, recovery on SQLite and
    /// PostgreSQL, the login page, the outbox drain, idle memory and
    /// start-up, the OpenID Connect provider, the import, and the Django +
    /// django-axes and django-oauth-toolkit baselines.
    All {
        #[command(flatten)]
        run: RunArgs,
        /// Staff rows to import (0 skips the import figure).
        #[arg(long, default_value_t = 2_000_000)]
        rows: usize,
        /// PostgreSQL server (no database name); `none` skips PostgreSQL.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        postgres: String,
        /// Skip the Django baseline.
        #[arg(long)]
        no_django: bool,
    },
    /// The OpenID Connect provider against django-oauth-toolkit's
    /// (bench/django), in the same run: refresh-token grants, userinfo, the
    /// JWKS and whole code flows per second, and ID-token signing against
    /// the raw rate of the crate that signs (about 2 minutes).
    Oidc {
        /// The release binary to run.
        #[arg(long, default_value = "target/release/gatehouse")]
        binary: std::path::PathBuf,
        /// Seconds for each measurement.
        #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
        seconds: f64,
        /// Concurrent clients of the load generator.
        #[arg(long, default_value_t = 16, value_parser = at_least_one)]
        clients: usize,
        /// Skip the django-oauth-toolkit baseline.
        #[arg(long)]
        no_django: bool,
    },
    /// Only the sign-in ratio: rounds of the raw argon2id rate beside
    /// `gatehouse serve` at saturation.
    Signin {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Only the outbox drain, in rounds: `gatehouse worker` against the same
    /// mailer without the database. Give several binaries to alternate them
    /// round by round (an A/B comparison on a noisy machine).
    Outbox {
        /// The release binaries to run, each in every round.
        #[arg(long, default_value = "target/release/gatehouse", num_args = 1..)]
        binary: Vec<std::path::PathBuf>,
        /// Emails in each drain.
        #[arg(long, default_value_t = 10_000)]
        emails: usize,
        /// Rounds.
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        rounds: usize,
    },
    /// The raw argon2id rate of the crate the service uses (or of the one
    /// it used before), with its parameters and memory kept per thread:
    /// verifications per second, one number. `bench/argon2-implementations.sh`
    /// alternates it with other implementations of the same hash.
    HashRate {
        /// The crate that computes the hash.
        #[arg(long = "crate", value_enum, default_value = "argon2-rust")]
        implementation: signin::Implementation,
        /// Hashing threads (default: one per core, as the service runs).
        #[arg(long, value_parser = at_least_one)]
        threads: Option<usize>,
        /// Seconds to run.
        #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
        seconds: f64,
        /// Instead of the rate, print the 32-byte output for the password
        /// and salt `bench/argon2/rate.c` uses, in hex, to check that the
        /// implementations compared compute the same hash.
        #[arg(long)]
        output: bool,
    },
    /// Rows the database gains per 1,000 opens of one reset link (and of
    /// links that name nothing), by a client that keeps no cookies, for each
    /// binary given: an earlier build beside the current one.
    LinkOpens {
        /// The release binaries to run.
        #[arg(long, default_value = "target/release/gatehouse", num_args = 1..)]
        binary: Vec<std::path::PathBuf>,
        /// Opens of each link.
        #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
        opens: usize,
    },
    /// The lookups behind sign-in and recovery, on a large database against
    /// a small one: if every lookup is indexed the ratio stays near 1 however
    /// large the database grows; a table scan makes it grow with the rows.
    Lookups {
        /// The large database (`sqlite://…` or `postgres://…`), already imported.
        #[arg(long)]
        database_url: String,
        /// The baseline: a small database of the same shape.
        #[arg(long)]
        baseline_url: String,
        /// Lookups of each kind.
        #[arg(long, default_value_t = 2000)]
        samples: usize,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    gatehouse_core::use_ring_for_tls();
    match Cli::parse().command {
        Command::All {
            run,
            rows,
            postgres,
            no_django,
        } => {
            all::run(all::Options {
                binary: run.binary,
                seconds: run.seconds,
                rounds: run.rounds,
                rows,
                postgres: (postgres != "none").then_some(postgres),
                django: !no_django,
                sign_in_only: false,
            })
            .await
        }
        Command::Signin { run } => {
            all::run(all::Options {
                binary: run.binary,
                seconds: run.seconds,
                rounds: run.rounds,
                rows: 0,
                postgres: None,
                django: false,
                sign_in_only: true,
            })
            .await
        }
        Command::Oidc {
            binary,
            seconds,
            clients,
            no_django,
        } => {
            oidc::run(oidc::Options {
                binary,
                seconds,
                clients,
                django: !no_django,
            })
            .await
        }
        Command::Outbox {
            binary,
            emails,
            rounds,
        } => outbox_rounds(&binary, emails, rounds).await,
        Command::HashRate {
            implementation,
            threads,
            seconds,
            output,
        } => {
            if output {
                println!("{}", signin::check_output(implementation)?);
            } else {
                let threads = threads.unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
                });
                println!("{:.2}", signin::raw_rate(implementation, threads, seconds)?);
            }
            Ok(())
        }
        Command::Lookups {
            database_url,
            baseline_url,
            samples,
        } => lookups(&database_url, &baseline_url, samples).await,
        Command::LinkOpens { binary, opens } => {
            println!(
                "| binary | rows per 1,000 opens of one link | rows per 1,000 unknown links | opens of one link /s |"
            );
            println!("| --- | --- | --- | --- |");
            for b in &binary {
                let o = link_opens::measure(b, opens).await?;
                let per_thousand = |n: i64| n as f64 * 1000.0 / opens as f64;
                println!(
                    "| {} | {:.0} | {:.0} | {:.0} |",
                    b.display(),
                    per_thousand(o.known),
                    per_thousand(o.unknown),
                    o.known_per_second
                );
            }
            Ok(())
        }
    }
}

/// Drains `emails` through each binary in turn, `rounds` times, printing
/// each drain's rate beside the bare mailer's in the same round.
async fn outbox_rounds(
    binaries: &[std::path::PathBuf],
    emails: usize,
    rounds: usize,
) -> Result<()> {
    println!("| round | binary | worker /s | mailer alone /s | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for round in 1..=rounds {
        for binary in binaries {
            let dir = tempfile::tempdir()?;
            let drained = outbox::drain(binary, dir.path(), emails).await?;
            println!(
                "| {round} | {} | {:.0} | {:.0} | {:.2} |",
                binary.display(),
                drained.worker_rate,
                drained.baseline_rate,
                drained.worker_rate / drained.baseline_rate.max(1e-9)
            );
        }
    }
    Ok(())
}

/// Latencies of one kind of lookup.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }
}

/// A fixed-seed generator (splitmix64), so runs pick the same accounts.
struct Picker(u64);

impl Picker {
    fn next(&mut self, below: i64) -> i64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        1 + i64::try_from(z % u64::try_from(below.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// One database's lookup latencies, by kind.
struct Measured {
    accounts: i64,
    kinds: Vec<(&'static str, Latencies)>,
}

async fn measure(url: &str, samples: usize) -> Result<Measured> {
    let store = SqlStore::open(url, PoolSettings::default())
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let pool = sqlx::AnyPool::connect(url).await?;
    let accounts: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM accounts")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    if accounts == 0 {
        bail!("{url} holds no accounts: import a staff file first");
    }
    let mut picker = Picker(42);
    let mut people = Vec::with_capacity(samples);
    while people.len() < samples {
        if let Some(a) = accounts::by_id(&mut *store.read().await?, picker.next(accounts)).await? {
            people.push(a);
        }
    }
    // Warm the caches once, as a running service has them.
    for a in &people {
        accounts::by_username(&mut *store.read().await?, &a.username_key()).await?;
    }

    let mut by_username = Vec::with_capacity(samples);
    let mut unknown_username = Vec::with_capacity(samples);
    let mut attempts = Vec::with_capacity(samples);
    let mut recovery_match = Vec::with_capacity(samples);
    let mut recovery_miss = Vec::with_capacity(samples);
    let mut search_surname = Vec::with_capacity(samples);
    let mut search_email = Vec::with_capacity(samples);
    for a in &people {
        let key = a.username_key();
        let t = Instant::now();
        let found = accounts::by_username(&mut *store.read().await?, &key).await?;
        by_username.push(t.elapsed());
        if found.is_none() {
            bail!("account {} vanished", a.username);
        }

        let nobody = UsernameKey::from_typed(&format!("NOBODY{}", a.id));
        let t = Instant::now();
        let found = accounts::by_username(&mut *store.read().await?, &nobody).await?;
        unknown_username.push(t.elapsed());
        if found.is_some() {
            bail!("an unknown username was found");
        }

        let t = Instant::now();
        attempts::read(&mut *store.read().await?, &key).await?;
        attempts.push(t.elapsed());

        let email_key = a.email.key();
        let t = Instant::now();
        let matched = accounts::for_recovery(
            &mut *store.read().await?,
            &email_key,
            &a.date_of_birth,
            None,
        )
        .await?;
        recovery_match.push(t.elapsed());
        if matched.is_empty() {
            bail!("recovery found nobody for account {}", a.username);
        }

        let unknown = format!("nobody.{}@nhs.net", a.id);
        let t = Instant::now();
        let matched =
            accounts::for_recovery(&mut *store.read().await?, &unknown, &a.date_of_birth, None)
                .await?;
        recovery_miss.push(t.elapsed());
        if !matched.is_empty() {
            bail!("recovery matched an unknown address");
        }

        // The console's search: a surname is shared by many people (the
        // first 50 are listed), an email address by one or two.
        let t = Instant::now();
        let found = accounts::search(&mut *store.read().await?, &a.last_name, 50).await?;
        search_surname.push(t.elapsed());
        if found.is_empty() {
            bail!("the console found nobody called {}", a.last_name);
        }
        let t = Instant::now();
        let found = accounts::search(&mut *store.read().await?, a.email.as_str(), 50).await?;
        search_email.push(t.elapsed());
        if found.is_empty() {
            bail!("the console found nobody at {}", a.email);
        }
    }
    store.close().await;
    Ok(Measured {
        accounts,
        kinds: vec![
            ("sign-in: account by username", Latencies(by_username)),
            ("sign-in: unknown username", Latencies(unknown_username)),
            ("sign-in: attempt counter", Latencies(attempts)),
            (
                "recovery: email + date of birth, a match",
                Latencies(recovery_match),
            ),
            (
                "recovery: email + date of birth, no match",
                Latencies(recovery_miss),
            ),
            (
                "console: find by surname (first 50)",
                Latencies(search_surname),
            ),
            ("console: find by email address", Latencies(search_email)),
        ],
    })
}

/// Prints the lookup table: `url` against `baseline_url`.
pub(crate) async fn lookups(url: &str, baseline_url: &str, samples: usize) -> Result<()> {
    let baseline = measure(baseline_url, samples).await?;
    let large = measure(url, samples).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| lookup ({samples} each) | p50, {} accounts | p99 | p50, {} accounts (baseline) | p99 | ratio p50 |",
        large.accounts, baseline.accounts
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for ((name, l), (_, b)) in large.kinds.iter().zip(&baseline.kinds) {
        let (p50, p99, b50, b99) = (
            l.quantile(0.5),
            l.quantile(0.99),
            b.quantile(0.5),
            b.quantile(0.99),
        );
        println!(
            "| {name} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.2} |",
            ms(p50),
            ms(p99),
            ms(b50),
            ms(b99),
            p50.as_secs_f64() / b50.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}

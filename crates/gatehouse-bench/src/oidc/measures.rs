//! The four measures, each a set of workers driving one provider for a
//! fixed time, and the CPU the server used meanwhile.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use crate::load::{self, Answer, Run};
use crate::servers::{self, Server};

use super::protocol::{Provider, flow, get, redeem, token};
use super::report::{ms, ok, thousands};

/// One measure: the answers, the first failure (to show why), and the CPU
/// the server (with its children) and the load generator used meanwhile.
pub(super) struct Figure {
    pub(super) run: Run,
    pub(super) first_error: Option<String>,
    pub(super) server_cpu: f64,
    pub(super) own_cpu: f64,
}

impl Figure {
    pub(super) fn rate(&self) -> f64 {
        self.run.rate(ok)
    }

    pub(super) fn done(&self) -> f64 {
        self.run.count(200) as f64
    }

    /// Server CPU per successful operation, ms.
    pub(super) fn server_ms(&self) -> f64 {
        1000.0 * self.server_cpu / self.done().max(1.0)
    }

    /// Load generator CPU per successful operation, ms.
    pub(super) fn own_ms(&self) -> f64 {
        1000.0 * self.own_cpu / self.done().max(1.0)
    }

    /// The rate, its p50 / p99 latency, and failures if any.
    pub(super) fn cell(&self) -> String {
        let mut text = format!(
            "{} /s (p50 {:.1} ms, p99 {:.1} ms)",
            thousands(self.rate()),
            ms(self.run.quantile(0.5, ok)),
            ms(self.run.quantile(0.99, ok)),
        );
        let failed = self.run.answers.len() - self.run.count(200) + self.run.errors as usize;
        if failed > 0 {
            text.push_str(&format!(
                "; {failed} failed, first: {}",
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        text
    }
}

/// `clients` workers, each with its own state from `start` (made before the
/// clock starts), repeat `step` for `seconds`. A step hands back the state
/// for the next, or `None` to start afresh (a refresh chain broken by a
/// failure); a fresh start inside the run is not counted as an answer.
pub(super) async fn workers<S, St, StF, Sp, SpF>(
    clients: usize,
    seconds: f64,
    start: St,
    step: Sp,
) -> Result<(Run, Option<String>)>
where
    S: Send + 'static,
    St: Fn() -> StF + Clone + Send + Sync + 'static,
    StF: Future<Output = Result<S>> + Send,
    Sp: Fn(S) -> SpF + Clone + Send + Sync + 'static,
    SpF: Future<Output = (Option<S>, Result<Answer>)> + Send,
{
    let mut states = Vec::with_capacity(clients);
    for _ in 0..clients {
        states.push(start().await?);
    }
    let began = Instant::now();
    let until = began + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for first in states {
        let (start, step) = (start.clone(), step.clone());
        tasks.spawn(async move {
            let mut run = Run::default();
            let mut error = None;
            let mut state = Some(first);
            while Instant::now() < until {
                let current = match state.take() {
                    Some(s) => s,
                    None => match start().await {
                        Ok(s) => s,
                        Err(e) => {
                            run.errors += 1;
                            error.get_or_insert(format!("{e:#}"));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (next, answer) = step(current).await;
                match answer {
                    Ok(a) => run.answers.push(a),
                    Err(e) => {
                        run.errors += 1;
                        error.get_or_insert(format!("{e:#}"));
                    }
                }
                state = next;
            }
            (run, error)
        });
    }
    let mut all = Run::default();
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let (run, error) = done?;
        all.answers.extend(run.answers);
        all.errors += run.errors;
        if first_error.is_none() {
            first_error = error;
        }
    }
    all.elapsed = began.elapsed();
    Ok((all, first_error))
}

/// Runs `work` against `server`, counting the CPU used meanwhile.
pub(super) async fn measure(
    server: &Server,
    work: impl Future<Output = Result<(Run, Option<String>)>>,
) -> Result<Figure> {
    let (server_before, own_before) = (
        servers::family_cpu_seconds(server.pid()),
        servers::cpu_seconds(std::process::id()),
    );
    let (run, first_error) = work.await?;
    Ok(Figure {
        run,
        first_error,
        server_cpu: servers::family_cpu_seconds(server.pid()) - server_before,
        own_cpu: servers::cpu_seconds(std::process::id()) - own_before,
    })
}

/// The four measures of one provider.
pub(super) struct Figures {
    pub(super) refresh: Figure,
    pub(super) userinfo: Figure,
    pub(super) jwks: Figure,
    pub(super) flows: Figure,
}

pub(super) async fn refresh_grants(
    p: &Provider,
    clients: usize,
    seconds: f64,
) -> Result<(Run, Option<String>)> {
    let http = load::client()?;
    let (h1, p1, p) = (http.clone(), p.clone(), p.clone());
    workers(
        clients,
        seconds,
        move || {
            let (http, p) = (h1.clone(), p1.clone());
            async move { Ok(redeem(&http, &p).await?.refresh) }
        },
        move |refresh: String| {
            let (http, p) = (http.clone(), p.clone());
            async move {
                match token(
                    &http,
                    &p,
                    &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
                )
                .await
                {
                    Ok((answer, Some(tokens))) => (Some(tokens.refresh), Ok(answer)),
                    Ok((_, None)) => (None, Err(anyhow!("no tokens"))),
                    Err(e) => (None, Err(e)),
                }
            }
        },
    )
    .await
}

pub(super) async fn userinfo_requests(
    p: &Provider,
    clients: usize,
    seconds: f64,
) -> Result<(Run, Option<String>)> {
    let http = load::client()?;
    let (h1, p1, p) = (http.clone(), p.clone(), p.clone());
    workers(
        clients,
        seconds,
        move || {
            let (http, p) = (h1.clone(), p1.clone());
            async move { Ok(redeem(&http, &p).await?.access) }
        },
        move |access: String| {
            let (http, p) = (http.clone(), p.clone());
            async move {
                let answer = get(&http, &p.userinfo, Some(&access)).await;
                (Some(access), answer)
            }
        },
    )
    .await
}

pub(super) async fn jwks_requests(
    p: &Provider,
    clients: usize,
    seconds: f64,
) -> Result<(Run, Option<String>)> {
    let http = load::client()?;
    let url = p.jwks.clone();
    workers(
        clients,
        seconds,
        || async { Ok(()) },
        move |()| {
            let (http, url) = (http.clone(), url.clone());
            async move { (Some(()), get(&http, &url, None).await) }
        },
    )
    .await
}

pub(super) async fn code_flows(
    p: &Provider,
    clients: usize,
    seconds: f64,
) -> Result<(Run, Option<String>)> {
    let http = load::client()?;
    let p = p.clone();
    workers(
        clients,
        seconds,
        || async { Ok(()) },
        move |()| {
            let (http, p) = (http.clone(), p.clone());
            async move { (Some(()), flow(&http, &p).await) }
        },
    )
    .await
}

//! The load generator: the same visitor flows against Gatehouse and against
//! the Django baseline, closed-loop (N clients as fast as they can) or
//! open-loop (arrivals at a fixed rate, whatever the answers take).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use reqwest::header::{COOKIE, SET_COOKIE};

/// The password every benchmark account has.
pub const PASSWORD: &str = "kettle violin marmalade";

/// Where a service keeps its forms and what success looks like.
#[derive(Clone)]
pub struct Target {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    /// The hidden form field holding the CSRF token.
    pub csrf_field: &'static str,
    /// The recovery (forgotten password) form.
    pub recover_path: &'static str,
    /// How the date of birth is typed on the recovery form.
    pub dob_fields: fn() -> Vec<(&'static str, &'static str)>,
}

impl Target {
    /// Gatehouse's pages.
    pub fn gatehouse(origin: String) -> Self {
        Self {
            origin,
            csrf_field: "csrf_token",
            recover_path: "/recover",
            dob_fields: || vec![("dob-day", "1"), ("dob-month", "1"), ("dob-year", "1980")],
        }
    }

    /// The Django + django-axes baseline (bench/django).
    pub fn django(origin: String) -> Self {
        Self {
            origin,
            csrf_field: "csrfmiddlewaretoken",
            recover_path: "/forgotten",
            dob_fields: || vec![("date_of_birth", "1980-01-01")],
        }
    }
}

/// One HTTP client for all visitors (cookies are carried by hand, so that
/// each visitor is a fresh browser without building a client per visit).
pub fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(2048)
        .build()?)
}

/// A form page's cookies and CSRF token.
pub struct Form {
    /// The cookies the page set, as a `Cookie` header's value.
    pub cookies: String,
    /// The hidden field's CSRF token.
    pub token: String,
}

/// GETs a form page: its cookies and CSRF token.
pub async fn open_form(client: &reqwest::Client, target: &Target, path: &str) -> Result<Form> {
    let response = client
        .get(format!("{}{path}", target.origin))
        .send()
        .await?;
    if response.status() != 200 {
        return Err(anyhow!("GET {path}: {}", response.status()));
    }
    let cookies = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    let page = response.text().await?;
    let marker = format!("name=\"{}\" value=\"", target.csrf_field);
    let token = page
        .split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| anyhow!("no CSRF token on {path}"))?
        .to_owned();
    Ok(Form { cookies, token })
}

/// What one flow got back.
#[derive(Clone, Copy)]
pub struct Answer {
    /// The POST's status.
    pub status: u16,
    /// The POST's latency.
    pub latency: Duration,
}

/// A visitor signs in as account `n`: GET the form, POST the password.
pub async fn sign_in(client: &reqwest::Client, target: &Target, n: usize) -> Result<Answer> {
    let form = open_form(client, target, "/login").await?;
    let username = format!("U{n:05}");
    timed(
        client
            .post(format!("{}/login", target.origin))
            .header(COOKIE, form.cookies)
            .form(&[
                ("username", username.as_str()),
                ("password", PASSWORD),
                (target.csrf_field, form.token.as_str()),
            ]),
    )
    .await
}

/// Sends a request and reads the whole answer, timing both.
async fn timed(request: reqwest::RequestBuilder) -> Result<Answer> {
    let t = Instant::now();
    let response = request.send().await?;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    Ok(Answer {
        status,
        latency: t.elapsed(),
    })
}

/// A visitor asks for their username and a reset link with `email` and
/// the date of birth every benchmark account has.
pub async fn recover(client: &reqwest::Client, target: &Target, email: &str) -> Result<Answer> {
    let form = open_form(client, target, target.recover_path).await?;
    let mut fields = vec![("email", email), (target.csrf_field, form.token.as_str())];
    fields.extend((target.dob_fields)());
    timed(
        client
            .post(format!("{}{}", target.origin, target.recover_path))
            .header(COOKIE, form.cookies)
            .form(&fields),
    )
    .await
}

/// A plain GET of the log in page.
pub async fn login_page(client: &reqwest::Client, target: &Target, _n: usize) -> Result<Answer> {
    timed(client.get(format!("{}/login", target.origin))).await
}

/// Everything a run got back.
#[derive(Default)]
pub struct Run {
    /// Every answer.
    pub answers: Vec<Answer>,
    /// Requests that failed outright (connection refused, timed out).
    pub errors: u64,
    /// Wall-clock length of the run.
    pub elapsed: Duration,
}

impl Run {
    /// Answers with this status.
    pub fn count(&self, status: u16) -> usize {
        self.answers.iter().filter(|a| a.status == status).count()
    }

    /// Answers per second with a status `ok` accepts.
    pub fn rate(&self, ok: impl Fn(u16) -> bool) -> f64 {
        self.answers.iter().filter(|a| ok(a.status)).count() as f64
            / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of latency over answers `ok` accepts.
    pub fn quantile(&self, q: f64, ok: impl Fn(u16) -> bool) -> Duration {
        let mut l: Vec<_> = self
            .answers
            .iter()
            .filter(|a| ok(a.status))
            .map(|a| a.latency)
            .collect();
        l.sort();
        let index = ((l.len() as f64 - 1.0) * q).round().max(0.0) as usize;
        l.get(index).copied().unwrap_or_default()
    }
}

/// `clients` visitors repeat `flow` back to back for `seconds`; the flow's
/// argument counts up from 0 across all of them.
pub async fn closed_loop<F, Fut>(clients: usize, seconds: f64, flow: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Answer>> + Send,
{
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (flow, next) = (flow.clone(), next.clone());
        tasks.spawn(async move {
            let mut run = Run::default();
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                match flow(n).await {
                    Ok(a) => run.answers.push(a),
                    Err(_) => run.errors += 1,
                }
            }
            run
        });
    }
    collect(tasks, start).await
}

/// Starts `flow` `rate` times a second for `seconds`, however long each
/// takes, then waits for every one to finish.
pub async fn open_loop<F, Fut>(rate: f64, seconds: f64, flow: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Answer>> + Send + 'static,
{
    let start = Instant::now();
    let total = (rate * seconds).round() as usize;
    let gap = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        tokio::time::sleep_until((start + gap * n as u32).into()).await;
        tasks.spawn(once(flow.clone(), n));
    }
    collect(tasks, start).await
}

/// Starts `flow` `count` times at once and waits for all.
pub async fn burst<F, Fut>(count: usize, flow: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Answer>> + Send + 'static,
{
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        tasks.spawn(once(flow.clone(), n));
    }
    collect(tasks, start).await
}

/// One run of `flow`, as a run of its own.
async fn once<F, Fut>(flow: F, n: usize) -> Run
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Answer>>,
{
    let mut run = Run::default();
    match flow(n).await {
        Ok(a) => run.answers.push(a),
        Err(_) => run.errors += 1,
    }
    run
}

async fn collect(mut tasks: tokio::task::JoinSet<Run>, start: Instant) -> Run {
    let mut all = Run::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(run) = done {
            all.answers.extend(run.answers);
            all.errors += run.errors;
        }
    }
    all.elapsed = start.elapsed();
    all
}

//! `gatehouse-bench oidc`: Gatehouse's OpenID Connect provider against
//! django-oauth-toolkit's (bench/django), in the same run and through the
//! same load generator: refresh-token grants, userinfo, the JWKS and the
//! whole authorization code flow of a signed-in person, each per second;
//! and what signing an ID token costs against the raw rate of the crate
//! that signs it.
//!
//! Each provider has one confidential client (HTTP Basic authentication,
//! RS256 ID tokens, no consent page) and one person signed in once through
//! its login form. Every worker keeps its own refresh-token chain, since
//! each grant spends the token it presents, and starts it with a code flow
//! of its own (not timed).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_domain::SecretToken;
use gatehouse_domain::oidc::jose::{SigningAlg, SigningKey};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use sha2::{Digest, Sha256};

use crate::load::{self, Answer, Run, Target};
use crate::servers::{self, Server};

/// What `oidc` was asked to do.
pub struct Options {
    /// The release binary.
    pub binary: PathBuf,
    /// Seconds for each measurement.
    pub seconds: f64,
    /// Concurrent clients of the load generator.
    pub clients: usize,
    /// Whether to run django-oauth-toolkit beside Gatehouse.
    pub django: bool,
}

/// Accounts in each provider's database.
const PEOPLE: usize = 1_000;

/// The signed-in person (seeded by both: `U00001`).
const PERSON: usize = 1;

/// Where both clients say they live: nothing listens there; the load
/// generator reads the redirect.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// What both clients ask for: Gatehouse and the peer release the same
/// claims for it (sub, preferred_username, names, email).
const SCOPE: &str = "openid profile email";

/// A confidential client's credentials.
#[derive(Clone)]
struct Client {
    id: String,
    secret: String,
}

/// A provider under test: its endpoints (from its discovery document),
/// its client and the signed-in person's cookies.
#[derive(Clone)]
struct Provider {
    authorize: String,
    token: String,
    userinfo: String,
    jwks: String,
    client: Client,
    session: String,
}

/// What a token endpoint gave.
struct Tokens {
    access: String,
    refresh: String,
    id_token: String,
}

/// One measure: the answers, the first failure (to show why), and the CPU
/// the server (with its children) and the load generator used meanwhile.
struct Figure {
    run: Run,
    first_error: Option<String>,
    server_cpu: f64,
    own_cpu: f64,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.run.rate(ok)
    }

    fn done(&self) -> f64 {
        self.run.count(200) as f64
    }

    /// Server CPU per successful operation, ms.
    fn server_ms(&self) -> f64 {
        1000.0 * self.server_cpu / self.done().max(1.0)
    }

    /// Load generator CPU per successful operation, ms.
    fn own_ms(&self) -> f64 {
        1000.0 * self.own_cpu / self.done().max(1.0)
    }

    /// The rate, its p50 / p99 latency, and failures if any.
    fn cell(&self) -> String {
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

fn ok(status: u16) -> bool {
    status == 200
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A rate with thousands separated by commas, as BENCHMARKS.md writes them.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Cookies as (name, value), later ones replacing earlier ones.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn add(&mut self, pair: &str) {
        if let Some((name, value)) = pair.split_once('=') {
            let name = name.trim();
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn take(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            if let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) {
                self.add(pair);
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Signs person `n` in through the login form; the cookies that carry
/// the session.
async fn sign_in(http: &reqwest::Client, target: &Target, n: usize) -> Result<String> {
    let form = load::open_form(http, target, "/login").await?;
    let mut jar = Jar::default();
    for pair in form.cookies.split("; ") {
        jar.add(pair);
    }
    let username = format!("U{n:05}");
    let response = http
        .post(format!("{}/login", target.origin))
        .header(COOKIE, &form.cookies)
        .form(&[
            ("username", username.as_str()),
            ("password", load::PASSWORD),
            (target.csrf_field, form.token.as_str()),
        ])
        .send()
        .await?;
    if !response.status().is_redirection() {
        bail!("signing in as {username}: {}", response.status());
    }
    jar.take(response.headers());
    Ok(jar.header())
}

fn random() -> Result<String> {
    Ok(SecretToken::generate()?.encode())
}

/// Asks for a code as the signed-in person, with PKCE (S256), a state and
/// a nonce; the code and its verifier.
async fn authorize(http: &reqwest::Client, p: &Provider) -> Result<(String, String)> {
    let verifier = random()?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random()?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", p.client.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("scope", SCOPE),
            ("state", state.as_str()),
            ("nonce", random()?.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let response = http
        .get(format!("{}?{query}", p.authorize))
        .header(COOKIE, &p.session)
        .send()
        .await?;
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !status.is_redirection() || !location.starts_with(REDIRECT_URI) {
        bail!("authorize answered {status}, to {location:?}");
    }
    let back = url::Url::parse(&location)?;
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").as_deref() != Some(state.as_str()) {
        bail!("authorize sent back another state: {location}");
    }
    let code = param("code").ok_or_else(|| anyhow!("no code in {location}"))?;
    Ok((code, verifier))
}

/// A token request with HTTP Basic client authentication: its answer,
/// timed, and the tokens if it succeeded.
async fn token(
    http: &reqwest::Client,
    p: &Provider,
    form: &[(&str, &str)],
) -> Result<(Answer, Option<Tokens>)> {
    let t = Instant::now();
    let response = http
        .post(&p.token)
        .basic_auth(&p.client.id, Some(&p.client.secret))
        .form(form)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    let answer = Answer {
        status,
        latency: t.elapsed(),
    };
    if status != 200 {
        bail!(
            "the token endpoint answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let field = |name: &str| {
        json[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no {name} in the token answer: {json}"))
    };
    let tokens = Tokens {
        access: field("access_token")?,
        refresh: field("refresh_token")?,
        id_token: field("id_token")?,
    };
    Ok((answer, Some(tokens)))
}

async fn redeem(http: &reqwest::Client, p: &Provider) -> Result<Tokens> {
    let (code, verifier) = authorize(http, p).await?;
    let (_, tokens) = token(
        http,
        p,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
    )
    .await?;
    tokens.ok_or_else(|| anyhow!("no tokens"))
}

/// A GET, timed, with a bearer token if given; fails unless 200.
async fn get(http: &reqwest::Client, url: &str, bearer: Option<&str>) -> Result<Answer> {
    let t = Instant::now();
    let mut request = http.get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    if status != 200 {
        bail!(
            "GET {url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(Answer {
        status,
        latency: t.elapsed(),
    })
}

/// The whole flow for a signed-in person, timed as one: authorize → code
/// → token → userinfo.
async fn flow(http: &reqwest::Client, p: &Provider) -> Result<Answer> {
    let t = Instant::now();
    let tokens = redeem(http, p).await?;
    get(http, &p.userinfo, Some(&tokens.access)).await?;
    Ok(Answer {
        status: 200,
        latency: t.elapsed(),
    })
}

/// `clients` workers, each with its own state from `start` (made before the
/// clock starts), repeat `step` for `seconds`. A step hands back the state
/// for the next, or `None` to start afresh (a refresh chain broken by a
/// failure); a fresh start inside the run is not counted as an answer.
async fn workers<S, St, StF, Sp, SpF>(
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
async fn measure(
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
struct Figures {
    refresh: Figure,
    userinfo: Figure,
    jwks: Figure,
    flows: Figure,
}

async fn refresh_grants(
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

async fn userinfo_requests(
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

async fn jwks_requests(
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

async fn code_flows(p: &Provider, clients: usize, seconds: f64) -> Result<(Run, Option<String>)> {
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

/// Reads a provider's discovery document, signs the person in and checks
/// one whole flow; the provider and the claims of the ID token it issued.
async fn provider(
    origin: &str,
    discovery: &str,
    login: &Target,
    client: Client,
) -> Result<(Provider, serde_json::Value)> {
    let http = load::client()?;
    let doc: serde_json::Value = http
        .get(format!("{origin}{discovery}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let endpoint = |name: &str| {
        doc[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no {name} in {origin}{discovery}"))
    };
    let p = Provider {
        authorize: endpoint("authorization_endpoint")?,
        token: endpoint("token_endpoint")?,
        userinfo: endpoint("userinfo_endpoint")?,
        jwks: endpoint("jwks_uri")?,
        client,
        session: sign_in(&http, login, PERSON).await?,
    };
    let tokens = redeem(&http, &p)
        .await
        .with_context(|| format!("a code flow at {origin}"))?;
    get(&http, &p.userinfo, Some(&tokens.access)).await?;
    let payload = tokens
        .id_token
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow!("the ID token is not a JWS"))?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    Ok((p, claims))
}

async fn figures(server: &Server, p: &Provider, o: &Options) -> Result<Figures> {
    let (c, s) = (o.clients, o.seconds);
    Ok(Figures {
        refresh: measure(server, refresh_grants(p, c, s)).await?,
        userinfo: measure(server, userinfo_requests(p, c, s)).await?,
        jwks: measure(server, jwks_requests(p, c, s)).await?,
        flows: measure(server, code_flows(p, c, s)).await?,
    })
}

/// Signing rates on one core, per second of its CPU: the median of the
/// rounds.
struct Signing {
    /// ring alone: RSASSA-PKCS1-v1_5 SHA-256 over the signing input.
    ring_rs256: f64,
    /// The service's step: claims to JSON, base64url, ring, base64url.
    service_rs256: f64,
    /// ring alone, ECDSA P-256.
    ring_es256: f64,
    /// The service's step with an ES256 key.
    service_es256: f64,
}

/// Rounds of the four signing rates, alternated so that a noisy moment
/// does not fall on one of them only.
const SIGNING_ROUNDS: usize = 3;

/// How many times `op` runs per second of this thread's CPU, over
/// `seconds` of the clock: the rate on one core, whatever else the machine
/// runs meanwhile.
fn rate(seconds: f64, mut op: impl FnMut() -> Result<()>) -> Result<f64> {
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Signs `claims` (an ID token Gatehouse issued) over and over on one
/// thread with fresh keys of the sizes the service makes: ring alone, then
/// the service's signing step, for each algorithm.
fn signing_rates(claims: &serde_json::Value, seconds: f64) -> Result<Signing> {
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

/// Runs both providers and prints the tables.
pub async fn run(options: Options) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let repo = std::env::current_dir()?;
    let binary = options.binary.canonicalize().with_context(|| {
        format!(
            "{} not found: run `cargo build --release` first",
            options.binary.display()
        )
    })?;
    let (clients, seconds) = (options.clients, options.seconds);
    println!(
        "OpenID Connect: {clients} clients, {seconds} s per measurement, scope {SCOPE:?}, RS256 ID tokens; binary {}",
        binary.display()
    );

    eprintln!("Gatehouse's OpenID Connect provider…");
    let gdir = dir.path().join("gatehouse");
    std::fs::create_dir_all(&gdir)?;
    let url = servers::gatehouse_database(&binary, &gdir, PEOPLE, None).await?;
    let registered = servers::gatehouse_output(
        &binary,
        &url,
        &[
            "admin",
            "client",
            "add",
            "Bench",
            "--redirect-uri",
            REDIRECT_URI,
            "--json",
        ],
    )?;
    let client = credentials(&serde_json::from_str(registered.trim())?, "gatehouse")?;
    let registered = servers::gatehouse_output(
        &binary,
        &url,
        &[
            "admin",
            "client",
            "add",
            "Bench ES256",
            "--redirect-uri",
            REDIRECT_URI,
            "--signing-alg",
            "ES256",
            "--json",
        ],
    )?;
    let es256_client = credentials(&serde_json::from_str(registered.trim())?, "gatehouse")?;
    let server = servers::start_gatehouse(&binary, &url, &gdir, true, &[]).await?;
    let (gatehouse, claims) = provider(
        &server.origin,
        "/.well-known/openid-configuration",
        &Target::gatehouse(server.origin.clone()),
        client,
    )
    .await?;
    let ours = figures(&server, &gatehouse, &options).await?;
    // The same grants for a client whose ID tokens are ES256: what the
    // RSA signature costs a grant.
    let es256 = Provider {
        client: es256_client,
        ..gatehouse.clone()
    };
    let es256 = measure(&server, refresh_grants(&es256, clients, seconds)).await?;
    drop(server);

    eprintln!("ID-token signing on one core…");
    let signing = {
        let claims = claims.clone();
        tokio::task::spawn_blocking(move || signing_rates(&claims, seconds)).await??
    };

    let peer = if options.django {
        eprintln!("django-oauth-toolkit…");
        let ddir = dir.path().join("django");
        std::fs::create_dir_all(&ddir)?;
        let server = servers::start_django(&repo, &ddir, PEOPLE, false).await?;
        let file = ddir.join("oidc-clients.json");
        let clients_json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?,
        )?;
        let target = Target::django(server.origin.clone());
        let (django, _) = provider(
            &server.origin,
            "/o/.well-known/openid-configuration",
            &target,
            credentials(&clients_json["bench"], "django")?,
        )
        .await?;
        let theirs = figures(&server, &django, &options).await?;
        // The same grants by the client whose secret is stored as
        // django-oauth-toolkit does by default: with the first password
        // hasher (argon2id), checked on every token request.
        let argon2 = Provider {
            client: credentials(&clients_json["bench-argon2"], "django")?,
            ..django.clone()
        };
        let slow = measure(&server, refresh_grants(&argon2, clients, seconds)).await?;
        Some((theirs, slow))
    } else {
        None
    };

    print_tables(&ours, &es256, peer.as_ref(), &signing);
    Ok(())
}

fn credentials(json: &serde_json::Value, whose: &str) -> Result<Client> {
    let field = |name: &str| {
        json[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no {name} in {whose}'s client registration: {json}"))
    };
    Ok(Client {
        id: field("client_id")?,
        secret: field("client_secret")?,
    })
}

/// One of a provider's figures.
type Pick = fn(&Figures) -> &Figure;

fn print_tables(
    ours: &Figures,
    es256: &Figure,
    peer: Option<&(Figures, Figure)>,
    signing: &Signing,
) {
    println!();
    println!("| measure | Gatehouse | django-oauth-toolkit | Gatehouse / peer | target |");
    println!("| --- | --- | --- | --- | --- |");
    let rows: [(&str, Pick, &str); 4] = [
        (
            "refresh-token grants (each rotates the token)",
            |f| &f.refresh,
            ">= 20",
        ),
        ("userinfo requests", |f| &f.userinfo, ">= 20"),
        ("JWKS requests", |f| &f.jwks, ""),
        (
            "whole code flows of a signed-in person (authorize, token with PKCE, userinfo)",
            |f| &f.flows,
            "",
        ),
    ];
    for (name, pick, target) in rows {
        let g = pick(ours);
        let (cell, ratio) = match peer {
            Some((theirs, _)) => {
                let d = pick(theirs);
                (
                    d.cell(),
                    format!("**{:.1}**", g.rate() / d.rate().max(1e-9)),
                )
            }
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!("| {name} | {} | {cell} | {ratio} | {target} |", g.cell());
    }
    println!(
        "| refresh-token grants, a client with ES256 ID tokens | {} | | | |",
        es256.cell()
    );
    if let Some((theirs, slow)) = peer {
        println!(
            "| refresh-token grants, the peer's client secret stored as it stores one by default (argon2id) | {} | {} | {:.1} | |",
            ours.refresh.cell(),
            slow.cell(),
            ours.refresh.rate() / slow.rate().max(1e-9)
        );
        let cpu = |f: Pick| format!("{:.2} / {:.2}", f(ours).server_ms(), f(theirs).server_ms());
        println!(
            "| server CPU per operation, ms, Gatehouse / peer: refresh; userinfo; JWKS; whole flow | {} ; {} ; {} ; {} | | | |",
            cpu(|f| &f.refresh),
            cpu(|f| &f.userinfo),
            cpu(|f| &f.jwks),
            cpu(|f| &f.flows),
        );
    }
    println!(
        "| load generator CPU per operation against Gatehouse, ms: refresh; userinfo; JWKS; whole flow | {:.2} ; {:.2} ; {:.2} ; {:.2} | | | |",
        ours.refresh.own_ms(),
        ours.userinfo.own_ms(),
        ours.jwks.own_ms(),
        ours.flows.own_ms(),
    );

    // Signing against what a grant costs the server, per core.
    let us = |rate: f64| 1e6 / rate.max(1e-9);
    let per_core = |f: &Figure| f.done() / f.server_cpu.max(1e-9);
    println!();
    println!("| ID-token signing, one core | per token | per second |");
    println!("| --- | --- | --- |");
    for (name, r) in [
        ("RS256, ring alone (the raw rate)", signing.ring_rs256),
        (
            "RS256, the service's signing step (claims to JSON, base64url, ring)",
            signing.service_rs256,
        ),
        ("ES256, ring alone", signing.ring_es256),
        ("ES256, the service's signing step", signing.service_es256),
    ] {
        println!("| {name} | {:.0} µs | {} |", us(r), thousands(r));
    }
    for (name, f, alg, sign_rate) in [
        (
            "Gatehouse, per refresh grant (one ID token each): server CPU",
            &ours.refresh,
            "RS256",
            signing.service_rs256,
        ),
        (
            "Gatehouse, per refresh grant, ES256 client: server CPU",
            es256,
            "ES256",
            signing.service_es256,
        ),
        (
            "Gatehouse, per whole code flow (one ID token each): server CPU",
            &ours.flows,
            "RS256",
            signing.service_rs256,
        ),
    ] {
        let share = us(sign_rate) / (1000.0 * f.server_ms()).max(1e-9);
        println!(
            "| {name} | {:.0} µs, of which {alg} signing {:.0}% | {} per core-second; signing alone would allow {:.1}× that |",
            1000.0 * f.server_ms(),
            100.0 * share,
            thousands(per_core(f)),
            sign_rate / per_core(f).max(1e-9),
        );
    }
}

/// Where `all` runs this: after everything else, on servers of its own.
pub async fn run_in_all(binary: &Path, seconds: f64, django: bool) -> Result<()> {
    println!();
    run(Options {
        binary: binary.to_path_buf(),
        seconds,
        clients: 16,
        django,
    })
    .await
}

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

mod measures;
mod protocol;
mod report;
mod signing;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::load::{self, Target};
use crate::servers::{self, Server};
use measures::*;
use protocol::*;
use report::*;
use signing::*;

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

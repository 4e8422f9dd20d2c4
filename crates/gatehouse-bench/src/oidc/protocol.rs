//! Speaking OpenID Connect to a provider as a relying party would: the
//! person's login, the authorization request, the token endpoint and
//! userinfo, with cookies carried by hand.

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_domain::SecretToken;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sha2::{Digest, Sha256};

use crate::load::{self, Answer, Target};

use super::{REDIRECT_URI, SCOPE};

/// A confidential client's credentials.
#[derive(Clone)]
pub(super) struct Client {
    pub(super) id: String,
    pub(super) secret: String,
}

/// A provider under test: its endpoints (from its discovery document),
/// its client and the signed-in person's cookies.
#[derive(Clone)]
pub(super) struct Provider {
    pub(super) authorize: String,
    pub(super) token: String,
    pub(super) userinfo: String,
    pub(super) jwks: String,
    pub(super) client: Client,
    pub(super) session: String,
}

/// What a token endpoint gave.
pub(super) struct Tokens {
    pub(super) access: String,
    pub(super) refresh: String,
    pub(super) id_token: String,
}

/// Cookies as (name, value), later ones replacing earlier ones.
#[derive(Default)]
pub(super) struct Jar(pub(super) Vec<(String, String)>);

impl Jar {
    pub(super) fn add(&mut self, pair: &str) {
        if let Some((name, value)) = pair.split_once('=') {
            let name = name.trim();
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub(super) fn take(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            if let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) {
                self.add(pair);
            }
        }
    }

    pub(super) fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Signs person `n` in through the login form; the cookies that carry
/// the session.
pub(super) async fn sign_in(http: &reqwest::Client, target: &Target, n: usize) -> Result<String> {
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

pub(super) fn random() -> Result<String> {
    Ok(SecretToken::generate()?.encode())
}

/// Asks for a code as the signed-in person, with PKCE (S256), a state and
/// a nonce; the code and its verifier.
pub(super) async fn authorize(http: &reqwest::Client, p: &Provider) -> Result<(String, String)> {
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
pub(super) async fn token(
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

pub(super) async fn redeem(http: &reqwest::Client, p: &Provider) -> Result<Tokens> {
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
pub(super) async fn get(http: &reqwest::Client, url: &str, bearer: Option<&str>) -> Result<Answer> {
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
pub(super) async fn flow(http: &reqwest::Client, p: &Provider) -> Result<Answer> {
    let t = Instant::now();
    let tokens = redeem(http, p).await?;
    get(http, &p.userinfo, Some(&tokens.access)).await?;
    Ok(Answer {
        status: 200,
        latency: t.elapsed(),
    })
}

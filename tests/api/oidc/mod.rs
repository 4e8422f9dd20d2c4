//! Gatehouse as an OpenID Connect provider, driven as a relying party
//! drives it: [`Rp`] is a registered client that sends a [`Browser`] to
//! the authorization endpoint, redeems codes at the token endpoint with its
//! own HTTP client, and checks ID tokens against the published JWKS only.

mod clients;
mod conformance;
mod flows;
mod forward_auth;
mod logout;
mod security;

use std::collections::BTreeMap;

use base64::Engine as _;
use gatehouse_core::oidc::clients::NewClient;
use gatehouse_domain::oidc::jose::Jwk;
use serde_json::Value;

use crate::helpers::*;

/// Where test clients say they live: nothing listens there; the tests read
/// the redirect Gatehouse answers with.
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The issuer every test service has (`GATEHOUSE_PUBLIC_URL` without its slash).
pub const ISSUER: &str = "http://gatehouse.test";

/// A registered client.
#[derive(Debug, Clone)]
pub struct Rp {
    /// Its client id.
    pub id: String,
    /// Its secret (confidential clients).
    pub secret: Option<String>,
    /// Its redirect address.
    pub redirect_uri: String,
    /// The service it is registered with.
    pub base: String,
    /// The service's issuer.
    pub issuer: String,
}

/// A redirect back to the client, read.
#[derive(Debug, Clone)]
pub struct Callback {
    /// The address without its query.
    pub to: String,
    /// The query's parameters.
    pub params: BTreeMap<String, String>,
}

impl Callback {
    /// Reads a `Location` that leads back to a client.
    pub fn read(location: &str) -> Self {
        let url = url::Url::parse(location).unwrap_or_else(|e| panic!("{location}: {e}"));
        let params = url.query_pairs().into_owned().collect();
        let mut to = url.clone();
        to.set_query(None);
        Self {
            to: to.to_string(),
            params,
        }
    }

    /// A parameter that must be there.
    pub fn get(&self, name: &str) -> &str {
        self.params
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.params))
    }
}

/// A token endpoint's answer.
#[derive(Debug)]
pub struct TokenAnswer {
    /// The HTTP status.
    pub status: u16,
    /// Its headers.
    pub headers: reqwest::header::HeaderMap,
    /// Its body.
    pub body: Value,
}

impl TokenAnswer {
    /// A field of a successful answer.
    pub fn field(&self, name: &str) -> String {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            .to_owned()
    }
}

impl Rp {
    /// Registers a confidential client redirecting to [`REDIRECT`], with
    /// `change` applied to its registration.
    pub async fn register(app: &TestApp, change: impl FnOnce(&mut NewClient)) -> Self {
        let mut input = NewClient {
            name: "Payslips".to_owned(),
            redirect_uris: vec![REDIRECT.to_owned()],
            ..NewClient::default()
        };
        change(&mut input);
        let registered = app
            .gatehouse
            .register_client(OPERATOR, &input)
            .await
            .expect("register")
            .expect("valid registration");
        Self {
            id: registered.client.id.to_string(),
            secret: registered.secret.map(|s| s.encode()),
            redirect_uri: input.redirect_uris[0].clone(),
            base: app.url(""),
            issuer: ISSUER.to_owned(),
        }
    }

    /// A client registered some other way (the command line), by its id
    /// and secret.
    pub fn known(app: &TestApp, id: &str, secret: Option<&str>) -> Self {
        Self::at(&app.url(""), ISSUER, id, secret)
    }

    /// A client redirecting to [`REDIRECT`], of the service at `base` whose
    /// issuer is `issuer`.
    pub fn at(base: &str, issuer: &str, id: &str, secret: Option<&str>) -> Self {
        Self {
            id: id.to_owned(),
            secret: secret.map(str::to_owned),
            redirect_uri: REDIRECT.to_owned(),
            base: base.to_owned(),
            issuer: issuer.to_owned(),
        }
    }

    /// The authorization request's path: a code request for `openid` with
    /// a state and a nonce, `extra` added (an empty value leaves a
    /// parameter out).
    pub fn authorize_path(&self, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", &self.id),
            ("redirect_uri", &self.redirect_uri),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "state-123"),
            ("nonce", "nonce-456"),
        ];
        for (k, v) in extra {
            params.retain(|(p, _)| p != k);
            if !v.is_empty() {
                params.push((k, v));
            }
        }
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("/oauth2/authorize?{query}")
    }

    /// Starts a sign-in in `browser` and follows Gatehouse's own redirects
    /// (logging in as `who` if asked to) until the browser is sent back to
    /// the client; returns what it was sent back with.
    pub async fn sign_in(
        &self,
        browser: &Browser,
        extra: &[(&str, &str)],
        who: Option<(&str, &str)>,
    ) -> Callback {
        let mut response = browser.get(&self.authorize_path(extra)).await;
        for _ in 0..6 {
            assert_eq!(response.status(), 303, "{:?}", response.headers());
            let location = response.headers()["location"]
                .to_str()
                .expect("location")
                .to_owned();
            if location.starts_with(&self.redirect_uri) {
                return Callback::read(&location);
            }
            response = if location == "/login" {
                let (username, password) = who.expect("the flow asked the person to log in");
                browser.log_in(username, password).await
            } else {
                browser.get(&location).await
            };
        }
        panic!("the flow did not come back to the client");
    }

    /// POSTs `form` to the token endpoint with HTTP Basic client
    /// authentication (`client_secret_basic`).
    pub async fn token(&self, form: &[(&str, &str)]) -> TokenAnswer {
        let http = reqwest::Client::new();
        let mut request = http.post(format!("{}/oauth2/token", self.base)).form(form);
        if let Some(secret) = &self.secret {
            request = request.basic_auth(&self.id, Some(secret));
        }
        answer(request.send().await.expect("token request")).await
    }

    /// Redeems `code` (with `extra` fields: a PKCE verifier, say).
    pub async fn redeem(&self, code: &str, extra: &[(&str, &str)]) -> TokenAnswer {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
        ];
        form.extend_from_slice(extra);
        if self.secret.is_none() {
            form.push(("client_id", &self.id));
        }
        self.token(&form).await
    }

    /// Uses a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> TokenAnswer {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if self.secret.is_none() {
            form.push(("client_id", &self.id));
        }
        self.token(&form).await
    }

    /// Userinfo with `access_token` as a bearer token (GET).
    pub async fn userinfo(&self, access_token: &str) -> TokenAnswer {
        let http = reqwest::Client::new();
        let response = http
            .get(format!("{}/oauth2/userinfo", self.base))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo");
        answer(response).await
    }

    /// The claims of `id_token`, after checking its signature against the
    /// published JWKS (as a client would, knowing nothing else) and the
    /// claims every ID token must have for this client.
    pub async fn id_token_claims(&self, id_token: &str) -> Value {
        let claims = verify_with_jwks(&self.base, id_token).await;
        assert_eq!(claims["iss"], self.issuer.as_str(), "{claims}");
        assert_eq!(claims["aud"], self.id.as_str(), "{claims}");
        for required in ["sub", "exp", "iat", "auth_time", "sid", "amr", "acr"] {
            assert!(claims.get(required).is_some(), "no {required}: {claims}");
        }
        assert!(claims["exp"].as_i64() > claims["iat"].as_i64(), "{claims}");
        claims
    }

    /// Signs `who` in through the whole code flow and redeems the code:
    /// the token answer.
    pub async fn tokens_for(
        &self,
        browser: &Browser,
        extra: &[(&str, &str)],
        who: (&str, &str),
    ) -> TokenAnswer {
        let callback = self.sign_in(browser, extra, Some(who)).await;
        self.redeem(callback.get("code"), &[]).await
    }
}

/// Reads a JSON answer.
pub async fn answer(response: reqwest::Response) -> TokenAnswer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    TokenAnswer {
        status,
        headers,
        body,
    }
}

/// Checks a JWS against the keys the service at `base` publishes; panics
/// if no published key verifies it.
pub async fn verify_with_jwks(base: &str, token: &str) -> Value {
    let jwks: Value = reqwest::get(format!("{base}/oauth2/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let keys: Vec<Jwk> = serde_json::from_value(jwks["keys"].clone()).expect("keys");
    keys.iter()
        .find_map(|k| k.verify(token).ok())
        .unwrap_or_else(|| panic!("no published key verifies the token"))
}

/// The JOSE header of a compact JWS.
pub fn header_of(token: &str) -> Value {
    let head = token.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    use sha2::Digest as _;
    let verifier = gatehouse_domain::SecretToken::generate()
        .expect("random")
        .encode();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Amir, staff, with his password set, and a confidential client.
pub async fn amir_and_client(app: &TestApp) -> Rp {
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    Rp::register(app, |_| {}).await
}

/// Amir's username and password.
pub const AMIR_SIGNS_IN: (&str, &str) = (AMIR.username, GOOD_PASSWORD);

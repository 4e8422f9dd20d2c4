//! The token endpoint (codes and refresh tokens), token revocation
//! (RFC 7009) and userinfo: what applications call from their servers.
//!
//! A code is redeemed once across every node; a second redemption revokes
//! what the first gave (RFC 6749 §4.1.2). Refresh tokens rotate on every
//! use, and a used one presented again revokes its whole grant: one of the
//! two presenters stole it.

use gatehouse_domain::SecretToken;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oidc::authorize::verifier_matches;
use gatehouse_domain::oidc::client::{ClientId, ClientKind};
use gatehouse_domain::oidc::scope::{Authentication, Person, Scopes, person_claims};
use gatehouse_domain::oidc::{self as rules};
use gatehouse_store::oidc::clients::{self, ClientRow};
use gatehouse_store::oidc::grants::{self, GrantRow, NewGrant, Redeemed, Rotation};
use gatehouse_store::{AccountRecord, accounts};
use serde::Serialize;

use super::clients::{FAILURE_WINDOW, FAILURES_ALLOWED};
use crate::Caller;
use crate::{Gatehouse, Result};

/// How a client identified itself at the token or revocation endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// The client id (from HTTP Basic, or the form).
    pub id: Option<String>,
    /// The secret (from HTTP Basic, or the form's `client_secret`).
    pub secret: Option<String>,
    /// Both HTTP Basic and form credentials were sent (RFC 6749 §2.3: one only).
    pub two_methods: bool,
}

/// A token request's form (RFC 6749 §4.1.3, §6).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The code.
    pub code: Option<String>,
    /// The redirect address the code was sent to.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// A narrower scope, on refresh.
    pub scope: Option<String>,
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// The HTTP status.
    pub status: u16,
    /// The error code.
    pub error: &'static str,
    /// A sentence for the client's developers.
    pub description: String,
}

impl TokenError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    fn grant(description: &str) -> Self {
        Self::new(400, "invalid_grant", description)
    }

    fn client() -> Self {
        Self::new(401, "invalid_client", "client authentication failed")
    }
}

/// A successful token answer (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The access token, for userinfo.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The next refresh token (the one presented is spent).
    pub refresh_token: String,
    /// The ID token.
    pub id_token: String,
    /// The scopes granted.
    pub scope: String,
}

impl Gatehouse {
    /// Authenticates a client (`client_secret_basic`, `client_secret_post`,
    /// or `none` for a public one). Wrong secrets are audited and counted per
    /// client and address; past [`FAILURES_ALLOWED`] in [`FAILURE_WINDOW`]
    /// that address is refused for the client until the window ends.
    pub(crate) async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
        caller: &Caller,
    ) -> Result<std::result::Result<ClientRow, TokenError>> {
        let now = self.clock.now();
        let fail = |why: String| async move {
            let mut event = self.event(AuditEvent::ClientAuthFailed);
            event.client_ip = Some(caller.ip.clone());
            event.user_agent = caller.user_agent.clone();
            event.detail = Some(why);
            self.audit(&event).await
        };
        if creds.two_methods {
            fail("credentials sent two ways".to_owned()).await?;
            return Ok(Err(TokenError::new(
                400,
                "invalid_request",
                "send client credentials one way only",
            )));
        }
        let Some(id) = creds.id.as_deref().and_then(ClientId::parse) else {
            fail("no client id, or not one this service issues".to_owned()).await?;
            return Ok(Err(TokenError::client()));
        };
        let window = now.minus(FAILURE_WINDOW);
        if clients::failures(&mut *self.read().await?, &id, &caller.ip, window).await?
            >= FAILURES_ALLOWED
        {
            return Ok(Err(TokenError::new(
                429,
                "invalid_client",
                "too many wrong client secrets from this address; try again later",
            )));
        }
        let client = clients::by_id(&mut *self.read().await?, &id).await?;
        let verdict = match (&client, creds.secret.as_deref()) {
            (None, _) => Err("unknown client id"),
            (Some(c), _) if c.disabled_at.is_some() => Err("the client is disabled"),
            (Some(c), None) if c.kind == ClientKind::Public => Ok(()),
            (Some(_), None) => Err("no client secret"),
            (Some(c), Some(_)) if c.kind == ClientKind::Public => {
                Err("a public client has no secret")
            }
            (Some(c), Some(secret)) => {
                // Compared by hash, like every secret here.
                let given = SecretToken::parse(secret).map(|s| s.hash());
                if given.is_some() && given == c.secret_hash {
                    Ok(())
                } else {
                    Err("wrong client secret")
                }
            }
        };
        match (verdict, client) {
            (Ok(()), Some(client)) => Ok(Ok(client)),
            (verdict, _) => {
                let why = verdict.err().unwrap_or("unknown client id");
                clients::count_failure(&mut *self.write().await?, &id, &caller.ip, now, window)
                    .await?;
                fail(format!("{id}: {why}")).await?;
                Ok(Err(TokenError::client()))
            }
        }
    }

    /// The token endpoint.
    pub async fn token(
        &self,
        creds: &ClientCredentials,
        request: &TokenRequest,
        caller: &Caller,
    ) -> Result<std::result::Result<TokenResponse, TokenError>> {
        let client = match self.authenticate_client(creds, caller).await? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        match request.grant_type.as_deref() {
            Some("authorization_code") => self.redeem(&client, request, caller).await,
            Some("refresh_token") => self.refresh(&client, request, caller).await,
            None => Ok(Err(TokenError::new(
                400,
                "invalid_request",
                "grant_type is missing",
            ))),
            Some(_) => Ok(Err(TokenError::new(
                400,
                "unsupported_grant_type",
                "only authorization_code and refresh_token are supported",
            ))),
        }
    }

    async fn redeem(
        &self,
        client: &ClientRow,
        request: &TokenRequest,
        caller: &Caller,
    ) -> Result<std::result::Result<TokenResponse, TokenError>> {
        let now = self.clock.now();
        let Some(code) = request.code.as_deref().and_then(SecretToken::parse) else {
            return Ok(Err(TokenError::grant("the code is missing or malformed")));
        };
        let mut tx = self.begin().await?;
        let code = match grants::redeem_code(&mut tx, &code.hash(), now).await? {
            Redeemed::Taken(code) => code,
            Redeemed::Unknown => return Ok(Err(TokenError::grant("unknown code"))),
            Redeemed::UsedBefore(grant) => {
                // Whoever holds the code twice may have stolen it: what the
                // first redemption gave is taken back.
                let ended = match grant {
                    Some(id) => grants::end_grant(&mut tx, id, now).await?,
                    None => Vec::new(),
                };
                let mut event = self.event(AuditEvent::CodeReused);
                event.client_ip = Some(caller.ip.clone());
                event.user_agent = caller.user_agent.clone();
                event.account_id = ended.first().map(|e| e.account_id);
                event.detail = Some(format!("{}: {} grant(s) revoked", client.id, ended.len()));
                gatehouse_store::audit::record(&mut tx, &event).await?;
                tx.commit().await?;
                self.wake_logout_notices();
                return Ok(Err(TokenError::grant("the code has already been used")));
            }
        };
        let refuse = |why: &str| Ok(Err(TokenError::grant(why)));
        if code.client_id != client.id {
            tx.commit().await?;
            return refuse("the code was issued to another client");
        }
        if code.expires_at <= now {
            tx.commit().await?;
            return refuse("the code has expired");
        }
        if request.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
            tx.commit().await?;
            return refuse("redirect_uri does not match the authorization request");
        }
        let pkce_ok = match (&code.code_challenge, request.code_verifier.as_deref()) {
            (Some(challenge), Some(verifier)) => verifier_matches(challenge, verifier),
            (Some(_), None) => false,
            // A verifier for a code issued without a challenge is a
            // downgrade attempt (RFC 9700 §2.1.1).
            (None, Some(_)) => false,
            (None, None) => client.kind == ClientKind::Confidential,
        };
        if !pkce_ok {
            tx.commit().await?;
            return refuse("code_verifier does not match the code challenge");
        }
        let Some(account) = super::enabled_account(&mut tx, code.account_id).await? else {
            tx.commit().await?;
            return refuse("the account can no longer sign in");
        };
        let expires_at = code
            .auth_time
            .plus(self.settings.policy.session.absolute_timeout);
        let grant_id = grants::create_grant(
            &mut tx,
            &NewGrant {
                code: &code,
                scopes: code.scope,
                now,
                expires_at,
            },
        )
        .await?;
        let grant = GrantRow {
            id: grant_id,
            client_id: code.client_id.clone(),
            account_id: code.account_id,
            session_hash: code.session_hash,
            scope: code.scope,
            auth_time: code.auth_time,
            second_factor: code.second_factor,
            passkey: code.passkey,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        let issued = self
            .issue_tokens(
                &mut tx,
                client,
                &grant,
                &account,
                code.scope,
                code.nonce.as_deref(),
            )
            .await?;
        tx.commit().await?;
        Ok(Ok(issued))
    }

    async fn refresh(
        &self,
        client: &ClientRow,
        request: &TokenRequest,
        caller: &Caller,
    ) -> Result<std::result::Result<TokenResponse, TokenError>> {
        let now = self.clock.now();
        let Some(token) = request
            .refresh_token
            .as_deref()
            .and_then(SecretToken::parse)
        else {
            return Ok(Err(TokenError::grant(
                "the refresh token is missing or malformed",
            )));
        };
        let mut tx = self.begin().await?;
        let grant = match grants::take_refresh_token(&mut tx, &token.hash(), now).await? {
            Rotation::Unknown => return Ok(Err(TokenError::grant("unknown refresh token"))),
            Rotation::Taken(grant) if grant.client_id == client.id => grant,
            Rotation::Taken(grant) | Rotation::Reused(grant) => {
                let ended = grants::end_grant(&mut tx, grant.id, now).await?;
                let mut event = self.event(AuditEvent::RefreshTokenReused);
                event.client_ip = Some(caller.ip.clone());
                event.user_agent = caller.user_agent.clone();
                event.account_id = Some(grant.account_id);
                event.detail = Some(format!(
                    "{} presented a refresh token of grant {} ({}): {} grant(s) revoked",
                    client.id,
                    grant.id,
                    grant.client_id,
                    ended.len()
                ));
                gatehouse_store::audit::record(&mut tx, &event).await?;
                tx.commit().await?;
                self.wake_logout_notices();
                return Ok(Err(TokenError::grant(
                    "the refresh token has already been used",
                )));
            }
        };
        if grant.revoked_at.is_some() || grant.expires_at <= now {
            tx.commit().await?;
            return Ok(Err(TokenError::grant(
                "the sign-in this token came from has ended",
            )));
        }
        let scopes = match request.scope.as_deref() {
            None => grant.scope,
            Some(asked) => {
                let asked = Scopes::requested(asked);
                if !grant.scope.covers(&asked) {
                    return Ok(Err(TokenError::new(
                        400,
                        "invalid_scope",
                        "a refresh cannot widen the scopes granted",
                    )));
                }
                asked
            }
        };
        let Some(account) = super::enabled_account(&mut tx, grant.account_id).await? else {
            tx.commit().await?;
            return Ok(Err(TokenError::grant("the account can no longer sign in")));
        };
        let issued = self
            .issue_tokens(&mut tx, client, &grant, &account, scopes, None)
            .await?;
        tx.commit().await?;
        Ok(Ok(issued))
    }

    /// A new access token and refresh token for `grant`, and its ID token.
    async fn issue_tokens(
        &self,
        tx: &mut gatehouse_store::Tx,
        client: &ClientRow,
        grant: &GrantRow,
        account: &AccountRecord,
        scopes: Scopes,
        nonce: Option<&str>,
    ) -> Result<TokenResponse> {
        let now = self.clock.now();
        let lifetime = self.settings.access_token_lifetime;
        let access = SecretToken::generate()?;
        let refresh = SecretToken::generate()?;
        grants::insert_access_token(
            tx,
            &access.hash(),
            grant.id,
            scopes,
            now,
            now.plus(lifetime),
        )
        .await?;
        grants::insert_refresh_token(tx, &refresh.hash(), grant.id, now).await?;
        // Assigned when the code was issued; read in this transaction
        // otherwise (another connection would wait for SQLite's one writer).
        let subject = match &account.subject {
            Some(s) => s.clone(),
            None => {
                accounts::assign_subject(tx, account.id, &SecretToken::generate()?.encode()[..22])
                    .await?
                    .ok_or(crate::Error::NoSuchAccount)?
            }
        };
        let access_token = access.encode();
        let mut claims = person_claims(&person(account, subject), &scopes);
        let auth = Authentication {
            second_factor: grant.second_factor != 0,
            passkey: gatehouse_domain::oidc::scope::PasskeyUse::from_stored(grant.passkey),
        };
        let registered = [
            ("iss", serde_json::Value::from(self.settings.issuer())),
            ("aud", serde_json::Value::from(client.id.as_str())),
            ("azp", serde_json::Value::from(client.id.as_str())),
            ("iat", serde_json::Value::from(now.unix())),
            ("exp", serde_json::Value::from(now.plus(lifetime).unix())),
            ("auth_time", serde_json::Value::from(grant.auth_time.unix())),
            ("acr", serde_json::Value::from(auth.acr())),
            ("amr", serde_json::Value::from(auth.amr())),
            (
                "sid",
                serde_json::Value::from(rules::session_sid(&grant.session_hash)),
            ),
            (
                "at_hash",
                serde_json::Value::from(rules::at_hash(&access_token)),
            ),
        ];
        for (k, v) in registered {
            claims.insert(k.to_owned(), v);
        }
        if let Some(nonce) = nonce {
            claims.insert("nonce".to_owned(), serde_json::Value::from(nonce));
        }
        let id_token = self.sign_token(client.signing_alg, None, &claims).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.seconds(),
            refresh_token: refresh.encode(),
            id_token,
            scope: scopes.as_string(),
        })
    }

    /// Token revocation (RFC 7009): a refresh token revokes its grant, an
    /// access token itself. An unknown token, or another client's, is not
    /// an error (the answer says nothing about tokens a client does not hold).
    pub async fn revoke_token(
        &self,
        creds: &ClientCredentials,
        token: Option<&str>,
        caller: &Caller,
    ) -> Result<std::result::Result<(), TokenError>> {
        let client = match self.authenticate_client(creds, caller).await? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let Some(token) = token.and_then(SecretToken::parse) else {
            return Ok(Ok(()));
        };
        let now = self.clock.now();
        let hash = token.hash();
        let mut tx = self.begin().await?;
        let mut revoked = String::new();
        if let Some(grant_id) = grants::grant_of_refresh_token(&mut tx, &hash).await? {
            let grant = grants::grant(&mut tx, grant_id).await?;
            if grant.as_ref().is_some_and(|g| g.client_id == client.id) {
                let ended = grants::end_grant(&mut tx, grant_id, now).await?;
                revoked = format!("refresh token: {} grant(s) revoked", ended.len());
            }
        } else if grants::revoke_access_token(&mut tx, &hash, &client.id, now).await? {
            revoked = "access token revoked".to_owned();
        }
        if !revoked.is_empty() {
            let mut event = self.event(AuditEvent::TokenRevoked);
            event.client_ip = Some(caller.ip.clone());
            event.user_agent = caller.user_agent.clone();
            event.detail = Some(format!("{}: {revoked}", client.id));
            gatehouse_store::audit::record(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.wake_logout_notices();
        Ok(Ok(()))
    }

    /// The userinfo answer for an access token; `None` if the token is not
    /// one that answers now (unknown, expired, revoked, its grant ended, its
    /// client or account disabled).
    pub async fn userinfo(&self, access_token: &str) -> Result<Option<serde_json::Value>> {
        let Some(token) = SecretToken::parse(access_token) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let mut db = self.read().await?;
        let Some(found) = grants::access_token(&mut db, &token.hash()).await? else {
            return Ok(None);
        };
        let live = found.token_revoked_at.is_none()
            && found.token_expires_at > now
            && found.grant.revoked_at.is_none()
            && found.grant.expires_at > now;
        if !live {
            return Ok(None);
        }
        let client = clients::by_id(&mut db, &found.grant.client_id).await?;
        if client.is_none_or(|c| c.disabled_at.is_some()) {
            return Ok(None);
        }
        let Some(account) = super::enabled_account(&mut db, found.grant.account_id).await? else {
            return Ok(None);
        };
        drop(db);
        let Some(subject) = account.subject.clone() else {
            return Ok(None);
        };
        Ok(Some(serde_json::Value::Object(person_claims(
            &person(&account, subject),
            &found.token_scope,
        ))))
    }
}

/// What scopes may release about an account.
pub(crate) fn person(account: &AccountRecord, subject: String) -> Person {
    Person {
        subject,
        username: account.username.to_string(),
        first_name: account.first_name.clone(),
        last_name: account.last_name.clone(),
        email: account.email.to_string(),
        employer: account.employer_name.clone(),
        employer_code: account.employer_code.clone(),
        employee_number: account.employee_number.clone(),
        role: account.role.as_str().to_owned(),
    }
}

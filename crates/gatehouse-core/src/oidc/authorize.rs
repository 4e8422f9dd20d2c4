//! The authorization endpoint: an application sends a person here, and
//! gets them back with a code, or with an error it can act on.
//!
//! Signing in inside the flow is Gatehouse's own login page, with the same
//! lockout and recovery: the request waits (the web layer keeps it in a
//! signed cookie) while the person signs in, passes their second factor
//! (helpdesk and admin) or consents, then resumes here. An existing session
//! is single sign-on: no second password.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oidc::authorize::{
    self, AuthorizationRequest, AuthorizeError, ClientCheck, RawRequest, UntrustedRequest,
};
use gatehouse_domain::oidc::{self as rules};
use gatehouse_domain::{Role, SecretToken, Timestamp};
use gatehouse_store::oidc::clients::{self, ClientRow};
use gatehouse_store::oidc::grants::{self, NewCode};
use gatehouse_store::{AccountRecord, SessionRecord, accounts};
use serde::{Deserialize, Serialize};

use crate::Caller;
use crate::keys::Purpose;
use crate::{Gatehouse, Result};

/// How long a request may wait for the person to sign in.
pub const PENDING_LIFETIME: gatehouse_domain::Span = gatehouse_domain::Span::hours(1);

/// What to do with an authorization request.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Answer on Gatehouse's own error page: the client or its address
    /// cannot be trusted, so nothing is redirected.
    Refused(UntrustedRequest),
    /// Send the browser here: the application's address with a code, or
    /// with an OAuth error.
    Redirect(String),
    /// The person must sign in first.
    SignIn(Pending),
    /// A helpdesk or admin person must pass their second factor first.
    SecondFactor(Pending),
    /// The application asks for consent.
    Consent(Pending),
}

/// A request waiting for the person: what the web layer keeps while they
/// sign in, and what the pages show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The checked request.
    pub request: AuthorizationRequest,
    /// The application's name.
    pub client_name: String,
    /// The origin of the address the person goes back to: the login page's
    /// `form-action` must allow it, or Chromium stops the redirect that
    /// follows the form.
    pub redirect_origin: String,
    /// The person must have signed in at or after this time (`prompt=login`,
    /// `max_age`, an `id_token_hint` for someone else).
    pub fresh_after: Option<Timestamp>,
    /// When the request came.
    pub received_at: Timestamp,
}

/// The application's address with `params` added to its query, and `iss`
/// (RFC 9207) so that a client talking to several providers can tell which
/// one answered.
fn redirect_with(uri: &str, params: &[(&str, &str)], issuer: &str) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_owned();
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        query.append_pair("iss", issuer);
    }
    url.into()
}

impl Gatehouse {
    fn error_redirect(
        &self,
        uri: &str,
        e: &AuthorizeError,
        state: Option<&str>,
    ) -> AuthorizeOutcome {
        let mut params = vec![
            ("error", e.error),
            ("error_description", e.description.as_str()),
        ];
        if let Some(state) = state {
            params.push(("state", state));
        }
        AuthorizeOutcome::Redirect(redirect_with(uri, &params, &self.settings.issuer()))
    }

    /// The client a request names, if it is registered and enabled.
    async fn enabled_client(
        &self,
        raw: &RawRequest,
    ) -> Result<std::result::Result<ClientRow, UntrustedRequest>> {
        let id = match authorize::requested_client(raw) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        Ok(clients::by_id(&mut *self.read().await?, &id)
            .await?
            .filter(|c| c.disabled_at.is_none())
            .ok_or(UntrustedRequest::UnknownClient))
    }

    /// Handles an authorization request (GET or POST), for the browser's
    /// session if it has one.
    pub async fn authorize(
        &self,
        raw: &RawRequest,
        session: Option<&SessionRecord>,
        caller: &Caller,
    ) -> Result<AuthorizeOutcome> {
        let client = match self.enabled_client(raw).await? {
            Ok(c) => c,
            Err(e) => return Ok(AuthorizeOutcome::Refused(e)),
        };
        let registered = client.redirect_uris();
        let check = ClientCheck {
            kind: client.kind,
            redirect_uris: &registered,
        };
        let redirect = match authorize::trusted_redirect(raw, &check) {
            Ok(r) => r,
            Err(e) => return Ok(AuthorizeOutcome::Refused(e)),
        };
        let state = raw
            .get("state")
            .filter(|s| s.len() <= authorize::PARAMETER_MAX);
        let request = match authorize::check_request(raw, &client.id, redirect.clone(), &check) {
            Ok(r) => r,
            Err(e) => return Ok(self.error_redirect(&redirect, &e, state)),
        };
        let now = self.clock.now();
        let mut fresh_after = (request.prompt.login).then_some(now);
        if let Some(hint) = &request.id_token_hint {
            let Some(claims) = self.verify_own_token(hint).await? else {
                let e = AuthorizeError::new(
                    "invalid_request",
                    "id_token_hint is not a token this service issued",
                );
                return Ok(self.error_redirect(&redirect, &e, state));
            };
            let hinted = claims
                .get("sub")
                .and_then(|s| s.as_str())
                .map(str::to_owned);
            let current = match session.and_then(|s| s.account_id) {
                Some(id) => accounts::by_id(&mut *self.read().await?, id)
                    .await?
                    .and_then(|a| a.subject),
                None => None,
            };
            if hinted != current {
                // Someone else is signed in here (or nobody): the person
                // the application means must sign in.
                fresh_after = Some(now);
            }
        }
        let pending = Pending {
            request: AuthorizationRequest {
                id_token_hint: None,
                ..request
            },
            client_name: client.name.clone(),
            redirect_origin: gatehouse_domain::oidc::client::ClientUri::parse(&redirect)
                .map(|u| u.origin())
                .unwrap_or_default(),
            fresh_after,
            received_at: now,
        };
        self.decide(&client, pending, session, caller, false).await
    }

    /// Resumes a request that waited while the person signed in, passed
    /// their second factor, or answered the consent page (`consented`).
    pub async fn resume_authorization(
        &self,
        pending: Pending,
        session: Option<&SessionRecord>,
        caller: &Caller,
        consented: Option<bool>,
    ) -> Result<AuthorizeOutcome> {
        let now = self.clock.now();
        let raw = RawRequest::new([("client_id", pending.request.client_id.as_str())]);
        let client = match self.enabled_client(&raw).await? {
            Ok(c) => c,
            Err(e) => return Ok(AuthorizeOutcome::Refused(e)),
        };
        // Registered addresses may have changed while the person signed in.
        if !client
            .redirect_uris()
            .contains(&pending.request.redirect_uri)
        {
            return Ok(AuthorizeOutcome::Refused(
                UntrustedRequest::UnregisteredRedirectUri,
            ));
        }
        let state = pending.request.state.clone();
        let redirect = pending.request.redirect_uri.clone();
        if now.seconds_since(pending.received_at) > PENDING_LIFETIME.seconds() {
            let e = AuthorizeError::new("login_required", "the sign-in took too long; start again");
            return Ok(self.error_redirect(&redirect, &e, state.as_deref()));
        }
        match consented {
            Some(false) => {
                let e = AuthorizeError::new("access_denied", "the person did not consent");
                Ok(self.error_redirect(&redirect, &e, state.as_deref()))
            }
            Some(true) => self.decide(&client, pending, session, caller, true).await,
            None => self.decide(&client, pending, session, caller, false).await,
        }
    }

    /// Issues a code, or says what must happen first.
    async fn decide(
        &self,
        client: &ClientRow,
        pending: Pending,
        session: Option<&SessionRecord>,
        caller: &Caller,
        consented_now: bool,
    ) -> Result<AuthorizeOutcome> {
        let now = self.clock.now();
        let request = &pending.request;
        let interaction = |error: &'static str, why: &str| {
            let e = AuthorizeError::new(error, why);
            self.error_redirect(&request.redirect_uri, &e, request.state.as_deref())
        };
        let signed_in = match session {
            Some(s) => match s.account_id {
                Some(id) => super::enabled_account(&mut *self.read().await?, id)
                    .await?
                    .map(|a| (s, a)),
                None => None,
            },
            None => None,
        };
        let too_old = |s: &SessionRecord| {
            pending.fresh_after.is_some_and(|t| s.created_at < t)
                || request
                    .max_age
                    .is_some_and(|max| now.seconds_since(s.created_at) > max)
        };
        let Some((session, account)) = signed_in.filter(|(s, _)| !too_old(s)) else {
            if request.prompt.none {
                return Ok(interaction("login_required", "the person is not signed in"));
            }
            return Ok(AuthorizeOutcome::SignIn(pending));
        };
        if account.role != Role::Staff && session.second_factor_at.is_none() {
            if request.prompt.none {
                return Ok(interaction(
                    "interaction_required",
                    "the person must pass their second factor",
                ));
            }
            return Ok(AuthorizeOutcome::SecondFactor(pending));
        }
        if (client.asks_consent() || request.prompt.consent) && !consented_now {
            let given = clients::consent(&mut *self.read().await?, account.id, &client.id).await?;
            let covered = given.is_some_and(|g| g.covers(&request.scopes));
            if !covered || request.prompt.consent {
                if request.prompt.none {
                    return Ok(interaction(
                        "consent_required",
                        "the person has not consented",
                    ));
                }
                return Ok(AuthorizeOutcome::Consent(pending));
            }
        }
        self.issue_code(client, &pending, session, &account, caller, consented_now)
            .await
    }

    async fn issue_code(
        &self,
        client: &ClientRow,
        pending: &Pending,
        session: &SessionRecord,
        account: &AccountRecord,
        caller: &Caller,
        consented_now: bool,
    ) -> Result<AuthorizeOutcome> {
        let now = self.clock.now();
        let request = &pending.request;
        self.subject_of(account).await?;
        let code = SecretToken::generate()?;
        // Which application, and what it was given.
        let about = |event, caller: &Caller| gatehouse_store::AuditRecord {
            detail: Some(format!(
                "{} \"{}\": {}",
                client.id,
                client.name,
                request.scopes.as_string()
            )),
            ..self.event_about(event, account, caller)
        };
        let mut tx = self.begin().await?;
        if consented_now {
            clients::give_consent(&mut tx, account.id, &client.id, request.scopes, now).await?;
            let event = AuditEvent::ApplicationConsent;
            gatehouse_store::audit::record(&mut tx, &about(event, caller)).await?;
        }
        grants::insert_code(
            &mut tx,
            &NewCode {
                code_hash: &code.hash(),
                client_id: &client.id,
                account_id: account.id,
                session_hash: &session.id_hash,
                redirect_uri: &request.redirect_uri,
                scopes: request.scopes,
                nonce: request.nonce.as_deref(),
                code_challenge: request.code_challenge.as_deref(),
                auth_time: session.created_at,
                second_factor: session.second_factor_at.is_some(),
                passkey: session.passkey,
                now,
                expires_at: now.plus(rules::CODE_LIFETIME),
            },
        )
        .await?;
        let event = AuditEvent::ApplicationSignIn;
        gatehouse_store::audit::record(&mut tx, &about(event, caller)).await?;
        tx.commit().await?;
        let encoded = code.encode();
        let mut params = vec![("code", encoded.as_str())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        Ok(AuthorizeOutcome::Redirect(redirect_with(
            &request.redirect_uri,
            &params,
            &self.settings.issuer(),
        )))
    }

    /// The cookie value that holds `pending` while the person signs in:
    /// the request as JSON, and its tag under the service's key.
    pub fn pending_cookie(&self, pending: &Pending) -> Result<String> {
        use base64::Engine as _;
        let json = serde_json::to_vec(pending)
            .map_err(|e| crate::Error::Internal(format!("pending request: {e}")))?;
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let tag = self.sign(Purpose::PendingAuthorization, body.as_bytes());
        Ok(format!("{body}.{tag}"))
    }

    /// The request a cookie holds, if it is this service's own and has not
    /// waited too long.
    pub async fn pending_from_cookie(&self, cookie: &str) -> Result<Option<Pending>> {
        use base64::Engine as _;
        let Some((body, tag)) = cookie.split_once('.') else {
            return Ok(None);
        };
        if !self
            .verify(Purpose::PendingAuthorization, body.as_bytes(), tag)
            .await?
        {
            return Ok(None);
        }
        let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body) else {
            return Ok(None);
        };
        let pending: Option<Pending> = serde_json::from_slice(&json).ok();
        let now = self.clock.now();
        Ok(pending.filter(|p| now.seconds_since(p.received_at) <= PENDING_LIFETIME.seconds()))
    }

    /// The account's subject, assigned now if it has none.
    pub(crate) async fn subject_of(&self, account: &AccountRecord) -> Result<String> {
        if let Some(subject) = &account.subject {
            return Ok(subject.clone());
        }
        // 128 random bits: opaque, and never the username.
        let fresh = SecretToken::generate()?.encode()[..22].to_owned();
        accounts::assign_subject(&mut *self.write().await?, account.id, &fresh)
            .await?
            .ok_or(crate::Error::NoSuchAccount)
    }
}

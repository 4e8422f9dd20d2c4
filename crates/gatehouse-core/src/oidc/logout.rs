//! Signing out of applications: an application sending the person here to
//! sign out (RP-Initiated Logout 1.0), and Gatehouse telling applications
//! that a person's session ended (Back-Channel Logout 1.0).
//!
//! Notices are queued in the transaction that ends the sessions (see
//! `gatehouse_store::sessions::end`) and posted by [`LogoutNotifier`] with
//! the outbox's retry schedule: an application that is down hears of the
//! sign-out when it is back, for up to a day.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::mail::{GIVE_UP_AFTER, retry_delay};
use gatehouse_domain::oidc::client::ClientId;
use gatehouse_domain::oidc::{self as rules};
use gatehouse_domain::{SecretToken, Span};
use gatehouse_store::SessionRecord;
use gatehouse_store::oidc::clients;
use gatehouse_store::oidc::logout_notices::{self, LogoutNotice, NoticeResult};

use crate::Caller;
use crate::{Error, Gatehouse, Result};

/// What an application's sign-out request says (the end-session endpoint's
/// parameters).
#[derive(Debug, Clone, Default)]
pub struct EndSessionRequest {
    /// An ID token this service issued, naming the person and session.
    pub id_token_hint: Option<String>,
    /// The application.
    pub client_id: Option<String>,
    /// Where to send the person afterwards (registered by the application).
    pub post_logout_redirect_uri: Option<String>,
    /// Returned to the application with the person.
    pub state: Option<String>,
}

/// What to do with a sign-out request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSession {
    /// Ask the person whether to sign out (the request does not prove the
    /// application knows this session). The form posts the request back.
    Confirm {
        /// The application, if the request named one.
        client_name: Option<String>,
    },
    /// Signed out (or nobody was): send the person here, or show the
    /// signed-out page when `None`.
    Done(Option<String>),
    /// The request cannot be trusted (an address the application did not
    /// register, a hint this service did not sign): Gatehouse's error page.
    Refused(String),
}

impl Gatehouse {
    /// Handles a sign-out request from an application. With an
    /// `id_token_hint` for this very session the person is signed out at
    /// once; otherwise they are asked first, so that a link on another site
    /// cannot sign them out.
    pub async fn end_session_request(
        &self,
        request: &EndSessionRequest,
        session: Option<&SessionRecord>,
        caller: &Caller,
        confirmed: bool,
    ) -> Result<EndSession> {
        let hint = match &request.id_token_hint {
            Some(token) => match self.verify_own_token(token).await? {
                Some(claims) => Some(claims),
                None => {
                    return Ok(EndSession::Refused(
                        "The application sent a sign-out request this service cannot verify."
                            .to_owned(),
                    ));
                }
            },
            None => None,
        };
        let hinted_client = hint
            .as_ref()
            .and_then(|c| c.get("aud"))
            .and_then(|a| a.as_str().map(str::to_owned));
        let client_id = match (&request.client_id, &hinted_client) {
            (Some(a), Some(b)) if a != b => {
                return Ok(EndSession::Refused(
                    "The sign-out request names two different applications.".to_owned(),
                ));
            }
            (Some(id), _) | (None, Some(id)) => Some(id.clone()),
            (None, None) => None,
        };
        let client = match client_id.as_deref().and_then(ClientId::parse) {
            Some(id) => clients::by_id(&mut *self.read().await?, &id).await?,
            None => None,
        };
        let after = match (&request.post_logout_redirect_uri, &client) {
            (None, _) => None,
            (Some(uri), Some(c)) if c.post_logout_redirect_uris().contains(uri) => {
                let mut url = url::Url::parse(uri)
                    .map_err(|e| Error::Internal(format!("a registered address: {e}")))?;
                if let Some(state) = &request.state {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(String::from(url))
            }
            (Some(_), _) => {
                return Ok(EndSession::Refused(
                    "The application asked to send you to an address it has not registered."
                        .to_owned(),
                ));
            }
        };
        let Some(session) = session.filter(|s| s.account_id.is_some()) else {
            return Ok(EndSession::Done(after));
        };
        let hint_is_this_session = hint
            .as_ref()
            .and_then(|c| c.get("sid"))
            .and_then(|s| s.as_str())
            .is_some_and(|sid| sid == rules::session_sid(&session.id_hash));
        if confirmed || hint_is_this_session {
            self.end_session(session, caller).await?;
            return Ok(EndSession::Done(after));
        }
        Ok(EndSession::Confirm {
            client_name: client.map(|c| c.name),
        })
    }

    /// Wakes the back-channel logout worker of this process.
    pub fn wake_logout_notices(&self) {
        self.logout_wake.notify_one();
    }
}

/// Posts back-channel logout tokens to applications.
pub struct LogoutNotifier {
    gatehouse: Gatehouse,
    http: reqwest::Client,
    poll: Duration,
}

/// How long an application has to answer a logout token.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

impl LogoutNotifier {
    /// A notifier posting over HTTPS (the system's root certificates) or,
    /// to loopback addresses, HTTP.
    pub fn new(gatehouse: &Gatehouse) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A certificate the system store holds but rustls cannot read
            // is not one any client here can be using.
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(ANSWER_WITHIN)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            gatehouse: gatehouse.clone(),
            http,
            poll: Duration::from_secs(1),
        })
    }

    /// How often the queue is looked at when nothing wakes the worker.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Delivers what is due; returns how many notices were tried.
    pub async fn run_once(&self) -> Result<usize> {
        let g = &self.gatehouse;
        let now = g.clock.now();
        let lease = now.plus(Span::from_seconds(60));
        let due = logout_notices::claim(&mut *g.write().await?, now, lease, 20).await?;
        let tried = due.len();
        let mut sends = Vec::new();
        for notice in due {
            sends.push(self.deliver(notice));
        }
        for result in futures_util::future::join_all(sends).await {
            result?;
        }
        Ok(tried)
    }

    async fn deliver(&self, notice: LogoutNotice) -> Result<()> {
        let g = &self.gatehouse;
        let client = clients::by_id(&mut *g.read().await?, &notice.client_id).await?;
        let target = client
            .as_ref()
            .filter(|c| c.disabled_at.is_none())
            .and_then(|c| c.backchannel_logout_uri.clone().map(|u| (c, u)));
        let outcome = match target {
            None => Err((
                true,
                "the client is disabled, removed, or has no logout address".to_owned(),
            )),
            Some((client, uri)) => {
                let now = g.clock.now();
                let claims = serde_json::json!({
                    "iss": g.settings.issuer(),
                    "aud": client.id.as_str(),
                    "iat": now.unix(),
                    "exp": now.plus(rules::LOGOUT_TOKEN_LIFETIME).unix(),
                    "jti": SecretToken::generate()?.encode(),
                    "sub": notice.subject,
                    "sid": notice.sid,
                    "events": { rules::LOGOUT_EVENT: {} },
                });
                let token = g
                    .sign_token(client.signing_alg, Some("logout+jwt"), &claims)
                    .await?;
                match self
                    .http
                    .post(&uri)
                    .form(&[("logout_token", token.as_str())])
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err((false, format!("the application answered {}", r.status()))),
                    Err(e) => Err((false, format!("the application could not be reached: {e}"))),
                }
            }
        };
        let now = g.clock.now();
        let result = match outcome {
            Ok(()) => NoticeResult::Sent,
            Err((permanent, why)) => {
                let failures = u32::try_from(notice.attempts).unwrap_or(u32::MAX);
                if permanent || now.seconds_since(notice.created_at) > GIVE_UP_AFTER.seconds() {
                    let mut event = g.event(AuditEvent::LogoutNoticeFailed);
                    event.detail = Some(format!(
                        "{} (session {}): {why}; given up after {failures} tries",
                        notice.client_id, notice.sid
                    ));
                    g.audit(&event).await?;
                    NoticeResult::Failed(why)
                } else {
                    NoticeResult::Retry {
                        error: why,
                        at: now.plus(retry_delay(failures)),
                    }
                }
            }
        };
        logout_notices::record(&mut *g.write().await?, notice.id, &result, now).await?;
        Ok(())
    }

    /// Delivers notices until `shutdown` resolves, woken when one is queued
    /// on this node or every poll interval (another node's).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.run_once().await {
                Ok(n) => {
                    self.gatehouse.metrics.worker_ran("logout_notices");
                    if n > 0 {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "logout notices could not be delivered; retrying shortly");
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.gatehouse.logout_wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}

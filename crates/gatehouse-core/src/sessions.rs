//! Server-side sessions.
//!
//! The cookie holds a 256-bit random id; the database holds only its hash
//! and what the session is for (a signed-in account, a reset link waiting
//! for its form, a one-time message). The form token is derived from the id
//! ([`form_token`]), so a copy of the database holds no usable form token
//! either: the stored record's `csrf_token` is left empty. Sessions are
//! checked against the idle and absolute timeouts on every request,
//! server-side.

use gatehouse_domain::{SecretToken, Span, Timestamp};
use gatehouse_store::SessionRecord;

use crate::{Gatehouse, Result};

/// How stale `last_seen_at` may get before a request updates it: writing on
/// every request would make every page view a database write.
const TOUCH_EVERY: Span = Span::from_seconds(60);

/// A session and the cookie value that names it.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie value (secret).
    pub token: SecretToken,
    /// What is stored.
    pub record: SessionRecord,
}

impl NewSession {
    /// The record as it is stored: without the form token, which is
    /// derived from the cookie's id on every request.
    pub fn stored(&self) -> SessionRecord {
        SessionRecord {
            csrf_token: String::new(),
            ..self.record.clone()
        }
    }
}

/// The form token of the session named by `session_id`.
pub fn form_token(session_id: &SecretToken) -> SecretToken {
    session_id.derive("gatehouse form token")
}

/// The form token of a visitor without a session, whose browser holds
/// `form_id` in the form cookie.
///
/// The sign-in and recovery forms are for people who are not signed in,
/// and storing a session for each of their page views would make every
/// view a database write: a flood of page views would fill the sessions
/// table and queue behind the one writer. Their token is derived from a
/// random id in a cookie of its own instead, which a cross-site page can
/// neither read nor (with the `__Host-` prefix over HTTPS) set. It is
/// derived for a different purpose than a session's, so a form id is never
/// a session's token or the other way round.
pub fn public_form_token(form_id: &SecretToken) -> SecretToken {
    form_id.derive("gatehouse public form token")
}

/// Builds a fresh session record (not yet stored).
pub fn fresh_session(account_id: Option<i64>, now: Timestamp) -> Result<NewSession> {
    let token = SecretToken::generate()?;
    let record = SessionRecord {
        id_hash: token.hash(),
        account_id,
        csrf_token: form_token(&token).encode(),
        created_at: now,
        last_seen_at: now,
        reset_link_id: None,
        reset_until: None,
        flash: None,
        second_factor_at: None,
    };
    Ok(NewSession { token, record })
}

impl Gatehouse {
    /// The live session named by a cookie value, if any. Expired sessions are deleted.
    pub async fn session(&self, cookie_value: &str) -> Result<Option<SessionRecord>> {
        let Some(token) = SecretToken::parse(cookie_value) else {
            return Ok(None);
        };
        let hash = token.hash();
        let Some(mut record) = self.store.session(&hash).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if !self
            .settings
            .policy
            .session
            .is_alive(record.created_at, record.last_seen_at, now)
        {
            self.store.delete_session(&hash).await?;
            return Ok(None);
        }
        record.csrf_token = form_token(&token).encode();
        if now.seconds_since(record.last_seen_at) >= TOUCH_EVERY.seconds() {
            self.store.touch_session(&hash, now).await?;
            record.last_seen_at = now;
        }
        Ok(Some(record))
    }

    /// Starts and stores a session for a visitor who is not signed in (it carries the form token).
    pub async fn start_session(&self) -> Result<NewSession> {
        let session = fresh_session(None, self.clock.now())?;
        self.store.create_session(&session.stored()).await?;
        Ok(session)
    }

    /// Ends a session (sign out), with its audit record when someone was signed in.
    pub async fn end_session(&self, record: &SessionRecord, client_ip: &str) -> Result<()> {
        self.store.delete_session(&record.id_hash).await?;
        if let Some(account_id) = record.account_id {
            let mut event = self.event(gatehouse_domain::audit::AuditEvent::SignedOut);
            event.account_id = Some(account_id);
            event.client_ip = Some(client_ip.to_owned());
            self.store.audit(&event).await?;
        }
        Ok(())
    }

    /// Sets the one-time message shown on the next page.
    pub async fn set_flash(&self, record: &SessionRecord, message: &str) -> Result<()> {
        Ok(self
            .store
            .set_session_flash(&record.id_hash, Some(message))
            .await?)
    }

    /// Takes (and clears) the one-time message.
    pub async fn take_flash(&self, record: &SessionRecord) -> Result<Option<String>> {
        if record.flash.is_none() {
            return Ok(None);
        }
        self.store.set_session_flash(&record.id_hash, None).await?;
        Ok(record.flash.clone())
    }
}

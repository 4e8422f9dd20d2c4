//! Server-side sessions.
//!
//! The cookie holds a 256-bit random id; the database holds only its hash
//! and what the session is for (a signed-in account, a one-time message).
//! The form token is a MAC of the id under the service's key
//! ([`crate::keys`]), so a copy of the sessions table holds no usable form
//! token: the stored record's `csrf_token` is left empty. Sessions are
//! checked against the idle and absolute timeouts on every request,
//! server-side.

use gatehouse_domain::{SecretToken, Span, Timestamp};
use gatehouse_store::{SessionRecord, sessions};

use crate::Caller;
use crate::keys::Purpose;
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

impl Gatehouse {
    /// Builds a fresh session record (not yet stored) for `caller`'s browser.
    pub fn fresh_session(
        &self,
        account_id: Option<i64>,
        now: Timestamp,
        caller: &Caller,
    ) -> Result<NewSession> {
        let token = SecretToken::generate()?;
        let record = SessionRecord {
            id_hash: token.hash(),
            account_id,
            csrf_token: self.form_token(Purpose::SessionForm, &token),
            created_at: now,
            last_seen_at: now,
            flash: None,
            second_factor_at: None,
            user_agent: caller.user_agent.clone(),
            client_ip: Some(caller.ip.clone()),
            passkey: gatehouse_store::sessions::PASSKEY_NONE,
        };
        Ok(NewSession { token, record })
    }

    /// The form token a visitor without a session carries on the public
    /// forms (sign-in, recovery, reset), from the id in their form cookie.
    ///
    /// Storing a session for each page view of people who are not signed
    /// in would make every view a database write: a flood of page views
    /// would fill the sessions table and queue behind the one writer. Their
    /// token is a MAC of a random id in a cookie of its own instead: a
    /// cross-site page can neither read that cookie nor, without the
    /// service's key, compute the token of one it managed to set.
    pub fn public_form_token(&self, form_id: &SecretToken) -> String {
        self.form_token(Purpose::PublicForm, form_id)
    }

    /// The live session named by a cookie value, if any. Expired sessions are deleted.
    pub async fn session(&self, cookie_value: &str) -> Result<Option<SessionRecord>> {
        let Some(token) = SecretToken::parse(cookie_value) else {
            return Ok(None);
        };
        let hash = token.hash();
        let Some(mut record) = sessions::get(&mut *self.read().await?, &hash).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if !self
            .settings
            .policy
            .session
            .is_alive(record.created_at, record.last_seen_at, now)
        {
            sessions::expire(&mut *self.write().await?, &hash).await?;
            return Ok(None);
        }
        record.csrf_token = self.form_token(Purpose::SessionForm, &token);
        if now.seconds_since(record.last_seen_at) >= TOUCH_EVERY.seconds() {
            sessions::touch(&mut *self.write().await?, &hash, now).await?;
            record.last_seen_at = now;
        }
        Ok(Some(record))
    }

    /// Ends a session (sign out), with its audit record when someone was
    /// signed in; applications granted access in it lose it, and are told.
    pub async fn end_session(&self, record: &SessionRecord, caller: &Caller) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        sessions::end(&mut tx, &record.id_hash, now).await?;
        if let Some(account_id) = record.account_id {
            let mut event = self.event(gatehouse_domain::audit::AuditEvent::SignedOut);
            event.account_id = Some(account_id);
            event.client_ip = Some(caller.ip.clone());
            event.user_agent = caller.user_agent.clone();
            gatehouse_store::audit::record(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.wake_logout_notices();
        Ok(())
    }

    /// Records a form refused by the cross-site request checks (`why`: a
    /// cross-site request, no session, a wrong token).
    pub async fn form_refused(
        &self,
        caller: &Caller,
        account_id: Option<i64>,
        why: &str,
    ) -> Result<()> {
        let mut event = self.event(gatehouse_domain::audit::AuditEvent::CsrfRefused);
        event.client_ip = Some(caller.ip.clone());
        event.user_agent = caller.user_agent.clone();
        event.account_id = account_id;
        event.detail = Some(why.to_owned());
        self.audit(&event).await
    }

    /// Sets the one-time message shown on the next page.
    pub async fn set_flash(&self, record: &SessionRecord, message: &str) -> Result<()> {
        Ok(sessions::set_flash(&mut *self.write().await?, &record.id_hash, Some(message)).await?)
    }

    /// Takes (and clears) the one-time message.
    pub async fn take_flash(&self, record: &SessionRecord) -> Result<Option<String>> {
        if record.flash.is_none() {
            return Ok(None);
        }
        sessions::set_flash(&mut *self.write().await?, &record.id_hash, None).await?;
        Ok(record.flash.clone())
    }
}

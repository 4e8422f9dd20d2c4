//! Signing in with a passkey (discoverable, nothing typed; or after typing
//! the username, for security keys that keep no passkey of their own), and
//! a passkey as a helpdesk or admin member's second factor.
//!
//! Neither touches the password lockout: an assertion is a signature by a
//! key the person holds, not a guess, and a locked password does not stop
//! it (docs/security.md, "Passkeys").

use base64::Engine as _;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::{Role, SecretToken, TokenHash, UsernameKey};
use gatehouse_store::passkeys::{self, PasskeyRow};
use gatehouse_store::{AccountRecord, SessionRecord, accounts, audit, sessions};
use webauthn_rs::prelude::{DiscoverableAuthentication, DiscoverableKey, PublicKeyCredential};

use super::{CeremonyStart, Kind, PasskeyRefusal, Refusable, credential_of, refusal_of};
use crate::keys::Purpose;
use crate::sessions::NewSession;
use crate::sign_in::BrowserCookies;
use crate::{Caller, Error, Gatehouse, Result};

/// How a passkey sign-in ended.
#[derive(Debug)]
pub enum PasskeySignInOutcome {
    /// Signed in: a new session.
    SignedIn {
        /// The new session (the browser's old one is gone).
        session: Box<NewSession>,
        /// A helpdesk or admin account (whose passkey, verified by a PIN or
        /// a fingerprint, is both factors: the console is open).
        privileged: bool,
        /// With new-browser notices on: the id to give a browser that had none.
        browser: Option<SecretToken>,
    },
    /// Refused (audited).
    Refused(PasskeyRefusal),
}

/// Passkeys' credential ids as an assertion request lists them (base64url).
fn listed(passkeys: &[PasskeyRow]) -> Vec<String> {
    passkeys
        .iter()
        .map(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&p.credential_id))
        .collect()
}

/// A verified assertion: whose passkey it was.
struct Asserted {
    account: AccountRecord,
}

impl Gatehouse {
    /// Options for `navigator.credentials.get`: a discoverable request, with
    /// `allow` (credential ids, base64url) listed.
    async fn assertion_options(
        &self,
        kind: Kind,
        account_id: Option<i64>,
        allow: &[String],
    ) -> Result<CeremonyStart> {
        let (mut options, state) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(|e| Error::Internal(format!("starting a passkey assertion: {e}")))?;
        // Asked for by a button, not offered as the page loads.
        options.mediation = None;
        let mut options = serde_json::to_value(&options)
            .map_err(|e| Error::Internal(format!("passkey options: {e}")))?;
        if let Some(public_key) = options.get_mut("publicKey") {
            let listed: Vec<serde_json::Value> = allow
                .iter()
                .map(|id| serde_json::json!({ "type": "public-key", "id": id }))
                .collect();
            public_key["allowCredentials"] = serde_json::Value::from(listed);
        }
        let ceremony = self.store_ceremony(kind, account_id, &state).await?;
        Ok(CeremonyStart { ceremony, options })
    }

    /// The first half of signing in with a passkey. With no username the
    /// browser offers the passkeys it holds for this service; with one, the
    /// passkeys of that account are named too (for security keys that keep
    /// none). A username with no passkeys, or that nobody has, gets one
    /// stand-in passkey named instead, the same for that username every
    /// time (a MAC of it under the service key): the answer does not tell
    /// who has passkeys, or who exists.
    pub async fn start_passkey_sign_in(
        &self,
        username: Option<&str>,
    ) -> Result<Refusable<CeremonyStart>> {
        if !self.settings.passkeys {
            return Ok(Err(PasskeyRefusal::NotEnabled));
        }
        let typed = username
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(UsernameKey::from_typed);
        let mut db = self.read().await?;
        let account = match &typed {
            Some(key) => accounts::by_username(&mut db, key).await?,
            None => None,
        };
        let passkeys = match &account {
            Some(a) => passkeys::of_account(&mut db, a.id).await?,
            None => Vec::new(),
        };
        drop(db);
        let named = account.filter(|_| !passkeys.is_empty()).map(|a| a.id);
        let mut allow = listed(&passkeys);
        if let Some(key) = typed.filter(|_| allow.is_empty()) {
            allow.push(self.sign(Purpose::PasskeyDecoy, key.as_str().as_bytes()));
        }
        Ok(Ok(self
            .assertion_options(Kind::SignIn, named, &allow)
            .await?))
    }

    /// Checks the browser's answer to an assertion ceremony of `kind`:
    /// the ceremony once and in time, the passkey registered (to the
    /// ceremony's account, when it names one, and to the user handle the
    /// authenticator gave), the signature, origin, relying party and user
    /// verification, and a counter that went forward; then records the new
    /// counter and when it was used. Every refusal is audited.
    async fn verify_assertion(
        &self,
        kind: Kind,
        ceremony: &str,
        credential: &str,
        caller: &Caller,
        what: &str,
    ) -> Result<Refusable<Asserted>> {
        let (named, state) = match self
            .take_ceremony::<DiscoverableAuthentication>(kind, ceremony)
            .await?
        {
            Ok(taken) => taken,
            Err(refusal) => return self.refused(refusal, None, caller, what).await,
        };
        let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(credential) else {
            return self
                .refused(PasskeyRefusal::NotVerified, None, caller, what)
                .await;
        };
        let found =
            passkeys::by_credential_id(&mut *self.read().await?, answer.get_credential_id())
                .await?;
        let Some(row) = found else {
            return self
                .refused(PasskeyRefusal::UnknownPasskey, None, caller, what)
                .await;
        };
        let account = accounts::by_id(&mut *self.read().await?, row.account_id)
            .await?
            .ok_or(Error::NoSuchAccount)?;
        // An assertion for a passkey of another account than the one the
        // ceremony is for, or made for another user than it was registered to.
        let handle_differs = answer
            .get_user_unique_id()
            .is_some_and(|h| h != row.user_handle.as_slice());
        let no_handle = answer.get_user_unique_id().is_none() && named.is_none();
        if named.is_some_and(|id| id != row.account_id) || handle_differs || no_handle {
            return self
                .refused(PasskeyRefusal::OtherAccount, Some(&account), caller, what)
                .await;
        }
        if account.disabled_at.is_some() {
            return self
                .refused(
                    PasskeyRefusal::AccountDisabled,
                    Some(&account),
                    caller,
                    what,
                )
                .await;
        }
        let mut passkey = credential_of(&row)?;
        let key = DiscoverableKey::from(&passkey);
        let result =
            match self
                .webauthn()?
                .finish_discoverable_authentication(&answer, state, &[key])
            {
                Ok(result) => result,
                Err(e) => {
                    tracing::info!(error = %e, "a passkey assertion did not verify");
                    return self
                        .refused(refusal_of(&e), Some(&account), caller, what)
                        .await;
                }
            };
        passkey.update_credential(&result);
        let stored = serde_json::to_string(&passkey)
            .map_err(|e| Error::Internal(format!("a passkey to store: {e}")))?;
        let counter = i64::from(result.counter());
        // Compare-and-set on the counter the check was made against, so two
        // assertions from one authenticator at once cannot both pass.
        let recorded = passkeys::record_use(
            &mut *self.write().await?,
            row.id,
            row.counter,
            counter,
            &stored,
            self.clock.now(),
        )
        .await?;
        if !recorded {
            return self
                .refused(
                    PasskeyRefusal::CounterWentBackwards,
                    Some(&account),
                    caller,
                    what,
                )
                .await;
        }
        Ok(Ok(Asserted { account }))
    }

    /// The second half of signing in with a passkey. The password lockout
    /// is neither consulted nor counted. On success a new session starts,
    /// as a password sign-in's does (`previous_session` ends).
    pub async fn finish_passkey_sign_in(
        &self,
        ceremony: &str,
        credential: &str,
        caller: &Caller,
        previous_session: Option<&TokenHash>,
        cookies: BrowserCookies<'_>,
    ) -> Result<PasskeySignInOutcome> {
        if !self.settings.passkeys {
            return Ok(PasskeySignInOutcome::Refused(PasskeyRefusal::NotEnabled));
        }
        let Asserted { account } = match self
            .verify_assertion(Kind::SignIn, ceremony, credential, caller, "signing in")
            .await?
        {
            Ok(asserted) => asserted,
            Err(refusal) => return Ok(PasskeySignInOutcome::Refused(refusal)),
        };
        let now = self.clock.now();
        let privileged = account.role != Role::Staff;
        let mut session = self.fresh_session(Some(account.id), now, caller)?;
        session.record.passkey = sessions::PASSKEY_SIGN_IN;
        // A passkey is verified by the person's PIN or fingerprint on the
        // device that holds it: for helpdesk and admin it is both factors.
        if privileged {
            session.record.second_factor_at = Some(now);
        }
        let mut tx = self.begin().await?;
        if let Some(previous) = previous_session {
            sessions::end(&mut tx, previous, now).await?;
        }
        sessions::create(&mut tx, &session.stored()).await?;
        accounts::record_sign_in(&mut tx, account.id, now).await?;
        let event = self.event_about(AuditEvent::PasskeySignIn, &account, caller);
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        self.metrics.sign_in(crate::metrics::SignInMetric::Passkey);
        if previous_session.is_some() {
            self.wake_logout_notices();
        }
        let browser = self
            .note_browser(&account, cookies.browser, caller, now)
            .await?;
        Ok(PasskeySignInOutcome::SignedIn {
            session: Box::new(session),
            privileged,
            browser,
        })
    }

    /// Whether the signed-in privileged account of `session` has a passkey
    /// to offer as its second factor.
    pub async fn has_passkeys(&self, account_id: i64) -> Result<bool> {
        Ok(self.settings.passkeys && self.passkey_count(account_id).await? > 0)
    }

    /// The first half of a helpdesk or admin member's second factor with a
    /// passkey: the account's own passkeys only.
    pub async fn start_passkey_second_factor(
        &self,
        session: &SessionRecord,
    ) -> Result<Refusable<CeremonyStart>> {
        if !self.settings.passkeys {
            return Ok(Err(PasskeyRefusal::NotEnabled));
        }
        let account_id = session.account_id.ok_or(Error::NoSuchAccount)?;
        let allow = passkeys::of_account(&mut *self.read().await?, account_id).await?;
        if allow.is_empty() {
            return Ok(Err(PasskeyRefusal::UnknownPasskey));
        }
        Ok(Ok(self
            .assertion_options(Kind::SecondFactor, Some(account_id), &listed(&allow))
            .await?))
    }

    /// The second half: on success the session has passed the second factor.
    pub async fn finish_passkey_second_factor(
        &self,
        session: &SessionRecord,
        ceremony: &str,
        credential: &str,
        caller: &Caller,
    ) -> Result<Refusable<()>> {
        let what = "the second factor";
        let account = match self
            .owners_assertion(session.account_id, ceremony, credential, caller, what)
            .await?
        {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let now = self.clock.now();
        sessions::pass_second_factor_with_passkey(&mut *self.write().await?, &session.id_hash, now)
            .await?;
        let mut event = self.event_about(AuditEvent::SecondFactorPassed, &account, caller);
        event.detail = Some("with a passkey".to_owned());
        self.audit(&event).await?;
        Ok(Ok(()))
    }

    /// The first half of using a passkey before a password reset, for a
    /// helpdesk or admin account whose reset asks for one: the held link's
    /// account's own passkeys only.
    /// The page offers it to no other account, so a refusal is audited.
    pub async fn start_passkey_reset(
        &self,
        link_id: i64,
        caller: &Caller,
    ) -> Result<Refusable<CeremonyStart>> {
        if !self.settings.passkeys {
            return Ok(Err(PasskeyRefusal::NotEnabled));
        }
        let what = "a password reset";
        let Ok((_, account)) = self.link_and_account(link_id).await? else {
            return self
                .refused(PasskeyRefusal::UnknownCeremony, None, caller, what)
                .await;
        };
        let allow = passkeys::of_account(&mut *self.read().await?, account.id).await?;
        if account.role == Role::Staff || allow.is_empty() {
            return self
                .refused(PasskeyRefusal::UnknownPasskey, Some(&account), caller, what)
                .await;
        }
        Ok(Ok(self
            .assertion_options(Kind::SecondFactor, Some(account.id), &listed(&allow))
            .await?))
    }

    /// The second half: on success the browser holding the link may set
    /// the password (the caller gives it
    /// [`Gatehouse::reset_cookie_after_passkey`]).
    pub async fn finish_passkey_reset(
        &self,
        link_id: i64,
        ceremony: &str,
        credential: &str,
        caller: &Caller,
    ) -> Result<Refusable<()>> {
        let owner = self
            .link_and_account(link_id)
            .await?
            .ok()
            .map(|(_, a)| a.id);
        let what = "a password reset";
        let account = match self
            .owners_assertion(owner, ceremony, credential, caller, what)
            .await?
        {
            Ok(account) => account,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut event = self.event_about(AuditEvent::SecondFactorPassed, &account, caller);
        event.detail = Some("with a passkey, for a password reset".to_owned());
        self.audit(&event).await?;
        Ok(Ok(()))
    }

    /// A second-factor assertion made with a passkey of `owner` (the
    /// account a session or a reset link is for): that account, or the
    /// refusal (audited).
    async fn owners_assertion(
        &self,
        owner: Option<i64>,
        ceremony: &str,
        credential: &str,
        caller: &Caller,
        what: &str,
    ) -> Result<Refusable<AccountRecord>> {
        if !self.settings.passkeys {
            return Ok(Err(PasskeyRefusal::NotEnabled));
        }
        let Asserted { account } = match self
            .verify_assertion(Kind::SecondFactor, ceremony, credential, caller, what)
            .await?
        {
            Ok(asserted) => asserted,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if owner != Some(account.id) {
            return self
                .refused(PasskeyRefusal::OtherAccount, Some(&account), caller, what)
                .await;
        }
        Ok(Ok(account))
    }
}

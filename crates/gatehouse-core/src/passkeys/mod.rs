//! Passkeys (WebAuthn Level 3, through webauthn-rs): adding, listing and
//! removing them on "My account", signing in with one, using one as a
//! helpdesk or admin member's second factor, and the operator removing an
//! account's passkeys.
//!
//! Every ceremony has two halves (options for the browser, then its
//! answer). Between them its state is kept in the database under the hash
//! of a random id the browser holds, so any node can finish a ceremony
//! another started; it is taken by the statement that deletes it, so it is
//! finished at most once, and refused after [`CEREMONY_LIFETIME`].
//!
//! A passkey is not a guess: a sign-in with one neither counts towards nor
//! is stopped by the password lockout, so someone who knows a username can
//! lock its password but not its owner's passkey. That is the operator's
//! choice in turning passkeys on (docs/security.md).

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::{SecretToken, Span, Timestamp};
use gatehouse_store::passkeys::{self, CeremonyRow, PasskeyRow};
use gatehouse_store::{AccountRecord, audit};
use webauthn_rs::prelude::{Passkey, Url, Webauthn, WebauthnBuilder, WebauthnError};

use crate::{Caller, Error, Gatehouse, Result};

mod register;
mod sign_in;

pub use register::{PasskeyLine, RemoveOutcome};
pub use sign_in::PasskeySignInOutcome;

/// How long a ceremony waits for its answer.
pub const CEREMONY_LIFETIME: Span = Span::minutes(5);

/// The longest name a passkey may be given, in characters.
pub const NAME_MAX: usize = 50;

/// What a ceremony is for (as stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Adding a passkey to the signed-in account.
    Register,
    /// Signing in with a passkey.
    SignIn,
    /// A privileged member's second factor.
    SecondFactor,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::SignIn => "sign_in",
            Kind::SecondFactor => "second_factor",
        }
    }
}

/// The first half of a ceremony: what the browser needs.
#[derive(Debug, Clone)]
pub struct CeremonyStart {
    /// The ceremony's id, to send back with the answer.
    pub ceremony: String,
    /// The options for `navigator.credentials.create` or `.get`, as JSON.
    pub options: serde_json::Value,
}

/// Why a passkey ceremony was refused, in words the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasskeyRefusal {
    /// Passkeys are not turned on.
    NotEnabled,
    /// The name is empty, too long or holds control characters.
    BadName(String),
    /// The account has a passkey of that name.
    NameTaken,
    /// The ceremony is unknown, used already, or of another kind.
    UnknownCeremony,
    /// The ceremony's five minutes are over.
    Expired,
    /// The answer did not verify (wrong origin, relying party, challenge, signature…).
    NotVerified,
    /// The passkey is not registered here (or no longer).
    UnknownPasskey,
    /// The passkey belongs to another account than the ceremony's.
    OtherAccount,
    /// The signature counter did not go forward: perhaps a cloned authenticator.
    CounterWentBackwards,
    /// The passkey is registered already.
    AlreadyRegistered,
    /// The account has been disabled by an administrator.
    AccountDisabled,
    /// A privileged account must pass its second factor before changing its passkeys.
    SecondFactorFirst,
}

impl PasskeyRefusal {
    /// The message for the person.
    pub fn message(&self) -> String {
        match self {
            PasskeyRefusal::NotEnabled => "Passkeys are not turned on for this service.".to_owned(),
            PasskeyRefusal::BadName(why) => why.clone(),
            PasskeyRefusal::NameTaken => {
                "You already have a passkey with that name. Choose another name.".to_owned()
            }
            PasskeyRefusal::UnknownCeremony | PasskeyRefusal::Expired => {
                "That took too long or was already used. Try again.".to_owned()
            }
            PasskeyRefusal::NotVerified
            | PasskeyRefusal::UnknownPasskey
            | PasskeyRefusal::OtherAccount => {
                "That passkey could not be used to sign in. Try again, or log in with your password."
                    .to_owned()
            }
            PasskeyRefusal::CounterWentBackwards => "That passkey could not be used, because it may have been copied. Log in with your password and contact the System Administrator.".to_owned(),
            PasskeyRefusal::AlreadyRegistered => {
                "That passkey is already registered.".to_owned()
            }
            PasskeyRefusal::AccountDisabled => "Your account has been disabled by an administrator. Contact the System Administrator if you think this is wrong.".to_owned(),
            PasskeyRefusal::SecondFactorFirst => {
                "Enter the code from your authenticator app first.".to_owned()
            }
        }
    }

    /// The reason as the audit log records it.
    pub(crate) fn audit_reason(&self) -> &'static str {
        match self {
            PasskeyRefusal::NotEnabled => "passkeys are off",
            PasskeyRefusal::BadName(_) => "bad name",
            PasskeyRefusal::NameTaken => "name taken",
            PasskeyRefusal::UnknownCeremony => "unknown or used ceremony",
            PasskeyRefusal::Expired => "ceremony expired",
            PasskeyRefusal::NotVerified => "the answer did not verify",
            PasskeyRefusal::UnknownPasskey => "unknown passkey",
            PasskeyRefusal::OtherAccount => "a passkey of another account",
            PasskeyRefusal::CounterWentBackwards => {
                "the signature counter went backwards (cloned authenticator?)"
            }
            PasskeyRefusal::AlreadyRegistered => "passkey already registered",
            PasskeyRefusal::AccountDisabled => "account disabled",
            PasskeyRefusal::SecondFactorFirst => "second factor not passed",
        }
    }
}

/// A result that may be refused with a [`PasskeyRefusal`].
pub type Refusable<T> = std::result::Result<T, PasskeyRefusal>;

impl Gatehouse {
    /// The WebAuthn relying party: its id is the host of
    /// `GATEHOUSE_PUBLIC_URL` and its one origin that URL.
    fn webauthn(&self) -> Result<Webauthn> {
        let origin = Url::parse(&self.settings.issuer())
            .map_err(|e| Error::Internal(format!("the public URL as an origin: {e}")))?;
        let rp_id = origin
            .host_str()
            .ok_or_else(|| Error::Internal("the public URL has no host".to_owned()))?
            .to_owned();
        WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| {
                b.rp_name(&self.settings.service_name)
                    .timeout(CEREMONY_LIFETIME.to_std())
                    .build()
            })
            .map_err(|e| Error::Internal(format!("the WebAuthn relying party: {e}")))
    }

    /// Stores a ceremony's state; returns the id the browser is given.
    async fn store_ceremony(
        &self,
        kind: Kind,
        account_id: Option<i64>,
        state: &impl serde::Serialize,
    ) -> Result<String> {
        let id = SecretToken::generate()?;
        let now = self.clock.now();
        let state = serde_json::to_string(state)
            .map_err(|e| Error::Internal(format!("a passkey ceremony's state: {e}")))?;
        passkeys::start_ceremony(
            &mut *self.write().await?,
            &id.hash(),
            &CeremonyRow {
                kind: kind.as_str().to_owned(),
                account_id,
                state,
                expires_at: now.plus(CEREMONY_LIFETIME),
            },
            now,
        )
        .await?;
        Ok(id.encode())
    }

    /// Takes the ceremony the browser names (it is gone once taken): its
    /// account and state, or why not.
    async fn take_ceremony<S: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        ceremony: &str,
    ) -> Result<Refusable<(Option<i64>, S)>> {
        let Some(id) = SecretToken::parse(ceremony.trim()) else {
            return Ok(Err(PasskeyRefusal::UnknownCeremony));
        };
        let taken =
            passkeys::take_ceremony(&mut *self.write().await?, &id.hash(), kind.as_str()).await?;
        let Some(row) = taken else {
            return Ok(Err(PasskeyRefusal::UnknownCeremony));
        };
        if self.clock.now() >= row.expires_at {
            return Ok(Err(PasskeyRefusal::Expired));
        }
        let state = serde_json::from_str(&row.state)
            .map_err(|e| Error::Internal(format!("a stored passkey ceremony: {e}")))?;
        Ok(Ok((row.account_id, state)))
    }

    /// Records a refused ceremony (`account` when known), and passes the
    /// refusal on.
    async fn refused<T>(
        &self,
        refusal: PasskeyRefusal,
        account: Option<&AccountRecord>,
        caller: &Caller,
        what: &str,
    ) -> Result<Refusable<T>> {
        let mut event = self.event(AuditEvent::PasskeyRefused);
        event.account_id = account.map(|a| a.id);
        event.username = account.map(|a| a.username.to_string());
        event.client_ip = Some(caller.ip.clone());
        event.user_agent = caller.user_agent.clone();
        event.detail = Some(format!("{what}: {}", refusal.audit_reason()));
        audit::record(&mut *self.write().await?, &event).await?;
        Ok(Err(refusal))
    }

    /// How many passkeys an account has (the console shows the number, never the keys).
    pub async fn passkey_count(&self, account_id: i64) -> Result<i64> {
        Ok(passkeys::count(&mut *self.read().await?, account_id).await?)
    }
}

/// A stored passkey as the library's value.
fn credential_of(row: &PasskeyRow) -> Result<Passkey> {
    serde_json::from_str(&row.credential)
        .map_err(|e| Error::Internal(format!("stored passkey {}: {e}", row.id)))
}

/// The library's error as a refusal: a counter that did not go forward is
/// told apart (a cloned authenticator), everything else did not verify.
fn refusal_of(error: &WebauthnError) -> PasskeyRefusal {
    match error {
        WebauthnError::CredentialPossibleCompromise => PasskeyRefusal::CounterWentBackwards,
        _ => PasskeyRefusal::NotVerified,
    }
}

/// When `at` was, as people read it, or "Never".
fn when_or_never(g: &Gatehouse, at: Option<Timestamp>) -> String {
    at.map_or_else(|| "Never".to_owned(), |t| g.settings.when(t))
}

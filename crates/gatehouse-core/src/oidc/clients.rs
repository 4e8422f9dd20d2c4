//! Registering applications (OpenID Connect clients): the operator's task
//! from the command line; administrators see the list in the console. A
//! confidential client's secret is shown once and only its hash is kept.
//!
//! A client is read from the database on every request, so one registered,
//! changed or disabled on any node takes effect on every node at once.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oidc::client::{ClientId, ClientKind, ClientUri, client_name};
use gatehouse_domain::oidc::jose::SigningAlg;
use gatehouse_domain::{SecretToken, Span};
use gatehouse_store::oidc::clients::{self, ClientRow};

use crate::{Action, Actor, Error, Gatehouse, Result};

pub use gatehouse_store::oidc::clients::ClientRow as Client;

/// What the operator gives to register a client.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Its name, as people and the operator see it.
    pub name: String,
    /// Where people are sent back to after signing in (at least one).
    pub redirect_uris: Vec<String>,
    /// A browser or native application without a secret (PKCE required).
    pub public: bool,
    /// Where people may be sent after signing out.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are posted.
    pub backchannel_logout_uri: Option<String>,
    /// RS256 (the default) or ES256.
    pub signing_alg: Option<String>,
    /// Ask people to consent (for an application that is not the trust's own).
    pub consent: bool,
}

/// A registered client, and its secret (shown once) if it is confidential.
#[derive(Debug)]
pub struct Registered {
    /// The client.
    pub client: ClientRow,
    /// Its secret: shown now, never again.
    pub secret: Option<SecretToken>,
}

/// Wrong secrets from one address for one client that are tolerated in
/// [`FAILURE_WINDOW`] before every attempt from that address is refused
/// until the window ends.
pub const FAILURES_ALLOWED: i64 = 10;

/// The window wrong secrets are counted in.
pub const FAILURE_WINDOW: Span = Span::minutes(15);

fn checked_uris(uris: &[String], what: &str) -> std::result::Result<Vec<String>, String> {
    uris.iter()
        .map(|u| {
            ClientUri::parse(u)
                .map(|u| u.as_str().to_owned())
                .map_err(|e| format!("{what}: {e}"))
        })
        .collect()
}

impl Gatehouse {
    /// Registers a client; `Ok(Err(problems))` lists what is wrong with the
    /// input, and nothing is stored.
    pub async fn register_client(
        &self,
        actor: &Actor,
        input: &NewClient,
    ) -> Result<std::result::Result<Registered, Vec<String>>> {
        self.authorise(actor, Action::ManageClients, None).await?;
        let mut problems = Vec::new();
        let name = client_name(&input.name).map_err(|e| problems.push(e)).ok();
        if input.redirect_uris.is_empty() {
            problems.push("give at least one redirect URI".to_owned());
        }
        let redirects = checked_uris(&input.redirect_uris, "redirect URI")
            .map_err(|e| problems.push(e))
            .ok();
        let post_logout =
            checked_uris(&input.post_logout_redirect_uris, "post-logout redirect URI")
                .map_err(|e| problems.push(e))
                .ok();
        let backchannel = match &input.backchannel_logout_uri {
            None => Some(None),
            Some(u) => ClientUri::parse(u)
                .map(|u| Some(u.as_str().to_owned()))
                .map_err(|e| problems.push(format!("back-channel logout URI: {e}")))
                .ok(),
        };
        let alg = match input.signing_alg.as_deref() {
            None => Some(SigningAlg::Rs256),
            Some(a) => SigningAlg::parse(a).map_err(|e| problems.push(e)).ok(),
        };
        let (Some(name), Some(redirects), Some(post_logout), Some(backchannel), Some(alg), true) = (
            name,
            redirects,
            post_logout,
            backchannel,
            alg,
            problems.is_empty(),
        ) else {
            return Ok(Err(problems));
        };
        let now = self.clock.now();
        let secret = if input.public {
            None
        } else {
            Some(SecretToken::generate()?)
        };
        let client = ClientRow {
            id: ClientId::generate()?,
            name,
            kind: if input.public {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            },
            secret_hash: secret.as_ref().map(SecretToken::hash),
            redirect_uris: redirects.join("\n"),
            post_logout_redirect_uris: post_logout.join("\n"),
            backchannel_logout_uri: backchannel,
            signing_alg: alg,
            consent: i64::from(input.consent),
            created_at: now,
            updated_at: now,
            disabled_at: None,
        };
        let mut tx = self.begin().await?;
        clients::insert(&mut tx, &client).await?;
        let detail = format!(
            "{} \"{}\" ({}), redirect URIs: {}",
            client.id,
            client.name,
            client.kind.as_str(),
            redirects.join(" ")
        );
        gatehouse_store::audit::record(
            &mut tx,
            &self.client_event(AuditEvent::ClientAdded, actor, detail),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(Registered { client, secret }))
    }

    fn client_event(
        &self,
        event: AuditEvent,
        actor: &Actor,
        detail: String,
    ) -> gatehouse_store::AuditRecord {
        let mut record = self.event(event);
        record.actor = Some(actor.audit_name());
        record.client_ip = actor.client_ip().map(str::to_owned);
        record.detail = Some(detail);
        record
    }

    /// Whether a browser at `origin` may call the token, userinfo, JWKS and
    /// revocation endpoints: it is the origin of a redirect address an
    /// enabled public client registered.
    pub async fn cors_origin_allowed(&self, origin: &str) -> Result<bool> {
        let uris = clients::public_redirect_uris(&mut *self.read().await?).await?;
        Ok(uris
            .iter()
            .filter_map(|u| ClientUri::parse(u).ok())
            .any(|u| u.origin() == origin))
    }

    /// Every registered client.
    pub async fn clients(&self, actor: &Actor) -> Result<Vec<ClientRow>> {
        self.authorise(actor, Action::ViewClients, None).await?;
        Ok(clients::list(&mut *self.read().await?).await?)
    }

    /// One client ([`Error::NoSuchClient`] if there is none).
    pub async fn client(&self, actor: &Actor, id: &str) -> Result<ClientRow> {
        self.authorise(actor, Action::ViewClients, None).await?;
        let id = ClientId::parse(id).ok_or(Error::NoSuchClient)?;
        clients::by_id(&mut *self.read().await?, &id)
            .await?
            .ok_or(Error::NoSuchClient)
    }

    /// Replaces a confidential client's secret; the old one stops working
    /// at once. Returns the new secret, to show once.
    pub async fn rotate_client_secret(&self, actor: &Actor, id: &str) -> Result<SecretToken> {
        self.authorise(actor, Action::ManageClients, None).await?;
        let client = self.client(actor, id).await?;
        if client.kind == ClientKind::Public {
            return Err(Error::Refused(
                "a public client has no secret to rotate".to_owned(),
            ));
        }
        let secret = SecretToken::generate()?;
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        clients::set_secret(&mut tx, &client.id, &secret.hash(), now).await?;
        let detail = format!("{} \"{}\"", client.id, client.name);
        gatehouse_store::audit::record(
            &mut tx,
            &self.client_event(AuditEvent::ClientSecretRotated, actor, detail),
        )
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// Disables a client (it can no longer sign anyone in, redeem or
    /// refresh, and its tokens stop answering) or enables it again; false if
    /// it already was so.
    pub async fn set_client_disabled(
        &self,
        actor: &Actor,
        id: &str,
        disabled: bool,
    ) -> Result<bool> {
        self.authorise(actor, Action::ManageClients, None).await?;
        let client = self.client(actor, id).await?;
        let now = self.clock.now();
        let mut tx = self.begin().await?;
        let changed = clients::set_disabled(&mut tx, &client.id, disabled, now).await?;
        if changed {
            let event = if disabled {
                AuditEvent::ClientDisabled
            } else {
                AuditEvent::ClientEnabled
            };
            let detail = format!("{} \"{}\"", client.id, client.name);
            gatehouse_store::audit::record(&mut tx, &self.client_event(event, actor, detail))
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Removes a client and everything issued to it.
    pub async fn remove_client(&self, actor: &Actor, id: &str) -> Result<ClientRow> {
        self.authorise(actor, Action::ManageClients, None).await?;
        let client = self.client(actor, id).await?;
        let mut tx = self.begin().await?;
        clients::remove(&mut tx, &client.id).await?;
        let detail = format!("{} \"{}\"", client.id, client.name);
        gatehouse_store::audit::record(
            &mut tx,
            &self.client_event(AuditEvent::ClientRemoved, actor, detail),
        )
        .await?;
        tx.commit().await?;
        Ok(client)
    }
}

//! Gatehouse as an OpenID Connect provider: applications sign people in
//! through it, with its one lockout, one recovery and one audit trail.
//!
//! - [`authorize`]: the authorization endpoint, and the wait while the
//!   person signs in, passes their second factor or consents.
//! - [`tokens`]: the token endpoint, revocation, userinfo.
//! - [`logout`]: sign-out requests from applications, and back-channel
//!   logout notices to them.
//! - [`clients`]: registering applications.
//! - [`signing`]: the keys that sign ID tokens, and the JWKS.
//!
//! Every endpoint's address is built from `GATEHOUSE_PUBLIC_URL` (see
//! [`Paths`]), never from a request.

pub mod authorize;
pub mod clients;
pub mod logout;
pub mod signing;
pub mod tokens;

use gatehouse_domain::Role;
use gatehouse_domain::oidc::jose::SigningAlg;
use gatehouse_domain::oidc::scope::{ACR_VALUES, CLAIMS_SUPPORTED, Scopes};
use gatehouse_store::{SessionRecord, accounts};

use crate::{Gatehouse, Result};

/// Where each endpoint is, below the public URL.
pub struct Paths;

impl Paths {
    /// Discovery (OpenID Connect Discovery 1.0 §4).
    pub const DISCOVERY: &'static str = "/.well-known/openid-configuration";
    /// The authorization endpoint.
    pub const AUTHORIZE: &'static str = "/oauth2/authorize";
    /// Where a request resumes after the person signs in.
    pub const AUTHORIZE_CONTINUE: &'static str = "/oauth2/authorize/continue";
    /// The token endpoint.
    pub const TOKEN: &'static str = "/oauth2/token";
    /// The userinfo endpoint.
    pub const USERINFO: &'static str = "/oauth2/userinfo";
    /// The JWK set.
    pub const JWKS: &'static str = "/oauth2/jwks";
    /// Token revocation (RFC 7009).
    pub const REVOKE: &'static str = "/oauth2/revoke";
    /// The end-session endpoint (RP-Initiated Logout 1.0).
    pub const END_SESSION: &'static str = "/oauth2/logout";
    /// nginx `auth_request` (forward auth).
    pub const FORWARD_AUTH: &'static str = "/auth/verify";
}

/// What forward auth tells the application behind nginx about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedPerson {
    /// The username.
    pub username: String,
    /// First and last name.
    pub name: String,
    /// Email address on record.
    pub email: String,
    /// Employer name.
    pub employer: String,
    /// Role: staff, helpdesk or admin.
    pub roles: String,
}

/// The account with this id, if it exists and is not disabled: the only
/// accounts applications may sign in, refresh for, or read claims of.
pub(crate) async fn enabled_account(
    conn: &mut gatehouse_store::Connection,
    id: i64,
) -> Result<Option<gatehouse_store::AccountRecord>> {
    Ok(accounts::by_id(conn, id)
        .await?
        .filter(|a| a.disabled_at.is_none()))
}

impl Gatehouse {
    /// The discovery document.
    pub fn discovery(&self) -> serde_json::Value {
        let s = &self.settings;
        serde_json::json!({
            "issuer": s.issuer(),
            "authorization_endpoint": s.link(Paths::AUTHORIZE),
            "token_endpoint": s.link(Paths::TOKEN),
            "userinfo_endpoint": s.link(Paths::USERINFO),
            "jwks_uri": s.link(Paths::JWKS),
            "revocation_endpoint": s.link(Paths::REVOKE),
            "end_session_endpoint": s.link(Paths::END_SESSION),
            "scopes_supported": Scopes::SUPPORTED,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": SigningAlg::ALL.map(SigningAlg::as_str),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": CLAIMS_SUPPORTED,
            "acr_values_supported": ACR_VALUES,
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
            "frontchannel_logout_supported": false,
            "ui_locales_supported": ["en-GB"],
        })
    }

    /// Who a session belongs to, for forward auth: a signed-in, enabled
    /// account (helpdesk and admin past their second factor).
    pub async fn forwarded_person(
        &self,
        session: Option<&SessionRecord>,
    ) -> Result<Option<ForwardedPerson>> {
        let Some((session, id)) = session.and_then(|s| s.account_id.map(|id| (s, id))) else {
            return Ok(None);
        };
        let Some(account) = enabled_account(&mut *self.read().await?, id).await? else {
            return Ok(None);
        };
        if account.role != Role::Staff && session.second_factor_at.is_none() {
            return Ok(None);
        }
        Ok(Some(ForwardedPerson {
            username: account.username.to_string(),
            name: format!("{} {}", account.first_name, account.last_name),
            email: account.email.to_string(),
            employer: account.employer_name.clone(),
            roles: account.role.as_str().to_owned(),
        }))
    }
}

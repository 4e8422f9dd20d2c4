//! `gatehouse admin client …` and `gatehouse admin rotate-signing-key`: the
//! operator registers the applications that sign people in through
//! Gatehouse, and rotates the keys that sign their ID tokens.

use std::process::ExitCode;

use clap::Subcommand;
use gatehouse_core::oidc::clients::{Client, NewClient};
use gatehouse_core::{Actor, Gatehouse};
use serde_json::json;

use crate::failure::Failure;
use crate::terminal::{printable, refuse};

/// Who the audit log names for these tasks.
const ACTOR: &Actor = &Actor::COMMAND_LINE;

/// Managing applications (OpenID Connect clients).
#[derive(Debug, Subcommand)]
pub enum ClientTask {
    /// Register an application; prints its client id and (for a
    /// confidential client) its secret, once.
    Add {
        /// Its name, as people see it.
        name: String,
        /// Where people are sent back after signing in (https, or http to
        /// a loopback address); give it again for each.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A browser or native application without a secret (PKCE required).
        #[arg(long)]
        public: bool,
        /// Where people may be sent after signing out; give it again for each.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Where logout tokens are posted when a person's session ends.
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// RS256 (the default) or ES256.
        #[arg(long)]
        signing_alg: Option<String>,
        /// Ask people to consent (for an application that is not the trust's own).
        #[arg(long)]
        consent: bool,
    },
    /// List the registered applications.
    List,
    /// Show one application.
    Show {
        /// Its client id.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Replace a confidential client's secret (the old one stops at once).
    RotateSecret {
        /// Its client id.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Disable an application: it can no longer sign anyone in, and its tokens stop working.
    Disable {
        /// Its client id.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Enable a disabled application again.
    Enable {
        /// Its client id.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Remove an application and everything issued to it.
    Remove {
        /// Its client id.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

fn client_json(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.id.as_str(),
        "name": c.name,
        "kind": c.kind.as_str(),
        "redirect_uris": c.redirect_uris(),
        "post_logout_redirect_uris": c.post_logout_redirect_uris(),
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "signing_alg": c.signing_alg.as_str(),
        "consent": c.asks_consent(),
        "created_at": c.created_at.rfc3339(),
        "disabled_at": c.disabled_at.map(|t| t.rfc3339()),
    })
}

fn print_client(g: &Gatehouse, c: &Client) {
    let rows = [
        ("Client id", c.id.to_string()),
        ("Name", c.name.clone()),
        ("Kind", c.kind.as_str().to_owned()),
        ("Redirect URIs", c.redirect_uris().join(" ")),
        ("After logout", c.post_logout_redirect_uris().join(" ")),
        (
            "Logout notices",
            c.backchannel_logout_uri
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
        ),
        ("ID tokens", c.signing_alg.as_str().to_owned()),
        (
            "Consent",
            if c.asks_consent() {
                "asked"
            } else {
                "not asked (the trust's own)"
            }
            .to_owned(),
        ),
        ("Registered", g.settings().when(c.created_at)),
        (
            "State",
            c.disabled_at.map_or_else(
                || "enabled".to_owned(),
                |at| format!("disabled at {}", g.settings().when(at)),
            ),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<16} {}", printable(&v));
    }
}

/// Runs one client task.
pub async fn run(g: &Gatehouse, task: ClientTask, json: bool) -> Result<ExitCode, Failure> {
    let failed = Failure::service("the task could not be done");
    match task {
        ClientTask::Add {
            name,
            redirect_uris,
            public,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            signing_alg,
            consent,
        } => {
            let input = NewClient {
                name,
                redirect_uris,
                public,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                signing_alg,
                consent,
            };
            match g.register_client(ACTOR, &input).await.map_err(failed)? {
                Ok(registered) if json => {
                    let mut out = client_json(&registered.client);
                    if let (Some(fields), Some(secret)) = (out.as_object_mut(), &registered.secret)
                    {
                        fields.insert("client_secret".to_owned(), json!(secret.encode()));
                    }
                    println!("{out}");
                }
                Ok(registered) => {
                    println!("Registered {}.", printable(&registered.client.name));
                    println!("Client id:     {}", registered.client.id);
                    if let Some(secret) = &registered.secret {
                        println!("Client secret: {}", secret.encode());
                        println!(
                            "Store the secret in the application's configuration now: it is not shown again (gatehouse admin client rotate-secret makes a new one)."
                        );
                    }
                    println!(
                        "Discovery:     {}",
                        g.settings().link(gatehouse_core::oidc::Paths::DISCOVERY)
                    );
                }
                Err(problems) => {
                    let message = format!("Not registered: {}.", problems.join("; "));
                    return Ok(refuse(json, 2, &message));
                }
            }
        }
        ClientTask::List => {
            let clients = g.clients(ACTOR).await.map_err(failed)?;
            if json {
                let all: Vec<serde_json::Value> = clients.iter().map(client_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else if clients.is_empty() {
                println!("No applications are registered.");
            } else {
                for c in &clients {
                    println!(
                        "{:<24} {:<13} {:<9} {}",
                        c.id,
                        c.kind.as_str(),
                        if c.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "enabled"
                        },
                        printable(&c.name)
                    );
                }
            }
        }
        ClientTask::Show { client_id } => {
            let c = g.client(ACTOR, &client_id).await.map_err(failed)?;
            if json {
                println!("{}", client_json(&c));
            } else {
                print_client(g, &c);
            }
        }
        ClientTask::RotateSecret { client_id } => {
            let secret = g
                .rotate_client_secret(ACTOR, &client_id)
                .await
                .map_err(failed)?;
            if json {
                println!(
                    "{}",
                    json!({ "client_id": client_id, "client_secret": secret.encode() })
                );
            } else {
                println!("New client secret: {}", secret.encode());
                println!("The old secret no longer works. It is not shown again.");
            }
        }
        ClientTask::Disable { client_id } => set_disabled(g, json, &client_id, true).await?,
        ClientTask::Enable { client_id } => set_disabled(g, json, &client_id, false).await?,
        ClientTask::Remove { client_id } => {
            let c = g.remove_client(ACTOR, &client_id).await.map_err(failed)?;
            if json {
                println!("{}", json!({ "client_id": c.id.as_str(), "removed": true }));
            } else {
                println!(
                    "{} ({}) is removed, with everything issued to it.",
                    printable(&c.name),
                    c.id
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_disabled(g: &Gatehouse, json: bool, id: &str, disable: bool) -> Result<(), Failure> {
    let changed = g
        .set_client_disabled(ACTOR, id, disable)
        .await
        .map_err(Failure::service("the task could not be done"))?;
    let state = if disable { "disabled" } else { "enabled" };
    if json {
        println!(
            "{}",
            json!({ "client_id": id, "state": state, "changed": changed })
        );
    } else if changed {
        println!("{id} is now {state}.");
    } else {
        println!("{id} was already {state}.");
    }
    Ok(())
}

/// `gatehouse admin rotate-signing-key`.
pub async fn rotate_signing_keys(
    g: &Gatehouse,
    json: bool,
    immediately: bool,
) -> Result<ExitCode, Failure> {
    let made = g
        .rotate_signing_keys(ACTOR, immediately)
        .await
        .map_err(Failure::service("the signing keys could not be rotated"))?;
    if json {
        let keys: Vec<serde_json::Value> = made
            .iter()
            .map(|(alg, kid)| json!({ "alg": alg.as_str(), "kid": kid }))
            .collect();
        println!("{}", json!({ "keys": keys, "immediately": immediately }));
    } else {
        for (alg, kid) in &made {
            println!("New {alg} signing key {kid}.");
        }
        if immediately {
            println!(
                "The new keys sign from now, and the old ones are withdrawn: tokens they signed are no longer accepted, and people may have to sign in to applications again."
            );
        } else {
            println!(
                "The new keys are published now and sign from {} minutes from now, once applications have fetched them; the old ones stay published until the tokens they signed have expired.",
                gatehouse_core::oidc::signing::PUBLISH_AHEAD.seconds() / 60
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

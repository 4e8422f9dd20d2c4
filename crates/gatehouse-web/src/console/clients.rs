//! The registered applications (OpenID Connect clients), for
//! administrators: what signs people in through this service. Registering
//! and changing them is the operator's, on the command line.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;
use crate::handlers::layout;
use crate::session::Visitor;
use crate::views::{ClientLine, ConsoleClientsPage, render};

use super::{WebResult, admin_only};

/// `GET /console/clients` (admin).
pub async fn clients(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let p = or_redirect!(admin_only(&state, &visitor, "/console/clients"));
    let g = &state.gatehouse;
    let clients = g
        .clients(&p.actor())
        .await?
        .iter()
        .map(|c| ClientLine {
            name: c.name.clone(),
            id: c.id.to_string(),
            kind: c.kind.as_str().to_owned(),
            redirect_uris: c.redirect_uris().join(" "),
            logout_notices: c.backchannel_logout_uri.is_some(),
            consent: c.asks_consent(),
            state: c.disabled_at.map_or_else(
                || "Enabled".to_owned(),
                |at| format!("Disabled at {}", g.settings().when(at)),
            ),
        })
        .collect();
    let page = ConsoleClientsPage {
        l: layout(&state, Some(&p.session), false),
        clients,
        discovery: g.settings().link(gatehouse_core::oidc::Paths::DISCOVERY),
    };
    Ok(render(StatusCode::OK, &page))
}

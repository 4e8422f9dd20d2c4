//! Gatehouse's web pages: thin axum handlers that parse a request, call a
//! service in `gatehouse-core`, and render an askama page.
//!
//! Everything every response needs is applied in one place
//! ([`middleware`]): a request reference for error pages and logs, security
//! headers, the visitor's session. Errors become pages in one place
//! ([`error`]).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use gatehouse_core::Gatehouse;

mod assets;
mod console;
mod context;
mod csrf;
pub mod error;
mod handlers;
mod middleware;
mod session;
mod views;

/// Everything a handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The services.
    pub gatehouse: Gatehouse,
    /// Whether to trust `X-Forwarded-For` from the directly connected peer
    /// (only behind a reverse proxy that sets it).
    pub trust_forwarded_for: bool,
    /// The largest staff file the console takes, in bytes (a 2,000,000-row
    /// file is about 170 MiB; bigger files go through `gatehouse import`).
    pub upload_limit: usize,
}

/// The largest form body accepted: every form here is a few short fields.
const FORM_LIMIT: usize = 16 * 1024;

/// The application's routes, with every layer applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(handlers::home))
        .route("/login", get(handlers::login_page).post(handlers::login))
        .route(
            "/recover",
            get(handlers::recover_page).post(handlers::recover),
        )
        .route("/recover/confirmation", get(handlers::confirmation))
        .route("/reset/{token}", get(handlers::open_reset_link))
        .route("/reset", get(handlers::reset_page).post(handlers::reset))
        .route("/account", get(handlers::account))
        .route("/console", get(console::home))
        .route(
            "/console/second-factor",
            get(console::second_factor_page).post(console::second_factor),
        )
        .route("/console/accounts/{username}", get(console::account))
        .route(
            "/console/accounts/{username}/{action}",
            post(console::account_action),
        )
        .route("/console/mail", get(console::mail))
        .route("/console/audit", get(console::audit))
        .route(
            "/console/import",
            get(console::import_form)
                .post(console::import_preview)
                .layer(DefaultBodyLimit::max(state.upload_limit)),
        )
        .route("/console/import/{id}", post(console::import_apply))
        .route("/logout", post(handlers::logout))
        .route("/logged-out", get(handlers::logged_out))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/assets/{*path}", get(assets::serve))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::load_session,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

//! Gatehouse's web pages: thin axum handlers that parse a request, call a
//! service in `gatehouse-core`, and render an askama page.
//!
//! Everything every response needs is applied in one place
//! ([`middleware`]): a request reference for error pages and logs, security
//! headers, the visitor's session. Errors become pages in one place
//! ([`error`]).

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
mod metrics;
mod middleware;
mod oidc;
mod own_account;
mod passkeys;
mod session;
mod views;

pub use metrics::{metrics_router, serve_metrics};

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
    /// How long a client may take to send a request's headers, and again a
    /// form's body (`GATEHOUSE_HEADER_TIMEOUT`). Without a limit a client that
    /// sends them a byte at a time holds a connection for ever (slowloris);
    /// hyper enforces the header limit only when given a timer, which
    /// `axum::serve` does not give, and has no body limit at all.
    pub header_timeout: std::time::Duration,
    /// How long the handling of one request may take in all
    /// (`GATEHOUSE_REQUEST_TIMEOUT`) before it is abandoned with a 503: the
    /// database can stop answering in the middle of a statement, and neither
    /// sqlx nor the connection wait (`GATEHOUSE_DATABASE_TIMEOUT`) bounds
    /// that. See [`middleware::deadline`].
    pub request_timeout: std::time::Duration,
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
        .route("/account", get(own_account::account))
        .route(
            "/account/password",
            get(own_account::password_page).post(own_account::change_password),
        )
        .route("/account/sessions", get(own_account::sessions))
        .route("/account/sessions/end", post(own_account::end_session))
        .route(
            "/account/sessions/end-others",
            post(own_account::end_other_sessions),
        )
        .route(
            "/account/applications/sign-out",
            post(own_account::sign_out_of_application),
        )
        .route("/account/activity", get(own_account::activity))
        .route("/account/passkeys", get(passkeys::page))
        .route(
            "/account/passkeys/options",
            post(passkeys::register_options),
        )
        .route("/account/passkeys/add", post(passkeys::register))
        .route("/account/passkeys/remove", post(passkeys::remove))
        .route("/login/passkey/options", post(passkeys::sign_in_options))
        .route("/login/passkey", post(passkeys::sign_in))
        .route("/reset/passkey/options", post(passkeys::reset_options))
        .route("/reset/passkey", post(passkeys::reset))
        .route(
            "/console/second-factor/passkey/options",
            post(passkeys::second_factor_options),
        )
        .route(
            "/console/second-factor/passkey",
            post(passkeys::second_factor),
        )
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
        .route("/console/clients", get(console::clients))
        .route(
            "/console/import",
            get(console::import_form)
                .post(console::import_preview)
                .layer(DefaultBodyLimit::max(state.upload_limit)),
        )
        .route("/console/import/{id}", post(console::import_apply))
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route(
            "/oauth2/authorize",
            get(oidc::authorize).post(oidc::authorize),
        )
        .route(
            "/oauth2/authorize/continue",
            get(oidc::continue_authorization),
        )
        .route("/oauth2/consent", post(oidc::consent))
        .route("/oauth2/token", post(oidc::token).options(oidc::preflight))
        .route(
            "/oauth2/userinfo",
            get(oidc::userinfo)
                .post(oidc::userinfo)
                .options(oidc::preflight),
        )
        .route("/oauth2/jwks", get(oidc::jwks).options(oidc::preflight))
        .route(
            "/oauth2/revoke",
            post(oidc::revoke).options(oidc::preflight),
        )
        .route(
            "/oauth2/logout",
            get(oidc::end_session).post(oidc::end_session),
        )
        .route("/oauth2/logout/confirm", post(oidc::end_session_confirmed))
        .route("/auth/verify", get(oidc::verify))
        .route("/logout", post(handlers::logout))
        .route("/logged-out", get(handlers::logged_out))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/assets/{*path}", get(assets::serve))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn(middleware::rejections_as_pages))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::load_session,
        ))
        // Outside the session's load (a database read that can hang too),
        // inside the request's reference (shown on the page) and the
        // security headers (which the 503 page needs as much as any).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::deadline,
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

/// How long open connections get to finish at shutdown.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// requests finish (for at most 10 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::Service as _;

    let header_timeout = state.header_timeout;
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                app.clone().call(request)
            },
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away or times out is not an error of ours.
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}

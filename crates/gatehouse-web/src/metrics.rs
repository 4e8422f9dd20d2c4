//! The metrics listener (`GATEHOUSE_METRICS_LISTEN`): `/metrics` in the
//! OpenMetrics text format, on an address of its own so that it is never
//! reachable where the public pages are (the public router has no
//! `/metrics` and answers it 404).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_core::Gatehouse;

/// `GET /metrics`: every metric, with the database's part read now.
async fn metrics(State(gatehouse): State<Gatehouse>) -> Response {
    let text = gatehouse.metrics_text().await;
    (
        [(header::CONTENT_TYPE, gatehouse_core::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

/// The metrics listener's routes: `/metrics` and nothing else.
pub fn metrics_router(gatehouse: Gatehouse) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(gatehouse)
}

/// Serves the metrics on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    gatehouse: Gatehouse,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(gatehouse))
        .with_graceful_shutdown(shutdown)
        .await
}

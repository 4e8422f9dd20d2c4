//! The audit log page and its CSV download.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use gatehouse_core::audit_log::{AuditQuery, audit_csv};

use crate::AppState;
use crate::handlers::layout;
use crate::session::Visitor;
use crate::views::{ConsoleAuditPage, render};

use super::{WebResult, privileged};

/// Events shown on the audit page; a download holds up to [`AUDIT_EXPORT_LIMIT`].
const AUDIT_PAGE_LIMIT: u32 = 200;
/// Events in one CSV download.
const AUDIT_EXPORT_LIMIT: u32 = 100_000;

/// The audit page's query: the filters, and whether to download.
#[derive(serde::Deserialize, Default)]
pub struct AuditParams {
    #[serde(flatten)]
    query: AuditQuery,
    #[serde(default)]
    format: String,
}

/// `GET /console/audit`: the audit log with filters; `format=csv` downloads it.
pub async fn audit(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    Query(params): Query<AuditParams>,
) -> WebResult {
    let p = or_redirect!(privileged(&state, &visitor, "/console/audit"));
    let csv = params.format == "csv";
    let limit = if csv {
        AUDIT_EXPORT_LIMIT
    } else {
        AUDIT_PAGE_LIMIT
    };
    let (lines, errors) = match state.gatehouse.audit_log(&params.query, limit).await? {
        Ok(lines) => (lines, Vec::new()),
        Err(errors) => (Vec::new(), errors),
    };
    if csv && errors.is_empty() {
        let body = audit_csv(&lines)?;
        let mut response = (StatusCode::OK, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"gatehouse-audit.csv\""),
        );
        return Ok(response);
    }
    let q = &params.query;
    let csv_query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("username", &q.username)
        .append_pair("event", &q.event)
        .append_pair("actor", &q.actor)
        .append_pair("from", &q.from)
        .append_pair("to", &q.to)
        .append_pair("format", "csv")
        .finish();
    let page = ConsoleAuditPage {
        l: layout(&state, Some(&p.session), !errors.is_empty()),
        query: params.query,
        errors,
        lines,
        limit: AUDIT_PAGE_LIMIT as usize,
        csv_query,
    };
    Ok(render(StatusCode::OK, &page))
}

//! Forward auth for nginx's `auth_request`: applications that cannot speak
//! OpenID Connect, served under Gatehouse's own origin, learn who is
//! signed in from response headers (docs/applications.md has the nginx
//! configuration).

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::WebError;
use crate::session::Visitor;

/// The header nginx passes the original request's address in.
const ORIGINAL_URI: &str = "x-original-uri";

/// Where a person goes back to after signing in: a path on this origin only
/// (`/payslips/2026?month=11`), never another site (no open redirect).
pub fn local_path(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control() || c == '\\');
    ok.then_some(path)
}

/// `GET /auth/verify`: 200 with the person in `X-Gatehouse-*` headers for a
/// valid session, else 401 with the login page (and the way back) in
/// `Location` for nginx to send the browser to.
pub async fn verify(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    match state
        .gatehouse
        .forwarded_person(visitor.session.as_ref())
        .await?
    {
        Some(person) => {
            let mut response = StatusCode::OK.into_response();
            let h = response.headers_mut();
            for (name, value) in [
                ("x-gatehouse-username", person.username),
                ("x-gatehouse-name", person.name),
                ("x-gatehouse-email", person.email),
                ("x-gatehouse-employer", person.employer),
                ("x-gatehouse-roles", person.roles),
            ] {
                // UTF-8 as it is (names may have accents); imported names
                // and addresses hold no line breaks or control characters.
                if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                    h.insert(name, v);
                }
            }
            Ok(response)
        }
        None => {
            let back = headers
                .get(ORIGINAL_URI)
                .and_then(|v| v.to_str().ok())
                .and_then(local_path);
            let login = match back {
                Some(path) => {
                    let encoded: String =
                        url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                    state
                        .gatehouse
                        .settings()
                        .link(&format!("/login?next={encoded}"))
                }
                None => state.gatehouse.settings().link("/login"),
            };
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            if let Ok(v) = HeaderValue::from_str(&login) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_origin_are_returned_to() {
        for ok in ["/payslips/", "/payslips/2026?month=11&x=1", "/"] {
            assert_eq!(local_path(ok), Some(ok));
        }
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "/a\r\nLocation: x",
            "",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }
}

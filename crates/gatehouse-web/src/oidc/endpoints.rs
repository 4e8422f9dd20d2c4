//! What applications call from their servers (and public clients from the
//! browser): discovery, the JWKS, the token endpoint, userinfo and
//! revocation. JSON in and out; CORS only for the origins public clients
//! registered.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gatehouse_core::oidc::tokens::{ClientCredentials, TokenError, TokenRequest};

use crate::AppState;
use crate::error::WebError;
use crate::session::Visitor;

type WebResult = Result<Response, WebError>;

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn cacheable(mut response: Response, seconds: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={seconds}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

/// Adds CORS headers when the request's `Origin` is one a public client
/// registered a redirect address at.
async fn with_cors(state: &AppState, headers: &HeaderMap, mut response: Response) -> WebResult {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(response);
    };
    if state.gatehouse.cors_origin_allowed(origin).await? {
        let h = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate"),
        );
    }
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(response)
}

/// `OPTIONS` on the endpoints a browser may call: the CORS preflight.
pub async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> WebResult {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    with_cors(&state, &headers, response).await
}

/// `GET /.well-known/openid-configuration`
pub async fn discovery(State(state): State<AppState>) -> Response {
    cacheable(json(StatusCode::OK, &state.gatehouse.discovery()), 300)
}

/// `GET /oauth2/jwks`
pub async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> WebResult {
    let keys = state.gatehouse.jwks().await?;
    let seconds = gatehouse_core::oidc::signing::JWKS_CACHE.seconds();
    with_cors(
        &state,
        &headers,
        cacheable(json(StatusCode::OK, &keys), seconds),
    )
    .await
}

/// A form's fields, each once: a parameter given twice is refused
/// (RFC 6749 §3.2).
type Fields = std::collections::BTreeMap<String, String>;

fn form_fields(body: &[u8]) -> Result<Fields, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| format!("the form: {e}"))?;
    let mut fields = std::collections::BTreeMap::new();
    for (k, v) in pairs {
        if fields.contains_key(&k) {
            return Err(format!("{k} was given more than once"));
        }
        if !v.is_empty() {
            fields.insert(k, v);
        }
    }
    Ok(fields)
}

/// The client's credentials: HTTP Basic (`client_secret_basic`, each part
/// form-encoded, RFC 6749 §2.3.1) or the form (`client_secret_post`).
fn credentials(headers: &HeaderMap, fields: &Fields) -> (ClientCredentials, bool) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|text| {
            let (id, secret) = text.split_once(':')?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let form_id = fields.get("client_id").cloned();
    let form_secret = fields.get("client_secret").cloned();
    match basic {
        Some((id, secret)) => {
            let two_methods = form_secret.is_some() || form_id.as_ref().is_some_and(|f| *f != id);
            (
                ClientCredentials {
                    id: Some(id),
                    secret: Some(secret),
                    two_methods,
                },
                true,
            )
        }
        None => (
            ClientCredentials {
                id: form_id,
                secret: form_secret,
                two_methods: false,
            },
            false,
        ),
    }
}

fn token_error(e: &TokenError, basic: bool) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json(
        status,
        &serde_json::json!({ "error": e.error, "error_description": e.description }),
    );
    if status == StatusCode::UNAUTHORIZED {
        let scheme = if basic {
            "Basic realm=\"gatehouse\""
        } else {
            "Bearer"
        };
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
    }
    response
}

/// A client's form (each field once) and its credentials, and whether they
/// came as HTTP Basic; or the OAuth error answering a form that cannot be read.
fn client_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Fields, ClientCredentials, bool), Box<Response>> {
    let fields = form_fields(body).map_err(|why| {
        let e = TokenError {
            status: 400,
            error: "invalid_request",
            description: why,
        };
        Box::new(token_error(&e, false))
    })?;
    let (creds, basic) = credentials(headers, &fields);
    Ok((fields, creds, basic))
}

/// `POST /oauth2/token`
pub async fn token(
    State(state): State<AppState>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    headers: HeaderMap,
    body: Bytes,
) -> WebResult {
    let ip = visitor.caller();
    let (fields, creds, basic) = match client_form(&headers, &body) {
        Ok(parts) => parts,
        Err(refused) => return with_cors(&state, &headers, *refused).await,
    };
    let request = TokenRequest {
        grant_type: fields.get("grant_type").cloned(),
        code: fields.get("code").cloned(),
        redirect_uri: fields.get("redirect_uri").cloned(),
        code_verifier: fields.get("code_verifier").cloned(),
        refresh_token: fields.get("refresh_token").cloned(),
        scope: fields.get("scope").cloned(),
    };
    let response = match state.gatehouse.token(&creds, &request, &ip).await? {
        Ok(issued) => json(
            StatusCode::OK,
            &serde_json::to_value(&issued).map_err(|e| WebError::Internal(e.to_string()))?,
        ),
        Err(e) => token_error(&e, basic),
    };
    let mut response = with_cors(&state, &headers, response).await?;
    // RFC 6749 §5.1: tokens are never cached.
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `POST /oauth2/revoke` (RFC 7009): 200 whether or not the token was one.
pub async fn revoke(
    State(state): State<AppState>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    headers: HeaderMap,
    body: Bytes,
) -> WebResult {
    let ip = visitor.caller();
    let (fields, creds, basic) = match client_form(&headers, &body) {
        Ok(parts) => parts,
        Err(refused) => return with_cors(&state, &headers, *refused).await,
    };
    let response = match state
        .gatehouse
        .revoke_token(&creds, fields.get("token").map(String::as_str), &ip)
        .await?
    {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => token_error(&e, basic),
    };
    with_cors(&state, &headers, response).await
}

/// `GET` or `POST /oauth2/userinfo`: the token in `Authorization: Bearer`,
/// or a POST form's `access_token` (RFC 6750 §2).
pub async fn userinfo(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> WebResult {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    // Never from a GET's query: addresses end up in logs.
    let token = match bearer {
        Some(t) => Some(t),
        None if method == axum::http::Method::POST => form_fields(&body)
            .ok()
            .and_then(|f| f.get("access_token").cloned()),
        None => None,
    };
    let claims = match &token {
        Some(t) => state.gatehouse.userinfo(t).await?,
        None => None,
    };
    let response = match claims {
        Some(claims) => json(StatusCode::OK, &claims),
        None => {
            let challenge = if token.is_some() {
                "Bearer error=\"invalid_token\", error_description=\"the access token is not valid\""
            } else {
                "Bearer"
            };
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({ "error": "invalid_token" }),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            r
        }
    };
    with_cors(&state, &headers, response).await
}

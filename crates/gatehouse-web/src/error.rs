//! Every way a request can fail, mapped to a status and a page in one place.
//!
//! Each page carries the request's reference, which is also in the log line
//! for the request, so the helpdesk can find what happened. Nothing internal
//! (a database message, a stack trace, a path) is ever shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::context;
use crate::views::{Layout, MessagePage, render};

/// A request that could not be answered normally.
#[derive(Debug)]
pub enum WebError {
    /// No such page (404).
    NotFound,
    /// The method is not used on this page (405).
    MethodNotAllowed,
    /// A form failed the cross-site checks or its session expired (403).
    Forbidden,
    /// The signed-in person's role does not allow this page (403).
    NotAllowed,
    /// Core refused a console member this action on this account (403,
    /// already audited): a helpdesk member acting on a privileged account.
    NotPermitted,
    /// The request could not be read (400).
    BadRequest(String),
    /// The body did not arrive in time (408).
    RequestTimeout,
    /// Too many requests from this client (429).
    TooManyRequests,
    /// Too many unknown reset links opened from this client (429).
    TooManyLinkGuesses,
    /// Password hashing is at capacity (503 with Retry-After).
    Busy,
    /// The database cannot be reached or is too busy (503 with Retry-After).
    Unavailable(String),
    /// The request was abandoned after `GATEHOUSE_REQUEST_TIMEOUT` (503 with
    /// Retry-After). Unlike [`WebError::Unavailable`] it cannot say nothing
    /// was saved: the handler may have committed before it hung.
    TakingTooLong,
    /// Something failed inside (500).
    Internal(String),
}

impl From<gatehouse_core::Error> for WebError {
    fn from(e: gatehouse_core::Error) -> Self {
        match e {
            gatehouse_core::Error::Busy => WebError::Busy,
            gatehouse_core::Error::NotPermitted => WebError::NotPermitted,
            gatehouse_core::Error::NoSuchAccount | gatehouse_core::Error::NoSuchClient => {
                WebError::NotFound
            }
            gatehouse_core::Error::Refused(why) => WebError::BadRequest(why),
            gatehouse_core::Error::Store(e) if e.is_unavailable() => {
                WebError::Unavailable(e.to_string())
            }
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl WebError {
    /// The page for this error.
    pub fn into_page(self) -> Response {
        let ctx = context::current();
        let reference = ctx.as_ref().map(|c| c.reference.clone());
        let service = ctx
            .as_ref()
            .map_or_else(|| "Gatehouse".to_owned(), |c| c.service.to_string());
        let (status, heading, paragraphs, action): (StatusCode, &str, Vec<String>, _) = match &self {
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                vec![
                    "If you typed the web address, check it is correct.".to_owned(),
                    "If you pasted the web address, check you copied the entire address.".to_owned(),
                ],
                Some(("/", "Go to the home page")),
            ),
            WebError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "This page cannot be used like that",
                vec!["Use the links and buttons on the pages to move around the service.".to_owned()],
                Some(("/", "Go to the home page")),
            ),
            WebError::Forbidden => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                vec![
                    "For your security, forms stop working after a while, and cannot be sent from other websites.".to_owned(),
                    "Go back, refresh the page, and try again. Your browser must allow cookies from this site.".to_owned(),
                ],
                None,
            ),
            WebError::NotAllowed => (
                StatusCode::FORBIDDEN,
                "You do not have access to this page",
                vec!["This page is for the helpdesk and administrators. If you need access, contact the System Administrator.".to_owned()],
                Some(("/account", "Go to My account")),
            ),
            WebError::NotPermitted => (
                StatusCode::FORBIDDEN,
                "You do not have permission to do that",
                vec![
                    "The helpdesk can act on staff accounts only. Helpdesk and admin accounts are looked after by administrators.".to_owned(),
                    "This attempt has been recorded.".to_owned(),
                ],
                Some(("/console", "Go to the helpdesk console")),
            ),
            WebError::BadRequest(why) => {
                tracing::info!(reason = %why, "bad request");
                (
                    StatusCode::BAD_REQUEST,
                    "Sorry, we could not read that",
                    vec!["Go back and try again.".to_owned()],
                    None,
                )
            }
            WebError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "Sorry, that took too long",
                vec![
                    "Your browser took too long to send the form, so nothing was done.".to_owned(),
                    "Go back and try again.".to_owned(),
                ],
                None,
            ),
            WebError::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                vec![
                    "There have been too many requests from your network in the last hour.".to_owned(),
                    "Try again later, or contact the System Administrator.".to_owned(),
                ],
                None,
            ),
            WebError::TooManyLinkGuesses => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many links that are not valid",
                vec![
                    "Too many password reset links that are not valid have been opened from your network in the last hour, so for everyone's security no reset link can be opened from it for now.".to_owned(),
                    "Try again in an hour. If you copied the link from your email, copy all of it.".to_owned(),
                ],
                None,
            ),
            WebError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is busy",
                vec!["Too many people are logging in at the moment. Wait a few seconds and try again.".to_owned()],
                None,
            ),
            WebError::Unavailable(detail) => {
                tracing::error!(reference = ?reference, error = %detail, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sorry, the service is unavailable",
                    vec![
                        "Nothing you sent has been saved. Wait a minute and try again.".to_owned(),
                    ],
                    None,
                )
            }
            // Logged where it happens (the deadline knows the route); no
            // audit event, as the database is what stopped answering.
            WebError::TakingTooLong => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Sorry, the service is taking too long to answer",
                vec![
                    "Try again in a few minutes.".to_owned(),
                    "If you were changing something, check whether it was done before you do it again.".to_owned(),
                ],
                None,
            ),
            WebError::Internal(detail) => {
                tracing::error!(reference = ?reference, error = %detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sorry, there is a problem with the service",
                    vec!["Try again later.".to_owned()],
                    None,
                )
            }
        };
        let page = MessagePage {
            l: Layout::plain(&service),
            heading: heading.to_owned(),
            paragraphs,
            reference,
            action: action.map(|(h, t)| (h.to_owned(), t.to_owned())),
        };
        let mut response = render(status, &page);
        match self {
            WebError::Busy => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // The counts look back one hour, so after an hour the address is
            // sure to be under its cap again.
            WebError::TooManyRequests | WebError::TooManyLinkGuesses => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
            }
            WebError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            // "A few minutes", as the page says: a database that stopped
            // answering mid-statement is rarely back in seconds.
            WebError::TakingTooLong => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("120"));
            }
            _ => {}
        }
        response
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.into_page()
    }
}

//! What every part of handling a request may need to know about it: its
//! reference (shown on error pages, written in logs) and the service's name.

use std::sync::Arc;

use gatehouse_domain::SecretToken;

/// The request being handled.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// A reference a person can read out to the helpdesk: `7F3K-9QX2`.
    pub reference: String,
    /// The service's name, for pages rendered far from the handler (errors).
    pub service: Arc<str>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Runs `f` with `context` as the current request.
pub async fn scope<F: std::future::Future>(context: RequestContext, f: F) -> F::Output {
    CURRENT.scope(context, f).await
}

/// The current request's context, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// A new reference: 8 characters from an alphabet without look-alikes
/// (no 0/O, 1/I/L), grouped in fours for reading aloud.
pub fn new_reference() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let bytes = SecretToken::generate()
        .map(|t| t.hash())
        .map(|h| *h.as_bytes())
        .unwrap_or([0; 32]);
    let chars: String = bytes[..8]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

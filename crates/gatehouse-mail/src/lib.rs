//! Mail for Gatehouse: where emails go (a folder of `.eml` files, or an SMTP
//! server through lettre) and the outbox worker that delivers them.
//!
//! Emails are never sent inside a web request. The request writes the email
//! to the outbox in the same transaction as the reset link it carries; the
//! [`OutboxWorker`] delivers it, retrying with backoff while the mail server
//! is down, and records the result for the helpdesk. So a person's request
//! is never lost to an SMTP outage, and nobody can time or fail the
//! recovery form to learn whether an account exists.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use gatehouse_domain::mail::{AfterFailure, after_failure, still_sendable};
use gatehouse_domain::{Clock, Span};
use gatehouse_store::{Delivery, DeliveryResult, OutboxEmail, Result as StoreResult, Store};
use lettre::message::{MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

pub use lettre::message::Mailbox;

/// Where emails go, as configured by `GATEHOUSE_MAIL_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailUrl {
    /// `file://DIR`: each email is written to DIR as an `.eml` file.
    File(PathBuf),
    /// `smtp://` or `smtps://`.
    Smtp {
        /// Server host name.
        host: String,
        /// Server port.
        port: u16,
        /// How the connection is protected.
        security: SmtpSecurity,
        /// User name and password, if the server needs them.
        credentials: Option<(String, String)>,
    },
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS is required; a server that does not offer it is refused.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://…?tls=none`: plain text, for a relay on the same machine or network only.
    None,
}

impl MailUrl {
    /// Parses a mail URL. The error says what is wrong, without repeating any password.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(dir) = text.strip_prefix("file://") {
            if dir.is_empty() {
                return Err("file:// needs a folder, e.g. file://gatehouse-data/outbox".to_owned());
            }
            return Ok(MailUrl::File(PathBuf::from(dir)));
        }
        let url = url::Url::parse(text).map_err(|e| {
            format!("expected file://DIR, smtp://HOST:PORT or smtps://HOST:PORT ({e})")
        })?;
        let mut security = match url.scheme() {
            "smtp" => SmtpSecurity::StartTls,
            "smtps" => SmtpSecurity::Implicit,
            other => {
                return Err(format!(
                    "unknown scheme {other:?}: expected file://, smtp:// or smtps://"
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the mail URL has no host")?
            .to_owned();
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::Implicit => 465,
            _ => 587,
        });
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "none") if security == SmtpSecurity::StartTls => {
                    security = SmtpSecurity::None;
                }
                ("tls", "required" | "starttls") if security == SmtpSecurity::StartTls => {}
                _ => {
                    return Err(format!(
                        "unknown option {key}={value}: the only option is tls=none (smtp:// only)"
                    ));
                }
            }
        }
        let credentials = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode(s).ok_or("the user name or password is not valid percent-encoding")
            };
            Some((
                decode(url.username())?,
                decode(url.password().unwrap_or_default())?,
            ))
        };
        Ok(MailUrl::Smtp {
            host,
            port,
            security,
            credentials,
        })
    }

    /// A description for start-up messages, without the password.
    pub fn describe(&self) -> String {
        match self {
            MailUrl::File(dir) => format!("files in {}", dir.display()),
            MailUrl::Smtp {
                host,
                port,
                security,
                ..
            } => format!(
                "SMTP server {host}:{port} ({})",
                match security {
                    SmtpSecurity::StartTls => "STARTTLS required",
                    SmtpSecurity::Implicit => "TLS",
                    SmtpSecurity::None => "no TLS",
                }
            ),
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Why a try to send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// What went wrong, for the helpdesk (never containing the email body).
    pub message: String,
    /// Whether the server refused for good (a 5xx reply), so retrying is pointless.
    pub permanent: bool,
}

/// A configured way of sending email.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    /// The longest one try may take, start to finish.
    timeout: Duration,
}

#[derive(Clone)]
enum Transport {
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
    /// The transport in use (its connection pool), and how to make a new
    /// one: after a try times out, its connection may be left half-way
    /// through a conversation, and lettre would put it back in the pool
    /// (and wait on it again, for ever, at the next try). So a timeout
    /// replaces the whole pool.
    Smtp(
        Arc<std::sync::Mutex<AsyncSmtpTransport<Tokio1Executor>>>,
        AsyncSmtpTransportBuilder,
    ),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.transport {
            Transport::File(_, dir) => format!("file {}", dir.display()),
            Transport::Smtp(..) => "smtp".to_owned(),
        };
        f.debug_struct("Mailer").field("transport", &kind).finish()
    }
}

/// SMTP connections a worker keeps open and emails it sends at once.
///
/// lettre writes a message's closing `.` as a write of its own, so with
/// Nagle's algorithm (lettre sets no `TCP_NODELAY`) that write waits for the
/// server's delayed ACK of the body: about 40 ms per email on one connection
/// against any server, so one connection carries about 25 emails a second.
/// With 8 connections the outbox drained 180 a second, with 32 about 700
/// (BENCHMARKS.md); a mail relay takes 32 connections from one client
/// easily.
pub const CONNECTIONS: usize = 32;

impl Mailer {
    /// Builds a mailer for `url`, sending from `from` (`Name <address>`),
    /// giving up on a silent mail server after `timeout`.
    pub fn new(url: &MailUrl, from: &str, timeout: Duration) -> Result<Self, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("not a sender such as 'Gatehouse <no-reply@example.org>': {e}"))?;
        let transport = match url {
            MailUrl::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))?;
                Transport::File(AsyncFileTransport::new(dir), dir.clone())
            }
            MailUrl::Smtp {
                host,
                port,
                security,
                credentials,
            } => {
                let tls = |host: &str| {
                    TlsParameters::new(host.to_owned())
                        .map_err(|e| format!("TLS setup failed: {e}"))
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(*port)
                    .timeout(Some(timeout))
                    .pool_config(
                        PoolConfig::new()
                            .max_size(CONNECTIONS as u32)
                            .idle_timeout(Duration::from_secs(60)),
                    )
                    .tls(match security {
                        SmtpSecurity::StartTls => Tls::Required(tls(host)?),
                        SmtpSecurity::Implicit => Tls::Wrapper(tls(host)?),
                        SmtpSecurity::None => Tls::None,
                    });
                if let Some((user, password)) = credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Transport::Smtp(
                    Arc::new(std::sync::Mutex::new(builder.clone().build())),
                    builder,
                )
            }
        };
        Ok(Self {
            transport,
            from,
            timeout,
        })
    }

    /// Sends one email; on success, the server's reply (or the file written).
    pub async fn send(&self, email: &OutboxEmail) -> Result<String, SendFailure> {
        let message = self.build(email)?;
        match &self.transport {
            Transport::File(t, dir) => t
                .send(message)
                .await
                .map(|id| format!("written to {}/{id}.eml", dir.display()))
                .map_err(|e| SendFailure {
                    message: format!("could not write the email file: {e}"),
                    permanent: false,
                }),
            // lettre's timeout covers connecting, not a server that takes
            // the message and then never answers: without this bound a
            // hanging server held the try past the worker's lease, and
            // another node would send the email again
            // (faults.rs::a_mail_server_that_hangs_is_given_up_on_after_the_timeout_and_retried).
            Transport::Smtp(current, builder) => {
                let t = current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let sent = tokio::time::timeout(self.timeout, t.send(message)).await;
                if sent.is_err() {
                    *current
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        builder.clone().build();
                }
                match sent {
                    Ok(Ok(response)) => Ok(format!(
                        "{} {}",
                        response.code(),
                        response.message().collect::<Vec<_>>().join(" ")
                    )),
                    Ok(Err(e)) => Err(SendFailure {
                        message: describe_smtp_error(&e),
                        permanent: e.is_permanent(),
                    }),
                    Err(_) => Err(SendFailure {
                        message: format!(
                            "the mail server did not answer within {} s",
                            self.timeout.as_secs()
                        ),
                        permanent: false,
                    }),
                }
            }
        }
    }

    fn build(&self, email: &OutboxEmail) -> Result<Message, SendFailure> {
        let permanent = |message: String| SendFailure {
            message,
            permanent: true,
        };
        let to: Mailbox = email
            .recipient
            .parse()
            .map_err(|e| permanent(format!("the recipient address is not valid: {e}")))?;
        // The subject is fixed text; newlines are removed anyway, so nothing
        // could ever add a header through it.
        let subject: String = email.subject.lines().collect::<Vec<_>>().join(" ");
        // The same Message-ID on every try of one outbox email: if a crash
        // makes a second node send it again, mail systems see one message.
        let message_id = format!(
            "<gatehouse.{}.{}@{}>",
            email.id,
            email.created_at.unix(),
            self.from.email.domain()
        );
        Message::builder()
            .message_id(Some(message_id))
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(header::MIME_VERSION_1_0)
            .multipart(MultiPart::alternative_plain_html(
                normalise_line_endings(&email.text_body),
                normalise_line_endings(&email.html_body),
            ))
            .map_err(|e| permanent(format!("the email could not be built: {e}")))
    }
}

/// Every line ending as CRLF, and no bare CR or LF: SMTP's dot-stuffing is
/// only reliable on CRLF-terminated lines (lettre RUSTSEC-2026-0561, fixed
/// only in a lettre release newer than the registry here has).
pub fn normalise_line_endings(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

fn describe_smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let text = e.to_string();
    if e.is_permanent() {
        format!("the mail server refused the email: {text}")
    } else if e.is_timeout() {
        format!("the mail server did not answer in time: {text}")
    } else if e.is_transient() {
        format!("the mail server asked to try later: {text}")
    } else {
        format!("could not reach the mail server: {text}")
    }
}

/// Delivers the outbox.
pub struct OutboxWorker {
    store: Arc<dyn Store>,
    mailer: Mailer,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    lease: Span,
    poll: Duration,
    concurrency: usize,
}

/// The result of `future` when there is one; otherwise never (a branch of
/// `select!` with nothing under way).
async fn until_done<T>(future: Option<&mut BoxFuture<'_, T>>) -> T {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Keeps the first failure of a delivery run.
fn note(
    failure: &mut Option<gatehouse_store::StoreError>,
    done: Result<(), gatehouse_store::StoreError>,
) {
    if let Err(e) = done {
        failure.get_or_insert(e);
    }
}

impl OutboxWorker {
    /// A worker delivering `store`'s outbox through `mailer`.
    pub fn new(
        store: Arc<dyn Store>,
        mailer: Mailer,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            mailer,
            clock,
            wake,
            // Longer than the SMTP timeout, so a slow send is never taken by a second worker.
            lease: Span::from_seconds(60),
            poll: Duration::from_secs(1),
            concurrency: CONNECTIONS,
        }
    }

    /// How long a claimed email is held before another worker may take it;
    /// must be longer than the mail timeout.
    pub fn with_lease(mut self, lease: Span) -> Self {
        self.lease = lease;
        self
    }

    /// How often the outbox is checked when nothing wakes the worker.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Delivers everything due now; returns how many emails were tried.
    ///
    /// Up to `concurrency` sends are in flight at once, and a connection
    /// that frees is given the next email without waiting for the others:
    /// claiming in batches and waiting for each batch to finish held every
    /// connection for the batch's slowest send (one mail server that stalls
    /// an answer for its full timeout held up every email after it). An
    /// email is claimed only when a connection is free for it, so its lease
    /// starts as its send does.
    ///
    /// The database work batches itself: one claim at a time takes every
    /// connection that freed while the last claim ran, and one write at a
    /// time records every try that ended while the last write ran. Under
    /// load a write serves many emails; at rest each email gets its own at
    /// once. A try is recorded as soon as the writer is free, which keeps
    /// short the time between the mail server's "accepted" and its record
    /// (the window in which a crash makes another node send it again).
    pub async fn run_once(&self) -> Result<usize, gatehouse_store::StoreError> {
        let mut sending = futures_util::stream::FuturesUnordered::new();
        let mut ended: Vec<Delivery> = Vec::new();
        let mut claim: Option<BoxFuture<'_, StoreResult<Vec<OutboxEmail>>>> = None;
        let mut record: Option<BoxFuture<'_, StoreResult<()>>> = None;
        let mut tried = 0;
        let mut drained = false;
        let mut failure = None;
        loop {
            // After a failure nothing more is claimed, but the sends under
            // way finish and are recorded: an email the mail server took is
            // recorded as sent.
            if claim.is_none()
                && !drained
                && failure.is_none()
                && sending.len() < self.concurrency
                && ended.len() < self.concurrency
            {
                let now = self.clock.now();
                let free = u32::try_from(self.concurrency - sending.len()).unwrap_or(u32::MAX);
                claim = Some(self.store.claim_outbox(now, now.plus(self.lease), free));
            }
            if record.is_none() && !ended.is_empty() {
                let deliveries = std::mem::take(&mut ended);
                record = Some(Box::pin(async move {
                    self.store
                        .record_deliveries(&deliveries, self.clock.now())
                        .await
                }));
            }
            if claim.is_none() && record.is_none() && sending.is_empty() {
                break;
            }
            tokio::select! {
                claimed = until_done(claim.as_mut()) => {
                    claim = None;
                    match claimed {
                        Ok(batch) if batch.is_empty() => drained = true,
                        Ok(batch) => {
                            tried += batch.len();
                            sending.extend(batch.into_iter().map(|email| async move {
                                let result = self.deliver(&email).await;
                                Delivery { email, result }
                            }));
                        }
                        Err(e) => note(&mut failure, Err(e)),
                    }
                }
                recorded = until_done(record.as_mut()) => {
                    record = None;
                    note(&mut failure, recorded);
                }
                Some(delivery) = sending.next() => ended.push(delivery),
                // A run lasts as long as its slowest send (up to the mail
                // timeout when a relay stalls): emails queued meanwhile, on
                // this node (which wakes the worker) or another (which only
                // the poll finds), are claimed within it.
                () = self.wake.notified(), if drained => drained = false,
                () = tokio::time::sleep(self.poll), if drained => drained = false,
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(tried),
        }
    }

    async fn deliver(&self, email: &OutboxEmail) -> DeliveryResult {
        let now = self.clock.now();
        if !still_sendable(email.send_by, now) {
            return DeliveryResult::Expired(
                "its links expired before the mail server could take it".to_owned(),
            );
        }
        match self.mailer.send(email).await {
            Ok(reply) => {
                tracing::info!(email = email.id, kind = %email.kind, "email sent");
                DeliveryResult::Sent(reply)
            }
            Err(failure) => {
                let now = self.clock.now();
                tracing::warn!(email = email.id, attempts = email.attempts, error = %failure.message, "email not sent");
                match after_failure(
                    email.attempts,
                    now,
                    email.created_at,
                    email.send_by,
                    failure.permanent,
                ) {
                    AfterFailure::RetryAt(at) => DeliveryResult::Retry {
                        error: failure.message,
                        at,
                    },
                    AfterFailure::Expired => DeliveryResult::Expired(format!(
                        "its links would expire before the next try; last error: {}",
                        failure.message
                    )),
                    AfterFailure::GiveUp => DeliveryResult::Failed(failure.message),
                }
            }
        }
    }

    /// Delivers until `shutdown` resolves, waking when told or every poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.run_once().await {
                tracing::error!(error = %e, "outbox delivery failed; retrying shortly");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_urls_parse_into_transports() {
        assert_eq!(
            MailUrl::parse("file://gatehouse-data/outbox"),
            Ok(MailUrl::File(PathBuf::from("gatehouse-data/outbox")))
        );
        assert_eq!(
            MailUrl::parse("smtp://mail.example.org:2525"),
            Ok(MailUrl::Smtp {
                host: "mail.example.org".to_owned(),
                port: 2525,
                security: SmtpSecurity::StartTls,
                credentials: None
            })
        );
        assert_eq!(
            MailUrl::parse("smtp://127.0.0.1:25?tls=none"),
            Ok(MailUrl::Smtp {
                host: "127.0.0.1".to_owned(),
                port: 25,
                security: SmtpSecurity::None,
                credentials: None
            })
        );
        assert_eq!(
            MailUrl::parse("smtps://user%40org:p%40ss@mail.example.org"),
            Ok(MailUrl::Smtp {
                host: "mail.example.org".to_owned(),
                port: 465,
                security: SmtpSecurity::Implicit,
                credentials: Some(("user@org".to_owned(), "p@ss".to_owned()))
            })
        );
    }

    #[test]
    fn bad_mail_urls_say_why_without_the_password() {
        for bad in [
            "",
            "file://",
            "http://mail.example.org",
            "smtp://",
            "smtps://h?tls=none",
            "smtp://h?verify=no",
        ] {
            assert!(MailUrl::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let e = MailUrl::parse("ftp://user:hunter2@h").expect_err("refused");
        assert!(!e.contains("hunter2"));
    }

    #[test]
    fn line_endings_become_crlf_with_no_bare_cr_or_lf() {
        let n = normalise_line_endings("a\nb\r\nc\rd\n.\n");
        assert_eq!(n, "a\r\nb\r\nc\r\nd\r\n.\r\n");
        assert!(!n.replace("\r\n", "").contains(['\r', '\n']));
    }
}

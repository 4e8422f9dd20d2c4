//! Mail for Gatehouse: where emails go (a folder of `.eml` files, or an SMTP
//! server through lettre), and how one email is sent there.
//!
//! Emails are never sent inside a web request. The request writes the email
//! to the outbox in the same transaction as the reset link it carries; the
//! outbox worker (in `gatehouse-core`) hands each to a [`Mailer`], retrying
//! with backoff while the mail server is down, and records the result for
//! the helpdesk. So a person's request is never lost to an SMTP outage, and
//! nobody can time or fail the recovery form to learn whether an account
//! exists.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::Timestamp;
use lettre::message::{MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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
    pub async fn send(&self, email: &Outgoing<'_>) -> Result<String, SendFailure> {
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

    fn build(&self, email: &Outgoing<'_>) -> Result<Message, SendFailure> {
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
                normalise_line_endings(email.text_body),
                normalise_line_endings(email.html_body),
            ))
            .map_err(|e| permanent(format!("the email could not be built: {e}")))
    }
}

/// One email to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Its number in the outbox: with `created_at`, its `Message-ID`, the
    /// same on every try, so that mail systems see one message if a crash
    /// makes a second node send it again.
    pub id: i64,
    /// When it was queued.
    pub created_at: Timestamp,
    /// The address on record.
    pub recipient: &'a str,
    /// Subject (fixed text).
    pub subject: &'a str,
    /// Plain-text body.
    pub text_body: &'a str,
    /// HTML body.
    pub html_body: &'a str,
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

//! A real SMTP server, in process, for tests and benchmarks.
//!
//! It speaks enough of RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT, pipelined or not), keeps every message
//! it accepts, and can be told to refuse mail (4xx or 5xx) or to stop
//! listening and start again on the same port, so tests can take the mail
//! server down and bring it back. It never offers STARTTLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How the sink answers the end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SinkMode {
    /// 250: accepted.
    Accept = 0,
    /// 451: try again later.
    TempFail = 1,
    /// 554: refused for good.
    PermFail = 2,
    /// Takes the message and never answers (a mail server that hangs).
    Hang = 3,
    /// Takes the message and holds its answer while the mode stays `Hold`;
    /// then answers as the new mode says. A client that goes away first
    /// has had no answer: the message is not kept.
    Hold = 4,
}

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent, after dot-unstuffing, with CRLF line endings.
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header with this name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }

    /// The header block.
    pub fn headers(&self) -> &str {
        self.data.split("\r\n\r\n").next().unwrap_or_default()
    }

    /// The message body, with quoted-printable soft line breaks and escapes decoded.
    pub fn decoded_body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        decode_quoted_printable(body)
    }
}

/// Decodes quoted-printable text (RFC 2045): `=\r\n` joins lines, `=XX` is a byte.
pub fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Shared {
    mail: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    mode: AtomicU8,
    mode_changed: Notify,
    held: AtomicU64,
    connections: AtomicU64,
    /// A recipient whose messages are held as in [`SinkMode::Hold`].
    hold_for: Mutex<Option<String>>,
}

impl Shared {
    /// Whether a message to `to` waits for its answer now.
    fn holds(&self, to: &[String]) -> bool {
        self.mode.load(Ordering::SeqCst) == SinkMode::Hold as u8
            || self
                .hold_for
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|r| to.contains(r))
    }
}

/// The in-process SMTP server.
pub struct SmtpSink {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpSink {
    /// Starts a sink on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mail: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            mode: AtomicU8::new(SinkMode::Accept as u8),
            mode_changed: Notify::new(),
            held: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            hold_for: Mutex::new(None),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            shared,
            addr,
            task: Mutex::new(Some(task)),
        })
    }

    /// The port it listens on (kept across [`SmtpSink::stop`] and [`SmtpSink::resume`]).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The mail URL for Gatehouse: plain SMTP on loopback.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port())
    }

    /// Stops listening and drops every open connection: the mail server is "down".
    pub fn stop(&self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) -> std::io::Result<()> {
        self.stop();
        // The old listener closes asynchronously once its task is aborted.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let task = tokio::spawn(serve(listener, self.shared.clone()));
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(())
    }

    /// Sets how the end of each message is answered.
    pub fn set_mode(&self, mode: SinkMode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
        self.shared.mode_changed.notify_waiters();
    }

    /// Holds the answer to every message to `recipient` (as
    /// [`SinkMode::Hold`] does to all), whatever the mode, until called
    /// again with `None`.
    pub fn hold_mail_to(&self, recipient: Option<&str>) {
        *self
            .shared
            .hold_for
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = recipient.map(str::to_owned);
        self.shared.mode_changed.notify_waiters();
    }

    /// How many messages have been held so far.
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages have been held, or `timeout` passes.
    pub async fn wait_held(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let held = self.held();
            if held >= n || tokio::time::Instant::now() >= deadline {
                return held;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared
            .mail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many TCP connections have been accepted in all.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages have arrived, or `timeout` passes; returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let mail = self.messages();
            if mail.len() >= n || tokio::time::Instant::now() >= deadline {
                return mail;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        // Sessions live in this task's JoinSet, so stopping the sink drops them all.
        sessions.spawn(session(stream, shared.clone()));
        while sessions.try_join_next().is_some() {}
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 gatehouse-sink ESMTP ready\r\n")
        .await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-gatehouse-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") {
            b"250 gatehouse-sink\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&command[10..]);
            to.clear();
            b"250 2.1.0 Ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command[8..]));
            b"250 2.1.5 Ok\r\n"
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            if shared.holds(&to) {
                shared.held.fetch_add(1, Ordering::SeqCst);
                shared.arrived.notify_waiters();
                let mut scratch = [0u8; 512];
                loop {
                    let changed = shared.mode_changed.notified();
                    if !shared.holds(&to) {
                        break;
                    }
                    // The client's state first: one that has gone is
                    // never answered, even if the mode changed meanwhile.
                    tokio::select! {
                        biased;
                        read = tokio::io::AsyncReadExt::read(&mut lines, &mut scratch) => {
                            // Gone before any answer: the message was never accepted.
                            if read.map_or(true, |n| n == 0) {
                                return Ok(());
                            }
                        }
                        () = changed => {}
                    }
                }
            }
            match shared.mode.load(Ordering::SeqCst) {
                3 => {
                    // Hold the connection open, saying nothing, until the
                    // client gives up.
                    let mut rest = Vec::new();
                    let _ = tokio::io::AsyncReadExt::read_to_end(&mut lines, &mut rest).await;
                    return Ok(());
                }
                1 => b"451 4.3.0 Try again later\r\n",
                2 => b"554 5.7.1 Rejected\r\n",
                _ => {
                    let n = {
                        let mut mail = shared.mail.lock().unwrap_or_else(PoisonError::into_inner);
                        mail.push(ReceivedMail {
                            from: from.clone(),
                            to: std::mem::take(&mut to),
                            data,
                        });
                        mail.len()
                    };
                    shared.arrived.notify_waiters();
                    write
                        .write_all(format!("250 2.0.0 Ok: queued as {n}\r\n").as_bytes())
                        .await?;
                    continue;
                }
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            b"250 2.0.0 Ok\r\n"
        } else if upper == "NOOP" {
            b"250 2.0.0 Ok\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 5.5.2 Command not recognised\r\n"
        };
        write.write_all(reply).await?;
    }
}

fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.split_once('>'))
        .map_or(arg, |(a, _)| a);
    inner.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_decodes() {
        assert_eq!(
            decode_quoted_printable("https://x/reset/abc=\r\ndef =3D ok"),
            "https://x/reset/abcdef = ok"
        );
    }
}

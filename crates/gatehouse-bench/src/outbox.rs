//! Outbox drain: emails queued in the database, delivered by `gatehouse
//! worker` to a local SMTP sink, against the same mailer sending the same
//! emails straight from memory (no database) in the same run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::StreamExt as _;
use gatehouse_domain::{EmailAddress, Timestamp};
use gatehouse_mail::{MailUrl, Mailer, Outgoing};
use gatehouse_store::{NewEmail, OutboxEmail, PoolSettings, SqlStore, outbox};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// A mail server that accepts everything and counts messages.
pub struct Sink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Listens on a free loopback port.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(AtomicU64::new(0));
        let count = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, count.clone()));
            }
        });
        Ok(Self {
            port,
            received,
            task,
        })
    }

    /// Messages accepted so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until `count` messages have arrived (or `limit` passes).
    pub async fn wait_for(&self, count: u64, limit: Duration) -> Result<()> {
        let start = Instant::now();
        while self.received() < count {
            if start.elapsed() > limit {
                bail!("only {} of {count} emails arrived", self.received());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

async fn session(socket: tokio::net::TcpStream, received: Arc<AtomicU64>) {
    // As a real mail server does: each reply is one small write, and with
    // Nagle's algorithm on, the client's delayed ACK holds it ~40 ms.
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    if write.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut in_data = false;
    while let Ok(Some(line)) = lines.next_line().await {
        let reply: &[u8] = if in_data {
            if line != "." {
                continue;
            }
            in_data = false;
            received.fetch_add(1, Ordering::Relaxed);
            b"250 2.0.0 queued\r\n"
        } else {
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                }
                _ => b"250 OK\r\n",
            }
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn now() -> Timestamp {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Timestamp::from_unix(i64::try_from(unix).unwrap_or(i64::MAX))
}

fn email(i: usize) -> NewEmail {
    NewEmail {
        kind: "recovery",
        recipient: EmailAddress::from_trusted(format!("pat.{i}@nhs.net")),
        subject: "Your username and a link to reset your password".to_owned(),
        text_body: format!(
            "Your username is U{i:05}.\r\n\r\nReset your password: http://127.0.0.1/reset/{i:064}\r\n"
        ),
        html_body: format!("<p>Your username is U{i:05}.</p>"),
        account_id: None,
        recovery_request_id: None,
        send_by: None,
    }
}

/// What the drain measured.
pub struct Drain {
    /// Emails per second from the outbox through `gatehouse worker`.
    pub worker_rate: f64,
    /// Emails per second through the same mailer without the database.
    pub baseline_rate: f64,
}

/// Queues `count` emails in a fresh SQLite outbox, then times `gatehouse
/// worker` delivering them all to the sink; the baseline sends the same
/// emails through the same mailer with the worker's concurrency.
pub async fn drain(binary: &Path, dir: &Path, count: usize) -> Result<Drain> {
    let url = format!("sqlite://{}/outbox.db", dir.display());
    let store = SqlStore::open(&url, PoolSettings::default()).await?;
    let mut tx = store.begin().await?;
    for i in 0..count {
        outbox::enqueue(&mut tx, &email(i), now()).await?;
    }
    tx.commit().await?;
    store.close().await;

    let sink = Sink::start().await?;
    let mail_url = format!("smtp://127.0.0.1:{}?tls=none", sink.port);
    let start = Instant::now();
    let mut worker = Command::new(binary)
        .arg("worker")
        .env("GATEHOUSE_DATABASE_URL", &url)
        .env("GATEHOUSE_MAIL_URL", &mail_url)
        .env("GATEHOUSE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let waited = sink.wait_for(count as u64, Duration::from_secs(300)).await;
    let worker_seconds = start.elapsed().as_secs_f64();
    let _ = worker.kill();
    let _ = worker.wait();
    waited?;

    let sink = Sink::start().await?;
    let parsed = MailUrl::parse(&format!("smtp://127.0.0.1:{}?tls=none", sink.port))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mailer = Mailer::new(
        &parsed,
        "Gatehouse <no-reply@localhost>",
        Duration::from_secs(20),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let emails: Vec<OutboxEmail> = (0..count)
        .map(|i| {
            let e = email(i);
            OutboxEmail {
                id: i as i64 + 1,
                kind: e.kind.to_owned(),
                recipient: e.recipient,
                subject: e.subject,
                text_body: e.text_body,
                html_body: e.html_body,
                attempts: 1,
                created_at: now(),
                send_by: None,
                account_id: None,
            }
        })
        .collect();
    let start = Instant::now();
    let sent = futures_util::stream::iter(&emails)
        .map(|e| {
            let mailer = &mailer;
            async move {
                mailer
                    .send(&Outgoing {
                        id: e.id,
                        created_at: e.created_at,
                        recipient: e.recipient.as_str(),
                        subject: &e.subject,
                        text_body: &e.text_body,
                        html_body: &e.html_body,
                    })
                    .await
            }
        })
        .buffer_unordered(gatehouse_mail::CONNECTIONS)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    sink.wait_for(count as u64, Duration::from_secs(300))
        .await?;
    let baseline_seconds = start.elapsed().as_secs_f64();
    if sent != count {
        bail!("the baseline sent {sent} of {count}");
    }
    Ok(Drain {
        worker_rate: count as f64 / worker_seconds,
        baseline_rate: count as f64 / baseline_seconds,
    })
}

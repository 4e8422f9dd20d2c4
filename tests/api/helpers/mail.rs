//! What reaches the mail server and the outbox: waiting for it, and the
//! links in it.

use std::time::Duration;

use gatehouse_testkit::smtp::ReceivedMail;

use super::app::TestApp;
use super::db::count;

/// Every reset link to the service at `base` in an email's text part, in order.
pub fn reset_links(mail: &ReceivedMail, base: &str) -> Vec<String> {
    let body = mail.decoded_body();
    let text = body
        .split("Content-Type: text/html")
        .next()
        .unwrap_or(&body);
    let prefix = format!("{base}/reset/");
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&prefix) {
        let token: String = rest[at + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        links.push(format!("{prefix}{token}"));
        rest = &rest[at + prefix.len() + token.len()..];
    }
    links
}

/// Whether `mail` has a subject containing `subject`.
fn has_subject(mail: &ReceivedMail, subject: &str) -> bool {
    mail.header("Subject").is_some_and(|s| s.contains(subject))
}

impl TestApp {
    /// The recovery emails received so far (not the notices).
    pub fn recovery_emails(&self) -> Vec<ReceivedMail> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| has_subject(m, "username and password reset"))
            .collect()
    }

    /// The "password has been set" notices received so far.
    pub fn password_set_notices(&self) -> Vec<ReceivedMail> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| has_subject(m, "password has been set"))
            .collect()
    }

    /// Waits for the `n`-th recovery email (counting from 1) and returns it.
    pub async fn recovery_email(&self, n: usize) -> ReceivedMail {
        self.settle().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mail = self.recovery_emails();
            if mail.len() >= n {
                return mail[n - 1].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "recovery email {n} never came"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `n` emails in all to arrive at the SMTP server.
    pub async fn emails(&self, n: usize) -> Vec<ReceivedMail> {
        self.settle().await;
        let mail = self.smtp.wait_for(n, Duration::from_secs(10)).await;
        assert!(mail.len() >= n, "expected {n} emails, got {}", mail.len());
        mail
    }

    /// Waits until the newest email to `email` is as `ready` wants it, and
    /// returns it as the outbox then has it.
    pub async fn wait_for_email(
        &self,
        email: &str,
        ready: impl Fn(&gatehouse_store::OutboxSummary) -> bool,
    ) -> gatehouse_store::OutboxSummary {
        let newest = || async {
            self.db
                .emails_to(email, 1)
                .await
                .expect("list")
                .into_iter()
                .next()
        };
        for _ in 0..500 {
            if let Some(e) = newest().await
                && ready(&e)
            {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the email never got there: {:?}", newest().await);
    }

    /// Waits until the newest email to `email` has had at least `attempts` tries.
    pub async fn wait_for_attempts(
        &self,
        email: &str,
        attempts: i64,
    ) -> gatehouse_store::OutboxSummary {
        let started = self.wait_for_email(email, |e| e.attempts >= attempts).await;
        // The count goes up when a try starts, and the try's lease is cleared
        // when its end is recorded (a fixed pause here lost that race under load).
        let ended = format!(
            "SELECT COUNT(*) FROM outbox WHERE id = {} AND lease_until IS NULL",
            started.id
        );
        for _ in 0..500 {
            if count(&self.database_url(), &ended).await == 1 {
                return self.wait_for_email(email, |_| true).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the try never ended: {:?}",
            self.wait_for_email(email, |_| true).await
        );
    }

    /// Waits until the first try of the newest email to `email` has failed.
    pub async fn wait_for_a_failed_try(&self, email: &str) -> gatehouse_store::OutboxSummary {
        self.wait_for_email(email, |e| e.attempts >= 1 && e.last_error.is_some())
            .await
    }

    /// Waits until no email is left queued.
    pub async fn wait_until_sent(&self) {
        for _ in 0..500 {
            let depths = self.db.queue_depths().await.expect("depths");
            if depths.emails_queued == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("emails stayed queued");
    }
}

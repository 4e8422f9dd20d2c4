//! `GATEHOUSE_REQUEST_TIMEOUT`: which requests it bounds. A form whose
//! handling outlasts the bound is answered 503 at the bound; the console's
//! staff-file upload, whose time grows with the file and the uploader's
//! link, is not cut. (The bound firing on a database gone silent in the
//! middle of a statement is in crash.rs, on PostgreSQL.)

use std::time::{Duration, Instant};

use gatehouse_domain::Role;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{AMIR, Browser, STAFF, TestApp, audit_events, raw_status};

const BOUND: Duration = Duration::from_secs(3);
/// A bound of 3 s, just above the connection wait and the hash wait.
const SETTINGS: &[(&str, &str)] = &[
    ("GATEHOUSE_REQUEST_TIMEOUT", "3s"),
    ("GATEHOUSE_DATABASE_TIMEOUT", "1s"),
    ("GATEHOUSE_HASH_WAIT", "1s"),
];

/// Amir, an administrator, signed in and past the second factor.
async fn admin(app: &TestApp) -> Browser {
    let c = app.browser();
    app.sign_in_amir(&c, Role::Admin).await;
    app.enrol(&c).await;
    c
}

/// POSTs `body` to `path` with the browser's cookies, the body in five pieces
/// a second apart (5 s in all, longer than the bound, shorter than the
/// header timeout), reading all the while. Returns the status, the
/// response, and when it came, counted from the first byte of the body.
async fn trickle(
    app: &TestApp,
    browser: &Browser,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Duration) {
    let host = app.address.trim_start_matches("http://").to_owned();
    let cookie = browser.cookie_header();
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut answered_at = None;
    let mut closed = false;
    let pieces: Vec<&[u8]> = body.chunks(body.len().div_ceil(5)).collect();
    for piece in pieces {
        // The server may answer, and close, before the body is all sent.
        let _ = stream.write_all(piece).await;
        let until = Instant::now() + Duration::from_secs(1);
        while !closed && Instant::now() < until {
            let mut buf = [0u8; 8192];
            match tokio::time::timeout_at(until.into(), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => closed = true,
                Ok(Ok(n)) => {
                    answered_at.get_or_insert_with(|| started.elapsed());
                    answer.extend_from_slice(&buf[..n]);
                }
                Err(_) => {}
            }
        }
        if closed {
            break;
        }
    }
    while !closed {
        let mut buf = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                answered_at.get_or_insert_with(|| started.elapsed());
                answer.extend_from_slice(&buf[..n]);
            }
            _ => closed = true,
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = raw_status(&text);
    (
        status,
        text,
        answered_at.unwrap_or_else(|| started.elapsed()),
    )
}

/// A sign-in form whose body takes 5 s to arrive is still being handled
/// at the bound (the form's own body limit, the header timeout, is 10 s):
/// it is answered 503 "taking too long" at 3 s, with Retry-After, and the
/// handler is dropped, not left to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_form_still_being_handled_at_the_request_timeout_is_answered_503_at_the_bound() {
    let app = TestApp::spawn_with(SETTINGS).await;
    app.import(STAFF).await;
    let c = app.browser();
    let token = c.form_token("/login").await;
    let body = format!(
        "username={}&password=not+the+password+at+all&csrf_token={token}",
        AMIR.username
    );
    let (status, answer, took) = trickle(
        &app,
        &c,
        "/login",
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 120"),
        "{answer}"
    );
    assert!(
        answer.contains("Sorry, the service is taking too long to answer"),
        "{answer}"
    );
    assert!(answer.contains("Reference:"), "{answer}");
    assert!(
        took >= BOUND - Duration::from_millis(100) && took < BOUND + Duration::from_millis(1500),
        "answered at the bound: {took:?}"
    );
    // The handler was dropped, not left running: once the rest of the body
    // would have arrived, no sign-in was checked or recorded.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let recorded = audit_events(&app, "sign_in.failed").await;
    assert!(recorded.is_empty(), "{recorded:?}");
}

/// The same 5 s upload to the console's staff-file preview is not cut at
/// the bound: an administrator's import takes as long as the file does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_administrators_staff_file_upload_is_not_cut_at_the_request_timeout() {
    let app = TestApp::spawn_with(SETTINGS).await;
    let c = admin(&app).await;
    let token = c.form_token("/console/import").await;
    let file = format!(
        "{STAFF}999 Demo Hospital NHS Trust,,Ada,Lovelace,1980-12-10,ada.lovelace@nhs.net,D3\n"
    );
    let boundary = "gatehouse-deadline-test";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hr-feed.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n"
    );
    let (status, answer, took) = trickle(
        &app,
        &c,
        "/console/import",
        &format!("multipart/form-data; boundary={boundary}"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("What would change: hr-feed.csv"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_secs(4),
        "after the whole file: {took:?}"
    );
}

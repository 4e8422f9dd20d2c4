//! The documented nginx forward-auth configuration (docs/nginx-forward-auth.conf),
//! run as written in front of Gatehouse and an application that shows the
//! headers it is given.

use super::*;

/// An application that answers every request with the `X-Gatehouse-*`
/// headers (and any cookie) it received, one per line.
async fn application() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let mut seen: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-gatehouse-") || k.as_str() == "cookie")
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        seen.sort();
        seen.join("\n")
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// nginx on a free port as deployed, with the forward-auth snippet,
/// Gatehouse at `gatehouse` and the application on `app_port`.
async fn nginx(dir: &std::path::Path, gatehouse: &str, app_port: u16) -> (Server, String) {
    let port = free_port();
    let snippet = include_str!("../../../docs/nginx-forward-auth.conf")
        .replace("127.0.0.1:8090", &format!("127.0.0.1:{app_port}"));
    let upstream = gatehouse
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let server = start_nginx(dir, port, &[upstream.to_owned()], &snippet, 1).await;
    (server, format!("http://127.0.0.1:{port}"))
}

/// Through nginx as documented: a person who is not signed in is sent to
/// Gatehouse's login page and, once signed in, back to the page they asked
/// for; the application then sees exactly who they are, never a header
/// the browser made up, and never Gatehouse's cookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nginx_forward_auth_lets_signed_in_people_through_with_who_they_are() {
    let app = TestApp::spawn().await;
    app.import(STAFF).await;
    app.set_password(&AMIR, GOOD_PASSWORD).await;
    let dir = tempfile::tempdir().expect("dir");
    let app_port = application().await;
    let (_nginx, base) = nginx(dir.path(), &app.url(""), app_port).await;
    let browser = Browser::new(&base, PUBLIC_URL).with_header("x-gatehouse-username", "999ADMIN01");

    let asked = browser.get("/payslips/2026?month=11").await;
    assert_eq!(asked.status(), 302);
    let login = asked.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert_eq!(
        login,
        format!("{PUBLIC_URL}/login?next=%2Fpayslips%2F2026%3Fmonth%3D11")
    );
    let path = login.strip_prefix(PUBLIC_URL).expect("on Gatehouse");
    let signed_in = browser
        .log_in_from(path, AMIR.username, GOOD_PASSWORD)
        .await;
    assert_eq!(signed_in.headers()["location"], "/payslips/2026?month=11");

    let page = browser.get("/payslips/2026?month=11").await;
    assert_eq!(page.status(), 200);
    let seen = page.text().await.expect("body");
    assert_eq!(
        seen,
        [
            "x-gatehouse-email: amir.khan@nhs.net",
            "x-gatehouse-employer: Demo Hospital NHS Trust",
            "x-gatehouse-name: Amir Khan",
            "x-gatehouse-roles: staff",
            "x-gatehouse-username: 999AKHAN01",
        ]
        .join("\n"),
        "who the person is, and only that"
    );
    let direct = browser.get("/auth/verify").await;
    assert_eq!(direct.status(), 404, "the check is nginx's own");
}

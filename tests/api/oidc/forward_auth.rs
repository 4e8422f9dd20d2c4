//! The documented nginx forward-auth configuration (docs/nginx-forward-auth.conf),
//! run as written in front of Gatehouse and an application that shows the
//! headers it is given.

use std::process::{Child, Command, Stdio};

use super::*;

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

/// nginx on a free port with docs/nginx.conf and the forward-auth snippet,
/// Gatehouse at `gatehouse` and the application on `app_port`.
async fn nginx(dir: &std::path::Path, gatehouse: &str, app_port: u16) -> (Nginx, String) {
    let port = free_port();
    let snippet = include_str!("../../../docs/nginx-forward-auth.conf")
        .replace("127.0.0.1:8090", &format!("127.0.0.1:{app_port}"));
    let upstream = gatehouse.trim_start_matches("http://");
    let config = include_str!("../../../docs/nginx.conf")
        .replace(
            "    server 127.0.0.1:8081;\n    server 127.0.0.1:8082;\n    server 127.0.0.1:8083;\n",
            &format!("    server {upstream};\n"),
        )
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "    ssl_certificate /etc/ssl/gatehouse/fullchain.pem;\n",
            "",
        )
        .replace(
            "    ssl_certificate_key /etc/ssl/gatehouse/privkey.pem;\n",
            "",
        )
        .replace(
            "/var/log/nginx/gatehouse-error.log",
            &dir.join("error.log").display().to_string(),
        )
        .replace(
            "/var/lib/nginx/gatehouse",
            &dir.join("tmp").display().to_string(),
        );
    // Inside the server block, after its last location.
    let end = config.rfind('}').expect("the server block ends");
    let config = format!("{}\n{snippet}\n}}\n", &config[..end]);
    std::fs::create_dir_all(dir.join("tmp")).expect("dir");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 1;\npid {pid};\nerror_log {err} warn;\nevents {{ worker_connections 256; }}\nhttp {{\n{config}\n}}\n",
            pid = dir.join("nginx.pid").display(),
            err = dir.join("error.log").display(),
        ),
    )
    .expect("conf");
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx must be installed (apt-get install nginx-light)");
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    (Nginx(child), base)
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
    let token = browser.form_token(path).await;
    let signed_in = browser
        .post_form(
            "/login",
            &token,
            &[
                ("username", AMIR.username),
                ("password", GOOD_PASSWORD),
                ("next", "/payslips/2026?month=11"),
            ],
        )
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

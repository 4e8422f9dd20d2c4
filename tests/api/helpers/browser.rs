//! [`Browser`]: the one client the tests drive the service with, and what a
//! browser reads in pages, headers and cookies.

use std::sync::Arc;

use reqwest::cookie::{CookieStore as _, Jar};

use super::people::Recovery;

/// A browser on one service: a cookie jar of its own, and redirects left
/// unfollowed so that a test sees each answer. Paths are relative to the
/// service; links from emails are opened through [`Browser::open_link`].
#[derive(Clone)]
pub struct Browser {
    http: reqwest::Client,
    jar: Arc<Jar>,
    headers: reqwest::header::HeaderMap,
    timeout: Option<std::time::Duration>,
    base: String,
    /// The origin the service puts in its links.
    public_url: String,
}

impl Browser {
    /// A new browser, with no cookies, on the service at `base` whose links
    /// start with `public_url`.
    pub fn new(base: &str, public_url: &str) -> Self {
        gatehouse_core::use_ring_for_tls();
        let jar = Arc::new(Jar::default());
        Self {
            http: Self::client(&jar, reqwest::header::HeaderMap::new(), None),
            jar,
            headers: reqwest::header::HeaderMap::new(),
            timeout: None,
            base: base.to_owned(),
            public_url: public_url.to_owned(),
        }
    }

    fn client(
        jar: &Arc<Jar>,
        headers: reqwest::header::HeaderMap,
        timeout: Option<std::time::Duration>,
    ) -> reqwest::Client {
        let builder = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers);
        match timeout {
            Some(timeout) => builder.timeout(timeout),
            None => builder,
        }
        .build()
        .expect("client")
    }

    /// This browser sending the header `name: value` with every request:
    /// `X-Forwarded-For` from a trusted proxy, say, or a `User-Agent`.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers
            .insert(name, value.parse().expect("header value"));
        self.http = Self::client(&self.jar, self.headers.clone(), self.timeout);
        self
    }

    /// This browser giving up on a request after `timeout`.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self.http = Self::client(&self.jar, self.headers.clone(), self.timeout);
        self
    }

    /// This browser holding `cookie` too (`name=value`, anything after a `;`
    /// ignored): a returning browser, or a forged cookie.
    pub fn with_cookie(self, cookie: &str) -> Self {
        let pair = cookie.split(';').next().unwrap_or_default();
        self.jar
            .add_cookie_str(&format!("{pair}; Path=/"), &self.base.parse().expect("url"));
        self
    }

    /// The same browser, cookies and all, talking to the service at `base`
    /// (another node behind the same load balancer, say: cookies do not
    /// depend on the port).
    pub fn on(&self, base: &str) -> Self {
        Self {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// The HTTP client underneath, for requests the methods here do not
    /// make (other verbs, headers of the test's own).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The full URL of `path` on the service.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The `Cookie` header the browser sends to the service (empty if none).
    pub fn cookie_header(&self) -> String {
        self.jar
            .cookies(&self.base.parse().expect("url"))
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The value of the cookie `name` the browser holds for the service.
    pub fn cookie(&self, name: &str) -> String {
        let cookies = self.cookie_header();
        cookies
            .split("; ")
            .find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} cookie in {cookies}"))
            .to_owned()
    }

    /// The session id the browser holds.
    pub fn session_id(&self) -> String {
        self.cookie("gatehouse")
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    /// The body of `path`.
    pub async fn page(&self, path: &str) -> String {
        self.get(path).await.body().await
    }

    /// The form token of the page at `path`, in this browser's session.
    pub async fn form_token(&self, path: &str) -> String {
        csrf_token(&self.page(path).await).expect("the page has a form token")
    }

    /// GETs `form_page` for its form token (none if the page has no form),
    /// then POSTs `fields` with it to `action`.
    pub async fn submit(
        &self,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = csrf_token(&self.page(form_page).await).unwrap_or_default();
        self.post_form(action, &token, fields).await
    }

    /// POSTs `fields` and the form token `token` to `action`.
    pub async fn post_form(
        &self,
        action: &str,
        token: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = fields.to_vec();
        form.push(("csrf_token", token));
        self.http
            .post(self.url(action))
            .form(&form)
            .send()
            .await
            .expect("POST")
    }

    /// Signs in through the sign-in form.
    pub async fn log_in(&self, username: &str, password: &str) -> reqwest::Response {
        self.submit(
            "/login",
            "/login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Signs in through the login page Gatehouse sends people to from
    /// `login_path` (`/login?next=…`), sending back the `next` the page
    /// carries, if any.
    pub async fn log_in_from(
        &self,
        login_path: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = self.page(login_path).await;
        let token = csrf_token(&page).expect("the login form");
        let next = page
            .split("name=\"next\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        self.post_form(
            "/login",
            &token,
            &[
                ("username", username),
                ("password", password),
                ("next", &next),
            ],
        )
        .await
    }

    /// Fills in and sends the recovery form.
    pub async fn request_recovery(&self, form: Recovery<'_>) -> reqwest::Response {
        self.submit("/recover", "/recover", &form.fields()).await
    }

    /// Opens a link from an email, which must start with the service's
    /// public URL.
    pub async fn open_link(&self, link: &str) -> reqwest::Response {
        let path = link
            .strip_prefix(&self.public_url)
            .expect("links use the public URL");
        self.get(path).await
    }

    /// Opens a reset `link` and returns the reset form's token.
    pub async fn open_reset_form(&self, link: &str) -> String {
        assert_eq!(self.open_link(link).await.status(), 303);
        let page = self.page("/reset").await;
        csrf_token(&page).unwrap_or_else(|| panic!("the form is shown: {page}"))
    }

    /// Sends the reset form (after a link was opened) with `password` typed
    /// twice.
    pub async fn submit_reset(&self, username: &str, password: &str) -> reqwest::Response {
        self.submit(
            "/reset",
            "/reset",
            &reset_form(username, password, password),
        )
        .await
    }

    /// Sets `password` through a reset or set-up `link`, checks that it was
    /// set, and returns where the browser was sent next.
    pub async fn set_password_through(&self, link: &str, username: &str, password: &str) -> String {
        let opened = self.open_link(link).await;
        assert_eq!(opened.headers()["location"], "/reset", "the link is usable");
        let done = self.submit_reset(username, password).await;
        assert_eq!(done.status(), 303, "the password is set");
        let location = done.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        assert!(
            location.starts_with("/login?password=set"),
            "back to the login page"
        );
        location
    }

    /// Sends the console's second-factor form with `code`.
    pub async fn send_code(&self, code: &str) -> reqwest::Response {
        self.submit(
            "/console/second-factor",
            "/console/second-factor",
            &[("code", code)],
        )
        .await
    }

    /// Posts a console action form on `username`'s page
    /// (`/console/accounts/{username}/{action}`).
    pub async fn console_action(
        &self,
        username: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.submit(
            &format!("/console/accounts/{username}"),
            &format!("/console/accounts/{username}/{action}"),
            fields,
        )
        .await
    }

    /// Uploads `file` as the staff file in the console (its preview step),
    /// with the form token `token`.
    pub async fn upload(&self, token: &str, file: &str) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .text("csrf_token", token.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(file.as_bytes().to_vec()).file_name("hr-feed.csv"),
            );
        self.http
            .post(self.url("/console/import"))
            .multipart(form)
            .send()
            .await
            .expect("POST")
    }
}

/// Waits for sign-ins answered with their status and error messages, all
/// refused, and counts those told the password was wrong and those told
/// the account is locked; panics on any other answer.
pub async fn tally_refusals(
    sign_ins: Vec<tokio::task::JoinHandle<(u16, Vec<String>)>>,
) -> (usize, usize) {
    let (mut incorrect, mut locked) = (0, 0);
    for sign_in in sign_ins {
        let (status, messages) = sign_in.await.expect("task");
        assert_eq!(status, 200, "{messages:?}");
        if messages[0].starts_with("The username or password is incorrect") {
            incorrect += 1;
        } else if messages[0].starts_with("Your account is locked until") {
            locked += 1;
        } else {
            panic!("unexpected {messages:?}");
        }
    }
    (incorrect, locked)
}

/// The reset form's fields: the username, the new password and its
/// confirmation.
pub fn reset_form<'a>(
    username: &'a str,
    password: &'a str,
    confirm: &'a str,
) -> [(&'a str, &'a str); 3] {
    [
        ("username", username),
        ("password", password),
        ("confirm-password", confirm),
    ]
}

/// What a test reads of a response.
pub trait ResponseExt {
    /// The body as text.
    fn body(self) -> impl std::future::Future<Output = String>;
}

impl ResponseExt for reqwest::Response {
    async fn body(self) -> String {
        self.text().await.expect("body")
    }
}

/// The form token in a page.
pub fn csrf_token(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let end = page[at..].find('"')?;
    Some(page[at..at + end].to_owned())
}

/// The text of a page with everything that legitimately differs per visitor removed.
pub fn comparable(page: &str) -> String {
    let mut out = page.to_owned();
    while let Some(token) = csrf_token(&out) {
        out = out.replace(&token, "TOKEN");
        if token == "TOKEN" {
            break;
        }
    }
    out
}

/// The error summary's messages in a page.
pub fn error_messages(page: &str) -> Vec<String> {
    let Some(start) = page.find("nhsuk-error-summary__list") else {
        return Vec::new();
    };
    let list = &page[start
        ..page[start..]
            .find("</ul>")
            .map_or(page.len(), |e| start + e)];
    list.split("<a href=\"#")
        .skip(1)
        .filter_map(|item| {
            let text = item.split_once("\">")?.1;
            Some(text.split("</a>").next()?.trim().to_owned())
        })
        .collect()
}

/// Asserts that the page's error summary has a message containing `text`.
#[track_caller]
pub fn assert_error(page: &str, text: &str) {
    let errors = error_messages(page);
    assert!(
        errors.iter().any(|m| m.contains(text)),
        "no error containing {text:?} in {errors:?}"
    );
}

/// The error reference an error page shows (empty if none).
pub fn reference_of(page: &str) -> String {
    page.split("Reference: <strong>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_default()
        .to_owned()
}

/// The authenticator key the enrolment page shows.
pub fn key_in(page: &str) -> gatehouse_domain::second_factor::TotpSecret {
    let marker = "<strong class=\"gatehouse-key\">";
    let start = page.find(marker).expect("the manual key is shown") + marker.len();
    let end = start + page[start..].find('<').expect("end of key");
    gatehouse_domain::second_factor::TotpSecret::from_base32(&page[start..end].replace(' ', ""))
        .expect("a valid key")
}

/// The Content-Security-Policy directives every HTML page must carry.
pub const CSP_DIRECTIVES: [&str; 5] = [
    "default-src 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
];

/// Asserts that a response tells the browser to use HTTPS only, for two
/// years.
#[track_caller]
pub fn assert_hsts(r: &reqwest::Response) {
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .expect("ascii")
            .contains("max-age=63072000")
    );
}

/// Every `Set-Cookie` header of a response, as text.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect()
}

/// The value of a `Set-Cookie` header (`name=value; attributes`).
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// Whether a response gives the browser a session cookie (not one that
/// clears it).
pub fn sets_a_session(r: &reqwest::Response) -> bool {
    set_cookies(r)
        .iter()
        .any(|c| c.starts_with("gatehouse=") && !c.contains("Max-Age=0"))
}

/// Every header but `Date`, sorted, with cookie values (which differ per
/// visitor by design) blanked: what two answers must share to look the same.
pub fn comparable_headers(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str() != "date")
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("(not text)").to_owned();
            let value = match value.split_once('=') {
                Some((cookie, rest)) if name.as_str() == "set-cookie" => format!(
                    "{cookie}=VALUE{}",
                    rest.find(';').map_or("", |i| &rest[i..])
                ),
                _ => value,
            };
            (name.as_str().to_owned(), value)
        })
        .collect();
    out.sort();
    out
}

/// The status code of a raw HTTP/1.1 answer (0 if there is none).
pub fn raw_status(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#!/usr/bin/env python3
"""End-to-end check of the baseline server, standard library only.
Usage: python3 bench/django/smoke.py PORT MAILDIR [OIDC_CLIENTS_JSON]
Needs a freshly seeded server (bench/django/run.sh PORT WORKDIR); it uses
U00001 (right password), U00002 (locked out), pat.3@nhs.net (reset). With
WORKDIR/oidc-clients.json it also runs an OpenID Connect code flow and
refreshes as U00004."""
import base64
import hashlib
import http.cookiejar
import json
import secrets
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "kettle violin marmalade"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def request(self, path, data=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, body) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def token(self, path):
        status, _, html = self.request(path)
        assert status == 200, (path, status)
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    def login(self, username, password):
        t = self.token("/login")
        return self.request(
            "/login", {"csrfmiddlewaretoken": t, "username": username, "password": password}
        )

    def forgotten(self, email, dob):
        t = self.token("/forgotten")
        return self.request(
            "/forgotten", {"csrfmiddlewaretoken": t, "email": email, "date_of_birth": dob}
        )


def show(label, resp):
    status, headers, body = resp
    extra = headers.get("Location") or (body.strip().splitlines() or [""])[0][:100]
    print(f"{label}: {status} {extra}")
    return status


def oidc(base, clients_file):
    """A code flow with PKCE, userinfo, two refreshes, and a reused refresh
    token refused, for both registered clients."""
    for name, client in json.load(open(clients_file)).items():
        c = Client(base)
        assert c.login("U00004", PASSWORD)[0] == 302
        verifier = secrets.token_urlsafe(32)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()
        ).rstrip(b"=").decode()
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": client["client_id"],
            "redirect_uri": client["redirect_uri"], "scope": "openid profile email",
            "state": "s1", "nonce": "n1",
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        status, headers, _ = c.request("/o/authorize/?" + query)
        location = headers.get("Location", "")
        assert status == 302 and location.startswith(client["redirect_uri"]), (status, location)
        code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
        basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode())

        def token(form):
            request = urllib.request.Request(
                base + "/o/token/", urllib.parse.urlencode(form).encode(),
                {"Authorization": "Basic " + basic.decode()},
            )
            try:
                with urllib.request.urlopen(request) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, tokens = token({
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": client["redirect_uri"], "code_verifier": verifier,
        })
        assert status == 200 and "id_token" in tokens, tokens
        claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
        assert claims["nonce"] == "n1" and claims["preferred_username"] == "U00004", claims
        request = urllib.request.Request(
            base + "/o/userinfo/", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
        with urllib.request.urlopen(request) as r:
            info = json.loads(r.read())
        assert info["email"] == "pat.4@nhs.net", info
        first = tokens["refresh_token"]
        for _ in range(2):
            status, tokens = token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
            assert status == 200 and "id_token" in tokens, tokens
        status, refused = token({"grant_type": "refresh_token", "refresh_token": first})
        assert status == 400, (status, refused)
        print(f"OpenID Connect, client {name}: code flow, userinfo, 2 refreshes, reuse refused")


def main():
    port, maildir = sys.argv[1], sys.argv[2]
    base = f"http://127.0.0.1:{port}"

    c = Client(base)
    assert show("right password U00001", c.login("U00001", PASSWORD)) == 302
    assert show("GET /account signed in", c.request("/account")) == 200
    print("cookies after sign-in:", sorted(k.name for k in c.jar))

    c = Client(base)
    for i in range(1, 4):
        show(f"wrong password U00002 #{i}", c.login("U00002", "wrong"))
    assert show("right password U00002 after 3 failures", c.login("U00002", PASSWORD)) != 302

    before = set(os.listdir(maildir))
    c = Client(base)
    assert show("reset pat.3@nhs.net 1980-01-01", c.forgotten("PAT.3@nhs.net", "1980-01-01")) == 302
    new = set(os.listdir(maildir)) - before
    assert len(new) == 1, new
    mail = open(os.path.join(maildir, new.pop())).read()
    link = re.search(r"http://\S+/reset/\S+/", mail).group(0)
    print("  email link:", link)
    status, headers, _ = c.request(urllib.parse.urlparse(link).path)
    print(f"GET reset link: {status} {headers.get('Location')}")
    set_password = headers["Location"]
    t = c.token(set_password)
    new_password = "tangerine harbour bicycle"
    assert show("POST new password", c.request(set_password, {
        "csrfmiddlewaretoken": t, "new_password1": new_password, "new_password2": new_password,
    })) == 302
    assert show("sign in U00003 with new password", Client(base).login("U00003", new_password)) == 302

    before = set(os.listdir(maildir))
    assert show("reset pat.3@nhs.net 1990-01-01", c.forgotten("pat.3@nhs.net", "1990-01-01")) == 302
    assert show("reset nobody@nhs.net 1980-01-01", c.forgotten("nobody@nhs.net", "1980-01-01")) == 302
    assert set(os.listdir(maildir)) == before, "no email expected"
    print("  no email written")

    times = []
    for i in range(10, 30):
        c = Client(base)
        t = c.token("/login")
        start = time.perf_counter()
        status, _, _ = c.request(
            "/login", {"csrfmiddlewaretoken": t, "username": f"U{i:05d}", "password": PASSWORD}
        )
        times.append(time.perf_counter() - start)
        assert status == 302
    times.sort()
    print(f"successful POST /login, 20 sequential: median {times[10]*1000:.1f} ms, "
          f"min {times[0]*1000:.1f} ms, max {times[-1]*1000:.1f} ms")
    if len(sys.argv) > 3:
        oidc(base, sys.argv[3])
    print("ok")


if __name__ == "__main__":
    main()

"""python manage.py oidc_client OUT.json: registers the benchmark's
confidential OpenID Connect clients and writes their ids and secrets to
OUT.json (as `gatehouse admin client add --json` prints them).

Two clients, one redirect address (http://127.0.0.1:9/callback: nothing
listens there, the load generator reads the redirect), both trusted
(`skip_authorization=True`: no consent page), authorization code grant:

- "bench": its secret stored as a salted SHA-256 (`sha256secret`), as
  Gatehouse stores the hash of its own 256-bit client secrets;
- "bench-argon2": its secret stored as django-oauth-toolkit stores it by
  default, with the first of PASSWORD_HASHERS (argon2id here).

The secrets are made here with `secrets`, so every run has its own."""
import json
import secrets

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from oauth2_provider.models import get_application_model

REDIRECT_URI = "http://127.0.0.1:9/callback"
CLIENTS = {
    "bench": "sha256secret",
    "bench-argon2": "default",
}


class Command(BaseCommand):
    help = "Register the benchmark's OpenID Connect clients; write their credentials as JSON."

    def add_arguments(self, parser):
        parser.add_argument("out")

    def handle(self, *args, out, **options):
        Application = get_application_model()
        written = {}
        for name, hasher in CLIENTS.items():
            client_id = secrets.token_urlsafe(16)
            secret = secrets.token_urlsafe(32)
            Application.objects.filter(name=name).delete()
            Application.objects.create(
                name=name,
                client_id=client_id,
                # Hashed here, so the field keeps it as it is.
                client_secret=make_password(secret, hasher=hasher),
                hash_client_secret=True,
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                redirect_uris=REDIRECT_URI,
                algorithm=Application.RS256_ALGORITHM,
                skip_authorization=True,
            )
            written[name] = {
                "client_id": client_id,
                "client_secret": secret,
                "redirect_uri": REDIRECT_URI,
            }
        with open(out, "w") as f:
            json.dump(written, f, indent=2)
        if options["verbosity"] >= 1:
            self.stdout.write(f"registered {', '.join(written)} in {out}")

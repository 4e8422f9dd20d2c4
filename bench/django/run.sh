#!/usr/bin/env bash
# Runs the Django + django-axes baseline of Gatehouse's sign-in and recovery
# flows, and the django-oauth-toolkit baseline of its OpenID Connect
# provider, on 127.0.0.1:PORT: gunicorn, 2 sync workers, SQLite in WORKDIR.
# Usage: bench/django/run.sh PORT WORKDIR [N]   (N users to seed, default 1000)
# Each run starts from a fresh database (WORKDIR/django.db), an empty mail
# folder (WORKDIR/mail) and new OpenID Connect clients, whose ids and
# secrets it writes to WORKDIR/oidc-clients.json; the RS256 signing key is
# made once, at WORKDIR/oidc-rsa.pem. The virtualenv is made once, at
# ${DJANGO_BENCH_VENV:-<repo>/target/bench-django-venv}. Loopback only.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 PORT WORKDIR [N]" >&2
    exit 2
fi
port=$1
n=${3:-1000}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=${DJANGO_BENCH_VENV:-$repo/target/bench-django-venv}
python=${PYTHON:-python3}

mkdir -p "$2"
workdir=$(cd "$2" && pwd)

# 1. The virtualenv, (re)installed when requirements.txt changes.
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi

# 2. The key that signs ID tokens (RS256, 2048 bits, as Gatehouse's).
export DJANGO_BENCH_OIDC_KEY="$workdir/oidc-rsa.pem"
if [ ! -s "$DJANGO_BENCH_OIDC_KEY" ]; then
    (umask 077 && "$venv/bin/python" - "$DJANGO_BENCH_OIDC_KEY" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
with open(sys.argv[1], "wb") as f:
    f.write(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
PY
    )
fi

# 3. A fresh database, migrated and seeded, and the OpenID Connect clients
#    registered (all kept as they are with DJANGO_BENCH_KEEP_DB=1, to time a
#    restart).
export DJANGO_BENCH_DB="$workdir/django.db"
export DJANGO_BENCH_MAIL_DIR="$workdir/mail"
export DJANGO_SETTINGS_MODULE=gatehouse_bench.settings
export PYTHONDONTWRITEBYTECODE=1
cd "$here"
if [ "${DJANGO_BENCH_KEEP_DB:-0}" != 1 ]; then
    rm -f "$DJANGO_BENCH_DB" "$DJANGO_BENCH_DB-wal" "$DJANGO_BENCH_DB-shm"
    rm -rf "$DJANGO_BENCH_MAIL_DIR"
    mkdir -p "$DJANGO_BENCH_MAIL_DIR"
    "$venv/bin/python" manage.py migrate --verbosity 0 --no-input
    "$venv/bin/python" manage.py seed "$n" --verbosity 0
    "$venv/bin/python" manage.py oidc_client "$workdir/oidc-clients.json" --verbosity 0
fi

# 4. The server.
exec "$venv/bin/gunicorn" gatehouse_bench.wsgi:application \
    --chdir "$here" \
    --workers 2 --worker-class sync \
    --bind "127.0.0.1:$port" \
    --error-logfile "$workdir/gunicorn.log" --capture-output \
    --log-level warning

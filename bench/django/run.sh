#!/usr/bin/env bash
# Runs the Django + django-axes baseline of Gatehouse's sign-in and recovery
# flows on 127.0.0.1:PORT: gunicorn, 2 sync workers, SQLite in WORKDIR.
# Usage: bench/django/run.sh PORT WORKDIR [N]   (N users to seed, default 1000)
# Each run starts from a fresh database (WORKDIR/django.db) and an empty
# mail folder (WORKDIR/mail). The virtualenv is made once, at
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

# 2. A fresh database, migrated and seeded (kept as it is with
#    DJANGO_BENCH_KEEP_DB=1, to time a restart).
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
fi

# 3. The server.
exec "$venv/bin/gunicorn" gatehouse_bench.wsgi:application \
    --chdir "$here" \
    --workers 2 --worker-class sync \
    --bind "127.0.0.1:$port" \
    --error-logfile "$workdir/gunicorn.log" --capture-output \
    --log-level warning

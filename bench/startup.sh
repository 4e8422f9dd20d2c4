#!/usr/bin/env bash
# Measures `gatehouse demo` start-up: from exec until /healthz answers, on a
# fresh data folder (database created, migrated, sample staff imported) and
# again on the same folder. Prints milliseconds. Loopback only.
# Usage: bench/startup.sh [path/to/gatehouse] [runs]
set -euo pipefail
bin=${1:-target/release/gatehouse}
runs=${2:-5}
bin=$(realpath "$bin")
port=$((20000 + RANDOM % 20000))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

measure() {
    local start end pid
    start=$(date +%s%N)
    (cd "$work" && GATEHOUSE_LISTEN=127.0.0.1:$port GATEHOUSE_PUBLIC_URL=http://127.0.0.1:$port \
        exec "$bin" demo >/dev/null 2>&1) &
    pid=$!
    until curl -fs -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.005; done
    end=$(date +%s%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo $(( (end - start) / 1000000 ))
}

for i in $(seq "$runs"); do
    rm -rf "$work/gatehouse-data"
    fresh=$(measure)
    again=$(measure)
    echo "run $i: fresh ${fresh} ms, existing data ${again} ms"
done

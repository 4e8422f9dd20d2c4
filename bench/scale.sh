#!/usr/bin/env bash
# Scale of data: import N staff (default 2,000,000) into SQLite and into
# PostgreSQL (bench/import.sh, each against its baseline), then time the
# lookups behind sign-in and recovery on those databases against the same
# lookups on a 10,000-row database of the same shape (gatehouse-bench
# lookups). Indexed lookups keep the ratio near 1.
# Usage: bench/scale.sh [rows]
set -euo pipefail
rows=${1:-2000000}
cd "$(dirname "$0")/.."
cargo build --release --locked -p gatehouse -p gatehouse-bench 2>/dev/null
export BENCH_DIR=${BENCH_DIR:-$(mktemp -d)}
server=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
echo "machine: $(nproc) cores; rows: $rows; work folder: $BENCH_DIR"
for backend in sqlite postgres; do
    bench/import.sh 10000 "$backend" > /dev/null
    bench/import.sh "$rows" "$backend"
done
for backend in sqlite postgres; do
    case $backend in
    sqlite) large="sqlite://$BENCH_DIR/sqlite-$rows/gatehouse.db" small="sqlite://$BENCH_DIR/sqlite-10000/gatehouse.db" ;;
    postgres) large="$server/gatehouse_bench_$rows" small="$server/gatehouse_bench_10000" ;;
    esac
    echo
    echo "$backend:"
    target/release/gatehouse-bench lookups --database-url "$large" --baseline-url "$small"
done

#!/usr/bin/env bash
# Leavers benchmark: a full import (`gatehouse import FILE --full`) of N
# generated staff rows into a database that holds 2N, so that N people
# are disabled as leavers, then the whole file again, so that the same N
# come back as returners. The baseline, run in the same minute on the same
# database, is a full import of the whole file with nothing to change: the
# ratios are what disabling and enabling N people adds to reading the file.
# Usage: bench/leavers.sh [N] [sqlite|postgres] [path/to/gatehouse]
# PostgreSQL: $BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
n=${1:-100000}
backend=${2:-sqlite}
bin=$(realpath "${3:-target/release/gatehouse}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
server=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
export PGOPTIONS="--client-min-messages=warning"
all="$work/all.csv"
half="$work/half.csv"
python3 "$here/gen_staff.py" $((2 * n)) > "$all"
head -n $((n + 1)) "$all" > "$half"

case "$backend" in
sqlite) export GATEHOUSE_DATABASE_URL="sqlite://$work/gatehouse.db" ;;
postgres)
    db="gatehouse_bench_leavers"
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    export GATEHOUSE_DATABASE_URL="$server/$db"
    "$bin" migrate >/dev/null
    ;;
*) echo "usage: bench/leavers.sh [N] [sqlite|postgres] [binary]" >&2; exit 2 ;;
esac

now() { date +%s%N; }
seconds() { python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1e9:.2f}')" "$1" "$2"; }
full() { "$bin" import "$1" --full --max-leavers $((4 * n)) > "$work/out"; }

"$bin" import "$all" >/dev/null
t0=$(now); full "$all"; t1=$(now)
full "$half"; t2=$(now)
left=$(grep -c "  leaver: " "$work/out" || true)
full "$all"; t3=$(now)
base=$(seconds "$t0" "$t1")
leave=$(seconds "$t1" "$t2")
back=$(seconds "$t2" "$t3")
echo "backend=$backend rows=$((2 * n)) leavers=$left"
echo "full import, nothing to change: ${base} s (baseline)"
echo "full import, $left leavers:     ${leave} s ($(python3 -c "print(f'{$leave / $base:.2f}')")x)"
echo "full import, $left returners:   ${back} s ($(python3 -c "print(f'{$back / $base:.2f}')")x)"
[ "$backend" = postgres ] && psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db"
exit 0

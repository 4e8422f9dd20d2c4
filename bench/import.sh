#!/usr/bin/env bash
# Import benchmark: `gatehouse import` of N generated staff rows into a fresh
# SQLite database, then the same file again (all unchanged), against a
# baseline run in the same minute: Python's sqlite3 module inserting the same
# rows into a table with the same indexes in one transaction (no checks, no
# username generation). Reports seconds and the ratio to the baseline.
# Usage: bench/import.sh [rows] [path/to/gatehouse]
set -euo pipefail
rows=${1:-100000}
bin=$(realpath "${2:-target/release/gatehouse}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/gen_staff.py" "$rows" > "$work/staff.csv"

seconds() { python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1e9:.2f}')" "$1" "$2"; }

t0=$(date +%s%N)
(cd "$work" && "$bin" import staff.csv >/dev/null)
t1=$(date +%s%N)
(cd "$work" && "$bin" import staff.csv >/dev/null)
t2=$(date +%s%N)
python3 - "$work/staff.csv" "$work/baseline.db" <<'PY'
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[2])
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("""CREATE TABLE accounts (id INTEGER PRIMARY KEY, employer TEXT, username_key TEXT UNIQUE,
  first_name TEXT, last_name TEXT, date_of_birth TEXT, email TEXT, email_key TEXT, employee_number TEXT)""")
db.execute("CREATE INDEX accounts_email_dob ON accounts (email_key, date_of_birth)")
db.execute("CREATE UNIQUE INDEX accounts_employee_number ON accounts (employer, employee_number)")
with open(sys.argv[1], newline="") as f:
    r = csv.DictReader(f)
    rows = [(x["employer"], f"U{i}", x["first_name"], x["last_name"], x["date_of_birth"], x["email"],
             x["email"].lower(), x["employee_number"]) for i, x in enumerate(r)]
with db:
    db.executemany("INSERT INTO accounts (employer, username_key, first_name, last_name, date_of_birth,"
                   " email, email_key, employee_number) VALUES (?,?,?,?,?,?,?,?)", rows)
PY
t3=$(date +%s%N)
first=$(seconds "$t0" "$t1"); again=$(seconds "$t1" "$t2"); base=$(seconds "$t2" "$t3")
ratio=$(python3 -c "print(f'{$first / $base:.1f}')")
echo "rows=$rows gatehouse_first=${first}s gatehouse_reimport=${again}s baseline_python_sqlite=${base}s ratio_first_to_baseline=${ratio}"

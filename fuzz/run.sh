#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time (default 60 s),
# starting from the committed corpus (fuzz/corpus/<target>). New inputs the
# fuzzer finds are written to a scratch copy, not to the committed corpus;
# a crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
# Usage: fuzz/run.sh [seconds]
# cargo-fuzz needs nightly compiler flags; this machine has one stable
# toolchain, so RUSTC_BOOTSTRAP=1 lets it pass them (the fuzz build only).
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2 --quiet
export RUSTC_BOOTSTRAP=1
targets=(staff_file forms config)
cargo fuzz build --sanitizer none 2>&1 | tail -n 3
for target in "${targets[@]}"; do
    scratch=$(mktemp -d)
    cp -r "corpus/$target/." "$scratch/"
    echo "fuzzing $target for ${seconds}s"
    cargo fuzz run --sanitizer none "$target" "$scratch" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
        grep -E '^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|Done)' || true
    test -z "$(ls -A "artifacts/$target" 2>/dev/null)" || { echo "fuzz: $target crashed: see fuzz/artifacts/$target" >&2; exit 1; }
    rm -rf "$scratch"
done

#!/usr/bin/env bash
# Builds the fuzz targets and runs each one briefly (the CI "fuzz smoke" step; also handy locally).
# Usage: bash fuzz/smoke.sh [seconds per target, default 10]. Needs a nightly toolchain and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
fuzz=(cargo +nightly fuzz)
options=(--sanitizer none --target-dir "$PWD/target")
"${fuzz[@]}" build "${options[@]}"
for target in $("${fuzz[@]}" list); do
    corpus="target/smoke-corpus/$target"
    mkdir -p "$corpus"
    echo "-- fuzz $target for ${seconds}s"
    log="target/smoke-$target.log"
    # A crash exits non-zero and leaves the input under fuzz/artifacts/<target>/.
    if ! "${fuzz[@]}" run "${options[@]}" "$target" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $target crashed: the input is under fuzz/artifacts/$target/"
        exit 1
    fi
    grep -E '^Done|^stat::number_of_executed_units' "$log" || true
done

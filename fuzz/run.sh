#!/usr/bin/env bash
# Runs each cargo-fuzz target for a given time.
#
#   ./fuzz/run.sh [SECONDS] [TARGET...]     (default: 600 s, every target)
#
# FUZZ_JOBS=N runs N targets at once (default 1; each uses one core).
# Installs cargo-fuzz if missing. The machine may have only stable Rust:
# RUSTC_BOOTSTRAP=1 lets it accept the -Z flags cargo-fuzz passes.
# Corpora grow in fuzz/corpus/<target>, crashes land in
# fuzz/artifacts/<target>, logs in fuzz/logs/<target>.log. Exits 1 if a
# target crashed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-600}"
shift || true
jobs="${FUZZ_JOBS:-1}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd "$here"
export RUSTC_BOOTSTRAP=1
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Build once, up front, so the timed runs only fuzz.
for target in "${targets[@]}"; do
    cargo fuzz build "$target"
done

mkdir -p logs
run_one() {
    local target="$1"
    mkdir -p "corpus/$target" "artifacts/$target"
    echo "fuzzing $target for ${seconds}s (log: fuzz/logs/$target.log)"
    local status=0
    cargo fuzz run "$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"logs/$target.log" 2>&1 || status=$?
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' \
        "logs/$target.log" | sed "s/^/  $target: /" || true
    if [ "$status" -ne 0 ]; then
        echo "  $target: FAILED (exit $status); artifacts:" >&2
        ls "artifacts/$target" >&2 || true
    fi
    return "$status"
}

failed=0
pids=()
for target in "${targets[@]}"; do
    run_one "$target" &
    pids+=("$!")
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
exit "$failed"

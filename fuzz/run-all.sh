#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed budget and prints, per target, libFuzzer's figures:
# executions, wall time, coverage (cov = edges, ft = features) and the corpus size reached.
#
#   fuzz/run-all.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
#
# Each run starts from the committed seeds in fuzz/corpus/<target>/ (copied to a scratch
# corpus under fuzz/target/, so the seeds stay small) with debug assertions and overflow checks
# on. A crash leaves its input in fuzz/artifacts/<target>/ and makes the script exit 1.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail

cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

logs="target/fuzz-logs"
mkdir -p "$logs"
if ! nice cargo +nightly fuzz build -a >"$logs/build.log" 2>&1; then
    cat "$logs/build.log" >&2
    exit 2
fi

echo "fuzz/run-all.sh ${secs}: $(date -u +%Y-%m-%dT%H:%M:%SZ), ${secs} s per target, $(nproc) cores"
echo "$(cargo +nightly fuzz --version), $(rustc +nightly --version), debug assertions on"
printf '%-12s %12s %8s %8s %8s %8s %7s  %s\n' target executions seconds exec/s cov ft corpus result
failed=0
for t in "${targets[@]}"; do
    work="target/corpus-work/$t"
    rm -rf "$work"
    mkdir -p "$work" "artifacts/$t"
    cp corpus/"$t"/* "$work"/ 2>/dev/null || true
    log="$logs/$t.log"
    start=$(date +%s)
    if nice cargo +nightly fuzz run -a "$t" "$work" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see fuzz/$log, fuzz/artifacts/$t/)"
        failed=1
    fi
    elapsed=$(($(date +%s) - start))
    final=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$final")
    printf '%-12s %12s %8s %8s %8s %8s %7s  %s\n' "$t" "${execs:-?}" "$elapsed" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
exit "$failed"

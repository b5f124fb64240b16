#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each.
#
#   scripts/fuzz.sh [--jobs N] [--dev] [SECONDS] [TARGET...]
#
# SECONDS defaults to 20 (the CI smoke); name targets to run only those. The targets are
# built once with the installed stable toolchain: RUSTC_BOOTSTRAP=1 lets it take the
# sanitizer flags cargo-fuzz passes (no nightly toolchain is needed). Each target starts
# from its seeds (fuzz/seeds/TARGET, in the repository) plus whatever earlier runs found
# (fuzz/corpus/TARGET, not in the repository). A crash or a failed property stops the run
# with a non-zero status and leaves the input in fuzz/artifacts/TARGET/. With --jobs N, N
# targets run side by side. A summary line per target gives executions and corpus size.
# The targets are built without a sanitizer (the code they reach is safe Rust, where
# AddressSanitizer finds nothing the bounds checks do not, at several times the cost);
# FUZZ_SANITIZER=address turns it on. --dev builds without optimisation: quicker to build,
# slower to run; right for the CI smoke, wrong for long runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=1
profile=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --jobs) jobs="$2"; shift 2 ;;
        --dev) profile=(--dev); shift ;;
        *) break ;;
    esac
done
seconds="${1:-20}"
shift || true

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

cd fuzz
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# One build for every target (debug assertions on, so overflow checks run too).
sanitizer="${FUZZ_SANITIZER:-none}"
cargo fuzz build "${profile[@]}" --sanitizer "$sanitizer" --debug-assertions

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

run_one() {
    local target="$1"
    mkdir -p "corpus/$target" "seeds/$target"
    # -timeout: one input taking over 10 s counts as a hang; -rss_limit_mb bounds memory.
    cargo fuzz run "${profile[@]}" --sanitizer "$sanitizer" --debug-assertions "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$logs/$target.log" 2>&1 && echo 0 >"$logs/$target.rc" || echo 1 >"$logs/$target.rc"
}

failed=()
running=0
for target in "${targets[@]}"; do
    (run_one "$target") &
    running=$((running + 1))
    if [[ $running -ge $jobs ]]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

status=0
printf '%-16s %12s %10s %8s  %s\n' target executions exec/s corpus result
for target in "${targets[@]}"; do
    if [[ "$(cat "$logs/$target.rc" 2>/dev/null)" == 0 ]]; then
        result=ok
    else
        result=FAILED
        status=1
        failed+=("$target")
    fi
    log="$logs/$target.log"
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    corpus=$(find "corpus/$target" -type f | wc -l)
    printf '%-16s %12s %10s %8s  %s\n' "$target" "${runs:-?}" "${speed:-?}" "$corpus" "$result"
done
for target in "${failed[@]}"; do
    echo "---- $target ----" >&2
    grep -v '^#[0-9]' "$logs/$target.log" | tail -n 40 >&2
done
exit "$status"

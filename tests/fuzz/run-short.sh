#!/usr/bin/env bash
# A short fuzz run (CI size): each target for FUZZ_SECONDS (default 30) seconds, starting from
# the committed seeds, the past regressions and the torture messages in tests/data (used in
# place, never copied). Exits non-zero when a target crashes; the input that did it is written
# to tests/fuzz/artifacts/<target>/ (save it to tests/fuzz/regressions/ as <target>-<what>).
#
# Builds with overflow checks and debug assertions on, without a sanitizer: voxgate has no
# unsafe code, and the sanitizer would halve the executions per second.
#
# Usage: tests/fuzz/run-short.sh [target ...]   (default: datagram stream)
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
# cargo-fuzz needs -Z flags; on the stable toolchain RUSTC_BOOTSTRAP allows them.
export RUSTC_BOOTSTRAP=1
secs=${FUZZ_SECONDS:-30}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(datagram stream)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-short: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || exit 2
fi

opts=(--fuzz-dir tests/fuzz -s none --debug-assertions)
cargo fuzz build "${opts[@]}" || exit 2

failed=()
for t in "${targets[@]}"; do
    case $t in
        datagram) seeds=(tests/fuzz/seeds/datagram tests/data) ;;
        stream) seeds=(tests/fuzz/seeds/stream) ;;
        *) echo "run-short: unknown target $t" >&2; exit 2 ;;
    esac
    # The first directory receives new inputs and is git-ignored; the rest are read only.
    mkdir -p "tests/fuzz/corpus/$t"
    echo "run-short: fuzzing $t for ${secs}s" >&2
    if ! cargo fuzz run "${opts[@]}" "$t" "tests/fuzz/corpus/$t" "${seeds[@]}" \
        tests/fuzz/regressions -- -max_total_time="$secs" -print_final_stats=1; then
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "run-short: FAILED: ${failed[*]} (inputs in tests/fuzz/artifacts/)" >&2
    exit 1
fi
echo "run-short: ${targets[*]}: no crash in ${secs}s each" >&2

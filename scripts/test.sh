#!/usr/bin/env bash
# The whole test suite: installs the client tools it needs, builds, runs every
# test (unit, emulator contract, WebDAV integration, litmus, rclone round
# trips, benchmark smoke), and prints one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-tools.sh || { echo "summary: 0 passed, 1 failed (could not install test tools)"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Integration tests start servers of their own; two cores are all we have.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
cargo test --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
        if ($(i + 1) ~ /^passed/) p += $i
        if ($(i + 1) ~ /^failed/) f += $i
    }
} END { print p + 0, f + 0 }' "$log")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    # A build failure or a crashed test binary reports no counts.
    failed=1
fi

# The benchmark's smoke run (small sizes, debug build) keeps it from rotting.
if scripts/bench.sh --smoke; then
    passed=$((passed + 1))
else
    echo "bench smoke: FAILED"
    failed=$((failed + 1))
    status=1
fi
echo "summary: ${passed} passed, ${failed} failed"
exit "$status"

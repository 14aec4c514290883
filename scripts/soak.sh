#!/usr/bin/env bash
# The long soak (a benchmark, not a test): 8 clients, 10% injected faults,
# token expiry every 5 s, for SECS seconds (default 600), then MediaFire's
# tree is compared with the model of acknowledged writes.
#   scripts/soak.sh [SECS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECS=${1:-600}
export SOAK_SEED=${2:-$RANDOM$RANDOM}
echo "soak: ${SOAK_SECS}s, seed ${SOAK_SEED}"
exec cargo test --locked --test gateway soak:: -- --nocapture

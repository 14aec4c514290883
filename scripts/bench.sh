#!/usr/bin/env bash
# The benchmark: builds mediafire-dav in release mode, then measures it
# against what users would otherwise use (the emulator's direct links,
# `sha256sum` + one direct upload, `rclone serve webdav` of a local folder)
# and prints a Markdown table. See scripts/bench.py for the scenarios.
#
#   scripts/bench.sh                 # full run (1 GiB / 2 GiB files, 3 runs; ~10 min)
#   scripts/bench.sh --smoke         # small sizes, debug build, one run (CI, < 1 min)
#   scripts/bench.sh --runs 5 --size-mib 256 ...   # any flag of scripts/bench.py
#
# Needs curl, rclone, wrk and python3; installs wrk and rclone (Debian
# packages) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
for arg in "$@"; do
    if [ "$arg" = "--smoke" ]; then smoke=1; fi
done

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v rclone >/dev/null 2>&1 || need+=(rclone)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing ${need[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ "$smoke" -eq 1 ]; then
    cargo build --locked --quiet
    bin=target/debug/mediafire-dav
else
    echo "bench: building in release mode" >&2
    nice -n 10 cargo build --release --locked --quiet
    bin=target/release/mediafire-dav
fi
exec python3 scripts/bench.py --bin "$bin" "$@"

#!/usr/bin/env bash
# Installs the real clients the test suite uses as oracles (litmus, rclone,
# cadaver, and headless Chromium with chromedriver for the HTML listing) from
# Debian's packages. Safe to run again: it installs only what is missing.
# Needs root (or sudo) the first time.
set -euo pipefail

need=()
command -v litmus >/dev/null 2>&1 || [ -x /usr/bin/litmus ] || need+=(litmus)
command -v rclone >/dev/null 2>&1 || need+=(rclone)
command -v cadaver >/dev/null 2>&1 || need+=(cadaver)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

echo "installing test tools: ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

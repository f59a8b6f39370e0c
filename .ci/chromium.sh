#!/usr/bin/env bash
# Install Debian's chromium for the report's headless screenshot test, if missing.
# Usage: .ci/chromium.sh            (as root, or with sudo available)
# Prints the browser's path; exits non-zero when it cannot be installed.
set -euo pipefail

find_chromium() {
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if path=$(find_chromium); then
    echo "chromium already installed: $path"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Fonts so that the page's text renders (a blank screenshot otherwise looks like a failure).
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

if path=$(find_chromium); then
    echo "chromium installed: $path"
    "$path" --version || true
else
    echo "chromium could not be installed" >&2
    exit 1
fi

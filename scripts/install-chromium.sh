#!/usr/bin/env bash
# Install Debian's chromium for the browser tests if it is missing (needs root).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium is missing and we are not root: browser tests will be skipped" >&2
  exit 0
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

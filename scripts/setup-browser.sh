#!/usr/bin/env bash
# Installs what the console's browser test (tests/python/test_console.py) drives: Debian's
# headless Chromium and its chromedriver (no browser download of its own: the packages carry
# both). Idempotent: with both in place it only prints their paths. Needs root (as on CI).
# Prints one line on stdout for the test: chromium=PATH chromedriver=PATH
set -euo pipefail
chromium=/usr/bin/chromium
driver=/usr/bin/chromedriver
if ! [ -x "$chromium" ] || ! [ -x "$driver" ]; then
  exec 9> "${TMPDIR:-/tmp}/switchyard-setup-browser.lock"
  flock 9
  if ! [ -x "$chromium" ] || ! [ -x "$driver" ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends chromium chromium-driver >&2; then
      apt-get update >&2
      apt-get install -y --no-install-recommends chromium chromium-driver >&2
    fi
  fi
fi
for bin in "$chromium" "$driver"; do
  [ -x "$bin" ] || { echo "error: $bin is missing after apt-get install" >&2; exit 1; }
done
echo "chromium=$chromium chromedriver=$driver"

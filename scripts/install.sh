#!/usr/bin/env bash
# Set up Foley in ./.venv: the package with its test extras, and Debian's Chromium for the
# browser test when apt-get is available (root). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: chromium not installed; the browser test will be skipped"
fi
echo "Foley installed in .venv ($(.venv/bin/foley --help >/dev/null && echo ok))"

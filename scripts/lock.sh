#!/usr/bin/env bash
# Refresh requirements.lock: every package, direct and transitive, at an exact version with its
# hashes, for CPython 3.11 and 3.12 on Linux (one universal lock; markers pick per version).
#   python3 -m pip install uv==0.13.9 && bash scripts/lock.sh
# It resolves the pins in pyproject.toml (direct dependencies, exact) and scripts/build-requirements.in.
# After refreshing: read `git diff requirements.lock` (torch and torchaudio must stay the same
# release), then run the README's two commands in a NEW clone with PIP_NO_CACHE_DIR=1 (that is
# what .ci/run does), since a machine that already has the packages hides a broken install.
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile pyproject.toml scripts/build-requirements.in --extra test \
  --universal --python-version 3.11 --generate-hashes --no-header --quiet \
  -o requirements.lock
echo "requirements.lock: $(grep -cE '^[A-Za-z0-9]' requirements.lock) packages"

#!/usr/bin/env bash
# Here, after the device run: reassemble the parts the device tool brought back (its files_at
# folder), verify every sha256, and run `foley eval` (pretrained judges included) on the
# pipeline, on 48 clips of the real-sound FoleyWorld test seed (/work/data/fw-real-eval).
# UNTRIED on a GPU's output.   Usage: bash scripts/gpu/fetch.sh FILES_AT DEST [parts.py options]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$root/scripts/gpu/parts.py" fetch "$@"

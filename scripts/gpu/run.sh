#!/usr/bin/env bash
# On the GPU machine, by the device tool's one command (docs/DEVELOPERS.md): install the carried
# wheels offline, run `foley train all --preset gpu`, pack the pipeline into $OUT as sha256-
# checked parts of at most 15 MiB (scripts/gpu/parts.py). UNTRIED on a GPU: tested at a tiny
# size on CPU (tests/test_gpu_scripts.py).
#
#   bash scripts/gpu/run.sh stage    # a staging call: say which wheel chunks (.gpu/c*) are here
#   bash scripts/gpu/run.sh          # the run (every chunk carried by now, same warm machine)
#
# Settings (environment): FOLEY_GPU_PRESET (gpu), FOLEY_GPU_RUN (/tmp/run), FOLEY_GPU_SPLIT_MB
# (15), FOLEY_GPU_SKIP_INSTALL=1 (the packages are installed already: the tests), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?run.sh writes its results under \$OUT (the device tool sets it)}"
PY=${PYTHON:-python3}
PRESET=${FOLEY_GPU_PRESET:-gpu}
RUN=${FOLEY_GPU_RUN:-/tmp/run}
SITE=${FOLEY_GPU_SITE:-/tmp/site}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

if [ "${1:-}" = stage ]; then
  exec "$PY" scripts/gpu/parts.py join .gpu --partial
fi

if [ "${FOLEY_GPU_SKIP_INSTALL:-0}" != 1 ]; then
  rm -rf /tmp/gpu-wheels
  "$PY" scripts/gpu/parts.py join .gpu /tmp/gpu-wheels
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" /tmp/gpu-wheels/*.whl
  # the `train` subcommand is an entry point of the (uninstalled) project: declare it
  meta="$SITE/foley_v2a-0.1.0.dist-info"
  mkdir -p "$meta"
  printf 'Metadata-Version: 2.1\nName: foley-v2a\nVersion: 0.1.0\n' >"$meta/METADATA"
  printf '[foley.commands]\ntrain = training.cli:register\n' >"$meta/entry_points.txt"
  export PYTHONPATH="$SITE:$PWD"
  nvidia-smi -L || true
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

log="$OUT/log.txt"
# the whole log can be long (progress lines): keep its last 4 MB in $OUT, whatever happens
trap 'tail -c 4000000 "$RUN.log" >"$log" 2>/dev/null || true' EXIT
mkdir -p "$(dirname "$RUN")"
start=$(date +%s)
"$PY" -m foley.cli.main train all --preset "$PRESET" --out "$RUN" 2>&1 | tee "$RUN.log"
echo "[run.sh] recipe wall time: $(($(date +%s) - start)) s" | tee -a "$RUN.log"
"$PY" scripts/gpu/parts.py pack "$RUN" "$OUT" --split-mb "${FOLEY_GPU_SPLIT_MB:-15}" \
  2>&1 | tee -a "$RUN.log"

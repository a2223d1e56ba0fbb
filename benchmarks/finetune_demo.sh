#!/bin/bash
# the before/after fine-tune measurement (1 thread)
set -e
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}  # e.g. PYTHON=/work/main/.venv/bin/python
cd "$(dirname "$0")/.."
rm -rf /tmp/byof-footage && mkdir -p /tmp/byof-footage
$PY - <<'PY'
from pathlib import Path
from foley.data.ego4d import read_metadata
src = Path("/work/data/fw-real-eval")
for r in read_metadata(src / "test.tsv"):
    d = Path("/tmp/byof-footage") / r.video_uid[:8]
    d.mkdir(exist_ok=True)
    (d / Path(r.clip_file).name).symlink_to(r.clip_path(src))
    (d / (Path(r.clip_file).stem + ".txt")).write_text(r.clip_text.replace("#C C ", "") + "\n")
PY
START=$(date +%s)
$PY -m foley.cli.main prepare /tmp/byof-footage --out /work/data/byof-footage-prepared --val-fraction 0.2 --test-fraction 0.1 --quiet
echo "prepare $(( $(date +%s) - START )) s"
START=$(date +%s)
$PY -m foley.cli.main train denoiser /work/data/byof-footage-prepared -o /work/data/byof-finetune --init-from default --steps 300 --val-every 50 --patience 2 --lr 5e-5 --batch-size 8 --workers 0 --val-num 0 --ema-decay 0.99 --save-every 100 --cpu
echo "finetune $(( $(date +%s) - START )) s"
START=$(date +%s)
$PY - <<'PY'
from pathlib import Path
from training.finetune import finetune_features, init_dir
finetune_features(init_dir("default"), "/work/data/fw-real", Path("/work/data/byof-fw-test-features"), splits=("test",))
PY
echo "fw test features $(( $(date +%s) - START )) s"
START=$(date +%s)
$PY -m benchmarks.finetune_eval --before default --after /work/data/byof-finetune/model --features /work/data/byof-finetune/features:val /work/data/byof-fw-test-features:test
echo "eval $(( $(date +%s) - START )) s"

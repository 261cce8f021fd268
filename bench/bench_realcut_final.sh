#!/usr/bin/env bash
# realcut end to end (issue 9's goals on the second dataset), at the small setting of bench/README.md:
#   1. the default ground-truth-free pipeline (BAS+CAM seeds, learned background, CRF + random walk, DeepLab on the
#      random-walk labels) through eval_segment;
#   2. the yardstick: the same DeepLab recipe on the ground-truth masks of the same train split, validated every
#      225 iterations (its learning curve), then eval_segment;
#   3. the CAM baseline (classify.method=cam, seeds.source=cam) through eval_seeds, whose threshold is chosen on the
#      calibration split like the BAS+CAM row of run 1.
#
#   bash bench/bench_realcut_final.sh [work_root]      (default workdirs/realcut_final; ~1.5 h on 2 idle cores)
#
# Prints the key numbers of each run; the stage results stay in <work_root>/{pipeline,gt,cam}.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=${1:-workdirs/realcut_final}
CFG=configs/bench/realcut.py
$PY tools/make_bench_data.py --out data/realcut_small --n-train 300 --n-val 50
SMALL=(dataset.root=data/realcut_small classify.resize=144 classify.crop_size=128 classify.batch_size=8
       classify.epochs=4 "seeds.scales=[1.0]" bao.epochs=8 bao.teacher_from_epoch=4)

$PY -m pipeline.cli run $CFG --work-dir "$W/pipeline" --cfg-options "${SMALL[@]}"
$PY bench/bench_segment_curve.py --config $CFG --work "$W/gt" --iters 1125 --every 225 \
    --cfg-options "${SMALL[@]}"
$PY -m pipeline.cli stage eval_segment $CFG --work-dir "$W/gt" --cfg-options "${SMALL[@]}" segment.labels_from=gt \
    segment.iters=1125 segment.val_interval=225 segment.checkpoint_interval=1125
$PY -m pipeline.cli run $CFG --work-dir "$W/cam" --until eval_seeds --cfg-options "${SMALL[@]}" \
    classify.method=cam seeds.source=cam bao.enabled=False

$PY bench/print_runs.py "$W"

#!/usr/bin/env bash
# configs/custom/bas_irn_cpu.py as a new user runs it on their own VOC-layout folder (every size and length 'auto'),
# plus the two comparisons that make its numbers readable:
#   1. the pipeline, all stages (seeds -> BAO -> CRF / random walk -> DeepLab -> eval on val);
#   2. the yardstick: the same DeepLab recipe trained on the ground-truth masks of the same train split (the
#      stages before segment are copied from run 1; only segment + eval_segment run);
#   3. the CAM baseline (classify.method=cam, seeds.source=cam) through eval_seeds, threshold from calib.
#
#   bash bench/bench_custom_cpu.sh <dataset_root> [work_root]    (default work root workdirs/custom_cpu)
#
# Every stage caches: rerunning resumes and skips what is done. Prints the key numbers of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
ROOT=${1:?usage: bash bench/bench_custom_cpu.sh <dataset_root> [work_root]}
W=${2:-workdirs/custom_cpu}
CFG=configs/custom/bas_irn_cpu.py

$PY -m pipeline.cli run $CFG --work-dir "$W/pipeline" --cfg-options dataset.root="$ROOT"
mkdir -p "$W/gt"
for stage in classify seeds bao eval_seeds crf ir_labels affinity random_walk eval_pseudo; do
    [ -e "$W/gt/$stage" ] || cp -r "$W/pipeline/$stage" "$W/gt/$stage"
done
$PY -m pipeline.cli stage segment,eval_segment $CFG --work-dir "$W/gt" \
    --cfg-options dataset.root="$ROOT" segment.labels_from=gt
$PY -m pipeline.cli run $CFG --work-dir "$W/cam" --until eval_seeds \
    --cfg-options dataset.root="$ROOT" classify.method=cam seeds.source=cam bao.enabled=False

$PY bench/print_runs.py "$W"

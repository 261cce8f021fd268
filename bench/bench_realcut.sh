#!/usr/bin/env bash
# Seed sources (CAM / BAS / BAS+CAM, best background threshold chosen with ground truth) on the realcut benchmark
# and on the demo, with the numbers of bench/README.md ("realcut"). CPU, pretrained MobileNetV2; 1 thread per
# process (on a shared 2-core machine several threads per process ran 3-5x slower).
#
#   bash bench/bench_realcut.sh [small|full]
#
# small (what bench/README.md reports): the first 300 train images of realcut (data/realcut_small), classifier at
# 144 px resize / 128 px crop, batch 8, 4 epochs (148 iterations), seeds at scale 1.0 + flip.
# full: configs/bench/realcut.py as it is (600 train images, 176/160 px, 6 epochs, scales 1.0 and 1.5).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mode=${1:-small}
if [ "$mode" = small ]; then
  $PY tools/make_bench_data.py --out data/realcut_small --n-train 300 --n-val 50
  opts=(dataset.root=data/realcut_small classify.resize=144 classify.crop_size=128 classify.batch_size=8
        classify.epochs=4 "seeds.scales=[1.0]" runtime.workers=1)
else
  $PY tools/make_bench_data.py --out data/realcut
  opts=(runtime.workers=1)
fi
$PY bench/bench_seed_quality.py --config configs/bench/realcut.py --work-root "workdirs/bench_realcut_$mode" \
  --no-bao --out "bench/results/realcut_$mode.json" --cfg-options "${opts[@]}"
$PY tools/make_demo_data.py --out data/demo
$PY bench/bench_seed_quality.py --config configs/demo/demo.py --work-root workdirs/bench_demo_seeds \
  --no-bao --out bench/results/demo_seeds.json --cfg-options classify.epochs=8 runtime.workers=1

